DROP TABLE broker_registry_lock;
DROP TABLE broker_tenants;
DROP TABLE broker_regions;
