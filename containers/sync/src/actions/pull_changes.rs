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
use crate::tasks::validate_ops::{Origins, ValidOp, ValidateOpsTask};

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
    /// Ops kept until a row they name arrives (ADR 0015).
    pub parked: usize,
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
    /// A page's transaction runs beside the one before (MariaDB: two transactions use both
    /// of the server's cores, as the push's two dispatch workers do; SQLite has one writer).
    pipelined: bool,
    /// Pulled upserts go to the changelog as batch rows (`sync.batch_rows`, ADR 0026).
    batch_rows: bool,
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
            pipelined: pool.backend() != ship::db::Backend::Sqlite,
            pool,
            registry,
            clock,
            region_id: region_id.into(),
            client,
            directory,
            down: Default::default(),
            bootstrap_first: false,
            batch_rows: true,
        }
    }

    /// Whether pulled upserts go to the changelog as batch rows (on unless turned off:
    /// `sync.batch_rows`).
    pub fn with_batch_rows(mut self, on: bool) -> Self {
        self.batch_rows = on;
        self
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
        // The transaction of the page before, still running (pipelined pulls only).
        let mut inflight: Option<InFlight> = None;
        // The cursor saved last: what the next fetch acknowledges.
        let mut acked = since.clone();
        // The peer's incarnation as the first page of this run showed it.
        let mut observed: Option<String> = None;
        // Whose cursor the pages' transactions move.
        let at = Pulling {
            peer: &input.peer,
            resource: name,
            incarnation: &incarnation,
        };
        // Every way out of the pages below waits for the transaction still running first: it
        // must not commit after what the caller does next (forget the cursor, bootstrap).
        let outcome: Result<(), SyncError> = async {
        while summary.pages < input.max_pages && (summary.pages == 0 || in_time()) {
            // A page fetched ahead comes validated too (that work overlapped our transaction).
            let mut checked = None;
            let fetched = match ahead.take() {
                Some(ahead) => {
                    let (fetched, check) = ahead.page().await;
                    checked = check;
                    fetched
                }
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
                        (since.as_deref(), acked.as_deref()),
                        input.page_limit,
                        &self.region_id,
                        (&incarnation, self.registry.policy(name)),
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
                    quiesce(&mut inflight).await;
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
                    quiesce(&mut inflight).await;
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
            crate::counters::received(&input.peer, name, &page.changes);
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
            // Fetched ahead only once a cursor is saved: a request names what it acknowledges,
            // and a peer takes none named as the position read (never applied yet).
            if page.has_more && summary.pages < input.max_pages && in_time() && acked.is_some() {
                // Fetch the next page while this one is validated and applied: the peer's
                // answer and our work overlap. It acknowledges the cursor saved last, not this page.
                let grant = self.directory.grant(&input.peer, Refresh::IfNeeded).await?;
                ahead = Some(Ahead::fetch(
                    self.client.clone(),
                    grant,
                    (Arc::clone(&resource), Arc::clone(&self.clock)),
                    (page.next_cursor.clone(), acked.clone()),
                    input.page_limit,
                    (self.region_id.clone(), incarnation.clone()),
                    self.registry.policy(name),
                ));
            }
            let checked = match checked {
                Some(checked) => checked,
                None => check(
                    resource.as_ref(),
                    &self.clock,
                    &self.region_id,
                    &page.changes,
                ),
            };
            let (mut valid, parked) = checked.map_err(|errors| SyncError::PeerSentInvalid {
                peer: input.peer.clone(),
                errors,
            })?;
            if !parked.is_empty() {
                tracing::warn!(peer = %input.peer, resource = %name, parked = parked.len(), "entries of the peer's feed quarantined");
            }
            summary.quarantined += parked.len();
            let theirs = page.incarnation.clone().unwrap_or_default();
            // The page still running may be the one that ends the backoff already.
            let back = self.was_down(&input.peer, None)
                && !inflight.as_ref().is_some_and(|f| f.back);
            // Pipelined (MariaDB): this page's transaction runs beside the one before, which
            // it follows in the cursor (`cursors::advance`). A page that parks entries, ends a
            // backoff, or shows the peer's incarnation for the first time in this run goes
            // alone, after the one before has settled (those writes are not idempotent).
            let beside = self.pipelined
                && inflight.is_some()
                && parked.is_empty()
                && !back
                && observed.as_deref() == Some(theirs.as_str());
            if !beside {
                if let Some(before) = inflight.take() {
                    self.settle(before, &mut summary, &mut acked, &at)
                    .await?;
                }
            }
            let after = inflight.as_ref().map(|f| f.cursor.clone());
            let observe = after.is_none();
            if observe {
                observed = Some(theirs.clone());
            }
            let (peer, cursor, res, local) = (
                input.peer.clone(),
                page.next_cursor.clone(),
                Arc::clone(&resource),
                incarnation.clone(),
            );
            let newest = valid.iter().map(|op| op.change.version.hlc).max();
            let pool = self.pool.clone();
            let registry = self.registry.clone();
            let region = self.batch_rows.then(|| self.region_id.clone());
            let this = InFlight {
                cursor: page.next_cursor.clone(),
                after: after.clone(),
                newest,
                back,
                task: tokio::spawn(async move {
                    pool.transaction(move |conn| {
                        if observe {
                            ObservePeerTask::run(conn, &peer, &theirs)?;
                        }
                        let statuses = ApplyChangesTask::run(
                            conn,
                            &registry,
                            res.as_ref(),
                            &mut valid,
                            region.as_deref(),
                        )?;
                        quarantine::add(conn, &peer, res.name(), &parked)?;
                        let saved = match &after {
                            None => {
                                cursors::save(conn, &peer, res.name(), &cursor, &local)?;
                                true
                            }
                            Some(before) => cursors::advance(
                                conn,
                                &peer,
                                res.name(),
                                (before, &cursor),
                                &local,
                            )?,
                        };
                        // The feed continues after a bootstrap: it is over (ADR 0011).
                        bootstraps::forget_finished(conn, &peer, res.name())?;
                        if back {
                            // The peer answers again: what waits out a backoff for it goes now.
                            delivery::peer_is_back(conn, &peer, ship::db::utc_now())?;
                        }
                        Ok::<_, SyncError>((statuses, saved))
                    })
                    .await
                }),
            };
            // At most two transactions at once: the one before settles now.
            if let Some(before) = inflight.replace(this) {
                if let Err(e) = self
                    .settle(before, &mut summary, &mut acked, &at)
                    .await
                {
                    if let Some(this) = inflight.take() {
                        // Its cursor cannot have moved past the failed page: it waits for
                        // nothing but its own commit; its rows come again (idempotent).
                        let _ = this.task.await;
                    }
                    return Err(e);
                }
            }
            // SQLite has one writer; and before a first cursor is saved, nothing may run ahead.
            if !self.pipelined || acked.is_none() {
                if let Some(this) = inflight.take() {
                    self.settle(this, &mut summary, &mut acked, &at)
                    .await?;
                }
            }
            since = Some(page.next_cursor);
            if !page.has_more {
                summary.caught_up = true;
                break;
            }
        }
        if let Some(last) = inflight.take() {
            self.settle(last, &mut summary, &mut acked, &at)
            .await?;
        }
        Ok(())
        }
        .await;
        if let Err(e) = outcome {
            quiesce(&mut inflight).await;
            return Err(e);
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

/// Wait for the page transaction still running, if any, whatever its outcome (the pull is
/// ending on an error; the page's rows come again with the next pull if it failed).
async fn quiesce(inflight: &mut Option<InFlight>) {
    if let Some(page) = inflight.take() {
        let _ = page.task.await;
    }
}

/// The cursor a pull moves: `peer`'s feed of `resource`, in this database's `incarnation`.
struct Pulling<'a> {
    peer: &'a str,
    resource: &'static str,
    incarnation: &'a str,
}

/// A page's transaction, running in its own task.
struct InFlight {
    /// The cursor after the page.
    cursor: String,
    /// The cursor of the page before, when it was still running as this one started (the
    /// cursor moves over it only: `cursors::advance`).
    after: Option<String>,
    newest: Option<ship::contracts::Hlc>,
    back: bool,
    task: tokio::task::JoinHandle<Result<(Vec<OpStatus>, bool), SyncError>>,
}

impl PullChangesAction {
    /// Wait for a page's transaction; count what it did; make sure the cursor moved over it
    /// (a page that committed before the one ahead of it had, moves it now: pages settle in
    /// order, so the one before is saved by then).
    async fn settle(
        &self,
        page: InFlight,
        summary: &mut PullSummary,
        acked: &mut Option<String>,
        at: &Pulling<'_>,
    ) -> Result<(), SyncError> {
        let (peer, resource, incarnation) = (at.peer, at.resource, at.incarnation);
        let (statuses, saved) = page.task.await.map_err(|e| {
            SyncError::Db(ship::DbError::Blocking(format!(
                "a page's transaction did not finish: {e}"
            )))
        })??;
        if let (false, Some(before)) = (saved, page.after.clone()) {
            let (who, cursor, local) = (
                peer.to_string(),
                page.cursor.clone(),
                incarnation.to_string(),
            );
            let moved = self
                .pool
                .transaction(move |conn| {
                    cursors::advance(conn, &who, resource, (&before, &cursor), &local)
                        .map_err(SyncError::from)
                })
                .await?;
            if !moved {
                return Err(SyncError::PeerRefused {
                    peer: peer.to_string(),
                    status: 200,
                    message: "the pull cursor moved under a pipelined page (another pull of this peer at the same time?)".into(),
                });
            }
        }
        *acked = Some(page.cursor);
        if page.back {
            self.was_down(peer, Some(false));
        }
        if let Some(newest) = page.newest {
            // Checked against the drift bound by the validation; only after commit.
            let _ = self.clock.observe(newest);
        }
        crate::counters::ops(peer, resource, &statuses);
        for status in statuses {
            match status {
                OpStatus::Applied => summary.applied += 1,
                OpStatus::Stale => summary.stale += 1,
                OpStatus::Duplicate => summary.duplicate += 1,
                OpStatus::Parked => summary.parked += 1,
            }
        }
        Ok(())
    }
}

/// A page's entries validated: the ops to apply, and the entries to park (seq, entity id, the
/// entry as served, every reason); or the errors that stop the pull (our clock is behind: not
/// the entries' fault, retried later).
type Checked = Result<(Vec<ValidOp>, Vec<Parked>), Vec<OpError>>;

/// An entry parked in the quarantine: (seq, entity id, the entry as served, every reason).
type Parked = crate::data::quarantine::NewEntry;

/// Validate a page's entries as ops. An entry that can never apply as it is is parked, the rest
/// applies and the cursor moves on (one bad entry no longer freezes the peer's feed).
fn check(
    resource: &dyn ship::contracts::SyncResource,
    clock: &HybridClock,
    region: &str,
    changes: &[Value],
) -> Checked {
    let origins = Origins::NotOurs(region);
    let ops = || changes.iter().map(entry_to_op).collect::<Vec<Value>>();
    match ValidateOpsTask::run_owned(resource, clock, origins, ops()) {
        Ok(valid) => Ok((valid, Vec::new())),
        Err(errors) if errors.iter().any(|e| e.code == "clock_drift") => Err(errors),
        Err(errors) => {
            // The rare page with an entry that can never apply: its ops made again to split.
            let (rest, parked) = quarantine(changes, &ops(), &errors);
            let valid = ValidateOpsTask::run(resource, clock, origins, &rest)?;
            Ok((valid, parked))
        }
    }
}

/// Split a page whose validation failed: the ops that passed, and for each failing entry
/// (seq, entity id, the entry as served, every reason).
fn quarantine(changes: &[Value], ops: &[Value], errors: &[OpError]) -> (Vec<Value>, Vec<Parked>) {
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

type Fetched = Result<crate::tasks::fetch_changes::FetchedPage, SyncError>;

/// A page fetched ahead in its own task, and validated there once it arrived (both overlap
/// the transaction of the page before); aborted if dropped before it is awaited (the pull
/// stopped on an error, or its time is up).
struct Ahead(tokio::task::JoinHandle<(Fetched, Option<Checked>)>, String);

impl Ahead {
    fn fetch(
        client: reqwest::Client,
        grant: ship::contracts::PeerGrant,
        (resource, clock): (Arc<dyn ship::contracts::SyncResource>, Arc<HybridClock>),
        (since, ack): (String, Option<String>),
        limit: u32,
        (region, incarnation): (String, String),
        policy: ship::contracts::ConflictPolicy,
    ) -> Ahead {
        let peer = grant.id.clone();
        Ahead(
            tokio::spawn(async move {
                let fetched = FetchChangesTask::run(
                    &client,
                    &grant,
                    resource.name(),
                    (Some(&since), ack.as_deref()),
                    limit,
                    &region,
                    (&incarnation, policy),
                )
                .await;
                let checked = fetched
                    .as_ref()
                    .ok()
                    .map(|page| check(resource.as_ref(), &clock, &region, &page.changes));
                (fetched, checked)
            }),
            peer,
        )
    }

    async fn page(mut self) -> (Fetched, Option<Checked>) {
        let peer = std::mem::take(&mut self.1);
        match (&mut self.0).await {
            Ok(done) => done,
            Err(e) => (
                Err(SyncError::PeerUnreachable {
                    peer,
                    reason: format!("the page fetched ahead did not finish: {e}"),
                }),
                None,
            ),
        }
    }
}

impl Drop for Ahead {
    fn drop(&mut self) {
        self.0.abort();
    }
}
