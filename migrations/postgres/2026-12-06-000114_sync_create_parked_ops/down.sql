DROP TABLE sync_parked_ops;
