-- The broker's registry (SYNC-PROTOCOL §8). Only the region running the broker role uses
-- these tables; every region has them so any region can take that role.

-- A region: where it is reached, its credential (SHA-256 of a 256-bit random secret, shown
-- once at creation), what it may sync, and when it last sent a heartbeat.
CREATE TABLE broker_regions (
    id VARCHAR(32) NOT NULL PRIMARY KEY,
    base_url VARCHAR(2048) NOT NULL,
    credential_hash CHAR(64) NOT NULL,
    -- `*` (every resource the broker serves) or a comma-separated list of resource names.
    scopes VARCHAR(1024) NOT NULL,
    last_heartbeat_at DATETIME(6) NULL,
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    UNIQUE KEY broker_regions_credential (credential_hash)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

-- Tenant placement: the home region of a tenant; `epoch` grows by one on every move.
CREATE TABLE broker_tenants (
    tenant_id VARCHAR(128) NOT NULL PRIMARY KEY,
    home_region VARCHAR(32) NOT NULL,
    epoch BIGINT NOT NULL,
    placed_at DATETIME(6) NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

-- One row every registry write (register, place, remove) updates first: registry changes are
-- rare, and serializing them is what keeps "no tenant homed in a removed region" and "one
-- region per id" true under READ COMMITTED without gap locks.
CREATE TABLE broker_registry_lock (
    id INTEGER NOT NULL PRIMARY KEY,
    version BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;
INSERT INTO broker_registry_lock (id, version) VALUES (1, 0);
