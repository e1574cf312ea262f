//! Tenant placement.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use ship::AnyConnection;

use super::schema::broker_tenants;
use crate::models::Tenant;

pub fn find(conn: &mut AnyConnection, tenant_id: &str) -> QueryResult<Option<Tenant>> {
    broker_tenants::table
        .find(tenant_id)
        .select(Tenant::as_select())
        .first(conn)
        .optional()
}

pub fn insert(
    conn: &mut AnyConnection,
    tenant_id: &str,
    home_region: &str,
    now: NaiveDateTime,
) -> QueryResult<()> {
    diesel::insert_into(broker_tenants::table)
        .values((
            broker_tenants::tenant_id.eq(tenant_id),
            broker_tenants::home_region.eq(home_region),
            broker_tenants::epoch.eq(1i64),
            broker_tenants::placed_at.eq(now),
        ))
        .execute(conn)
        .map(drop)
}

/// Move the tenant: a new home and the next epoch.
pub fn move_to(
    conn: &mut AnyConnection,
    tenant_id: &str,
    home_region: &str,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(broker_tenants::table.find(tenant_id))
        .set((
            broker_tenants::home_region.eq(home_region),
            broker_tenants::epoch.eq(broker_tenants::epoch + 1),
            broker_tenants::placed_at.eq(now),
        ))
        .execute(conn)
}

pub fn count_in(conn: &mut AnyConnection, region: &str) -> QueryResult<i64> {
    broker_tenants::table
        .filter(broker_tenants::home_region.eq(region))
        .count()
        .get_result(conn)
}
