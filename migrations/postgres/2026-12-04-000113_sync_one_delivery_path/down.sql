-- The columns and index of the per-entry claim come back empty; the ranges made for pending
-- rows stay (they send nothing twice: a range leaves out seqs with a row, and the old
-- per-entry path sends the pending rows). PostgreSQL adds columns at the end (no AFTER):
-- the code names every column, so their position does not matter.
ALTER TABLE sync_outbox
    ADD COLUMN lease_owner VARCHAR(64) COLLATE "C" NULL,
    ADD COLUMN lease_until TIMESTAMP NULL;
CREATE INDEX sync_outbox_due ON sync_outbox (status, next_attempt_at);
