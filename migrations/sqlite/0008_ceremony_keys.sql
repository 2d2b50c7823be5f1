-- The key ceremony's keys in the log (ceremony_event entries), each once: by the SHA-256 of its
-- SubjectPublicKeyInfo.
CREATE TABLE ceremony_keys (
    spki_sha256 BLOB   PRIMARY KEY,
    log_index   BIGINT NOT NULL
);
