-- Batch rows (ADR 0026): an applied batch's upserts of one other region are stored as one row
-- covering the seqs `first_seq ..= seq` (its key is the last seq it covers), its payload a JSON
-- array of `[entity_id, hlc, payload]`, one per entry in seq order, and its op `batch`. A row
-- per entry cost the server more per row than per byte (ADR 0025). NULL: the row is one entry
-- (every row written before this migration, and every local write).
ALTER TABLE sync_changelog ADD COLUMN first_seq BIGINT NULL;
