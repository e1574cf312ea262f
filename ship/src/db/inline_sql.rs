//! MariaDB statements with their values written inline — the text protocol (ADR 0019).
//!
//! Diesel runs every statement on MariaDB as a server-side prepared statement, and never caches
//! one whose text varies (a multi-row `VALUES` list, a `sql_query`): prepare, execute, close.
//! For the statements a batch writes — a thousand rows of ten values — the prepare is the
//! costly part: the server parses the statement, then describes each of its ten thousand
//! parameters in a packet of its own, which the client reads, before the values are sent. The
//! text protocol sends the statement once with its values in it, and nothing comes back but
//! the result: a bare multi-row upsert of 1,000 customers ran 1.34× as fast this way (bench
//! B8'x). Most MySQL clients do this for every statement by default (Connector/J without
//! `useServerPrepStmts`, PyMySQL, mysqlclient).
//!
//! Strings (and timestamps) are written as hexadecimal literals, `X'…'`: their UTF-8 bytes,
//! two digits each. Nothing is escaped, so nothing in a value can end its literal or be read
//! as SQL, whatever the session's `sql_mode` or character set. And the server reads them for
//! less: a quoted string costs it a copy of its first 256 characters converted to the system
//! character set (to name the item) and a count of its characters, a hexadecimal one neither —
//! a quarter less server time for a batch's changelog `INSERT`, a fifth for its rows (ADR 0020).
//! Stored into a utf8mb4 column, the bytes are checked as UTF-8 and kept as they are (a Rust
//! string always passes); into a DATETIME, read as the date they spell. They are values of an
//! `INSERT`'s `VALUES` list only: compared with a column (a `WHERE`), a binary string compares
//! as binary, and the column's index would go unused. A test round-trips strings made of every
//! special byte through a real server.

use std::fmt::Write;

use chrono::NaiveDateTime;
use diesel::connection::SimpleConnection;
use diesel::mysql::MysqlConnection;
use diesel::prelude::*;
use diesel::QueryResult;

/// One value written inline.
#[derive(Debug, Clone, Copy)]
pub enum Literal<'a> {
    Text(&'a str),
    BigInt(i64),
    Integer(i32),
    Timestamp(NaiveDateTime),
    NullableTimestamp(Option<NaiveDateTime>),
    /// A string to compare with a column (a `WHERE`): `_utf8mb4 X'…'`, a character string in
    /// the column's collation, so the column's index serves it (a bare `X'…'` is binary).
    Compared(&'a str),
    /// `(@var + n)`: a session variable an earlier statement of the same text query set, plus
    /// `n` (a MariaDB append's seqs, ADR 0023). The variable's name is a constant, never a
    /// value.
    VarPlus(&'static str, i64),
    /// Values written beforehand ([`Written`]), as they were written.
    Written(&'a Written),
    /// `NULL`.
    Null,
}

/// Values already written as literals, separated by `, ` — a part of a row made before the
/// statement, possibly on another thread (a MariaDB apply writes its changelog rows while the
/// server runs the batch's insert, ADR 0024). Only [`Written::new`] makes one, from
/// [`Literal`]s: it never holds anything but their text.
#[derive(Debug, Clone, Default)]
pub struct Written(String);

impl Written {
    pub fn new(values: &[Literal<'_>]) -> Self {
        let mut sql = String::new();
        for (i, value) in values.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            push_literal(&mut sql, *value);
        }
        Self(sql)
    }

    /// The text's length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A statement being written: a head (`INSERT INTO t (a, b) VALUES `), rows of literals, and a
/// tail (`ON DUPLICATE KEY UPDATE …`).
#[derive(Debug, Default)]
pub struct InlineStatement {
    sql: String,
    rows: usize,
}

impl InlineStatement {
    pub fn new(head: &str) -> Self {
        let mut sql = String::with_capacity(head.len() + 4 * 1024);
        sql.push_str(head);
        Self { sql, rows: 0 }
    }

    /// Append one `(…)` tuple of `values` (after a comma from the second on).
    pub fn row(&mut self, values: &[Literal<'_>]) {
        if self.rows > 0 {
            self.sql.push_str(", ");
        }
        self.sql.push('(');
        for (i, value) in values.iter().enumerate() {
            if i > 0 {
                self.sql.push_str(", ");
            }
            push_literal(&mut self.sql, *value);
        }
        self.sql.push(')');
        self.rows += 1;
    }

    /// Take back the last row appended, the statement having been `len` bytes long before it.
    fn unrow(&mut self, len: usize) {
        self.sql.truncate(len);
        self.rows -= 1;
    }

    /// Room for `additional` more bytes.
    pub fn reserve(&mut self, additional: usize) {
        self.sql.reserve(additional);
    }

    /// Append SQL text as it is (a constant: never a value).
    pub fn push_sql(&mut self, sql: &str) {
        self.sql.push_str(sql);
    }

    /// Rows appended so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The statement's length in bytes so far.
    pub fn len(&self) -> usize {
        self.sql.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// Run it as a text query (diesel's `batch_execute`: the query, between two `COM_SET_OPTION`
    /// round trips that turn multi-statements on and off; nothing prepared, no parameter
    /// described). A failing statement's error is the result, and the statements after it in
    /// the batch do not run; the caller's transaction rolls back what ran before it. An error
    /// comes back as diesel's `Unknown` kind: `DbError::is_transient` knows a deadlock or a
    /// lock wait by its message as well.
    pub fn execute(&self, conn: &mut MysqlConnection) -> QueryResult<()> {
        conn.batch_execute(&self.sql)
    }

    /// Run it and return the rows it affected: an `INSERT … ON DUPLICATE KEY UPDATE` counts 1
    /// per row inserted, 2 per row updated, and 1 per row found and left as it was (the pool's
    /// connections count found rows, `CLIENT_FOUND_ROWS`). `ROW_COUNT()` is kept in a session
    /// variable by the same statement batch (diesel turns multi-statements off after it, which
    /// resets `ROW_COUNT()`), then read by a cached prepared statement.
    pub fn execute_counting(&mut self, conn: &mut MysqlConnection) -> QueryResult<i64> {
        let len = self.sql.len();
        self.sql
            .push_str("; SET @regionsync_row_count = ROW_COUNT()");
        let ran = conn.batch_execute(&self.sql);
        self.sql.truncate(len);
        ran?;
        super::mysql_cached::Fixed::<diesel::sql_types::BigInt>::new("SELECT @regionsync_row_count")
            .get_result(conn)
    }
}

/// Rows per multi-row statement of [`chunked`]: a whole batch at the default
/// `sync.max_ops_per_batch` (1,000).
pub const CHUNK_ROWS: usize = 1_000;

/// ... and bytes: a statement ends before the row that would take it past this (a row too
/// large for it goes alone). With what [`InlineStatement::execute_counting`] appends and the
/// packet's header, a statement stays under 1 MiB, the `max_allowed_packet` OPERATIONS.md asks
/// for (MariaDB's default is 16 MiB). With every string in hexadecimal, 1,000 customers of
/// typical size take about 550 KiB, their 1,000 changelog entries about 800 KiB: typically one
/// statement each (larger rows take more).
pub const CHUNK_BYTES: usize = 1000 * 1024;

/// `rows` written into multi-row statements `head` … `tail` — the first one starting with
/// `first_head` instead — of at most [`CHUNK_ROWS`] rows and [`CHUNK_BYTES`] (a larger row
/// alone), each run by `run` with its number of rows, in the order of `rows` (the order MariaDB
/// writes and locks them in). `literals` gives a row's values in the order of the head's
/// columns.
pub fn chunked<R, const N: usize>(
    rows: &[R],
    (first_head, head, tail): (&str, &str, &str),
    literals: impl for<'r> Fn(&'r R) -> [Literal<'r>; N],
    mut run: impl FnMut(&mut InlineStatement, usize) -> QueryResult<()>,
) -> QueryResult<()> {
    let mut statement = InlineStatement::new(first_head);
    for (i, row) in rows.iter().enumerate() {
        let values = literals(row);
        let before = statement.len();
        statement.row(&values);
        if statement.rows() > 1 && statement.len() + tail.len() > CHUNK_BYTES {
            // This row would take the statement past the limit: it starts the next one.
            statement.unrow(before);
            statement.push_sql(tail);
            let n = statement.rows();
            run(&mut statement, n)?;
            statement = InlineStatement::new(head);
            statement.row(&values);
        }
        if statement.rows() == 1 {
            // Room for the chunk, judged by its first row (no copy of a growing statement).
            let per_row = statement.len() - head.len().min(statement.len()) + 2;
            let rows_left = (rows.len() - i).min(CHUNK_ROWS);
            statement.reserve((per_row * rows_left).min(CHUNK_BYTES) + tail.len());
        }
        if statement.rows() == CHUNK_ROWS || i + 1 == rows.len() {
            statement.push_sql(tail);
            let n = statement.rows();
            run(&mut statement, n)?;
            statement = InlineStatement::new(head);
        }
    }
    Ok(())
}

/// Insert `rows` with `head` (`INSERT INTO t (a, b, …) VALUES `): [`chunked`] statements, one
/// text query each.
pub fn insert_all<R, const N: usize>(
    conn: &mut MysqlConnection,
    head: &str,
    rows: &[R],
    literals: impl for<'r> Fn(&'r R) -> [Literal<'r>; N],
) -> QueryResult<()> {
    chunked(rows, (head, head, ""), literals, |statement, _| {
        statement.execute(conn)
    })
}

/// Write `value` as a MariaDB literal (module docs).
pub fn push_literal(sql: &mut String, value: Literal<'_>) {
    match value {
        Literal::Text(text) => push_text(sql, text),
        // A `write!` to a String cannot fail.
        Literal::BigInt(n) => {
            let _ = write!(sql, "{n}");
        }
        Literal::Integer(n) => {
            let _ = write!(sql, "{n}");
        }
        Literal::Timestamp(at) => push_timestamp(sql, at),
        Literal::NullableTimestamp(Some(at)) => push_timestamp(sql, at),
        Literal::NullableTimestamp(None) => sql.push_str("NULL"),
        Literal::Compared(text) => {
            sql.push_str("_utf8mb4 ");
            push_text(sql, text);
        }
        Literal::VarPlus(var, n) => {
            let _ = write!(sql, "({var} + {n})");
        }
        Literal::Written(written) => sql.push_str(&written.0),
        Literal::Null => sql.push_str("NULL"),
    }
}

/// A string as a hexadecimal literal, `X'…'` (its UTF-8 bytes, two digits each): the server
/// reads it without the per-literal work a quoted string costs it (converting a copy of the
/// first 256 characters to the system character set to name the literal, counting its
/// characters), a quarter less server time for a batch's `INSERT`; nothing is escaped. Stored
/// in a utf8mb4 column it is those bytes, checked as UTF-8. Only for values of an `INSERT`'s
/// `VALUES` list: compared with a column, a binary string would compare as binary, without
/// the column's index.
fn push_text(sql: &mut String, text: &str) {
    push_hex(sql, text.as_bytes());
}

/// `bytes` as `X'…'`, two lowercase digits a byte: nothing that can fail, nothing that can be
/// left out. The digits are written into a buffer and appended a few hundred at a time: one
/// `char` at a time (each encoded as UTF-8 and its room checked), `String::extend` took 9.7 %
/// of the B8' bench's CPU samples (the bench process used 2.5 % less CPU after).
fn push_hex(sql: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    const CHUNK: usize = 256;
    sql.reserve(2 * bytes.len() + 3);
    sql.push_str("X'");
    let mut buf = [0u8; 2 * CHUNK];
    for chunk in bytes.chunks(CHUNK) {
        let digits = &mut buf[..2 * chunk.len()];
        for (pair, &b) in digits.chunks_exact_mut(2).zip(chunk) {
            pair[0] = DIGITS[usize::from(b >> 4)];
            pair[1] = DIGITS[usize::from(b & 0x0f)];
        }
        match std::str::from_utf8(digits) {
            Ok(text) => sql.push_str(text),
            // Never taken (hex digits are ASCII); written out rather than unwrapped.
            Err(_) => sql.extend(digits.iter().map(|&d| char::from(d))),
        }
    }
    sql.push('\'');
}

/// `YYYY-MM-DD HH:MM:SS.ffffff` (microseconds, as DATETIME(6) stores them) as a hexadecimal
/// literal like any string ([`push_text`]; the server reads a date from it as from a quoted
/// one). Written digit by digit (chrono's `format` parses its pattern on every call: a tenth of
/// a batch's CPU); a year outside 0–9999 or a leap second takes chrono's way.
fn push_timestamp(sql: &mut String, at: NaiveDateTime) {
    use chrono::{Datelike, Timelike};
    let (year, nanos) = (at.year(), at.nanosecond());
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        push_text(sql, &at.format("%Y-%m-%d %H:%M:%S%.6f").to_string());
        return;
    }
    let mut buf = *b"0000-00-00 00:00:00.000000";
    let mut put = |at: usize, width: usize, mut value: u32| {
        for i in (at..at + width).rev() {
            buf[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, 4, year as u32);
    put(5, 2, at.month());
    put(8, 2, at.day());
    put(11, 2, at.hour());
    put(14, 2, at.minute());
    put(17, 2, at.second());
    put(20, 6, nanos / 1_000);
    push_hex(sql, &buf);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(value: Literal<'_>) -> String {
        let mut sql = String::new();
        push_literal(&mut sql, value);
        sql
    }

    /// The text of a hexadecimal literal `X'…'` (lowercase digits only).
    fn unhex(literal: &str) -> String {
        let digits = literal
            .strip_prefix("X'")
            .and_then(|l| l.strip_suffix('\''))
            .unwrap_or_else(|| panic!("not a hexadecimal literal: {literal}"));
        assert!(
            digits.len() % 2 == 0
                && digits
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "{literal}"
        );
        let bytes = (0..digits.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
            .collect();
        String::from_utf8(bytes).unwrap()
    }

    /// Every string is its UTF-8 bytes in hexadecimal, two lowercase digits each (`unhex`
    /// checks): nothing in it can end the literal or be read as SQL, whatever it holds.
    #[test]
    fn strings_are_hexadecimal_literals_of_their_bytes() {
        assert_eq!(rendered(Literal::Text("ana@b.c")), "X'616e6140622e63'");
        assert_eq!(rendered(Literal::Text("")), "X''");
        assert_eq!(rendered(Literal::Text("é")), "X'c3a9'");
        let long = "ü'\\".repeat(300);
        for text in [
            "{\"a\":\"é\"}",
            "O'Brien",
            "a\\b",
            "\\'",
            "a\nb",
            "é\0ü",
            "'; DROP TABLE t; --",
            &long,
        ] {
            assert_eq!(unhex(&rendered(Literal::Text(text))), text);
        }
    }

    /// The digit-by-digit timestamp is chrono's own format, wherever it is written.
    #[test]
    fn timestamps_are_written_as_chrono_formats_them() {
        let day = chrono::NaiveDate::from_ymd_opt(2026, 1, 2).unwrap();
        let cases = [
            day.and_hms_micro_opt(0, 0, 0, 0).unwrap(),
            day.and_hms_micro_opt(23, 59, 59, 999_999).unwrap(),
            day.and_hms_nano_opt(9, 8, 7, 123_456_789).unwrap(),
            chrono::NaiveDate::from_ymd_opt(1, 1, 1)
                .unwrap()
                .and_hms_opt(1, 2, 3)
                .unwrap(),
            chrono::NaiveDate::from_ymd_opt(9999, 12, 31)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap(),
            chrono::NaiveDate::from_ymd_opt(12000, 3, 4)
                .unwrap()
                .and_hms_opt(5, 6, 7)
                .unwrap(),
            day.and_hms_milli_opt(23, 59, 59, 1_500).unwrap(),
        ];
        for at in cases {
            assert_eq!(
                unhex(&rendered(Literal::Timestamp(at))),
                at.format("%Y-%m-%d %H:%M:%S%.6f").to_string(),
                "{at:?}"
            );
        }
    }

    #[test]
    fn numbers_and_timestamps() {
        assert_eq!(rendered(Literal::BigInt(-42)), "-42");
        assert_eq!(rendered(Literal::Integer(7)), "7");
        let at = chrono::NaiveDate::from_ymd_opt(2026, 12, 6)
            .unwrap()
            .and_hms_micro_opt(8, 1, 2, 345)
            .unwrap();
        assert_eq!(
            unhex(&rendered(Literal::Timestamp(at))),
            "2026-12-06 08:01:02.000345"
        );
        assert_eq!(
            rendered(Literal::NullableTimestamp(Some(at))),
            rendered(Literal::Timestamp(at))
        );
        assert_eq!(rendered(Literal::NullableTimestamp(None)), "NULL");
        assert_eq!(rendered(Literal::Null), "NULL");
    }

    /// Each statement `chunked` runs, with its row count.
    fn chunks_of(rows: &[String]) -> Vec<(String, usize)> {
        let mut ran = Vec::new();
        chunked(
            rows,
            ("FIRST ", "NEXT ", " TAIL"),
            |r| [Literal::Text(r)],
            |s, n| {
                ran.push((s.sql().to_string(), n));
                Ok(())
            },
        )
        .unwrap();
        ran
    }

    /// Statements end at CHUNK_ROWS rows, or before the row that would take them past
    /// CHUNK_BYTES; the first has its own head; every row is written once, in order; a row
    /// larger than the limit goes alone.
    #[test]
    fn rows_are_cut_into_statements_by_count_and_by_bytes() {
        let small: Vec<String> = (0..2_500).map(|k| format!("r{k:05}")).collect();
        let ran = chunks_of(&small);
        assert_eq!(
            ran.iter().map(|(_, n)| *n).collect::<Vec<_>>(),
            vec![1_000, 1_000, 500]
        );
        assert!(
            ran[0]
                .0
                .starts_with("FIRST (X'723030303030'), (X'723030303031')"),
            "{}",
            &ran[0].0[..40]
        );
        assert!(ran[1].0.starts_with("NEXT (X'723031303030'), "));
        assert!(ran.iter().all(|(sql, _)| sql.ends_with("') TAIL")));
        let order: Vec<String> = ran
            .iter()
            .flat_map(|(sql, _)| sql.split("(X'").skip(1))
            .map(|value| unhex(&format!("X'{}'", &value[..value.find('\'').unwrap()])))
            .collect();
        assert_eq!(order, small);

        // Written in hexadecimal, two take 4/5 of the limit, three more; `huge` alone is over.
        let big = "x".repeat(CHUNK_BYTES / 5);
        let huge = "y".repeat(CHUNK_BYTES / 2 + 10);
        let rows = vec![big.clone(), big.clone(), big.clone(), huge, big.clone()];
        let ran = chunks_of(&rows);
        assert_eq!(
            ran.iter().map(|(_, n)| *n).collect::<Vec<_>>(),
            vec![2, 1, 1, 1]
        );
        assert!(ran
            .iter()
            .all(|(sql, n)| *n == 1 || sql.len() <= CHUNK_BYTES));
        assert!(ran[0].0.starts_with("FIRST ") && ran[1].0.starts_with("NEXT "));
        assert!(chunks_of(&[]).is_empty());
    }

    #[test]
    fn a_statement_is_its_head_its_rows_and_its_tail() {
        let mut s = InlineStatement::new("INSERT INTO t (a, b) VALUES ");
        assert!(s.is_empty());
        s.row(&[Literal::Text("x"), Literal::BigInt(1)]);
        s.row(&[Literal::Text("it's"), Literal::BigInt(2)]);
        s.push_sql(" ON DUPLICATE KEY UPDATE b = VALUES(b)");
        assert_eq!(s.rows(), 2);
        assert_eq!(
            s.sql(),
            "INSERT INTO t (a, b) VALUES (X'78', 1), (X'69742773', 2) ON DUPLICATE KEY UPDATE b = VALUES(b)"
        );
    }
}
