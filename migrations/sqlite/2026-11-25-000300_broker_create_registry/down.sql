DROP TABLE broker_tenants;
DROP TABLE broker_regions;
