//! Inter-region tokens (SYNC-PROTOCOL §7): short-lived JWTs signed with Ed25519 by the broker,
//! verified by every region on every inter-region request.
//!
//! - [`TokenIssuer`] (the broker) signs `{iss, sub, aud, scope, iat, nbf, exp, jti}` with header
//!   `{alg: EdDSA, kid}`; the lifetime is capped.
//! - [`TokenVerifier`] (every region) accepts only `EdDSA`, only a known `kid`, only `aud` = this
//!   region and `iss` = the configured issuer, `exp`/`nbf` within the leeway, a lifetime not over
//!   the cap, and a scope that names the resource; every refusal is counted by code.
//! - [`middleware`] puts the verifier in front of a route scope.
//!
//! Signature and algorithm are checked before any claim, so a forged token is always
//! `token_invalid` and never reveals whether its claims would have passed.

pub mod keys;
pub mod middleware;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::Duration;

use actix_web::http::StatusCode;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

pub use keys::{PublicJwk, SigningKey};

use crate::config::{key, ConfigProblem, Validate};
use crate::errors::ApiError;

/// The claims of an inter-region token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    /// The broker that issued it.
    pub iss: String,
    /// The calling region.
    pub sub: String,
    /// The region the token is for.
    pub aud: String,
    /// The resources the caller may sync with the audience.
    pub scope: Vec<String>,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: String,
}

/// Why a request's token was refused. Statuses and codes are part of the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("this route needs `Authorization: Bearer <token>` with a token from the broker")]
    Missing,
    #[error("the token is not valid: {0}")]
    Invalid(String),
    #[error("the token expired; ask the broker for a new one")]
    Expired,
    #[error("the token is not valid yet (nbf is in the future)")]
    NotYetValid,
    #[error("the token is for region `{got}`, not for this region (`{expected}`)")]
    WrongAudience { expected: String, got: String },
    #[error("the token does not cover resource `{0}`")]
    Scope(String),
    #[error(
        "the token was issued to region `{sub}` but the batch says it comes from `{source_region}`"
    )]
    WrongSubject { sub: String, source_region: String },
}

impl ApiError for AuthError {
    fn status(&self) -> StatusCode {
        match self {
            AuthError::Missing
            | AuthError::Invalid(_)
            | AuthError::Expired
            | AuthError::NotYetValid => StatusCode::UNAUTHORIZED,
            AuthError::WrongAudience { .. }
            | AuthError::Scope(_)
            | AuthError::WrongSubject { .. } => StatusCode::FORBIDDEN,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            AuthError::Missing => "token_missing",
            AuthError::Invalid(_) => "token_invalid",
            AuthError::Expired => "token_expired",
            AuthError::NotYetValid => "token_not_yet_valid",
            AuthError::WrongAudience { .. } => "token_wrong_audience",
            AuthError::Scope(_) => "token_scope",
            AuthError::WrongSubject { .. } => "token_wrong_subject",
        }
    }
}

/// Every refusal code, for the counters.
pub const REFUSAL_CODES: [&str; 7] = [
    "token_missing",
    "token_invalid",
    "token_expired",
    "token_not_yet_valid",
    "token_wrong_audience",
    "token_scope",
    "token_wrong_subject",
];

/// Keys or configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    #[error("{0}")]
    Key(String),
    #[error("signing failed: {0}")]
    Sign(String),
}

/// `[auth]`: how this region verifies the tokens peers present.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// The `iss` tokens must carry (the broker's issuer name).
    pub issuer: String,
    /// Seconds of clock difference tolerated on `exp` and `nbf`.
    pub leeway_secs: u64,
    /// Tokens whose `exp - iat` is longer are refused, whoever signed them.
    pub max_token_lifetime_secs: u64,
    /// Public keys accepted besides the broker's (e.g. a key being rotated in, or every key
    /// when the broker's key endpoint cannot be reached at start).
    pub trusted_keys: Vec<PublicJwk>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            issuer: "regionsync-broker".into(),
            leeway_secs: 30,
            max_token_lifetime_secs: 300,
            trusted_keys: Vec::new(),
        }
    }
}

impl Validate for AuthSettings {
    fn validate(&self, prefix: &str, problems: &mut Vec<ConfigProblem>) {
        if self.issuer.trim().is_empty() {
            problems.push(ConfigProblem::new(
                key(prefix, "issuer"),
                "must not be empty",
            ));
        }
        if self.max_token_lifetime_secs == 0 || self.max_token_lifetime_secs > 3600 {
            problems.push(ConfigProblem::new(
                key(prefix, "max_token_lifetime_secs"),
                "must be between 1 and 3600 seconds",
            ));
        }
        if self.leeway_secs > 300 {
            problems.push(ConfigProblem::new(
                key(prefix, "leeway_secs"),
                "must be at most 300 seconds",
            ));
        }
        for (i, jwk) in self.trusted_keys.iter().enumerate() {
            if let Err(e) = jwk.public_key() {
                problems.push(ConfigProblem::new(
                    key(prefix, &format!("trusted_keys[{i}]")),
                    e.to_string(),
                ));
            }
        }
    }
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Signs tokens (the broker role).
pub struct TokenIssuer {
    key: SigningKey,
    issuer: String,
    lifetime: Duration,
}

/// A signed token and when it expires (unix seconds). `Debug` leaves the token out.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedToken {
    pub token: String,
    pub expires_at: i64,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("token", &"***")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl TokenIssuer {
    /// `lifetime` is the lifetime of every token issued (capped by the configuration).
    pub fn new(key: SigningKey, issuer: impl Into<String>, lifetime: Duration) -> Self {
        Self {
            key,
            issuer: issuer.into(),
            lifetime,
        }
    }

    pub fn kid(&self) -> &str {
        self.key.kid()
    }

    pub fn public_jwk(&self) -> &PublicJwk {
        self.key.public_jwk()
    }

    /// A token for `sub` to call `aud` on `scope`.
    pub fn issue(
        &self,
        sub: &str,
        aud: &str,
        scope: &[String],
    ) -> Result<IssuedToken, AuthSetupError> {
        let now = unix_now();
        let claims = TokenClaims {
            iss: self.issuer.clone(),
            sub: sub.into(),
            aud: aud.into(),
            scope: scope.to_vec(),
            iat: now,
            nbf: now,
            exp: now + self.lifetime.as_secs() as i64,
            jti: uuid::Uuid::new_v4().to_string(),
        };
        self.sign(&claims).map(|token| IssuedToken {
            token,
            expires_at: claims.exp,
        })
    }

    /// Sign arbitrary claims with this key (tests build bad tokens with it).
    pub fn sign(&self, claims: &TokenClaims) -> Result<String, AuthSetupError> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.key.kid().to_string());
        jsonwebtoken::encode(&header, claims, &self.key.encoding_key())
            .map_err(|e| AuthSetupError::Sign(e.to_string()))
    }
}

/// Verifies the tokens presented to this region. Cheap to share (`Arc`); the key set can be
/// replaced while running (a refresh from the broker).
pub struct TokenVerifier {
    region: String,
    settings: AuthSettings,
    keys: RwLock<HashMap<String, DecodingKey>>,
    refusals: BTreeMap<&'static str, AtomicU64>,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("region", &self.region)
            .field("kids", &self.kids())
            .finish_non_exhaustive()
    }
}

impl TokenVerifier {
    /// A verifier for `region` accepting `settings.trusted_keys` plus `keys`.
    pub fn new(
        region: impl Into<String>,
        settings: AuthSettings,
        keys: &[PublicJwk],
    ) -> Result<Self, AuthSetupError> {
        let verifier = Self {
            region: region.into(),
            settings,
            keys: RwLock::new(HashMap::new()),
            refusals: REFUSAL_CODES
                .iter()
                .map(|c| (*c, AtomicU64::new(0)))
                .collect(),
        };
        verifier.set_keys(keys)?;
        Ok(verifier)
    }

    /// Replace the accepted keys by `keys` plus the configured `trusted_keys` (a key removed
    /// at the broker stops being accepted at the next refresh).
    pub fn set_keys(&self, keys: &[PublicJwk]) -> Result<(), AuthSetupError> {
        let mut map = HashMap::new();
        for jwk in keys.iter().chain(&self.settings.trusted_keys) {
            let public = jwk.public_key()?;
            let x =
                base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &public);
            let decoding = DecodingKey::from_ed_components(&x)
                .map_err(|e| AuthSetupError::Key(format!("key `{}`: {e}", jwk.kid)))?;
            map.insert(jwk.kid.clone(), decoding);
        }
        match self.keys.write() {
            Ok(mut guard) => *guard = map,
            Err(poisoned) => *poisoned.into_inner() = map,
        }
        Ok(())
    }

    /// The accepted key ids, sorted.
    pub fn kids(&self) -> Vec<String> {
        let mut kids: Vec<String> = match self.keys.read() {
            Ok(guard) => guard.keys().cloned().collect(),
            Err(poisoned) => poisoned.into_inner().keys().cloned().collect(),
        };
        kids.sort();
        kids
    }

    pub fn knows_kid(&self, kid: &str) -> bool {
        match self.keys.read() {
            Ok(guard) => guard.contains_key(kid),
            Err(poisoned) => poisoned.into_inner().contains_key(kid),
        }
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// The key id a token names, if its header can be read (to decide on a key refresh).
    pub fn kid_of(token: &str) -> Option<String> {
        jsonwebtoken::decode_header(token).ok().and_then(|h| h.kid)
    }

    /// Verify `token` for a request on `resource`. Refusals are counted.
    pub fn verify(&self, token: Option<&str>, resource: &str) -> Result<TokenClaims, AuthError> {
        let result = self.check(token, resource);
        if let Err(e) = &result {
            self.count(e);
        }
        result
    }

    /// The token's subject must be the region the request body speaks for.
    pub fn check_subject(
        &self,
        claims: &TokenClaims,
        source_region: &str,
    ) -> Result<(), AuthError> {
        if claims.sub == source_region {
            return Ok(());
        }
        let e = AuthError::WrongSubject {
            sub: claims.sub.clone(),
            source_region: source_region.into(),
        };
        self.count(&e);
        Err(e)
    }

    /// Refusals since start, by code.
    pub fn refusals(&self) -> BTreeMap<&'static str, u64> {
        self.refusals
            .iter()
            .map(|(code, n)| (*code, n.load(Ordering::Relaxed)))
            .collect()
    }

    fn count(&self, e: &AuthError) {
        if let Some(counter) = self.refusals.get(e.code()) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        // Counted above (and served in /health/ready); one line per refusal only at DEBUG, so
        // a flood of bad tokens cannot fill the log (issue 12).
        tracing::debug!(code = e.code(), reason = %crate::errors::clip(&e.to_string()), "refused a sync request");
    }

    fn check(&self, token: Option<&str>, resource: &str) -> Result<TokenClaims, AuthError> {
        let token = token.filter(|t| !t.is_empty()).ok_or(AuthError::Missing)?;
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| AuthError::Invalid(format!("unreadable header: {e}")))?;
        refuse_critical_extensions(token)?;
        if header.alg != Algorithm::EdDSA {
            return Err(AuthError::Invalid(format!(
                "algorithm {:?} is not accepted; only EdDSA",
                header.alg
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| AuthError::Invalid("the header names no key id (kid)".into()))?;
        let key = {
            let keys = match self.keys.read() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            keys.get(&kid)
                .cloned()
                // Debug-escaped: the kid is the caller's text and ends up in the log.
                .ok_or_else(|| AuthError::Invalid(format!("unknown key id {kid:?}")))?
        };
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = self.settings.leeway_secs;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.settings.issuer]);
        // The audience is compared below, so a wrong one gets its own code.
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["iss", "sub", "aud", "iat", "nbf", "exp"]);
        let data = jsonwebtoken::decode::<TokenClaims>(token, &key, &validation).map_err(|e| {
            match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                ErrorKind::InvalidIssuer => {
                    AuthError::Invalid("issued by an unknown issuer".into())
                }
                ErrorKind::InvalidSignature => AuthError::Invalid("bad signature".into()),
                ErrorKind::MissingRequiredClaim(claim) => {
                    AuthError::Invalid(format!("missing claim `{claim}`"))
                }
                ErrorKind::Json(e) => AuthError::Invalid(format!("claims: {e}")),
                _ => AuthError::Invalid(e.to_string()),
            }
        })?;
        let claims = data.claims;
        // Checked arithmetic: claims are attacker-shaped numbers (iat = i64::MIN must not
        // wrap into a short lifetime).
        let lifetime = claims.exp.checked_sub(claims.iat);
        if lifetime.is_none_or(|l| l > self.settings.max_token_lifetime_secs as i64) {
            return Err(AuthError::Invalid(format!(
                "lifetime from iat {} to exp {} is over the cap of {} s",
                claims.iat, claims.exp, self.settings.max_token_lifetime_secs
            )));
        }
        if claims.iat > unix_now().saturating_add(self.settings.leeway_secs as i64) {
            return Err(AuthError::NotYetValid);
        }
        if claims.aud != self.region {
            return Err(AuthError::WrongAudience {
                expected: self.region.clone(),
                got: claims.aud,
            });
        }
        if !claims.scope.iter().any(|s| s == resource) {
            return Err(AuthError::Scope(resource.into()));
        }
        Ok(claims)
    }
}

/// RFC 7515 §4.1.11: a recipient must refuse a token whose `crit` header names an extension
/// it does not understand, and this verifier understands none. `jsonwebtoken::Header` drops
/// unknown members, so the protected header is read again as JSON (which also decodes a key
/// spelled with escapes, e.g. `"\u0063rit"`).
fn refuse_critical_extensions(token: &str) -> Result<(), AuthError> {
    use base64::Engine as _;
    let unreadable = || AuthError::Invalid("unreadable header".into());
    let first = token.split('.').next().ok_or_else(unreadable)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(first)
        .map_err(|_| unreadable())?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes).map_err(|_| unreadable())?;
    if header.contains_key("crit") {
        return Err(AuthError::Invalid(
            "the header has `crit` (critical extensions), none of which this region understands"
                .into(),
        ));
    }
    Ok(())
}

impl crate::contracts::StatusSource for TokenVerifier {
    fn name(&self) -> &'static str {
        "tokens"
    }

    /// Refusals since start by code, and the key ids accepted.
    fn status(&self) -> serde_json::Value {
        serde_json::json!({ "refusals": self.refusals(), "kids": self.kids() })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Arc;

    use super::*;

    fn issuer(key: SigningKey) -> TokenIssuer {
        TokenIssuer::new(key, "regionsync-broker", Duration::from_secs(300))
    }

    fn scope() -> Vec<String> {
        vec!["customers".into()]
    }

    #[test]
    fn a_refresh_replaces_the_key_set_but_keeps_the_trusted_keys() {
        let (old, new, trusted) = (
            issuer(SigningKey::generate().unwrap()),
            issuer(SigningKey::generate().unwrap()),
            issuer(SigningKey::generate().unwrap()),
        );
        let settings = AuthSettings {
            trusted_keys: vec![trusted.public_jwk().clone()],
            ..AuthSettings::default()
        };
        let verifier =
            TokenVerifier::new("eu-west", settings, &[old.public_jwk().clone()]).unwrap();
        let token = |i: &TokenIssuer| i.issue("us-east", "eu-west", &scope()).unwrap().token;
        assert!(verifier.verify(Some(&token(&old)), "customers").is_ok());
        assert!(verifier.verify(Some(&token(&trusted)), "customers").is_ok());

        // The broker now serves only the new key: the old one is refused, trusted stays.
        verifier.set_keys(&[new.public_jwk().clone()]).unwrap();
        assert!(matches!(
            verifier.verify(Some(&token(&old)), "customers"),
            Err(AuthError::Invalid(m)) if m.contains("unknown key id")
        ));
        assert!(verifier.verify(Some(&token(&new)), "customers").is_ok());
        assert!(verifier.verify(Some(&token(&trusted)), "customers").is_ok());
        assert_eq!(verifier.refusals()["token_invalid"], 1);
    }

    struct Keys(
        std::sync::Mutex<Vec<PublicJwk>>,
        std::sync::atomic::AtomicUsize,
    );

    impl crate::contracts::KeySource for Keys {
        fn public_keys(
            &self,
        ) -> crate::contracts::BoxFuture<'_, Result<Vec<PublicJwk>, crate::contracts::DirectoryError>>
        {
            self.1.fetch_add(1, Ordering::SeqCst);
            let keys = self.0.lock().unwrap().clone();
            // A slow broker: concurrent callers overlap with the fetch.
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                Ok(keys)
            })
        }
    }

    /// A gate that accepts an old key and whose key source (slow) serves old + new: the
    /// broker rotated to the returned issuer's key.
    fn rotated_gate() -> (TokenIssuer, Arc<Keys>, middleware::AuthGate) {
        let (old, new) = (
            issuer(SigningKey::generate().unwrap()),
            issuer(SigningKey::generate().unwrap()),
        );
        let source = Arc::new(Keys(
            std::sync::Mutex::new(vec![old.public_jwk().clone(), new.public_jwk().clone()]),
            std::sync::atomic::AtomicUsize::new(0),
        ));
        let verifier = TokenVerifier::new(
            "eu-west",
            AuthSettings::default(),
            &[old.public_jwk().clone()],
        )
        .unwrap();
        let gate = middleware::AuthGate::new(Arc::new(verifier), Some(source.clone()));
        (new, source, gate)
    }

    /// Regression: only the caller that started the key refresh waited for it; requests with
    /// the new kid racing it were refused token_invalid during a rotation.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_racing_a_key_refresh_wait_for_it() {
        let (new, source, gate) = rotated_gate();
        let gate = Arc::new(gate);
        let token = new.issue("us-east", "eu-west", &scope()).unwrap().token;
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let (gate, token) = (Arc::clone(&gate), token.clone());
                tokio::spawn(async move { gate.verify(Some(&token), "customers").await })
            })
            .collect();
        for task in tasks {
            assert!(task.await.unwrap().is_ok());
        }
        assert_eq!(
            source.1.load(Ordering::SeqCst),
            1,
            "one fetch for all of them"
        );
    }

    /// Issue 12 #9: a `crit` header member is refused however it is spelled (a JSON escape in
    /// the member name, an empty list), while the same token without it is accepted.
    #[test]
    fn a_crit_header_is_refused_as_token_invalid() {
        use base64::Engine as _;
        use ring::signature::Ed25519KeyPair;
        let key = SigningKey::generate().unwrap();
        let jwk = key.public_jwk().clone();
        let pkcs8 = pem::parse(key.to_pem()).unwrap().into_contents();
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pkcs8).unwrap();
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let now = unix_now();
        let claims = serde_json::json!({
            "iss": "regionsync-broker", "sub": "us-east", "aud": "eu-west",
            "scope": ["customers"], "iat": now, "nbf": now, "exp": now + 60, "jti": "j",
        });
        let sign = |header: &str| {
            let input = format!(
                "{}.{}",
                b64(header.as_bytes()),
                b64(claims.to_string().as_bytes())
            );
            format!("{input}.{}", b64(pair.sign(input.as_bytes()).as_ref()))
        };
        let verifier = TokenVerifier::new("eu-west", AuthSettings::default(), &[jwk]).unwrap();
        let kid = key.kid();
        let plain = sign(&format!(r#"{{"alg":"EdDSA","typ":"JWT","kid":"{kid}"}}"#));
        assert!(verifier.verify(Some(&plain), "customers").is_ok());
        for header in [
            format!(r#"{{"alg":"EdDSA","kid":"{kid}","crit":["exp"]}}"#),
            format!(r#"{{"alg":"EdDSA","kid":"{kid}","crit":["x-replay-ok"],"x-replay-ok":1}}"#),
            format!(r#"{{"alg":"EdDSA","kid":"{kid}","crit":[]}}"#),
            format!(r#"{{"alg":"EdDSA","kid":"{kid}","\u0063rit":["b64"],"b64":false}}"#),
        ] {
            let refused = verifier.verify(Some(&sign(&header)), "customers");
            assert!(
                matches!(&refused, Err(AuthError::Invalid(m)) if m.contains("crit")),
                "{header}: {refused:?}"
            );
        }
        assert_eq!(verifier.refusals()["token_invalid"], 4);
    }

    #[tokio::test]
    async fn an_unknown_kid_refreshes_the_keys_once_per_interval() {
        let (new, source, gate) = rotated_gate();
        let token = new.issue("us-east", "eu-west", &scope()).unwrap().token;
        // The broker rotated to `new`: the first sight of its kid fetches the keys.
        assert!(gate.verify(Some(&token), "customers").await.is_ok());
        assert_eq!(source.1.load(Ordering::SeqCst), 1);
        // Known kids never fetch; unknown ones fetch at most once per interval.
        assert!(gate.verify(Some(&token), "customers").await.is_ok());
        let stranger = issuer(SigningKey::generate().unwrap());
        let bad = stranger
            .issue("us-east", "eu-west", &scope())
            .unwrap()
            .token;
        for _ in 0..5 {
            assert!(matches!(
                gate.verify(Some(&bad), "customers").await,
                Err(AuthError::Invalid(_))
            ));
        }
        assert_eq!(
            source.1.load(Ordering::SeqCst),
            1,
            "rate-limited: no fetch storm"
        );
    }
}
