//! Process-wide counters, rendered in the Prometheus text format on `GET /metrics`.
//!
//! Plain atomics: incrementing one costs a relaxed add on the request path. Requests the
//! gateway refuses before reaching an upstream create no usage event; they are counted here,
//! by the source of the fault (`downstream`: the client's request; `internal`: the gateway's
//! own configuration) and its reason, as the proxy's error table (`proxy::error`) says.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// The `(source, reason)` label pairs of `tollgate_proxy_requests_refused_total`, in
/// exposition order: every fault `proxy::error::Fault::row` answers before an upstream (a
/// test there checks each one is listed).
pub const REFUSED: [(&str, &str); 14] = [
    ("downstream", "unauthenticated"),
    ("downstream", "not_found"),
    ("downstream", "permission_denied"),
    ("downstream", "model_not_allowed"),
    ("downstream", "bad_request"),
    ("downstream", "payload_too_large"),
    ("downstream", "path_traversal"),
    ("downstream", "loop_detected"),
    ("internal", "missing_credential"),
    ("internal", "invalid_credential"),
    ("internal", "credential_unavailable"),
    ("internal", "signing_failed"),
    ("internal", "upstream_address_denied"),
    ("internal", "credential_not_bound"),
];

/// Every counter the gateway exports.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Proxied requests that reached an upstream (each produces one usage event).
    pub proxy_requests_forwarded: AtomicU64,
    /// Proxied requests answered before an upstream, one counter per [`REFUSED`] label pair.
    pub proxy_refused: [AtomicU64; REFUSED.len()],
    pub proxy_upstream_failures: AtomicU64,
    pub proxy_client_cancelled: AtomicU64,
    pub usage_events_queued: AtomicU64,
    pub usage_events_written: AtomicU64,
    pub usage_events_dropped: AtomicU64,
    /// Usage events stored with `unpriced` set (a model or bucket the catalog cannot price).
    pub usage_events_unpriced: AtomicU64,
    pub catalog_overlay_reloads: AtomicU64,
    pub catalog_overlay_errors: AtomicU64,
    /// Raw usage events deleted by the retention task.
    pub usage_events_expired: AtomicU64,
}

impl Metrics {
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts a request refused before an upstream (a pair not in [`REFUSED`] is a bug the
    /// proxy's table test catches; it is not counted).
    pub fn refused(&self, source: &str, reason: &str) {
        if let Some(i) = REFUSED.iter().position(|l| *l == (source, reason)) {
            Self::inc(&self.proxy_refused[i]);
        }
    }

    /// The Prometheus text exposition of every counter.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, samples: &[(&str, &AtomicU64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (labels, v) in samples {
                let _ = writeln!(out, "{name}{labels} {}", v.load(Ordering::Relaxed));
            }
        };
        counter(
            "tollgate_proxy_requests_forwarded_total",
            "Proxied requests that reached an upstream.",
            &[("", &self.proxy_requests_forwarded)],
        );
        let labelled: Vec<(String, &AtomicU64)> = REFUSED
            .iter()
            .zip(&self.proxy_refused)
            .map(|((source, reason), v)| (format!("{{source=\"{source}\",reason=\"{reason}\"}}"), v))
            .collect();
        let labelled: Vec<(&str, &AtomicU64)> = labelled.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        counter(
            "tollgate_proxy_requests_refused_total",
            "Proxied requests the gateway answered itself before reaching an upstream, by source (downstream: the client's request; internal: the gateway's configuration) and reason.",
            &labelled,
        );
        counter(
            "tollgate_proxy_upstream_failures_total",
            "Proxied requests whose upstream could not be reached, timed out or broke the connection.",
            &[("", &self.proxy_upstream_failures)],
        );
        counter(
            "tollgate_proxy_client_cancelled_total",
            "Proxied requests the client abandoned before the response was complete.",
            &[("", &self.proxy_client_cancelled)],
        );
        counter("tollgate_usage_events_queued_total", "Usage events queued.", &[("", &self.usage_events_queued)]);
        counter("tollgate_usage_events_written_total", "Usage events committed.", &[("", &self.usage_events_written)]);
        counter(
            "tollgate_usage_events_dropped_total",
            "Usage events dropped (queue full or write failed).",
            &[("", &self.usage_events_dropped)],
        );
        counter(
            "tollgate_usage_events_unpriced_total",
            "Usage events whose model or a token bucket has no price (cost 0, flagged unpriced).",
            &[("", &self.usage_events_unpriced)],
        );
        counter(
            "tollgate_usage_events_expired_total",
            "Raw usage events deleted by retention (hourly rollups are kept).",
            &[("", &self.usage_events_expired)],
        );
        counter(
            "tollgate_catalog_overlay_reloads_total",
            "Times the catalog overlay file changed and was merged in.",
            &[("", &self.catalog_overlay_reloads)],
        );
        counter(
            "tollgate_catalog_overlay_errors_total",
            "Catalog overlay edits rejected (the last good catalog stays in use).",
            &[("", &self.catalog_overlay_errors)],
        );
        out
    }
}
