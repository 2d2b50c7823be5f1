-- Leases: what one process of a deployment does at a time (publishing CRLs on their schedule
-- and signing the log's checkpoints), held by the process named `holder` until `expires_at`
-- and renewed by it well before; another takes it over once it expired.
CREATE TABLE leases (
    name        TEXT    NOT NULL PRIMARY KEY,
    holder      TEXT    NOT NULL,
    expires_at  BIGINT  NOT NULL               -- Unix seconds, by the holder's clock
);

-- The log's signed checkpoints (C2SP signed notes), the newest few: each is stored before any
-- replica serves it, and every replica serves the newest stored, so that the tree an auditor
-- is shown never shrinks, whichever replica answers.
CREATE TABLE log_checkpoints (
    size       BIGINT  NOT NULL PRIMARY KEY,   -- tree size (one signed anew after a key rollover replaces it)
    note       BYTEA   NOT NULL,               -- the signed note, as served
    signed_at  BIGINT  NOT NULL                -- Unix milliseconds
);
