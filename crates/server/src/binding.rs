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

/// Checks one `bound_hosts` entry: a bare `host[:port]` as [`host_of`] would write it.
pub fn parse_bound_host(entry: &str) -> Result<String, String> {
    let parsed = if entry.is_empty() || entry.contains(['/', '@', '?', '#', ' ']) {
        None
    } else {
        host_of(&format!("http://{entry}"))
    };
    match parsed {
        Some(h) if h == entry.to_ascii_lowercase() => Ok(h),
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
    }
}
