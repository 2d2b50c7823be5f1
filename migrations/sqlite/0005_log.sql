-- The issued-certificate log (issue #6): an RFC 9162 Merkle tree over typed entries. Entries and
-- stored hashes are append-only; one batch of the sequencer is one transaction that appends both
-- and moves `log_tree` from the old size to the new one. A PostgreSQL backend uses the same
-- columns (BIGINT, BYTEA).

-- The leaf inputs, by leaf index (RFC 9162 §2.1.1): the bytes served in entry bundles.
CREATE TABLE log_entries (
    idx     INTEGER PRIMARY KEY,   -- leaf index, 0, 1, 2, … without gaps
    entry   BLOB    NOT NULL       -- the encoded entry (src/log/entry.rs, format version 1)
);

-- Every stored hash of the tree in Go sumdb's layout (src/log/types.rs HashIndex): the hashes of
-- a tree of n entries are exactly the indexes 0 .. stored_hash_count(n).
CREATE TABLE log_hashes (
    idx     INTEGER PRIMARY KEY,
    hash    BLOB    NOT NULL       -- 32 bytes, SHA-256
);

-- The committed tree head: one row. Each batch updates it only if it still has the size the
-- batch was built on (compare-and-set), so two writers can never fork the sequence.
CREATE TABLE log_tree (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    size    BIGINT  NOT NULL,
    root    BLOB    NOT NULL
);
-- The empty tree: size 0, root SHA-256("") (RFC 9162 §2.1.1).
INSERT INTO log_tree (id, size, root)
    VALUES (1, 0, X'E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855');

-- Which records are in the log. NULL: not yet sequenced (a crash between the store and the log);
-- start-up appends those, in order, before the daemon says it is ready.
ALTER TABLE certificates ADD COLUMN log_index BIGINT;
CREATE INDEX certificates_unlogged ON certificates (id) WHERE log_index IS NULL AND status IN ('issued', 'revoked');
ALTER TABLE revocation_events ADD COLUMN log_index BIGINT;
CREATE INDEX revocation_events_unlogged ON revocation_events (id) WHERE log_index IS NULL;
