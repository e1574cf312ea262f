DROP TABLE sync_alerts;
