//! `[broker]`: whether this region runs the broker role, or where the broker is.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use ship::auth::PublicJwk;
use ship::config::{check_region_id, key, ConfigProblem, Secret, Validate};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// Run the broker role in this region (the default: a single region is its own broker).
    pub enabled: bool,
    /// The broker's base URL, for a region that does not run the broker role.
    pub url: Option<String>,
    /// This region's credential at the broker (printed once by `regionsync broker regions
    /// add`). Secret: `config show` and `Debug` print `***`.
    pub credential: Option<Secret>,
    /// How the other regions reach this one; the broker region registers itself with it.
    /// Default: `http://` + `[http] bind`.
    pub public_url: Option<String>,
    /// The Ed25519 signing key as PKCS#8 PEM text (secret: `config show` and `Debug` print
    /// `***`). When unset, the key is read from `signing_key_file`.
    pub signing_key: Option<Secret>,
    /// The Ed25519 signing key file (PKCS#8 PEM). Generated on first start when missing.
    pub signing_key_file: PathBuf,
    /// Public keys of retired signing keys still accepted (key rotation), served by
    /// `GET /api/v1/broker/keys` until removed here.
    pub accepted_keys: Vec<PublicJwk>,
    /// Lifetime of the tokens the broker issues, in seconds.
    pub token_lifetime_secs: u64,
    /// A region is reported `offline` when its last heartbeat is older than this.
    pub offline_after_secs: u64,
    /// How often a region sends its heartbeat (and refreshes the broker's keys).
    pub heartbeat_interval_secs: u64,
    /// Timeout of one call to the broker.
    pub request_timeout_secs: u64,
    /// Allow plain `http://` to non-loopback hosts (the broker URL, this region's public URL,
    /// peers' URLs). Off by default: credentials, tokens and the broker's public keys would
    /// cross the network in clear, and whoever sits on the path could mint tokens. Turn on only
    /// on a network you trust; otherwise terminate TLS in front of each region.
    pub allow_insecure_http: bool,
    /// Addresses this region uses for some peers instead of the URL the broker lists for them
    /// (`"us-east" = "http://127.0.0.1:7001"`): a private link, a local sidecar or proxy.
    /// Tokens still come from the broker; only where the requests go changes.
    pub peer_urls: BTreeMap<String, String>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            url: None,
            credential: None,
            public_url: None,
            signing_key: None,
            signing_key_file: PathBuf::from("data/broker-signing-key.pem"),
            accepted_keys: Vec::new(),
            token_lifetime_secs: 300,
            offline_after_secs: 90,
            heartbeat_interval_secs: 30,
            request_timeout_secs: 5,
            allow_insecure_http: false,
            peer_urls: BTreeMap::new(),
        }
    }
}

fn is_http_url(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

/// `https://…`, or `http://` to a loopback host (127.0.0.0/8, ::1, localhost).
pub fn is_secure_url(url: &str) -> bool {
    let Ok(parsed) = url::Url::parse(url) else {
        return false;
    };
    match (parsed.scheme(), parsed.host()) {
        ("https", Some(_)) => true,
        ("http", Some(url::Host::Ipv4(ip))) => ip.is_loopback(),
        ("http", Some(url::Host::Ipv6(ip))) => ip.is_loopback(),
        ("http", Some(url::Host::Domain(d))) => d.eq_ignore_ascii_case("localhost"),
        _ => false,
    }
}

impl BrokerConfig {
    /// The problem with sending secrets to `url`, if any.
    pub fn insecure(&self, url: &str) -> Option<String> {
        (!self.allow_insecure_http && !is_secure_url(url)).then(|| {
            format!(
                "`{url}` is plain http to a non-loopback host: use https (TLS in front of the \
                 region), or set broker.allow_insecure_http = true on a network you trust"
            )
        })
    }
}

impl Validate for BrokerConfig {
    fn validate(&self, prefix: &str, problems: &mut Vec<ConfigProblem>) {
        if !self.enabled {
            match &self.url {
                None => problems.push(ConfigProblem::new(
                    key(prefix, "url"),
                    "set the broker's URL, or enable the broker role here (broker.enabled = true)",
                )),
                Some(url) if !is_http_url(url) => problems.push(ConfigProblem::new(
                    key(prefix, "url"),
                    format!("`{url}` is not an http(s) URL"),
                )),
                Some(url) => {
                    if let Some(problem) = self.insecure(url) {
                        problems.push(ConfigProblem::new(key(prefix, "url"), problem));
                    }
                }
            }
            if self.credential.as_ref().is_none_or(Secret::is_empty) {
                problems.push(ConfigProblem::new(
                    key(prefix, "credential"),
                    "set this region's credential (from `regionsync broker regions add` on the broker)",
                ));
            }
        }
        if let Some(url) = self.public_url.as_deref() {
            let problem = if is_http_url(url) {
                self.insecure(url)
            } else {
                Some(format!("`{url}` is not an http(s) URL"))
            };
            if let Some(problem) = problem {
                problems.push(ConfigProblem::new(key(prefix, "public_url"), problem));
            }
        }
        for (peer, url) in &self.peer_urls {
            if let Err(problem) = check_region_id(peer) {
                problems.push(ConfigProblem::new(
                    key(prefix, &format!("peer_urls.{peer}")),
                    problem,
                ));
            }
            let problem = if is_http_url(url) {
                self.insecure(url)
            } else {
                Some(format!("`{url}` is not an http(s) URL"))
            };
            if let Some(problem) = problem {
                problems.push(ConfigProblem::new(
                    key(prefix, &format!("peer_urls.{peer}")),
                    problem,
                ));
            }
        }
        if self.token_lifetime_secs == 0 {
            problems.push(ConfigProblem::new(
                key(prefix, "token_lifetime_secs"),
                "must be at least 1",
            ));
        }
        for (name, value) in [
            ("offline_after_secs", self.offline_after_secs),
            ("heartbeat_interval_secs", self.heartbeat_interval_secs),
            ("request_timeout_secs", self.request_timeout_secs),
        ] {
            if value == 0 {
                problems.push(ConfigProblem::new(key(prefix, name), "must be at least 1"));
            }
        }
        for (i, jwk) in self.accepted_keys.iter().enumerate() {
            if let Err(e) = jwk.public_key() {
                problems.push(ConfigProblem::new(
                    key(prefix, &format!("accepted_keys[{i}]")),
                    e.to_string(),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_urls_need_region_ids_and_http_urls() {
        let mut config = BrokerConfig::default();
        config
            .peer_urls
            .insert("us-east".into(), "http://127.0.0.1:7001".into());
        config
            .peer_urls
            .insert("US East".into(), "http://127.0.0.1:7002".into());
        config.peer_urls.insert("ap-south".into(), "ftp://x".into());
        config
            .peer_urls
            .insert("eu-north".into(), "http://10.0.0.9:8080".into());
        let mut problems = Vec::new();
        config.validate("broker", &mut problems);
        let keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "broker.peer_urls.US East",
                "broker.peer_urls.ap-south",
                "broker.peer_urls.eu-north"
            ],
            "{problems:?}"
        );
    }

    #[test]
    fn a_region_without_the_broker_role_needs_url_and_credential() {
        let mut problems = Vec::new();
        BrokerConfig::default().validate("broker", &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        BrokerConfig {
            enabled: false,
            url: Some("ftp://x".into()),
            ..BrokerConfig::default()
        }
        .validate("broker", &mut problems);
        let keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["broker.url", "broker.credential"]);
    }

    #[test]
    fn secrets_only_travel_over_https_or_loopback_unless_allowed() {
        for ok in [
            "https://broker.example.com",
            "http://127.0.0.1:8080",
            "http://127.1.2.3",
            "http://[::1]:80",
            "http://localhost:8080",
        ] {
            assert!(is_secure_url(ok), "{ok}");
        }
        for bad in [
            "http://10.0.0.1:8080",
            "http://broker.example.com",
            "https://",
            "nonsense",
        ] {
            assert!(!is_secure_url(bad), "{bad}");
        }
        let remote = |allow: bool| BrokerConfig {
            enabled: false,
            url: Some("http://10.0.0.1:8080".into()),
            credential: Some(Secret::new("rsc_x")),
            public_url: Some("http://10.0.0.2:8080".into()),
            allow_insecure_http: allow,
            ..BrokerConfig::default()
        };
        let mut problems = Vec::new();
        remote(false).validate("broker", &mut problems);
        let keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["broker.url", "broker.public_url"], "{problems:?}");
        let mut problems = Vec::new();
        remote(true).validate("broker", &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn the_credential_is_never_printed() {
        let config = BrokerConfig {
            credential: Some(Secret::new("rsc_secret")),
            signing_key: Some(Secret::new("-----BEGIN PRIVATE KEY-----")),
            ..BrokerConfig::default()
        };
        let shown = serde_json::to_string(&config).unwrap_or_default();
        assert!(
            !shown.contains("rsc_secret") && shown.contains("***"),
            "{shown}"
        );
        let debug = format!("{config:?}");
        assert!(
            !debug.contains("rsc_secret") && !debug.contains("PRIVATE KEY"),
            "{debug}"
        );
    }
}
