-- What each region that pulls our feed (GET /sync/{resource}/changes) has acknowledged: the
-- highest `since` cursor it read with, i.e. everything up to `acked_seq` is applied there.
-- Only ever raised. Prune keeps every changelog entry (and tombstone) above the lowest
-- acknowledgment of a resource; `regionsync outbox discard --peer P` forgets a peer's rows.
CREATE TABLE sync_feed_acks (
    peer VARCHAR(32) COLLATE "C" NOT NULL,
    resource VARCHAR(64) COLLATE "C" NOT NULL,
    acked_seq BIGINT NOT NULL,
    last_seen_at TIMESTAMP NOT NULL,
    PRIMARY KEY (peer, resource)
);
