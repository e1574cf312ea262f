ALTER TABLE customers
    DROP INDEX customers_sync_version_idx,
    DROP COLUMN deleted_at,
    DROP COLUMN sync_origin,
    DROP COLUMN sync_version;
