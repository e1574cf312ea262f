-- A peer whose feed no longer reaches back to our cursor (410 cursor_expired): the pull stops
-- and waits for a bootstrap; an alert says so until a pull succeeds again.
CREATE TABLE sync_peer_flags (
    peer VARCHAR(32) NOT NULL,
    resource VARCHAR(64) NOT NULL,
    needs_bootstrap_since DATETIME(6) NOT NULL,
    PRIMARY KEY (peer, resource)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;
