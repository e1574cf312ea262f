-- The columns and index of the per-entry claim come back empty; the ranges made for pending
-- rows stay (they send nothing twice: a range leaves out seqs with a row, and the old
-- per-entry path sends the pending rows).
ALTER TABLE sync_outbox
    ADD COLUMN lease_owner VARCHAR(64) NULL AFTER next_attempt_at,
    ADD COLUMN lease_until DATETIME(6) NULL AFTER lease_owner,
    ADD KEY sync_outbox_due (status, next_attempt_at);
