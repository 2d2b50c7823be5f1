-- How many revocation changes (revocations, holds, releases) the database holds, moved by each
-- change in its own transaction: a process reads this one row to learn of changes another
-- process on the same database made (its CRLs and cached client statuses follow them).
CREATE TABLE revocation_generation (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    generation  BIGINT  NOT NULL
);
INSERT INTO revocation_generation (id, generation) SELECT 1, COUNT(*) FROM revocation_events;
