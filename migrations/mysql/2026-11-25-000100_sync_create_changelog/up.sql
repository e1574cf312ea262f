-- Per-resource changelog sequence. Every append takes this row's write lock (UPDATE … SET
-- last_seq = last_seq + n) in the writing transaction, so seq order = commit order per
-- resource: the changes feed can never skip an entry that commits late (SYNC-PROTOCOL §5).
CREATE TABLE sync_sequences (
    resource VARCHAR(64) NOT NULL PRIMARY KEY,
    last_seq BIGINT NOT NULL,
    -- Entries with seq <= pruned_through were pruned; older cursors get 410 cursor_expired.
    pruned_through BIGINT NOT NULL DEFAULT 0
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

CREATE TABLE sync_changelog (
    resource VARCHAR(64) NOT NULL,
    seq BIGINT NOT NULL,
    entity_id VARCHAR(64) NOT NULL,
    op VARCHAR(8) NOT NULL,
    payload MEDIUMTEXT NOT NULL,
    hlc BIGINT NOT NULL,
    origin_region VARCHAR(32) NOT NULL,
    schema_version INTEGER NOT NULL,
    created_at DATETIME(6) NOT NULL,
    PRIMARY KEY (resource, seq),
    KEY sync_changelog_hlc (hlc)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

-- One entry per (local change, peer region), created with the change.
CREATE TABLE sync_outbox (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    peer VARCHAR(32) NOT NULL,
    resource VARCHAR(64) NOT NULL,
    seq BIGINT NOT NULL,
    status VARCHAR(16) NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at DATETIME(6) NOT NULL,
    lease_owner VARCHAR(64) NULL,
    lease_until DATETIME(6) NULL,
    last_error TEXT NULL,
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    delivered_at DATETIME(6) NULL,
    KEY sync_outbox_due (status, next_attempt_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

-- Per (peer, resource): how far this region has pulled the peer's feed.
CREATE TABLE sync_peer_cursors (
    peer VARCHAR(32) NOT NULL,
    resource VARCHAR(64) NOT NULL,
    -- The opaque `next_cursor` the peer handed out (never parsed here).
    peer_cursor VARCHAR(128) NOT NULL,
    last_pull_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    PRIMARY KEY (peer, resource)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

-- A concurrent write that lost last-writer-wins: both versions, and why the winner won.
CREATE TABLE sync_conflicts (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    resource VARCHAR(64) NOT NULL,
    entity_id VARCHAR(64) NOT NULL,
    winner_hlc BIGINT NOT NULL,
    winner_origin VARCHAR(32) NOT NULL,
    winner_payload MEDIUMTEXT NOT NULL,
    loser_hlc BIGINT NOT NULL,
    loser_origin VARCHAR(32) NOT NULL,
    loser_payload MEDIUMTEXT NOT NULL,
    reason VARCHAR(32) NOT NULL,
    detected_at DATETIME(6) NOT NULL,
    KEY sync_conflicts_entity (resource, entity_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;
