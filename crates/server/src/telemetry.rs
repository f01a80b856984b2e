//! OpenTelemetry traces of proxied requests: one span of kind CLIENT per request that reaches an
//! upstream, with the GenAI semantic conventions' attributes (OpenTelemetry GenAI semantic
//! conventions v0.1.0, the first release of `open-telemetry/semantic-conventions-genai`, which
//! carries on the `gen_ai.*` conventions of semantic-conventions v1.41.0; development stability)
//! plus Tollgate's own under `tollgate.*`, exported over OTLP/HTTP (protobuf) or OTLP/gRPC.
//!
//! Off unless an endpoint is configured (`--otlp-endpoint`, `OTEL_EXPORTER_OTLP_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`); then [`Tracing`] is in the app state.
//!
//! How a span lives (ARCHITECTURE.md, Decisions: Observability):
//! 1. **Start, on the request path** ([`Tracing::start`], in `proxy::handle` once the request
//!    is admitted): the W3C `traceparent`/`tracestate` the client sent (if any) become the
//!    parent, the SDK's sampler (`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`; default
//!    parent-based always-on) decides, and the span gets what is known before the upstream
//!    answers (operation, provider, requested model, server address, user, agent, token id,
//!    request id, conversation id, request parameters). Its context is injected into the
//!    upstream request (`traceparent`, and the client's `tracestate`) before SigV4 signing.
//!    Cost: ids from the SDK's generator, a sampler call and one small allocation.
//! 2. **Travel**: the span rides with the request's `Recorder` and, in the usage event's
//!    `Metered`, through the usage queue to the writer.
//! 3. **End, in the usage writer after pricing** ([`RequestSpan::finish`]): the response
//!    attributes, tokens, cost per bucket and total, catalog version, status and time to first
//!    token are set, and the span is ended with the request's own end time (arrival plus the
//!    measured latency), so its duration is the request's, not the writer's delay.
//! 4. **Export**: ended spans go to [`QueueProcessor`], a bounded queue (`try_send`: a full
//!    queue drops the span and counts it in `tollgate_otel_spans_dropped_total`), drained by
//!    one task that exports batches with the `opentelemetry-otlp` exporter: over HTTP with the
//!    gateway's shared HTTP client (built in `upstream.rs`), or over gRPC with tonic's channel;
//!    a failed or timed-out export drops its batch (counted). Nothing a request does waits on
//!    the exporter.
//!
//! Message bodies are set only when the provider's transcript toggles are on, in the
//! conventions' parts format: `gen_ai.input.messages` from the request body when
//! `transcripts.record_input_messages` is on ([`RequestSpan::set_request_body`]);
//! `gen_ai.output.messages` from the response the transcript captured when
//! `transcripts.record_output_messages` is on ([`set_output_messages`], in the usage writer:
//! the captured bytes are assembled by the protocol crate off the request path). A span is
//! never given a credential or a header value.

use crate::metrics::Metrics;
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{Span as _, SpanContext, SpanKind, Status, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, InstrumentationScope, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider, SpanData, SpanExporter as _, SpanProcessor};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, watch};
use tollgate_core::{Bucket, Cost, ProviderType, RequestStatus, Usage};
use tollgate_protocol::Endpoint;

/// Spans exported per OTLP request at most.
const MAX_EXPORT_BATCH: usize = 512;
/// Longest wait for one export (beyond it the batch is dropped and counted).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The OTLP transport (`--otlp-protocol`, `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`,
/// `OTEL_EXPORTER_OTLP_PROTOCOL`; the specification's default is `http/protobuf`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OtlpProtocol {
    /// OTLP/HTTP with protobuf bodies, `POST <endpoint>/v1/traces` (port 4318 by convention).
    #[default]
    HttpProtobuf,
    /// OTLP/gRPC, `TraceService/Export` at the endpoint as given (port 4317 by convention).
    Grpc,
}

impl OtlpProtocol {
    /// Reads a protocol value as the OTLP exporter specification spells it.
    pub fn parse(value: &str) -> Result<OtlpProtocol, String> {
        match value.trim() {
            "http/protobuf" => Ok(OtlpProtocol::HttpProtobuf),
            "grpc" => Ok(OtlpProtocol::Grpc),
            "http/json" => Err("`http/json` is not supported: use `http/protobuf` or `grpc`".to_string()),
            other => Err(format!("`{other}` is not an OTLP protocol: use `http/protobuf` or `grpc`")),
        }
    }
}

/// What `--otlp-endpoint` and the `OTEL_*` variables configure.
#[derive(Debug, Clone)]
pub struct TracingSettings {
    /// The receiver. OTLP/HTTP: a base URL, as `OTEL_EXPORTER_OTLP_ENDPOINT` (`/v1/traces` is
    /// appended unless present); `None`: the exporter reads `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
    /// or `OTEL_EXPORTER_OTLP_ENDPOINT` itself. OTLP/gRPC: the endpoint as given (gRPC has no
    /// path); `None`: `http://localhost:4317`.
    pub endpoint: Option<String>,
    /// The transport.
    pub protocol: OtlpProtocol,
    /// Ended spans waiting for export; more are dropped and counted.
    pub queue_capacity: usize,
    /// The exporter sends what is queued at least this often (and whenever a batch is full).
    pub export_interval: Duration,
}

impl Default for TracingSettings {
    fn default() -> TracingSettings {
        TracingSettings {
            endpoint: None,
            protocol: OtlpProtocol::HttpProtobuf,
            queue_capacity: 4096,
            export_interval: Duration::from_secs(1),
        }
    }
}

/// Why tracing could not start (a bad endpoint, header or exporter setting).
#[derive(Debug, thiserror::Error)]
#[error("OpenTelemetry tracing: {0}")]
pub struct TracingError(String);

/// The tracer of a gateway with tracing on. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Tracing {
    tracer: SdkTracer,
    provider: SdkTracerProvider,
}

/// The export task: run it with [`Exporter::run`].
#[derive(Debug)]
pub struct Exporter {
    rx: mpsc::Receiver<SpanData>,
    exporter: opentelemetry_otlp::SpanExporter,
    metrics: Arc<Metrics>,
    interval: Duration,
}

/// The span processor: ended spans go to a bounded queue without waiting.
#[derive(Debug)]
struct QueueProcessor {
    tx: mpsc::Sender<SpanData>,
    metrics: Arc<Metrics>,
}

impl SpanProcessor for QueueProcessor {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if self.tx.try_send(span).is_err() {
            Metrics::inc(&self.metrics.otel_spans_dropped);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// The OTLP/HTTP traces URL for a base endpoint given like `OTEL_EXPORTER_OTLP_ENDPOINT`.
pub fn traces_url(base: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.ends_with("/v1/traces") { base.to_string() } else { format!("{base}/v1/traces") }
}

/// The resource: `OTEL_SERVICE_NAME` / `OTEL_RESOURCE_ATTRIBUTES`, `service.name` defaulting
/// to `tollgate` (instead of the SDK's `unknown_service`).
fn resource() -> Resource {
    let from_env = Resource::builder().build();
    let named = from_env
        .get(&opentelemetry::Key::from_static_str("service.name"))
        .is_some_and(|v| !v.as_str().starts_with("unknown_service"));
    if named { from_env } else { Resource::builder().with_service_name("tollgate").build() }
}

impl Tracing {
    /// Builds the tracer and its export task. `http` is the gateway's shared HTTP client.
    pub fn start(
        settings: &TracingSettings,
        http: reqwest::Client,
        metrics: Arc<Metrics>,
    ) -> Result<(Tracing, Exporter), TracingError> {
        use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _, WithTonicConfig as _};
        let built = match settings.protocol {
            OtlpProtocol::HttpProtobuf => {
                let mut builder = opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                    .with_http_client(http);
                if let Some(base) = &settings.endpoint {
                    builder = builder.with_endpoint(traces_url(base));
                }
                builder.build()
            }
            OtlpProtocol::Grpc => {
                // tonic's own HTTP/2 client (gRPC needs trailers and its framing); TLS with the
                // system's roots for an https:// endpoint. Headers (`OTEL_EXPORTER_OTLP_HEADERS`)
                // go as gRPC metadata, read by the exporter.
                let mut builder = opentelemetry_otlp::SpanExporter::builder().with_tonic();
                if let Some(endpoint) = &settings.endpoint {
                    if endpoint.starts_with("https://") {
                        use opentelemetry_otlp::tonic_types::transport::ClientTlsConfig;
                        builder = builder.with_tls_config(ClientTlsConfig::new().with_native_roots());
                    }
                    builder = builder.with_endpoint(endpoint.clone());
                }
                builder.build()
            }
        };
        let mut exporter = built.map_err(|e| TracingError(e.to_string()))?;
        let resource = resource();
        exporter.set_resource(&resource);
        let (tx, rx) = mpsc::channel(settings.queue_capacity.max(1));
        let provider = SdkTracerProvider::builder()
            .with_resource(resource)
            .with_span_processor(QueueProcessor { tx, metrics: metrics.clone() })
            .build();
        let scope = InstrumentationScope::builder("tollgate").with_version(env!("CARGO_PKG_VERSION")).build();
        let tracer = provider.tracer_with_scope(scope);
        let interval = settings.export_interval.max(Duration::from_millis(1));
        Ok((Tracing { tracer, provider }, Exporter { rx, exporter, metrics, interval }))
    }

    /// Starts the span of an admitted request (see the module header, step 1). Boxed: the
    /// recorder and the usage event carry an `Option` of it, which unboxed made every request
    /// ~300 bytes larger to move, traced or not.
    pub fn start_span(
        &self,
        client_headers: &http::HeaderMap,
        s: &SpanStart<'_>,
        start: SystemTime,
    ) -> Box<RequestSpan> {
        let parent = TraceContextPropagator::new().extract(&opentelemetry_http::HeaderExtractor(client_headers));
        let operation = operation_name(s.endpoint);
        let name = match s.model {
            Some(m) => format!("{operation} {m}"),
            None => operation.to_string(),
        };
        let mut attrs = Vec::with_capacity(16);
        attrs.push(KeyValue::new("gen_ai.operation.name", operation));
        attrs.push(KeyValue::new("gen_ai.provider.name", s.ptype.descriptor().genai_provider_name));
        if let Some(m) = s.model {
            attrs.push(KeyValue::new("gen_ai.request.model", m.to_string()));
        }
        if let Some(host) = s.server_address {
            attrs.push(KeyValue::new("server.address", host.to_string()));
        }
        if let Some(port) = s.server_port {
            attrs.push(KeyValue::new("server.port", i64::from(port)));
        }
        if let Some(c) = s.conversation_id {
            attrs.push(KeyValue::new("gen_ai.conversation.id", c.to_string()));
        }
        attrs.push(KeyValue::new("tollgate.provider.name", s.provider.to_string()));
        attrs.push(KeyValue::new("tollgate.provider.type", s.ptype.descriptor().id));
        attrs.push(KeyValue::new("tollgate.request_id", s.request_id.to_string()));
        attrs.push(KeyValue::new("tollgate.streamed", s.streamed));
        attrs.push(KeyValue::new("tollgate.token_id", s.token_id.to_string()));
        if let Some(u) = s.user {
            attrs.push(KeyValue::new("tollgate.user", u.to_string()));
        }
        if let Some(a) = s.agent {
            attrs.push(KeyValue::new("tollgate.agent", a.to_string()));
        }
        let span = self
            .tracer
            .span_builder(name)
            .with_kind(SpanKind::Client)
            .with_start_time(start)
            .with_attributes(attrs)
            .start_with_context(&self.tracer, &parent);
        Box::new(RequestSpan { span, start })
    }

    /// Ends nothing; exports what is queued and stops the provider (at shutdown, after the
    /// usage writer has drained and ended every span).
    pub fn shutdown(&self) {
        let _ = self.provider.shutdown();
    }
}

/// What [`Tracing::start_span`] needs to know about a request.
#[derive(Debug)]
pub struct SpanStart<'a> {
    pub provider: &'a str,
    pub ptype: ProviderType,
    pub endpoint: Endpoint,
    pub model: Option<&'a str>,
    pub streamed: bool,
    pub request_id: &'a str,
    pub token_id: &'a str,
    pub user: Option<&'a str>,
    pub agent: Option<&'a str>,
    pub conversation_id: Option<&'a str>,
    pub server_address: Option<&'a str>,
    pub server_port: Option<u16>,
}

/// The span of one proxied request, from admission to the priced usage event.
#[derive(Debug)]
pub struct RequestSpan {
    span: opentelemetry_sdk::trace::Span,
    start: SystemTime,
}

/// How the request ended, as the usage writer knows it after pricing.
#[derive(Debug)]
pub struct SpanEnd<'a> {
    pub status: RequestStatus,
    pub http_status: Option<i64>,
    pub error_class: Option<&'a str>,
    pub response_model: Option<&'a str>,
    pub usage: &'a Usage,
    pub cost: &'a Cost,
    pub catalog_version: Option<&'a str>,
    pub latency: Duration,
    pub ttft: Option<Duration>,
    pub unpriced: bool,
}

impl RequestSpan {
    /// The span's context (trace id, span id, flags), for the access log and propagation.
    pub fn context(&self) -> &SpanContext {
        self.span.span_context()
    }

    /// The trace id in W3C hex form when the span is valid.
    pub fn trace_id(&self) -> Option<String> {
        let sc = self.context();
        sc.is_valid().then(|| sc.trace_id().to_string())
    }

    /// Writes `traceparent` (and `tracestate` when there is one) for this span into the
    /// upstream request's headers, replacing the client's.
    ///
    /// What `TraceContextPropagator::inject_context` writes (version `00`, the span's trace and
    /// span ids, the sampled flag), written into a fixed buffer instead of through `format!`:
    /// this runs on every traced request, and the formatting machinery was most of its cost.
    pub fn inject(&self, headers: &mut http::HeaderMap) {
        inject_context(self.context(), headers);
    }
    /// Whether the span is recorded (sampled); an unsampled span costs nothing further.
    pub fn is_recording(&self) -> bool {
        self.span.is_recording()
    }

    /// What the span takes from the request body, only when it is recorded: the request
    /// parameters the conventions name (`gen_ai.request.max_tokens`, `temperature`, `top_p`)
    /// and, when the provider's `transcripts.record_input_messages` is on and the operation is
    /// a generation, `gen_ai.input.messages`.
    pub fn set_request_body(&mut self, body: &[u8], operation: &str, record_input_messages: bool) {
        if !self.span.is_recording() {
            return;
        }
        let p = tollgate_protocol::request_params(body);
        if let Some(v) = p.max_tokens {
            self.span.set_attribute(KeyValue::new("gen_ai.request.max_tokens", v));
        }
        if let Some(v) = p.temperature {
            self.span.set_attribute(KeyValue::new("gen_ai.request.temperature", v));
        }
        if let Some(v) = p.top_p {
            self.span.set_attribute(KeyValue::new("gen_ai.request.top_p", v));
        }
        let generation = matches!(operation, "chat" | "text_completion" | "generate_content");
        if record_input_messages
            && generation
            && let Some(m) = tollgate_protocol::input_messages(body)
        {
            self.set_input_messages(m);
        }
    }

    /// `gen_ai.input.messages`, already in the conventions' JSON parts format. Call only when
    /// the provider's `transcripts.record_input_messages` is on.
    pub fn set_input_messages(&mut self, json: String) {
        self.span.set_attribute(KeyValue::new("gen_ai.input.messages", json));
    }

    /// `gen_ai.response.id` and `gen_ai.response.finish_reasons` (a string array, one per
    /// generation), as the tap read them from the response ([`tollgate_protocol::Tap::record_outcome`]).
    pub fn set_response_outcome(&mut self, id: Option<&str>, finish_reasons: Vec<String>) {
        if let Some(id) = id {
            self.span.set_attribute(KeyValue::new("gen_ai.response.id", id.to_string()));
        }
        if !finish_reasons.is_empty() {
            let reasons: Vec<opentelemetry::StringValue> = finish_reasons.into_iter().map(Into::into).collect();
            self.span.set_attribute(KeyValue::new(
                "gen_ai.response.finish_reasons",
                opentelemetry::Value::Array(opentelemetry::Array::String(reasons)),
            ));
        }
    }

    /// `gen_ai.output.messages`, in the conventions' JSON parts format. Call only when the
    /// provider's `transcripts.record_output_messages` is on.
    pub fn set_output_messages(&mut self, json: String) {
        self.span.set_attribute(KeyValue::new("gen_ai.output.messages", json));
    }

    /// Ends a span whose request failed inside the gateway before it was sent (a credential or
    /// signing fault: the 500 of an internal `ProxyError`).
    pub fn end_internal(mut self, reason: &str, http_status: u16, elapsed: Duration) {
        self.span.set_attribute(KeyValue::new("error.type", reason.to_string()));
        self.span.set_attribute(KeyValue::new("http.response.status_code", i64::from(http_status)));
        self.span.set_status(Status::error(reason.to_string()));
        let end = self.start + elapsed;
        self.span.end_with_timestamp(end);
    }

    /// Sets the outcome, tokens and cost, and ends the span at the request's own end time.
    pub fn finish(mut self, e: &SpanEnd<'_>) {
        if !self.span.is_recording() {
            return;
        }
        let mut attrs = Vec::with_capacity(24);
        if let Some(m) = e.response_model {
            attrs.push(KeyValue::new("gen_ai.response.model", m.to_string()));
        }
        if let Some(s) = e.http_status {
            attrs.push(KeyValue::new("http.response.status_code", s));
        }
        let u = e.usage;
        // The conventions count every input token (cache reads and writes included) and every
        // output token (reasoning included).
        attrs.push(KeyValue::new("gen_ai.usage.input_tokens", u.prompt_tokens()));
        attrs.push(KeyValue::new("gen_ai.usage.output_tokens", u.output + u.reasoning));
        attrs.push(KeyValue::new("gen_ai.usage.cache_read.input_tokens", u.cached_input));
        attrs.push(KeyValue::new(
            "gen_ai.usage.cache_creation.input_tokens",
            u.cache_write_5m + u.cache_write_1h + u.cache_write_unknown,
        ));
        // Per bucket, only the buckets the request used (static keys: no allocation per span).
        for b in Bucket::ALL {
            let (tokens, cost) = (u.get(b), e.cost.get(b));
            if tokens != 0 || cost != 0 {
                let (tokens_key, cost_key) = bucket_keys(b);
                attrs.push(KeyValue::new(tokens_key, tokens));
                attrs.push(KeyValue::new(cost_key, cost));
            }
        }
        attrs.push(KeyValue::new("tollgate.cost.total_microcents", e.cost.total));
        attrs.push(KeyValue::new("tollgate.cost.unpriced", e.unpriced));
        if let Some(v) = e.catalog_version {
            attrs.push(KeyValue::new("tollgate.catalog_version", v.to_string()));
        }
        attrs.push(KeyValue::new("tollgate.status", e.status.as_str()));
        if let Some(t) = e.ttft {
            attrs.push(KeyValue::new("tollgate.time_to_first_token_ms", millis(t)));
        }
        attrs.push(KeyValue::new("tollgate.latency_ms", millis(e.latency)));
        // `error.type`: the HTTP status of an upstream error answer, else the gateway's error
        // class (`connect_error`, `read_timeout`, `client_cancelled`, …).
        let error = match e.status {
            RequestStatus::Success => None,
            s => Some(match (e.http_status.filter(|c| *c >= 400), e.error_class) {
                (Some(code), _) => code.to_string(),
                (None, Some(class)) => class.to_string(),
                (None, None) => s.as_str().to_string(),
            }),
        };
        if let Some(t) = &error {
            attrs.push(KeyValue::new("error.type", t.clone()));
        }
        self.span.set_attributes(attrs);
        if let Some(t) = error {
            self.span.set_status(Status::error(t));
        }
        let end = self.start + e.latency;
        self.span.end_with_timestamp(end);
    }
}

/// What the usage writer needs, besides the event, to finish a request's telemetry.
#[derive(Debug)]
pub struct Observed {
    /// `gen_ai.operation.name` of the request's endpoint ([`operation_name`]).
    pub operation: &'static str,
    /// The request's span (tracing on).
    pub span: Option<Box<RequestSpan>>,
    /// From arrival to the end of the response, as measured (the event keeps milliseconds).
    pub latency: Duration,
    /// From sending the upstream request to the end of its response.
    pub upstream: Option<Duration>,
}

impl Default for Observed {
    fn default() -> Observed {
        Observed { operation: "other", span: None, latency: Duration::ZERO, upstream: None }
    }
}

/// A request's telemetry once its usage event is priced (called by the usage writer, never on
/// the request path): the per-request metric series, the access-log line, and the span's end.
///
/// The access log is one `INFO` line on target `tollgate::access` per proxied request that
/// produced a usage event: request id, trace id, provider, model, user, agent, status, HTTP
/// status, latency, time to first token, tokens per bucket and cost in microcents. It is
/// written here because the cost is known only after pricing; it therefore follows the
/// request's end by at most one writer flush (`--usage-flush-interval-ms`). Never a body, a
/// header or a credential.
/// Sets `gen_ai.output.messages` on `span` from the response `captured` for the transcript
/// (present only when the provider records output), assembled like the request log shows it.
pub fn set_output_messages(
    span: &mut RequestSpan,
    event: &tollgate_store::UsageEvent,
    captured: &crate::transcript::Captured,
) {
    let Some(output) = captured.output.as_ref().filter(|b| !b.is_empty()) else { return };
    let family = event.provider_type.descriptor().wire_family;
    let endpoint = tollgate_protocol::inspect(family, "POST", &event.endpoint, None, b"{}").endpoint;
    let assembled =
        tollgate_protocol::assemble(family, endpoint, captured.response_content_type.as_deref(), &output.bytes);
    if let Some(json) = assembled.as_ref().and_then(tollgate_protocol::output_messages) {
        span.set_output_messages(json);
    }
}

/// `in_catalog`: the catalog priced the event's model (pricing looked it up already).
pub fn observe(
    metrics: &Metrics,
    in_catalog: bool,
    provider: Option<&crate::snapshot::ProviderEntry>,
    event: &tollgate_store::UsageEvent,
    response_model: Option<&str>,
    observed: Observed,
) {
    metrics.requests.observe(crate::metrics::Observation {
        key: crate::metrics::SeriesRef {
            provider: &event.provider,
            genai_provider: event.provider_type.descriptor().genai_provider_name,
            operation: observed.operation,
            model: metric_model(in_catalog, provider, event),
            status: event.status.as_str(),
        },
        duration_ms: u64::try_from(event.latency_ms).unwrap_or(0),
        // Time to first token is a streaming measure: a whole answer's first byte is its latency.
        ttft_ms: event.ttft_ms.filter(|_| event.streamed).and_then(|t| u64::try_from(t).ok()),
        upstream_ms: observed.upstream.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        usage: &event.usage,
        cost: &event.cost,
    });
    let trace_id = observed.span.as_deref().and_then(RequestSpan::trace_id);
    let u = &event.usage;
    tracing::info!(
        target: "tollgate::access",
        request_id = %event.id,
        trace_id = %trace_id.as_deref().unwrap_or(""),
        upstream_request_id = %event.request_id,
        provider = %event.provider,
        model = %event.model.as_deref().unwrap_or(""),
        user = %event.user.as_deref().unwrap_or(""),
        agent = %event.agent.as_deref().unwrap_or(""),
        status = %event.status.as_str(),
        http_status = event.http_status.unwrap_or(0),
        error_class = %event.error_class.as_deref().unwrap_or(""),
        streamed = event.streamed,
        latency_ms = event.latency_ms,
        ttft_ms = event.ttft_ms.unwrap_or(-1),
        input_tokens = u.input,
        output_tokens = u.output,
        reasoning_tokens = u.reasoning,
        cached_input_tokens = u.cached_input,
        cache_write_tokens = u.cache_write_5m + u.cache_write_1h + u.cache_write_unknown,
        cost_microcents = event.cost.total,
        unpriced = event.unpriced,
        "access"
    );
    if let Some(span) = observed.span {
        span.finish(&SpanEnd {
            status: event.status,
            http_status: event.http_status,
            error_class: event.error_class.as_deref(),
            response_model: response_model.or(event.model.as_deref()),
            usage: &event.usage,
            cost: &event.cost,
            catalog_version: event.catalog_version.as_deref(),
            latency: observed.latency,
            ttft: event.ttft_ms.and_then(|t| u64::try_from(t).ok()).map(Duration::from_millis),
            unpriced: event.unpriced,
        });
    }
}

/// The `gen_ai_request_model` label: the model when the catalog prices it for this type or the
/// provider's allow-list names it, else `other`; `none` without a model (the cardinality rule
/// in `metrics`).
fn metric_model<'e>(
    in_catalog: bool,
    provider: Option<&crate::snapshot::ProviderEntry>,
    event: &'e tollgate_store::UsageEvent,
) -> &'e str {
    let Some(model) = event.model.as_deref() else { return "none" };
    let allowed = provider.is_some_and(|p| p.spec.provider_models.iter().any(|m| m.name == model));
    if in_catalog || allowed { model } else { "other" }
}

/// [`RequestSpan::inject`] for a span context.
fn inject_context(sc: &SpanContext, headers: &mut http::HeaderMap) {
    const TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");
    const TRACESTATE: http::HeaderName = http::HeaderName::from_static("tracestate");
    if !sc.is_valid() {
        return;
    }
    let mut v = [0u8; 55];
    v[..3].copy_from_slice(b"00-");
    hex_into(&mut v[3..35], &sc.trace_id().to_bytes());
    v[35] = b'-';
    hex_into(&mut v[36..52], &sc.span_id().to_bytes());
    v[52] = b'-';
    hex_into(&mut v[53..55], &[(sc.trace_flags() & opentelemetry::trace::TraceFlags::SAMPLED).to_u8()]);
    if let Ok(value) = http::HeaderValue::from_bytes(&v) {
        headers.insert(TRACEPARENT, value);
    }
    let state = sc.trace_state().header();
    match http::HeaderValue::from_str(&state) {
        Ok(value) if !state.is_empty() => {
            headers.insert(TRACESTATE, value);
        }
        _ => {
            headers.remove(TRACESTATE);
        }
    }
}

/// Lowercase hex of `bytes` into `out` (twice as long).
fn hex_into(out: &mut [u8], bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX[usize::from(b >> 4)];
        pair[1] = HEX[usize::from(b & 0x0f)];
    }
}

/// The span attribute keys of a bucket's tokens and cost.
fn bucket_keys(b: Bucket) -> (&'static str, &'static str) {
    match b {
        Bucket::Input => ("tollgate.usage.input_tokens", "tollgate.cost.input_microcents"),
        Bucket::Output => ("tollgate.usage.output_tokens", "tollgate.cost.output_microcents"),
        Bucket::Reasoning => ("tollgate.usage.reasoning_tokens", "tollgate.cost.reasoning_microcents"),
        Bucket::CachedInput => ("tollgate.usage.cached_input_tokens", "tollgate.cost.cached_input_microcents"),
        Bucket::CacheWrite5m => ("tollgate.usage.cache_write_5m_tokens", "tollgate.cost.cache_write_5m_microcents"),
        Bucket::CacheWrite1h => ("tollgate.usage.cache_write_1h_tokens", "tollgate.cost.cache_write_1h_microcents"),
        Bucket::CacheWriteUnknown => {
            ("tollgate.usage.cache_write_unknown_tokens", "tollgate.cost.cache_write_unknown_microcents")
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// `gen_ai.operation.name` of an endpoint: the conventions' names where one fits
/// (`chat`, `text_completion`, `embeddings`, `generate_content`), ours otherwise.
pub fn operation_name(e: Endpoint) -> &'static str {
    match e {
        Endpoint::ChatCompletions
        | Endpoint::Responses
        | Endpoint::Messages
        | Endpoint::Invoke
        | Endpoint::InvokeStream
        | Endpoint::Converse
        | Endpoint::ConverseStream => "chat",
        Endpoint::Completions => "text_completion",
        Endpoint::Embeddings | Endpoint::EmbedContent => "embeddings",
        Endpoint::GenerateContent | Endpoint::StreamGenerateContent => "generate_content",
        Endpoint::CountTokens => "count_tokens",
        Endpoint::ListModels => "list_models",
        Endpoint::Other => "other",
    }
}

impl Exporter {
    /// Exports queued spans in batches until `shutdown` flips, then exports what is left.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut batch = Vec::with_capacity(MAX_EXPORT_BATCH);
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                n = self.rx.recv_many(&mut batch, MAX_EXPORT_BATCH) => {
                    if n == 0 {
                        break;
                    }
                    if batch.len() >= MAX_EXPORT_BATCH {
                        self.export(&mut batch).await;
                    }
                }
                _ = tick.tick() => self.export(&mut batch).await,
                _ = shutdown.changed() => break,
            }
        }
        self.rx.close();
        while self.rx.recv_many(&mut batch, MAX_EXPORT_BATCH).await > 0 {
            if batch.len() >= MAX_EXPORT_BATCH {
                self.export(&mut batch).await;
            }
        }
        self.export(&mut batch).await;
    }

    async fn export(&mut self, batch: &mut Vec<SpanData>) {
        if batch.is_empty() {
            return;
        }
        let spans = std::mem::take(batch);
        let n = spans.len() as u64;
        match tokio::time::timeout(EXPORT_TIMEOUT, self.exporter.export(spans)).await {
            Ok(Ok(())) => Metrics::add(&self.metrics.otel_spans_exported, n),
            Ok(Err(e)) => self.failed(n, &e.to_string()),
            Err(_) => self.failed(n, "timed out"),
        }
    }

    fn failed(&self, n: u64, why: &str) {
        Metrics::add(&self.metrics.otel_spans_dropped, n);
        let before = self.metrics.otel_export_failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // The first failure and then every hundredth: a dead collector must not flood the log.
        if before.is_multiple_of(100) {
            tracing::warn!(spans = n, failures = before + 1, "OTLP trace export failed: {why}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState};

    #[test]
    fn traceparent_is_what_the_propagator_writes() {
        let state = TraceState::from_key_value([("vendor", "v1"), ("other", "x")]).unwrap_or_else(|e| panic!("{e}"));
        for (flags, state) in [(TraceFlags::SAMPLED, state.clone()), (TraceFlags::default(), TraceState::default())] {
            let sc = SpanContext::new(
                TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap_or_else(|e| panic!("{e}")),
                SpanId::from_hex("b7ad6b7169203331").unwrap_or_else(|e| panic!("{e}")),
                flags,
                true,
                state,
            );
            let mut ours = http::HeaderMap::new();
            ours.insert("tracestate", http::HeaderValue::from_static("client=stale"));
            inject_context(&sc, &mut ours);
            let mut theirs = http::HeaderMap::new();
            let cx = Context::new().with_remote_span_context(sc.clone());
            TraceContextPropagator::new().inject_context(&cx, &mut opentelemetry_http::HeaderInjector(&mut theirs));
            assert_eq!(ours.get("traceparent"), theirs.get("traceparent"));
            let nonempty = |m: &http::HeaderMap| m.get("tracestate").filter(|v| !v.is_empty()).cloned();
            assert_eq!(nonempty(&ours), nonempty(&theirs));
        }
        let mut h = http::HeaderMap::new();
        inject_context(&SpanContext::empty_context(), &mut h);
        assert!(h.is_empty(), "an invalid context writes nothing");
    }
}
