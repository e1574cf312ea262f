//! PullChanges: anti-entropy. Read a peer's feed for one resource from the stored cursor
//! (leaving out this region's own changes), apply each page through the same validation and
//! apply steps as the ops route, and advance the cursor in the transaction that applied the
//! page — a cursor never moves past data that is not durably applied.
//!
//! A peer whose feed answers `409 cursor_diverged` (its database was replaced or restored) has
//! our cursor forgotten and flagged: the next pull bootstraps (ADR 0012). A cursor saved in an
//! earlier incarnation of this database is void (read as none).
//!
//! A peer that answers `410 cursor_expired` needs a bootstrap: the pull stops with that error
//! and never restarts from zero by itself. An entry that can never apply as it is (refused by
//! validation, or of this region's own origin) is quarantined in the transaction that applies
//! the rest of its page and moves the cursor; a page refused for clock drift stops the pull
//! without moving the cursor. A peer whose cursor does not move while it claims more is a peer bug:
//! the pull stops instead of looping.
//!
//! The peer's address and token come from the peer directory. A peer answering
//! `token_expired` gets one forced refresh from the broker and one retry of that page; a
//! second refusal ends the pull (never a loop).

use std::sync::Arc;

use serde_json::Value;
use ship::contracts::{HybridClock, PeerDirectory, Refresh, ResourceRegistry};
use ship::parents::Action;
use ship::DbPool;

use crate::data::{bootstraps, cursors, delivery, quarantine};
use crate::errors::SyncError;
use crate::tasks::apply_changes::{ApplyChangesTask, OpStatus};
use crate::tasks::fetch_changes::{entry_to_op, FetchChangesTask};
use crate::tasks::observe_peer::ObservePeerTask;
use crate::tasks::validate_ops::OpError;
use crate::tasks::validate_ops::{Origins, ValidateOpsTask};

pub struct PullChangesInput {
    pub peer: String,
    pub resource: String,
    /// Entries per page asked of the peer.
    pub page_limit: u32,
    /// Stop after this many pages (the rest waits for the next pull).
    pub max_pages: u32,
    /// Stop once this long has passed (after the page being applied); `None`: no time bound.
    pub run_for: Option<std::time::Duration>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PullSummary {
    pub pages: u32,
    pub applied: usize,
    pub stale: usize,
    pub duplicate: usize,
    /// Entries parked in `sync_quarantine` (they can never apply as they are).
    pub quarantined: usize,
    /// True when the peer had nothing more to give at the end.
    pub caught_up: bool,
}

pub struct PullChangesAction {
    pool: DbPool,
    registry: ResourceRegistry,
    clock: Arc<HybridClock>,
    region_id: String,
    client: reqwest::Client,
    directory: Arc<dyn PeerDirectory>,
    /// Peers whose last pull found them unreachable: the first page from one again ends the
    /// backoff of our streams to it (a peer that is back is served at once, issue 13.7). Only a
    /// comeback does: a peer that answers pulls but refuses pushes keeps its backoff.
    down: std::sync::Mutex<std::collections::HashSet<String>>,
    /// With no cursor valid in this database's incarnation, refuse (`BootstrapFirst`) instead
    /// of reading the feed from its start: the scheduler's pull with `sync.bootstrap = "auto"`
    /// then loads the peer's snapshot (rows that never were in its feed, and this region's own
    /// writes that its feed leaves out, included).
    bootstrap_first: bool,
}

impl PullChangesAction {
    pub fn new(
        pool: DbPool,
        registry: ResourceRegistry,
        clock: Arc<HybridClock>,
        region_id: impl Into<String>,
        client: reqwest::Client,
        directory: Arc<dyn PeerDirectory>,
    ) -> Self {
        Self {
            pool,
            registry,
            clock,
            region_id: region_id.into(),
            client,
            directory,
            down: Default::default(),
            bootstrap_first: false,
        }
    }

    /// Refuse to pull without a valid cursor (`SyncError::BootstrapFirst`).
    pub fn bootstrapping_first(mut self) -> Self {
        self.bootstrap_first = true;
        self
    }

    fn was_down(&self, peer: &str, now_down: Option<bool>) -> bool {
        let mut down = self
            .down
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match now_down {
            Some(true) => !down.insert(peer.to_string()),
            Some(false) => down.remove(peer),
            None => down.contains(peer),
        }
    }
}

impl Action for PullChangesAction {
    const NAME: &'static str = "sync.pull_changes";
    type Input = PullChangesInput;
    type Output = PullSummary;
    type Error = SyncError;

    #[tracing::instrument(name = "sync.pull_changes", skip_all, fields(peer = %input.peer, resource = %input.resource))]
    async fn run(&self, input: PullChangesInput) -> Result<PullSummary, SyncError> {
        let resource = super::synced(&self.registry, &input.resource)?;
        let (peer, name) = (input.peer.clone(), resource.name());
        // The cursor valid in this database's incarnation, and that incarnation: the cursors
        // this pull saves belong to it (void if the database gets a new one meanwhile).
        let (incarnation, mut since) = self
            .pool
            .run(move |conn| {
                let incarnation = ship::db::incarnation(conn)?.id;
                let since = cursors::get(conn, &peer, name, &incarnation)?;
                Ok::<_, SyncError>((incarnation, since))
            })
            .await?;
        if since.is_none() && self.bootstrap_first {
            return Err(SyncError::BootstrapFirst {
                peer: input.peer.clone(),
                resource: name.to_string(),
            });
        }
        let mut summary = PullSummary::default();
        // One refresh per page request: a long pull outlives several tokens.
        let mut refreshed = false;
        let mut forced = None;
        let started = std::time::Instant::now();
        let in_time = || input.run_for.is_none_or(|d| started.elapsed() < d);
        // The next page, fetched while this one is applied (acknowledging only what is applied).
        let mut ahead: Option<Ahead> = None;
        while summary.pages < input.max_pages && (summary.pages == 0 || in_time()) {
            let fetched = match ahead.take() {
                Some(ahead) => ahead.page().await,
                None => {
                    // The token just forced for the retry, else from the cache while fresh
                    // (renewed before it expires).
                    let grant = match forced.take() {
                        Some(grant) => grant,
                        None => self.directory.grant(&input.peer, Refresh::IfNeeded).await?,
                    };
                    FetchChangesTask::run(
                        &self.client,
                        &grant,
                        name,
                        (since.as_deref(), since.as_deref()),
                        input.page_limit,
                        &self.region_id,
                        &incarnation,
                    )
                    .await
                }
            };
            let page = match fetched {
                Err(SyncError::PeerAuthRefused { code, .. })
                    if code == "token_expired" && !refreshed =>
                {
                    tracing::info!(peer = %input.peer, "token expired: refreshing once");
                    refreshed = true;
                    forced = Some(self.directory.grant(&input.peer, Refresh::Force).await?);
                    continue;
                }
                Err(e @ SyncError::PeerCursorExpired { .. }) => {
                    // Never a restart from zero: flagged for a bootstrap (and an alert).
                    let (peer, res) = (input.peer.clone(), name);
                    self.pool
                        .run(move |conn| {
                            cursors::flag_bootstrap(conn, &peer, res).map_err(SyncError::from)
                        })
                        .await?;
                    return Err(e);
                }
                Err(e @ SyncError::PeerCursorDiverged { .. }) => {
                    // The peer's database was replaced or restored: our cursor means nothing
                    // in its feed now. Forgotten (the next pull bootstraps) and flagged.
                    let (peer, res) = (input.peer.clone(), name);
                    self.pool
                        .transaction(move |conn| {
                            cursors::forget(conn, &peer, res)?;
                            cursors::flag_bootstrap(conn, &peer, res)?;
                            Ok::<_, SyncError>(())
                        })
                        .await?;
                    return Err(e);
                }
                Err(e @ SyncError::PeerUnreachable { .. }) => {
                    // Its address may have changed at the broker: ask again next time.
                    self.directory.invalidate(&input.peer);
                    self.was_down(&input.peer, Some(true));
                    return Err(e);
                }
                other => other?,
            };
            refreshed = false;
            summary.pages += 1;
            if page.has_more && since.as_deref() == Some(page.next_cursor.as_str()) {
                return Err(SyncError::PeerRefused {
                    peer: input.peer.clone(),
                    status: 200,
                    message: "the peer's cursor did not advance although it has more".into(),
                });
            }
            let ours = resource.schema_version();
            let entry_versions_differ = page
                .changes
                .iter()
                .any(|c| c["schema_version"].as_u64() != Some(u64::from(ours)));
            if page.schema_version != ours || entry_versions_differ {
                return Err(SyncError::PeerRefused {
                    peer: input.peer.clone(),
                    status: 200,
                    message: format!(
                        "the peer serves `{name}` at schema version {} and this region is at {ours}; \
                         upgrade the older region first",
                        page.schema_version
                    ),
                });
            }
            if page.has_more && summary.pages < input.max_pages && in_time() {
                // Fetch the next page while this one is validated and applied: the peer's
                // answer and our work overlap. It acknowledges `since` (applied), not this page.
                let grant = self.directory.grant(&input.peer, Refresh::IfNeeded).await?;
                ahead = Some(Ahead::fetch(
                    self.client.clone(),
                    grant,
                    name,
                    (page.next_cursor.clone(), since.clone()),
                    input.page_limit,
                    (self.region_id.clone(), incarnation.clone()),
                ));
            }
            let ops: Vec<Value> = page.changes.iter().map(entry_to_op).collect();
            let origins = Origins::NotOurs(&self.region_id);
            let (valid, parked) = match ValidateOpsTask::run(
                resource.as_ref(),
                &self.clock,
                origins,
                &ops,
            ) {
                Ok(valid) => (valid, Vec::new()),
                // Our clock, not the entry, is the problem: stop and retry later.
                Err(errors) if errors.iter().any(|e| e.code == "clock_drift") => {
                    return Err(SyncError::PeerSentInvalid {
                        peer: input.peer.clone(),
                        errors,
                    })
                }
                // An entry that can never apply as it is: parked, the rest applies and the
                // cursor moves on (one bad entry no longer freezes the peer's feed).
                Err(errors) => {
                    let (rest, parked) = quarantine(&page.changes, &ops, &errors);
                    let valid =
                        ValidateOpsTask::run(resource.as_ref(), &self.clock, origins, &rest)
                            .map_err(|errors| SyncError::PeerSentInvalid {
                                peer: input.peer.clone(),
                                errors,
                            })?;
                    tracing::warn!(peer = %input.peer, resource = %name, parked = parked.len(), "entries of the peer's feed quarantined");
                    (valid, parked)
                }
            };
            summary.quarantined += parked.len();
            let newest = valid.iter().map(|op| op.change.version.hlc).max();
            let (peer, cursor, res, incarnation, theirs) = (
                input.peer.clone(),
                page.next_cursor.clone(),
                Arc::clone(&resource),
                incarnation.clone(),
                page.incarnation.clone().unwrap_or_default(),
            );
            let back = self.was_down(&input.peer, None);
            let statuses = self
                .pool
                .transaction(move |conn| {
                    ObservePeerTask::run(conn, &peer, &theirs)?;
                    let statuses = ApplyChangesTask::run(conn, res.as_ref(), &valid)?;
                    quarantine::add(conn, &peer, res.name(), &parked)?;
                    cursors::save(conn, &peer, res.name(), &cursor, &incarnation)?;
                    // The feed continues after a bootstrap: it is over (ADR 0011).
                    bootstraps::forget_finished(conn, &peer, res.name())?;
                    if back {
                        // The peer answers again: what waits out a backoff for it goes now.
                        delivery::peer_is_back(conn, &peer, ship::db::utc_now())?;
                    }
                    Ok::<_, SyncError>(statuses)
                })
                .await?;
            if back {
                self.was_down(&input.peer, Some(false));
            }
            if let Some(newest) = newest {
                // Checked against the drift bound by the validation above; only after commit.
                let _ = self.clock.observe(newest);
            }
            for status in statuses {
                match status {
                    OpStatus::Applied => summary.applied += 1,
                    OpStatus::Stale => summary.stale += 1,
                    OpStatus::Duplicate => summary.duplicate += 1,
                }
            }
            since = Some(page.next_cursor);
            if !page.has_more {
                summary.caught_up = true;
                break;
            }
        }
        if summary.caught_up {
            let (peer, res) = (input.peer.clone(), name);
            self.pool
                .run(move |conn| {
                    cursors::clear_bootstrap(conn, &peer, res).map_err(SyncError::from)
                })
                .await?;
        }
        tracing::info!(
            pages = summary.pages,
            applied = summary.applied,
            caught_up = summary.caught_up,
            "pulled"
        );
        Ok(summary)
    }
}

/// A feed entry as an op (the feed and ops formats share their fields; see docs/PROTOCOL.md).
/// Split a page whose validation failed: the ops that passed, and for each failing entry
/// (seq, entity id, the entry as served, every reason).
#[allow(clippy::type_complexity)]
fn quarantine(
    changes: &[Value],
    ops: &[Value],
    errors: &[OpError],
) -> (Vec<Value>, Vec<(i64, String, String, String)>) {
    let mut reasons: std::collections::BTreeMap<usize, Vec<String>> = Default::default();
    for e in errors {
        reasons.entry(e.index).or_default().push(format!(
            "{}{}: {}",
            e.code,
            e.field
                .as_deref()
                .map(|f| format!(" ({f})"))
                .unwrap_or_default(),
            e.message
        ));
    }
    let rest = ops
        .iter()
        .enumerate()
        .filter(|(i, _)| !reasons.contains_key(i))
        .map(|(_, op)| op.clone())
        .collect();
    let parked = reasons
        .into_iter()
        .filter_map(|(i, why)| {
            let change = changes.get(i)?;
            let entity: String = change["entity_id"]
                .as_str()
                .unwrap_or_default()
                .chars()
                .take(64)
                .collect();
            Some((
                change["seq"].as_i64().unwrap_or(-1),
                entity,
                change.to_string(),
                why.join("; "),
            ))
        })
        .collect();
    (rest, parked)
}

/// A page fetched ahead in its own task; aborted if dropped before it is awaited (the pull
/// stopped on an error, or its time is up).
struct Ahead(
    tokio::task::JoinHandle<Result<crate::tasks::fetch_changes::FetchedPage, SyncError>>,
    String,
);

impl Ahead {
    fn fetch(
        client: reqwest::Client,
        grant: ship::contracts::PeerGrant,
        resource: &'static str,
        (since, ack): (String, Option<String>),
        limit: u32,
        (region, incarnation): (String, String),
    ) -> Ahead {
        let peer = grant.id.clone();
        Ahead(
            tokio::spawn(async move {
                FetchChangesTask::run(
                    &client,
                    &grant,
                    resource,
                    (Some(&since), ack.as_deref()),
                    limit,
                    &region,
                    &incarnation,
                )
                .await
            }),
            peer,
        )
    }

    async fn page(mut self) -> Result<crate::tasks::fetch_changes::FetchedPage, SyncError> {
        let peer = std::mem::take(&mut self.1);
        match (&mut self.0).await {
            Ok(result) => result,
            Err(e) => Err(SyncError::PeerUnreachable {
                peer,
                reason: format!("the page fetched ahead did not finish: {e}"),
            }),
        }
    }
}

impl Drop for Ahead {
    fn drop(&mut self) {
        self.0.abort();
    }
}
