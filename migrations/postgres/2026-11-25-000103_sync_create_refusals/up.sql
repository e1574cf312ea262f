-- Requests this region refused, counted per kind (clock_drift, token_*) and source region
-- ('' when unknown): the web process writes them, the scheduler's alerts read them.
CREATE TABLE sync_refusals (
    kind VARCHAR(32) COLLATE "C" NOT NULL,
    source VARCHAR(64) COLLATE "C" NOT NULL,
    refused BIGINT NOT NULL,
    last_at TIMESTAMP NOT NULL,
    PRIMARY KEY (kind, source)
);
