-- The customers container's table, as it was before it was synced (the sync columns come with
-- 2026-11-25-000201_customers_add_sync_columns). `id` is a UUID v7 string generated where the
-- customer is created. No unique constraint besides the primary key: two regions can create
-- the same "unique" value concurrently (SYNC-PROTOCOL.md §3).
CREATE TABLE customers (
    id VARCHAR(36) COLLATE "C" NOT NULL PRIMARY KEY,
    tenant_id VARCHAR(64) COLLATE "C" NOT NULL,
    name VARCHAR(200) COLLATE "C" NOT NULL,
    email VARCHAR(254) COLLATE "C" NOT NULL,
    status VARCHAR(16) COLLATE "C" NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX customers_tenant_id_id_idx ON customers (tenant_id, id);
