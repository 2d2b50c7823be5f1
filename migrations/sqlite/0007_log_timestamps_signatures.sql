-- Time-stamps and signatures are entries of the log (issue #19). Each record is written in the
-- transaction of its log batch with its leaf index; only a record made while the log was off
-- ([log] enabled = false) has none, and start-up appends those.
--
-- `signer`: SHA-256 of the certificate (DER) that signed it, as the log entry names the key.
-- Records from before this migration have none and stay outside the log.
ALTER TABLE timestamps ADD COLUMN signer BLOB;
ALTER TABLE timestamps ADD COLUMN log_index BIGINT;
CREATE INDEX timestamps_unlogged ON timestamps (id) WHERE log_index IS NULL AND signer IS NOT NULL;
ALTER TABLE signatures ADD COLUMN signer BLOB;
ALTER TABLE signatures ADD COLUMN log_index BIGINT;
CREATE INDEX signatures_unlogged ON signatures (id) WHERE log_index IS NULL AND signer IS NOT NULL;

-- The requester is the client's configured name, empty for an anonymous request (the public
-- HTTP TSA): a peer's address names nobody and is not kept.
UPDATE timestamps SET requester = '' WHERE requester LIKE 'anonymous@%';
