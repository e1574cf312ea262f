-- The scheduler (ship::scheduler). A lease per job for `on_one_server` jobs: held by one
-- scheduler process at a time, renewed while the job runs, released when it ends.
CREATE TABLE ship_scheduler_leases (
    job VARCHAR(64) NOT NULL PRIMARY KEY,
    owner VARCHAR(128) NOT NULL,
    expires_at TIMESTAMP NOT NULL
);

-- One row per job run: `schedule list`, due-time computation across restarts, metrics.
CREATE TABLE ship_scheduler_runs (
    id INTEGER PRIMARY KEY,
    job VARCHAR(64) NOT NULL,
    owner VARCHAR(128) NOT NULL,
    started_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    -- running | ok | failed | timed_out
    outcome VARCHAR(16) NOT NULL,
    error TEXT
);
CREATE INDEX ship_scheduler_runs_job ON ship_scheduler_runs (job, started_at);
