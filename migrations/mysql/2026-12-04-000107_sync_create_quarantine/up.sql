-- Entries of a peer's feed that can never apply here as they are (a payload this region's
-- validation refuses, an entry of this region's own origin): parked so the pull moves on past
-- them, with why; `regionsync sync quarantine list | retry | discard` (issue 13).
CREATE TABLE sync_quarantine (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    peer VARCHAR(32) NOT NULL,
    resource VARCHAR(64) NOT NULL,
    seq BIGINT NOT NULL,
    entity_id VARCHAR(64) NOT NULL,
    entry MEDIUMTEXT NOT NULL,
    reason TEXT NOT NULL,
    created_at DATETIME(6) NOT NULL,
    KEY sync_quarantine_peer_idx (peer, resource)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;
