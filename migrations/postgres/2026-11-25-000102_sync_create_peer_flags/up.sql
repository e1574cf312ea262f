-- A peer whose feed no longer reaches back to our cursor (410 cursor_expired): the pull stops
-- and waits for a bootstrap; an alert says so until a pull succeeds again.
CREATE TABLE sync_peer_flags (
    peer VARCHAR(32) COLLATE "C" NOT NULL,
    resource VARCHAR(64) COLLATE "C" NOT NULL,
    needs_bootstrap_since TIMESTAMP NOT NULL,
    PRIMARY KEY (peer, resource)
);
