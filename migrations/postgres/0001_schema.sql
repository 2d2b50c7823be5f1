-- trustd's schema on PostgreSQL: the tables of migrations/sqlite/ as they stand after its last
-- migration, in one step (PostgreSQL support started there). The same columns with
-- PostgreSQL's types (BIGINT for every integer, BYTEA for bytes), so both backends read rows
-- the same way (src/store/rows.rs). Times are Unix seconds.

-- Issued certificates. A row is written as 'pending' with the to-be-signed certificate before
-- the HSM signs, and completed as 'issued' with the certificate before it is returned, so
-- nothing signed goes unrecorded. The UNIQUE serial is what keeps serials unique across
-- replicas.
CREATE TABLE certificates (
    id                BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    serial            TEXT    NOT NULL UNIQUE,   -- lower-case hex of the positive serial number
    ca                TEXT    NOT NULL,
    profile           TEXT    NOT NULL,
    subject           TEXT    NOT NULL,          -- RFC 4514
    sans              TEXT    NOT NULL,          -- one "type:value" per line
    not_before        BIGINT  NOT NULL,
    not_after         BIGINT  NOT NULL,
    requester         TEXT    NOT NULL,
    status            TEXT    NOT NULL CHECK (status IN ('pending', 'issued', 'revoked', 'abandoned')),
    tbs_der           BYTEA   NOT NULL,
    cert_der          BYTEA,
    created_at        BIGINT  NOT NULL,
    issued_at         BIGINT,
    note              TEXT,
    revoked_at        BIGINT,
    revocation_reason BIGINT,                    -- CRLReason code (RFC 5280 §5.3.1)
    invalidity_date   BIGINT,                    -- RFC 5280 §5.3.2
    log_index         BIGINT,                    -- NULL: not yet in the log
    CHECK ((status IN ('issued', 'revoked')) = (cert_der IS NOT NULL))
);
CREATE INDEX certificates_profile ON certificates (profile, id);
CREATE INDEX certificates_status ON certificates (status, id);
-- The CRL's source: building a CRL reads only revoked rows, never every issued certificate.
CREATE INDEX certificates_revoked ON certificates (ca, id) WHERE status = 'revoked';
-- What start-up appends to the log after a crash between the store and the log: found without
-- a scan of every certificate.
CREATE INDEX certificates_unlogged ON certificates (id) WHERE log_index IS NULL AND status IN ('issued', 'revoked');

-- Who revoked, held or released what, and when: the audit trail of revocation.
CREATE TABLE revocation_events (
    id          BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    serial      TEXT    NOT NULL REFERENCES certificates (serial),
    action      TEXT    NOT NULL CHECK (action IN ('revoke', 'release')),
    reason      BIGINT  NOT NULL,
    at          BIGINT  NOT NULL,
    requester   TEXT    NOT NULL,
    log_index   BIGINT
);
CREATE INDEX revocation_events_unlogged ON revocation_events (id) WHERE log_index IS NULL;

-- How many revocation changes (revocations, holds, releases) the database holds, moved by each
-- change in its own statement: a replica reads this one row to learn of another's changes (its
-- CRLs and cached client statuses follow them). Unlike the events' ids, it moves in commit order.
CREATE TABLE revocation_generation (
    id          BIGINT  PRIMARY KEY CHECK (id = 1),
    generation  BIGINT  NOT NULL
);
INSERT INTO revocation_generation (id, generation) VALUES (1, 0);

-- The last CRL number used per CA; monotonic across restarts and replicas (RFC 5280 §5.2.3).
CREATE TABLE crl_numbers (
    ca          TEXT    PRIMARY KEY,
    last_number BIGINT  NOT NULL
);

-- RFC 3161 time-stamp tokens handed out, written in batches (group commit) before the replies
-- leave.
CREATE TABLE timestamps (
    id          BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    serial      TEXT    NOT NULL UNIQUE,   -- lower-case hex of the TSTInfo serialNumber
    gen_time    BIGINT  NOT NULL,          -- Unix seconds
    gen_time_us BIGINT  NOT NULL DEFAULT 0,-- microseconds past gen_time
    policy      TEXT    NOT NULL,          -- TSA policy OID
    hash_alg    TEXT    NOT NULL,          -- sha256 | sha384 | sha512
    imprint     BYTEA   NOT NULL,          -- hashedMessage
    nonce       BYTEA,
    requester   TEXT    NOT NULL,          -- the client's configured name; empty if anonymous
    token_der   BYTEA   NOT NULL,          -- the TimeStampToken (CMS ContentInfo)
    signer      BYTEA,                     -- SHA-256 of the TSA certificate (DER)
    log_index   BIGINT
);
CREATE INDEX timestamps_gen_time ON timestamps (gen_time);
CREATE INDEX timestamps_unlogged ON timestamps (id) WHERE log_index IS NULL AND signer IS NOT NULL;

-- CMS/CAdES signatures made for callers (ETSI EN 319 122-1). The signature itself is not kept:
-- the caller has it, and the digest, signer and signature value's hash identify it for an audit.
CREATE TABLE signatures (
    id               BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    signature_id     TEXT    NOT NULL UNIQUE,   -- lower-case hex, returned to the caller
    signed_at        BIGINT  NOT NULL,          -- the signing-time attribute
    policy           TEXT    NOT NULL,          -- signing policy name
    level            TEXT    NOT NULL,          -- B-B | B-T
    detached         BOOLEAN NOT NULL,
    digest_alg       TEXT    NOT NULL,          -- sha256 | sha384 | sha512
    digest           BYTEA   NOT NULL,          -- the message-digest attribute
    signer_serial    TEXT    NOT NULL,          -- hex serial of the signer certificate
    signer_issuer    TEXT    NOT NULL,          -- its issuer (RFC 4514)
    signature_hash   BYTEA   NOT NULL,          -- SHA-256 of the SignerInfo's signature value
    timestamp_serial TEXT,                      -- B-T: serial of the signature time-stamp token
    requester        TEXT    NOT NULL,
    signer           BYTEA,                     -- SHA-256 of the signer certificate (DER)
    log_index        BIGINT
);
CREATE INDEX signatures_signed_at ON signatures (signed_at);
CREATE INDEX signatures_unlogged ON signatures (id) WHERE log_index IS NULL AND signer IS NOT NULL;

-- The issued-certificate log: an RFC 9162 Merkle tree over typed entries. Entries and stored
-- hashes are append-only; one batch of the sequencer is one transaction that appends both and
-- moves `log_tree` from the old size to the new one.
CREATE TABLE log_entries (
    idx     BIGINT  PRIMARY KEY,   -- leaf index, 0, 1, 2, … without gaps
    entry   BYTEA   NOT NULL       -- the encoded entry (src/log/entry.rs, format version 1)
);
-- Every stored hash of the tree in Go sumdb's layout (src/log/types.rs HashIndex).
CREATE TABLE log_hashes (
    idx     BIGINT  PRIMARY KEY,
    hash    BYTEA   NOT NULL       -- 32 bytes, SHA-256
);
-- The committed tree head: one row. A batch's UPDATE names the size it was built on and changes
-- nothing unless the row still has it (compare-and-set under the row's lock), so two writers,
-- on one node or two, can never fork the sequence.
CREATE TABLE log_tree (
    id      BIGINT  PRIMARY KEY CHECK (id = 1),
    size    BIGINT  NOT NULL,
    root    BYTEA   NOT NULL
);
-- The empty tree: size 0, root SHA-256("") (RFC 9162 §2.1.1).
INSERT INTO log_tree (id, size, root)
    VALUES (1, 0, '\xe3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');

-- The key ceremony's keys in the log (ceremony_event entries), each once: by the SHA-256 of its
-- SubjectPublicKeyInfo.
CREATE TABLE ceremony_keys (
    spki_sha256 BYTEA   PRIMARY KEY,
    log_index   BIGINT  NOT NULL
);
