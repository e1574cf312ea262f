-- Entries of a peer's feed that can never apply here as they are (a payload this region's
-- validation refuses, an entry of this region's own origin): parked so the pull moves on past
-- them, with why; `regionsync sync quarantine list | retry | discard` (issue 13).
CREATE TABLE sync_quarantine (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    peer VARCHAR(32) NOT NULL,
    resource VARCHAR(64) NOT NULL,
    seq BIGINT NOT NULL,
    entity_id VARCHAR(64) NOT NULL,
    entry TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX sync_quarantine_peer_idx ON sync_quarantine (peer, resource);
