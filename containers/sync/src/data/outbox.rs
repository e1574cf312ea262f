//! Outbox queries.

use diesel::prelude::*;
use ship::AnyConnection;

use super::schema::sync_outbox;
use crate::models::NewOutboxEntry;

/// Insert `entries` in one multi-row statement (diesel builds those only on a concrete
/// connection, hence the match on the backend).
pub fn insert_all(conn: &mut AnyConnection, entries: &[NewOutboxEntry<'_>]) -> QueryResult<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let query = diesel::insert_into(sync_outbox::table).values(entries);
    match conn {
        AnyConnection::Sqlite(c) => query.execute(c),
        AnyConnection::Mysql(c) => query.execute(c),
    }
    .map(drop)
}

use chrono::NaiveDateTime;

use super::schema::sync_changelog;
use crate::models::{outbox_status, ChangeLogEntry};

/// A claimed entry.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct Claimed {
    pub id: i64,
    pub peer: String,
    pub resource: String,
    pub seq: i64,
    pub attempts: i32,
}

/// Claim up to `limit` pending entries whose time has come and whose lease (if any) ran out,
/// oldest due first: they get `owner`'s lease until `lease_until`. Runs its own transaction:
/// on MariaDB the rows are read `FOR UPDATE SKIP LOCKED` (a concurrent claimer takes other rows
/// instead of waiting); on SQLite the transaction holds the write lock. Once committed, the
/// lease keeps other workers off the entries while this one sends them.
///
/// The claim walks `sync_outbox_due (status, next_attempt_at, id)` in order and stops at
/// `limit`. Ordered by `id` it needed a filesort: the locking read read (and locked, until
/// commit) every pending row before sorting, so one claimer held the whole backlog and
/// concurrent claimers found nothing (B5). Sessions run at READ COMMITTED (`ship::db`), so rows
/// read and filtered out are not kept locked.
pub fn claim(
    conn: &mut AnyConnection,
    owner: &str,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
    limit: i64,
    only: &ClaimFilter,
) -> QueryResult<Vec<Claimed>> {
    ship::db::transact(conn, |conn| {
        claim_in_transaction(conn, owner, now, lease_until, limit, only)
    })
}

/// Which entries a claim may take: every one, or only those owed to one peer and/or of one
/// resource (`regionsync sync run --peer P --resource R`); and whether a backoff still running
/// holds them back (it does, except for an operator's `sync run`: they asked for it now).
#[derive(Debug, Clone, Default)]
pub struct ClaimFilter {
    pub peer: Option<String>,
    pub resource: Option<String>,
    pub ignore_backoff: bool,
}

impl ClaimFilter {
    /// The latest due time a claim at `now` takes: `now`, or — backoff ignored — the end of
    /// the DATETIME range both backends store (`NaiveDateTime::MAX` is past it).
    pub(crate) fn due_by(&self, now: NaiveDateTime) -> NaiveDateTime {
        if self.ignore_backoff {
            chrono::NaiveDate::from_ymd_opt(9999, 12, 31)
                .and_then(|d| d.and_hms_opt(23, 59, 59))
                .unwrap_or(now)
        } else {
            now
        }
    }
}

/// `claim`'s work, inside the caller's transaction.
fn claim_in_transaction(
    conn: &mut AnyConnection,
    owner: &str,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
    limit: i64,
    only: &ClaimFilter,
) -> QueryResult<Vec<Claimed>> {
    // One query shape for every case (a boxed query cannot take FOR UPDATE): "every peer"
    // and "every resource" are constant-true alternatives.
    let every = |filtered: bool| {
        diesel::dsl::sql::<diesel::sql_types::Bool>(if filtered { "1 = 0" } else { "1 = 1" })
    };
    let (every_peer, every_resource) = (every(only.peer.is_some()), every(only.resource.is_some()));
    let query = sync_outbox::table
        .filter(sync_outbox::status.eq(outbox_status::PENDING))
        .filter(
            sync_outbox::peer
                .eq(only.peer.clone().unwrap_or_default())
                .or(every_peer),
        )
        .filter(
            sync_outbox::resource
                .eq(only.resource.clone().unwrap_or_default())
                .or(every_resource),
        )
        // Leased rows have their lease's end as due time; the lease check below keeps them
        // out when the backoff is ignored.
        .filter(sync_outbox::next_attempt_at.le(only.due_by(now)))
        .filter(
            sync_outbox::lease_until
                .is_null()
                .or(sync_outbox::lease_until.lt(now)),
        )
        // The due index's order (InnoDB and SQLite both append the primary key to it).
        .order((sync_outbox::next_attempt_at.asc(), sync_outbox::id.asc()))
        .limit(limit)
        .select((
            sync_outbox::id,
            sync_outbox::peer,
            sync_outbox::resource,
            sync_outbox::seq,
            sync_outbox::attempts,
        ));
    let claimed: Vec<Claimed> = match conn {
        AnyConnection::Mysql(c) => query.for_update().skip_locked().load(c)?,
        AnyConnection::Sqlite(c) => query.load(c)?,
    };
    let ids: Vec<i64> = claimed.iter().map(|c| c.id).collect();
    for chunk in ids.chunks(500) {
        diesel::update(sync_outbox::table.filter(sync_outbox::id.eq_any(chunk)))
            .set((
                sync_outbox::lease_owner.eq(Some(owner)),
                sync_outbox::lease_until.eq(Some(lease_until)),
                // Out of the due range while leased: other claimers' walks of the due index
                // never meet these rows (they used to read and skip every leased row ahead
                // of the free ones: 3 000 for a fourth worker behind three claims of 1 000,
                // B5). A lease that runs out makes the entry due again by itself.
                sync_outbox::next_attempt_at.eq(lease_until),
                sync_outbox::updated_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(claimed)
}

/// The changelog entries `(resource, seqs)`, in seq order.
pub fn changes(
    conn: &mut AnyConnection,
    resource: &str,
    seqs: &[i64],
) -> QueryResult<Vec<ChangeLogEntry>> {
    let mut out = Vec::with_capacity(seqs.len());
    for chunk in seqs.chunks(500) {
        out.extend(
            sync_changelog::table
                .filter(sync_changelog::resource.eq(resource))
                .filter(sync_changelog::seq.eq_any(chunk))
                .order(sync_changelog::seq.asc())
                .select(ChangeLogEntry::as_select())
                .load(conn)?,
        );
    }
    Ok(out)
}

/// The peer applied these entries.
pub fn mark_delivered(conn: &mut AnyConnection, owner: &str, ids: &[i64]) -> QueryResult<()> {
    let now = ship::db::utc_now();
    for chunk in ids.chunks(500) {
        diesel::update(
            sync_outbox::table
                .filter(sync_outbox::id.eq_any(chunk))
                .filter(sync_outbox::lease_owner.eq(owner)),
        )
        .set((
            sync_outbox::status.eq(outbox_status::DELIVERED),
            sync_outbox::delivered_at.eq(Some(now)),
            sync_outbox::lease_owner.eq(None::<String>),
            sync_outbox::lease_until.eq(None::<NaiveDateTime>),
            sync_outbox::updated_at.eq(now),
        ))
        .execute(conn)?;
    }
    Ok(())
}

/// These entries can never be delivered (the peer refused the op itself).
pub fn mark_dead(
    conn: &mut AnyConnection,
    owner: &str,
    ids: &[i64],
    error: &str,
) -> QueryResult<()> {
    let now = ship::db::utc_now();
    for chunk in ids.chunks(500) {
        diesel::update(
            sync_outbox::table
                .filter(sync_outbox::id.eq_any(chunk))
                .filter(sync_outbox::lease_owner.eq(owner)),
        )
        .set((
            sync_outbox::status.eq(outbox_status::DEAD),
            sync_outbox::attempts.eq(sync_outbox::attempts + 1),
            sync_outbox::last_error.eq(Some(error)),
            sync_outbox::lease_owner.eq(None::<String>),
            sync_outbox::lease_until.eq(None::<NaiveDateTime>),
            sync_outbox::updated_at.eq(now),
        ))
        .execute(conn)?;
    }
    Ok(())
}

/// Due again at `next_attempt_at` with `error` noted and the lease given up; one more attempt
/// counted when `count_attempt` (a failed send), none when the reason is not the entries' own
/// (the peer's clock is behind).
pub fn reschedule(
    conn: &mut AnyConnection,
    owner: &str,
    ids: &[i64],
    error: &str,
    next_attempt_at: NaiveDateTime,
    count_attempt: bool,
) -> QueryResult<()> {
    let now = ship::db::utc_now();
    for chunk in ids.chunks(500) {
        diesel::update(
            sync_outbox::table
                .filter(sync_outbox::id.eq_any(chunk))
                .filter(sync_outbox::lease_owner.eq(owner)),
        )
        .set((
            sync_outbox::attempts.eq(sync_outbox::attempts + i32::from(count_attempt)),
            sync_outbox::next_attempt_at.eq(next_attempt_at),
            sync_outbox::last_error.eq(Some(error)),
            sync_outbox::lease_owner.eq(None::<String>),
            sync_outbox::lease_until.eq(None::<NaiveDateTime>),
            sync_outbox::updated_at.eq(now),
        ))
        .execute(conn)?;
    }
    Ok(())
}

/// A failed attempt: one more attempt counted, the next one at `next_attempt_at`; entries that
/// reach `max_attempts` are dead.
pub fn mark_failed(
    conn: &mut AnyConnection,
    owner: &str,
    ids: &[i64],
    error: &str,
    next_attempt_at: NaiveDateTime,
    max_attempts: i32,
) -> QueryResult<()> {
    // Entries on their last attempt die; the others wait for the next one.
    let mut dying = Vec::new();
    for chunk in ids.chunks(500) {
        dying.extend(
            sync_outbox::table
                .filter(sync_outbox::id.eq_any(chunk))
                .filter(sync_outbox::lease_owner.eq(owner))
                .filter(sync_outbox::attempts.ge(max_attempts - 1))
                .select(sync_outbox::id)
                .load::<i64>(conn)?,
        );
    }
    mark_dead(conn, owner, &dying, error)?;
    reschedule(conn, owner, ids, error, next_attempt_at, true)
}

/// Per (peer, resource, status): entries, the oldest creation, the newest delivery.
pub type StatusRow = (
    String,
    String,
    String,
    i64,
    Option<NaiveDateTime>,
    Option<NaiveDateTime>,
);

pub fn stats(conn: &mut AnyConnection) -> QueryResult<Vec<StatusRow>> {
    use diesel::dsl::{count_star, max, min};
    sync_outbox::table
        .group_by((
            sync_outbox::peer,
            sync_outbox::resource,
            sync_outbox::status,
        ))
        .select((
            sync_outbox::peer,
            sync_outbox::resource,
            sync_outbox::status,
            count_star(),
            min(sync_outbox::created_at),
            max(sync_outbox::delivered_at),
        ))
        .order((
            sync_outbox::peer,
            sync_outbox::resource,
            sync_outbox::status,
        ))
        .load(conn)
}

/// An entry owed to a peer (or dead) as operators see it.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, serde::Serialize)]
pub struct EntryRow {
    /// The outbox row's id (what `outbox retry` takes); none for an entry of a delivery
    /// stream, which has no row of its own.
    pub id: Option<i64>,
    pub peer: String,
    pub resource: String,
    pub seq: i64,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: NaiveDateTime,
    pub last_error: Option<String>,
    pub created_at: NaiveDateTime,
}

/// Up to `limit` entries, oldest first: pending ones, or dead ones.
pub fn list(conn: &mut AnyConnection, dead: bool, limit: i64) -> QueryResult<Vec<EntryRow>> {
    let status = if dead {
        outbox_status::DEAD
    } else {
        outbox_status::PENDING
    };
    sync_outbox::table
        .filter(sync_outbox::status.eq(status))
        .order(sync_outbox::id.asc())
        .limit(limit)
        .select((
            sync_outbox::id.nullable(),
            sync_outbox::peer,
            sync_outbox::resource,
            sync_outbox::seq,
            sync_outbox::status,
            sync_outbox::attempts,
            sync_outbox::next_attempt_at,
            sync_outbox::last_error,
            sync_outbox::created_at,
        ))
        .load(conn)
}

/// Make dead entries pending again, due now, with their attempts reset; `None`: every dead
/// entry. How many.
pub fn retry_dead(conn: &mut AnyConnection, id: Option<i64>) -> QueryResult<usize> {
    let now = ship::db::utc_now();
    let changes = (
        sync_outbox::status.eq(outbox_status::PENDING),
        sync_outbox::attempts.eq(0),
        sync_outbox::next_attempt_at.eq(now),
        sync_outbox::updated_at.eq(now),
    );
    let dead = sync_outbox::table.filter(sync_outbox::status.eq(outbox_status::DEAD));
    match id {
        Some(id) => diesel::update(dead.filter(sync_outbox::id.eq(id)))
            .set(changes)
            .execute(conn),
        None => diesel::update(dead).set(changes).execute(conn),
    }
}

/// Extend `owner`'s lease on `ids` to `until`, only where it still holds it and it has not
/// run out; the ids whose lease was extended (the only ones it may send).
pub fn renew(
    conn: &mut AnyConnection,
    owner: &str,
    ids: &[i64],
    until: NaiveDateTime,
) -> QueryResult<Vec<i64>> {
    let now = ship::db::utc_now();
    let mut kept = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let extended = diesel::update(
            sync_outbox::table
                .filter(sync_outbox::id.eq_any(chunk))
                .filter(sync_outbox::lease_owner.eq(owner))
                .filter(sync_outbox::lease_until.ge(now)),
        )
        .set((
            sync_outbox::lease_until.eq(Some(until)),
            sync_outbox::next_attempt_at.eq(until),
        ))
        .execute(conn)?;
        // Every row extended (the ids are distinct): all still ours, nothing to read back.
        // Fewer (lost leases, or rows a backend counts as unchanged): read which are ours.
        if extended == chunk.len() {
            kept.extend_from_slice(chunk);
            continue;
        }
        kept.extend(
            sync_outbox::table
                .filter(sync_outbox::id.eq_any(chunk))
                .filter(sync_outbox::lease_owner.eq(owner))
                .filter(sync_outbox::lease_until.eq(Some(until)))
                .select(sync_outbox::id)
                .load::<i64>(conn)?,
        );
    }
    Ok(kept)
}

/// Delete undelivered entries: one by id, or every one owed to `peer`. How many.
pub fn discard(
    conn: &mut AnyConnection,
    id: Option<i64>,
    peer: Option<&str>,
) -> QueryResult<usize> {
    let owed = sync_outbox::table.filter(sync_outbox::status.ne(outbox_status::DELIVERED));
    match (id, peer) {
        (Some(id), _) => diesel::delete(owed.filter(sync_outbox::id.eq(id))).execute(conn),
        (None, Some(peer)) => diesel::delete(owed.filter(sync_outbox::peer.eq(peer))).execute(conn),
        (None, None) => Ok(0),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use ship::testing::TestDb;

    fn backlog(conn: &mut AnyConnection, n: i64) {
        let now = ship::db::utc_now() - chrono::Duration::seconds(1);
        let entries: Vec<NewOutboxEntry<'_>> = (1..=n)
            .map(|seq| NewOutboxEntry {
                peer: "us",
                resource: "customers",
                seq,
                status: outbox_status::PENDING,
                attempts: 0,
                next_attempt_at: now,
                last_error: None,
                created_at: now,
                updated_at: now,
            })
            .collect();
        insert_all(conn, &entries).unwrap();
    }

    /// Regression (B5): on MariaDB a claim in flight locked every pending row (a filesort on
    /// `id`), so a second dispatcher claiming at the same moment got nothing.
    /// Now it gets the next entries at once. (On SQLite a claim holds the write lock: there
    /// claims are serial by design.)
    mod a_claim_in_flight_leaves_the_rest_of_the_backlog_to_others {
        use super::*;

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn mysql() {
            let db = TestDb::mysql();
            backlog(&mut db.pool.get().unwrap(), 50);
            let now = ship::db::utc_now();
            let until = now + chrono::Duration::seconds(60);
            let mut first = db.pool.get().unwrap();
            let mut second = db.pool.get().unwrap();
            let (mine, theirs) = ship::db::transact(&mut first, |conn| {
                let mine =
                    claim_in_transaction(conn, "first", now, until, 10, &ClaimFilter::default())?;
                // The first claim has not committed: its rows are locked, the others not.
                let theirs = claim(
                    &mut second,
                    "second",
                    now,
                    until,
                    10,
                    &ClaimFilter::default(),
                )?;
                Ok::<_, diesel::result::Error>((mine, theirs))
            })
            .unwrap();
            let mine: Vec<i64> = mine.iter().map(|c| c.seq).collect();
            let theirs: Vec<i64> = theirs.iter().map(|c| c.seq).collect();
            assert_eq!(mine, (1..=10).collect::<Vec<_>>(), "oldest due first");
            assert_eq!(
                theirs,
                (11..=20).collect::<Vec<_>>(),
                "the next ten, not nothing"
            );
            // Once both committed, a third claim skips both leases.
            let third = claim(
                &mut db.pool.get().unwrap(),
                "third",
                now,
                until,
                100,
                &ClaimFilter::default(),
            )
            .unwrap();
            assert_eq!(third.len(), 30);
            assert_eq!(third[0].seq, 21);
        }
    }

    ship::backend_tests! {
        /// `sync run --peer P --resource R` claims only what is owed to P for R (regression:
        /// the push ignored `--resource`).
        async fn a_filtered_claim_takes_only_its_peer_and_resource(db: TestDb) {
            let mut conn = db.pool.get().unwrap();
            let now = ship::db::utc_now() - chrono::Duration::seconds(1);
            let mut entries = Vec::new();
            for (peer, resource) in [("us", "customers"), ("us", "invoices"), ("ap", "customers"), ("ap", "invoices")] {
                for seq in 1..=3 {
                    entries.push(NewOutboxEntry { peer, resource, seq, status: outbox_status::PENDING, attempts: 0, next_attempt_at: now, last_error: None, created_at: now, updated_at: now });
                }
            }
            insert_all(&mut conn, &entries).unwrap();
            let until = now + chrono::Duration::seconds(60);
            let take = |conn: &mut AnyConnection, peer: Option<&str>, resource: Option<&str>| {
                let only = ClaimFilter { peer: peer.map(Into::into), resource: resource.map(Into::into), ..ClaimFilter::default() };
                let mut got: Vec<(String, String)> = claim(conn, "w", ship::db::utc_now(), until, 100, &only).unwrap().into_iter().map(|c| (c.peer, c.resource)).collect();
                got.dedup();
                got
            };
            assert_eq!(take(&mut conn, Some("us"), Some("invoices")), [("us".to_string(), "invoices".to_string())]);
            assert_eq!(take(&mut conn, None, Some("invoices")), [("ap".to_string(), "invoices".to_string())]);
            assert_eq!(take(&mut conn, Some("ap"), None), [("ap".to_string(), "customers".to_string())]);
            assert_eq!(take(&mut conn, None, None), [("us".to_string(), "customers".to_string())]);
        }

        /// Regression (B5): leased rows stayed in the due range, so every claim read (and on
        /// MariaDB tried to lock) all the rows other dispatchers had leased before reaching a
        /// free one. A lease now moves the row's due time to the lease's end: later claims
        /// start at the free rows, and a lease that runs out makes its rows due again.
        async fn leased_entries_leave_the_due_range_until_their_lease_ends(db: TestDb) {
            let mut conn = db.pool.get().unwrap();
            backlog(&mut conn, 30);
            let now = ship::db::utc_now();
            let until = now + chrono::Duration::seconds(60);
            let first = claim(&mut conn, "first", now, until, 20, &ClaimFilter::default()).unwrap();
            assert_eq!(first.len(), 20);
            let due: i64 = sync_outbox::table
                .filter(sync_outbox::status.eq(outbox_status::PENDING))
                .filter(sync_outbox::next_attempt_at.le(now))
                .count()
                .get_result(&mut *conn)
                .unwrap();
            assert_eq!(due, 10, "only the unleased entries are due");
            let second = claim(&mut conn, "second", now, until, 100, &ClaimFilter::default()).unwrap();
            assert_eq!(second.iter().map(|c| c.seq).collect::<Vec<_>>(), (21..=30).collect::<Vec<_>>());
            // A renewal keeps them out; once the lease has run out they are due again.
            let later = until + chrono::Duration::seconds(30);
            let ids: Vec<i64> = first.iter().map(|c| c.id).collect();
            assert_eq!(renew(&mut conn, "first", &ids, later).unwrap(), ids, "still ours");
            let expired = claim(&mut conn, "third", until + chrono::Duration::seconds(1), later, 100, &ClaimFilter::default()).unwrap();
            assert_eq!(expired.iter().map(|c| c.seq).collect::<Vec<_>>(), (21..=30).collect::<Vec<_>>(), "second's lease ran out, first's was renewed");
            let after = later + chrono::Duration::seconds(1);
            let third = claim(&mut conn, "third", after, after + chrono::Duration::seconds(60), 100, &ClaimFilter::default()).unwrap();
            assert_eq!(third.len(), 30, "every lease ran out");
            assert_eq!(renew(&mut conn, "first", &ids, after).unwrap(), Vec::<i64>::new(), "no longer first's");
        }
    }
}
