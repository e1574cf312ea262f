//! The peer directory (SYNC-PROTOCOL §8): where the other regions are and a short-lived token
//! for calling each. Implemented by a container (in-process when this region runs the broker
//! role, over HTTP otherwise), wired by `app`, used by whatever pulls from or pushes to peers.
//!
//! Contract for implementations:
//! - tokens are cached and refreshed before they expire;
//! - `grant(peer, Refresh::Force)` asks the broker again (a peer answered `token_expired`);
//!   callers force at most once per request and never loop;
//! - while the broker cannot be reached, unexpired cached grants keep being served and
//!   [`DirectoryHealth`] says so.

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

use crate::auth::PublicJwk;

/// A boxed future, for contracts used as trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A peer region and a token for calling it. `Debug` leaves the token out.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerGrant {
    pub id: String,
    pub base_url: String,
    /// `online` or `offline` as the broker sees its heartbeats.
    pub status: String,
    /// Bearer token with `aud` = this peer, `sub` = us.
    pub token: String,
    /// Unix seconds.
    pub expires_at: i64,
}

impl std::fmt::Debug for PeerGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerGrant")
            .field("id", &self.id)
            .field("base_url", &self.base_url)
            .field("status", &self.status)
            .field("token", &"***")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Use the cache or ask the broker again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    /// A cached grant with enough life left is returned as is.
    IfNeeded,
    /// Ask the broker (the peer refused the cached token as expired).
    Force,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    #[error("the broker cannot be reached ({0}) and nothing usable is cached")]
    BrokerUnreachable(String),
    #[error("the broker refused: {code}: {message}")]
    Refused { code: String, message: String },
    #[error("the broker knows no region `{0}`")]
    UnknownPeer(String),
    #[error("region `{peer}` is registered at `{url}`, plain http to a non-loopback host: a token is never sent there (use https, or allow_insecure_http on a trusted network)")]
    InsecurePeer { peer: String, url: String },
}

/// How the directory's last exchanges with the broker went (for status and alerts).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DirectoryHealth {
    pub broker_reachable: bool,
    pub last_error: Option<String>,
    /// Unix seconds of the last answer from the broker.
    pub last_success_at: Option<i64>,
    /// Answers served from the cache because the broker could not be reached.
    pub served_from_cache: u64,
}

pub trait PeerDirectory: Send + Sync {
    /// Every other region the broker knows, each with a token.
    fn peers(&self) -> BoxFuture<'_, Result<Vec<PeerGrant>, DirectoryError>>;
    /// One region and a token for it.
    fn grant<'a>(
        &'a self,
        peer: &'a str,
        refresh: Refresh,
    ) -> BoxFuture<'a, Result<PeerGrant, DirectoryError>>;
    fn health(&self) -> DirectoryHealth;
    /// Forget the cached grant of `peer` (it could not be reached: its address may have
    /// changed at the broker); the next `grant` asks the broker.
    fn invalidate(&self, peer: &str);
}

/// Where a verifier gets the broker's current public keys.
pub trait KeySource: Send + Sync {
    fn public_keys(&self) -> BoxFuture<'_, Result<Vec<PublicJwk>, DirectoryError>>;
}
