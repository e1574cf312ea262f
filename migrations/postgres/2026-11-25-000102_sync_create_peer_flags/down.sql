DROP TABLE sync_peer_flags;
