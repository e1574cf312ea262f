//! Outbox queries.

use diesel::prelude::*;
use ship::AnyConnection;

use super::schema::sync_outbox;
use crate::models::NewOutboxEntry;

pub fn insert(conn: &mut AnyConnection, entry: &NewOutboxEntry<'_>) -> QueryResult<()> {
    diesel::insert_into(sync_outbox::table)
        .values(entry)
        .execute(conn)
        .map(drop)
}
