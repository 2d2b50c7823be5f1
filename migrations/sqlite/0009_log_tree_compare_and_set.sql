-- The tree head's compare-and-set (src/log/sequencer.rs), enforced by the database: every
-- batch's UPDATE states in `base` the size it was built on, and is refused unless the row still
-- has that size, so that two writers can never fork the sequence. (Before, the UPDATE's WHERE
-- clause did this, and the store checked the rows changed: a round trip of its own.)
ALTER TABLE log_tree ADD COLUMN base BIGINT;
CREATE TRIGGER log_tree_compare_and_set BEFORE UPDATE OF size ON log_tree
WHEN NEW.base IS NOT OLD.size
BEGIN
    SELECT RAISE(ABORT, 'log_tree_compare_and_set: the tree is no longer at the size this batch was built on');
END;
