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
pub const REFUSED: [(&str, &str); 17] = [
    ("downstream", "unauthenticated"),
    ("downstream", "not_found"),
    ("downstream", "permission_denied"),
    ("downstream", "model_not_allowed"),
    ("downstream", "bad_request"),
    ("downstream", "payload_too_large"),
    ("downstream", "path_traversal"),
    ("downstream", "loop_detected"),
    ("downstream", "budget_exceeded"),
    ("downstream", "rate_limited"),
    ("internal", "missing_credential"),
    ("internal", "invalid_credential"),
    ("internal", "credential_unavailable"),
    ("internal", "signing_failed"),
    ("internal", "upstream_address_denied"),
    ("internal", "credential_not_bound"),
    ("internal", "limits_unavailable"),
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
    /// Every usage event recorded, including those the full queue refused (also counted as
    /// dropped) and those a spill file of an earlier run held: queued = written + dropped + pending.
    pub usage_events_queued: AtomicU64,
    pub usage_events_written: AtomicU64,
    pub usage_events_dropped: AtomicU64,
    /// Usage events stored with `unpriced` set (a model or bucket the catalog cannot price).
    pub usage_events_unpriced: AtomicU64,
    pub catalog_overlay_reloads: AtomicU64,
    pub catalog_overlay_errors: AtomicU64,
    /// Raw usage events deleted by the retention task.
    pub usage_events_expired: AtomicU64,
    /// Gauge: usage events queued and neither written nor dropped yet (in the queue, the
    /// writer's batch, the spill file or held in memory): queued = written + dropped + pending.
    pub usage_events_pending: AtomicU64,
    /// Usage events appended to the spill file because the store refused them.
    pub usage_events_spilled: AtomicU64,
    /// Gauge, 0 or 1: the last usage write failed and has not succeeded since (`/readyz` is 503).
    pub usage_store_failing: AtomicU64,
    /// Gauge: client connections being served.
    pub connections_open: AtomicU64,
    /// Client connections accepted.
    pub connections_accepted: AtomicU64,
    /// Client connections closed unserved because `--max-connections` were open and no slot
    /// freed up within the header-read timeout.
    pub connections_refused: AtomicU64,
    /// Client connections closed because the request head did not arrive in time.
    pub connections_header_timeouts: AtomicU64,
    /// Client connections closed after `--idle-timeout-seconds` without a request.
    pub connections_idle_closed: AtomicU64,
    /// Connections (and the streams on them) still open when the shutdown grace ran out.
    pub connections_cut_at_shutdown: AtomicU64,
    /// Budget / rate-limit windows that could not be synced with the database (the call was
    /// admitted unreserved under `--budget-failure-mode open`, refused under `closed`).
    pub limit_state_failures: AtomicU64,
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
        counter(
            "tollgate_usage_events_queued_total",
            "Usage events recorded (queued, or dropped at once when the queue was full); equals written + dropped + pending.",
            &[("", &self.usage_events_queued)],
        );
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
            "tollgate_usage_events_spilled_total",
            "Usage events written to the spill file because the usage store refused them.",
            &[("", &self.usage_events_spilled)],
        );
        counter(
            "tollgate_connections_accepted_total",
            "Client connections accepted.",
            &[("", &self.connections_accepted)],
        );
        counter(
            "tollgate_connections_refused_total",
            "Client connections closed unserved: --max-connections were open and none freed up in time.",
            &[("", &self.connections_refused)],
        );
        counter(
            "tollgate_connections_header_timeouts_total",
            "Client connections closed because a request head did not arrive within --header-read-timeout-seconds.",
            &[("", &self.connections_header_timeouts)],
        );
        counter(
            "tollgate_connections_idle_closed_total",
            "Keep-alive connections closed after --idle-timeout-seconds without a request.",
            &[("", &self.connections_idle_closed)],
        );
        counter(
            "tollgate_connections_cut_at_shutdown_total",
            "Client connections still open (streams cut) when --shutdown-grace-seconds ran out.",
            &[("", &self.connections_cut_at_shutdown)],
        );
        counter(
            "tollgate_limit_state_failures_total",
            "Budget or rate-limit state that could not be read or written in the database (calls admitted unreserved under --budget-failure-mode open, refused under closed).",
            &[("", &self.limit_state_failures)],
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
        let mut gauge = |name: &str, help: &str, v: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        gauge(
            "tollgate_usage_events_pending",
            "Usage events queued and not yet written or dropped (queue, spill file, memory).",
            self.usage_events_pending.load(Ordering::Relaxed),
        );
        gauge(
            "tollgate_usage_store_up",
            "1 while usage events can be written; 0 after a failed write, until one succeeds.",
            u64::from(self.usage_store_failing.load(Ordering::Relaxed) == 0),
        );
        gauge(
            "tollgate_connections_open",
            "Client connections being served.",
            self.connections_open.load(Ordering::Relaxed),
        );
        out
    }
}
