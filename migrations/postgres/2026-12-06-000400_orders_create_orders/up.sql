-- The orders container's table, as it was before it was synced (the sync columns come with
-- 2026-12-06-000401_orders_add_sync_columns). `id` is a UUID v7 string generated where the
-- order is created; `customer_id` names a customer (checked by the application where the
-- order is created, not by a foreign key: the customer may arrive from another region later).
-- `lines` is the JSON array of lines as compact text (not jsonb: the code stores and compares
-- the text); `total_minor` their exact total. No unique constraint besides the primary key:
-- two regions can create the same order number concurrently (SYNC-PROTOCOL.md §3).
CREATE TABLE orders (
    id VARCHAR(36) COLLATE "C" NOT NULL PRIMARY KEY,
    tenant_id VARCHAR(64) COLLATE "C" NOT NULL,
    customer_id VARCHAR(36) COLLATE "C" NOT NULL,
    number VARCHAR(64) COLLATE "C" NOT NULL,
    status VARCHAR(16) COLLATE "C" NOT NULL,
    currency VARCHAR(3) COLLATE "C" NOT NULL,
    lines TEXT COLLATE "C" NOT NULL,
    total_minor BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    CONSTRAINT orders_lines_bytes CHECK (octet_length(lines) <= 65535)
);
CREATE INDEX orders_tenant_id_id_idx ON orders (tenant_id, id);
CREATE INDEX orders_customer_id_id_idx ON orders (customer_id, id);
