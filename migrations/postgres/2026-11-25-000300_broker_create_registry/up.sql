-- The broker's registry (SYNC-PROTOCOL §8). Only the region running the broker role uses
-- these tables; every region has them so any region can take that role.

-- A region: where it is reached, its credential (SHA-256 of a 256-bit random secret, shown
-- once at creation), what it may sync, and when it last sent a heartbeat.
-- credential_hash: VARCHAR(64), not CHAR(64): PostgreSQL's CHAR pads and ignores trailing
-- spaces (bpchar), diesel reads it as `Text` either way, and the value is 64 hex digits.
CREATE TABLE broker_regions (
    id VARCHAR(32) COLLATE "C" NOT NULL PRIMARY KEY,
    base_url VARCHAR(2048) COLLATE "C" NOT NULL,
    credential_hash VARCHAR(64) COLLATE "C" NOT NULL,
    -- `*` (every resource the broker serves) or a comma-separated list of resource names.
    scopes VARCHAR(1024) COLLATE "C" NOT NULL,
    last_heartbeat_at TIMESTAMP NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX broker_regions_credential ON broker_regions (credential_hash);

-- Tenant placement: the home region of a tenant; `epoch` grows by one on every move.
CREATE TABLE broker_tenants (
    tenant_id VARCHAR(128) COLLATE "C" NOT NULL PRIMARY KEY,
    home_region VARCHAR(32) COLLATE "C" NOT NULL,
    epoch BIGINT NOT NULL,
    placed_at TIMESTAMP NOT NULL
);

-- One row every registry write (register, place, remove) updates first: registry changes are
-- rare, and serializing them is what keeps "no tenant homed in a removed region" and "one
-- region per id" true under READ COMMITTED without gap locks.
CREATE TABLE broker_registry_lock (
    id INTEGER NOT NULL PRIMARY KEY,
    version BIGINT NOT NULL
);
INSERT INTO broker_registry_lock (id, version) VALUES (1, 0);
