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
    let inserted = diesel::insert_into(ship_instance::table)
        .values((
            ship_instance::id.eq(INSTANCE_ROW),
            ship_instance::region_id.eq(region_id),
            ship_instance::created_at.eq(super::utc_now()),
        ))
        .execute(conn);
    match inserted {
        Ok(_) => Ok(true),
        // Another process (the scheduler next to the web server) bound it a moment ago.
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => match bound_region(conn)? {
            Some(bound) => check(bound).map(|()| false),
            None => Err(DbError::Migration("ship_instance row vanished".into()).into()),
        },
        Err(e) => Err(DbError::from(e).into()),
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
