-- `regionsync conflicts list` reads the ledger newest first (and --since).
CREATE INDEX sync_conflicts_detected_at_idx ON sync_conflicts (detected_at);
