//! Observability end to end: the OTLP/HTTP trace of every provider family (stream and not)
//! received by a real receiver (`testkit::otlp`), W3C context propagation both ways, the
//! per-request histograms on `/metrics` parsed with a Prometheus text-format parser, and the
//! log output of the real binary (no escape codes in a file, JSON lines that parse, the access
//! line and the request id).

use crate::both_backends;
use crate::proxy::{Rig, ptype, sdk_auth};
use crate::serve_binary::serve;
use crate::support::*;
use std::time::Duration;
use tollgate_server::telemetry::{OtlpProtocol, TracingSettings};
use tollgate_testkit::otlp::{OtlpReceiver, ReceivedSpan};

/// The client's trace: the gateway's span must be its child.
const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

fn traceparent() -> String {
    format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01")
}

async fn receiver() -> OtlpReceiver {
    OtlpReceiver::start().await.unwrap_or_else(|e| panic!("OTLP receiver: {e:#}"))
}

/// A gateway on `db` exporting traces to `rx` (export every 20 ms, so tests wait little).
async fn traced_gateway(db: TestDb, rx: &OtlpReceiver) -> TestGateway {
    traced_gateway_over(db, rx, OtlpProtocol::HttpProtobuf).await
}

/// [`traced_gateway`] over the given OTLP transport (the receiver takes both on one port).
async fn traced_gateway_over(db: TestDb, rx: &OtlpReceiver, protocol: OtlpProtocol) -> TestGateway {
    let endpoint = rx.base_url.clone();
    let gw = TestGateway::start_with(Some(db), move |s| {
        s.tracing = Some(TracingSettings {
            endpoint: Some(endpoint),
            protocol,
            export_interval: Duration::from_millis(20),
            ..TracingSettings::default()
        });
    })
    .await;
    gw.unwrap_or_else(|e| panic!("gateway did not start: {e:#}"))
}

/// How many exports arrived over gRPC (the receiver marks them).
fn grpc_exports(rx: &OtlpReceiver) -> usize {
    rx.request_headers().iter().filter(|h| h.get("x-otlp-transport").is_some_and(|v| v == "grpc")).count()
}

/// One call of a family: path, body, whether it streams, the operation and the model as the
/// span names them.
struct Call {
    path: &'static str,
    body: Value,
    stream: bool,
    operation: &'static str,
    model: &'static str,
}

fn calls(kind: &str) -> Vec<Call> {
    let chat = |stream: bool| {
        json!({"model": "gpt-4o", "stream": stream, "max_tokens": 64, "temperature": 0.5,
               "messages": [{"role": "user", "content": "hi"}]})
    };
    let call = |path, body, stream, operation, model| Call { path, body, stream, operation, model };
    match kind {
        "openai" => {
            let responses = |stream: bool| {
                json!({"model": "gpt-4o", "stream": stream, "max_output_tokens": 64, "temperature": 0.5,
                       "input": "hi"})
            };
            vec![
                call("/chat/completions", chat(false), false, "chat", "gpt-4o"),
                call("/chat/completions", chat(true), true, "chat", "gpt-4o"),
                call("/responses", responses(false), false, "chat", "gpt-4o"),
                call("/responses", responses(true), true, "chat", "gpt-4o"),
            ]
        }
        "openai_compatible" => vec![
            call("/chat/completions", chat(false), false, "chat", "gpt-4o"),
            call("/chat/completions", chat(true), true, "chat", "gpt-4o"),
        ],
        "azure_openai" => vec![
            // Azure names the deployment in the path: that is the requested model.
            call(
                "/openai/deployments/chat/chat/completions?api-version=2024-10-21",
                chat(false),
                false,
                "chat",
                "chat",
            ),
            call("/openai/deployments/chat/chat/completions?api-version=2024-10-21", chat(true), true, "chat", "chat"),
        ],
        "anthropic" => {
            let m = |stream: bool| {
                json!({"model": "claude-haiku-4-5", "max_tokens": 64, "temperature": 0.5, "stream": stream,
                       "messages": [{"role": "user", "content": "hi"}]})
            };
            vec![
                call("/v1/messages", m(false), false, "chat", "claude-haiku-4-5"),
                call("/v1/messages", m(true), true, "chat", "claude-haiku-4-5"),
            ]
        }
        "google" => {
            let g = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
                           "generationConfig": {"maxOutputTokens": 64, "temperature": 0.5}});
            vec![
                call(
                    "/v1beta/models/gemini-2.5-flash:generateContent",
                    g.clone(),
                    false,
                    "generate_content",
                    "gemini-2.5-flash",
                ),
                call(
                    "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
                    g,
                    true,
                    "generate_content",
                    "gemini-2.5-flash",
                ),
            ]
        }
        "bedrock" => {
            let b = json!({"messages": [{"role": "user", "content": [{"text": "hi"}]}],
                           "inferenceConfig": {"maxTokens": 64, "temperature": 0.5}});
            let model = "us.anthropic.claude-haiku-4-5-20251001-v1:0";
            vec![
                call("/model/us.anthropic.claude-haiku-4-5-20251001-v1%3A0/converse", b.clone(), false, "chat", model),
                call("/model/us.anthropic.claude-haiku-4-5-20251001-v1%3A0/converse-stream", b, true, "chat", model),
            ]
        }
        other => panic!("no calls for {other}"),
    }
}

/// Every family, streamed and not: one CLIENT span per request, child of the client's
/// `traceparent`, named `{operation} {model}`, with the GenAI and `tollgate.*` attributes, its
/// cost equal to the stored event's, no message bodies (transcript toggles off); the upstream
/// received a `traceparent` with the client's trace id and the gateway span's id.
async fn traces_every_family(db: TestDb) {
    let rx = receiver().await;
    let mut db = Some(db);
    let mut expected_spans = 0;
    // Half the families export over OTLP/HTTP, half over OTLP/gRPC: every assertion below holds
    // for both transports.
    for (kind, protocol) in [
        ("openai", OtlpProtocol::HttpProtobuf),
        ("anthropic", OtlpProtocol::Grpc),
        ("google", OtlpProtocol::HttpProtobuf),
        ("bedrock", OtlpProtocol::Grpc),
        ("azure_openai", OtlpProtocol::HttpProtobuf),
        ("openai_compatible", OtlpProtocol::Grpc),
    ] {
        let db = match db.take() {
            Some(d) => d,
            None => TestDb::sqlite().await,
        };
        let grpc_before = grpc_exports(&rx);
        let rig = Rig::on(traced_gateway_over(db, &rx, protocol).await, kind, json!({})).await;
        let calls = calls(kind);
        let mut ids = Vec::new();
        for c in &calls {
            let req = sdk_auth(rig.gw.client.post(rig.url(c.path)), kind, &rig.token)
                .header("traceparent", traceparent())
                .header("tracestate", "vendor=abc")
                .header("x-tollgate-conversation", "conv-1")
                .json(&c.body);
            let r = crate::proxy::send(req).await;
            assert_eq!(r.status, 200, "{kind} {}: {}", c.path, r.text());
            let header = |name: &str| r.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
            ids.push((header("x-tollgate-request-id"), header("x-amzn-requestid")));
        }
        let events = rig.events(calls.len()).await;
        expected_spans += calls.len();
        let spans = rx.wait_for(expected_spans, Duration::from_secs(10)).await.unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(
            grpc_exports(&rx) > grpc_before,
            protocol == OtlpProtocol::Grpc,
            "{kind}: the spans came over {protocol:?}"
        );
        let upstream = rig.up.requests();
        for (c, (id, amzn_request_id)) in calls.iter().zip(&ids) {
            let what = format!("{kind} {} stream={}", c.path, c.stream);
            let span: &ReceivedSpan = spans
                .iter()
                .find(|s| s.str("tollgate.request_id") == Some(id.as_str()))
                .unwrap_or_else(|| panic!("{what}: no span with request id {id}: {spans:#?}"));
            let event = events.iter().find(|e| &e.id == id).unwrap_or_else(|| panic!("{what}: no event {id}"));
            assert_eq!(span.kind, 3, "{what}: kind CLIENT");
            assert_eq!(span.name, format!("{} {}", c.operation, c.model), "{what}");
            assert_eq!(span.trace_id, CLIENT_TRACE, "{what}: the client's trace");
            assert_eq!(span.parent_span_id, CLIENT_SPAN, "{what}: a child of the client's span");
            assert_eq!(span.str("gen_ai.operation.name"), Some(c.operation), "{what}");
            assert_eq!(span.str("gen_ai.provider.name"), Some(ptype(kind).descriptor().genai_provider_name), "{what}");
            assert_eq!(span.str("gen_ai.request.model"), Some(c.model), "{what}");
            assert_eq!(span.str("tollgate.provider.name"), Some(rig.name.as_str()), "{what}");
            assert_eq!(span.attr("tollgate.streamed"), json!(c.stream), "{what}");
            assert_eq!(span.str("gen_ai.conversation.id"), Some("conv-1"), "{what}");
            assert_eq!(span.str("server.address"), Some("127.0.0.1"), "{what}");
            let port = rig.up.base_url.rsplit(':').next().and_then(|p| p.parse::<i64>().ok());
            assert_eq!(span.int("server.port"), port, "{what}");
            assert_eq!(span.int("http.response.status_code"), Some(200), "{what}");
            assert_eq!(span.int("gen_ai.request.max_tokens"), Some(64), "{what}");
            assert_eq!(span.attr("gen_ai.request.temperature"), json!(0.5), "{what}");
            assert!(span.str("tollgate.token_id").is_some_and(|t| !t.is_empty()), "{what}");
            // Tokens and cost as stored: the span ends after pricing.
            assert!(event.usage.prompt_tokens() > 0, "{what}: the fake reports usage");
            assert_eq!(span.int("gen_ai.usage.input_tokens"), Some(event.usage.prompt_tokens()), "{what}");
            assert_eq!(
                span.int("gen_ai.usage.output_tokens"),
                Some(event.usage.output + event.usage.reasoning),
                "{what}"
            );
            assert_eq!(span.int("gen_ai.usage.cache_read.input_tokens"), Some(event.usage.cached_input), "{what}");
            assert_eq!(span.int("tollgate.cost.total_microcents"), Some(event.cost.total), "{what}");
            assert_eq!(span.int("tollgate.cost.input_microcents"), Some(event.cost.input), "{what}");
            assert_eq!(span.int("tollgate.cost.output_microcents"), Some(event.cost.output), "{what}");
            assert_eq!(span.str("tollgate.catalog_version"), event.catalog_version.as_deref(), "{what}");
            assert!(!span.attributes.contains_key("error.type"), "{what}: a success has no error.type");
            // The response's own id and finish reasons, as the fake upstream sent them (Bedrock
            // has no id in its bodies: its `x-amzn-requestid` response header stands in).
            let (response_id, finish) = match kind {
                "openai" if c.path == "/responses" => ("resp_fake", "completed"),
                "openai" | "openai_compatible" | "azure_openai" => ("chatcmpl-fake", "stop"),
                "anthropic" => ("msg_fake", "end_turn"),
                "google" => ("fake-response-id", "STOP"),
                "bedrock" => (amzn_request_id.as_str(), "end_turn"),
                other => panic!("{other}"),
            };
            assert!(!response_id.is_empty(), "{what}: the fake sent an id");
            assert_eq!(span.str("gen_ai.response.id"), Some(response_id), "{what}");
            assert_eq!(span.attr("gen_ai.response.finish_reasons"), json!([finish]), "{what}");
            if c.stream {
                assert!(span.int("tollgate.time_to_first_token_ms").is_some(), "{what}: a stream has a TTFT");
            }
            // Transcript toggles are off: no message bodies on the span.
            assert!(!span.attributes.contains_key("gen_ai.input.messages"), "{what}");
            assert!(!span.attributes.contains_key("gen_ai.output.messages"), "{what}");
            assert!(span.end_unix_nano >= span.start_unix_nano, "{what}");
            assert_eq!(span.resource.get("service.name"), Some(&json!("tollgate")), "{what}");
            // The upstream saw the gateway's span as the parent, in the client's trace.
            let sent = format!("00-{CLIENT_TRACE}-{}-01", span.span_id);
            assert!(
                upstream.iter().any(|r| r.header("traceparent") == Some(sent.as_str())),
                "{what}: upstream traceparents {:?}, wanted {sent}",
                upstream.iter().map(|r| r.header("traceparent")).collect::<Vec<_>>()
            );
            assert!(upstream.iter().all(|r| r.header("tracestate") == Some("vendor=abc")), "{what}: tracestate kept");
        }
    }
}

/// Without a client `traceparent` the span is a root of a new trace, and the upstream still
/// gets one; an upstream error status becomes `error.type`; nothing is exported for a request
/// refused before the upstream.
async fn root_spans_errors_and_refusals(db: TestDb) {
    let rx = receiver().await;
    let rig = Rig::on(traced_gateway(db, &rx).await, "openai", json!({})).await;
    let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});
    let r = rig.post("/chat/completions", &body).await;
    assert_eq!(r.status, 200);
    rig.up.push(tollgate_testkit::upstream::Reply::json(
        429,
        &tollgate_testkit::upstream::openai::error("slow down", "rate_limit_exceeded", None),
    ));
    let r = rig.post("/chat/completions", &body).await;
    assert_eq!(r.status, 429);
    // Refused (bad token): no upstream call, no event, no span.
    let refused =
        crate::proxy::send(rig.gw.client.post(rig.url("/chat/completions")).bearer_auth("tg_not-a-token").json(&body))
            .await;
    assert_eq!(refused.status, 401);
    rig.events(2).await;
    let spans = rx.wait_for(2, Duration::from_secs(10)).await.unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(spans.len(), 2, "one span per forwarded request only");
    let up = rig.up.requests();
    for s in &spans {
        assert!(s.parent_span_id.is_empty(), "a root span: {s:#?}");
        assert_eq!(s.trace_id.len(), 32);
        let sent = format!("00-{}-{}-01", s.trace_id, s.span_id);
        assert!(up.iter().any(|r| r.header("traceparent") == Some(sent.as_str())), "upstream got {sent}");
    }
    let failed =
        spans.iter().find(|s| s.int("http.response.status_code") == Some(429)).unwrap_or_else(|| panic!("{spans:#?}"));
    assert_eq!(failed.str("error.type"), Some("429"));
    assert_eq!(failed.status_code, 2, "status Error");
    assert_eq!(failed.str("tollgate.status"), Some("upstream_error"));
}

/// Spans that cannot be exported are dropped and counted, and requests do not wait for the
/// exporter: with the receiver answering 503, requests succeed and the drop counter rises.
async fn failed_exports_are_counted_not_waited_for(db: TestDb) {
    // Over each transport: the receiver answers 503 (OTLP/HTTP) or UNAVAILABLE (OTLP/gRPC).
    let mut db = Some(db);
    for protocol in [OtlpProtocol::HttpProtobuf, OtlpProtocol::Grpc] {
        let db = match db.take() {
            Some(d) => d,
            None => TestDb::sqlite().await,
        };
        let rx = receiver().await;
        rx.fail_next(1000);
        let rig = Rig::on(traced_gateway_over(db, &rx, protocol).await, "openai", json!({})).await;
        let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});
        for _ in 0..3 {
            assert_eq!(rig.post("/chat/completions", &body).await.status, 200, "{protocol:?}");
        }
        rig.events(3).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let text = metrics_text(&rig.gw).await;
            let dropped = sample(&text, "tollgate_otel_spans_dropped_total", &[]);
            if dropped >= 3.0 {
                assert!(sample(&text, "tollgate_otel_export_failures_total", &[]) >= 1.0, "{protocol:?}");
                assert_eq!(sample(&text, "tollgate_otel_spans_exported_total", &[]), 0.0, "{protocol:?}");
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{protocol:?}: dropped spans not counted: {text}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(rx.spans().is_empty(), "{protocol:?}");
        assert!(!rx.request_headers().is_empty(), "{protocol:?}: the exports did reach the receiver");
    }
}

async fn metrics_text(gw: &TestGateway) -> String {
    let resp = gw.client.get(gw.url("/metrics")).send().await.unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap_or_else(|e| panic!("{e:#}"))
}

/// Parses the exposition with `prometheus-parse`.
fn scrape(text: &str) -> prometheus_parse::Scrape {
    let lines = text.lines().map(|l| Ok(l.to_string()));
    prometheus_parse::Scrape::parse(lines).unwrap_or_else(|e| panic!("not the Prometheus text format ({e}): {text}"))
}

/// The value of the first sample of `name` whose labels include `labels` (0 when none).
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let scraped = scrape(text);
    let found =
        scraped.samples.iter().find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)));
    match found.map(|s| &s.value) {
        Some(
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v),
        ) => *v,
        Some(other) => panic!("{name}: not a single value: {other:?}"),
        None => 0.0,
    }
}

/// `/metrics` after N requests, parsed by a Prometheus text-format parser: the duration
/// histogram's count is N for the series, TTFT counts the stream, tokens and cost counters
/// equal the stored events' sums, and a model outside the catalog and allow-list is `other`.
async fn metrics_histograms_count_every_request(db: TestDb) {
    let rig = Rig::new(db, "openai", json!({})).await;
    let chat = |model: &str, stream: bool| json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]});
    let n = 5;
    for i in 0..n {
        let r = rig.post("/chat/completions", &chat("gpt-4o", i == 0)).await;
        assert_eq!(r.status, 200);
    }
    assert_eq!(rig.post("/chat/completions", &chat("my-private-finetune-123", false)).await.status, 200);
    let events = rig.events(n + 1).await;
    let text = metrics_text(&rig.gw).await;
    let scraped = scrape(&text);
    let series = [("tollgate_provider", rig.name.as_str()), ("gen_ai_request_model", "gpt-4o"), ("status", "success")];
    let histogram = |name: &str, labels: &[(&str, &str)]| {
        scraped
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match &s.value {
                prometheus_parse::Value::Histogram(buckets) => buckets.clone(),
                other => panic!("{name} is not a histogram: {other:?}"),
            })
            .unwrap_or_else(|| panic!("no {name} {labels:?} in {text}"))
    };
    let count = |buckets: &[prometheus_parse::HistogramCount]| {
        buckets.iter().find(|b| b.less_than.is_infinite()).map_or(0.0, |b| b.count)
    };
    let duration = histogram("gen_ai_client_operation_duration_seconds", &series);
    assert_eq!(count(&duration), n as f64, "one observation per request: {duration:?}");
    assert_eq!(duration.len(), 17, "16 bounds from 10 ms to 10 min, plus +Inf");
    assert_eq!(duration.first().map(|b| b.less_than), Some(0.01));
    assert_eq!(duration.iter().rev().nth(1).map(|b| b.less_than), Some(600.0));
    assert_eq!(count(&histogram("tollgate_upstream_duration_seconds", &series)), n as f64);
    assert_eq!(count(&histogram("gen_ai_server_time_to_first_token_seconds", &series)), 1.0, "the one stream");
    let mut input = series.to_vec();
    input.push(("gen_ai_token_type", "input"));
    assert_eq!(count(&histogram("gen_ai_client_token_usage", &input)), n as f64);
    let known: Vec<_> = events.iter().filter(|e| e.model.as_deref() == Some("gpt-4o")).collect();
    let tokens: i64 = known.iter().map(|e| e.usage.input).sum();
    let mut with_bucket = series.to_vec();
    with_bucket.push(("bucket", "input"));
    assert_eq!(sample(&text, "tollgate_tokens_total", &with_bucket), tokens as f64);
    let cost: i64 = known.iter().map(|e| e.cost.input).sum();
    assert!(cost > 0);
    assert_eq!(sample(&text, "tollgate_cost_microcents_total", &with_bucket), cost as f64);
    // The unknown model folds into `other`; no label carries its name.
    let other = [("tollgate_provider", rig.name.as_str()), ("gen_ai_request_model", "other")];
    assert_eq!(count(&histogram("gen_ai_client_operation_duration_seconds", &other)), 1.0);
    assert!(!text.contains("my-private-finetune-123"), "an unbounded model name reached a label");
}

/// `gen_ai.input.messages` is on the span only for a provider whose
/// `transcripts.record_input_messages` is on, in the conventions' parts format; the other
/// provider's span has none.
async fn input_messages_only_with_the_toggle_on(db: TestDb) {
    let rx = receiver().await;
    let gw = traced_gateway(db, &rx).await;
    let on = Rig::on(gw, "anthropic", json!({"transcripts": {"record_input_messages": true}})).await;
    let body = json!({"model": "claude-haiku-4-5", "max_tokens": 10, "system": "be brief",
                      "messages": [{"role": "user", "content": "what is 2+2?"}]});
    assert_eq!(on.post("/v1/messages", &body).await.status, 200);
    let p = crate::proxy::provider_at("anthropic", "p-off", &on.up.provider_base_url(), json!({}));
    expect(admin(&on.gw, Method::POST, "/api/v1/llm-providers", Some(p)).await, 201);
    let off = crate::proxy::send(
        sdk_auth(on.gw.client.post(on.gw.url("/llm/v1/providers/p-off/v1/messages")), "anthropic", &on.token)
            .json(&body),
    )
    .await;
    assert_eq!(off.status, 200, "{}", off.text());
    // output only: the answer, assembled from the captured response
    let p = crate::proxy::provider_at(
        "anthropic",
        "p-out",
        &on.up.provider_base_url(),
        json!({"transcripts": {"record_output_messages": true}}),
    );
    expect(admin(&on.gw, Method::POST, "/api/v1/llm-providers", Some(p)).await, 201);
    let out = crate::proxy::send(
        sdk_auth(on.gw.client.post(on.gw.url("/llm/v1/providers/p-out/v1/messages")), "anthropic", &on.token)
            .json(&body),
    )
    .await;
    assert_eq!(out.status, 200, "{}", out.text());
    let answer: Value = serde_json::from_str(&out.text()).unwrap_or_default();
    let text = answer["content"][0]["text"].as_str().unwrap_or_default().to_string();
    assert!(!text.is_empty(), "{answer}");
    on.events(3).await;
    let spans = rx.wait_for(3, Duration::from_secs(10)).await.unwrap_or_else(|e| panic!("{e:#}"));
    let by = |p: &str| {
        spans.iter().find(|s| s.str("tollgate.provider.name") == Some(p)).unwrap_or_else(|| panic!("{p}: {spans:#?}"))
    };
    let messages: Value = serde_json::from_str(by(&on.name).str("gen_ai.input.messages").unwrap_or_default())
        .unwrap_or_else(|e| panic!("gen_ai.input.messages is not JSON: {e}"));
    assert_eq!(
        messages,
        json!([{"role": "system", "parts": [{"type": "text", "content": "be brief"}]},
               {"role": "user", "parts": [{"type": "text", "content": "what is 2+2?"}]}])
    );
    assert!(!by("p-off").attributes.contains_key("gen_ai.input.messages"), "toggle off: no messages");
    assert!(!by("p-off").attributes.contains_key("gen_ai.output.messages"), "toggle off: no messages");
    assert!(!by(&on.name).attributes.contains_key("gen_ai.output.messages"), "input only");
    let output: Value = serde_json::from_str(by("p-out").str("gen_ai.output.messages").unwrap_or_default())
        .unwrap_or_else(|e| panic!("gen_ai.output.messages is not JSON: {e}"));
    assert_eq!(output, json!([{"role": "assistant", "parts": [{"type": "text", "content": text}]}]));
    assert!(!by("p-out").attributes.contains_key("gen_ai.input.messages"), "output only");
}

both_backends!(
    traces_every_family,
    input_messages_only_with_the_toggle_on,
    root_spans_errors_and_refusals,
    failed_exports_are_counted_not_waited_for,
    metrics_histograms_count_every_request
);

/// Logs redirected to a file carry no terminal escape codes, and the access line and the
/// request id are there, without the gateway token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_logs_to_a_file_have_no_escape_codes() {
    let (stderr, token, request_id) = logged_run(&["--log-format", "text"]).await;
    assert!(!stderr.is_empty());
    assert!(!stderr.contains('\u{1b}'), "escape codes in a log file:\n{stderr}");
    let access = stderr.lines().find(|l| l.contains("tollgate::access")).unwrap_or_else(|| panic!("{stderr}"));
    for field in [
        "request_id=",
        "trace_id=",
        "provider=p-openai",
        "model=gpt-4o",
        "status=success",
        "latency_ms=",
        "cost_microcents=",
    ] {
        assert!(access.contains(field), "{field} missing from {access}");
    }
    assert!(access.contains(&request_id));
    assert!(!stderr.contains(&token), "the gateway token was logged");
}

/// `--log-format json`: every line is a JSON object; the access line has the fields, and the
/// request's other lines carry its request id (the `request` span's field).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_parse_line_by_line() {
    let (stderr, token, request_id) = logged_run(&["--log-format", "json"]).await;
    let lines: Vec<Value> =
        stderr.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();
    assert!(lines.len() > 3);
    let access = lines.iter().find(|l| l["target"] == "tollgate::access").unwrap_or_else(|| panic!("{stderr}"));
    let f = &access["fields"];
    assert_eq!(f["request_id"], json!(request_id));
    assert_eq!(f["provider"], "p-openai");
    assert_eq!(f["status"], "success");
    assert!(f["cost_microcents"].as_i64().is_some_and(|c| c > 0), "{access}");
    assert!(f["input_tokens"].as_i64().is_some_and(|t| t > 0), "{access}");
    // The connection layer's line for the request is inside the `request` span with the id.
    let in_request = lines.iter().any(|l| l["span"]["request_id"] == json!(request_id));
    assert!(in_request, "no log line carries the request id in its span:\n{stderr}");
    assert!(!stderr.contains(&token), "the gateway token was logged");
}

/// The real binary configured by the standard variables alone: `OTEL_EXPORTER_OTLP_ENDPOINT`
/// turns tracing on, `OTEL_EXPORTER_OTLP_HEADERS` reach the receiver, `OTEL_SERVICE_NAME`
/// names the resource, and the access line carries the span's trace id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_traces_with_the_standard_otel_variables() {
    binary_traces(None).await;
}

/// The same with `OTEL_EXPORTER_OTLP_PROTOCOL=grpc`: the endpoint is taken as given, the
/// headers travel as gRPC metadata, the span arrives over OTLP/gRPC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_traces_over_grpc_with_the_standard_otel_variables() {
    binary_traces(Some("grpc")).await;
}

/// One traced request through the real binary, exporting over the `protocol` the variables
/// name (`None`: the default, OTLP/HTTP).
async fn binary_traces(protocol: Option<&str>) {
    let rx = receiver().await;
    let service = format!("gateway-over-{}", protocol.unwrap_or("http"));
    let mut envs = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", rx.base_url.as_str()),
        ("OTEL_EXPORTER_OTLP_HEADERS", "x-collector-key=collector-secret-1"),
        ("OTEL_SERVICE_NAME", service.as_str()),
        ("OTEL_TRACES_SAMPLER", "always_on"),
    ];
    envs.extend(protocol.map(|p| ("OTEL_EXPORTER_OTLP_PROTOCOL", p)));
    let (stderr, _token, request_id) = logged_run_with(&["--log-format", "json"], &envs).await;
    // SIGTERM drains the usage writer, then the exporter: the span is there once it exited.
    let spans = rx.wait_for(1, Duration::from_secs(10)).await.unwrap_or_else(|e| panic!("{e:#}"));
    let span = spans.iter().find(|s| s.str("tollgate.request_id") == Some(request_id.as_str()));
    let span = span.unwrap_or_else(|| panic!("no span for {request_id}: {spans:#?}\n{stderr}"));
    assert_eq!(span.resource.get("service.name"), Some(&json!(service)));
    assert_eq!(span.name, "chat gpt-4o");
    assert_eq!(span.str("tollgate.user"), Some("alice@example.com"));
    let headers = rx.request_headers();
    assert!(!headers.is_empty());
    let grpc = protocol == Some("grpc");
    assert!(headers.iter().all(|h| h.contains_key("x-otlp-transport") == grpc), "{headers:?}");
    assert!(headers.iter().all(|h| h.get("x-collector-key").is_some_and(|v| v == "collector-secret-1")));
    let content_type = if grpc { "application/grpc" } else { "application/x-protobuf" };
    assert!(headers.iter().all(|h| h.get("content-type").is_some_and(|v| v == content_type)));
    let access = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["target"] == "tollgate::access")
        .unwrap_or_else(|| panic!("{stderr}"));
    assert_eq!(access["fields"]["trace_id"], json!(span.trace_id), "the access line names the trace");
    assert!(!stderr.contains("collector-secret-1"), "an exporter header was logged");
}

/// Runs the real binary with stderr piped (a file, not a terminal), proxies one request, stops
/// it, and returns stderr, the gateway token used and the request id.
async fn logged_run(args: &[&str]) -> (String, String, String) {
    logged_run_with(args, &[]).await
}

/// [`logged_run`] with extra environment variables.
async fn logged_run_with(args: &[&str], envs: &[(&str, &str)]) -> (String, String, String) {
    use tollgate_testkit::upstream::FakeUpstream;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let up = FakeUpstream::start(tollgate_core::ProviderType::Openai, Some(crate::proxy::UPSTREAM_KEY))
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let mut all = vec!["--log", "info"];
    all.extend_from_slice(args);
    let mut env = vec![("NO_COLOR", "")];
    env.extend_from_slice(envs);
    let served = serve(dir.path(), &all, &env);
    let admin_token = std::fs::read_to_string(dir.path().join("admin.token")).unwrap_or_default().trim().to_string();
    let client = reqwest::Client::new();
    let api = |m: Method, p: &str| client.request(m, format!("{}{p}", served.base_url)).bearer_auth(&admin_token);
    async fn ok(r: reqwest::Result<reqwest::Response>) -> reqwest::Response {
        let r = r.unwrap_or_else(|e| panic!("{e:#}"));
        if !r.status().is_success() {
            panic!("{} {}", r.status(), r.text().await.unwrap_or_default());
        }
        r
    }
    ok(api(Method::PUT, "/api/v1/secrets/OPENAI_API_KEY")
        .json(&json!({"value": crate::proxy::UPSTREAM_KEY}))
        .send()
        .await)
    .await;
    let provider = crate::proxy::provider_at("openai", "p-openai", &up.provider_base_url(), json!({}));
    ok(api(Method::POST, "/api/v1/llm-providers").json(&provider).send().await).await;
    let t: Value = ok(api(Method::POST, "/api/v1/tokens")
        .json(&json!({"name": "app", "role": "invoker", "user": "alice@example.com"}))
        .send()
        .await)
    .await
    .json()
    .await
    .unwrap_or_default();
    let token = t["token"].as_str().unwrap_or_default().to_string();
    assert!(!token.is_empty(), "{t}");
    let r = ok(client
        .post(format!("{}/llm/v1/providers/p-openai/chat/completions", served.base_url))
        .bearer_auth(&token)
        .json(&json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await)
    .await;
    let request_id =
        r.headers().get("x-tollgate-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let _ = r.bytes().await;
    let (_out, err) = served.terminate();
    (err, token, request_id)
}

/// Every metric the Grafana dashboard (`deploy/grafana-dashboard.json`) queries is one the
/// gateway exports, and every panel's label filters name labels those metrics have.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_queries_metrics_that_exist() {
    let rig = Rig::new(TestDb::sqlite().await, "openai", json!({})).await;
    let body = json!({"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(rig.post("/chat/completions", &body).await.status, 200);
    rig.events(1).await;
    let text = metrics_text(&rig.gw).await;
    let scraped = scrape(&text);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/grafana-dashboard.json");
    let dash: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}")))
        .unwrap_or_else(|e| panic!("the dashboard is not JSON: {e}"));
    let mut exprs: Vec<String> = Vec::new();
    for p in dash["panels"].as_array().into_iter().flatten() {
        for t in p["targets"].as_array().into_iter().flatten() {
            exprs.push(t["expr"].as_str().unwrap_or_default().to_string());
        }
    }
    assert!(exprs.len() >= 15, "{exprs:?}");
    let labels_of = |metric: &str| -> std::collections::BTreeSet<String> {
        scraped
            .samples
            .iter()
            .filter(|s| s.metric == metric)
            .flat_map(|s| s.labels.keys().cloned().collect::<Vec<_>>())
            .collect()
    };
    for e in &exprs {
        // Metric names: identifiers with our prefixes outside label selectors and `by (…)`.
        let mut bare = String::new();
        let mut depth = 0;
        for c in e.chars() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                _ if depth == 0 => bare.push(c),
                _ => {}
            }
        }
        let mut parts = bare.split(" by (");
        let mut kept = parts.next().unwrap_or_default().to_string();
        for part in parts {
            kept.push(' ');
            kept.push_str(part.split_once(')').map_or(part, |(_, rest)| rest));
        }
        let bare = kept;
        let names: Vec<&str> = bare
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| {
                w.starts_with("tollgate_") || w.starts_with("gen_ai_client_") || w.starts_with("gen_ai_server_")
            })
            .collect();
        assert!(!names.is_empty(), "no metric in {e}");
        for n in names {
            let base = n.trim_end_matches("_bucket").trim_end_matches("_count").trim_end_matches("_sum");
            assert!(
                scraped.samples.iter().any(|s| s.metric == base || s.metric == n),
                "the dashboard queries {n}, which /metrics does not export ({e})"
            );
            if e.contains(&format!("{n}{{tollgate_provider")) {
                let have = labels_of(base);
                for l in ["tollgate_provider", "gen_ai_request_model", "status"] {
                    assert!(have.contains(l), "{base} has no label {l}: {have:?}");
                }
            }
        }
    }
}
