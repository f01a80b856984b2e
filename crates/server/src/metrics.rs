//! Process-wide counters, rendered in the Prometheus text format on `GET /metrics`.
//!
//! Plain atomics: incrementing one costs a relaxed add on the request path. Requests the
//! gateway refuses before reaching an upstream create no usage event; they are counted here,
//! by the source of the fault (`downstream`: the client's request; `internal`: the gateway's
//! own configuration) and its reason, as the proxy's error table (`proxy::error`) says.
//!
//! Per-request series ([`RequestMetrics`]): histograms of request duration, time to first token
//! and upstream duration (buckets [`LATENCY_BUCKETS_MS`], 10 ms to 10 min), of tokens per
//! request (the GenAI conventions' `gen_ai.client.token.usage`), and counters of tokens and
//! cost (microcents) per bucket. They are fed by the usage writer once an event is priced
//! (never on the request path; see `telemetry::observe`), so they cover the requests that
//! produced a usage event, and lag the request by at most one writer flush. Labels:
//! `tollgate_provider` (a configured provider name), `gen_ai_provider_name`,
//! `gen_ai_operation_name` and `status` (closed sets), and `gen_ai_request_model`, bounded
//! by rule: a model neither in the catalog nor in the provider's allow-list is `other`, no
//! model is `none`, and once [`MAX_SERIES`] label sets exist every new one folds its model
//! into `other`. There is no user, agent or token label: those are in the usage reports.

use std::fmt::Write as _;
use std::hash::BuildHasher as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use tollgate_core::{Bucket, Cost, Usage};

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
    /// Transcripts (one per request with recording on) committed to the transcript store.
    pub transcripts_captured: AtomicU64,
    /// Transcript bodies cut at `--transcript-max-bytes`.
    pub transcripts_truncated: AtomicU64,
    /// Sealed bytes written to the transcript store.
    pub transcripts_bytes_stored: AtomicU64,
    /// Transcripts deleted by retention or the total-size cap.
    pub transcripts_expired: AtomicU64,
    /// Transcripts lost: the pending-bytes bound was reached, or the transcript store refused them.
    pub transcripts_dropped: AtomicU64,
    /// Gauge: captured bytes queued for the writer.
    pub transcripts_pending_bytes: AtomicU64,
    /// Config snapshots rebuilt whole (start, or the change log could not say what changed).
    pub config_reloads_full: AtomicU64,
    /// Config snapshots updated from the change log (only the changed resources re-read).
    pub config_reloads_incremental: AtomicU64,
    /// Provider rows read by snapshot reloads.
    pub config_providers_read: AtomicU64,
    /// Secret values read and unsealed by snapshot reloads.
    pub config_secrets_unsealed: AtomicU64,
    /// Gateway token rows read by snapshot reloads.
    pub config_tokens_read: AtomicU64,
    /// Config change notifications received (PostgreSQL `LISTEN`).
    pub config_notifications: AtomicU64,
    /// Times the config listener connected (the first time and after each lost connection).
    pub config_listener_connects: AtomicU64,
    /// TLS handshakes that failed (no common protocol, an untrusted or missing client
    /// certificate, not TLS at all).
    pub tls_handshake_failures: AtomicU64,
    /// Spans handed to the OTLP exporter and accepted by the receiver.
    pub otel_spans_exported: AtomicU64,
    /// Spans dropped: the export queue was full, or their batch's export failed.
    pub otel_spans_dropped: AtomicU64,
    /// OTLP export requests that failed or timed out.
    pub otel_export_failures: AtomicU64,
    /// Per-request histograms and token/cost counters.
    pub requests: RequestMetrics,
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
            "tollgate_tls_handshake_failures_total",
            "TLS handshakes with clients that failed (a missing or untrusted client certificate, no common protocol, not TLS).",
            &[("", &self.tls_handshake_failures)],
        );
        counter(
            "tollgate_connections_cut_at_shutdown_total",
            "Client connections still open (streams cut) when --shutdown-grace-seconds ran out.",
            &[("", &self.connections_cut_at_shutdown)],
        );
        counter(
            "tollgate_config_reloads_total",
            "Config snapshot reloads, by mode (full: everything re-read; incremental: only what the change log names).",
            &[
                ("{mode=\"full\"}", &self.config_reloads_full),
                ("{mode=\"incremental\"}", &self.config_reloads_incremental),
            ],
        );
        counter(
            "tollgate_config_rows_read_total",
            "Rows config snapshot reloads read from the database, by resource (secret: values unsealed).",
            &[
                ("{resource=\"provider\"}", &self.config_providers_read),
                ("{resource=\"secret\"}", &self.config_secrets_unsealed),
                ("{resource=\"token\"}", &self.config_tokens_read),
            ],
        );
        counter(
            "tollgate_config_notifications_total",
            "Config change notifications received from PostgreSQL (LISTEN tollgate_config).",
            &[("", &self.config_notifications)],
        );
        counter(
            "tollgate_config_listener_connects_total",
            "Times the config listener connected to PostgreSQL (first connection and each reconnection).",
            &[("", &self.config_listener_connects)],
        );
        counter(
            "tollgate_otel_spans_exported_total",
            "Trace spans exported over OTLP.",
            &[("", &self.otel_spans_exported)],
        );
        counter(
            "tollgate_otel_spans_dropped_total",
            "Trace spans dropped: the export queue was full or their export failed.",
            &[("", &self.otel_spans_dropped)],
        );
        counter(
            "tollgate_otel_export_failures_total",
            "OTLP trace export requests that failed or timed out.",
            &[("", &self.otel_export_failures)],
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
        counter(
            "tollgate_transcripts_captured_total",
            "Transcripts (request and/or response bodies of one request) stored, sealed.",
            &[("", &self.transcripts_captured)],
        );
        counter(
            "tollgate_transcripts_truncated_total",
            "Transcript bodies cut at --transcript-max-bytes (the head is kept).",
            &[("", &self.transcripts_truncated)],
        );
        counter(
            "tollgate_transcripts_bytes_stored_total",
            "Bytes of sealed, compressed transcript batches written.",
            &[("", &self.transcripts_bytes_stored)],
        );
        counter(
            "tollgate_transcripts_expired_total",
            "Transcripts deleted by retention or the total-size cap.",
            &[("", &self.transcripts_expired)],
        );
        counter(
            "tollgate_transcripts_dropped_total",
            "Transcripts lost: too many captured bytes waiting, or the transcript store refused them.",
            &[("", &self.transcripts_dropped)],
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
        self.requests.render(&mut out);
        out
    }
}

/// Upper bounds, in milliseconds, of the latency histograms' buckets: LLM calls take from
/// tens of milliseconds (an embedding) to minutes (a long reasoning stream), 10 ms to 10 min.
pub const LATENCY_BUCKETS_MS: [u64; 16] =
    [10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 20_000, 30_000, 60_000, 120_000, 300_000, 600_000];

/// Upper bounds of the tokens-per-request histogram (the GenAI conventions' advice for
/// `gen_ai.client.token.usage`: powers of 4 from 1 to 4^13).
pub const TOKEN_BUCKETS: [u64; 14] =
    [1, 4, 16, 64, 256, 1_024, 4_096, 16_384, 65_536, 262_144, 1_048_576, 4_194_304, 16_777_216, 67_108_864];

/// Label sets kept apart at most; beyond, new ones fold their model into `other`.
pub const MAX_SERIES: usize = 2_000;

/// The labels of one per-request series. Field order and types hash like [`SeriesRef`]'s.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeriesKey {
    /// The configured provider name.
    pub provider: String,
    pub genai_provider: &'static str,
    pub operation: &'static str,
    /// The model, already folded (see the module header).
    pub model: String,
    pub status: &'static str,
}

/// A [`SeriesKey`] borrowed from the request it counts: the series is found without copying
/// its labels (an owned key is made once, for a new series).
#[derive(Debug, Clone, Copy, Hash)]
pub struct SeriesRef<'a> {
    pub provider: &'a str,
    pub genai_provider: &'static str,
    pub operation: &'static str,
    pub model: &'a str,
    pub status: &'static str,
}

impl SeriesRef<'_> {
    /// Whether these are `k`'s labels (the static ones compared by pointer first).
    fn same_as(&self, k: &SeriesKey) -> bool {
        let fixed = |a: &'static str, b: &'static str| std::ptr::eq(a, b) || a == b;
        fixed(self.status, k.status)
            && fixed(self.operation, k.operation)
            && fixed(self.genai_provider, k.genai_provider)
            && self.model == k.model
            && self.provider == k.provider
    }
}

impl From<&SeriesRef<'_>> for SeriesKey {
    fn from(r: &SeriesRef<'_>) -> SeriesKey {
        SeriesKey {
            provider: r.provider.to_string(),
            genai_provider: r.genai_provider,
            operation: r.operation,
            model: r.model.to_string(),
            status: r.status,
        }
    }
}

/// One finished request, as the per-request series count it.
#[derive(Debug)]
pub struct Observation<'a> {
    pub key: SeriesRef<'a>,
    pub duration_ms: u64,
    pub ttft_ms: Option<u64>,
    pub upstream_ms: Option<u64>,
    pub usage: &'a Usage,
    pub cost: &'a Cost,
}

#[derive(Debug, Clone)]
struct Histogram {
    /// Per bucket (not cumulative); observations above the last bound are only in `count`.
    buckets: Vec<u64>,
    count: u64,
    sum: u64,
}

impl Histogram {
    fn new(bounds: &[u64]) -> Histogram {
        Histogram { buckets: vec![0; bounds.len()], count: 0, sum: 0 }
    }

    fn observe(&mut self, bounds: &[u64], v: u64) {
        if let Some(i) = bounds.iter().position(|b| v <= *b) {
            self.buckets[i] += 1;
        }
        self.count += 1;
        self.sum = self.sum.saturating_add(v);
    }
}

#[derive(Debug, Clone)]
struct Series {
    duration: Histogram,
    ttft: Histogram,
    upstream: Histogram,
    input_tokens: Histogram,
    output_tokens: Histogram,
    tokens: [u64; Bucket::ALL.len()],
    cost: [i64; Bucket::ALL.len()],
}

impl Series {
    fn new() -> Series {
        let latency = Histogram::new(&LATENCY_BUCKETS_MS);
        let tokens = Histogram::new(&TOKEN_BUCKETS);
        Series {
            duration: latency.clone(),
            ttft: latency.clone(),
            upstream: latency,
            input_tokens: tokens.clone(),
            output_tokens: tokens,
            tokens: [0; Bucket::ALL.len()],
            cost: [0; Bucket::ALL.len()],
        }
    }
}

/// Picks one histogram of a series.
type Pick = fn(&Series) -> &Histogram;

/// The per-request series: written by the usage writer, read by `/metrics`.
#[derive(Debug, Default)]
pub struct RequestMetrics {
    series: Mutex<SeriesTable>,
}

/// The series in the order they appeared, found by their borrowed labels through a hash
/// index; `/metrics` sorts them. Consecutive requests mostly count in one series (one provider,
/// model and outcome), so the previous request's series is tried first: comparing its labels
/// (the static ones and a shared provider name by pointer) costs less than hashing them.
#[derive(Debug, Default)]
struct SeriesTable {
    rows: Vec<(SeriesKey, Series)>,
    index: hashbrown::HashTable<usize>,
    hasher: hashbrown::DefaultHashBuilder,
    /// The row the previous request counted in (0 before the first, when there is no row).
    last: usize,
}

impl SeriesTable {
    /// The row of `key`'s series, made when new; past [`MAX_SERIES`] a new label set folds its
    /// model into `other`.
    fn row(&mut self, mut key: SeriesRef<'_>) -> usize {
        if self.rows.get(self.last).is_some_and(|(k, _)| key.same_as(k)) {
            return self.last;
        }
        let i = match self.find(&key) {
            Some(i) => i,
            None => {
                if self.rows.len() >= MAX_SERIES {
                    key.model = "other";
                }
                match self.find(&key) {
                    Some(i) => i,
                    None => {
                        let i = self.rows.len();
                        self.rows.push((SeriesKey::from(&key), Series::new()));
                        let (rows, hasher) = (&self.rows, &self.hasher);
                        self.index.insert_unique(hasher.hash_one(key), i, |&j| hasher.hash_one(&rows[j].0));
                        i
                    }
                }
            }
        };
        self.last = i;
        i
    }

    fn find(&self, key: &SeriesRef<'_>) -> Option<usize> {
        self.index.find(self.hasher.hash_one(key), |&i| key.same_as(&self.rows[i].0)).copied()
    }
}

/// The label pairs of a series.
fn labels(k: &SeriesKey) -> String {
    format!(
        "tollgate_provider=\"{}\",gen_ai_provider_name=\"{}\",gen_ai_operation_name=\"{}\",gen_ai_request_model=\"{}\",status=\"{}\"",
        escape(&k.provider),
        k.genai_provider,
        k.operation,
        escape(&k.model),
        k.status
    )
}

/// Milliseconds as seconds with three decimals (integer arithmetic).
fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// One histogram series: cumulative buckets, `+Inf`, sum and count.
fn write_histogram(out: &mut String, name: &str, labels: &str, bounds: &[u64], h: &Histogram, fmt: fn(u64) -> String) {
    let mut cumulative = 0;
    for (b, n) in bounds.iter().zip(&h.buckets) {
        cumulative += n;
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{}\"}} {cumulative}", fmt(*b));
    }
    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
    let _ = writeln!(out, "{name}_sum{{{labels}}} {}", fmt(h.sum));
    let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count);
}

/// A label value escaped for the text format (backslash, double quote, newline).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl RequestMetrics {
    /// Counts one finished, priced request.
    pub fn observe(&self, o: Observation<'_>) {
        let mut table = self.series.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let i = table.row(o.key);
        let s = &mut table.rows[i].1;
        s.duration.observe(&LATENCY_BUCKETS_MS, o.duration_ms);
        if let Some(t) = o.ttft_ms {
            s.ttft.observe(&LATENCY_BUCKETS_MS, t);
        }
        if let Some(t) = o.upstream_ms {
            s.upstream.observe(&LATENCY_BUCKETS_MS, t);
        }
        let u = o.usage;
        let input = u64::try_from(u.prompt_tokens()).unwrap_or(0);
        let output = u64::try_from(u.output + u.reasoning).unwrap_or(0);
        if input > 0 || output > 0 {
            s.input_tokens.observe(&TOKEN_BUCKETS, input);
            s.output_tokens.observe(&TOKEN_BUCKETS, output);
        }
        for (i, b) in Bucket::ALL.into_iter().enumerate() {
            s.tokens[i] = s.tokens[i].saturating_add(u64::try_from(u.get(b)).unwrap_or(0));
            s.cost[i] = s.cost[i].saturating_add(o.cost.get(b));
        }
    }

    /// Appends the text exposition of every series to `out`.
    fn render(&self, out: &mut String) {
        let table = self.series.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut series: Vec<(&SeriesKey, &Series)> = table.rows.iter().map(|(k, s)| (k, s)).collect();
        series.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let latency: [(&str, &str, Pick); 3] = [
            (
                "gen_ai_client_operation_duration_seconds",
                "Duration of proxied requests, from arrival to the end of the response body (GenAI convention gen_ai.client.operation.duration).",
                |s| &s.duration,
            ),
            (
                "gen_ai_server_time_to_first_token_seconds",
                "Time from a request's arrival to the first response bytes, for requests that had them (GenAI convention gen_ai.server.time_to_first_token).",
                |s| &s.ttft,
            ),
            (
                "tollgate_upstream_duration_seconds",
                "Time from sending a request upstream to the end of the upstream's response.",
                |s| &s.upstream,
            ),
        ];
        for (name, help, pick) in latency {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
            for &(k, s) in &series {
                write_histogram(out, name, &labels(k), &LATENCY_BUCKETS_MS, pick(s), seconds);
            }
        }
        let name = "gen_ai_client_token_usage";
        let _ = writeln!(
            out,
            "# HELP {name} Tokens per request with usage: input (cache reads and writes included) and output (reasoning included) (GenAI convention gen_ai.client.token.usage).\n# TYPE {name} histogram"
        );
        for (token_type, pick) in [("input", (|s| &s.input_tokens) as Pick), ("output", |s| &s.output_tokens)] {
            for &(k, s) in &series {
                let l = format!("{},gen_ai_token_type=\"{token_type}\"", labels(k));
                write_histogram(out, name, &l, &TOKEN_BUCKETS, pick(s), |v| v.to_string());
            }
        }
        let _ = writeln!(
            out,
            "# HELP tollgate_tokens_total Tokens of priced requests, by token bucket (buckets are disjoint).\n# TYPE tollgate_tokens_total counter"
        );
        for &(k, s) in &series {
            for (i, b) in Bucket::ALL.into_iter().enumerate() {
                let _ =
                    writeln!(out, "tollgate_tokens_total{{{},bucket=\"{}\"}} {}", labels(k), b.as_str(), s.tokens[i]);
            }
        }
        let _ = writeln!(
            out,
            "# HELP tollgate_cost_microcents_total Cost of requests in microcents (1 USD = 100,000,000), by token bucket; buckets add up to the total.\n# TYPE tollgate_cost_microcents_total counter"
        );
        for &(k, s) in &series {
            for (i, b) in Bucket::ALL.into_iter().enumerate() {
                let _ = writeln!(
                    out,
                    "tollgate_cost_microcents_total{{{},bucket=\"{}\"}} {}",
                    labels(k),
                    b.as_str(),
                    s.cost[i]
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observe(m: &RequestMetrics, provider: &str, model: &str) {
        let usage = Usage { input: 3, output: 2, ..Usage::default() };
        m.observe(Observation {
            key: SeriesRef { provider, genai_provider: "openai", operation: "chat", model, status: "success" },
            duration_ms: 5,
            ttft_ms: None,
            upstream_ms: Some(4),
            usage: &usage,
            cost: &Cost::default(),
        });
    }

    /// A request finds its series by borrowed labels (equal labels from different strings
    /// count together); `/metrics` lists the series sorted by their labels.
    #[test]
    fn series_are_found_by_borrowed_labels_and_rendered_sorted() {
        let m = RequestMetrics::default();
        observe(&m, &String::from("zeta"), "gpt");
        observe(&m, &String::from("alpha"), "gpt");
        observe(&m, &String::from("zeta"), &String::from("gpt"));
        let mut out = String::new();
        m.render(&mut out);
        let counts: Vec<&str> =
            out.lines().filter(|l| l.starts_with("gen_ai_client_operation_duration_seconds_count")).collect();
        assert_eq!(counts.len(), 2, "{out}");
        assert!(counts[0].contains("tollgate_provider=\"alpha\"") && counts[0].ends_with(" 1"), "{counts:?}");
        assert!(counts[1].contains("tollgate_provider=\"zeta\"") && counts[1].ends_with(" 2"), "{counts:?}");
    }

    /// The previous request's series is taken only when every label matches.
    #[test]
    fn consecutive_requests_count_in_their_own_series() {
        let m = RequestMetrics::default();
        let usage = Usage::default();
        for (model, status) in [
            ("gpt", "success"),
            ("gpt", "success"),
            ("gpt", "upstream_error"),
            ("gpt-2", "success"),
            ("gpt", "success"),
        ] {
            m.observe(Observation {
                key: SeriesRef { provider: "p", genai_provider: "openai", operation: "chat", model, status },
                duration_ms: 5,
                ttft_ms: None,
                upstream_ms: None,
                usage: &usage,
                cost: &Cost::default(),
            });
        }
        let mut out = String::new();
        m.render(&mut out);
        let count = |model: &str, status: &str| {
            out.lines()
                .find(|l| {
                    l.starts_with("gen_ai_client_operation_duration_seconds_count")
                        && l.contains(&format!("gen_ai_request_model=\"{model}\""))
                        && l.contains(&format!("status=\"{status}\""))
                })
                .and_then(|l| l.rsplit(' ').next())
                .map(str::to_string)
        };
        assert_eq!(count("gpt", "success").as_deref(), Some("3"), "{out}");
        assert_eq!(count("gpt", "upstream_error").as_deref(), Some("1"), "{out}");
        assert_eq!(count("gpt-2", "success").as_deref(), Some("1"), "{out}");
    }

    #[test]
    fn past_the_series_cap_new_models_fold_into_other() {
        let m = RequestMetrics::default();
        for i in 0..MAX_SERIES {
            observe(&m, "p", &format!("m{i}"));
        }
        observe(&m, "p", "brand-new");
        observe(&m, "p", "m7");
        let table = m.series.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        assert_eq!(table.rows.len(), MAX_SERIES + 1);
        assert!(table.rows.iter().any(|(k, _)| k.model == "other"));
        assert!(!table.rows.iter().any(|(k, _)| k.model == "brand-new"));
    }
}
