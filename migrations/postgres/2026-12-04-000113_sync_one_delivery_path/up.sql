-- One delivery path (ADR 0014): the delivery streams send everything, retried dead letters
-- included; sync_outbox is each stream's dead-letter list (dead, retried and waiting, retried
-- and delivered) and is never claimed or leased row by row any more.
--
-- A pending row no range covers (retried before this migration, or written before the
-- streams) becomes a range of its own, so a stream sends it; its attempts and error carry over.
INSERT INTO sync_delivery_ranges
    (peer, resource, first_seq, last_seq, attempts, lease_owner, lease_until, last_error, created_at, updated_at)
SELECT o.peer, o.resource, o.seq, o.seq, o.attempts, NULL, NULL, o.last_error, o.created_at, o.updated_at
FROM sync_outbox o
WHERE o.status = 'pending'
  AND NOT EXISTS (
    SELECT 1 FROM sync_delivery_ranges r
    WHERE r.peer = o.peer AND r.resource = o.resource AND o.seq BETWEEN r.first_seq AND r.last_seq
  );

-- The per-entry claim's index and lease.
DROP INDEX sync_outbox_due;
ALTER TABLE sync_outbox
    DROP COLUMN lease_owner,
    DROP COLUMN lease_until;
