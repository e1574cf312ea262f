//! Ed25519 keys: the broker's signing key (PKCS#8, in a PEM file) and the public keys verifiers
//! accept, as JWKs (RFC 8037 `OKP`/`Ed25519`) named by their RFC 7638 thumbprint.

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::{SecureRandom as _, SystemRandom};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::AuthSetupError;

const PEM_TAG: &str = "PRIVATE KEY";

/// RFC 8410 §7: `OneAsymmetricKey { version 0 (v1), AlgorithmIdentifier { id-Ed25519 },
/// privateKey OCTET STRING { OCTET STRING (32 bytes) } }` up to the 32-byte seed.
const PKCS8_V1_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// A public key as the broker serves it and as `[auth] trusted_keys` accepts it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PublicJwk {
    pub kid: String,
    /// Always `OKP`.
    #[serde(default = "okp")]
    pub kty: String,
    /// Always `Ed25519`.
    #[serde(default = "ed25519")]
    pub crv: String,
    /// The 32-byte public key, base64url without padding.
    pub x: String,
    #[serde(default = "eddsa")]
    pub alg: String,
    #[serde(default = "sig", rename = "use")]
    pub use_: String,
}

fn okp() -> String {
    "OKP".into()
}
fn ed25519() -> String {
    "Ed25519".into()
}
fn eddsa() -> String {
    "EdDSA".into()
}
fn sig() -> String {
    "sig".into()
}

impl PublicJwk {
    /// The JWK of a raw Ed25519 public key; `kid` is its thumbprint.
    pub fn from_public_key(public: &[u8]) -> Self {
        let x = URL_SAFE_NO_PAD.encode(public);
        Self {
            kid: thumbprint(&x),
            kty: okp(),
            crv: ed25519(),
            x,
            alg: eddsa(),
            use_: sig(),
        }
    }

    /// Checks the key is an Ed25519 public key and decodes it.
    pub fn public_key(&self) -> Result<Vec<u8>, AuthSetupError> {
        if self.kty != "OKP" || self.crv != "Ed25519" || self.alg != "EdDSA" {
            return Err(AuthSetupError::Key(format!(
                "key `{}` is {}/{}/{}: only OKP/Ed25519/EdDSA keys are accepted",
                self.kid, self.kty, self.crv, self.alg
            )));
        }
        let bytes = URL_SAFE_NO_PAD.decode(self.x.trim()).map_err(|e| {
            AuthSetupError::Key(format!("key `{}`: x is not base64url: {e}", self.kid))
        })?;
        if bytes.len() != 32 {
            return Err(AuthSetupError::Key(format!(
                "key `{}`: an Ed25519 public key has 32 bytes, this one {}",
                self.kid,
                bytes.len()
            )));
        }
        // The kid is the key's thumbprint, so a configured key cannot take another key's kid.
        if self.kid != thumbprint(&URL_SAFE_NO_PAD.encode(&bytes)) {
            return Err(AuthSetupError::Key(format!(
                "key `{}`: the kid is not the RFC 7638 thumbprint of x (copy the line \
                 `regionsync broker keys` prints)",
                self.kid
            )));
        }
        Ok(bytes)
    }
}

/// RFC 7638 thumbprint of an Ed25519 JWK (members in lexicographic order, no spaces).
fn thumbprint(x: &str) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// The broker's private signing key.
pub struct SigningKey {
    pkcs8: Vec<u8>,
    jwk: PublicJwk,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.jwk.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new random key, as PKCS#8 v1 (RFC 8410: what `openssl genpkey -algorithm ed25519`
    /// writes, and what OpenSSL 3.0 and Python `cryptography` read; ring's own
    /// `generate_pkcs8` writes v2, which they refuse).
    pub fn generate() -> Result<Self, AuthSetupError> {
        let mut seed = [0u8; 32];
        SystemRandom::new()
            .fill(&mut seed)
            .map_err(|_| AuthSetupError::Key("the system random source failed".into()))?;
        let mut der = Vec::with_capacity(PKCS8_V1_PREFIX.len() + seed.len());
        der.extend_from_slice(&PKCS8_V1_PREFIX);
        der.extend_from_slice(&seed);
        seed.fill(0);
        Self::from_pkcs8(der)
    }

    /// From PKCS#8 DER (v1 as written by `openssl genpkey -algorithm ed25519`, or v2).
    pub fn from_pkcs8(pkcs8: Vec<u8>) -> Result<Self, AuthSetupError> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pkcs8)
            .map_err(|e| AuthSetupError::Key(format!("not an Ed25519 PKCS#8 key: {e}")))?;
        let jwk = PublicJwk::from_public_key(pair.public_key().as_ref());
        Ok(Self { pkcs8, jwk })
    }

    pub fn from_pem(text: &str) -> Result<Self, AuthSetupError> {
        let block =
            pem::parse(text).map_err(|e| AuthSetupError::Key(format!("not a PEM file: {e}")))?;
        if block.tag() != PEM_TAG {
            return Err(AuthSetupError::Key(format!(
                "the PEM block is `{}`, expected `{PEM_TAG}` (PKCS#8)",
                block.tag()
            )));
        }
        Self::from_pkcs8(block.contents().to_vec())
    }

    pub fn to_pem(&self) -> String {
        pem::encode(&pem::Pem::new(PEM_TAG, self.pkcs8.clone()))
    }

    /// Read the key from `path`, or generate one and write it there (mode 0600) when the file
    /// does not exist. The flag says whether a key was generated.
    pub fn load_or_generate(path: &Path) -> Result<(Self, bool), AuthSetupError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_pem(&text)
                .map(|k| (k, false))
                .map_err(|e| AuthSetupError::Key(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate()?;
                match write_private(path, key.to_pem().as_bytes()) {
                    Ok(()) => Ok((key, true)),
                    // Another process created it first: use theirs.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        let text = std::fs::read_to_string(path).map_err(|e| {
                            AuthSetupError::Key(format!("cannot read {}: {e}", path.display()))
                        })?;
                        Self::from_pem(&text).map(|k| (k, false))
                    }
                    Err(e) => Err(AuthSetupError::Key(format!(
                        "cannot write {}: {e}",
                        path.display()
                    ))),
                }
            }
            Err(e) => Err(AuthSetupError::Key(format!(
                "cannot read {}: {e}",
                path.display()
            ))),
        }
    }

    pub fn kid(&self) -> &str {
        &self.jwk.kid
    }

    pub fn public_jwk(&self) -> &PublicJwk {
        &self.jwk
    }

    pub(crate) fn encoding_key(&self) -> jsonwebtoken::EncodingKey {
        jsonwebtoken::EncodingKey::from_ed_der(&self.pkcs8)
    }
}

/// Create `path` (and its directory) readable by the owner only; never overwrite.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_generated_key_round_trips_through_pem_and_keeps_its_kid() {
        let key = SigningKey::generate().unwrap();
        let again = SigningKey::from_pem(&key.to_pem()).unwrap();
        assert_eq!(key.kid(), again.kid());
        assert_eq!(key.public_jwk().public_key().unwrap().len(), 32);
        assert_ne!(key.kid(), SigningKey::generate().unwrap().kid());
    }

    const OPENSSL: &str = "/usr/bin/openssl";

    /// Run openssl; a missing binary fails the test (it must not pass by skipping).
    fn openssl(args: &[&str]) -> std::process::Output {
        std::process::Command::new(OPENSSL)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{OPENSSL} must be installed for this test: {e}"))
    }

    /// A token signed with `key` verifies with its public JWK.
    #[track_caller]
    fn signs_tokens_that_verify(key: SigningKey) {
        let jwk = key.public_jwk().clone();
        let issuer = crate::auth::TokenIssuer::new(
            key,
            "regionsync-broker",
            std::time::Duration::from_secs(60),
        );
        let token = issuer
            .issue("us-east", "eu-west", &["customers".to_string()])
            .unwrap()
            .token;
        let verifier = crate::auth::TokenVerifier::new(
            "eu-west",
            crate::auth::AuthSettings::default(),
            &[jwk],
        )
        .unwrap();
        assert!(verifier.verify(Some(&token), "customers").is_ok());
    }

    /// Issue 12 #8: the generated key file was PKCS#8 v2 (ring's `generate_pkcs8`), which
    /// `openssl pkey` (3.0) and Python `cryptography` refuse. It is v1 now: the RFC 8410
    /// prefix and a 32-byte seed, read by openssl, whose public key is the key's JWK.
    #[test]
    fn a_generated_key_file_is_pkcs8_v1_that_openssl_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data/broker-signing-key.pem");
        let (key, generated) = SigningKey::load_or_generate(&path).unwrap();
        assert!(generated);
        let file = path.to_str().unwrap();
        let out = openssl(&["pkey", "-in", file, "-noout"]);
        assert!(
            out.status.success(),
            "openssl pkey refused the generated key: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let der = pem::parse(std::fs::read_to_string(&path).unwrap())
            .unwrap()
            .into_contents();
        assert_eq!((der.len(), &der[..16]), (48, &PKCS8_V1_PREFIX[..]));
        let out = openssl(&["pkey", "-in", file, "-pubout", "-outform", "DER"]);
        assert!(out.status.success());
        // SubjectPublicKeyInfo for Ed25519: a 12-byte header, then the 32-byte key.
        assert_eq!(
            URL_SAFE_NO_PAD.encode(&out.stdout[12..]),
            key.public_jwk().x,
            "openssl and regionsync derive the same public key"
        );
        signs_tokens_that_verify(key);
    }

    /// A key written by `openssl genpkey -algorithm ed25519` is loaded (from the file and
    /// from PEM text) and signs tokens that verify.
    #[test]
    fn a_key_from_openssl_genpkey_is_loaded_and_signs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("openssl.pem");
        let out = openssl(&[
            "genpkey",
            "-algorithm",
            "ed25519",
            "-out",
            path.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (key, generated) = SigningKey::load_or_generate(&path).unwrap();
        assert!(!generated, "an existing file is read, never replaced");
        let again = SigningKey::from_pem(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(key.kid(), again.kid());
        signs_tokens_that_verify(key);
    }

    /// Key files generated before the change (PKCS#8 v2, with the public key) still load and
    /// sign, with the same kid as the v1 form of the same seed.
    #[test]
    fn a_pkcs8_v2_key_file_still_loads() {
        let v2 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        assert_eq!(v2.as_ref()[4], 1, "ring writes version 1 (v2)");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.pem");
        std::fs::write(
            &path,
            pem::encode(&pem::Pem::new(PEM_TAG, v2.as_ref().to_vec())),
        )
        .unwrap();
        let (key, generated) = SigningKey::load_or_generate(&path).unwrap();
        assert!(!generated);
        // The v2 document holds the seed at the same place as v1 does.
        let mut v1 = PKCS8_V1_PREFIX.to_vec();
        v1.extend_from_slice(&v2.as_ref()[16..48]);
        assert_eq!(SigningKey::from_pkcs8(v1).unwrap().kid(), key.kid());
        signs_tokens_that_verify(key);
    }

    #[test]
    fn the_kid_is_the_rfc7638_thumbprint() {
        // RFC 8037 appendix A.3: the thumbprint of its example key.
        let jwk = PublicJwk::from_public_key(
            &URL_SAFE_NO_PAD
                .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
                .unwrap(),
        );
        assert_eq!(jwk.kid, "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
    }

    #[test]
    fn load_or_generate_creates_once_then_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/signing.pem");
        let (first, generated) = SigningKey::load_or_generate(&path).unwrap();
        assert!(generated);
        let (second, generated) = SigningKey::load_or_generate(&path).unwrap();
        assert!(!generated);
        assert_eq!(first.kid(), second.kid());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn foreign_keys_are_refused_with_a_reason() {
        let mut jwk = SigningKey::generate().unwrap().public_jwk().clone();
        jwk.crv = "P-256".into();
        assert!(jwk.public_key().is_err());
        // A key claiming another key's kid.
        let mut impostor = SigningKey::generate().unwrap().public_jwk().clone();
        impostor.kid = SigningKey::generate().unwrap().kid().to_string();
        assert!(impostor.public_key().is_err());
        assert!(SigningKey::from_pem(
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
        )
        .is_err());
    }
}
