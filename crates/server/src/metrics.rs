//! Process-wide counters, rendered in the Prometheus text format on `GET /metrics`.
//!
//! Plain atomics: incrementing one costs a relaxed add on the request path. Requests the
//! gateway refuses before reaching an upstream create no usage event; they are counted here.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Every counter the gateway exports.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Proxied requests that reached an upstream (each produces one usage event).
    pub proxy_requests_forwarded: AtomicU64,
    pub proxy_refused_unauthenticated: AtomicU64,
    pub proxy_refused_not_found: AtomicU64,
    pub proxy_refused_permission: AtomicU64,
    pub proxy_refused_model: AtomicU64,
    pub proxy_refused_bad_request: AtomicU64,
    pub proxy_refused_too_large: AtomicU64,
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

    /// The Prometheus text exposition of every counter.
    pub fn render(&self) -> String {
        let refused = [
            ("unauthenticated", &self.proxy_refused_unauthenticated),
            ("not_found", &self.proxy_refused_not_found),
            ("permission_denied", &self.proxy_refused_permission),
            ("model_not_allowed", &self.proxy_refused_model),
            ("bad_request", &self.proxy_refused_bad_request),
            ("payload_too_large", &self.proxy_refused_too_large),
        ];
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
        let labelled: Vec<(String, &AtomicU64)> =
            refused.iter().map(|(reason, v)| (format!("{{reason=\"{reason}\"}}"), *v)).collect();
        let labelled: Vec<(&str, &AtomicU64)> = labelled.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        counter(
            "tollgate_proxy_requests_refused_total",
            "Proxied requests the gateway refused before reaching an upstream.",
            &labelled,
        );
        counter(
            "tollgate_proxy_upstream_failures_total",
            "Proxied requests whose upstream could not be reached, timed out or redirected.",
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
