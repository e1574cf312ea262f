//! MariaDB statements of fixed text as cached prepared statements, and the transactions that
//! use them (ADR 0021).
//!
//! Diesel sends a text query on MariaDB — its `batch_execute`, which `BEGIN` and `COMMIT` go
//! through — between two `COM_SET_OPTION` round trips that turn multi-statements on and off:
//! three round trips for a `BEGIN`, three for a `COMMIT`. A statement whose text never varies
//! is better prepared once per connection and executed from diesel's statement cache: one
//! round trip. On a resource's local writes this is most of what the sequence row's lock is
//! held for (from the sequence `UPDATE` to the `COMMIT`, every writer of the resource waits),
//! so it bounds how many single writes a second the resource takes.

use std::marker::PhantomData;

use diesel::connection::{
    AnsiTransactionManager, TransactionDepthChange, TransactionManager, TransactionManagerStatus,
};
use diesel::mysql::{Mysql, MysqlConnection};
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::result::Error;
use diesel::{QueryResult, RunQueryDsl};

/// A statement of fixed text and no parameters, run from the connection's statement cache
/// (keyed by its text). `ST`: the SQL type of the row it selects, `()` for a statement that
/// selects nothing.
#[derive(Debug, Clone, Copy)]
pub struct Fixed<ST = ()> {
    sql: &'static str,
    row: PhantomData<ST>,
}

impl<ST> Fixed<ST> {
    /// `sql` must be a constant: it is the cache's key, and never holds a value.
    pub const fn new(sql: &'static str) -> Self {
        Self {
            sql,
            row: PhantomData,
        }
    }
}

impl<ST> QueryId for Fixed<ST> {
    // Cached by its text: one type serves every fixed statement.
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<ST> QueryFragment<Mysql> for Fixed<ST> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Mysql>) -> QueryResult<()> {
        out.push_sql(self.sql);
        Ok(())
    }
}

impl<ST: 'static> Query for Fixed<ST> {
    type SqlType = ST;
}

impl<ST> RunQueryDsl<MysqlConnection> for Fixed<ST> {}

const BEGIN: Fixed = Fixed::new("BEGIN");
const COMMIT: Fixed = Fixed::new("COMMIT");

/// Apply `change` to the depth diesel's transaction manager keeps for `c`.
fn change_depth(c: &mut MysqlConnection, change: TransactionDepthChange) -> QueryResult<()> {
    match AnsiTransactionManager::transaction_manager_status_mut(c) {
        TransactionManagerStatus::Valid(status) => status.change_transaction_depth(change),
        TransactionManagerStatus::InError => Err(Error::BrokenTransactionManager),
    }
}

/// Start a transaction as diesel's `begin_transaction_sql(c, "BEGIN")` does — refused inside
/// another, the depth diesel keeps raised on success — with one round trip instead of three.
pub(crate) fn begin(c: &mut MysqlConnection) -> QueryResult<()> {
    if AnsiTransactionManager::transaction_manager_status_mut(c)
        .transaction_depth()?
        .is_some()
    {
        return Err(Error::AlreadyInTransaction);
    }
    BEGIN.execute(c)?;
    change_depth(c, TransactionDepthChange::IncreaseDepth)
}

/// Commit the outermost transaction (the one [`begin`] started) in one round trip; anything
/// else diesel commits. On an error diesel's state is left as it was: the caller rolls back
/// through diesel, which also marks the connection broken if that fails.
pub(crate) fn commit(c: &mut MysqlConnection) -> QueryResult<()> {
    let depth = AnsiTransactionManager::transaction_manager_status_mut(c).transaction_depth()?;
    if depth.map(|d| d.get()) != Some(1) {
        return AnsiTransactionManager::commit_transaction(c);
    }
    COMMIT.execute(c)?;
    change_depth(c, TransactionDepthChange::DecreaseDepth)
}
