-- Per-resource changelog sequence. Every append takes this row's write lock (UPDATE … SET
-- last_seq = last_seq + n) in the writing transaction, so seq order = commit order per
-- resource: the changes feed can never skip an entry that commits late (SYNC-PROTOCOL §5).
CREATE TABLE sync_sequences (
    resource VARCHAR(64) NOT NULL PRIMARY KEY,
    last_seq BIGINT NOT NULL,
    -- Entries with seq <= pruned_through were pruned; older cursors get 410 cursor_expired.
    pruned_through BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE sync_changelog (
    resource VARCHAR(64) NOT NULL,
    seq BIGINT NOT NULL,
    entity_id VARCHAR(64) NOT NULL,
    op VARCHAR(8) NOT NULL,
    payload TEXT NOT NULL,
    hlc BIGINT NOT NULL,
    origin_region VARCHAR(32) NOT NULL,
    schema_version INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (resource, seq)
);
CREATE INDEX sync_changelog_hlc ON sync_changelog (hlc);

-- One entry per (local change, peer region), created with the change.
-- Secondary indexes cost every write; each one here has a reader (no speculative ones).
-- INTEGER PRIMARY KEY without AUTOINCREMENT: no sqlite_sequence write per insert.
CREATE TABLE sync_outbox (
    id INTEGER PRIMARY KEY,
    peer VARCHAR(32) NOT NULL,
    resource VARCHAR(64) NOT NULL,
    seq BIGINT NOT NULL,
    status VARCHAR(16) NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP NOT NULL,
    lease_owner VARCHAR(64),
    lease_until TIMESTAMP,
    last_error TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    delivered_at TIMESTAMP
);
CREATE INDEX sync_outbox_due ON sync_outbox (status, next_attempt_at);

-- Per (peer, resource): how far this region has pulled the peer's feed.
CREATE TABLE sync_peer_cursors (
    peer VARCHAR(32) NOT NULL,
    resource VARCHAR(64) NOT NULL,
    -- The opaque `next_cursor` the peer handed out (never parsed here).
    peer_cursor VARCHAR(128) NOT NULL,
    last_pull_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (peer, resource)
);

-- A concurrent write that lost last-writer-wins: both versions, and why the winner won.
CREATE TABLE sync_conflicts (
    id INTEGER PRIMARY KEY,
    resource VARCHAR(64) NOT NULL,
    entity_id VARCHAR(64) NOT NULL,
    winner_hlc BIGINT NOT NULL,
    winner_origin VARCHAR(32) NOT NULL,
    winner_payload TEXT NOT NULL,
    loser_hlc BIGINT NOT NULL,
    loser_origin VARCHAR(32) NOT NULL,
    loser_payload TEXT NOT NULL,
    reason VARCHAR(32) NOT NULL,
    detected_at TIMESTAMP NOT NULL
);
CREATE INDEX sync_conflicts_entity ON sync_conflicts (resource, entity_id);
