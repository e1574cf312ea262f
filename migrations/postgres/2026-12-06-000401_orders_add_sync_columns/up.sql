-- Make orders a synced table (SYNC-PROTOCOL.md §3) on a table that may already hold rows.
-- Existing rows get the version of their last write: sync_version = HLC of updated_at
-- (milliseconds since the epoch, truncated, shifted left 16 bits = * 65536, counter 0) and
-- sync_origin = the region this database is bound to ('' while it is not bound yet).
-- EXTRACT(EPOCH FROM a TIMESTAMP WITHOUT TIME ZONE) is exact (numeric) and does not depend on
-- the session time zone; the microseconds divided as BIGINT truncate exactly like MariaDB's
-- TIMESTAMPDIFF(MICROSECOND ...) DIV 1000. "Now" is the UTC wall clock (now() AT TIME ZONE 'UTC').
ALTER TABLE orders
    ADD COLUMN sync_version BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN sync_origin VARCHAR(32) COLLATE "C" NOT NULL DEFAULT '',
    ADD COLUMN deleted_at TIMESTAMP NULL;

UPDATE orders SET
    -- Clamped to [0, now]: a row updated before 1970 must not get a negative (invalid) HLC, and
    -- one dated in the future must not start beyond every peer's clock-drift bound.
    sync_version = LEAST(
        GREATEST((EXTRACT(EPOCH FROM updated_at) * 1000000)::BIGINT / 1000, 0),
        (EXTRACT(EPOCH FROM (now() AT TIME ZONE 'UTC')) * 1000000)::BIGINT / 1000
    ) * 65536,
    sync_origin = COALESCE((SELECT region_id FROM ship_instance WHERE id = 1), '');

CREATE INDEX orders_sync_version_idx ON orders (sync_version);
