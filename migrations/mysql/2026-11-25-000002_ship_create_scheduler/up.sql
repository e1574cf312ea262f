-- The scheduler (ship::scheduler). A lease per job for `on_one_server` jobs: held by one
-- scheduler process at a time, renewed while the job runs, released when it ends.
CREATE TABLE ship_scheduler_leases (
    job VARCHAR(64) NOT NULL PRIMARY KEY,
    owner VARCHAR(128) NOT NULL,
    expires_at DATETIME(6) NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

-- One row per job run: `schedule list`, due-time computation across restarts, metrics.
CREATE TABLE ship_scheduler_runs (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    job VARCHAR(64) NOT NULL,
    owner VARCHAR(128) NOT NULL,
    started_at DATETIME(6) NOT NULL,
    finished_at DATETIME(6) NULL,
    -- running | ok | failed | timed_out
    outcome VARCHAR(16) NOT NULL,
    error TEXT NULL,
    KEY ship_scheduler_runs_job (job, started_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;
