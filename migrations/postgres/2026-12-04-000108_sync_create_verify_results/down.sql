DROP TABLE sync_verify_results;
