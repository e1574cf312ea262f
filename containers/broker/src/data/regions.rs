//! The regions registry.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use ship::AnyConnection;

use super::schema::broker_regions;
use crate::models::Region;

pub fn find(conn: &mut AnyConnection, id: &str) -> QueryResult<Option<Region>> {
    broker_regions::table
        .find(id)
        .select(Region::as_select())
        .first(conn)
        .optional()
}

pub fn find_by_credential(conn: &mut AnyConnection, hash: &str) -> QueryResult<Option<Region>> {
    broker_regions::table
        .filter(broker_regions::credential_hash.eq(hash))
        .select(Region::as_select())
        .first(conn)
        .optional()
}

pub fn all(conn: &mut AnyConnection) -> QueryResult<Vec<Region>> {
    broker_regions::table
        .order(broker_regions::id)
        .select(Region::as_select())
        .load(conn)
}

pub fn insert(
    conn: &mut AnyConnection,
    id: &str,
    base_url: &str,
    credential_hash: &str,
    scopes: &str,
    now: NaiveDateTime,
) -> QueryResult<()> {
    diesel::insert_into(broker_regions::table)
        .values((
            broker_regions::id.eq(id),
            broker_regions::base_url.eq(base_url),
            broker_regions::credential_hash.eq(credential_hash),
            broker_regions::scopes.eq(scopes),
            broker_regions::created_at.eq(now),
            broker_regions::updated_at.eq(now),
        ))
        .execute(conn)
        .map(drop)
}

pub fn set_base_url(
    conn: &mut AnyConnection,
    id: &str,
    base_url: &str,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(broker_regions::table.find(id))
        .set((
            broker_regions::base_url.eq(base_url),
            broker_regions::updated_at.eq(now),
        ))
        .execute(conn)
}

pub fn touch_heartbeat(
    conn: &mut AnyConnection,
    id: &str,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(broker_regions::table.find(id))
        .set(broker_regions::last_heartbeat_at.eq(Some(now)))
        .execute(conn)
}

pub fn delete(conn: &mut AnyConnection, id: &str) -> QueryResult<usize> {
    diesel::delete(broker_regions::table.find(id)).execute(conn)
}

pub fn set_credential_hash(
    conn: &mut AnyConnection,
    id: &str,
    credential_hash: &str,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(broker_regions::table.find(id))
        .set((
            broker_regions::credential_hash.eq(credential_hash),
            broker_regions::updated_at.eq(now),
        ))
        .execute(conn)
}
