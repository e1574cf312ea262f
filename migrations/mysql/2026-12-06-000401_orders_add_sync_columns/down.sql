ALTER TABLE orders
    DROP INDEX orders_sync_version_idx,
    DROP COLUMN deleted_at,
    DROP COLUMN sync_origin,
    DROP COLUMN sync_version;
