//! [`BrokerDirectory`]: the peer directory every region uses (ship's `PeerDirectory` and
//! `KeySource` contracts). On the broker region it asks the broker actions in-process; on the
//! others it calls the broker over HTTP with the region's credential.
//!
//! Tokens are cached per peer and refreshed once two thirds of their life has passed. When
//! the broker cannot be reached, unexpired cached grants are served and the health says so;
//! a forced refresh (the peer said `token_expired`) never falls back to the cache.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ship::auth::PublicJwk;
use ship::contracts::{
    BoxFuture, DirectoryError, DirectoryHealth, KeySource, PeerDirectory, PeerGrant, Refresh,
};
use ship::parents::Action;

use crate::actions::{Caller, PublicKeysAction, ResolveAction, ResolveInput};
use crate::errors::BrokerError;
pub use crate::tasks::broker_http::BrokerEndpoint;
use crate::tasks::fetch_broker_keys::FetchBrokerKeysTask;
use crate::tasks::resolve_at_broker::ResolveAtBrokerTask;
use crate::tasks::send_heartbeat::SendHeartbeatTask;

/// How the directory reaches the broker.
pub enum BrokerLink {
    /// This region runs the broker role.
    Local {
        region: String,
        resolve: Arc<ResolveAction>,
        keys: Arc<PublicKeysAction>,
    },
    /// Another region does.
    Remote(BrokerEndpoint),
}

struct Cached {
    grant: PeerGrant,
    /// When it was received, on this process's monotonic clock.
    received: Instant,
    /// How long it lives from `received` on.
    life: Duration,
}

impl Cached {
    /// The token's life is `exp - now` by this region's clock, capped by its own `exp - iat`.
    /// A clock ahead of the broker's by more than the whole lifetime would make every token
    /// look expired on arrival: then the token's own `exp - iat` is trusted (and the skew is
    /// logged), so the cache keeps working.
    fn new(grant: PeerGrant) -> Self {
        let by_our_clock = grant.expires_at - unix_now();
        let by_the_token = token_lifetime(&grant.token);
        let secs = match by_the_token {
            Some(life) if by_our_clock <= 0 && life > 0 => {
                tracing::warn!(
                    peer = %grant.id,
                    ahead_by_secs = -by_our_clock,
                    "this region's clock is ahead of the broker's: check NTP"
                );
                life
            }
            Some(life) => by_our_clock.min(life),
            None => by_our_clock,
        };
        Self {
            grant,
            received: Instant::now(),
            life: Duration::from_secs(secs.max(0) as u64),
        }
    }

    fn usable(&self) -> bool {
        self.received.elapsed() < self.life
    }

    /// Fresh until two thirds of the token's life has passed.
    fn fresh(&self) -> bool {
        self.received.elapsed() < self.life * 2 / 3
    }
}

/// `exp - iat` read from the token's payload (not verified: only to time the cache).
fn token_lifetime(token: &str) -> Option<i64> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    Some(claims["exp"].as_i64()? - claims["iat"].as_i64()?)
}

#[derive(Default)]
struct State {
    grants: HashMap<String, Cached>,
    /// When the full peer list was last fetched, and its ids in order.
    listed: Option<(Instant, Vec<String>)>,
    health: DirectoryHealth,
}

pub struct BrokerDirectory {
    link: BrokerLink,
    state: Mutex<State>,
    /// One call to the broker at a time: callers that wait reuse what it brought.
    fetching: tokio::sync::Mutex<()>,
    /// How long a fetched peer list is trusted before asking again (new regions appear).
    list_ttl: Duration,
    /// Hand out grants for plain-http, non-loopback peers (tokens would travel in clear).
    allow_insecure_http: bool,
    /// `[broker] peer_urls`: where this region reaches some peers, whatever the broker lists.
    peer_urls: BTreeMap<String, String>,
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl BrokerDirectory {
    pub fn new(link: BrokerLink) -> Self {
        Self {
            link,
            state: Mutex::new(State::default()),
            fetching: tokio::sync::Mutex::new(()),
            list_ttl: Duration::from_secs(60),
            allow_insecure_http: false,
            peer_urls: BTreeMap::new(),
        }
    }

    /// Reach these peers at these URLs instead of the ones the broker lists.
    pub fn with_peer_urls(mut self, peer_urls: BTreeMap<String, String>) -> Self {
        self.peer_urls = peer_urls;
        self
    }

    pub fn allow_insecure_http(mut self, allow: bool) -> Self {
        self.allow_insecure_http = allow;
        self
    }

    fn check_url(&self, grant: &PeerGrant) -> Result<(), DirectoryError> {
        if self.allow_insecure_http || crate::config::is_secure_url(&grant.base_url) {
            Ok(())
        } else {
            Err(DirectoryError::InsecurePeer {
                peer: grant.id.clone(),
                url: grant.base_url.clone(),
            })
        }
    }

    pub fn with_list_ttl(mut self, ttl: Duration) -> Self {
        self.list_ttl = ttl;
        self
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    async fn fetch(&self, target: Option<&str>) -> Result<Vec<PeerGrant>, DirectoryError> {
        let result = match &self.link {
            BrokerLink::Local {
                region, resolve, ..
            } => resolve
                .run(ResolveInput {
                    caller: Caller::Local(region.clone()),
                    tenant_id: None,
                    target_region: target.map(str::to_string),
                })
                .await
                .map(|out| {
                    out.regions
                        .into_iter()
                        .map(|r| PeerGrant {
                            id: r.region.id,
                            base_url: r.region.base_url,
                            status: r.region.status.to_string(),
                            token: r.token,
                            expires_at: r.token_expires_at,
                        })
                        .collect()
                })
                .map_err(|e| match e {
                    BrokerError::UnknownRegion(id) => DirectoryError::UnknownPeer(id),
                    BrokerError::Db(e) => DirectoryError::BrokerUnreachable(e.to_string()),
                    other => DirectoryError::Refused {
                        code: ship::ApiError::code(&other).to_string(),
                        message: other.to_string(),
                    },
                }),
            BrokerLink::Remote(endpoint) => ResolveAtBrokerTask::run(endpoint, target).await,
        };
        self.record(&result);
        result.map(|grants| {
            grants
                .into_iter()
                .map(|mut grant| {
                    if let Some(url) = self.peer_urls.get(&grant.id) {
                        grant.base_url.clone_from(url);
                    }
                    grant
                })
                .collect()
        })
    }

    fn record<T>(&self, result: &Result<T, DirectoryError>) {
        let mut state = self.state();
        match result {
            Ok(_) => {
                state.health.broker_reachable = true;
                state.health.last_error = None;
                state.health.last_success_at = Some(unix_now());
            }
            Err(DirectoryError::BrokerUnreachable(reason)) => {
                if state.health.broker_reachable || state.health.last_error.is_none() {
                    tracing::warn!(%reason, "the broker cannot be reached");
                }
                state.health.broker_reachable = false;
                state.health.last_error = Some(reason.clone());
            }
            Err(other) => {
                state.health.broker_reachable = true;
                state.health.last_error = Some(other.to_string());
            }
        }
    }

    fn store(&self, grants: &[PeerGrant]) {
        let mut state = self.state();
        for grant in grants {
            state
                .grants
                .insert(grant.id.clone(), Cached::new(grant.clone()));
        }
    }

    /// The full list, from the cache while it is young and every grant in it fresh.
    fn cached_list(&self) -> Option<Vec<PeerGrant>> {
        let state = self.state();
        let (at, ids) = state.listed.as_ref()?;
        if at.elapsed() >= self.list_ttl {
            return None;
        }
        ids.iter()
            .map(|id| {
                state
                    .grants
                    .get(id)
                    .filter(|c| c.fresh())
                    .map(|c| c.grant.clone())
            })
            .collect()
    }

    async fn all(&self) -> Result<Vec<PeerGrant>, DirectoryError> {
        if let Some(grants) = self.cached_list() {
            return Ok(grants);
        }
        let _one_at_a_time = self.fetching.lock().await;
        if let Some(grants) = self.cached_list() {
            return Ok(grants); // fetched while we waited
        }
        match self.fetch(None).await {
            Ok(grants) => {
                let grants: Vec<PeerGrant> = grants
                    .into_iter()
                    .filter(|g| match self.check_url(g) {
                        Ok(()) => true,
                        Err(e) => {
                            tracing::warn!(error = %e, "leaving a peer out");
                            false
                        }
                    })
                    .collect();
                self.store(&grants);
                let ids = grants.iter().map(|g| g.id.clone()).collect();
                self.state().listed = Some((Instant::now(), ids));
                Ok(grants)
            }
            Err(DirectoryError::BrokerUnreachable(reason)) => {
                let mut state = self.state();
                let ids = state.listed.as_ref().map(|(_, ids)| ids.clone());
                let grants: Vec<PeerGrant> = ids
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|id| state.grants.get(id))
                    .filter(|c| c.usable())
                    .map(|c| c.grant.clone())
                    .collect();
                if grants.is_empty() {
                    return Err(DirectoryError::BrokerUnreachable(reason));
                }
                state.health.served_from_cache += 1;
                tracing::warn!(%reason, peers = grants.len(), "broker unreachable: using the cached directory");
                Ok(grants)
            }
            Err(e) => Err(e),
        }
    }

    async fn one(&self, peer: &str, refresh: Refresh) -> Result<PeerGrant, DirectoryError> {
        let fresh = || {
            self.state()
                .grants
                .get(peer)
                .filter(|c| c.fresh())
                .map(|c| c.grant.clone())
        };
        if refresh == Refresh::IfNeeded {
            if let Some(grant) = fresh() {
                return Ok(grant);
            }
        }
        let asked = Instant::now();
        let _one_at_a_time = self.fetching.lock().await;
        // What a call that finished while we waited brought: fresh enough for IfNeeded, and
        // for Force only if it was received after we asked (a newer token than the refused one).
        let newer = self
            .state()
            .grants
            .get(peer)
            .filter(|c| c.fresh() && (refresh == Refresh::IfNeeded || c.received > asked))
            .map(|c| c.grant.clone());
        if let Some(grant) = newer {
            return Ok(grant);
        }
        match self.fetch(Some(peer)).await {
            Ok(grants) => {
                let grant = grants
                    .into_iter()
                    .find(|g| g.id == peer)
                    .ok_or_else(|| DirectoryError::UnknownPeer(peer.to_string()))?;
                self.check_url(&grant)?;
                self.store(std::slice::from_ref(&grant));
                Ok(grant)
            }
            Err(DirectoryError::BrokerUnreachable(reason)) if refresh == Refresh::IfNeeded => {
                let mut state = self.state();
                let cached = state
                    .grants
                    .get(peer)
                    .filter(|c| c.usable())
                    .map(|c| c.grant.clone());
                match cached {
                    Some(grant) => {
                        state.health.served_from_cache += 1;
                        tracing::warn!(%reason, peer, "broker unreachable: using the cached token");
                        Ok(grant)
                    }
                    None => Err(DirectoryError::BrokerUnreachable(reason)),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Tell the broker this region is alive (remote link only; the broker region records its
    /// own heartbeat through `RegisterSelfAction`).
    pub async fn heartbeat(&self, base_url: Option<&str>) -> Result<(), DirectoryError> {
        let result = match &self.link {
            BrokerLink::Local { .. } => Ok(()),
            BrokerLink::Remote(endpoint) => SendHeartbeatTask::run(endpoint, base_url).await,
        };
        self.record(&result);
        result
    }
}

impl PeerDirectory for BrokerDirectory {
    fn peers(&self) -> BoxFuture<'_, Result<Vec<PeerGrant>, DirectoryError>> {
        Box::pin(self.all())
    }

    fn grant<'a>(
        &'a self,
        peer: &'a str,
        refresh: Refresh,
    ) -> BoxFuture<'a, Result<PeerGrant, DirectoryError>> {
        Box::pin(self.one(peer, refresh))
    }

    fn health(&self) -> DirectoryHealth {
        self.state().health.clone()
    }

    fn invalidate(&self, peer: &str) {
        let mut state = self.state();
        state.grants.remove(peer);
        state.listed = None;
    }
}

impl ship::contracts::StatusSource for BrokerDirectory {
    fn name(&self) -> &'static str {
        "broker"
    }

    /// Whether the broker answered last time, its last error, and how often the cache stood in.
    fn status(&self) -> serde_json::Value {
        serde_json::to_value(PeerDirectory::health(self)).unwrap_or_default()
    }
}

impl KeySource for BrokerDirectory {
    fn public_keys(&self) -> BoxFuture<'_, Result<Vec<PublicJwk>, DirectoryError>> {
        Box::pin(async move {
            let result = match &self.link {
                BrokerLink::Local { keys, .. } => {
                    keys.run(()).await.map_err(|e| DirectoryError::Refused {
                        code: ship::ApiError::code(&e).to_string(),
                        message: e.to_string(),
                    })
                }
                BrokerLink::Remote(endpoint) => FetchBrokerKeysTask::run(endpoint).await,
            };
            self.record(&result);
            result
        })
    }
}
