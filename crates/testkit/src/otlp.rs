//! A real OTLP/HTTP trace receiver ([`OtlpReceiver`]): an HTTP server on 127.0.0.1 that accepts
//! `POST /v1/traces` with an `application/x-protobuf` `ExportTraceServiceRequest`, decodes it
//! with the `opentelemetry-proto` types (prost), keeps every span and answers with an empty
//! `ExportTraceServiceResponse`, as a collector does. Tests read the spans flattened
//! ([`ReceivedSpan`]: ids in hex, attributes as JSON values) and wait for them with
//! [`OtlpReceiver::wait_for`] (woken by each export, bounded by a deadline).
//!
//! The same port also serves OTLP/gRPC (`TraceService/Export`, tonic's generated server over
//! HTTP/2 with prior knowledge), so one receiver takes either transport; gRPC exports are told
//! apart by the `x-otlp-transport: grpc` entry added to their recorded headers.
//!
//! [`OtlpReceiver::fail_next`] makes the next exports answer 503 (gRPC: `UNAVAILABLE`), to test
//! dropped-span counting.

use anyhow::{Context, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message as _;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// One span as received, flattened.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    pub name: String,
    /// `SpanKind` as its protobuf number (3 is CLIENT).
    pub kind: i32,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    /// W3C flags (bit 0: sampled; bits 8-9: parent remote known / is remote).
    pub flags: u32,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    pub attributes: BTreeMap<String, Value>,
    /// Attributes of the resource that sent it (`service.name`, …).
    pub resource: BTreeMap<String, Value>,
    /// Status code (0 unset, 1 ok, 2 error).
    pub status_code: i32,
}

impl ReceivedSpan {
    /// An attribute's value, `Value::Null` when absent.
    pub fn attr(&self, key: &str) -> Value {
        self.attributes.get(key).cloned().unwrap_or(Value::Null)
    }

    /// An integer attribute.
    pub fn int(&self, key: &str) -> Option<i64> {
        self.attributes.get(key).and_then(Value::as_i64)
    }

    /// A string attribute.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).and_then(Value::as_str)
    }
}

#[derive(Debug, Default)]
struct Shared {
    spans: Mutex<Vec<ReceivedSpan>>,
    /// Every request's headers (e.g. `OTEL_EXPORTER_OTLP_HEADERS`).
    headers: Mutex<Vec<HeaderMap>>,
    arrived: Notify,
    fail: AtomicUsize,
}

/// The receiver; stopped on drop.
#[derive(Debug)]
pub struct OtlpReceiver {
    /// `http://127.0.0.1:<port>`: what `OTEL_EXPORTER_OTLP_ENDPOINT` / `--otlp-endpoint` take.
    pub base_url: String,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn value(v: &AnyValue) -> Value {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => json!(s),
        Some(any_value::Value::BoolValue(b)) => json!(b),
        Some(any_value::Value::IntValue(i)) => json!(i),
        Some(any_value::Value::DoubleValue(d)) => json!(d),
        Some(any_value::Value::ArrayValue(a)) => Value::Array(a.values.iter().map(value).collect()),
        Some(any_value::Value::KvlistValue(kv)) => Value::Object(
            kv.values.iter().map(|k| (k.key.clone(), k.value.as_ref().map_or(Value::Null, value))).collect(),
        ),
        Some(any_value::Value::BytesValue(b)) => json!(b),
        Some(any_value::Value::StringValueStrindex(i)) => json!(format!("strindex:{i}")),
        None => Value::Null,
    }
}

fn attributes(kvs: &[KeyValue]) -> BTreeMap<String, Value> {
    kvs.iter().map(|kv| (kv.key.clone(), kv.value.as_ref().map_or(Value::Null, value))).collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

async fn traces(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    if !shared.admit(headers) {
        return (StatusCode::SERVICE_UNAVAILABLE, "try later").into_response();
    }
    let req = match ExportTraceServiceRequest::decode(body) {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("not an ExportTraceServiceRequest: {e}")).into_response(),
    };
    shared.keep(&req);
    let mut resp = ExportTraceServiceResponse::default().encode_to_vec().into_response();
    resp.headers_mut()
        .insert(axum::http::header::CONTENT_TYPE, axum::http::HeaderValue::from_static("application/x-protobuf"));
    resp
}

/// The OTLP/gRPC side: `opentelemetry.proto.collector.trace.v1.TraceService/Export`, served by
/// tonic's generated server on the same port (HTTP/2 with prior knowledge, as OTLP/gRPC
/// clients speak to a plaintext endpoint). The request's metadata is kept as its headers.
struct Grpc(Arc<Shared>);

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let (metadata, _, req) = request.into_parts();
        let mut headers = metadata.into_headers();
        headers.insert("x-otlp-transport", axum::http::HeaderValue::from_static("grpc"));
        if !self.0.admit(headers) {
            return Err(tonic::Status::unavailable("try later"));
        }
        self.0.keep(&req);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Shared {
    /// Records an export's headers; false when it is to be failed ([`OtlpReceiver::fail_next`]).
    fn admit(&self, headers: HeaderMap) -> bool {
        if let Ok(mut h) = self.headers.lock() {
            h.push(headers);
        }
        if self.fail.load(Ordering::Acquire) > 0 {
            self.fail.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Keeps an export's spans, flattened, and wakes the waiters.
    fn keep(&self, req: &ExportTraceServiceRequest) {
        let got = flatten(req);
        if let Ok(mut spans) = self.spans.lock() {
            spans.extend(got);
        }
        self.arrived.notify_waiters();
    }
}

fn flatten(req: &ExportTraceServiceRequest) -> Vec<ReceivedSpan> {
    let mut got = Vec::new();
    for rs in &req.resource_spans {
        let resource = rs.resource.as_ref().map(|r| attributes(&r.attributes)).unwrap_or_default();
        for ss in &rs.scope_spans {
            for s in &ss.spans {
                got.push(ReceivedSpan {
                    name: s.name.clone(),
                    kind: s.kind,
                    trace_id: hex(&s.trace_id),
                    span_id: hex(&s.span_id),
                    parent_span_id: hex(&s.parent_span_id),
                    flags: s.flags,
                    start_unix_nano: s.start_time_unix_nano,
                    end_unix_nano: s.end_time_unix_nano,
                    attributes: attributes(&s.attributes),
                    resource: resource.clone(),
                    status_code: s.status.as_ref().map_or(0, |st| st.code),
                });
            }
        }
    }
    got
}

impl OtlpReceiver {
    /// Starts a receiver on a free port, on its own thread and runtime.
    pub async fn start() -> anyhow::Result<OtlpReceiver> {
        let shared = Arc::new(Shared::default());
        let grpc = tonic::service::Routes::new(TraceServiceServer::new(Grpc(Arc::clone(&shared)))).into_axum_router();
        let app = Router::new().route("/v1/traces", post(traces)).with_state(Arc::clone(&shared)).merge(grpc);
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<anyhow::Result<std::net::SocketAddr>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new().name("otlp-receiver".into()).spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.into()));
                    return;
                }
            };
            rt.block_on(async move {
                let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.into()));
                        return;
                    }
                };
                let _ = ready_tx.send(listener.local_addr().map_err(Into::into));
                tokio::select! {
                    _ = axum::serve(listener, app) => {}
                    _ = stop_rx => {}
                }
            });
        })?;
        let addr = ready_rx.await.context("OTLP receiver thread died")??;
        Ok(OtlpReceiver { base_url: format!("http://{addr}"), shared, shutdown: Some(stop_tx), thread: Some(thread) })
    }

    /// Every span received so far, in arrival order.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.shared.spans.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The headers of every export request received so far.
    pub fn request_headers(&self) -> Vec<HeaderMap> {
        self.shared.headers.lock().map(|h| h.clone()).unwrap_or_default()
    }

    /// Answers the next `n` exports with 503 (their spans are not kept).
    pub fn fail_next(&self, n: usize) {
        self.shared.fail.store(n, Ordering::Release);
    }

    /// Waits until at least `n` spans have arrived (woken by each export; an error after
    /// `within`), and returns them all.
    pub async fn wait_for(&self, n: usize, within: Duration) -> anyhow::Result<Vec<ReceivedSpan>> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let arrived = self.shared.arrived.notified();
            let spans = self.spans();
            if spans.len() >= n {
                return Ok(spans);
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                bail!("{} span(s) received within {within:?}, expected {n}: {spans:#?}", spans.len());
            }
        }
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
