-- Remote ops that name a row of another resource which is not here yet (an order whose
-- customer has not arrived): kept, not refused and not lost, and applied as soon as that row
-- arrives (ADR 0015). One row per op version; `waits_*` is the first missing row it names.
CREATE TABLE sync_parked_ops (
    resource VARCHAR(64) COLLATE "C" NOT NULL,
    entity_id VARCHAR(64) COLLATE "C" NOT NULL,
    hlc BIGINT NOT NULL,
    origin_region VARCHAR(32) COLLATE "C" NOT NULL,
    op VARCHAR(8) COLLATE "C" NOT NULL,
    payload TEXT COLLATE "C" NOT NULL,
    waits_resource VARCHAR(64) COLLATE "C" NOT NULL,
    waits_id VARCHAR(64) COLLATE "C" NOT NULL,
    parked_at TIMESTAMP NOT NULL,
    -- The resource's payload schema version the op was validated against.
    schema_version INTEGER NOT NULL,
    PRIMARY KEY (resource, entity_id, hlc, origin_region),
    CONSTRAINT sync_parked_ops_payload_bytes CHECK (octet_length(payload) <= 16777215)
);
CREATE INDEX sync_parked_ops_waits_idx ON sync_parked_ops (waits_resource, waits_id);
CREATE INDEX sync_parked_ops_parked_at_idx ON sync_parked_ops (parked_at);
