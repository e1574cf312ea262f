DROP TABLE sync_quarantine;
