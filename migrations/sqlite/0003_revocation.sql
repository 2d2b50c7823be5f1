-- Revocation (RFC 5280 §5.3.1 reasons). The partial index is the CRL's source: building a CRL
-- reads only revoked rows, never every issued certificate.
ALTER TABLE certificates ADD COLUMN revoked_at BIGINT;            -- Unix seconds
ALTER TABLE certificates ADD COLUMN revocation_reason INTEGER;    -- CRLReason code
ALTER TABLE certificates ADD COLUMN invalidity_date BIGINT;       -- Unix seconds, RFC 5280 §5.3.2
CREATE INDEX certificates_revoked ON certificates (ca, id) WHERE status = 'revoked';

-- Who revoked, held or released what, and when: the audit trail of revocation.
CREATE TABLE revocation_events (
    id          INTEGER PRIMARY KEY,
    serial      TEXT    NOT NULL REFERENCES certificates (serial),
    action      TEXT    NOT NULL CHECK (action IN ('revoke', 'release')),
    reason      INTEGER NOT NULL,
    at          BIGINT  NOT NULL,
    requester   TEXT    NOT NULL
);

-- The last CRL number used per CA; monotonic across restarts (RFC 5280 §5.2.3).
CREATE TABLE crl_numbers (
    ca          TEXT    PRIMARY KEY,
    last_number BIGINT  NOT NULL
);
