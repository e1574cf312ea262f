-- Make orders a synced table (SYNC-PROTOCOL.md §3) on a table that may already hold rows.
-- Existing rows get the version of their last write: sync_version = HLC of updated_at
-- (milliseconds since the epoch, truncated, shifted left 16 bits = * 65536, counter 0) and
-- sync_origin = the region this database is bound to ('' while it is not bound yet).
-- The milliseconds are computed from the text itself (whole seconds by strftime on the first 19
-- characters, milliseconds from the first three fraction digits), so they are truncated exactly
-- like MariaDB's TIMESTAMPDIFF(MICROSECOND ...) DIV 1000 and the Rust side's timestamp_millis,
-- never rounded by SQLite's julian-day arithmetic.
ALTER TABLE orders ADD COLUMN sync_version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN sync_origin VARCHAR(32) NOT NULL DEFAULT '';
ALTER TABLE orders ADD COLUMN deleted_at TIMESTAMP NULL;

UPDATE orders SET
    -- Clamped to [0, now]: a row updated before 1970 must not get a negative (invalid) HLC, and
    -- one dated in the future must not start beyond every peer's clock-drift bound.
    sync_version = MIN(MAX(
        CAST(strftime('%s', substr(updated_at, 1, 19)) AS INTEGER) * 1000
        + CASE WHEN substr(updated_at, 20, 1) = '.'
               THEN CAST(substr(substr(updated_at, 21) || '000', 1, 3) AS INTEGER)
               ELSE 0 END,
        0
    ), CAST(strftime('%s', 'now') AS INTEGER) * 1000) * 65536,
    sync_origin = COALESCE((SELECT region_id FROM ship_instance WHERE id = 1), '');

CREATE INDEX orders_sync_version_idx ON orders (sync_version);
