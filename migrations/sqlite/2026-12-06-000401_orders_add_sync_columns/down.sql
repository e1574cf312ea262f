DROP INDEX orders_sync_version_idx;
ALTER TABLE orders DROP COLUMN deleted_at;
ALTER TABLE orders DROP COLUMN sync_origin;
ALTER TABLE orders DROP COLUMN sync_version;
