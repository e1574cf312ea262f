DROP TABLE sync_feed_acks;
