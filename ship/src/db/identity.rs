//! The region a database belongs to.
//!
//! A region's sync state (clock, changelog origin, cursors) is only meaningful in the database it
//! was written to. Pointing a second region at the same database would silently mix two regions'
//! histories, so the first process to start records its region id in `ship_instance`, and every
//! later start checks it.

use diesel::prelude::*;

use super::{AnyConnection, DbError};

diesel::table! {
    ship_instance (id) {
        id -> Integer,
        region_id -> Text,
        created_at -> Timestamp,
        incarnation -> Text,
        previous_incarnation -> Text,
        incarnation_at -> Nullable<Timestamp>,
    }
}

const INSTANCE_ROW: i32 = 1;

/// The migration that creates `ship_instance`; until it is applied there is nothing to bind.
pub const IDENTITY_MIGRATION: &str = "2026-11-25-000001_ship_create_instance";

#[derive(Debug, thiserror::Error)]
pub enum RegionBindingError {
    #[error(
        "this database belongs to region `{bound}`, but this process is configured as region \
         `{configured}`; refusing to start (two regions must never share a database)"
    )]
    Mismatch { bound: String, configured: String },
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Record `region_id` as the owner of this database, or check that it already is.
/// Returns `true` when the binding was created by this call.
pub fn bind_region(conn: &mut AnyConnection, region_id: &str) -> Result<bool, RegionBindingError> {
    let check = |bound: String| {
        if bound == region_id {
            Ok(())
        } else {
            Err(RegionBindingError::Mismatch {
                bound,
                configured: region_id.to_string(),
            })
        }
    };
    if let Some(bound) = bound_region(conn)? {
        return check(bound).map(|()| false);
    }
    // `ON CONFLICT DO NOTHING` (not insert-and-catch): the error of a duplicate would abort a
    // caller's PostgreSQL transaction.
    let inserted = crate::insert_if_absent!(
        conn,
        ship_instance::table,
        (
            ship_instance::id.eq(INSTANCE_ROW),
            ship_instance::region_id.eq(region_id),
            ship_instance::created_at.eq(super::utc_now()),
        )
    )
    .map_err(DbError::from)?;
    if inserted == 1 {
        return Ok(true);
    }
    // Another process (the scheduler next to the web server) bound it a moment ago.
    match bound_region(conn)? {
        Some(bound) => check(bound).map(|()| false),
        None => Err(DbError::Migration("ship_instance row vanished".into()).into()),
    }
}

/// The region this database is bound to, if any.
pub fn bound_region(conn: &mut AnyConnection) -> Result<Option<String>, DbError> {
    Ok(ship_instance::table
        .filter(ship_instance::id.eq(INSTANCE_ROW))
        .select(ship_instance::region_id)
        .first::<String>(conn)
        .optional()?)
}

/// The incarnation of this database (ADR 0012): made when the region is bound to a new
/// database and made anew by [`reincarnate`]. Peers scope what they believe about the region
/// (their cursors into its feed) by it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incarnation {
    pub id: String,
    /// The incarnation this one replaced when the database was found to be an older copy of
    /// the region ('' for a database that never was).
    pub previous: String,
    pub since: Option<chrono::NaiveDateTime>,
}

/// A fresh incarnation id: 16 lowercase hex digits (64 random bits).
pub fn new_incarnation() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    id[..16].to_string()
}

/// This database's incarnation. A database bound before incarnations existed gets one here
/// (once: the first caller's id is kept, a concurrent one reads it back); one not bound to a
/// region has none (`id` empty).
pub fn incarnation(conn: &mut AnyConnection) -> Result<Incarnation, DbError> {
    let read = |conn: &mut AnyConnection| {
        ship_instance::table
            .filter(ship_instance::id.eq(INSTANCE_ROW))
            .select((
                ship_instance::incarnation,
                ship_instance::previous_incarnation,
                ship_instance::incarnation_at,
            ))
            .first::<(String, String, Option<chrono::NaiveDateTime>)>(conn)
            .optional()
    };
    let row = match read(conn)? {
        Some((id, _, _)) if id.is_empty() => {
            diesel::update(
                ship_instance::table
                    .filter(ship_instance::id.eq(INSTANCE_ROW))
                    .filter(ship_instance::incarnation.eq("")),
            )
            .set((
                ship_instance::incarnation.eq(new_incarnation()),
                ship_instance::incarnation_at.eq(Some(super::utc_now())),
            ))
            .execute(conn)?;
            read(conn)?
        }
        row => row,
    };
    Ok(match row {
        Some((id, previous, since)) => Incarnation {
            id,
            previous,
            since,
        },
        // Not bound to a region yet (a database only migrated, as in tests): no incarnation.
        None => Incarnation {
            id: String::new(),
            previous: String::new(),
            since: None,
        },
    })
}

/// This database turned out to be an older copy of the region (a peer has read further in
/// its feed than it reaches): give it a new incarnation, unless `current` is no longer the
/// incarnation (another process made the new one first). Returns the incarnation now.
pub fn reincarnate(conn: &mut AnyConnection, current: &str) -> Result<Incarnation, DbError> {
    diesel::update(
        ship_instance::table
            .filter(ship_instance::id.eq(INSTANCE_ROW))
            .filter(ship_instance::incarnation.eq(current)),
    )
    .set((
        ship_instance::incarnation.eq(new_incarnation()),
        ship_instance::previous_incarnation.eq(current),
        ship_instance::incarnation_at.eq(Some(super::utc_now())),
    ))
    .execute(conn)?;
    incarnation(conn)
}
