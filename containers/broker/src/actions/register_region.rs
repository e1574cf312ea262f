//! RegisterRegion: add a region to the registry and create its credential, which is returned
//! once and stored only as a hash.

use serde::Serialize;
use ship::config::check_region_id;
use ship::parents::Action;
use ship::DbPool;

use super::check_base_url;
use crate::base_url::UrlPolicy;
use crate::credentials;
use crate::data::{lock, regions};
use crate::errors::BrokerError;
use crate::models::{RegionView, ALL_SCOPES};

#[derive(Debug, Clone)]
pub struct RegisterRegionInput {
    pub id: String,
    pub base_url: String,
    /// `None`: every resource the broker serves.
    pub scopes: Option<Vec<String>>,
}

#[derive(Clone, Serialize)]
pub struct RegisteredRegion {
    pub region: RegionView,
    /// Shown once; the registry keeps only its hash.
    pub credential: String,
}

impl std::fmt::Debug for RegisteredRegion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisteredRegion")
            .field("region", &self.region)
            .field("credential", &"***")
            .finish()
    }
}

pub struct RegisterRegionAction {
    pool: DbPool,
    offline_after_secs: u64,
    policy: UrlPolicy,
}

impl RegisterRegionAction {
    pub fn new(pool: DbPool, offline_after_secs: u64) -> Self {
        Self {
            pool,
            offline_after_secs,
            policy: UrlPolicy::Default,
        }
    }

    /// The operator's `--allow-private`: a link-local or cloud metadata base URL is accepted
    /// (user information, control characters and unspecified addresses never are).
    pub fn allowing_private(mut self, allow: bool) -> Self {
        self.policy = if allow {
            UrlPolicy::AllowPrivate
        } else {
            UrlPolicy::Default
        };
        self
    }
}

impl Action for RegisterRegionAction {
    const NAME: &'static str = "broker.register_region";
    type Input = RegisterRegionInput;
    type Output = RegisteredRegion;
    type Error = BrokerError;

    #[tracing::instrument(name = "broker.register_region", skip_all, fields(region = %input.id))]
    async fn run(&self, input: RegisterRegionInput) -> Result<RegisteredRegion, BrokerError> {
        check_region_id(&input.id).map_err(BrokerError::Invalid)?;
        check_base_url(&input.base_url, self.policy)?;
        let scopes = match &input.scopes {
            None => ALL_SCOPES.to_string(),
            Some(list) => {
                let ok = !list.is_empty()
                    && list.iter().all(|s| {
                        !s.is_empty()
                            && s.bytes()
                                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                    });
                if !ok {
                    return Err(BrokerError::Invalid(
                        "scopes are resource names (a-z, 0-9, _), at least one".into(),
                    ));
                }
                list.join(",")
            }
        };
        let credential = credentials::generate()?;
        let hash = credentials::hash(&credential);
        let offline_after = self.offline_after_secs;
        let region = self
            .pool
            .transaction(move |conn| {
                lock::registry(conn)?;
                if regions::find(conn, &input.id)?.is_some() {
                    return Err(BrokerError::RegionExists(input.id.clone()));
                }
                let now = ship::db::utc_now();
                regions::insert(conn, &input.id, &input.base_url, &hash, &scopes, now)?;
                let region = regions::find(conn, &input.id)?
                    .ok_or_else(|| BrokerError::UnknownRegion(input.id.clone()))?;
                Ok(region.view(now, offline_after))
            })
            .await?;
        Ok(RegisteredRegion { region, credential })
    }
}
