DROP TABLE sync_peer_clocks;
