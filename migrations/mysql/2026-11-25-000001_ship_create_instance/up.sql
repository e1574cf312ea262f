-- The region this database belongs to (one row). See ship::db::identity.
-- Tables use utf8mb4_nopad_bin: byte-wise comparison without PAD SPACE ('a' <> 'a '),
-- exactly as SQLite compares, so keys and digests agree across backends.
CREATE TABLE ship_instance (
    id INTEGER NOT NULL PRIMARY KEY,
    region_id VARCHAR(32) NOT NULL,
    created_at DATETIME(6) NOT NULL,
    CONSTRAINT ship_instance_single_row CHECK (id = 1)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;
