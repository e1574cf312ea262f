//! PlaceTenant: set a tenant's home region. A move increments the epoch; placing a tenant
//! where it already is changes nothing.

use serde::Serialize;
use ship::parents::Action;
use ship::DbPool;

use crate::data::{lock, regions, tenants};
use crate::errors::BrokerError;
use crate::models::Tenant;

#[derive(Debug, Clone)]
pub struct PlaceTenantInput {
    pub tenant_id: String,
    pub region: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Placement {
    pub tenant_id: String,
    pub home_region: String,
    pub epoch: i64,
    /// False when the tenant already lived there.
    pub changed: bool,
}

pub struct PlaceTenantAction {
    pool: DbPool,
}

impl PlaceTenantAction {
    pub fn new(pool: DbPool) -> Self {
        Self { pool }
    }
}

/// 1 to 128 characters from `A-Za-z0-9._:-`.
pub fn check_tenant_id(id: &str) -> Result<(), BrokerError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(BrokerError::Invalid(format!(
            "`{id}` is not a tenant id: use 1 to 128 characters from A-Z, a-z, 0-9 and . _ : -"
        )))
    }
}

impl Action for PlaceTenantAction {
    const NAME: &'static str = "broker.place_tenant";
    type Input = PlaceTenantInput;
    type Output = Placement;
    type Error = BrokerError;

    #[tracing::instrument(name = "broker.place_tenant", skip_all, fields(tenant = %input.tenant_id, region = %input.region))]
    async fn run(&self, input: PlaceTenantInput) -> Result<Placement, BrokerError> {
        check_tenant_id(&input.tenant_id)?;
        self.pool
            .transaction(move |conn| {
                lock::registry(conn)?;
                if regions::find(conn, &input.region)?.is_none() {
                    return Err(BrokerError::UnknownRegion(input.region.clone()));
                }
                let now = ship::db::utc_now();
                let changed = match tenants::find(conn, &input.tenant_id)? {
                    None => {
                        tenants::insert(conn, &input.tenant_id, &input.region, now)?;
                        true
                    }
                    Some(t) if t.home_region == input.region => false,
                    Some(_) => {
                        tenants::move_to(conn, &input.tenant_id, &input.region, now)?;
                        true
                    }
                };
                let Tenant {
                    tenant_id,
                    home_region,
                    epoch,
                    ..
                } = tenants::find(conn, &input.tenant_id)?
                    .ok_or_else(|| BrokerError::UnknownTenant(input.tenant_id.clone()))?;
                Ok(Placement {
                    tenant_id,
                    home_region,
                    epoch,
                    changed,
                })
            })
            .await
    }
}
