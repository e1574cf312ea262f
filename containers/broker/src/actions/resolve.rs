//! Resolve: the caller asks where its peers are. For a tenant: the home region and the
//! placement epoch; for a target region: that region; for nothing: every other registered
//! region. Each returned region comes with a token for calling it (`sub` = caller, `aud` = the
//! region, `scope` = the caller's resources).
//!
//! Offline regions are returned too, with `status: offline`: liveness is the broker's view,
//! and a sender keeps its outbox for a peer the broker has not heard from.

use std::sync::Arc;

use serde::Serialize;
use ship::parents::Action;
use ship::DbPool;

use crate::data::{regions, tenants};
use crate::errors::BrokerError;
use crate::models::RegionView;
use crate::signing::BrokerKeys;
use crate::tasks::authenticate_region::AuthenticateRegionTask;
use crate::tasks::issue_tokens::IssueTokensTask;

/// Who is asking. `Debug` leaves the credential out.
#[derive(Clone, PartialEq, Eq)]
pub enum Caller {
    /// A region presenting its credential over HTTP.
    Credential(String),
    /// A registered region named by this process (the CLI's `broker token --as`): trusted by
    /// construction, but it must be registered.
    Region(String),
    /// The broker region itself (its in-process directory, the CLI): it may not be registered
    /// yet (it registers when it serves) and speaks for every resource.
    Local(String),
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Caller::Credential(_) => f.write_str("Credential(***)"),
            Caller::Region(id) => f.debug_tuple("Region").field(id).finish(),
            Caller::Local(id) => f.debug_tuple("Local").field(id).finish(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ResolveInput {
    pub caller: Caller,
    pub tenant_id: Option<String>,
    pub target_region: Option<String>,
}

#[derive(Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ResolvedRegion {
    #[serde(flatten)]
    pub region: RegionView,
    /// A token for calling that region: `sub` the caller, `aud` that region, `scope` the
    /// caller's resources.
    pub token: String,
    /// Unix seconds.
    pub token_expires_at: i64,
}

impl std::fmt::Debug for ResolvedRegion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolvedRegion")
            .field("region", &self.region)
            .field("token", &"***")
            .field("token_expires_at", &self.token_expires_at)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ResolveOutput {
    /// The caller, as authenticated.
    pub region: String,
    pub regions: Vec<ResolvedRegion>,
    /// For a tenant: its home region.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub home_region: Option<String>,
    /// For a tenant: its placement epoch (grows on every move).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch: Option<i64>,
}

pub struct ResolveAction {
    pool: DbPool,
    keys: Arc<BrokerKeys>,
    served: Vec<String>,
    offline_after_secs: u64,
}

impl ResolveAction {
    /// `served`: the resources tokens may name (the registry of this binary).
    pub fn new(
        pool: DbPool,
        keys: Arc<BrokerKeys>,
        served: Vec<String>,
        offline_after_secs: u64,
    ) -> Self {
        Self {
            pool,
            keys,
            served,
            offline_after_secs,
        }
    }
}

impl Action for ResolveAction {
    const NAME: &'static str = "broker.resolve";
    type Input = ResolveInput;
    type Output = ResolveOutput;
    type Error = BrokerError;

    #[tracing::instrument(name = "broker.resolve", skip_all, fields(
        tenant = ?input.tenant_id.as_deref().map(ship::errors::clip),
        target = ?input.target_region.as_deref().map(ship::errors::clip)
    ))]
    async fn run(&self, input: ResolveInput) -> Result<ResolveOutput, BrokerError> {
        if input.tenant_id.is_some() && input.target_region.is_some() {
            return Err(BrokerError::Invalid(
                "ask for a tenant_id or a target_region, not both".into(),
            ));
        }
        let (caller, targets, placement) = self
            .pool
            .run(move |conn| {
                let caller = AuthenticateRegionTask::run(conn, &input.caller)?;
                if let Some(tenant_id) = &input.tenant_id {
                    let tenant = tenants::find(conn, tenant_id)?
                        .ok_or_else(|| BrokerError::UnknownTenant(tenant_id.clone()))?;
                    let home = regions::find(conn, &tenant.home_region)?
                        .ok_or_else(|| BrokerError::UnknownRegion(tenant.home_region.clone()))?;
                    return Ok((caller, vec![home], Some(tenant)));
                }
                if let Some(target) = &input.target_region {
                    let region = regions::find(conn, target)?
                        .ok_or_else(|| BrokerError::UnknownRegion(target.clone()))?;
                    return Ok((caller, vec![region], None));
                }
                let others = regions::all(conn)?
                    .into_iter()
                    .filter(|r| r.id != caller.id)
                    .collect();
                Ok::<_, BrokerError>((caller, others, None))
            })
            .await?;
        let tokens = IssueTokensTask::run(self.keys.issuer(), &caller, &self.served, &targets)?;
        let now = ship::db::utc_now();
        let regions = targets
            .iter()
            .zip(tokens)
            .map(|(region, token)| ResolvedRegion {
                region: region.view(now, self.offline_after_secs),
                token: token.token,
                token_expires_at: token.expires_at,
            })
            .collect();
        Ok(ResolveOutput {
            region: caller.id,
            regions,
            home_region: placement.as_ref().map(|t| t.home_region.clone()),
            epoch: placement.map(|t| t.epoch),
        })
    }
}
