DROP TABLE sync_conflicts;
DROP TABLE sync_peer_cursors;
DROP TABLE sync_outbox;
DROP TABLE sync_changelog;
DROP TABLE sync_sequences;
