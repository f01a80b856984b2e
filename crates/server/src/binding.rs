//! Secrets bound to hosts: a stored upstream key is only ever sent to the hosts
//! (`host[:port]` of a provider's upstream base URL) its binding lists.
//!
//! - A provider create/update that references a secret binds it on first use; one that would
//!   send a bound secret to another host is refused (400 naming `<type>_config.api_key_ref`)
//!   unless the caller is admin, whose save adds the host to the binding.
//! - `PUT /api/v1/secrets/{name}` with the value may set `bound_hosts` (whoever knows the value
//!   may choose where it goes); changing `bound_hosts` without the value is admin-only.
//! - At injection time (proxy `prepare`, Test Connection) [`check_injection`] refuses a host
//!   outside the binding, or a secret with no binding: the `CredentialNotBound` fault.
//!
//! Bedrock's static AWS keys are exempt: they are never sent, only a SigV4 signature and the
//! access key id, which do not reveal the secret key.

use std::collections::{BTreeSet, HashMap};
use tollgate_core::ProviderSpec;

/// Most hosts one secret may be bound to.
pub const MAX_BOUND_HOSTS: usize = 32;

/// `host[:port]` of a URL (the port only when not the scheme's default), lowercased by the
/// URL parser; `None` when the URL has no host.
pub fn host_of(url: &str) -> Option<String> {
    let u = reqwest::Url::parse(url).ok()?;
    let host = u.host_str()?;
    Some(match u.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    })
}

/// What a `bound_hosts` entry may be, as the OpenAPI document states it: a DNS name (its last
/// label starts with a letter, so it is never read as an IPv4 number) or a dotted-quad IPv4
/// address, then an optional port 1-65535. Bracketed IPv6 literals are accepted too, beyond
/// the pattern.
pub const BOUND_HOST_PATTERN: &str = r"^(?:(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)*[a-zA-Z](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?|(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9]))(?::(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?$";

fn bound_host_re() -> &'static regex_lite::Regex {
    static RE: std::sync::OnceLock<regex_lite::Regex> = std::sync::OnceLock::new();
    #[allow(clippy::expect_used)] // a constant pattern, checked by a unit test
    RE.get_or_init(|| regex_lite::Regex::new(BOUND_HOST_PATTERN).expect("BOUND_HOST_PATTERN compiles"))
}

/// Checks one `bound_hosts` entry and returns it as [`host_of`] writes it (lowercase; `:80`,
/// the default port of the `http://` URL it is read as, dropped).
pub fn parse_bound_host(entry: &str) -> Result<String, String> {
    let ipv6 = entry.starts_with('[') && !entry.contains(['/', '@', '?', '#', ' ']);
    let parsed = if bound_host_re().is_match(entry) || ipv6 { host_of(&format!("http://{entry}")) } else { None };
    let lower = entry.to_ascii_lowercase();
    match parsed {
        Some(h) if h == lower || lower.strip_suffix(":80") == Some(h.as_str()) => Ok(h),
        _ => Err(format!("\"{entry}\" is not a host[:port] such as api.openai.com or 10.0.0.5:8080")),
    }
}

/// The secret a provider's requests carry as a bearer/API key, with its field name and the
/// host it goes to (none for Bedrock, whose keys only sign, and for providers without one).
pub fn injected_secret(spec: &ProviderSpec) -> Option<(String, String, Option<String>)> {
    let secret = spec.api_key_ref()?.to_string();
    let field = format!("{}_config.api_key_ref", spec.kind());
    Some((field, secret, host_of(&spec.upstream_base_url())))
}

/// Whether `secret` may be sent to `host` (a provider's precomputed `base_host`), given the
/// hosts the snapshot binds it to (`None`: not bound).
pub fn check_injection(bound: Option<&BTreeSet<String>>, secret: &str, host: Option<&str>) -> Result<(), String> {
    let Some(host) = host else {
        return Err(format!("secret \"{secret}\" is not bound to this upstream (the URL has no host)"));
    };
    match bound {
        Some(hosts) if hosts.contains(host) => Ok(()),
        Some(_) => {
            Err(format!("secret \"{secret}\" is not bound to host {host}; nothing was sent (an admin may rebind it)"))
        }
        None => Err(format!("secret \"{secret}\" is not bound to any host yet; nothing was sent")),
    }
}

/// For start-up: each referenced secret's hosts, from the providers that inject it.
pub fn wanted_bindings<'a>(specs: impl Iterator<Item = &'a ProviderSpec>) -> HashMap<String, BTreeSet<String>> {
    let mut out: HashMap<String, BTreeSet<String>> = HashMap::new();
    for spec in specs {
        if let Some((_, secret, Some(host))) = injected_secret(spec) {
            out.entry(secret).or_default().insert(host);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_ports() {
        assert_eq!(host_of("https://api.openai.com/v1").as_deref(), Some("api.openai.com"));
        assert_eq!(host_of("https://API.openai.com:443/v1").as_deref(), Some("api.openai.com"));
        assert_eq!(host_of("http://127.0.0.1:4000").as_deref(), Some("127.0.0.1:4000"));
        assert_eq!(parse_bound_host("127.0.0.1:4000").as_deref(), Ok("127.0.0.1:4000"));
        assert_eq!(parse_bound_host("Api.Example.com").as_deref(), Ok("api.example.com"));
        assert!(parse_bound_host("http://x").is_err());
        assert!(parse_bound_host("x/y").is_err());
        assert!(parse_bound_host("").is_err());
        assert!(parse_bound_host("a@b").is_err());
        // the pattern and the parser agree: what one refuses, the other does too
        assert_eq!(parse_bound_host("api.example.com:80").as_deref(), Ok("api.example.com"));
        assert_eq!(parse_bound_host("[::1]:8080").as_deref(), Ok("[::1]:8080"));
        for bad in ["host.", "1.2.3", "01.2.3.4", "0x7f", "a:0", "a:080", "a:65536", "-a.com", "a-.com", "a..b"] {
            assert!(parse_bound_host(bad).is_err(), "{bad}");
        }
    }
}
