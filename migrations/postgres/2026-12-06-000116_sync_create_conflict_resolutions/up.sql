-- `regionsync conflicts resolve ID --take winner|loser`: which version an operator wrote again
-- as a new local write, the version it got, who and why (issue 16). One per conflict.
CREATE TABLE sync_conflict_resolutions (
    conflict_id BIGINT NOT NULL PRIMARY KEY,
    took VARCHAR(8) COLLATE "C" NOT NULL,
    hlc BIGINT NOT NULL,
    origin_region VARCHAR(32) COLLATE "C" NOT NULL,
    resolved_by VARCHAR(200) COLLATE "C" NOT NULL,
    why TEXT COLLATE "C" NOT NULL,
    resolved_at TIMESTAMP NOT NULL,
    CONSTRAINT sync_conflict_resolutions_why_bytes CHECK (octet_length(why) <= 65535)
);
