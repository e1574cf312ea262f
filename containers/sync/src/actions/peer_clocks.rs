//! PeerClockMeter (ADR 0016): keep the measurements of the peers' clocks (`crate::peer_clock`)
//! in `sync_peer_clocks`, for the `clock_skew` alert and `regionsync_peer_clock_offset_seconds`.
//!
//! The exchanges that measure are the hot path (every push received, every page pulled), so a
//! process writes at most one measurement per peer and kind (round trip, one way) every
//! [`PeerClockMeter::EVERY`], in the background: a failed write is logged and never touches the
//! exchange. A one-way measurement does not replace a round-trip one younger than
//! [`ROUND_TRIP_PREFERRED_FOR`] (its error is bounded, the one-way one's is not). Both the web
//! process (pushes and pulls it receives: one way) and the scheduler (pulls and pushes it
//! makes: round trip) measure.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ship::contracts::HybridClock;
use ship::parents::Action;
use ship::DbPool;

use crate::data::peer_clocks;
use crate::errors::SyncError;
use crate::peer_clock::{verdict, ClockSample, ClockSink, ClockVerdict};

/// How long a round-trip measurement is preferred over a later one-way one.
pub const ROUND_TRIP_PREFERRED_FOR: Duration = Duration::from_secs(60);

/// The measurements of this process, throttled, into `sync_peer_clocks`. Cheap to clone.
#[derive(Clone)]
pub struct PeerClockMeter {
    pool: DbPool,
    clock: Arc<HybridClock>,
    /// When this process last wrote each (peer, round trip?) measurement.
    last: Arc<Mutex<HashMap<(String, bool), Instant>>>,
    every: Duration,
}

impl PeerClockMeter {
    /// At most one write per peer and kind this often, per process.
    pub const EVERY: Duration = Duration::from_secs(10);

    pub fn new(pool: DbPool, clock: Arc<HybridClock>) -> Self {
        Self {
            pool,
            clock,
            last: Arc::default(),
            every: Self::EVERY,
        }
    }

    /// This region's clock, the one measurements are taken against.
    pub fn clock(&self) -> &Arc<HybridClock> {
        &self.clock
    }

    /// Whether a measurement of this kind for `peer` is due (and, if so, count it as taken).
    fn due(&self, peer: &str, round_trip: bool) -> bool {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        match last.get(&(peer.to_string(), round_trip)) {
            Some(at) if now.duration_since(*at) < self.every => false,
            _ => {
                last.insert((peer.to_string(), round_trip), now);
                true
            }
        }
    }
}

impl Action for PeerClockMeter {
    const NAME: &'static str = "sync.measure_peer_clock";
    type Input = ClockSample;
    /// Whether the measurement was written (throttled, or a one-way one kept out by a fresh
    /// round-trip one: not).
    type Output = bool;
    type Error = SyncError;

    async fn run(&self, sample: ClockSample) -> Result<bool, SyncError> {
        if !self.due(&sample.peer, sample.round_trip_ms.is_some()) {
            return Ok(false);
        }
        self.write(sample).await
    }
}

impl PeerClockMeter {
    /// Write `sample` (its throttle slot is taken).
    async fn write(&self, sample: ClockSample) -> Result<bool, SyncError> {
        self.pool
            .run(move |conn| {
                let now = ship::db::utc_now();
                let kept_after = now
                    - chrono::Duration::from_std(ROUND_TRIP_PREFERRED_FOR)
                        .unwrap_or_else(|_| chrono::Duration::seconds(60));
                peer_clocks::record(
                    conn,
                    &sample.peer,
                    (sample.offset_ms, sample.round_trip_ms),
                    now,
                    kept_after,
                )
                .map_err(SyncError::from)
            })
            .await
    }
}

impl ClockSink for PeerClockMeter {
    fn wall_ms(&self) -> u64 {
        self.clock.wall_ms()
    }

    fn sample(&self, sample: ClockSample) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        // The throttle slot is taken here, before any task: a burst of requests spawns one
        // write, not one task each (review).
        if !self.due(&sample.peer, sample.round_trip_ms.is_some()) {
            return;
        }
        let meter = self.clone();
        runtime.spawn(async move {
            let peer = sample.peer.clone();
            if let Err(e) = meter.write(sample).await {
                tracing::warn!(peer = %peer, error = %e, "could not record the peer's clock offset");
            }
        });
    }
}

/// The last measurement of each peer's clock, by peer, judged against a bound
/// (`alerts.clock_skew_max_ms`) as the `clock_skew` alert judges it (`regionsync sync
/// status`).
pub struct ListPeerClocksAction {
    pool: DbPool,
}

impl ListPeerClocksAction {
    pub fn new(pool: DbPool) -> Self {
        Self { pool }
    }
}

impl Action for ListPeerClocksAction {
    const NAME: &'static str = "sync.list_peer_clocks";
    /// The bound, in milliseconds.
    type Input = u64;
    type Output = Vec<(peer_clocks::PeerClock, ClockVerdict)>;
    type Error = SyncError;

    async fn run(&self, max_ms: u64) -> Result<Self::Output, SyncError> {
        let clocks = self
            .pool
            .run(|conn| Ok::<_, SyncError>(peer_clocks::all(conn)?))
            .await?;
        let (now, max) = (
            chrono::Utc::now(),
            i64::try_from(max_ms).unwrap_or(i64::MAX),
        );
        Ok(clocks
            .into_iter()
            .map(|c| {
                let judged = verdict(
                    c.offset_ms,
                    c.round_trip_ms,
                    c.measured_at.and_utc(),
                    now,
                    max,
                );
                (c, judged)
            })
            .collect())
    }
}
