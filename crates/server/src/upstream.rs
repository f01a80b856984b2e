//! The one place that builds the HTTP clients used to reach upstreams (ARCHITECTURE.md,
//! Invariants: only `upstream.rs` builds an HTTP client): pooled keep-alive connections, HTTP/1.1 and HTTP/2 (ALPN), rustls on
//! aws-lc-rs with the platform's root store, no redirects followed (an upstream 3xx becomes a
//! 502 so a credential is never replayed to another host), a connect timeout and a per-read
//! timeout but no total timeout, because streams legitimately run for minutes.
//!
//! Two clients share these rules. The proxy forwards through [`ProxyClient`] (`pool`: hyper's
//! connection API with a pool of our own): the request is already an `http::Request` with a
//! fully read body, so reqwest's layers (URL re-parsing, redirect and retry services, body and
//! timeout wrappers) were pure per-request cost on the hot path; the proxy applies the read
//! timeout itself (to the response head in `proxy::forward`, to each body read in
//! `proxy::body`). The admin side (Test Connection) keeps the convenient reqwest client.

pub use crate::address_policy::host_of;
use crate::address_policy::{AddressPolicy, PolicyResolver};
use crate::error::ServerError;
use crate::settings::Settings;
use bytes::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use rustls_platform_verifier::BuilderVerifierExt as _;
use std::sync::Arc;
use std::time::Duration;

/// Request body of a proxied request: the client's body, read whole before forwarding.
pub type ProxyBody = http_body_util::Full<Bytes>;

mod pool;
pub use pool::{Lease, ProxyClient, UpstreamError};

const POOL_IDLE_TIMEOUT: Duration = pool::IDLE_TIMEOUT;
const POOL_MAX_IDLE_PER_HOST: usize = pool::MAX_IDLE_PER_ORIGIN;
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// Builds the shared upstream client used by the admin side (Test Connection).
pub fn build_client(settings: &Settings, policy: &Arc<AddressPolicy>) -> Result<reqwest::Client, ServerError> {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(PolicyResolver::new(policy.clone())))
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(settings.upstream_connect_timeout)
        .read_timeout(settings.upstream_read_timeout)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
        .tcp_keepalive(TCP_KEEPALIVE)
        .tcp_nodelay(true)
        .build()
        .map_err(|e| ServerError::Settings(format!("cannot build the upstream HTTP client: {e}")))
}

/// Builds the proxy's client: the same TLS, pooling and connect rules as [`build_client`].
pub fn build_proxy_client(settings: &Settings, policy: &Arc<AddressPolicy>) -> Result<ProxyClient, ServerError> {
    let fail = |e: rustls::Error| ServerError::Settings(format!("cannot set up TLS for upstreams: {e}"));
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(fail)?
        .with_platform_verifier()
        .map_err(fail)?
        .with_no_client_auth();
    // Resolved addresses pass the address policy (DNS rebinding cannot reach a refused one).
    let mut http = HttpConnector::new_with_resolver(PolicyResolver::new(policy.clone()));
    http.enforce_http(false);
    http.set_connect_timeout(Some(settings.upstream_connect_timeout));
    http.set_keepalive(Some(TCP_KEEPALIVE));
    http.set_nodelay(true);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    Ok(ProxyClient::new(https))
}

/// Why an upstream could not be reached, in a few words for people: the cause found in the
/// error chain (hyper-util's connector, reqwest, rustls, the OS), never a URL or a header.
pub fn failure_cause(err: &(dyn std::error::Error + 'static)) -> String {
    // The address policy's resolver refusal (`crate::address_policy::PolicyResolver`) says why.
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::PermissionDenied
        {
            return io.to_string();
        }
        source = e.source();
    }
    let mut timed_out = false;
    let mut innermost = err.to_string();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        innermost = e.to_string();
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return format!("TLS handshake failed ({tls})");
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            // tokio-rustls wraps the rustls error in an io::Error, sometimes twice; io::Error's
            // `source` skips the wrapped error itself, so unwrap it by hand.
            let mut inner = io.get_ref();
            while let Some(i) = inner {
                if let Some(tls) = i.downcast_ref::<rustls::Error>() {
                    return format!("TLS handshake failed ({tls})");
                }
                inner = i.downcast_ref::<std::io::Error>().and_then(std::io::Error::get_ref);
            }
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return "connection refused".to_string(),
                std::io::ErrorKind::ConnectionReset => return "connection reset by the upstream".to_string(),
                std::io::ErrorKind::TimedOut => timed_out = true,
                _ => {}
            }
        }
        // hyper-util's connector reports resolver failures as "dns error", with the
        // resolver's own words as the source.
        if innermost.starts_with("dns error") {
            let detail = e.source().map(|s| s.to_string()).unwrap_or_default();
            return if detail.is_empty() {
                "DNS lookup failed".to_string()
            } else {
                format!("DNS lookup failed ({detail})")
            };
        }
        if innermost.contains("timed out") || innermost.contains("timeout") {
            timed_out = true;
        }
        source = e.source();
    }
    if timed_out { "timed out".to_string() } else { innermost }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_from_error_chains() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(failure_cause(&refused), "connection refused");
        // As tokio-rustls reports it: an io::Error around an io::Error around the rustls error.
        let tls = std::io::Error::other(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
        ));
        assert!(failure_cause(&tls).starts_with("TLS handshake failed ("), "{}", failure_cause(&tls));
        let slow = std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timeout");
        assert_eq!(failure_cause(&slow), "timed out");
        assert_eq!(host_of("https://user:pw@api.example.com/v1?key=secret"), "api.example.com");
        assert_eq!(host_of("http://127.0.0.1:9/x"), "127.0.0.1:9");
    }
}
