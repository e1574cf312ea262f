//! Comparing clocks with the peers (ADR 0016, docs/PROTOCOL.md "Versions and clocks").
//!
//! Every sync exchange carries the sender's wall clock in the `Regionsync-Clock` header, as
//! milliseconds since the Unix epoch: the caller's on its request, the answering region's on
//! every answer of the `/sync` routes (`ui::http`). The wall clock, not the HLC: an HLC carries
//! the fastest clock it has observed, so a region with a correct clock that merged a fast
//! peer's ops would look skewed itself.
//!
//! - **The caller** measures NTP-style: offset = peer − (sent + received) / 2, within half the
//!   round trip of the truth ([`Exchange`], in the tasks that call peers).
//! - **The receiver** of a request measures one way: offset = peer − arrival, which is the true
//!   offset minus the transit time (unknown, ≥ 0): a peer looks behind by its transit.
//!
//! Samples go to a [`ClockSink`] (`actions::PeerClockMeter`: at most one write per peer and
//! kind every ~10 s per process, off the request's path). The tasks find the sink of the job
//! that runs them through a task-local ([`measuring`], [`MeasuringJob`]): a task run outside
//! one (a CLI command, or work a job spawns off, such as a pull's read-ahead page) neither
//! sends the header nor measures.

use std::future::Future;
use std::sync::Arc;

use ship::parents::{Job, JobFuture};

/// The header carrying the sender's wall clock, in milliseconds since the Unix epoch (lower
/// case: HTTP/2 and `http::HeaderName::from_static` want it so).
pub const CLOCK_HEADER: &str = "regionsync-clock";

/// One measurement of a peer's clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClockSample {
    pub peer: String,
    /// The peer's wall clock minus ours, in milliseconds.
    pub offset_ms: i64,
    /// The round trip of the exchange (a request this region made); `None`: one way (a request
    /// the peer made).
    pub round_trip_ms: Option<i64>,
}

/// Where measurements go, and this region's wall clock they are taken against.
pub trait ClockSink: Send + Sync {
    /// This region's wall clock (ms since the epoch): its `HybridClock::wall_ms`.
    fn wall_ms(&self) -> u64;
    /// Take a measurement: best effort, never blocks or fails the exchange.
    fn sample(&self, sample: ClockSample);
}

tokio::task_local! {
    static SINK: Arc<dyn ClockSink>;
}

/// The sink of the job this task runs in, if any.
fn current() -> Option<Arc<dyn ClockSink>> {
    SINK.try_with(Arc::clone).ok()
}

/// Run `f` with `sink` taking the measurements of the exchanges it makes.
pub async fn measuring<F: Future>(sink: Arc<dyn ClockSink>, f: F) -> F::Output {
    SINK.scope(sink, f).await
}

/// A header value in milliseconds, if it is one (a peer's bytes: anything else is ignored).
pub fn parse_ms(value: &str) -> Option<i64> {
    value.trim().parse::<i64>().ok().filter(|ms| *ms > 0)
}

/// One request to a peer, timed: [`Exchange::start`] right before it is sent (its
/// [`header`](Exchange::header) goes on the request), [`Exchange::finish`] when the answer's
/// head arrived.
pub(crate) struct Exchange {
    sink: Arc<dyn ClockSink>,
    sent_ms: u64,
}

impl Exchange {
    /// `None` outside a measuring job.
    pub(crate) fn start() -> Option<Self> {
        let sink = current()?;
        let sent_ms = sink.wall_ms();
        Some(Self { sink, sent_ms })
    }

    /// The request's `Regionsync-Clock` header.
    pub(crate) fn header(&self) -> (&'static str, String) {
        (CLOCK_HEADER, self.sent_ms.to_string())
    }

    /// The answer of `peer` came with `theirs` (its `Regionsync-Clock`, if any): take the
    /// round-trip measurement.
    pub(crate) fn finish(self, peer: &str, theirs: Option<&str>) {
        let Some(theirs) = theirs.and_then(parse_ms) else {
            return;
        };
        let received_ms = self.sink.wall_ms();
        if let Some(sample) = round_trip(peer, self.sent_ms, received_ms, theirs) {
            self.sink.sample(sample);
        }
    }
}

/// The NTP-style estimate from one exchange: sent and received on our clock, `theirs` the
/// peer's clock when it answered. `None` when our clock went backwards meanwhile.
pub fn round_trip(peer: &str, sent_ms: u64, received_ms: u64, theirs: i64) -> Option<ClockSample> {
    let round_trip_ms = received_ms.checked_sub(sent_ms)?;
    let midpoint = sent_ms + round_trip_ms / 2;
    Some(ClockSample {
        peer: peer.to_string(),
        offset_ms: theirs.saturating_sub(i64::try_from(midpoint).ok()?),
        round_trip_ms: Some(i64::try_from(round_trip_ms).ok()?),
    })
}

/// The one-way estimate at the receiver of a request stamped `theirs` that arrived at
/// `arrived_ms` on our clock: the true offset minus the transit time.
pub fn one_way(peer: &str, arrived_ms: u64, theirs: i64) -> Option<ClockSample> {
    Some(ClockSample {
        peer: peer.to_string(),
        offset_ms: theirs.saturating_sub(i64::try_from(arrived_ms).ok()?),
        round_trip_ms: None,
    })
}

/// A scheduled job whose exchanges with peers measure their clocks into a sink.
pub struct MeasuringJob<J> {
    job: J,
    sink: Arc<dyn ClockSink>,
}

impl<J: Job> MeasuringJob<J> {
    pub fn new(job: J, sink: Arc<dyn ClockSink>) -> Self {
        Self { job, sink }
    }
}

impl<J: Job> Job for MeasuringJob<J> {
    fn name(&self) -> &'static str {
        self.job.name()
    }

    fn handle(&self) -> JobFuture<'_> {
        Box::pin(SINK.scope(Arc::clone(&self.sink), self.job.handle()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_round_trip_estimate_is_taken_at_the_midpoint() {
        // Sent at 1000, answered at 1100 (our clock); the peer said 6050: 5 s ahead.
        let s = round_trip("p", 1_000, 1_100, 6_050).unwrap();
        assert_eq!((s.offset_ms, s.round_trip_ms), (5_000, Some(100)));
        // A peer behind.
        let s = round_trip("p", 1_000, 1_010, 2).unwrap();
        assert_eq!((s.offset_ms, s.round_trip_ms), (-1_003, Some(10)));
        // Our clock stepped back during the exchange: no estimate.
        assert_eq!(round_trip("p", 1_000, 900, 1_000), None);
    }

    #[test]
    fn the_one_way_estimate_and_the_header_value() {
        assert_eq!(one_way("p", 10_000, 12_000).unwrap().offset_ms, 2_000);
        assert_eq!(one_way("p", 10_000, 9_000).unwrap().round_trip_ms, None);
        assert_eq!(parse_ms(" 1765000000000 "), Some(1_765_000_000_000));
        assert_eq!(parse_ms("-5"), None);
        assert_eq!(parse_ms("soon"), None);
    }

    struct Recorder(std::sync::Mutex<Vec<ClockSample>>);

    impl ClockSink for Recorder {
        fn wall_ms(&self) -> u64 {
            1_000
        }
        fn sample(&self, sample: ClockSample) {
            self.0.lock().unwrap().push(sample);
        }
    }

    #[tokio::test]
    async fn an_exchange_measures_only_inside_a_measuring_scope() {
        assert!(Exchange::start().is_none());
        let sink = Arc::new(Recorder(Default::default()));
        let dyn_sink: Arc<dyn ClockSink> = sink.clone();
        measuring(dyn_sink, async {
            let exchange = Exchange::start().unwrap();
            assert_eq!(exchange.header(), (CLOCK_HEADER, "1000".to_string()));
            exchange.finish("us-east", Some("3000"));
            // An answer without the header (an older peer) measures nothing.
            Exchange::start().unwrap().finish("us-east", None);
        })
        .await;
        let got = sink.0.lock().unwrap().clone();
        assert_eq!(
            got,
            vec![ClockSample {
                peer: "us-east".into(),
                offset_ms: 2_000,
                round_trip_ms: Some(0)
            }]
        );
    }
}

/// What a peer's last clock measurement says against `alerts.clock_skew_max_ms` — the one
/// judgement the `clock_skew` alert and `regionsync sync status` share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockVerdict {
    /// Within the bound, once the measurement's error (half its round trip) is allowed for.
    Within,
    /// Beyond the bound by more than the measurement's error.
    Beyond,
    /// Measured one way with the peer behind: its transit time makes any caller look behind,
    /// so the reading bounds nothing (the alert fires one-way readings only for "ahead").
    BehindOneWay,
    /// Older than [`MEASUREMENT_MAX_AGE_SECS`]: neither fires nor resolves the alert.
    Stale,
    /// Older than [`MEASUREMENT_FORGOTTEN_SECS`]: as if never measured (the alert resolves).
    Forgotten,
}

/// A measurement older than this (seconds) is stale: it neither fires nor resolves
/// `clock_skew` (a peer not exchanged with lately, or a process no longer measuring).
pub const MEASUREMENT_MAX_AGE_SECS: i64 = 600;

/// A measurement older than this (seconds) is forgotten: `clock_skew` resolves.
pub const MEASUREMENT_FORGOTTEN_SECS: i64 = 86_400;

/// Judge a measurement of `offset_ms` (peer − us) taken at `measured_at` over `round_trip_ms`
/// (`None`: one way) against `max_ms`, at `now`.
pub fn verdict(
    offset_ms: i64,
    round_trip_ms: Option<i64>,
    measured_at: chrono::DateTime<chrono::Utc>,
    now: chrono::DateTime<chrono::Utc>,
    max_ms: i64,
) -> ClockVerdict {
    let age = (now - measured_at).num_seconds();
    if age > MEASUREMENT_FORGOTTEN_SECS {
        return ClockVerdict::Forgotten;
    }
    if age > MEASUREMENT_MAX_AGE_SECS {
        return ClockVerdict::Stale;
    }
    let error = round_trip_ms.map_or(0, |rt| rt / 2);
    if offset_ms.saturating_abs().saturating_sub(error) <= max_ms {
        ClockVerdict::Within
    } else if round_trip_ms.is_none() && offset_ms < 0 {
        // One way, the reading is the offset minus the transit time: a bound for "ahead",
        // none for "behind" (a far caller on a new TLS connection would look behind by its
        // set-up time). Review finding.
        ClockVerdict::BehindOneWay
    } else {
        ClockVerdict::Beyond
    }
}

#[cfg(test)]
mod verdict_tests {
    use super::*;

    #[test]
    fn the_verdict_allows_for_the_error_and_the_age() {
        let now = chrono::Utc::now();
        let ago = |s: i64| now - chrono::Duration::seconds(s);
        assert_eq!(
            verdict(1_500, Some(1_000), ago(1), now, 1_000),
            ClockVerdict::Within,
            "1500 - 500 ≤ 1000"
        );
        assert_eq!(
            verdict(1_600, Some(1_000), ago(1), now, 1_000),
            ClockVerdict::Beyond
        );
        assert_eq!(
            verdict(-1_600, Some(1_000), ago(1), now, 1_000),
            ClockVerdict::Beyond
        );
        assert_eq!(
            verdict(1_001, None, ago(1), now, 1_000),
            ClockVerdict::Beyond,
            "one way, ahead"
        );
        assert_eq!(
            verdict(-5_000, None, ago(1), now, 1_000),
            ClockVerdict::BehindOneWay
        );
        assert_eq!(
            verdict(-5_000, None, ago(601), now, 1_000),
            ClockVerdict::Stale
        );
        assert_eq!(
            verdict(5_000, Some(2), ago(86_401), now, 1_000),
            ClockVerdict::Forgotten
        );
    }
}
