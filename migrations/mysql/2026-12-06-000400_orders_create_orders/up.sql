-- The orders container's table, as it was before it was synced (the sync columns come with
-- 2026-12-06-000401_orders_add_sync_columns). `id` is a UUID v7 string generated where the
-- order is created; `customer_id` names a customer (checked by the application where the
-- order is created, not by a foreign key: the customer may arrive from another region later).
-- `lines` is the JSON array of lines as compact text; `total_minor` their exact total. No
-- unique constraint besides the primary key: two regions can create the same order number
-- concurrently (SYNC-PROTOCOL.md §3).
CREATE TABLE orders (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    tenant_id VARCHAR(64) NOT NULL,
    customer_id VARCHAR(36) NOT NULL,
    number VARCHAR(64) NOT NULL,
    status VARCHAR(16) NOT NULL,
    currency VARCHAR(3) NOT NULL,
    `lines` TEXT NOT NULL,
    total_minor BIGINT NOT NULL,
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    INDEX orders_tenant_id_id_idx (tenant_id, id),
    INDEX orders_customer_id_id_idx (customer_id, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;
