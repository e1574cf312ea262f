DROP TABLE sync_bootstraps;
