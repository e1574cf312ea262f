//! The scheduler's tables: `ship_scheduler_leases` and `ship_scheduler_runs`.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use crate::db::{transact, utc_now, AnyConnection, DbError};

diesel::table! {
    ship_scheduler_leases (job) {
        job -> Text,
        owner -> Text,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    ship_scheduler_runs (id) {
        id -> BigInt,
        job -> Text,
        owner -> Text,
        started_at -> Timestamp,
        finished_at -> Nullable<Timestamp>,
        outcome -> Text,
        error -> Nullable<Text>,
    }
}

fn later(ttl: Duration) -> NaiveDateTime {
    utc_now() + chrono::Duration::from_std(ttl).unwrap_or_else(|_| chrono::Duration::seconds(60))
}

/// The lease of `job`, locked (MariaDB and PostgreSQL `FOR UPDATE`; SQLite holds the write
/// lock already).
fn lease_for_update(
    conn: &mut AnyConnection,
    job: &str,
) -> QueryResult<Option<(String, NaiveDateTime)>> {
    let query = ship_scheduler_leases::table.find(job).select((
        ship_scheduler_leases::owner,
        ship_scheduler_leases::expires_at,
    ));
    match conn {
        AnyConnection::Mysql(c) => query.for_update().first(c).optional(),
        AnyConnection::Pg(c) => query.for_update().first(c).optional(),
        AnyConnection::Sqlite(c) => query.first(c).optional(),
    }
}

/// Take `job`'s lease for `owner` for `ttl`: free or expired → taken (true); held by anyone
/// (this owner too: a second run of the job in this process) and not expired → false. Two processes racing for a lease that does not exist
/// yet: one insert wins, the other sees the duplicate and backs off.
pub(super) fn take_lease(
    conn: &mut AnyConnection,
    job: &str,
    owner: &str,
    ttl: Duration,
) -> Result<bool, DbError> {
    let result = transact(conn, |conn| -> QueryResult<bool> {
        let now = utc_now();
        match lease_for_update(conn, job)? {
            // A live lease is never taken, unless its holder is a process of this host that
            // is gone (killed without releasing it: see `owner_is_gone`).
            Some((holder, expires)) if expires > now && !super::owner_is_gone(&holder, owner) => {
                Ok(false)
            }
            Some(_) => {
                diesel::update(ship_scheduler_leases::table.find(job))
                    .set((
                        ship_scheduler_leases::owner.eq(owner),
                        ship_scheduler_leases::expires_at.eq(later(ttl)),
                    ))
                    .execute(conn)?;
                Ok(true)
            }
            None => {
                diesel::insert_into(ship_scheduler_leases::table)
                    .values((
                        ship_scheduler_leases::job.eq(job),
                        ship_scheduler_leases::owner.eq(owner),
                        ship_scheduler_leases::expires_at.eq(later(ttl)),
                    ))
                    .execute(conn)?;
                Ok(true)
            }
        }
    });
    match result {
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => Ok(false),
        other => other.map_err(DbError::Query),
    }
}

/// Extend `owner`'s lease on `job` (a long run keeps it).
pub(super) fn renew_lease(
    conn: &mut AnyConnection,
    job: &str,
    owner: &str,
    ttl: Duration,
) -> Result<(), DbError> {
    diesel::update(
        ship_scheduler_leases::table
            .filter(ship_scheduler_leases::job.eq(job))
            .filter(ship_scheduler_leases::owner.eq(owner)),
    )
    .set(ship_scheduler_leases::expires_at.eq(later(ttl)))
    .execute(conn)
    .map(drop)
    .map_err(DbError::Query)
}

/// Give up `owner`'s lease on `job`.
pub(super) fn release_lease(
    conn: &mut AnyConnection,
    job: &str,
    owner: &str,
) -> Result<(), DbError> {
    diesel::delete(
        ship_scheduler_leases::table
            .filter(ship_scheduler_leases::job.eq(job))
            .filter(ship_scheduler_leases::owner.eq(owner)),
    )
    .execute(conn)
    .map(drop)
    .map_err(DbError::Query)
}

/// Record a run's start; its id.
pub(super) fn start_run(
    conn: &mut AnyConnection,
    job: &str,
    owner: &str,
    started_at: NaiveDateTime,
) -> Result<i64, DbError> {
    let row = (
        ship_scheduler_runs::job.eq(job),
        ship_scheduler_runs::owner.eq(owner),
        ship_scheduler_runs::started_at.eq(started_at),
        ship_scheduler_runs::outcome.eq("running"),
    );
    let id = match conn {
        AnyConnection::Sqlite(c) => diesel::insert_into(ship_scheduler_runs::table)
            .values(row)
            .returning(ship_scheduler_runs::id)
            .get_result(c),
        AnyConnection::Pg(c) => diesel::insert_into(ship_scheduler_runs::table)
            .values(row)
            .returning(ship_scheduler_runs::id)
            .get_result(c),
        AnyConnection::Mysql(c) => c.transaction(|c| {
            diesel::insert_into(ship_scheduler_runs::table)
                .values(row)
                .execute(c)?;
            diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
                "CAST(LAST_INSERT_ID() AS SIGNED)",
            ))
            .get_result(c)
        }),
    };
    id.map_err(DbError::Query)
}

pub(super) fn finish_run(
    conn: &mut AnyConnection,
    id: i64,
    outcome: &str,
    error: Option<&str>,
) -> Result<(), DbError> {
    diesel::update(ship_scheduler_runs::table.find(id))
        .set((
            ship_scheduler_runs::finished_at.eq(Some(utc_now())),
            ship_scheduler_runs::outcome.eq(outcome),
            ship_scheduler_runs::error.eq(error),
        ))
        .execute(conn)
        .map(drop)
        .map_err(DbError::Query)
}

/// The latest run of `job`: (started at, finished at, outcome).
fn latest_run(
    conn: &mut AnyConnection,
    job: &str,
) -> QueryResult<Option<(NaiveDateTime, Option<NaiveDateTime>, String)>> {
    ship_scheduler_runs::table
        .filter(ship_scheduler_runs::job.eq(job))
        .order((
            ship_scheduler_runs::started_at.desc(),
            ship_scheduler_runs::id.desc(),
        ))
        .select((
            ship_scheduler_runs::started_at,
            ship_scheduler_runs::finished_at,
            ship_scheduler_runs::outcome,
        ))
        .first(conn)
        .optional()
}

/// The latest run of each of `jobs`: (started at, outcome).
pub(super) fn last_runs(
    conn: &mut AnyConnection,
    jobs: &[String],
) -> QueryResult<HashMap<String, (DateTime<Utc>, String)>> {
    let mut out = HashMap::new();
    for job in jobs {
        if let Some((started, _, outcome)) = latest_run(conn, job)? {
            out.insert(job.clone(), (started.and_utc(), outcome));
        }
    }
    Ok(out)
}

/// Delete run records older than `keep`, except each job's latest.
pub(super) fn prune_runs(conn: &mut AnyConnection, keep: chrono::Duration) -> Result<(), DbError> {
    let before = utc_now() - keep;
    let latest: Vec<i64> = ship_scheduler_runs::table
        .group_by(ship_scheduler_runs::job)
        .select(diesel::dsl::max(ship_scheduler_runs::id))
        .load::<Option<i64>>(conn)
        .map_err(DbError::Query)?
        .into_iter()
        .flatten()
        .collect();
    diesel::delete(
        ship_scheduler_runs::table
            .filter(ship_scheduler_runs::started_at.lt(before))
            .filter(ship_scheduler_runs::id.ne_all(latest)),
    )
    .execute(conn)
    .map(drop)
    .map_err(DbError::Query)
}

/// The scheduler's gauges for `GET /metrics` (see `SchedulerMetrics`): per job, the runs on
/// record by outcome and the latest run (when it started, how long it took, whether it
/// succeeded).
pub(super) fn metrics(conn: &mut AnyConnection) -> Result<Vec<crate::contracts::Gauge>, DbError> {
    use crate::contracts::Gauge;
    let counts: Vec<(String, String, i64)> = ship_scheduler_runs::table
        .group_by((ship_scheduler_runs::job, ship_scheduler_runs::outcome))
        .select((
            ship_scheduler_runs::job,
            ship_scheduler_runs::outcome,
            diesel::dsl::count_star(),
        ))
        .load(conn)
        .map_err(DbError::Query)?;
    let mut out: Vec<Gauge> = counts
        .iter()
        .map(|(job, outcome, n)| Gauge {
            name: "regionsync_scheduler_runs",
            help: "Job runs on record (a week, and each job's latest), by outcome",
            labels: vec![("job", job.clone()), ("outcome", outcome.clone())],
            value: *n as f64,
        })
        .collect();
    let jobs: std::collections::BTreeSet<String> =
        counts.into_iter().map(|(job, _, _)| job).collect();
    for job in jobs {
        let Some((started, finished, outcome)) = latest_run(conn, &job).map_err(DbError::Query)?
        else {
            continue;
        };
        let label = || vec![("job", job.clone())];
        out.push(Gauge {
            name: "regionsync_scheduler_last_run_started_seconds",
            help: "When the job's latest run started (Unix time)",
            labels: label(),
            value: started.and_utc().timestamp_millis() as f64 / 1000.0,
        });
        if let Some(finished) = finished {
            out.push(Gauge {
                name: "regionsync_scheduler_last_run_duration_seconds",
                help: "How long the job's latest finished run took",
                labels: label(),
                value: (finished - started).num_milliseconds().max(0) as f64 / 1000.0,
            });
            out.push(Gauge {
                name: "regionsync_scheduler_last_run_ok",
                help:
                    "1 when the job's latest finished run succeeded, 0 when it failed or timed out",
                labels: label(),
                value: f64::from(u8::from(outcome == "ok")),
            });
        }
    }
    Ok(out)
}
