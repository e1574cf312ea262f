DROP INDEX sync_outbox_entry;
DROP TABLE sync_delivery_ranges;
DROP TABLE sync_delivery;
