//! Region credentials: 256 random bits, shown once, stored as their SHA-256. A credential
//! with this much entropy needs no slow hash: a database leak reveals nothing guessable.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};

use crate::errors::BrokerError;

const PREFIX: &str = "rsc_";

/// A new credential (`rsc_` + 43 base64url characters).
pub fn generate() -> Result<String, BrokerError> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| BrokerError::Signing("the system random source failed".into()))?;
    Ok(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// What the registry stores for `credential`.
pub fn hash(credential: &str) -> String {
    hex::encode(Sha256::digest(credential.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_random_prefixed_and_hashed() {
        let (a, b) = (
            generate().unwrap_or_default(),
            generate().unwrap_or_default(),
        );
        assert!(a.starts_with(PREFIX) && a.len() == 47, "{a}");
        assert_ne!(a, b);
        assert_eq!(hash(&a).len(), 64);
        assert_ne!(hash(&a), hash(&b));
    }
}
