DROP TABLE sync_conflict_resolutions;
