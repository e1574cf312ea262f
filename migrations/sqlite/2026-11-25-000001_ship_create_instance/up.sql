-- The region this database belongs to (one row). See ship::db::identity.
CREATE TABLE ship_instance (
    id INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    region_id VARCHAR(32) NOT NULL,
    created_at TIMESTAMP NOT NULL
);
