//! R5 (QUALITY-BARS.md): clock skew between real region processes. `us-east` runs 10 minutes
//! ahead, `ap-south` 10 minutes behind, `eu-west` (the broker) on time; the drift bound is
//! 5 s. A receiver judges each sender by its own wall clock: changes from a sender ahead of it
//! beyond the bound are refused (counted per sender, retried, never dead, and the receiver's
//! clock does not move); changes from a sender behind it are accepted and converge.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use harness::chaos::Write;
use harness::cluster::{Cluster, RegionSpec, Tuning};
use harness::crash::create_many;
use harness::state::RegionState;

const TEN_MINUTES_MS: i64 = 600_000;
/// Bits of an HLC below its physical milliseconds (ship::contracts::hlc).
const COUNTER_BITS: u32 = 16;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn ids(writes: &[Write]) -> Vec<String> {
    writes
        .iter()
        .filter(|w| w.version.is_some())
        .filter_map(|w| w.entity.clone())
        .collect()
}

fn refused(s: &RegionState, from: &str) -> i64 {
    s.refusals
        .get(&("clock_drift".to_string(), from.to_string()))
        .copied()
        .unwrap_or(0)
}

/// Why the skewed cluster is not where R5 expects it yet, if it is not. Every receiver judges
/// a sender by its own wall clock: a sender behind it is accepted (and converges), a sender
/// ahead of it beyond the bound is refused. So `us-east` (+10) takes everything, `eu-west`
/// takes its own and `ap-south`'s, `ap-south` (−10) only its own.
fn problem(
    states: &[RegionState],
    on_time: &[String],
    ahead: &[String],
    behind: &[String],
) -> Option<String> {
    let (eu, us, ap) = (&states[0], &states[1], &states[2]);
    let expect = |s: &RegionState, ids: &[String], present: bool| -> Option<String> {
        ids.iter()
            .find(|id| s.rows.contains_key(*id) != present)
            .map(|id| {
                format!(
                    "{} {} {id}",
                    s.region,
                    if present { "lacks" } else { "accepted" }
                )
            })
    };
    expect(eu, on_time, true)
        .or_else(|| expect(eu, behind, true))
        .or_else(|| expect(eu, ahead, false))
        .or_else(|| expect(us, on_time, true))
        .or_else(|| expect(us, ahead, true))
        .or_else(|| expect(us, behind, true))
        .or_else(|| expect(ap, behind, true))
        .or_else(|| expect(ap, on_time, false))
        .or_else(|| expect(ap, ahead, false))
        .or_else(|| {
            // The region behind converged at the others: its rows, versions and all.
            behind.iter().find_map(|id| {
                (eu.rows.get(id) != ap.rows.get(id) || us.rows.get(id) != ap.rows.get(id))
                    .then(|| format!("{id} differs between ap-south and the others"))
            })
        })
        .or_else(|| {
            (ap.pending() > 0)
                .then(|| format!("ap-south's outbox not drained yet: {:?}", ap.outbox))
        })
        .or_else(|| {
            (refused(eu, "us-east") == 0
                || refused(ap, "eu-west") == 0
                || refused(ap, "us-east") == 0)
                .then(|| {
                    format!(
                        "refusals not counted yet: eu-west {:?}, ap-south {:?}",
                        eu.refusals, ap.refusals
                    )
                })
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r5_a_region_ahead_is_refused_and_one_behind_converges() {
    let mut ahead = RegionSpec::sqlite("us-east");
    ahead.skew_ms = TEN_MINUTES_MS;
    let mut behind = RegionSpec::sqlite("ap-south");
    behind.skew_ms = -TEN_MINUTES_MS;
    let specs = vec![RegionSpec::sqlite("eu-west"), ahead, behind];
    let cluster = Cluster::start(specs, Tuning::default(), 5).await.unwrap();
    let run = async {
        let on_time = ids(&create_many(
            &cluster.regions[0].base_url(),
            &cluster.regions[0].spec.id,
            "eu",
            10,
            2,
        )
        .await);
        let ahead = ids(&create_many(
            &cluster.regions[1].base_url(),
            &cluster.regions[1].spec.id,
            "us",
            10,
            2,
        )
        .await);
        let behind = ids(&create_many(
            &cluster.regions[2].base_url(),
            &cluster.regions[2].spec.id,
            "ap",
            10,
            2,
        )
        .await);
        assert_eq!((on_time.len(), ahead.len(), behind.len()), (10, 10, 10));

        let deadline = Instant::now() + Duration::from_secs(60);
        let states = loop {
            let states = cluster.states().unwrap();
            match problem(&states, &on_time, &ahead, &behind) {
                None => break states,
                Some(p) if Instant::now() > deadline => panic!("R5: {p}\n{}", cluster.logs(20)),
                Some(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        };
        // Refused, not dead: the entries wait, pending, for the clocks to be fixed (or an
        // operator's decision); the ones to the region ahead were delivered.
        for (i, region) in [(0, "eu-west"), (1, "us-east")] {
            let s = &states[i];
            assert!(s.pending() > 0, "{region}'s outbox {:?}", s.outbox);
            assert_eq!(s.dead(), 0, "{region}'s outbox {:?}", s.outbox);
        }
        let us = &states[1];
        assert_eq!(
            states[2].dead(),
            0,
            "ap-south's outbox {:?}",
            states[2].outbox
        );
        assert_eq!(
            states[2].pending(),
            0,
            "ap-south's changes were all accepted: {:?}",
            states[2].outbox
        );
        // The refusing regions' clocks did not move: a write now is stamped with about now.
        for (i, region) in [(0, "eu-west"), (2, "ap-south")] {
            let write = create_many(
                &cluster.regions[i].base_url(),
                &cluster.regions[i].spec.id,
                "later",
                1,
                1,
            )
            .await;
            let (hlc, origin) = write[0].version.clone().expect("acknowledged");
            assert_eq!(origin, region);
            let physical = hlc >> COUNTER_BITS;
            let skew = if i == 2 { -TEN_MINUTES_MS } else { 0 };
            let off = physical - (now_ms() + skew);
            assert!(
                off.abs() < 5_000,
                "{region}'s clock moved by {off} ms after refusing us-east"
            );
        }
        eprintln!(
            "R5: refusals eu-west {:?}, ap-south {:?}; us-east outbox {:?}",
            states[0].refusals, states[2].refusals, us.outbox
        );
    };
    run.await;
    cluster.shutdown().await.unwrap();
}
