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
