-- Delivery streams (ADR 0009): a local write appends its changelog entry only; what each push
-- peer has been sent is one row per (peer, resource), not one outbox row per change.
-- Every entry of this region's origin with seq <= delivered_through is delivered to the peer
-- (or a dead letter in sync_outbox); ranges (delivered_through, claimed_through] are cut into
-- sync_delivery_ranges, each leased to one dispatcher at a time.
CREATE TABLE sync_delivery (
    peer VARCHAR(32) NOT NULL,
    resource VARCHAR(64) NOT NULL,
    delivered_through BIGINT NOT NULL,
    claimed_through BIGINT NOT NULL,
    -- Consecutive failed rounds: the stream's backoff (no range is sent before next_attempt_at).
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP NOT NULL,
    last_error TEXT,
    last_delivered_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (peer, resource)
);

-- A slice of a stream being sent: leased to one dispatcher, or given back after a failure
-- (lease_owner NULL) to be claimed again when the stream is due. Deleted once delivered.
CREATE TABLE sync_delivery_ranges (
    id INTEGER PRIMARY KEY,
    peer VARCHAR(32) NOT NULL,
    resource VARCHAR(64) NOT NULL,
    first_seq BIGINT NOT NULL,
    last_seq BIGINT NOT NULL,
    -- Failed attempts of these entries; at max_attempts they become dead letters.
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_owner VARCHAR(64),
    lease_until TIMESTAMP,
    last_error TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX sync_delivery_ranges_stream ON sync_delivery_ranges (peer, resource, first_seq);

-- sync_outbox now holds single entries only: dead letters (and the ones an operator retries),
-- plus rows written before this migration. A range leaves out the seqs that have a row here.
CREATE INDEX sync_outbox_entry ON sync_outbox (peer, resource, seq);
