-- Requests this region refused, counted per kind (clock_drift, token_*) and source region
-- ('' when unknown): the web process writes them, the scheduler's alerts read them.
CREATE TABLE sync_refusals (
    kind VARCHAR(32) NOT NULL,
    source VARCHAR(64) NOT NULL,
    refused BIGINT NOT NULL,
    last_at DATETIME(6) NOT NULL,
    PRIMARY KEY (kind, source)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;
