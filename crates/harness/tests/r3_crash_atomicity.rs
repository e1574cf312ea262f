//! R3 (QUALITY-BARS.md): SIGKILL during a local write, an apply, a claim/dispatch and a cursor
//! advance, three times each; after the restarts: all-or-nothing (every row has the changelog
//! entry of its version), no acknowledged write lost, duplicates absorbed (identical rows
//! everywhere), outboxes drained, and a puller whose cursor could run ahead of what it applied
//! would be left short of rows. `CHAOS_SEED=<n>` replays a seed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use harness::crash::{run, Crash};

fn seed() -> u64 {
    std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1)
}

const BACKLOG: usize = 2_000;

async fn scenario(crash: Crash) {
    let seed = seed();
    match run(crash, seed, BACKLOG).await {
        Ok(report) => eprintln!("R3 {report:?}"),
        Err(e) => panic!("R3 {crash:?} failed (replay: CHAOS_SEED={seed}):\n{e:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r3_sigkill_during_local_writes() {
    scenario(Crash::LocalWrite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r3_sigkill_during_apply() {
    scenario(Crash::Apply).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r3_sigkill_during_claim_and_dispatch() {
    scenario(Crash::Dispatch).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r3_sigkill_during_cursor_advance() {
    scenario(Crash::CursorAdvance).await;
}

/// Both regions on MariaDB: SIGKILL during a paged pull (each page applied with its cursor in
/// one MariaDB transaction) and during claim/dispatch (the stream row `FOR UPDATE`, leases).
mod r3_on_mariadb {
    use harness::cluster::Store;
    use harness::crash::{run_on, Crash};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mysql() {
        let server = harness::cluster::mysql_server_from_env();
        let seed = super::seed();
        for crash in [Crash::CursorAdvance, Crash::Dispatch] {
            let store = Store::Mysql {
                server: server.clone(),
            };
            match run_on(crash, seed, super::BACKLOG, store).await {
                Ok(report) => eprintln!("R3/MariaDB {report:?}"),
                Err(e) => panic!("R3/MariaDB {crash:?} failed (replay: CHAOS_SEED={seed}):\n{e:?}"),
            }
        }
    }
}

/// Both regions on PostgreSQL: SIGKILL during a paged pull and during claim/dispatch, as on
/// MariaDB.
mod r3_on_postgresql {
    use harness::cluster::Store;
    use harness::crash::{run_on, Crash};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        let server = harness::cluster::pg_server_from_env();
        let seed = super::seed();
        for crash in [Crash::CursorAdvance, Crash::Dispatch] {
            let store = Store::Postgres {
                server: server.clone(),
            };
            match run_on(crash, seed, super::BACKLOG, store).await {
                Ok(report) => eprintln!("R3/PostgreSQL {report:?}"),
                Err(e) => {
                    panic!("R3/PostgreSQL {crash:?} failed (replay: CHAOS_SEED={seed}):\n{e:?}")
                }
            }
        }
    }
}
