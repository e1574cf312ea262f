DROP TABLE ship_scheduler_runs;
DROP TABLE ship_scheduler_leases;
