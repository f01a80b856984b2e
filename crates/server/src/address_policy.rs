//! The upstream address policy: which hosts and IP addresses the gateway may send a request
//! (and with it a stored credential) to. Refused by default: link-local addresses (IPv4
//! 169.254.0.0/16 — where AWS, GCP and Azure serve instance metadata — and IPv6 fe80::/10),
//! the other cloud metadata addresses and names (Alibaba's 100.100.100.200, AWS's IPv6
//! fd00:ec2::254, `metadata.google.internal`, …), the unspecified addresses, and the gateway's
//! own listen and public address (a provider pointing at the gateway loops). Loopback and
//! private ranges stay allowed: local model runtimes (Ollama, vLLM) live there.
//!
//! Operators adjust it with `--upstream-allow` (wins over every deny) and `--upstream-deny`:
//! each rule is a CIDR (`10.1.0.0/16`), an IP address, a hostname, or `*.suffix`.
//!
//! Checked at three points (ARCHITECTURE.md, Decisions: Secrets go only where they were meant
//! to): provider create/update (the base URL's host, literally), every outgoing request's URL
//! (proxy, Test Connection, Bedrock control plane and guardrail check), and — against DNS
//! rebinding — the addresses a hostname resolves to, in the HTTP clients' resolver
//! ([`PolicyResolver`]), so a name that resolves to a refused address is never connected to.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// One allow or deny rule.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Rule {
    /// An address range.
    Net { addr: IpAddr, prefix: u8 },
    /// A hostname, exact (lowercase).
    Host(String),
    /// Every name ending in `.suffix` (lowercase, without the leading dot).
    Suffix(String),
}

impl Rule {
    fn parse(s: &str) -> Result<Rule, String> {
        let s = s.trim().trim_start_matches('[').trim_end_matches(']');
        if s.is_empty() {
            return Err("an empty rule".into());
        }
        if let Some((ip, prefix)) = s.split_once('/') {
            let addr: IpAddr = ip.parse().map_err(|_| format!("`{s}`: `{ip}` is not an IP address"))?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let prefix: u8 = prefix
                .parse()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{s}`: the prefix length must be 0..={max}"))?;
            return Ok(Rule::Net { addr: canonical(addr), prefix });
        }
        if let Ok(addr) = s.parse::<IpAddr>() {
            let prefix = if addr.is_ipv4() { 32 } else { 128 };
            return Ok(Rule::Net { addr: canonical(addr), prefix });
        }
        let lower = s.to_ascii_lowercase();
        if let Some(suffix) = lower.strip_prefix("*.") {
            return Ok(Rule::Suffix(suffix.trim_end_matches('.').to_string()));
        }
        if lower.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') {
            return Ok(Rule::Host(lower.trim_end_matches('.').to_string()));
        }
        Err(format!("`{s}` is not a CIDR, an IP address, a hostname or `*.suffix`"))
    }

    fn matches_ip(&self, ip: IpAddr) -> bool {
        match self {
            Rule::Net { addr, prefix } => in_net(canonical(ip), *addr, *prefix),
            Rule::Host(_) | Rule::Suffix(_) => false,
        }
    }

    fn matches_name(&self, name: &str) -> bool {
        match self {
            Rule::Host(h) => h == name,
            Rule::Suffix(s) => name.strip_suffix(s.as_str()).is_some_and(|rest| rest.ends_with('.')),
            Rule::Net { .. } => false,
        }
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:169.254.169.254`) as the IPv4 address they are.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn in_net(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix)) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(prefix)) };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// Refused unless an operator allows them.
const DEFAULT_DENY: [&str; 12] = [
    "169.254.0.0/16",
    "fe80::/10",
    "100.100.100.200",
    "fd00:ec2::254",
    "0.0.0.0/8",
    "::",
    "metadata.google.internal",
    "metadata.goog",
    "metadata",
    "instance-data",
    "instance-data.ec2.internal",
    "metadata.azure.internal",
];

/// Why an address is refused: one line for people (names the host and the rule).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("upstream address {host} is refused: {why} (an operator can allow it with --upstream-allow)")]
pub struct Denied {
    pub host: String,
    pub why: &'static str,
}

/// The policy of one gateway process.
#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    allow: Vec<Rule>,
    deny: Vec<Rule>,
    /// The gateway's own addresses: the bound socket, and the public URL's host and port.
    own_addr: Option<SocketAddr>,
    own_public: Option<(String, u16)>,
}

impl AddressPolicy {
    /// The policy from the operator's rules; `--upstream-allow` wins over every deny.
    pub fn new(allow: &[String], deny: &[String]) -> Result<AddressPolicy, String> {
        let parse = |flag: &str, rules: &[String]| {
            rules.iter().map(|r| Rule::parse(r).map_err(|e| format!("{flag}: {e}"))).collect::<Result<Vec<_>, _>>()
        };
        let mut deny_rules: Vec<Rule> = DEFAULT_DENY.iter().filter_map(|r| Rule::parse(r).ok()).collect();
        deny_rules.extend(parse("--upstream-deny", deny)?);
        Ok(AddressPolicy {
            allow: parse("--upstream-allow", allow)?,
            deny: deny_rules,
            own_addr: None,
            own_public: None,
        })
    }

    /// Adds the gateway's own addresses (known once the listener is bound).
    pub fn with_own(mut self, listen: SocketAddr, public_url: &str) -> AddressPolicy {
        self.own_addr = Some(listen);
        self.own_public = url::Url::parse(public_url).ok().and_then(|u| {
            Some((u.host_str()?.trim_matches(['[', ']']).to_ascii_lowercase(), u.port_or_known_default()?))
        });
        self
    }

    fn allowed_ip(&self, ip: IpAddr) -> bool {
        self.allow.iter().any(|r| r.matches_ip(ip))
    }

    /// An IP address the resolver returned (port unknown there): the ranges only.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Denied> {
        let ip = canonical(ip);
        if self.allowed_ip(ip) || !self.deny.iter().any(|r| r.matches_ip(ip)) {
            return Ok(());
        }
        Err(Denied { host: ip.to_string(), why: why_ip(ip) })
    }

    /// A URL about to be used (or saved as a base URL): its host literally — an IP address
    /// against the ranges, a name against the hostname rules — and the gateway's own address.
    pub fn check_url(&self, url: &str) -> Result<(), Denied> {
        let Ok(u) = url::Url::parse(url) else {
            return Err(Denied { host: "unknown host".into(), why: "the URL cannot be parsed" });
        };
        self.check_parsed(&u)
    }

    /// [`check_url`](Self::check_url) on a URL already parsed (the proxy's request URL: no
    /// second parse per request); the host shown in a refusal is worked out only then.
    pub fn check_parsed(&self, u: &url::Url) -> Result<(), Denied> {
        let Some(host) = u.host() else {
            return Err(Denied { host: "unknown host".into(), why: "the URL has no host" });
        };
        let port = u.port_or_known_default().unwrap_or(0);
        let shown = || shown_host(u);
        let ip = match host {
            url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
            url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
            url::Host::Domain(_) => None,
        };
        let name = match host {
            url::Host::Domain(d) => d.trim_end_matches('.').to_ascii_lowercase(),
            _ => String::new(),
        };
        let allowed = match ip {
            Some(ip) => self.allowed_ip(ip),
            None => self.allow.iter().any(|r| r.matches_name(&name)),
        };
        if allowed {
            return Ok(());
        }
        if self.is_own(ip, &name, port) {
            return Err(Denied { host: shown(), why: "it is this gateway's own address (a request loop)" });
        }
        match ip {
            Some(ip) => self.check_ip(ip).map_err(|d| Denied { host: shown(), why: d.why }),
            None if self.deny.iter().any(|r| r.matches_name(&name)) => {
                Err(Denied { host: shown(), why: "the host is on the deny list (cloud metadata or --upstream-deny)" })
            }
            None => Ok(()),
        }
    }

    fn is_own(&self, ip: Option<IpAddr>, name: &str, port: u16) -> bool {
        if let Some((host, p)) = &self.own_public
            && *p == port
            && (ip.is_some_and(|ip| host.parse::<IpAddr>().is_ok_and(|h| canonical(h) == canonical(ip)))
                || host == name)
        {
            return true;
        }
        let Some(own) = self.own_addr.filter(|a| a.port() == port) else { return false };
        match ip.map(canonical) {
            Some(ip) => {
                ip == canonical(own.ip()) || ((own.ip().is_unspecified() || own.ip().is_loopback()) && ip.is_loopback())
            }
            None => name == "localhost" && (own.ip().is_loopback() || own.ip().is_unspecified()),
        }
    }
}

fn why_ip(ip: IpAddr) -> &'static str {
    let link_local = match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    };
    if link_local {
        "it is link-local (where cloud instance metadata is served)"
    } else if ip == IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200))
        || ip == IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254))
    {
        "it is a cloud metadata address"
    } else if ip.is_unspecified() || matches!(ip, IpAddr::V4(v4) if v4.octets()[0] == 0) {
        "it is an unspecified address"
    } else {
        "it is on the deny list (--upstream-deny)"
    }
}

/// A DNS resolver that drops the addresses the policy refuses, for both HTTP clients: a name
/// that resolves only to refused addresses fails to resolve, with the reason.
#[derive(Debug, Clone)]
pub struct PolicyResolver {
    policy: Arc<AddressPolicy>,
}

impl PolicyResolver {
    pub fn new(policy: Arc<AddressPolicy>) -> PolicyResolver {
        PolicyResolver { policy }
    }

    async fn resolve(policy: Arc<AddressPolicy>, host: String) -> Result<Vec<SocketAddr>, std::io::Error> {
        let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
        let mut refused = None;
        let kept: Vec<SocketAddr> = found
            .into_iter()
            .filter(|a| match policy.check_ip(a.ip()) {
                Ok(()) => true,
                Err(d) => {
                    refused = Some(d);
                    false
                }
            })
            .collect();
        match (kept.is_empty(), refused) {
            (true, Some(d)) => Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!("{host} resolves to a refused address: {d}"),
            )),
            _ => Ok(kept),
        }
    }
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl tower::Service<hyper_util::client::legacy::connect::dns::Name> for PolicyResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: hyper_util::client::legacy::connect::dns::Name) -> Self::Future {
        let policy = self.policy.clone();
        let host = name.as_str().to_string();
        Box::pin(async move { Ok(PolicyResolver::resolve(policy, host).await?.into_iter()) })
    }
}

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs = PolicyResolver::resolve(policy, host)
                .await
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// `host` or `host:port` of `url` (no scheme, path, query or userinfo), for error messages.
pub fn host_of(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => shown_host(&u),
        Err(_) => "unknown host".to_string(),
    }
}

/// [`host_of`] on a parsed URL.
fn shown_host(u: &url::Url) -> String {
    match (u.host_str(), u.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        (None, _) => "unknown host".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow: &[&str], deny: &[&str]) -> AddressPolicy {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        AddressPolicy::new(&s(allow), &s(deny)).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn metadata_and_link_local_are_refused_by_default_loopback_and_private_are_not() {
        let p = policy(&[], &[])
            .with_own("127.0.0.1:8080".parse().unwrap_or_else(|e| panic!("{e}")), "http://127.0.0.1:8080");
        for bad in [
            "http://169.254.169.254/latest/meta-data",
            "http://[fe80::1]/x",
            "http://[::ffff:169.254.169.254]/x",
            "http://metadata.google.internal/computeMetadata/v1",
            "http://METADATA.google.internal./x",
            "http://100.100.100.200/x",
            "http://[fd00:ec2::254]/x",
            "http://0.0.0.0:8080/x",
            "http://127.0.0.1:8080/llm/v1/providers/x",
            "http://localhost:8080/x",
        ] {
            assert!(p.check_url(bad).is_err(), "{bad} must be refused");
        }
        for good in [
            "https://api.openai.com/v1",
            "http://127.0.0.1:11434/v1",
            "http://localhost:11434",
            "http://10.0.0.5:8000/v1",
            "http://192.168.1.10/v1",
            "http://[::1]:9000",
        ] {
            assert!(p.check_url(good).is_ok(), "{good} must pass");
        }
        let msg = p.check_url("http://169.254.169.254/").err().map(|d| d.to_string()).unwrap_or_default();
        assert!(
            msg.contains("169.254.169.254") && msg.contains("link-local") && msg.contains("--upstream-allow"),
            "{msg}"
        );
    }

    #[test]
    fn operator_rules() {
        let p = policy(&["169.254.169.254/32", "*.corp.example"], &["10.0.0.0/8", "evil.example", "*.internal"]);
        assert!(p.check_url("http://169.254.169.254/").is_ok());
        assert!(p.check_url("http://169.254.1.1/").is_err());
        assert!(p.check_url("http://10.1.2.3/").is_err());
        assert!(p.check_url("http://evil.example/").is_err());
        assert!(p.check_url("http://a.b.internal/").is_err());
        assert!(p.check_url("http://metadata.corp.example/").is_ok());
        assert!(p.check_ip("10.9.9.9".parse().unwrap_or_else(|e| panic!("{e}"))).is_err());
        assert!(AddressPolicy::new(&["10.0.0.0/33".into()], &[]).is_err());
        assert!(AddressPolicy::new(&[], &["not a host!".into()]).is_err());
    }
}
