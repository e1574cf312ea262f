DROP INDEX customers_tenant_id_id_idx;
DROP TABLE customers;
