DROP INDEX customers_sync_version_idx;
ALTER TABLE customers DROP COLUMN deleted_at;
ALTER TABLE customers DROP COLUMN sync_origin;
ALTER TABLE customers DROP COLUMN sync_version;
