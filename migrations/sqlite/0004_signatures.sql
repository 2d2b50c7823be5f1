-- CMS/CAdES signatures made for callers (ETSI EN 319 122-1). Written in batches (group commit)
-- before the replies leave. The signature itself is not kept: the caller has it, and the digest,
-- signer and signature value's hash identify it for an audit.
CREATE TABLE signatures (
    id              INTEGER PRIMARY KEY,
    signature_id    TEXT    NOT NULL UNIQUE,   -- lower-case hex, returned to the caller
    signed_at       BIGINT  NOT NULL,          -- Unix seconds, the signing-time attribute
    policy          TEXT    NOT NULL,          -- signing policy name
    level           TEXT    NOT NULL,          -- B-B | B-T
    detached        BOOLEAN NOT NULL,
    digest_alg      TEXT    NOT NULL,          -- sha256 | sha384 | sha512
    digest          BLOB    NOT NULL,          -- the message-digest attribute (the document's hash)
    signer_serial   TEXT    NOT NULL,          -- hex serial of the signer certificate
    signer_issuer   TEXT    NOT NULL,          -- its issuer (RFC 4514)
    signature_hash  BLOB    NOT NULL,          -- SHA-256 of the SignerInfo's signature value
    timestamp_serial TEXT,                     -- B-T: serial of the signature time-stamp token
    requester       TEXT    NOT NULL
);
CREATE INDEX signatures_signed_at ON signatures (signed_at);
