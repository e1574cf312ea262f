//! Hybrid logical clock.
//!
//! An [`Hlc`] is a 64-bit value stored as `BIGINT`: the high 48 bits are wall-clock milliseconds
//! since the Unix epoch, the low 16 bits a logical counter. Versions of an entity are ordered by
//! `(hlc, origin_region)` ([`Version`]); the region id breaks ties deterministically.
//!
//! [`HybridClock`] issues local timestamps (`now`) and merges remote ones (`observe`), refusing a
//! remote timestamp whose physical part is more than `max_drift` ahead of local wall time: a peer
//! with a far-future clock would otherwise win every conflict forever. A refused timestamp does
//! not move the clock.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

const COUNTER_BITS: u32 = 16;
const COUNTER_MASK: i64 = (1 << COUNTER_BITS) - 1;
/// The largest physical time an `Hlc` can carry (2^47 - 1 ms keeps the i64 non-negative).
const MAX_PHYSICAL_MS: u64 = (1 << 47) - 1;

/// A hybrid logical clock timestamp.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct Hlc(i64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HlcError {
    #[error("an HLC must be a non-negative 64-bit integer, got {0}")]
    Negative(i64),
    #[error(
        "remote clock is {ahead_ms} ms ahead of local wall time (the bound is {max_drift_ms} ms)"
    )]
    Drift { ahead_ms: u64, max_drift_ms: u64 },
}

impl Hlc {
    pub const ZERO: Hlc = Hlc(0);

    pub fn new(physical_ms: u64, counter: u16) -> Self {
        let physical = physical_ms.min(MAX_PHYSICAL_MS) as i64;
        Hlc((physical << COUNTER_BITS) | i64::from(counter))
    }

    pub fn from_i64(value: i64) -> Result<Self, HlcError> {
        if value < 0 {
            Err(HlcError::Negative(value))
        } else {
            Ok(Hlc(value))
        }
    }

    pub fn as_i64(self) -> i64 {
        self.0
    }

    pub fn physical_ms(self) -> u64 {
        (self.0 >> COUNTER_BITS) as u64
    }

    pub fn counter(self) -> u16 {
        (self.0 & COUNTER_MASK) as u16
    }

    /// The timestamp right after this one (counter + 1, carrying into the physical part).
    pub fn successor(self) -> Self {
        if self.counter() == u16::MAX {
            Hlc::new(self.physical_ms() + 1, 0)
        } else {
            Hlc(self.0 + 1)
        }
    }
}

impl TryFrom<i64> for Hlc {
    type Error = HlcError;
    fn try_from(value: i64) -> Result<Self, HlcError> {
        Hlc::from_i64(value)
    }
}

impl From<Hlc> for i64 {
    fn from(h: Hlc) -> i64 {
        h.0
    }
}

impl fmt::Debug for Hlc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hlc({}.{})", self.physical_ms(), self.counter())
    }
}

impl fmt::Display for Hlc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The version of one write: its timestamp and the region that made it. Ordered by
/// `(hlc, origin)`, so concurrent writes with equal timestamps still have one winner.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Version {
    pub hlc: Hlc,
    pub origin: String,
}

impl Version {
    pub fn new(hlc: Hlc, origin: impl Into<String>) -> Self {
        Self {
            hlc,
            origin: origin.into(),
        }
    }
}

/// Where the clock reads wall time (milliseconds since the epoch); replaceable in tests.
pub type TimeSource = Arc<dyn Fn() -> u64 + Send + Sync>;

pub fn system_time_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A region's clock. Shared (`Arc`) by everything that stamps or observes versions.
pub struct HybridClock {
    last: Mutex<Hlc>,
    max_drift_ms: u64,
    wall: TimeSource,
    /// Milliseconds added to `wall` (signed; 0 unless a test skews this clock, see
    /// [`HybridClock::skew_for_tests`]).
    skew_ms: AtomicI64,
}

impl fmt::Debug for HybridClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HybridClock")
            .field("last", &self.last())
            .field("max_drift_ms", &self.max_drift_ms)
            .finish()
    }
}

impl HybridClock {
    pub fn new(max_drift: Duration) -> Self {
        Self::with_time_source(max_drift, Arc::new(system_time_ms))
    }

    pub fn with_time_source(max_drift: Duration, wall: TimeSource) -> Self {
        Self {
            last: Mutex::new(Hlc::ZERO),
            max_drift_ms: max_drift.as_millis() as u64,
            wall,
            skew_ms: AtomicI64::new(0),
        }
    }

    /// This clock's wall time, milliseconds since the Unix epoch: what its physical part is
    /// taken from (never the last timestamp issued or observed — that may carry a faster
    /// peer's clock). Regions compare their clocks with it (`Regionsync-Clock`).
    pub fn wall_ms(&self) -> u64 {
        (self.wall)().saturating_add_signed(self.skew_ms.load(Ordering::Relaxed))
    }

    /// Run this clock `skew_ms` ahead of its time source (behind when negative), from now on:
    /// a region whose clock is wrong, for fault-injection tests that run several regions in
    /// one process (one region per process uses `CHAOS_CLOCK_SKEW_MS` instead). Production
    /// code never calls it.
    pub fn skew_for_tests(&self, skew_ms: i64) {
        self.skew_ms.store(skew_ms, Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Hlc> {
        // A poisoned lock only means another thread panicked while holding a plain value.
        self.last.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The last timestamp issued or observed.
    pub fn last(&self) -> Hlc {
        *self.lock()
    }

    /// Never issue anything at or below `stored` (the largest HLC found in the database at
    /// start), so the clock never runs backwards across restarts.
    pub fn resume_from(&self, stored: Hlc) {
        let mut last = self.lock();
        if stored > *last {
            *last = stored;
        }
    }

    /// A timestamp for a local event: greater than every timestamp issued or observed before.
    pub fn now(&self) -> Hlc {
        let wall = Hlc::new(self.wall_ms(), 0);
        let mut last = self.lock();
        let next = if wall > *last { wall } else { last.successor() };
        *last = next;
        next
    }

    /// Refuse a remote timestamp too far ahead of local wall time; changes nothing.
    pub fn check_drift(&self, remote: Hlc) -> Result<(), HlcError> {
        let wall = self.wall_ms();
        let ahead = remote.physical_ms().saturating_sub(wall);
        if ahead > self.max_drift_ms {
            Err(HlcError::Drift {
                ahead_ms: ahead,
                max_drift_ms: self.max_drift_ms,
            })
        } else {
            Ok(())
        }
    }

    /// Merge a remote timestamp (receiving an op): afterwards every local timestamp is greater
    /// than it. Refused, without moving the clock, when it is beyond the drift bound.
    pub fn observe(&self, remote: Hlc) -> Result<(), HlcError> {
        self.check_drift(remote)?;
        let mut last = self.lock();
        if remote > *last {
            *last = remote;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    fn manual_clock(start_ms: u64, drift_ms: u64) -> (HybridClock, Arc<AtomicU64>) {
        let now = Arc::new(AtomicU64::new(start_ms));
        let source = Arc::clone(&now);
        let clock = HybridClock::with_time_source(
            Duration::from_millis(drift_ms),
            Arc::new(move || source.load(Ordering::SeqCst)),
        );
        (clock, now)
    }

    #[test]
    fn layout_is_48_bits_of_milliseconds_and_16_of_counter() {
        let h = Hlc::new(1_700_000_000_123, 7);
        assert_eq!(h.physical_ms(), 1_700_000_000_123);
        assert_eq!(h.counter(), 7);
        assert_eq!(h.as_i64(), (1_700_000_000_123_i64 << 16) | 7);
        assert!(Hlc::new(5, 0) > Hlc::new(4, u16::MAX));
        assert!(Hlc::from_i64(-1).is_err());
        assert_eq!(serde_json::to_string(&h).unwrap(), h.as_i64().to_string());
        assert!(serde_json::from_str::<Hlc>("-5").is_err());
    }

    #[test]
    fn local_timestamps_strictly_increase_even_when_wall_time_stands_still_or_goes_back() {
        let (clock, wall) = manual_clock(1_000, 5_000);
        let a = clock.now();
        let b = clock.now();
        assert!(b > a && b.physical_ms() == 1_000 && b.counter() == 1);
        wall.store(900, Ordering::SeqCst); // NTP stepped the clock back
        let c = clock.now();
        assert!(c > b, "{c:?} > {b:?}");
        wall.store(2_000, Ordering::SeqCst);
        let d = clock.now();
        assert_eq!((d.physical_ms(), d.counter()), (2_000, 0));
    }

    #[test]
    fn the_counter_carries_into_the_physical_part() {
        let (clock, _) = manual_clock(10, 5_000);
        clock.resume_from(Hlc::new(10, u16::MAX));
        let next = clock.now();
        assert_eq!((next.physical_ms(), next.counter()), (11, 0));
    }

    #[test]
    fn observing_a_remote_timestamp_moves_local_time_past_it() {
        let (clock, _) = manual_clock(1_000, 5_000);
        let remote = Hlc::new(3_000, 4); // 2 s ahead: within the bound
        clock.observe(remote).unwrap();
        assert!(clock.now() > remote);
    }

    #[test]
    fn a_remote_clock_beyond_the_drift_bound_is_refused_and_does_not_move_ours() {
        let (clock, _) = manual_clock(1_000, 5_000);
        let before = clock.now();
        let err = clock.observe(Hlc::new(1_000 + 600_000, 0)).unwrap_err();
        assert_eq!(
            err,
            HlcError::Drift {
                ahead_ms: 600_000,
                max_drift_ms: 5_000
            }
        );
        assert_eq!(clock.last(), before);
        // A clock behind ours is always fine.
        clock.observe(Hlc::new(1, 0)).unwrap();
        assert_eq!(clock.last(), before);
    }

    #[test]
    fn a_skewed_clock_reads_and_stamps_ahead_or_behind() {
        let (clock, _) = manual_clock(10_000, 5_000);
        assert_eq!(clock.wall_ms(), 10_000);
        clock.skew_for_tests(3_000);
        assert_eq!(clock.wall_ms(), 13_000);
        assert_eq!(clock.now().physical_ms(), 13_000);
        // Its drift bound is judged from the skewed time too.
        assert!(clock.check_drift(Hlc::new(17_000, 0)).is_ok());
        clock.skew_for_tests(-4_000);
        assert_eq!(clock.wall_ms(), 6_000);
    }

    #[test]
    fn resume_never_moves_backwards() {
        let (clock, _) = manual_clock(1_000, 5_000);
        clock.resume_from(Hlc::new(50_000, 3));
        clock.resume_from(Hlc::new(20_000, 0));
        assert!(clock.now() > Hlc::new(50_000, 3));
    }

    #[test]
    fn versions_order_by_hlc_then_origin() {
        let h = Hlc::new(1, 0);
        assert!(Version::new(h, "b") > Version::new(h, "a"));
        assert!(Version::new(Hlc::new(2, 0), "a") > Version::new(h, "z"));
    }
}
