//! Changelog queries: sequence allocation, appends, the feed's page and watermark.

use diesel::prelude::*;
use diesel::result::Error as DieselError;
use ship::db::inline_sql::Literal;
use ship::AnyConnection;

use super::schema::{sync_changelog, sync_sequences};
use crate::models::{ChangeLogEntry, ChangeLogRow, FeedRow};

/// Create the sequence row of each resource that has none (idempotent; run outside the
/// writing transactions, at start). Creating it lazily inside concurrent appends would make
/// them deadlock on MariaDB: each waiting duplicate-key insert holds a shared lock that the
/// following UPDATE must upgrade.
pub fn ensure_sequences<'a>(
    conn: &mut AnyConnection,
    resources: impl IntoIterator<Item = &'a str>,
) -> QueryResult<()> {
    for resource in resources {
        let exists = sync_sequences::table
            .find(resource)
            .count()
            .get_result::<i64>(conn)?
            > 0;
        if exists {
            continue;
        }
        // Created by another process a moment ago: 0 inserted, nothing to do.
        ship::insert_if_absent!(
            conn,
            sync_sequences::table,
            (
                sync_sequences::resource.eq(resource),
                sync_sequences::last_seq.eq(0_i64),
                sync_sequences::pruned_through.eq(0_i64),
            )
        )?;
    }
    Ok(())
}

/// `max_hlc` raised to `$to` if lower: the larger of the two, which SQLite spells `max` and
/// MariaDB and PostgreSQL `GREATEST` (`$function`).
macro_rules! raised {
    ($function:literal, $to:expr) => {
        diesel::dsl::sql::<diesel::sql_types::BigInt>(concat!($function, "(max_hlc, "))
            .bind::<diesel::sql_types::BigInt, _>($to)
            .sql(")")
    };
}

/// Reserve `n` consecutive sequence numbers for `resource`, whose entries' largest HLC is
/// `max_hlc`; returns the first.
///
/// The same statement raises the resource's clock mark (`max_hlc`) to `max_hlc`: the clock
/// resumes from the largest mark at start ([`max_hlc`], ADR 0019), so every append must come
/// through here with its entries' largest HLC.
///
/// The UPDATE takes the sequence row's write lock until the transaction ends, so appends to one
/// resource commit in seq order (the gap-safety of the changes feed). Must run inside the
/// appending transaction. The row must exist ([`ensure_sequences`] at start): creating it here,
/// among concurrent appenders, would deadlock on MariaDB, so a missing row is an error.
pub fn allocate_seqs(
    conn: &mut AnyConnection,
    resource: &str,
    n: i64,
    max_hlc: i64,
) -> QueryResult<i64> {
    let unprepared = || unprepared(resource);
    let last = match conn {
        // One round trip: UPDATE … RETURNING (SQLite >= 3.35, bundled).
        AnyConnection::Sqlite(c) => diesel::update(sync_sequences::table.find(resource))
            .set((
                sync_sequences::last_seq.eq(sync_sequences::last_seq + n),
                sync_sequences::max_hlc.eq(raised!("max", max_hlc)),
            ))
            .returning(sync_sequences::last_seq)
            .get_result::<i64>(c)
            .optional()?
            .ok_or_else(unprepared)?,
        // The same on PostgreSQL (ADR 0018; never a SEQUENCE: not transactional).
        AnyConnection::Pg(c) => diesel::update(sync_sequences::table.find(resource))
            .set((
                sync_sequences::last_seq.eq(sync_sequences::last_seq + n),
                sync_sequences::max_hlc.eq(raised!("GREATEST", max_hlc)),
            ))
            .returning(sync_sequences::last_seq)
            .get_result::<i64>(c)
            .optional()?
            .ok_or_else(unprepared)?,
        // MariaDB has no UPDATE … RETURNING: bump under the row lock, then read it back (a
        // cached prepared SELECT). Diesel never caches its own UPDATE (prepare, execute,
        // close), so the bump is a statement of fixed text with parameters, prepared once per
        // connection: one round trip, under the lock every writer of the resource waits for
        // (ADR 0021).
        AnyConnection::Mysql(c) => {
            BumpSequence {
                resource,
                n,
                max_hlc,
            }
            .execute(c)?;
            // No row, nothing bumped: the read finds none either.
            sync_sequences::table
                .find(resource)
                .select(sync_sequences::last_seq)
                .first(c)
                .optional()?
                .ok_or_else(unprepared)?
        }
    };
    Ok(last - n + 1)
}

/// The error of an append to a resource whose sequence row is missing.
fn unprepared(resource: &str) -> DieselError {
    DieselError::QueryBuilderError(
        format!("resource `{resource}` has no changelog sequence: it was not prepared at start")
            .into(),
    )
}

/// MariaDB's sequence bump: `n` more seqs for `resource`, its clock mark raised to `max_hlc`.
/// Its text never varies, so diesel prepares it once per connection and caches it (keyed by
/// its type: a static `QueryId`).
struct BumpSequence<'a> {
    resource: &'a str,
    n: i64,
    max_hlc: i64,
}

// A static id: the statement cache finds it by its type, without writing its SQL first.
impl diesel::query_builder::QueryId for BumpSequence<'_> {
    type QueryId = BumpSequence<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl diesel::query_builder::QueryFragment<diesel::mysql::Mysql> for BumpSequence<'_> {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::mysql::Mysql>,
    ) -> QueryResult<()> {
        use diesel::sql_types::{BigInt, Text};
        out.push_sql("UPDATE sync_sequences SET last_seq = last_seq + ");
        out.push_bind_param::<BigInt, _>(&self.n)?;
        out.push_sql(", max_hlc = GREATEST(max_hlc, ");
        out.push_bind_param::<BigInt, _>(&self.max_hlc)?;
        out.push_sql(") WHERE resource = ");
        out.push_bind_param::<Text, _>(self.resource)?;
        Ok(())
    }
}

impl RunQueryDsl<diesel::MysqlConnection> for BumpSequence<'_> {}

/// `(last_seq, pruned_through)` of `resource`; `(0, 0)` before its first change.
///
/// Read before the page query: every entry with `seq <= last_seq` is committed when this value
/// is visible (appends bump it in their own transaction, under its lock).
pub fn watermark(conn: &mut AnyConnection, resource: &str) -> QueryResult<(i64, i64)> {
    Ok(sync_sequences::table
        .find(resource)
        .select((sync_sequences::last_seq, sync_sequences::pruned_through))
        .first(conn)
        .optional()?
        .unwrap_or((0, 0)))
}

pub fn insert(conn: &mut AnyConnection, entry: &ChangeLogEntry) -> QueryResult<()> {
    diesel::insert_into(sync_changelog::table)
        .values(entry)
        .execute(conn)
        .map(drop)
}

/// Append `entries` (all of `resource`, their largest HLC `max_hlc`; their own `seq` is not
/// read) with the next seqs, in order: one sequence bump for them all ([`allocate_seqs`]) and one insert —
/// the cached one-row statement for a single entry, multi-row statements for more. On MariaDB
/// no seq is read back under the sequence row's lock, which every writer of the resource
/// waits for: a single entry (a local write's) takes its seq from the row it locks
/// ([`AppendOne`], ADR 0021); several go in one text query with the bump, numbered from the
/// value the bump replaced ([`append_inline`], ADR 0023).
pub fn append(
    conn: &mut AnyConnection,
    resource: &str,
    mut entries: Vec<ChangeLogEntry>,
    max_hlc: i64,
) -> QueryResult<()> {
    if let (AnyConnection::Mysql(c), [entry]) = (&mut *conn, entries.as_slice()) {
        let inserted = AppendOne { resource, entry }.execute(c)?;
        if inserted == 0 {
            return Err(unprepared(resource));
        }
        BumpSequence {
            resource,
            n: 1,
            max_hlc,
        }
        .execute(c)?;
        return Ok(());
    }
    if let AnyConnection::Mysql(c) = &mut *conn {
        return append_inline(c, resource, &mut entries, max_hlc);
    }
    let first = allocate_seqs(conn, resource, entries.len() as i64, max_hlc)?;
    for (entry, seq) in entries.iter_mut().zip(first..) {
        entry.seq = seq;
    }
    match entries.as_slice() {
        [entry] => insert(conn, entry),
        _ => insert_all(conn, &entries),
    }
}

/// The session variable in which a MariaDB append of several entries keeps the `last_seq` its
/// bump replaced ([`append_inline`]).
const SEQ_VAR: &str = "@regionsync_seq";

/// The head of MariaDB's multi-row changelog insert.
const MYSQL_INSERT_HEAD: &str = "INSERT INTO sync_changelog (seq, resource, entity_id, op, \
     payload, hlc, origin_region, schema_version, created_at) VALUES ";

/// An entry's values for [`MYSQL_INSERT_HEAD`], its seq written as `seq`.
fn mysql_literals<'e>(e: &'e ChangeLogEntry, seq: Literal<'e>) -> [Literal<'e>; 9] {
    [
        seq,
        Literal::Text(&e.resource),
        Literal::Text(&e.entity_id),
        Literal::Text(&e.op),
        Literal::Text(&e.payload),
        Literal::BigInt(e.hlc),
        Literal::Text(&e.origin_region),
        Literal::Integer(e.schema_version),
        Literal::Timestamp(e.created_at),
    ]
}

/// The op of a batch row (ADR 0026): its entries, upserts all, are in its payload.
pub const BATCH_OP: &str = "batch";

/// Entries a batch row holds at most. Part of the stored layout: a page of the feed reads the
/// rows up to this many seqs past its last entry, to find the row that holds it.
pub const BATCH_ROW_MAX: i64 = 1_000;

/// Bytes of entries a batch row holds at most (past its first): a whole batch of ordinary rows
/// in one, a literal far below MariaDB's packet limit.
pub const BATCH_ROW_BYTES: usize = 512 * 1024;

/// The fewest entries of one origin an apply stores as a batch row; fewer go as rows of one
/// entry each.
pub const BATCH_ROW_FROM: usize = 2;

/// One entry of a batch row, as its payload holds it: `[entity_id, hlc, payload]` — the
/// payload JSON text spliced as it is.
pub fn batch_element(
    entity_id: &str,
    hlc: i64,
    payload: &ship::contracts::Payload,
) -> QueryResult<String> {
    let id = serde_json::to_string(entity_id)
        .map_err(|e| DieselError::SerializationError(Box::new(e)))?;
    let mut out = String::with_capacity(id.len() + 280);
    out.push('[');
    out.push_str(&id);
    out.push(',');
    out.push_str(&hlc.to_string());
    out.push(',');
    payload.write_text(&mut out);
    out.push(']');
    Ok(out)
}

/// A batch row's payload: its entries ([`batch_element`]) as one JSON array.
pub fn batch_payload<'e>(elements: impl IntoIterator<Item = &'e str>) -> String {
    let mut out = String::from("[");
    for (k, element) in elements.into_iter().enumerate() {
        if k > 0 {
            out.push(',');
        }
        out.push_str(element);
    }
    out.push(']');
    out
}

/// An entry of a batch row as read back: its entity id, HLC and payload (borrowed from the
/// row's payload).
#[derive(Debug, serde::Deserialize)]
pub struct Element<'a>(
    #[serde(borrow)] pub std::borrow::Cow<'a, str>,
    pub i64,
    #[serde(borrow)] pub &'a serde_json::value::RawValue,
);

/// The entries of the batch row `seq` (covering `first_seq ..= seq`, payload `payload`), with
/// the first one's seq. A payload that does not hold exactly as many entries as the row covers
/// is an error, never a shifted numbering; so is one covering more than [`BATCH_ROW_MAX`].
pub fn elements<'a>(
    resource: &str,
    seq: i64,
    first_seq: Option<i64>,
    payload: &'a str,
) -> QueryResult<(i64, Vec<Element<'a>>)> {
    let first = first_seq.ok_or_else(|| corrupt(resource, seq, "no first_seq".into()))?;
    let (counted, elements) = counted_elements(resource, seq, payload)?;
    if counted != first {
        return Err(corrupt(
            resource,
            seq,
            format!("{} entries for the seqs {first}..={seq}", elements.len()),
        ));
    }
    Ok((first, elements))
}

/// As [`elements`], the first seq counted back from the row's last by its entries (the feed
/// reads no `first_seq`: a column fewer on every row it reads, B3).
pub fn counted_elements<'a>(
    resource: &str,
    seq: i64,
    payload: &'a str,
) -> QueryResult<(i64, Vec<Element<'a>>)> {
    let elements: Vec<Element<'a>> =
        serde_json::from_str(payload).map_err(|e| corrupt(resource, seq, e.to_string()))?;
    let n = elements.len() as i64;
    // A page reads rows up to BATCH_ROW_MAX seqs past its end: a longer row could be missed.
    if n == 0 || n > BATCH_ROW_MAX {
        return Err(corrupt(
            resource,
            seq,
            format!("{n} entries, not 1 to {BATCH_ROW_MAX}"),
        ));
    }
    Ok((seq - n + 1, elements))
}

/// The error of a batch row whose payload is not what its row says.
fn corrupt(resource: &str, seq: i64, why: String) -> DieselError {
    DieselError::DeserializationError(
        format!("the changelog's batch row {resource}/{seq}: {why}").into(),
    )
}

/// Append `rows` — rows of one entry and batch rows, their `seq` and `first_seq` their places
/// among the `entries` they hold (1 for the first entry; a batch row of the 2nd to 5th
/// entries has `first_seq` 2 and `seq` 5) — to `resource`'s changelog, numbered on from the
/// sequence row (whose clock mark is raised to `max_hlc`): one bump, then multi-row inserts.
/// On MariaDB in one text query, numbered on the server ([`append_statements`]).
pub fn append_rows(
    conn: &mut AnyConnection,
    resource: &str,
    mut rows: Vec<ChangeLogRow>,
    entries: i64,
    max_hlc: i64,
) -> QueryResult<()> {
    if let AnyConnection::Mysql(c) = &mut *conn {
        return append_statements(c, resource, MYSQL_ROW_HEAD, &rows, entries, max_hlc, |r| {
            let [seq, resource, id, op, payload, hlc, origin, version, at] =
                mysql_literals(&r.entry, Literal::VarPlus(SEQ_VAR, r.entry.seq));
            let first = match r.first_seq {
                Some(first) => Literal::VarPlus(SEQ_VAR, first),
                None => Literal::Null,
            };
            [
                seq, resource, id, op, payload, hlc, origin, version, at, first,
            ]
        });
    }
    let before = allocate_seqs(conn, resource, entries, max_hlc)? - 1;
    for row in &mut rows {
        row.entry.seq += before;
        row.first_seq = row.first_seq.map(|first| first + before);
    }
    let insert = || diesel::insert_into(sync_changelog::table);
    match conn {
        AnyConnection::Sqlite(c) => bound_chunks(
            &rows,
            |r| r.entry.payload.len(),
            |chunk| insert().values(chunk).execute(c),
        ),
        AnyConnection::Pg(c) => bound_chunks(
            &rows,
            |r| r.entry.payload.len(),
            |chunk| insert().values(chunk).execute(c),
        ),
        AnyConnection::Mysql(_) => Err(DieselError::QueryBuilderError(
            "unreachable: MariaDB appends above".into(),
        )),
    }
}

/// The head of MariaDB's multi-row insert of [`ChangeLogRow`]s: an entry's columns
/// ([`MYSQL_INSERT_HEAD`]), then `first_seq`.
const MYSQL_ROW_HEAD: &str = "INSERT INTO sync_changelog (seq, resource, entity_id, op, \
     payload, hlc, origin_region, schema_version, created_at, first_seq) VALUES ";

/// MariaDB, two entries or more: one text query (ADR 0023) — the sequence bump, which keeps
/// the `last_seq` it replaces in [`SEQ_VAR`], then the multi-row insert, whose seqs are that
/// variable plus 1, 2, … in order. No read-back round trip under the sequence row's lock, and
/// none between the bump and the insert. The variable is cleared first: for a resource without
/// a sequence row nothing is bumped, the seqs are NULL and the column refuses them — the clear
/// error, never the seqs of an earlier append on the connection. The entries' own `seq`s are
/// overwritten with their places (1, 2, …).
fn append_inline(
    c: &mut diesel::MysqlConnection,
    resource: &str,
    entries: &mut [ChangeLogEntry],
    max_hlc: i64,
) -> QueryResult<()> {
    for (entry, place) in entries.iter_mut().zip(1..) {
        entry.seq = place;
    }
    let n = entries.len() as i64;
    append_statements(c, resource, MYSQL_INSERT_HEAD, entries, n, max_hlc, |e| {
        mysql_literals(e, Literal::VarPlus(SEQ_VAR, e.seq))
    })
}

/// The text query of [`append_inline`] and [`append_rows`]: `rows` (in seq order, holding
/// `entries` entries; `literals` writing each with its seqs as `(@regionsync_seq + place)`),
/// inserted by statements of `head`.
fn append_statements<R, const N: usize>(
    c: &mut diesel::MysqlConnection,
    resource: &str,
    head: &str,
    rows: &[R],
    entries: i64,
    max_hlc: i64,
    literals: impl for<'r> Fn(&'r R) -> [Literal<'r>; N],
) -> QueryResult<()> {
    use ship::db::inline_sql::{chunked, push_literal};
    let mut first_head = format!(
        "SET {SEQ_VAR} = NULL; UPDATE sync_sequences SET last_seq = ({SEQ_VAR} := last_seq) + "
    );
    push_literal(&mut first_head, Literal::BigInt(entries));
    first_head.push_str(", max_hlc = GREATEST(max_hlc, ");
    push_literal(&mut first_head, Literal::BigInt(max_hlc));
    first_head.push_str(") WHERE resource = ");
    push_literal(&mut first_head, Literal::Compared(resource));
    first_head.push_str("; ");
    first_head.push_str(head);
    chunked(rows, (&first_head, head, ""), literals, |statement, _| {
        statement.execute(c)
    })
    .map_err(|e| {
        if e.to_string().contains("'seq' cannot be null") {
            unprepared(resource)
        } else {
            e
        }
    })
}

/// MariaDB: one changelog entry inserted with the seq after the sequence row's `last_seq`,
/// read under that row's write lock (`FOR UPDATE`: taken here, held to the commit, as the bump
/// that follows takes it). The entry's own `seq` is not read. A statement of fixed text:
/// prepared once per connection and cached.
struct AppendOne<'a> {
    resource: &'a str,
    entry: &'a ChangeLogEntry,
}

// A static id: the statement cache finds it by its type, without writing its SQL first.
impl diesel::query_builder::QueryId for AppendOne<'_> {
    type QueryId = AppendOne<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl diesel::query_builder::QueryFragment<diesel::mysql::Mysql> for AppendOne<'_> {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::mysql::Mysql>,
    ) -> QueryResult<()> {
        use diesel::sql_types::{BigInt, Integer, Text, Timestamp};
        let e = self.entry;
        out.push_sql(
            "INSERT INTO sync_changelog (resource, seq, entity_id, op, payload, hlc, \
             origin_region, schema_version, created_at) SELECT resource, last_seq + 1, ",
        );
        out.push_bind_param::<Text, _>(&e.entity_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&e.op)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&e.payload)?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(&e.hlc)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&e.origin_region)?;
        out.push_sql(", ");
        out.push_bind_param::<Integer, _>(&e.schema_version)?;
        out.push_sql(", ");
        out.push_bind_param::<Timestamp, _>(&e.created_at)?;
        out.push_sql(" FROM sync_sequences WHERE resource = ");
        out.push_bind_param::<Text, _>(self.resource)?;
        out.push_sql(" FOR UPDATE");
        Ok(())
    }
}

impl RunQueryDsl<diesel::MysqlConnection> for AppendOne<'_> {}

/// Rows per multi-row INSERT: a whole batch at the default `sync.max_ops_per_batch` (1,000);
/// 9 columns × 1,000 binds stays far below SQLite's (32,766) and PostgreSQL's (65,535) limits.
const INSERT_CHUNK: usize = 1_000;

/// Payload bytes per bound multi-row INSERT (SQLite, PostgreSQL): statements of a bounded
/// size whatever the payloads' size.
const INSERT_CHUNK_BYTES: usize = 512 * 1024;

/// Insert `entries` with multi-row statements: on MariaDB with the values inline
/// (`ship::db::inline_sql::insert_all`: at most 1,000 rows or 1000 KiB each); elsewhere bound,
/// by [`bound_chunks`] (diesel builds those only on a concrete connection, hence the match on
/// the backend).
pub fn insert_all(conn: &mut AnyConnection, entries: &[ChangeLogEntry]) -> QueryResult<()> {
    let insert = || diesel::insert_into(sync_changelog::table);
    match conn {
        // Values inline (the text protocol, ADR 0019): no prepare of thousands of parameters.
        AnyConnection::Mysql(c) => {
            ship::db::inline_sql::insert_all(c, MYSQL_INSERT_HEAD, entries, |e| {
                mysql_literals(e, Literal::BigInt(e.seq))
            })
        }
        AnyConnection::Sqlite(c) => bound_chunks(
            entries,
            |e| e.payload.len(),
            |chunk| insert().values(chunk).execute(c),
        ),
        AnyConnection::Pg(c) => bound_chunks(
            entries,
            |e| e.payload.len(),
            |chunk| insert().values(chunk).execute(c),
        ),
    }
}

/// `entries` cut into runs of at most [`INSERT_CHUNK`] rows and about [`INSERT_CHUNK_BYTES`] of
/// payload (`bytes`), each inserted by `insert`.
fn bound_chunks<R>(
    entries: &[R],
    bytes_of: impl Fn(&R) -> usize,
    mut insert: impl FnMut(&[R]) -> QueryResult<usize>,
) -> QueryResult<()> {
    let mut start = 0;
    while start < entries.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < entries.len()
            && end - start < INSERT_CHUNK
            && (end == start || bytes < INSERT_CHUNK_BYTES)
        {
            bytes += bytes_of(&entries[end]);
            end += 1;
        }
        insert(&entries[start..end])?;
        start = end;
    }
    Ok(())
}

/// What a page's read saw: how many entries it gave, the `(seq, hlc)` of the last, and the seq
/// through which it has seen every entry (those it gave and those it left out): the page's
/// end, its next cursor — the last entry of a full page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRead {
    pub n: usize,
    pub last: Option<(i64, i64)>,
    pub seen_through: i64,
}

/// The rows a page of at most `limit` entries after `after` reads (with batch rows, ADR 0026):
/// keys in `after < seq <= hi`, `hi` the watermark `upto` or, when that is further, the
/// page's furthest last entry plus [`BATCH_ROW_MAX`] (the row holding it ends by there), so a
/// page never reads far beyond itself. At most `limit` rows: each holds an entry after
/// `after`.
fn page_bound(after: i64, upto: i64, limit: i64) -> i64 {
    upto.min(after.saturating_add(limit).saturating_add(BATCH_ROW_MAX))
}

/// The entries of the rows handed over one by one (as [`FeedRow`]s: the feed reads no
/// `first_seq`, a batch row's first seq is counted back from its entries, B3), after `after`
/// and at most `limit`, each given to `each` (a row of one entry as it is, a batch row's
/// entries made from its payload); the page's [`PageRead`].
struct Expander<'f, F> {
    resource: &'f str,
    after: i64,
    upto: i64,
    limit: i64,
    n: usize,
    last: Option<(i64, i64)>,
    each: F,
}

impl<F: FnMut(FeedRow) -> QueryResult<()>> Expander<'_, F> {
    fn take(&mut self, row: FeedRow) -> QueryResult<()> {
        if self.n as i64 >= self.limit {
            return Ok(());
        }
        if row.op != BATCH_OP {
            self.n += 1;
            self.last = Some((row.seq, row.hlc));
            return (self.each)(row);
        }
        let (first, elements) = counted_elements(self.resource, row.seq, &row.payload)?;
        for (seq, Element(entity_id, hlc, payload)) in (first..).zip(elements) {
            if seq <= self.after {
                continue;
            }
            if self.n as i64 >= self.limit {
                break;
            }
            self.n += 1;
            self.last = Some((seq, hlc));
            (self.each)(FeedRow {
                seq,
                entity_id: entity_id.into_owned(),
                op: ship::contracts::OpKind::Upsert.as_str().to_string(),
                payload: payload.get().to_string(),
                hlc,
                origin_region: row.origin_region.clone(),
                schema_version: row.schema_version,
            })?;
        }
        Ok(())
    }

    /// What the page saw. One that read to the watermark has seen everything through it. A
    /// full one, through its last entry. One that is not full and stopped short of the
    /// watermark (the rows it read were mostly left out) has seen everything before the next
    /// row it would not leave out: one more read by key finds it, so a reader skips a run of
    /// left-out rows in one page, not a page of `limit` at a time.
    fn read(self, conn: &mut AnyConnection, exclude_origin: Option<&str>) -> QueryResult<PageRead> {
        let hi = page_bound(self.after, self.upto, self.limit);
        let mut seen = self.upto;
        if self.n as i64 == self.limit {
            seen = self.last.map_or(self.after, |(seq, _)| seq);
        } else if hi < self.upto {
            let next = sync_changelog::table
                .filter(sync_changelog::resource.eq(self.resource))
                .filter(sync_changelog::seq.gt(hi))
                .filter(sync_changelog::seq.le(self.upto))
                .select((sync_changelog::seq, sync_changelog::first_seq))
                .order(sync_changelog::seq.asc());
            let next: Option<(i64, Option<i64>)> = match exclude_origin {
                Some(origin) => next
                    .filter(sync_changelog::origin_region.ne(origin))
                    .first(conn)
                    .optional()?,
                None => next.first(conn).optional()?,
            };
            // Rows are disjoint and each commits whole, so every entry before the next row
            // kept is in a row read or left out; none kept: the watermark.
            seen = next.map_or(self.upto, |(key, first)| first.unwrap_or(key) - 1);
        }
        Ok(PageRead {
            n: self.n,
            last: self.last,
            seen_through: seen,
        })
    }
}

/// Entries of `resource` with `after < seq <= upto`, oldest first, at most `limit`, leaving out
/// those whose origin is `exclude_origin`; with what the read saw ([`PageRead`]).
pub fn page(
    conn: &mut AnyConnection,
    resource: &str,
    after: i64,
    upto: i64,
    exclude_origin: Option<&str>,
    limit: i64,
) -> QueryResult<(Vec<ChangeLogEntry>, PageRead)> {
    let range = sync_changelog::table
        .filter(sync_changelog::resource.eq(resource))
        .filter(sync_changelog::seq.gt(after))
        .filter(sync_changelog::seq.le(page_bound(after, upto, limit)));
    let rows: Vec<ChangeLogRow> = match exclude_origin {
        Some(origin) => range
            .filter(sync_changelog::origin_region.ne(origin))
            .select(ChangeLogRow::as_select())
            .order(sync_changelog::seq.asc())
            .limit(limit)
            .load(conn)?,
        None => range
            .select(ChangeLogRow::as_select())
            .order(sync_changelog::seq.asc())
            .limit(limit)
            .load(conn)?,
    };
    let mut served = Vec::new();
    // Each row's time, with how many entries were served before it.
    let mut times = Vec::with_capacity(rows.len());
    let mut expander = Expander {
        resource,
        after,
        upto,
        limit,
        n: 0,
        last: None,
        each: |row: FeedRow| {
            served.push(row);
            Ok(())
        },
    };
    for ChangeLogRow { entry: row, .. } in rows {
        times.push((expander.n, row.created_at));
        expander.take(FeedRow {
            seq: row.seq,
            entity_id: row.entity_id,
            op: row.op,
            payload: row.payload,
            hlc: row.hlc,
            origin_region: row.origin_region,
            schema_version: row.schema_version,
        })?;
    }
    let read = expander.read(conn, exclude_origin)?;
    let entries = served
        .into_iter()
        .enumerate()
        .map(|(k, r)| ChangeLogEntry {
            resource: resource.to_string(),
            // The time of the last row that began at or before entry `k`.
            created_at: times
                .get(
                    times
                        .partition_point(|(from, _)| *from <= k)
                        .saturating_sub(1),
                )
                .map(|(_, at)| *at)
                .unwrap_or_default(),
            seq: r.seq,
            entity_id: r.entity_id,
            op: r.op,
            payload: r.payload,
            hlc: r.hlc,
            origin_region: r.origin_region,
            schema_version: r.schema_version,
        })
        .collect();
    Ok((entries, read))
}

/// The entries [`page`] selects, as the feed serves them ([`FeedRow`]), handed to `each` one by
/// one as they are read (none is kept: the caller writes it out and drops it); what the read
/// saw ([`PageRead`]). A batch row's entries are made from its payload, those up to `after`
/// left out ([`page_bound`] for the rows read).
///
/// On the backend's own connection: through [`AnyConnection`] every column of every row went
/// through the multi-backend's value conversion, a fifth of a page's cost on SQLite (B3). The
/// SQL is fixed (two queries), so each backend's statement cache keeps it prepared.
pub fn page_each(
    conn: &mut AnyConnection,
    resource: &str,
    after: i64,
    upto: i64,
    exclude_origin: Option<&str>,
    limit: i64,
    each: impl FnMut(FeedRow) -> QueryResult<()>,
) -> QueryResult<PageRead> {
    let range = sync_changelog::table
        .filter(sync_changelog::resource.eq(resource))
        .filter(sync_changelog::seq.gt(after))
        .filter(sync_changelog::seq.le(page_bound(after, upto, limit)));
    let mut expander = Expander {
        resource,
        after,
        upto,
        limit,
        n: 0,
        last: None,
        each,
    };
    let mut take = |row: QueryResult<FeedRow>| expander.take(row?);
    // One arm per backend and query: `load_iter` is typed by the concrete connection.
    macro_rules! each_row {
        ($conn:expr) => {
            match exclude_origin {
                Some(origin) => range
                    .filter(sync_changelog::origin_region.ne(origin))
                    .select(FeedRow::as_select())
                    .order(sync_changelog::seq.asc())
                    .limit(limit)
                    .load_iter::<FeedRow, diesel::connection::DefaultLoadingMode>($conn)?
                    .try_for_each(&mut take)?,
                None => range
                    .select(FeedRow::as_select())
                    .order(sync_changelog::seq.asc())
                    .limit(limit)
                    .load_iter::<FeedRow, diesel::connection::DefaultLoadingMode>($conn)?
                    .try_for_each(&mut take)?,
            }
        };
    }
    match conn {
        AnyConnection::Sqlite(c) => each_row!(c),
        AnyConnection::Mysql(c) => each_row!(c),
        AnyConnection::Pg(c) => each_row!(c),
    }
    expander.read(conn, exclude_origin)
}

/// Entries of each resource, the newest, whose HLCs [`max_hlc`] reads besides the marks.
const RESUME_WINDOW: i64 = 10_000;

/// The largest HLC appended to the changelog, of any resource (the clock resumes from it at
/// start): the largest clock mark of the sequence rows, which every append raises
/// ([`allocate_seqs`]) and prune leaves alone — and, for entries appended without raising it
/// (by a process still running the version before the mark, during a rolling upgrade), the
/// largest HLC among each resource's newest [`RESUME_WINDOW`] entries, read by primary key.
/// `None` before the first append.
pub fn max_hlc(conn: &mut AnyConnection) -> QueryResult<Option<i64>> {
    let marks: Vec<(String, i64, i64)> = sync_sequences::table
        .select((
            sync_sequences::resource,
            sync_sequences::last_seq,
            sync_sequences::max_hlc,
        ))
        .load(conn)?;
    let mut largest = 0;
    for (resource, last_seq, mark) in marks {
        let newest: Option<i64> = sync_changelog::table
            .filter(sync_changelog::resource.eq(&resource))
            .filter(sync_changelog::seq.gt(last_seq.saturating_sub(RESUME_WINDOW)))
            .select(diesel::dsl::max(sync_changelog::hlc))
            .first(conn)?;
        largest = largest.max(mark).max(newest.unwrap_or(0));
    }
    Ok((largest > 0).then_some(largest))
}

/// The clock of the entry at `seq` (`None`: no such entry — pruned, or beyond the feed): the
/// row whose key is the first at or after `seq`, when it holds `seq` — a batch row's last
/// entry's clock is the row's own, another of its entries is read from its payload.
pub fn hlc_at(conn: &mut AnyConnection, resource: &str, seq: i64) -> QueryResult<Option<i64>> {
    let row: Option<(i64, Option<i64>, i64)> = sync_changelog::table
        .filter(sync_changelog::resource.eq(resource))
        .filter(sync_changelog::seq.ge(seq))
        .select((
            sync_changelog::seq,
            sync_changelog::first_seq,
            sync_changelog::hlc,
        ))
        .order(sync_changelog::seq.asc())
        .first(conn)
        .optional()?;
    match row {
        Some((key, _, hlc)) if key == seq => Ok(Some(hlc)),
        Some((key, Some(first), _)) if first <= seq => {
            let payload: String = sync_changelog::table
                .find((resource, key))
                .select(sync_changelog::payload)
                .first(conn)?;
            let (first, elements) = elements(resource, key, Some(first), &payload)?;
            Ok(usize::try_from(seq - first)
                .ok()
                .and_then(|k| elements.get(k))
                .map(|e| e.1))
        }
        _ => Ok(None),
    }
}

/// Per resource and remote origin (any origin but `local`): the highest HLC among the newest
/// `window` entries of the resource — (origin, resource, hlc). A bounded read of the end of
/// each resource's primary key (`seq > last_seq - window`), cheap enough for every scrape of
/// `/metrics`; an origin with no entry among them is left out.
pub fn newest_remote(
    conn: &mut AnyConnection,
    local: &str,
    window: i64,
) -> QueryResult<Vec<(String, String, i64)>> {
    let tops: Vec<(String, i64)> = sync_sequences::table
        .select((sync_sequences::resource, sync_sequences::last_seq))
        .order(sync_sequences::resource)
        .load(conn)?;
    let mut out = Vec::new();
    for (resource, last) in tops {
        let rows: Vec<(String, Option<i64>)> = sync_changelog::table
            .filter(sync_changelog::resource.eq(&resource))
            .filter(sync_changelog::seq.gt(last.saturating_sub(window)))
            .filter(sync_changelog::origin_region.ne(local))
            .group_by(sync_changelog::origin_region)
            .select((
                sync_changelog::origin_region,
                diesel::dsl::max(sync_changelog::hlc),
            ))
            .order(sync_changelog::origin_region)
            .load(conn)?;
        out.extend(
            rows.into_iter()
                .filter_map(|(origin, hlc)| Some((origin, resource.clone(), hlc?))),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    ship::backend_tests! {
        /// Sequence numbers come in consecutive runs, one after another; a resource without a
        /// sequence row (plain name or not) is the clear error, not a number.
        async fn allocated_seqs_are_consecutive_and_an_unprepared_resource_is_refused(db: TestDb) {
            let mut conn = db.pool.get().unwrap();
            ensure_sequences(&mut conn, ["widgets"]).unwrap();
            assert_eq!(allocate_seqs(&mut conn, "widgets", 3, 7).unwrap(), 1);
            assert_eq!(allocate_seqs(&mut conn, "widgets", 1, 5).unwrap(), 4);
            assert_eq!(allocate_seqs(&mut conn, "widgets", 100, 9).unwrap(), 5);
            assert_eq!(watermark(&mut conn, "widgets").unwrap().0, 104);
            for name in ["gadgets", "Gadgets-2"] {
                let err = allocate_seqs(&mut conn, name, 1, 1).unwrap_err();
                assert!(err.to_string().contains("no changelog sequence"), "{name}: {err}");
            }
        }

        /// ADR 0021: `append` gives one entry or many the next seqs in order — a single one
        /// on MariaDB taking its seq from the sequence row it locks — stores them, raises the
        /// clock mark, and refuses a resource without a sequence row. Appenders in parallel
        /// transactions on their own connections get every seq once, with no gap.
        async fn appends_take_consecutive_seqs_alone_and_in_parallel(db: TestDb) {
            let entry = |hlc: i64| ChangeLogEntry {
                resource: "widgets".into(),
                seq: -1,
                entity_id: format!("w{hlc}"),
                op: "upsert".into(),
                payload: "{}".into(),
                hlc,
                origin_region: "eu".into(),
                schema_version: 1,
                created_at: ship::db::utc_now(),
            };
            let mut conn = db.pool.get().unwrap();
            ensure_sequences(&mut conn, ["widgets"]).unwrap();
            let stored = |conn: &mut AnyConnection| -> Vec<(i64, i64)> {
                sync_changelog::table
                    .order(sync_changelog::seq)
                    .select((sync_changelog::seq, sync_changelog::hlc))
                    .load(conn)
                    .unwrap()
            };
            ship::db::transact(&mut conn, |c| append(c, "widgets", vec![entry(5 << 16)], 5 << 16)).unwrap();
            assert_eq!(stored(&mut conn), vec![(1, 5 << 16)]);
            let three = vec![entry(7 << 16), entry(6 << 16), entry(8 << 16)];
            // The mark as stored (`max_hlc` also reads the newest entries).
            let mark = |conn: &mut AnyConnection| -> i64 {
                sync_sequences::table.find("widgets").select(sync_sequences::max_hlc).first(conn).unwrap()
            };
            assert_eq!(mark(&mut conn), 5 << 16, "raised by a single append");
            ship::db::transact(&mut conn, |c| append(c, "widgets", three, 8 << 16)).unwrap();
            assert_eq!(mark(&mut conn), 8 << 16);
            ship::db::transact(&mut conn, |c| append(c, "widgets", vec![entry(6 << 16)], 6 << 16)).unwrap();
            assert_eq!(mark(&mut conn), 8 << 16, "never lowered");
            ship::db::transact(&mut conn, |c| append(c, "widgets", vec![entry(9 << 16)], 9 << 16)).unwrap();
            assert_eq!(mark(&mut conn), 9 << 16, "raised by a single append again");
            assert_eq!(stored(&mut conn), vec![(1, 5 << 16), (2, 7 << 16), (3, 6 << 16), (4, 8 << 16), (5, 6 << 16), (6, 9 << 16)]);
            if conn.backend() == ship::db::Backend::Mysql {
                // Cached statements (ADR 0021): appends after the first prepare nothing (the
                // counters' own read is the one prepare), and only the multi-row insert, a text
                // query, goes between a COM_SET_OPTION pair.
                let sent = |c: &mut AnyConnection| ship::testing::mysql_session_counters(c, &["COM_STMT_PREPARE", "COM_SET_OPTION", "COM_STMT_EXECUTE"]);
                let before = sent(&mut conn);
                for hlc in [10 << 16, 11 << 16] {
                    ship::db::transact(&mut conn, |c| append(c, "widgets", vec![entry(hlc)], hlc)).unwrap();
                }
                let three = vec![entry(12 << 16), entry(12 << 16), entry(12 << 16)];
                ship::db::transact(&mut conn, |c| append(c, "widgets", three, 12 << 16)).unwrap();
                let after = sent(&mut conn);
                assert_eq!(after[0] - before[0], 1, "the bump, the single insert, BEGIN and COMMIT are cached");
                // The pair around the multi-row insert's text query, and the `SET` of the seq
                // variable in it (MariaDB counts `SET` statements under the same name).
                assert_eq!(after[1] - before[1], 2 + 1, "no text query but the multi-row insert");
                // ADR 0023: the three entries' bump goes in the insert's text query, and no seq
                // is read back: executed are the singles' insert and bump, each append's BEGIN
                // and COMMIT, and the counters' own read.
                assert_eq!(after[2] - before[2], 2 * 2 + 3 * 2 + 1, "no statement but the text query for three");
                diesel::delete(sync_changelog::table.filter(sync_changelog::seq.gt(6))).execute(&mut conn).unwrap();
                diesel::update(sync_sequences::table.find("widgets")).set(sync_sequences::last_seq.eq(6)).execute(&mut conn).unwrap();
            }
            for many in [1, 2] {
                let entries: Vec<ChangeLogEntry> = (0..many).map(|_| entry(1)).collect();
                let err = ship::db::transact(&mut conn, |c| append(c, "gadgets", entries, 1)).unwrap_err();
                assert!(err.to_string().contains("no changelog sequence"), "{many}: {err}");
            }
            drop(conn);

            let appenders: Vec<_> = (0..4)
                .map(|k| {
                    let pool = db.pool.clone();
                    std::thread::spawn(move || {
                        let mut conn = pool.get().unwrap();
                        for i in 0..25 {
                            let hlc = ((100 + k * 25 + i) as i64) << 16;
                            ship::db::transact(&mut conn, |c| append(c, "widgets", vec![entry(hlc)], hlc)).unwrap();
                        }
                    })
                })
                .collect();
            for appender in appenders {
                appender.join().unwrap();
            }
            let mut conn = db.pool.get().unwrap();
            let seqs: Vec<i64> = sync_changelog::table
                .order(sync_changelog::seq)
                .select(sync_changelog::seq)
                .load(&mut conn)
                .unwrap();
            assert_eq!(seqs, (1..=106).collect::<Vec<i64>>());
            assert_eq!(watermark(&mut conn, "widgets").unwrap().0, 106);
        }

        /// ADR 0023: an append split over several statements — by bytes (rows too large to
        /// share one) and by rows (more than a statement's 1,000) — numbers its entries on,
        /// statement after statement, in order and with no gap; the next append goes on from
        /// there.
        async fn an_append_of_several_statements_numbers_its_entries_in_order(db: TestDb) {
            let entry = |id: String, payload: String| ChangeLogEntry {
                resource: "widgets".into(),
                seq: -1,
                entity_id: id,
                op: "upsert".into(),
                payload,
                hlc: 1 << 16,
                origin_region: "eu".into(),
                schema_version: 1,
                created_at: ship::db::utc_now(),
            };
            let mut conn = db.pool.get().unwrap();
            ensure_sequences(&mut conn, ["widgets"]).unwrap();
            let large = format!("\"{}\"", "x".repeat(ship::db::inline_sql::CHUNK_BYTES / 3));
            let big: Vec<ChangeLogEntry> = (0..4).map(|i| entry(format!("big{i}"), large.clone())).collect();
            ship::db::transact(&mut conn, |c| append(c, "widgets", big, 1 << 16)).unwrap();
            let many: Vec<ChangeLogEntry> = (0..1_203).map(|i| entry(format!("many{i:04}"), "{}".into())).collect();
            ship::db::transact(&mut conn, |c| append(c, "widgets", many, 1 << 16)).unwrap();
            let two = vec![entry("after0".into(), "{}".into()), entry("after1".into(), "{}".into())];
            ship::db::transact(&mut conn, |c| append(c, "widgets", two, 1 << 16)).unwrap();
            let stored: Vec<(i64, String)> = sync_changelog::table
                .order(sync_changelog::seq)
                .select((sync_changelog::seq, sync_changelog::entity_id))
                .load(&mut conn)
                .unwrap();
            let expected: Vec<(i64, String)> = (0..4)
                .map(|i| format!("big{i}"))
                .chain((0..1_203).map(|i| format!("many{i:04}")))
                .chain(["after0".to_string(), "after1".to_string()])
                .zip(1..)
                .map(|(id, seq)| (seq, id))
                .collect();
            assert_eq!(stored.len(), expected.len());
            assert!(stored == expected, "the seqs follow the entries, with no gap");
            assert_eq!(watermark(&mut conn, "widgets").unwrap().0, 1_209);
        }

        /// ADR 0026: rows of one entry and batch rows appended together are numbered on from
        /// the sequence row — a batch row keyed by its last seq, `first_seq` its first —
        /// over several statements (a row too large to share one) with no gap; the payload is
        /// stored as given, the clock mark raised; a resource without a sequence row is the
        /// clear error, never rows numbered from nothing.
        async fn batch_rows_are_numbered_on_from_the_sequence_row(db: TestDb) {
            let mut conn = db.pool.get().unwrap();
            let at = chrono::NaiveDate::from_ymd_opt(2026, 12, 7).unwrap().and_hms_micro_opt(1, 2, 3, 456_789).unwrap();
            let large = ship::contracts::Payload::serialized(&"é".repeat(ship::db::inline_sql::CHUNK_BYTES / 3)).unwrap();
            let small = ship::contracts::Payload::serialized(&serde_json::json!({"k": "it's \"q\""})).unwrap();
            let row = |place: i64, first: Option<i64>, payload: String, hlc: i64| ChangeLogRow {
                entry: ChangeLogEntry {
                    resource: "gadgets".into(),
                    seq: place,
                    entity_id: if first.is_some() { String::new() } else { format!("one{place}") },
                    op: if first.is_some() { BATCH_OP } else { "delete" }.into(),
                    payload,
                    hlc,
                    origin_region: "us-east".into(),
                    schema_version: 3,
                    created_at: at,
                },
                first_seq: first,
            };
            let batch = |ids: std::ops::Range<i64>, payload: &ship::contracts::Payload| {
                let texts: Vec<String> = ids.map(|k| batch_element(&format!("b\"{k}"), k << 16, payload).unwrap()).collect();
                batch_payload(texts.iter().map(String::as_str))
            };
            let rows = vec![
                row(1, None, "{}".into(), 1 << 16),
                row(4, Some(2), batch(2..5, &small), 4 << 16),
                row(6, Some(5), batch(5..7, &large), 6 << 16),
                row(7, None, "{\"x\":1}".into(), 7 << 16),
                row(1_007, Some(8), batch(8..1_008, &small), 1_007 << 16),
            ];
            ensure_sequences(&mut conn, ["gadgets"]).unwrap();
            allocate_seqs(&mut conn, "gadgets", 5, 1).unwrap();
            ship::db::transact(&mut conn, |c| append_rows(c, "gadgets", rows.clone(), 1_007, 1_007 << 16)).unwrap();
            let stored: Vec<ChangeLogRow> = sync_changelog::table
                .order(sync_changelog::seq)
                .select(ChangeLogRow::as_select())
                .load(&mut conn)
                .unwrap();
            assert_eq!(stored.len(), rows.len());
            for (stored, given) in stored.iter().zip(&rows) {
                let expected = ChangeLogRow {
                    entry: ChangeLogEntry { seq: given.entry.seq + 5, ..given.entry.clone() },
                    first_seq: given.first_seq.map(|f| f + 5),
                };
                assert!(stored == &expected, "row {} stored as given, numbered on from 5", given.entry.seq);
            }
            assert_eq!(watermark(&mut conn, "gadgets").unwrap().0, 5 + 1_007);
            let mark: i64 = sync_sequences::table.find("gadgets").select(sync_sequences::max_hlc).first(&mut conn).unwrap();
            assert_eq!(mark, 1_007 << 16);
            // Every entry's clock, at its seq: a batch row's from its payload.
            for seq in 6..=1_012 {
                assert_eq!(hlc_at(&mut conn, "gadgets", seq).unwrap(), Some((seq - 5) << 16), "seq {seq}");
            }
            assert_eq!(hlc_at(&mut conn, "gadgets", 5).unwrap(), None, "allocated, never written");
            assert_eq!(hlc_at(&mut conn, "gadgets", 1_013).unwrap(), None, "beyond the end");
            for many in [1, 2] {
                let err = ship::db::transact(&mut conn, |c| append_rows(c, "nothing", rows[..many].to_vec(), 3, 1)).unwrap_err();
                assert!(err.to_string().contains("no changelog sequence"), "{many}: {err}");
            }
            let corrupt = row(3, Some(1), batch(1..3, &small), 1);
            assert!(elements("gadgets", corrupt.entry.seq, corrupt.first_seq, &corrupt.entry.payload).unwrap_err().to_string().contains("2 entries for the seqs 1..=3"));
        }

        /// ADR 0026: every page of a changelog of rows of one entry and batch rows (of several
        /// origins, some longer than a page, one spanning more than `BATCH_ROW_MAX` seqs of
        /// others) is the entries after its cursor, in seq order, at most its limit, those of
        /// the left-out origin left out — through `page` and `page_each` alike — and a page
        /// that is not full has seen every entry through its end, which is past its cursor.
        async fn every_page_over_batch_rows_is_the_entries_after_its_cursor(db: TestDb) {
            let mut conn = db.pool.get().unwrap();
            let at = ship::db::utc_now();
            // (seq, entity_id, hlc, origin), the model; rows as runs of it.
            let mut model: Vec<(i64, String, i64, &str)> = Vec::new();
            let mut rows = Vec::new();
            let runs: &[(&str, usize)] = &[
                ("eu", 1), ("us", 3), ("eu", 2), ("ap", 7), ("us", 1), ("ap", 2), ("eu", 1),
                ("us", 1_000), ("ap", 1_000), ("eu", 3), ("us", 4), ("ap", 1),
            ];
            for &(origin, len) in runs {
                let first = model.len() as i64 + 1;
                for k in 0..len as i64 {
                    model.push((first + k, format!("{origin}-{}", first + k), (first + k) << 16, origin));
                }
                let last = model.len() as i64;
                let payload = |id: &str, hlc: i64| format!("{{\"id\":\"{id}\",\"hlc\":{hlc}}}");
                rows.push(if len == 1 || origin == "eu" && len < 3 {
                    let (seq, id, hlc, _) = &model[last as usize - 1];
                    ChangeLogRow::single(ChangeLogEntry { resource: "widgets".into(), seq: *seq, entity_id: id.clone(), op: "upsert".into(), payload: payload(id, *hlc), hlc: *hlc, origin_region: origin.into(), schema_version: 1, created_at: at })
                } else {
                    let texts: Vec<String> = model[first as usize - 1..last as usize]
                        .iter()
                        .map(|(_, id, hlc, _)| {
                            let p = ship::contracts::Payload::serialized(&serde_json::value::RawValue::from_string(payload(id, *hlc)).unwrap()).unwrap();
                            batch_element(id, *hlc, &p).unwrap()
                        })
                        .collect();
                    ChangeLogRow {
                        entry: ChangeLogEntry { resource: "widgets".into(), seq: last, entity_id: String::new(), op: BATCH_OP.into(), payload: batch_payload(texts.iter().map(String::as_str)), hlc: last << 16, origin_region: origin.into(), schema_version: 1, created_at: at },
                        first_seq: Some(first),
                    }
                });
                // A single run of several entries goes as rows of one each.
                if len > 1 && origin == "eu" && len < 3 {
                    rows.pop();
                    for (seq, id, hlc, _) in &model[first as usize - 1..last as usize] {
                        rows.push(ChangeLogRow::single(ChangeLogEntry { resource: "widgets".into(), seq: *seq, entity_id: id.clone(), op: "upsert".into(), payload: payload(id, *hlc), hlc: *hlc, origin_region: origin.into(), schema_version: 1, created_at: at }));
                    }
                }
            }
            let end = model.len() as i64;
            ensure_sequences(&mut conn, ["widgets"]).unwrap();
            ship::db::transact(&mut conn, |c| append_rows(c, "widgets", rows, end, end << 16)).unwrap();
            let (upto, _) = watermark(&mut conn, "widgets").unwrap();
            assert_eq!(upto, end);
            let mut afters: Vec<i64> = (0..=30).collect();
            afters.extend([998, 999, 1_000, 1_019, 1_020, 1_021, 1_500, 2_019, 2_020, 2_021, 2_022, 2_025, end - 1, end]);
            for exclude in [None, Some("us"), Some("ap")] {
                for limit in [1, 2, 3, 7, 500, 5_000] {
                    for &after in &afters {
                        let expected: Vec<(i64, String, i64)> = model
                            .iter()
                            .filter(|(seq, _, _, origin)| *seq > after && Some(*origin) != exclude)
                            .take(limit as usize)
                            .map(|(seq, id, hlc, _)| (*seq, id.clone(), *hlc))
                            .collect();
                        let (entries, read) = page(&mut conn, "widgets", after, upto, exclude, limit).unwrap();
                        let got: Vec<(i64, String, i64)> = entries.iter().map(|e| (e.seq, e.entity_id.clone(), e.hlc)).collect();
                        let case = format!("after {after}, limit {limit}, leaving out {exclude:?}");
                        // A page may stop short on rows it leaves out: then it is a prefix,
                        // and its end says how far it saw.
                        assert!(expected.starts_with(&got), "{case}: {got:?}");
                        assert_eq!(read.n, got.len(), "{case}");
                        assert_eq!(read.last, got.last().map(|(s, _, h)| (*s, *h)), "{case}");
                        if got.len() < limit as usize {
                            let seen = read.seen_through;
                            assert!(after == upto || seen > after, "{case}: a page moves on ({seen})");
                            assert!(seen <= upto, "{case}");
                            let owed = expected.iter().filter(|(seq, _, _)| *seq <= seen).count();
                            assert_eq!(owed, got.len(), "{case}: everything through {seen} served");
                        } else {
                            assert_eq!(got.len(), expected.len().min(limit as usize), "{case}");
                        }
                        for (entry, (seq, id, hlc, origin)) in entries.iter().zip(model.iter().filter(|m| m.0 > after && Some(m.3) != exclude)) {
                            assert_eq!((entry.seq, &entry.entity_id, entry.hlc, entry.origin_region.as_str()), (*seq, id, *hlc, *origin));
                            assert_eq!(entry.op, "upsert");
                            assert_eq!(entry.payload, format!("{{\"id\":\"{id}\",\"hlc\":{hlc}}}"), "spliced as stored");
                            assert_eq!(entry.created_at, at);
                        }
                        let mut fed = Vec::new();
                        let read_each = page_each(&mut conn, "widgets", after, upto, exclude, limit, |row| {
                            fed.push((row.seq, row.entity_id, row.hlc));
                            Ok(())
                        })
                        .unwrap();
                        assert_eq!(read_each, read, "{case}");
                        assert_eq!(fed, got, "{case}");
                    }
                }
            }
            // A run of left-out rows is skipped in one page, however small: after the `us` run
            // (seqs 18..=1017) the `ap` run (1018..=2017) is left out, and the next row kept
            // (`eu`, 2018..=2020) ends past the page's reach.
            assert_eq!(model[1_016].3, "us");
            assert_eq!((model[1_017].3, model[2_016].3, model[2_017].3), ("ap", "ap", "eu"));
            let (entries, read) = page(&mut conn, "widgets", 1_017, upto, Some("ap"), 1).unwrap();
            assert!(entries.is_empty());
            assert_eq!(read, PageRead { n: 0, last: None, seen_through: 2_017 });
            // Read page after page, every origin but one is the model's entries, whatever the
            // limit.
            for limit in [1, 3, 250] {
                let (mut after, mut all) = (0, Vec::new());
                while after < upto {
                    let (entries, read) = page(&mut conn, "widgets", after, upto, Some("ap"), limit).unwrap();
                    all.extend(entries.iter().map(|e| e.seq));
                    after = match read.last {
                        Some((seq, _)) if read.n == limit as usize => seq,
                        _ => read.seen_through,
                    };
                }
                let expected: Vec<i64> = model.iter().filter(|m| m.3 != "ap").map(|m| m.0).collect();
                assert!(all == expected, "limit {limit}");
            }
        }

        /// The clock mark: the largest HLC appended to any resource, raised by every
        /// allocation (on every backend's spelling of the larger of two), never lowered by a
        /// smaller one, independent of the changelog's rows (prune deletes those); none before
        /// the first append, whatever the resource's name.
        async fn the_clock_mark_is_the_largest_hlc_ever_appended(db: TestDb) {
            let mut conn = db.pool.get().unwrap();
            ensure_sequences(&mut conn, ["widgets", "Gadgets-2"]).unwrap();
            assert_eq!(max_hlc(&mut conn).unwrap(), None);
            allocate_seqs(&mut conn, "widgets", 2, 70 << 16).unwrap();
            assert_eq!(max_hlc(&mut conn).unwrap(), Some(70 << 16));
            allocate_seqs(&mut conn, "widgets", 1, 50 << 16).unwrap();
            assert_eq!(max_hlc(&mut conn).unwrap(), Some(70 << 16), "never lowered");
            allocate_seqs(&mut conn, "Gadgets-2", 1, 90 << 16).unwrap();
            assert_eq!(max_hlc(&mut conn).unwrap(), Some(90 << 16), "across resources");
            allocate_seqs(&mut conn, "Gadgets-2", 1, 80 << 16).unwrap();
            assert_eq!(max_hlc(&mut conn).unwrap(), Some(90 << 16));
            // Nothing in the changelog itself (allocation only): the mark does not need it.
            assert_eq!(sync_changelog::table.count().get_result::<i64>(&mut conn).unwrap(), 0);
        }

        /// A restarted region's clock resumes past an entry stamped ahead of its wall clock
        /// (a remote write within the drift bound) after prune deleted the entry; and past one
        /// a process of the version before the mark appended without raising it (a rolling
        /// upgrade), read from the newest entries.
        async fn the_clock_resumes_past_pruned_entries_and_unmarked_ones(db: TestDb) {
            use ship::contracts::{Hlc, HybridClock};
            let mut conn = db.pool.get().unwrap();
            ensure_sequences(&mut conn, ["widgets"]).unwrap();
            let wall = HybridClock::new(std::time::Duration::from_secs(30)).now().as_i64();
            let ahead = wall + (4_000 << 16);
            let entry = |seq: i64, hlc: i64| ChangeLogEntry {
                resource: "widgets".into(),
                seq,
                entity_id: format!("w{seq}"),
                op: "upsert".into(),
                payload: "{}".into(),
                hlc,
                origin_region: "us-east".into(),
                schema_version: 1,
                created_at: ship::db::utc_now(),
            };
            let first = allocate_seqs(&mut conn, "widgets", 1, ahead).unwrap();
            insert_all(&mut conn, &[entry(first, ahead)]).unwrap();
            diesel::delete(sync_changelog::table).execute(&mut conn).unwrap();
            let resumed = HybridClock::new(std::time::Duration::from_secs(30));
            crate::recorder::resume_clock(&mut conn, &resumed).unwrap();
            assert!(resumed.now().as_i64() > ahead, "past the pruned entry");

            // Appended by an older process: no sequence bump through allocate_seqs, no mark.
            let further = ahead + (2_000 << 16);
            diesel::update(sync_sequences::table.find("widgets"))
                .set(sync_sequences::last_seq.eq(first + 1))
                .execute(&mut conn)
                .unwrap();
            insert_all(&mut conn, &[entry(first + 1, further)]).unwrap();
            assert_eq!(max_hlc(&mut conn).unwrap(), Some(further));
            let resumed = HybridClock::new(std::time::Duration::from_secs(30));
            crate::recorder::resume_clock(&mut conn, &resumed).unwrap();
            assert!(resumed.now() > Hlc::from_i64(further).unwrap());
        }

        /// The migration that brought the mark fills it from the changelog (largest HLC of
        /// each resource's entries, 0 for a resource without any) — on every backend.
        async fn the_mark_migration_fills_the_mark_from_the_changelog(db: TestDb) {
            use ship::db::migrations;
            const MARK: &str = "2026-12-08-000130_sync_changelog_clock_mark";
            let mut conn = db.pool.get().unwrap();
            while !migrations::pending(&mut conn).unwrap().iter().any(|m| m.contains(MARK)) {
                migrations::revert_last(&mut conn).unwrap().expect("a migration to revert");
            }
            use diesel::connection::SimpleConnection;
            conn.batch_execute(
                "INSERT INTO sync_sequences (resource, last_seq, pruned_through) \
                 VALUES ('gadgets', 0, 0), ('widgets', 3, 0); \
                 INSERT INTO sync_changelog (resource, seq, entity_id, op, payload, hlc, \
                 origin_region, schema_version, created_at) VALUES \
                 ('widgets', 1, 'a', 'upsert', '{}', 900, 'eu', 1, '2026-11-20 00:00:00'), \
                 ('widgets', 2, 'b', 'upsert', '{}', 700, 'us', 1, '2026-11-20 00:00:00'), \
                 ('widgets', 3, 'a', 'delete', '{}', 800, 'eu', 1, '2026-11-20 00:00:00')",
            )
            .unwrap();
            migrations::run_pending(&mut conn).unwrap();
            let marks: Vec<(String, i64)> = sync_sequences::table
                .select((sync_sequences::resource, sync_sequences::max_hlc))
                .order(sync_sequences::resource)
                .load(&mut conn)
                .unwrap();
            assert_eq!(marks, vec![("gadgets".to_string(), 0), ("widgets".to_string(), 900)]);
        }
    }
}
