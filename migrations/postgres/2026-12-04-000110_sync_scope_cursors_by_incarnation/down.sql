DROP TABLE sync_peer_incarnations;
ALTER TABLE sync_peer_cursors DROP COLUMN local_incarnation;
