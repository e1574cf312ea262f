//! `[sync]`: the peers this region delivers to, limits of the changes feed and of ops batches,
//! and the clock drift bound.

use serde::{Deserialize, Serialize};
use ship::config::{check_region_id, key, ConfigProblem, Validate};

/// A peer region this region replicates with. Where it is reached and the token for calling
/// it come from the broker (`ship::contracts::PeerDirectory`), never from configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    pub id: String,
    /// Push this region's writes to the peer (a delivery stream per resource). Default true.
    #[serde(default = "yes")]
    pub push: bool,
    /// Pull the peer's feed. Default true.
    #[serde(default = "yes")]
    pub pull: bool,
}

fn yes() -> bool {
    true
}

impl PeerConfig {
    /// A peer pushed to and pulled from.
    pub fn both(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            push: true,
            pull: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyncConfig {
    /// The regions this region replicates with: every local change gets one outbox entry per
    /// peer, and `sync pull` reads these peers (every region the broker lists when empty).
    pub peers: Vec<PeerConfig>,
    /// Entries per `GET /changes` page when the caller names no `limit`.
    pub changes_default_limit: u32,
    /// The largest `limit` a caller may ask for.
    pub changes_max_limit: u32,
    /// The most ops one `POST /ops` batch may carry (more → 413 `batch_too_large`).
    pub max_ops_per_batch: u32,
    /// The largest `POST /ops` body in bytes (more → 413 `batch_too_large`).
    pub max_batch_bytes: usize,
    /// Store an applied batch's upserts of another region as batch rows of the changelog (ADR
    /// 0026). Off while a process of a version before them may still read this database's
    /// changelog (a rolling upgrade): such a process would serve a batch row as one entry.
    pub batch_rows: bool,
    /// How far (ms) a remote clock may run ahead of ours before its ops are refused.
    pub max_clock_drift_ms: u64,
    /// How often the scheduler pulls every peer's feed (anti-entropy), in seconds.
    pub pull_interval_secs: u64,
    /// Entries per page the scheduled pull asks for.
    pub pull_page_limit: u32,
    /// How long one scheduled pull of a peer's resource goes on while the peer has more, in
    /// seconds (the rest waits for the next run, `pull_interval_secs` later).
    pub pull_run_secs: u64,
    /// How often the scheduler pushes the outbox, in seconds.
    pub dispatch_interval_secs: u64,
    /// Outbox entries claimed per dispatch pass.
    pub dispatch_claim_limit: u32,
    /// Dispatch passes a scheduler runs at once (1–16): while one waits for a peer's answer,
    /// another claims and sends the next entries.
    pub dispatch_workers: u32,
    /// Under a stream of local writes, each dispatch worker starts a pass at most every this
    /// many ms, so the writes of that time leave in one batch; a write after a quiet spell
    /// goes at once. 0: a pass per wake-up (lowest lag, most requests).
    pub dispatch_linger_ms: u64,
    /// Ops per pushed batch (a peer answering 413 gets halves).
    pub push_batch_ops: u32,
    /// Bytes of ops per pushed batch.
    pub push_batch_bytes: usize,
    /// How each resource decides conflicts (`[sync.conflict_policy]`, `customers =
    /// "delete_wins"`); a resource not named uses `lww`. Must be the same in every region: a
    /// peer with another policy for a resource is refused (PROTOCOL.md, "Conflict policy").
    pub conflict_policy: std::collections::BTreeMap<String, ship::contracts::ConflictPolicy>,
    /// gzip on the wire between regions: the push sends its ops bodies gzipped
    /// (`Content-Encoding: gzip`) and the pull asks for gzipped pages (`Accept-Encoding`);
    /// every region answers gzip to a reader that asks for it, whatever this says.
    pub compression: bool,
    /// Failed deliveries before an entry is dead (dead letters wait for `outbox retry`).
    pub max_attempts: u32,
    /// First retry delay in milliseconds; doubles per attempt, with jitter.
    pub retry_base_ms: u64,
    /// The longest retry delay, in seconds.
    pub retry_max_secs: u64,
    /// How long a dispatcher owns the entries it claimed (another may take them after).
    pub dispatch_lease_secs: u64,
    /// How long one push or pull request to a peer may take before it counts as failed.
    pub peer_timeout_secs: u64,
    /// Delivered outbox entries are deleted after this many hours.
    pub outbox_retention_hours: u64,
    /// Changelog entries older than this many hours are deleted once no peer is owed them
    /// (a peer pulling from before that gets 410 and needs a bootstrap).
    pub changelog_retention_hours: u64,
    /// Deleted rows (tombstones) are purged after this many days, when no peer is still owed
    /// a change of them; it must outlast the longest partition between regions.
    pub tombstone_retention_days: u64,
    /// Recorded conflicts (`sync_conflicts`, `regionsync conflicts list`) and their
    /// resolutions are deleted after this many days; 0: kept for ever.
    pub conflict_retention_days: u64,
    /// The longest (hours) a feed reader's acknowledgment holds changelog entries back (ADR
    /// 0016): older entries it has not read are pruned anyway, and it needs a bootstrap
    /// (`history_loss_risk` warns before). 0: held for ever (ADR 0008). What a push peer is
    /// owed is never capped.
    pub feed_hold_max_hours: u64,
    /// A scheduled pull with no cursor into a peer's feed (valid in this database's
    /// incarnation), or answered `410 cursor_expired` / `409 cursor_diverged`: `auto` bootstraps
    /// from that peer's snapshot by itself — the same refusal right after a finished bootstrap
    /// is a loop, alerted and not retried until `regionsync sync bootstrap`; `manual` only flags
    /// it (`bootstrap_needed`).
    pub bootstrap: BootstrapMode,
    /// When the scheduler verifies every pull peer, daily, as `HH:MM` UTC (`sync.verify`; ""
    /// turns it off): a `divergence` alert fires while the last verify found rows that differ.
    /// A time of day rather than an interval, so a (re)started scheduler does not verify at once
    /// — a region just started is still catching up, and would raise a false alert.
    pub verify_at: String,
}

/// `sync.bootstrap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BootstrapMode {
    #[default]
    Auto,
    Manual,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            peers: Vec::new(),
            changes_default_limit: 500,
            changes_max_limit: 5_000,
            max_ops_per_batch: 1_000,
            max_batch_bytes: 4 * 1024 * 1024,
            batch_rows: true,
            max_clock_drift_ms: 5_000,
            pull_interval_secs: 10,
            pull_page_limit: 500,
            pull_run_secs: 60,
            dispatch_interval_secs: 1,
            dispatch_claim_limit: 1_000,
            dispatch_workers: 2,
            dispatch_linger_ms: 25,
            push_batch_ops: 500,
            push_batch_bytes: 1024 * 1024,
            conflict_policy: Default::default(),
            compression: true,
            max_attempts: 30,
            retry_base_ms: 1_000,
            retry_max_secs: 300,
            dispatch_lease_secs: 60,
            peer_timeout_secs: 30,
            outbox_retention_hours: 24,
            changelog_retention_hours: 24 * 7,
            tombstone_retention_days: 30,
            conflict_retention_days: 90,
            feed_hold_max_hours: 0,
            bootstrap: BootstrapMode::Auto,
            verify_at: "03:30".into(),
        }
    }
}

impl SyncConfig {
    /// The peers this region pushes its writes to (`push = true`; none when `[[sync.peers]]`
    /// is empty).
    pub fn push_peer_ids(&self) -> Vec<String> {
        self.peers
            .iter()
            .filter(|p| p.push)
            .map(|p| p.id.clone())
            .collect()
    }

    /// The peers the pull reads: the `pull = true` entries, or `None` when `[[sync.peers]]` is
    /// empty — then every region the broker lists.
    pub fn pull_peer_ids(&self) -> Option<Vec<String>> {
        (!self.peers.is_empty()).then(|| {
            self.peers
                .iter()
                .filter(|p| p.pull)
                .map(|p| p.id.clone())
                .collect()
        })
    }
}

impl Validate for SyncConfig {
    fn validate(&self, prefix: &str, problems: &mut Vec<ConfigProblem>) {
        if !self.verify_at.is_empty()
            && chrono::NaiveTime::parse_from_str(&self.verify_at, "%H:%M").is_err()
        {
            problems.push(ConfigProblem::new(
                key(prefix, "verify_at"),
                "must be a time of day as HH:MM (UTC), or \"\" for never",
            ));
        }
        for (i, peer) in self.peers.iter().enumerate() {
            let at = key(prefix, &format!("peers[{i}]"));
            if let Err(message) = check_region_id(&peer.id) {
                problems.push(ConfigProblem::new(format!("{at}.id"), message));
            }
            if self.peers.iter().filter(|p| p.id == peer.id).count() > 1 {
                problems.push(ConfigProblem::new(
                    format!("{at}.id"),
                    format!("peer `{}` is listed twice", peer.id),
                ));
            }
        }
        if self.changes_default_limit == 0 || self.changes_default_limit > self.changes_max_limit {
            problems.push(ConfigProblem::new(
                key(prefix, "changes_default_limit"),
                format!(
                    "must be between 1 and changes_max_limit ({})",
                    self.changes_max_limit
                ),
            ));
        }
        if self.max_ops_per_batch == 0 {
            problems.push(ConfigProblem::new(
                key(prefix, "max_ops_per_batch"),
                "must be at least 1",
            ));
        }
        if self.max_batch_bytes < 1024 {
            problems.push(ConfigProblem::new(
                key(prefix, "max_batch_bytes"),
                "must be at least 1024",
            ));
        }
        if self.feed_hold_max_hours != 0
            && self.feed_hold_max_hours <= self.changelog_retention_hours
        {
            problems.push(ConfigProblem::new(
                key(prefix, "feed_hold_max_hours"),
                format!(
                    "must be 0 (hold for ever) or more than changelog_retention_hours ({}): a \
                     smaller cap does nothing, entries that young are kept anyway",
                    self.changelog_retention_hours
                ),
            ));
        }
        if self.pull_interval_secs == 0 {
            problems.push(ConfigProblem::new(
                key(prefix, "pull_interval_secs"),
                "must be at least 1",
            ));
        }
        for (name, value) in [
            ("dispatch_interval_secs", self.dispatch_interval_secs),
            ("dispatch_claim_limit", u64::from(self.dispatch_claim_limit)),
            ("push_batch_ops", u64::from(self.push_batch_ops)),
            ("max_attempts", u64::from(self.max_attempts)),
            ("retry_base_ms", self.retry_base_ms),
            ("retry_max_secs", self.retry_max_secs),
            ("dispatch_lease_secs", self.dispatch_lease_secs),
            ("peer_timeout_secs", self.peer_timeout_secs),
        ] {
            if value == 0 {
                problems.push(ConfigProblem::new(key(prefix, name), "must be at least 1"));
            }
        }
        if self.dispatch_linger_ms > 1_000 {
            problems.push(ConfigProblem::new(
                key(prefix, "dispatch_linger_ms"),
                "must be at most 1000",
            ));
        }
        if !(1..=16).contains(&self.dispatch_workers) {
            problems.push(ConfigProblem::new(
                key(prefix, "dispatch_workers"),
                "must be between 1 and 16",
            ));
        }
        if self.push_batch_bytes < 1024 {
            problems.push(ConfigProblem::new(
                key(prefix, "push_batch_bytes"),
                "must be at least 1024",
            ));
        }
        if self.pull_run_secs == 0 || self.pull_run_secs > 3600 {
            problems.push(ConfigProblem::new(
                key(prefix, "pull_run_secs"),
                "must be between 1 and 3600",
            ));
        }
        if self.pull_page_limit == 0 {
            problems.push(ConfigProblem::new(
                key(prefix, "pull_page_limit"),
                "must be at least 1",
            ));
        }
        if self.max_clock_drift_ms == 0 {
            problems.push(ConfigProblem::new(
                key(prefix, "max_clock_drift_ms"),
                "must be at least 1",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `sync.verify_at` is a time of day (or "" for never); anything else is named.
    #[test]
    fn verify_at_is_a_time_of_day_or_nothing() {
        for (at, ok) in [
            ("03:30", true),
            ("", true),
            ("23:59", true),
            ("25:00", false),
            ("daily", false),
        ] {
            let mut problems = Vec::new();
            SyncConfig {
                verify_at: at.into(),
                ..SyncConfig::default()
            }
            .validate("sync", &mut problems);
            assert_eq!(problems.is_empty(), ok, "{at}: {problems:?}");
            assert!(ok || problems[0].key == "sync.verify_at", "{problems:?}");
        }
    }

    /// Review: a feed hold cap at or below the changelog retention would do nothing (entries
    /// that young are kept anyway): refused, naming the key.
    #[test]
    fn a_feed_hold_cap_must_exceed_the_changelog_retention() {
        for (cap, ok) in [(0, true), (169, true), (168, false), (24, false)] {
            let mut problems = Vec::new();
            SyncConfig {
                feed_hold_max_hours: cap,
                ..SyncConfig::default()
            }
            .validate("sync", &mut problems);
            assert_eq!(problems.is_empty(), ok, "{cap}: {problems:?}");
            assert!(
                ok || problems[0].key == "sync.feed_hold_max_hours",
                "{problems:?}"
            );
        }
    }

    /// Issue 13: push and pull are explicit per peer; an empty list pushes to none and pulls
    /// every region the broker lists.
    #[test]
    fn push_and_pull_are_chosen_per_peer() {
        let config: SyncConfig = serde_json::from_value(serde_json::json!({"peers": [
            {"id": "both"}, {"id": "pull-only", "push": false}, {"id": "push-only", "pull": false}
        ]}))
        .unwrap();
        assert_eq!(config.push_peer_ids(), ["both", "push-only"]);
        assert_eq!(
            config.pull_peer_ids(),
            Some(vec!["both".to_string(), "pull-only".to_string()])
        );
        let none = SyncConfig::default();
        assert_eq!(
            (none.push_peer_ids(), none.pull_peer_ids()),
            (Vec::<String>::new(), None)
        );
        let push_only: SyncConfig =
            serde_json::from_value(serde_json::json!({"peers": [{"id": "a", "pull": false}]}))
                .unwrap();
        assert_eq!(
            push_only.pull_peer_ids(),
            Some(vec![]),
            "pulls nobody, not every region"
        );
    }

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        let mut problems = Vec::new();
        SyncConfig::default().validate("sync", &mut problems);
        assert!(problems.is_empty(), "{problems:?}");

        SyncConfig {
            peers: vec![PeerConfig::both("Bad Id")],
            changes_default_limit: 10_000,
            max_ops_per_batch: 0,
            ..SyncConfig::default()
        }
        .validate("sync", &mut problems);
        let keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "sync.peers[0].id",
                "sync.changes_default_limit",
                "sync.max_ops_per_batch"
            ]
        );
    }
}
