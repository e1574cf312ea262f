-- The last `sync.verify` comparison with each peer, per resource (issue 13): how many rows
-- differed. The `divergence` alert fires while the last one found any.
CREATE TABLE sync_verify_results (
    peer VARCHAR(32) NOT NULL,
    resource VARCHAR(64) NOT NULL,
    differing BIGINT NOT NULL,
    rows_local BIGINT NOT NULL,
    rows_remote BIGINT NOT NULL,
    checked_at DATETIME(6) NOT NULL,
    PRIMARY KEY (peer, resource)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;
