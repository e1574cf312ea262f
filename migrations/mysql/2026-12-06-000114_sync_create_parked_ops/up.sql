-- Remote ops that name a row of another resource which is not here yet (an order whose
-- customer has not arrived): kept, not refused and not lost, and applied as soon as that row
-- arrives (ADR 0015). One row per op version; `waits_*` is the first missing row it names.
CREATE TABLE sync_parked_ops (
    resource VARCHAR(64) NOT NULL,
    entity_id VARCHAR(64) NOT NULL,
    hlc BIGINT NOT NULL,
    origin_region VARCHAR(32) NOT NULL,
    op VARCHAR(8) NOT NULL,
    payload MEDIUMTEXT NOT NULL,
    waits_resource VARCHAR(64) NOT NULL,
    waits_id VARCHAR(64) NOT NULL,
    parked_at DATETIME(6) NOT NULL,
    -- The resource's payload schema version the op was validated against.
    schema_version INTEGER NOT NULL,
    PRIMARY KEY (resource, entity_id, hlc, origin_region),
    KEY sync_parked_ops_waits_idx (waits_resource, waits_id),
    KEY sync_parked_ops_parked_at_idx (parked_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;
