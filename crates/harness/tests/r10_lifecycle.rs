//! R10: a region's lifecycle with real processes. A third region joins a running pair late
//! (rows older than the sync columns at one of them, both changelogs pruned) and gets the
//! data that exists by itself; a region comes back from an older copy of its own database, or
//! from an empty one, under the same region id, while writes go on everywhere. After
//! quiescence every region holds the same rows, with every acknowledged write that could
//! survive at its final value and no deleted row live again.
//!
//! Each scenario runs on SQLite, with a region on MariaDB (`::mysql`, TEST_MYSQL_URL) and with
//! one on PostgreSQL (`::postgres`, TEST_PG_URL).
//! `CHAOS_SEED=<n>` replays a seed; `R10_JOIN=cli` makes the late region bootstrap by the
//! operator's `regionsync sync bootstrap` instead of by itself.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::sync::{Condvar, Mutex};

use anyhow::Result;
use harness::lifecycle::{late_join, restored, Join, LateJoin, LifecycleReport, Restore, Restored};

fn seed() -> u64 {
    std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1)
}

fn join() -> Join {
    match std::env::var("R10_JOIN").as_deref() {
        Ok("cli") => Join::Cli,
        _ => Join::Auto,
    }
}

/// Scenarios run at most this many at a time (each is three region processes; the machine may
/// have two cores).
const PARALLEL: usize = 2;
static RUNNING: Mutex<usize> = Mutex::new(0);
static FREED: Condvar = Condvar::new();

/// A slot of `PARALLEL`, given back when dropped (a panicking scenario too).
struct Slot;

impl Slot {
    fn take() -> Slot {
        let mut running = RUNNING.lock().unwrap_or_else(|p| p.into_inner());
        while *running >= PARALLEL {
            running = FREED.wait(running).unwrap_or_else(|p| p.into_inner());
        }
        *running += 1;
        Slot
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        *RUNNING.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
        FREED.notify_one();
    }
}

/// Run one scenario on its own multi-thread runtime once a slot is free; panic with its error.
fn scenario(name: &str, run: impl Future<Output = Result<LifecycleReport>>) {
    let slot = Slot::take();
    let result = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(run);
    drop(slot);
    match result {
        Ok(report) => eprintln!("R10 {name}: ok {report:#?}"),
        Err(e) => panic!("R10 {name} failed:\n{e:?}"),
    }
}

fn mysql_server() -> Option<String> {
    Some(harness::cluster::mysql_server_from_env())
}

fn pg_server() -> Option<String> {
    Some(harness::cluster::pg_server_from_env())
}

fn late(mysql: Option<String>, prune: bool) -> LateJoin {
    LateJoin {
        mysql,
        prune,
        join: join(),
        ..LateJoin::new(seed())
    }
}

/// The pair's changelogs are pruned before the third region joins: it must get everything from
/// snapshots (its first pull of each peer is `410 cursor_expired`).
mod r10_late_join {
    use super::*;

    #[test]
    fn sqlite() {
        scenario("late join", late_join(&late(None, true)));
    }

    #[test]
    fn mysql() {
        scenario(
            "late join (MariaDB)",
            late_join(&late(mysql_server(), true)),
        );
    }

    #[test]
    fn postgres() {
        scenario(
            "late join (PostgreSQL)",
            late_join(&late(pg_server(), true)),
        );
    }
}

/// Nothing is pruned: the pair's feeds start at 1, and the rows older than the sync columns
/// are in no feed: only a snapshot brings them to the new region.
mod r10_late_join_unpruned {
    use super::*;

    #[test]
    fn sqlite() {
        scenario("late join, unpruned", late_join(&late(None, false)));
    }

    #[test]
    fn mysql() {
        scenario(
            "late join, unpruned (MariaDB)",
            late_join(&late(mysql_server(), false)),
        );
    }

    #[test]
    fn postgres() {
        scenario(
            "late join, unpruned (PostgreSQL)",
            late_join(&late(pg_server(), false)),
        );
    }
}

fn restore(mysql: Option<String>, restore: Restore) -> Restored {
    Restored {
        seed: seed(),
        mysql,
        restore,
    }
}

mod r10_restored_from_older_copy {
    use super::*;

    #[test]
    fn sqlite() {
        scenario(
            "restored from an older copy",
            restored(&restore(None, Restore::OlderCopy)),
        );
    }

    #[test]
    fn mysql() {
        scenario(
            "restored from an older copy (MariaDB)",
            restored(&restore(mysql_server(), Restore::OlderCopy)),
        );
    }

    #[test]
    fn postgres() {
        scenario(
            "restored from an older copy (PostgreSQL)",
            restored(&restore(pg_server(), Restore::OlderCopy)),
        );
    }
}

mod r10_restored_empty {
    use super::*;

    #[test]
    fn sqlite() {
        scenario("restored empty", restored(&restore(None, Restore::Empty)));
    }

    #[test]
    fn mysql() {
        scenario(
            "restored empty (MariaDB)",
            restored(&restore(mysql_server(), Restore::Empty)),
        );
    }

    #[test]
    fn postgres() {
        scenario(
            "restored empty (PostgreSQL)",
            restored(&restore(pg_server(), Restore::Empty)),
        );
    }
}
