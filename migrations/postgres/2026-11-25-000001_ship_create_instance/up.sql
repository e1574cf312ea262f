-- The region this database belongs to (one row). See ship::db::identity.
-- PostgreSQL conventions of this tree (ADR 0018): every character column is COLLATE "C" —
-- byte-wise comparison and ordering without PAD SPACE ('a' <> 'a '), exactly as MariaDB's
-- utf8mb4_nopad_bin and SQLite compare, so keys, feed order and digests agree across backends
-- whatever the database's default collation. TIMESTAMP is WITHOUT TIME ZONE and holds UTC
-- (diesel `Timestamp` = NaiveDateTime, microseconds, like MariaDB DATETIME(6)).
CREATE TABLE ship_instance (
    id INTEGER NOT NULL PRIMARY KEY,
    region_id VARCHAR(32) COLLATE "C" NOT NULL,
    created_at TIMESTAMP NOT NULL,
    CONSTRAINT ship_instance_single_row CHECK (id = 1)
);
