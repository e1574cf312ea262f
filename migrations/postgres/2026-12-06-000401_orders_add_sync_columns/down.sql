DROP INDEX orders_sync_version_idx;
ALTER TABLE orders
    DROP COLUMN deleted_at,
    DROP COLUMN sync_origin,
    DROP COLUMN sync_version;
