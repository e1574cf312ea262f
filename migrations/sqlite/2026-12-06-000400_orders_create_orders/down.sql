DROP INDEX orders_customer_id_id_idx;
DROP INDEX orders_tenant_id_id_idx;
DROP TABLE orders;
