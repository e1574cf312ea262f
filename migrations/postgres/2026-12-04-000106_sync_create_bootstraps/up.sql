-- A bootstrap from a peer's snapshot under way (`regionsync sync bootstrap`, ADR 0011): the
-- snapshot cursor of the next page and the feed position to pull from once every page is
-- applied. Written in the transaction that applied each page, so a killed bootstrap resumes
-- from its last page; deleted when the last page is applied (and the pull cursor set).
CREATE TABLE sync_bootstraps (
    peer VARCHAR(32) COLLATE "C" NOT NULL,
    resource VARCHAR(64) COLLATE "C" NOT NULL,
    next_cursor VARCHAR(200) COLLATE "C" NOT NULL,
    rows_applied BIGINT NOT NULL,
    started_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (peer, resource)
);
