-- Anomaly alerts (SendAnomalyAlertJob): one row per firing of a (kind, subject) condition,
-- resolved when the condition clears. At most one open row per (kind, subject).
CREATE TABLE sync_alerts (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    kind VARCHAR(32) NOT NULL,
    -- The peer the condition is about, or '' for the region as a whole.
    subject VARCHAR(128) NOT NULL,
    -- firing | resolved
    state VARCHAR(16) NOT NULL,
    message TEXT NOT NULL,
    value BIGINT NOT NULL,
    fired_at DATETIME(6) NOT NULL,
    resolved_at DATETIME(6) NULL,
    -- The last notification sent (firing, reminder or resolved); NULL: not sent yet.
    notified_at DATETIME(6) NULL,
    -- The state the webhook was last told.
    notified_state VARCHAR(16) NULL,
    KEY sync_alerts_open (kind, subject, state)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;
