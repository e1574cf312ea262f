DROP INDEX customers_sync_version_idx;
ALTER TABLE customers
    DROP COLUMN deleted_at,
    DROP COLUMN sync_origin,
    DROP COLUMN sync_version;
