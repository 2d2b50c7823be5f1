-- Issued certificates. A row is written as 'pending' with the to-be-signed certificate before
-- the HSM signs, and completed as 'issued' with the certificate before it is returned, so
-- nothing signed goes unrecorded. A PostgreSQL backend uses the same columns (BIGINT, BYTEA).
CREATE TABLE certificates (
    id          INTEGER PRIMARY KEY,
    serial      TEXT    NOT NULL UNIQUE,   -- lower-case hex of the positive serial number
    ca          TEXT    NOT NULL,
    profile     TEXT    NOT NULL,
    subject     TEXT    NOT NULL,          -- RFC 4514
    sans        TEXT    NOT NULL,          -- one "type:value" per line
    not_before  BIGINT  NOT NULL,          -- Unix seconds
    not_after   BIGINT  NOT NULL,
    requester   TEXT    NOT NULL,
    status      TEXT    NOT NULL CHECK (status IN ('pending', 'issued', 'revoked', 'abandoned')),
    tbs_der     BLOB    NOT NULL,
    cert_der    BLOB,
    created_at  BIGINT  NOT NULL,
    issued_at   BIGINT,
    note        TEXT,
    CHECK ((status IN ('issued', 'revoked')) = (cert_der IS NOT NULL))
);
CREATE INDEX certificates_profile ON certificates (profile, id);
CREATE INDEX certificates_status ON certificates (status, id);
