//! The sync container's implementation of ship's `ChangeRecorder` contract: domain actions
//! call it inside their own transaction.

use std::sync::Arc;

use ship::contracts::{Change, ChangeRecorder, Hlc, HybridClock, Version};
use ship::db::utc_now;
use ship::{AnyConnection, DbError};

use crate::data::{changelog, delivery};
use crate::models::ChangeLogEntry;

/// Resume `clock` from the largest HLC appended to the changelog (the sequence rows' clock
/// marks, ADR 0019; [`changelog::max_hlc`]), so a restarted region never issues a timestamp at
/// or below one it already wrote or applied. Call once at start.
pub fn resume_clock(conn: &mut AnyConnection, clock: &HybridClock) -> Result<(), DbError> {
    if let Some(largest) = changelog::max_hlc(conn)? {
        let largest = Hlc::from_i64(largest).map_err(|e| {
            DbError::Query(diesel::result::Error::DeserializationError(
                format!("the changelog's clock mark is not a valid hlc: {e}").into(),
            ))
        })?;
        clock.resume_from(largest);
    }
    Ok(())
}

/// Prepare the changelog of every registered resource (its sequence row). Call once at start,
/// before serving, outside any transaction.
pub fn prepare_resources<'a>(
    conn: &mut AnyConnection,
    resources: impl IntoIterator<Item = &'a str>,
) -> Result<(), DbError> {
    Ok(changelog::ensure_sequences(conn, resources)?)
}

/// Prepare a delivery stream per push peer and resource (ADR 0009), starting at the resource's
/// head for a peer seen for the first time. Call once at start, after `prepare_resources`,
/// outside any transaction, in every process that writes or dispatches.
pub fn prepare_streams<'a>(
    conn: &mut AnyConnection,
    peers: &[String],
    resources: impl IntoIterator<Item = &'a str>,
) -> Result<(), DbError> {
    Ok(delivery::ensure_streams(conn, peers, resources)?)
}

/// Writes a local change to the changelog. What each push peer is owed follows from it: the
/// peer's delivery stream (`prepare_streams`) covers every entry of this region's origin.
pub struct SyncChangeRecorder {
    region_id: String,
    clock: Arc<HybridClock>,
    peers: Vec<String>,
    schema_versions: std::collections::HashMap<String, i32>,
    /// Woken after a local write commits (the dispatcher of this process waits on it).
    wake: Arc<tokio::sync::Notify>,
}

impl SyncChangeRecorder {
    /// `peers`: the regions every local change is delivered to. `schema_versions`: each
    /// resource's payload schema version, recorded with its entries.
    pub fn new(
        region_id: impl Into<String>,
        clock: Arc<HybridClock>,
        peers: Vec<String>,
        schema_versions: impl IntoIterator<Item = (String, i32)>,
    ) -> Self {
        Self {
            region_id: region_id.into(),
            clock,
            peers,
            schema_versions: schema_versions.into_iter().collect(),
            wake: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// What a dispatcher in this process waits on.
    pub fn wake(&self) -> Arc<tokio::sync::Notify> {
        Arc::clone(&self.wake)
    }
}

impl ChangeRecorder for SyncChangeRecorder {
    fn committed(&self) {
        if !self.peers.is_empty() {
            self.wake.notify_one();
        }
    }

    fn stamp(&self, stored: Option<Hlc>) -> Version {
        let hlc = match stored {
            // Within the drift bound: the clock moves past it, as if it had observed it.
            Some(stored) if self.clock.check_drift(stored).is_ok() => {
                self.clock.resume_from(stored);
                self.clock.now()
            }
            // A row dated beyond the drift bound (legacy data, a clock once wrong): this write
            // still supersedes it, but the region's clock is not dragged into the future with
            // it — every other write would otherwise be refused by peers as clock drift.
            Some(stored) => {
                tracing::warn!(stored = %stored, "a row's version is beyond the drift bound; stamping above it without moving the clock");
                self.clock.now().max(stored.successor())
            }
            None => self.clock.now(),
        };
        Version::new(hlc, self.region_id.clone())
    }

    fn record_local(&self, conn: &mut AnyConnection, change: &Change) -> Result<(), DbError> {
        self.record_local_all(conn, std::slice::from_ref(change))
    }

    /// Per resource, in the order given: one sequence update for all its changes (the
    /// sequence row stays locked until the caller commits, as for one) and one multi-row
    /// insert of their entries (B4).
    fn record_local_all(
        &self,
        conn: &mut AnyConnection,
        changes: &[Change],
    ) -> Result<(), DbError> {
        let now = utc_now();
        let mut start = 0;
        while start < changes.len() {
            let resource = &changes[start].resource;
            let run = changes[start..]
                .iter()
                .take_while(|c| &c.resource == resource)
                .count();
            let largest = changes[start..start + run]
                .iter()
                .map(|c| c.version.hlc.as_i64())
                .max()
                .unwrap_or(0);
            let schema_version = self.schema_versions.get(resource).copied().unwrap_or(1);
            let entries: Vec<ChangeLogEntry> = changes[start..start + run]
                .iter()
                .map(|change| ChangeLogEntry::of(change, schema_version, now))
                .collect();
            changelog::append(conn, resource, entries, largest)?;
            start += run;
        }
        Ok(())
    }
}
