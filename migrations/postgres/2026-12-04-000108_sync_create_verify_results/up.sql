-- The last `sync.verify` comparison with each peer, per resource (issue 13): how many rows
-- differed. The `divergence` alert fires while the last one found any.
CREATE TABLE sync_verify_results (
    peer VARCHAR(32) COLLATE "C" NOT NULL,
    resource VARCHAR(64) COLLATE "C" NOT NULL,
    differing BIGINT NOT NULL,
    rows_local BIGINT NOT NULL,
    rows_remote BIGINT NOT NULL,
    checked_at TIMESTAMP NOT NULL,
    PRIMARY KEY (peer, resource)
);
