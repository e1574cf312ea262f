-- `regionsync conflicts resolve ID --take winner|loser`: which version an operator wrote again
-- as a new local write, the version it got, who and why (issue 16). One per conflict.
CREATE TABLE sync_conflict_resolutions (
    conflict_id BIGINT NOT NULL PRIMARY KEY,
    took VARCHAR(8) NOT NULL,
    hlc BIGINT NOT NULL,
    origin_region VARCHAR(32) NOT NULL,
    resolved_by VARCHAR(200) NOT NULL,
    why TEXT NOT NULL,
    resolved_at DATETIME(6) NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;
