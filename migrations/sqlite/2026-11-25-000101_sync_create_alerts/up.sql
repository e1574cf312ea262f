-- Anomaly alerts (SendAnomalyAlertJob): one row per firing of a (kind, subject) condition,
-- resolved when the condition clears. At most one open row per (kind, subject).
CREATE TABLE sync_alerts (
    id INTEGER PRIMARY KEY,
    kind VARCHAR(32) NOT NULL,
    -- The peer the condition is about, or '' for the region as a whole.
    subject VARCHAR(128) NOT NULL,
    -- firing | resolved
    state VARCHAR(16) NOT NULL,
    message TEXT NOT NULL,
    value BIGINT NOT NULL,
    fired_at TIMESTAMP NOT NULL,
    resolved_at TIMESTAMP,
    -- The last notification sent (firing, reminder or resolved); NULL: not sent yet.
    notified_at TIMESTAMP,
    -- The state the webhook was last told.
    notified_state VARCHAR(16)
);
CREATE INDEX sync_alerts_open ON sync_alerts (kind, subject, state);
