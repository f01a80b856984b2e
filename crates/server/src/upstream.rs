//! The one place that builds the HTTP client used to reach upstreams (DESIGN.md §5
//! invariant): pooled keep-alive connections, HTTP/1.1 and HTTP/2 (ALPN), rustls with the
//! platform's root store, no redirects followed (an upstream 3xx becomes a 502 so a
//! credential is never replayed to another host), a connect timeout and a per-read timeout
//! but no total timeout, because streams legitimately run for minutes.

use crate::error::ServerError;
use crate::settings::Settings;
use std::time::Duration;

/// Builds the shared upstream client from the settings.
pub fn build_client(settings: &Settings) -> Result<reqwest::Client, ServerError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(settings.upstream_connect_timeout)
        .read_timeout(settings.upstream_read_timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(1024)
        .tcp_keepalive(Duration::from_secs(60))
        .tcp_nodelay(true)
        .build()
        .map_err(|e| ServerError::Settings(format!("cannot build the upstream HTTP client: {e}")))
}
