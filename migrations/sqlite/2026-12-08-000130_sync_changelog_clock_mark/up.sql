-- The clock's high-water mark moves from an index to the sequence row (ADR 0019): each append
-- already updates its resource's sequence row (`last_seq = last_seq + n`), and now also raises
-- `max_hlc` to the largest HLC it appends, in the same statement. The clock resumes from
-- MAX(max_hlc) at start (it read MAX(hlc) of the changelog through `sync_changelog_hlc`), so
-- that index — read by nothing else, written by every append — goes. The mark also outlives
-- prune (a changelog pruned to nothing kept no HLC before).
ALTER TABLE sync_sequences ADD COLUMN max_hlc BIGINT NOT NULL DEFAULT 0;
UPDATE sync_sequences SET max_hlc = COALESCE(
    (SELECT MAX(c.hlc) FROM sync_changelog c WHERE c.resource = sync_sequences.resource), 0);
DROP INDEX sync_changelog_hlc;
