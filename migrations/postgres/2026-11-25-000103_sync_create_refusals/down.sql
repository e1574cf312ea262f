DROP TABLE sync_refusals;
