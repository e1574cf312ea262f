//! The broker's keys: the signing key (loaded from, or generated into, `signing_key_file`)
//! and the retired public keys still accepted during a rotation.

use std::time::Duration;

use ship::auth::{PublicJwk, SigningKey, TokenIssuer};

use crate::config::BrokerConfig;
use crate::errors::BrokerError;

pub struct BrokerKeys {
    issuer: TokenIssuer,
    accepted: Vec<PublicJwk>,
}

impl BrokerKeys {
    /// Load the signing key named by the configuration, generating it on first start (said in
    /// the log). Tokens live `token_lifetime_secs`, never more than `max_lifetime_secs`.
    pub fn load(
        config: &BrokerConfig,
        issuer: &str,
        max_lifetime_secs: u64,
    ) -> Result<Self, BrokerError> {
        let (key, generated) = match &config.signing_key {
            Some(pem) => SigningKey::from_pem(pem.expose())
                .map(|k| (k, false))
                .map_err(|e| BrokerError::Signing(format!("broker.signing_key: {e}")))?,
            None => SigningKey::load_or_generate(&config.signing_key_file)
                .map_err(|e| BrokerError::Signing(e.to_string()))?,
        };
        if generated {
            tracing::info!(
                file = %config.signing_key_file.display(),
                kid = key.kid(),
                "generated the broker's Ed25519 signing key (keep this file secret and backed up)"
            );
        }
        let lifetime = config.token_lifetime_secs.min(max_lifetime_secs);
        if lifetime < config.token_lifetime_secs {
            tracing::warn!(
                configured = config.token_lifetime_secs,
                cap = max_lifetime_secs,
                "broker.token_lifetime_secs is over auth.max_token_lifetime_secs: using the cap"
            );
        }
        Ok(Self::new(
            key,
            issuer,
            Duration::from_secs(lifetime),
            config.accepted_keys.clone(),
        ))
    }

    pub fn new(
        key: SigningKey,
        issuer: &str,
        lifetime: Duration,
        accepted: Vec<PublicJwk>,
    ) -> Self {
        Self {
            issuer: TokenIssuer::new(key, issuer, lifetime),
            accepted,
        }
    }

    pub fn issuer(&self) -> &TokenIssuer {
        &self.issuer
    }

    /// The current key first, then the retired ones still accepted.
    pub fn public_keys(&self) -> Vec<PublicJwk> {
        let mut keys = vec![self.issuer.public_jwk().clone()];
        keys.extend(
            self.accepted
                .iter()
                .filter(|k| k.kid != self.issuer.kid())
                .cloned(),
        );
        keys
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn config(lifetime_secs: u64) -> BrokerConfig {
        BrokerConfig {
            signing_key: Some(ship::config::Secret::new(
                ship::testing::test_signing_key_pem(),
            )),
            token_lifetime_secs: lifetime_secs,
            ..BrokerConfig::default()
        }
    }

    fn lifetime_of_issued(keys: &BrokerKeys) -> i64 {
        let token = keys.issuer().issue("eu-west", "us-east", &[]).unwrap();
        let payload = token.token.split('.').nth(1).unwrap();
        let json =
            base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
                .unwrap();
        let claims: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(token.expires_at, claims["exp"].as_i64().unwrap());
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap()
    }

    /// Issue 4: "lifetime capped by `max_token_lifetime`" — a broker configured for longer
    /// tokens than the verifiers accept issues them at the cap (every one would be refused).
    #[test]
    fn issued_tokens_never_outlive_the_cap() {
        let capped = BrokerKeys::load(&config(3_600), "broker", 300).unwrap();
        assert_eq!(lifetime_of_issued(&capped), 300);
        let under = BrokerKeys::load(&config(120), "broker", 300).unwrap();
        assert_eq!(lifetime_of_issued(&under), 120);
    }
}
