//! The rule for a region's base URL (where the other regions will call it with a token), and
//! how a stored one is shown to an operator.
//!
//! Always refused, whoever registers it: anything but an absolute `http(s)` URL with a host and
//! no query or fragment, over 2048 bytes; user information (`user:password@`: the password
//! would be stored in clear, shown by `broker regions list` and handed to every region that
//! resolves this one); any byte outside printable ASCII (control characters such as a raw
//! newline, spaces, non-ASCII — write an internationalised host in its `xn--` form) and `\`;
//! addresses no region can be reached at (`0.0.0.0/8`, `::`, broadcast, multicast).
//!
//! Refused unless the operator says otherwise ([`UrlPolicy::AllowPrivate`], the
//! `--allow-private` flag of `regionsync broker regions add`): link-local addresses
//! (`169.254.0.0/16`, `fe80::/10`) and the cloud metadata services (`169.254.169.254`,
//! `fd00:ec2::254`, `100.100.100.200`, `metadata.google.internal`, …), also when written as an
//! IPv4-mapped or NAT64 IPv6 address. A region that calls such an URL with a bearer token would
//! hand the metadata service (instance credentials) to whoever registered it.
//!
//! Allowed by default: loopback (`127.0.0.1`, `::1`, `localhost`: single-host set-ups and the
//! tests) and private networks (RFC 1918, `fc00::/7`): regions are commonly reached on one.
//!
//! Not covered: a DNS name that resolves to a refused address (the broker does not resolve
//! names; the rule is about what an operator or a region writes).

use std::net::{Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

use crate::errors::BrokerError;

/// The longest base URL accepted.
pub const MAX_LEN: usize = 2048;

/// How much of a refused URL an error message repeats.
const ECHO_LEN: usize = 128;

/// Host names of cloud metadata services (compared lower-case, without a trailing dot).
const METADATA_HOSTS: [&str; 5] = [
    "metadata.google.internal",
    "metadata.goog",
    "metadata",
    "instance-data",
    "instance-data.ec2.internal",
];

/// Which addresses a base URL may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UrlPolicy {
    /// Everything but link-local and metadata addresses (every URL that arrives without the
    /// operator's explicit word: heartbeats, the broker region's own URL).
    #[default]
    Default,
    /// The operator said `--allow-private`: link-local and metadata addresses too.
    AllowPrivate,
}

/// Check `url` under `policy`; a refusal is `invalid_request` and names the reason.
pub fn check(url: &str, policy: UrlPolicy) -> Result<(), BrokerError> {
    let refuse = |why: &str| {
        Err(BrokerError::Invalid(format!(
            "base_url `{}` {why}",
            echo(url)
        )))
    };
    if let Some((at, c)) = url
        .char_indices()
        .find(|(_, c)| !c.is_ascii_graphic() || *c == '\\')
    {
        return refuse(&format!(
            "has {} at byte {at}: a base URL is printable ASCII without spaces or `\\` (write an \
             internationalised host name in its xn-- form)",
            c.escape_default()
        ));
    }
    if url.len() > MAX_LEN {
        return refuse(&format!("is longer than {MAX_LEN} bytes"));
    }
    let parsed = match Url::parse(url) {
        Ok(u)
            if (url.starts_with("http://") || url.starts_with("https://"))
                && u.host_str().is_some_and(|h| !h.is_empty())
                && u.query().is_none()
                && u.fragment().is_none() =>
        {
            u
        }
        _ => {
            return refuse(
                "is not an http(s) URL with a host (and no query or fragment), e.g. \
                 https://eu.example.com",
            )
        }
    };
    if authority(url).contains('@') || !parsed.username().is_empty() || parsed.password().is_some()
    {
        return refuse(
            "carries user information (user:password@): regions authenticate with tokens, and a \
             password in the registry is shown and handed to every region",
        );
    }
    match classify(parsed.host()) {
        Class::Unreachable => refuse(
            "names an unspecified, broadcast or multicast address, which no region can be \
             reached at",
        ),
        Class::LinkLocalOrMetadata if policy == UrlPolicy::Default => refuse(
            "names a link-local or cloud metadata address; only an operator can register one, \
             with `regionsync broker regions add --allow-private`",
        ),
        Class::LinkLocalOrMetadata | Class::Ordinary => Ok(()),
    }
}

/// `url` as an operator may see it, whatever is stored (rows from before the rule): user
/// information is replaced by `***`, and every character outside printable ASCII is escaped
/// (`\n`, `\u{7f}`), so one row is one line.
pub fn for_display(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let end = rest.find(['/', '?', '#', '\\']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((_, host)) => format!("***@{host}"),
        None => authority.to_string(),
    };
    let redacted = match scheme {
        Some(scheme) => format!("{scheme}://{authority}{tail}"),
        None => format!("{authority}{tail}"),
    };
    redacted
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() {
                c.to_string()
            } else {
                c.escape_default().to_string()
            }
        })
        .collect()
}

/// A short, displayable prefix of a refused URL for an error message.
fn echo(url: &str) -> String {
    let shown = for_display(url);
    // Escaped text is ASCII, so any byte index is a char boundary.
    if shown.len() > ECHO_LEN {
        format!("{}…", &shown[..ECHO_LEN])
    } else {
        shown
    }
}

/// What follows `scheme://` up to the path, query or fragment.
fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    &rest[..end]
}

enum Class {
    Ordinary,
    LinkLocalOrMetadata,
    Unreachable,
}

fn classify(host: Option<Host<&str>>) -> Class {
    match host {
        Some(Host::Ipv4(ip)) => classify_v4(ip),
        Some(Host::Ipv6(ip)) => classify_v6(ip),
        Some(Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if METADATA_HOSTS.contains(&name.as_str()) {
                Class::LinkLocalOrMetadata
            } else {
                Class::Ordinary
            }
        }
        None => Class::Unreachable,
    }
}

fn classify_v4(ip: Ipv4Addr) -> Class {
    if ip.octets()[0] == 0 || ip.is_broadcast() || ip.is_multicast() {
        Class::Unreachable
    } else if ip.is_link_local() || ip == Ipv4Addr::new(100, 100, 100, 200) {
        // 169.254.0.0/16 holds the AWS/GCP/Azure/OCI metadata service; 100.100.100.200 is
        // Alibaba Cloud's.
        Class::LinkLocalOrMetadata
    } else {
        Class::Ordinary
    }
}

fn classify_v6(ip: Ipv6Addr) -> Class {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    let s = ip.segments();
    // NAT64 (64:ff9b::/96) carries an IPv4 address in its last 32 bits.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return classify_v4(Ipv4Addr::from((u32::from(s[6]) << 16) | u32::from(s[7])));
    }
    if ip.is_unspecified() || ip.is_multicast() {
        Class::Unreachable
    } else if (s[0] & 0xffc0) == 0xfe80 || ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
    {
        // fe80::/10 link-local; fd00:ec2::254 is the AWS metadata service over IPv6.
        Class::LinkLocalOrMetadata
    } else {
        Class::Ordinary
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[track_caller]
    fn refused(url: &str, policy: UrlPolicy) -> String {
        match check(url, policy) {
            Err(BrokerError::Invalid(m)) => m,
            other => panic!("{url:?} under {policy:?}: {other:?}"),
        }
    }

    #[test]
    fn link_local_and_metadata_addresses_need_the_operators_word() {
        for url in [
            "http://169.254.169.254",
            "http://169.254.169.254/latest/meta-data/",
            "http://169.254.169.254.:80",
            "http://2852039166",          // 169.254.169.254 as one number
            "http://0xa9.0xfe.0xa9.0xfe", // in hex
            "http://169.254.1.1:8080",
            "http://169.254.170.2",
            "http://100.100.100.200",
            "http://[fe80::1]:8080",
            "http://[febf::1]",
            "http://[fd00:ec2::254]",
            "http://[::ffff:169.254.169.254]",
            "http://[64:ff9b::a9fe:a9fe]",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://METADATA.google.internal.",
            "http://metadata",
            "http://metadata.goog",
            "http://instance-data",
            "https://instance-data.ec2.internal",
        ] {
            let m = refused(url, UrlPolicy::Default);
            assert!(m.contains("--allow-private"), "{url}: {m}");
            assert!(check(url, UrlPolicy::AllowPrivate).is_ok(), "{url}");
        }
    }

    #[test]
    fn loopback_private_and_public_addresses_are_allowed_by_default() {
        for url in [
            "http://127.0.0.1:8082",
            "http://localhost:8080",
            "http://[::1]:8080",
            "http://10.0.0.2:8080",
            "http://172.16.5.4",
            "http://192.168.1.10:8080/sync",
            "http://[fd12:3456::1]",
            "https://eu.example.com",
            "https://xn--bcher-kva.example",
            "http://169.253.255.255",
            "http://[fe00::1]",
            "http://metadata.example.com",
            "http://100.100.100.201",
        ] {
            assert!(check(url, UrlPolicy::Default).is_ok(), "{url}");
        }
    }

    #[test]
    fn userinfo_control_characters_and_unreachable_addresses_are_refused_even_with_the_flag() {
        for (url, why) in [
            ("http://user:pw@eu.example.com", "user information"),
            ("http://user@eu.example.com", "user information"),
            ("http://@eu.example.com", "user information"),
            ("http://:@eu.example.com", "user information"),
            ("https://a:b@169.254.169.254", "user information"),
            ("http://eu.example.com\n", "\\n"),
            ("http://eu.exa\nmple.com", "\\n"),
            ("http://eu.example.com/\r\nX-Injected: 1", "\\r"),
            ("http://eu.example.com\t", "\\t"),
            ("http://eu.example.com/\u{1b}[31m", "\\u{1b}"),
            ("http://eu.example.com/\u{7f}", "\\u{7f}"),
            ("http://eu.example.com/\u{202e}", "\\u{202e}"),
            (" http://eu.example.com", "at byte 0"),
            ("http://eu.example.com/a b", "at byte"),
            ("http://127.0.0.1\\@169.254.169.254", "`\\`"),
            ("http://bücher.example", "xn--"),
            ("http://0.0.0.0:8080", "unspecified"),
            ("http://0", "unspecified"),
            ("http://0.1.2.3", "unspecified"),
            ("http://[::]:8080", "unspecified"),
            ("http://[::ffff:0.0.0.0]", "unspecified"),
            ("http://255.255.255.255", "broadcast"),
            ("http://224.0.0.1", "multicast"),
            ("http://[ff02::1]", "multicast"),
        ] {
            for policy in [UrlPolicy::Default, UrlPolicy::AllowPrivate] {
                let m = refused(url, policy);
                assert!(m.contains(why), "{url:?}: {m}");
                assert!(
                    !m.contains("pw@") && !m.contains('\n') && !m.contains('\r'),
                    "{m}"
                );
            }
        }
    }

    #[test]
    fn a_refusal_echoes_a_short_redacted_prefix() {
        let long = format!("http://user:secret@{}.example.com\n", "x".repeat(4000));
        let m = refused(&long, UrlPolicy::AllowPrivate);
        assert!(m.len() < 400, "{m}");
        assert!(!m.contains("secret"), "{m}");
    }

    #[test]
    fn display_hides_userinfo_and_escapes_control_characters() {
        assert_eq!(
            for_display("http://user:pw@eu.example.com:8080/x@y"),
            "http://***@eu.example.com:8080/x@y"
        );
        assert_eq!(
            for_display("http://eu.example.com\n/evil\trow\u{1b}"),
            "http://eu.example.com\\n/evil\\trow\\u{1b}"
        );
        assert_eq!(for_display("http://a@b@c.example"), "http://***@c.example");
        assert_eq!(
            for_display("https://eu.example.com"),
            "https://eu.example.com"
        );
        assert_eq!(for_display("no scheme@host"), "***@host");
        assert_eq!(
            for_display("http://bücher.example"),
            "http://b\\u{fc}cher.example"
        );
    }
}
