//! PurgeTombstones: one page of a resource's old tombstones, purged inside the caller's
//! transaction — those no peer is still owed and no row of another resource names.
//!
//! The page is read **locked** (`SyncResource::tombstones_before`), and what names its rows is
//! read after the lock (ADR 0015). An applier that names a tombstone locks it too (the apply's
//! `park_missing`), so the two are serialized either way round: the prune that waited for an
//! applier reads the row the applier committed and keeps the tombstone; the applier that
//! waited for a prune finds the row gone and parks its op. Without the locks, an order applied
//! against a tombstone while prune ran could lose its customer for good.

use std::collections::HashSet;

use ship::contracts::{ResourceRegistry, SyncResource};
use ship::parents::Task;

use crate::data::prune;
use crate::errors::SyncError;

/// Tombstones read (and locked) per page.
pub(crate) const PURGE_PAGE: i64 = 1_000;

pub(crate) struct PurgeTombstonesTask;

impl Task for PurgeTombstonesTask {
    const NAME: &'static str = "sync.purge_tombstones";
}

/// What one page did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PurgedPage {
    /// A reader of the feed lost history: no tombstone of the resource is purged until it
    /// bootstraps or is forgotten.
    Held,
    /// No tombstone after the cursor: the resource is done.
    Done,
    /// `purged` of the page went; the next page starts after `last`.
    Page { purged: usize, last: String },
}

impl PurgeTombstonesTask {
    /// The page of `resource`'s tombstones deleted before `before` with ids above `after`:
    /// at most `room` of them are purged.
    pub(crate) fn run(
        conn: &mut ship::AnyConnection,
        registry: &ResourceRegistry,
        resource: &dyn SyncResource,
        before: chrono::NaiveDateTime,
        after: Option<&str>,
        room: usize,
    ) -> Result<PurgedPage, SyncError> {
        let name = resource.name();
        if prune::a_reader_lost_history(conn, name)? {
            return Ok(PurgedPage::Held);
        }
        let page = resource.tombstones_before(conn, before, after, PURGE_PAGE)?;
        let Some(last) = page.last().cloned() else {
            return Ok(PurgedPage::Done);
        };
        let owed = prune::owed_entities(conn, name)?;
        let ids: Vec<&str> = page.iter().map(String::as_str).collect();
        // A tombstone a row of another resource names (a deleted customer of an order) stays:
        // without it, an op naming it — a late one, or one in a joining region's snapshot —
        // would park for good.
        let named: HashSet<String> = registry.named_among(conn, name, &ids)?;
        let purge: Vec<String> = page
            .into_iter()
            .filter(|id| !owed.contains(id) && !named.contains(id))
            .take(room)
            .collect();
        let purged = resource.delete_tombstones(conn, &purge)?;
        Ok(PurgedPage::Page { purged, last })
    }
}
