//! The native proxy: `/llm/v1/providers/{name}/{*path}` forwards to the provider's base URL
//! + path + query, in the upstream's own wire format (DESIGN.md §3).
//!
//! Checks run in a fixed order, each refusal in the provider's native error JSON: gateway
//! token (401, or 400 when passthrough needs `X-Tollgate-Token`), provider (404), token scope
//! and enabled (403), body size (413), model allow-list (404, the native unknown-model error,
//! message `model_not_allowed: …`). Everything
//! is read from the in-memory snapshot; the request never awaits the database. A request that
//! reaches the upstream produces exactly one usage event (see [`body`]). Wire knowledge lives
//! in `tollgate-protocol`; this module only moves bytes and headers.
//!
//! Bedrock control-plane calls clients make on the proxy URL (`ListInferenceProfiles`,
//! `GetInferenceProfile`, `ListFoundationModels`) are served by [`control`], unmetered.
//!
//! Bedrock is signed instead: after the body is final (the `include_usage` edit of its
//! OpenAI-compatible path included), [`crate::aws`] signs exactly the bytes and headers sent
//! with SigV4. A bare foundation-model id of a model that only runs through an inference
//! profile is refused with Bedrock's own 400 `ValidationException` before any upstream call.

pub mod body;
pub mod client_auth;
mod control;
pub mod headers;

use crate::auth;
use crate::aws::{Outgoing, SecretLookup};
use crate::state::{AppState, ProviderEntry, Snapshot};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use body::{MeteredStream, Outcome, Recorder};
use bytes::Bytes;
use client_auth::TokenProblem;
use futures_util::StreamExt;
use http_body_util::BodyExt as _;
use hyper::body::Body as _;
use std::sync::Arc;
use std::time::Instant;
use tollgate_core::{Cost, ProviderSpec, ProviderType, RequestStatus, Usage};
use tollgate_protocol::errors::{GatewayErrorKind, render};
use tollgate_protocol::{Endpoint, RequestInfo, Tap, WireFamilyId};
use tollgate_store::{TokenRecord, UsageEvent};

const PREFIX: &str = "/llm/v1/providers/";
/// Conversation ids longer than this are cut (they are labels, not payloads).
const MAX_CONVERSATION_ID: usize = 200;
/// How much of an oversized request body is read and discarded before answering 413.
const MAX_DRAIN_BYTES: usize = 64 * 1024 * 1024;
/// Largest models-list body the gateway reads whole to filter it.
const MAX_MODEL_LIST_BYTES: usize = 16 * 1024 * 1024;

pub fn router(state: AppState) -> Router {
    Router::new()
        // The bare proxy URL (with or without its slash): only the HEAD probe is answered there.
        .route("/llm/v1/providers/{name}", any(handle))
        .route("/llm/v1/providers/{name}/", any(handle))
        .route("/llm/v1/providers/{name}/{*path}", any(handle))
        .with_state(state)
}

/// Why the gateway refused a request before contacting the upstream.
#[derive(Debug)]
struct Refusal {
    ptype: Option<ProviderType>,
    kind: GatewayErrorKind,
    message: String,
}

impl Refusal {
    fn new(ptype: Option<ProviderType>, kind: GatewayErrorKind, message: impl Into<String>) -> Refusal {
        Refusal { ptype, kind, message: message.into() }
    }

    fn respond(self, state: &AppState) -> Response {
        refuse(state, self.ptype, self.kind, &self.message)
    }
}

/// A refusal before the upstream was contacted: native error shape, counted, no usage event.
fn refuse(state: &AppState, ptype: Option<ProviderType>, kind: GatewayErrorKind, message: &str) -> Response {
    let m = state.metrics();
    let counter = match kind {
        GatewayErrorKind::Unauthenticated => &m.proxy_refused_unauthenticated,
        GatewayErrorKind::NotFound => &m.proxy_refused_not_found,
        GatewayErrorKind::PermissionDenied => &m.proxy_refused_permission,
        GatewayErrorKind::ModelNotAllowed => &m.proxy_refused_model,
        GatewayErrorKind::PayloadTooLarge => &m.proxy_refused_too_large,
        _ => &m.proxy_refused_bad_request,
    };
    crate::metrics::Metrics::inc(counter);
    native(ptype, kind, message)
}

fn native(ptype: Option<ProviderType>, kind: GatewayErrorKind, message: &str) -> Response {
    let e = render(ptype, kind, message);
    let mut resp = Response::new(Body::from(e.body));
    *resp.status_mut() = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in e.headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            resp.headers_mut().insert(name, v);
        }
    }
    resp
}

/// Splits `/llm/v1/providers/<name>/<rest>` into the name and `/<rest>` (raw, still encoded);
/// the bare `/llm/v1/providers/<name>` gives an empty rest.
fn split_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix(PREFIX)?;
    let (name, rest) = match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, ""),
    };
    (!name.is_empty()).then_some((name, rest))
}

/// `HEAD` on the bare proxy URL (`…/providers/<name>` or `…/providers/<name>/`), the probe
/// Claude Code sends before its first request: 200 with no body, for any name and with or
/// without a token, so it reveals nothing (not even whether the provider exists). No upstream
/// call, no usage event.
fn base_probe() -> Response {
    let mut resp = Response::new(Body::empty());
    resp.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    resp
}

/// The upstream URL: base + path + query. When the base already ends in `/v1` and the
/// client's path repeats it (`/v1/chat/completions` with base `https://api.openai.com/v1`),
/// the duplicate segment is dropped, so SDKs configured with or without `/v1` both work.
pub(crate) fn upstream_url(base: &str, path: &str, query: Option<&str>) -> String {
    let base = base.trim_end_matches('/');
    let path = match path.strip_prefix("/v1") {
        Some(rest) if base.ends_with("/v1") && (rest.is_empty() || rest.starts_with('/')) => rest,
        _ => path,
    };
    let mut url = String::with_capacity(base.len() + path.len() + query.map_or(0, str::len) + 1);
    url.push_str(base);
    url.push_str(path);
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        url.push('?');
        url.push_str(q);
    }
    url
}

/// Everything about the caller and the provider once the checks passed.
struct Admitted {
    token: Arc<TokenRecord>,
    entry: Arc<ProviderEntry>,
    ptype: ProviderType,
    family: WireFamilyId,
}

/// Steps 1–2 of DESIGN.md §3: gateway token, provider, scope, enabled.
fn admit(
    state: &AppState,
    snap: &Snapshot,
    name: &str,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Admitted, Refusal> {
    let entry = snap.providers.get(name).cloned();
    let ptype = entry.as_ref().and_then(|e| e.spec.provider_type);
    let passthrough = entry.as_ref().is_some_and(|e| e.spec.authorization_passthrough());
    let presented = match client_auth::presented_token(headers, query, passthrough) {
        Ok(t) => t,
        Err(TokenProblem::PassthroughNeedsHeader) => {
            return Err(Refusal::new(
                ptype,
                GatewayErrorKind::BadRequest,
                format!(
                    "provider \"{name}\" forwards your Authorization header to the upstream (authorization \
                     passthrough), so send the gateway token in the X-Tollgate-Token header"
                ),
            ));
        }
        Err(TokenProblem::Missing) => {
            return Err(Refusal::new(
                ptype,
                GatewayErrorKind::Unauthenticated,
                "missing gateway token: send it as `Authorization: Bearer`, `x-api-key`, `x-goog-api-key` or \
                 `X-Tollgate-Token`",
            ));
        }
    };
    let token = auth::lookup(state, presented, state.now_ms())
        .map_err(|e| Refusal::new(ptype, GatewayErrorKind::Unauthenticated, e.to_string()))?;
    let (Some(entry), Some(ptype)) = (entry, ptype) else {
        return Err(Refusal::new(None, GatewayErrorKind::NotFound, format!("no LLM provider named \"{name}\"")));
    };
    if !auth::in_scope(&token, name) {
        return Err(Refusal::new(
            Some(ptype),
            GatewayErrorKind::PermissionDenied,
            format!("this gateway token is not scoped to provider \"{name}\""),
        ));
    }
    if !entry.spec.is_enabled() {
        return Err(Refusal::new(
            Some(ptype),
            GatewayErrorKind::PermissionDenied,
            format!("provider \"{name}\" is disabled"),
        ));
    }
    Ok(Admitted { token, entry, ptype, family: ptype.wire_family() })
}

/// Reads the request body up to the configured cap. An oversized body is still read (and
/// discarded, up to [`MAX_DRAIN_BYTES`]) before the 413 goes out, so clients that write the
/// whole body before reading see the error instead of a reset connection.
async fn read_body(state: &AppState, ptype: ProviderType, headers: &HeaderMap, body: Body) -> Result<Bytes, Refusal> {
    let cap = state.settings().max_request_body_bytes;
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let mut over = declared.is_some_and(|n| n > cap as u64);
    let mut buf = bytes::BytesMut::with_capacity(if over { 0 } else { declared.unwrap_or(0).min(cap as u64) as usize });
    let mut drained: usize = 0;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            return Err(Refusal::new(Some(ptype), GatewayErrorKind::BadRequest, "request body: could not be read"));
        };
        if over {
            drained += chunk.len();
            if drained > MAX_DRAIN_BYTES {
                break;
            }
        } else if buf.len() + chunk.len() > cap {
            over = true;
            buf = bytes::BytesMut::new();
        } else {
            buf.extend_from_slice(&chunk);
        }
    }
    if over {
        return Err(Refusal::new(
            Some(ptype),
            GatewayErrorKind::PayloadTooLarge,
            format!("request body: larger than the gateway's limit of {cap} bytes"),
        ));
    }
    Ok(buf.freeze())
}

/// Injects the provider's stored upstream key (if it has one) into `headers`. The error is a
/// message for the client that names the secret, never its value.
pub(crate) async fn add_credential(
    state: &AppState,
    snap: &Snapshot,
    name: &str,
    spec: &ProviderSpec,
    ptype: ProviderType,
    headers: &mut HeaderMap,
) -> Result<(), String> {
    let Some(secret_name) = spec.api_key_ref() else {
        return Ok(());
    };
    let Some(secret) = state.credential(snap, secret_name).await else {
        tracing::warn!(provider = name, secret = %secret_name, "provider credential is missing");
        return Err(format!("provider \"{name}\" has no usable upstream credential (secret \"{secret_name}\")"));
    };
    headers::inject_credential(headers, ptype, &secret)
}

/// The client's `X-Tollgate-Conversation` label, trimmed and cut to [`MAX_CONVERSATION_ID`].
fn conversation_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-tollgate-conversation")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().chars().take(MAX_CONVERSATION_ID).collect::<String>())
        .filter(|v| !v.is_empty())
}

/// Step 3: the model allow-list.
fn check_model(a: &Admitted, name: &str, info: &RequestInfo) -> Result<(), Refusal> {
    let spec = &a.entry.spec;
    if spec.provider_models.is_empty() {
        return Ok(());
    }
    if let Some(problem) = &info.body_error {
        return Err(Refusal::new(Some(a.ptype), GatewayErrorKind::BadRequest, problem.clone()));
    }
    match &info.model {
        Some(model) if !spec.allows_model(model) => Err(Refusal::new(
            Some(a.ptype),
            GatewayErrorKind::ModelNotAllowed,
            format!("model \"{model}\" is not enabled on provider \"{name}\""),
        )),
        _ => Ok(()),
    }
}

/// Bedrock models that only run through an inference profile (Claude 4.6 and later), called
/// by their bare foundation-model id: refused the way Bedrock refuses them (400
/// `ValidationException`), naming the profile ids to use, without an upstream call.
fn check_profile_only(
    catalog: &tollgate_core::catalog::Catalog,
    ptype: ProviderType,
    info: &RequestInfo,
) -> Result<(), Refusal> {
    if ptype != ProviderType::Bedrock
        || !matches!(
            info.endpoint,
            Endpoint::Invoke | Endpoint::InvokeStream | Endpoint::Converse | Endpoint::ConverseStream
        )
    {
        return Ok(());
    }
    let Some(model) = info.model.as_deref().filter(|m| !tollgate_protocol::is_profile_or_arn(m)) else {
        return Ok(());
    };
    if !catalog.get(ProviderType::Bedrock, model).is_some_and(|m| m.requires_inference_profile) {
        return Ok(());
    }
    let profiles = catalog.inference_profiles_for(model);
    let hint = if profiles.is_empty() { format!("us.{model}") } else { profiles.join(", ") };
    Err(Refusal::new(
        Some(ptype),
        GatewayErrorKind::BadRequest,
        format!(
            "Invocation of model ID {model} with on-demand throughput isn’t supported. Retry your request with the ID \
             or ARN of an inference profile that contains this model: {hint}."
        ),
    ))
}

async fn handle(State(state): State<AppState>, req: Request) -> Response {
    let started = Instant::now();
    let ts_ms = state.now_ms();
    let (parts, body) = req.into_parts();
    let Some((name, path)) = split_path(parts.uri.path()) else {
        return refuse(&state, None, GatewayErrorKind::NotFound, "no such route");
    };
    if path.is_empty() || path == "/" {
        if parts.method == Method::HEAD {
            return base_probe();
        }
        return refuse(
            &state,
            None,
            GatewayErrorKind::NotFound,
            "no such route: send requests to the proxy URL followed by the upstream's own path",
        );
    }
    let query = parts.uri.query();
    let snap = state.snapshot();
    let a = match admit(&state, &snap, name, &parts.headers, query) {
        Ok(a) => a,
        Err(r) => return r.respond(&state),
    };
    // Bedrock control-plane calls made on the runtime URL (Claude Code lists inference
    // profiles): served from the control endpoint, filtered, not metered.
    if a.ptype == ProviderType::Bedrock
        && let Some(call) = tollgate_protocol::ControlCall::of(parts.method.as_str(), path)
    {
        return Box::pin(control::serve(&state, &snap, name, &a.entry.spec, call, path, query)).await;
    }
    let body = match read_body(&state, a.ptype, &parts.headers, body).await {
        Ok(b) => b,
        Err(r) => return r.respond(&state),
    };
    let info = tollgate_protocol::inspect(a.family, parts.method.as_str(), path, query, &body);
    if let Err(r) = check_model(&a, name, &info) {
        return r.respond(&state);
    }
    // The live catalog (embedded + the operator's overlay), so an overlay that marks a model
    // profile-only, or lists new profiles, takes effect without a restart.
    if a.ptype == ProviderType::Bedrock
        && let Err(r) = check_profile_only(&state.catalog(), a.ptype, &info)
    {
        return r.respond(&state);
    }

    // Step 5: the upstream request.
    let spec = &a.entry.spec;
    let passthrough = spec.authorization_passthrough();
    let mut headers = headers::upstream_request_headers(&parts.headers, passthrough);
    let bedrock = a.ptype == ProviderType::Bedrock;
    if bedrock {
        headers::strip_aws_signing(&mut headers);
        if let Some(cfg) = spec.bedrock_config.as_ref() {
            headers::bedrock_guardrail(&mut headers, &info, cfg);
        }
    } else if !passthrough && let Err(msg) = add_credential(&state, &snap, name, spec, a.ptype, &mut headers).await {
        return refuse(&state, Some(a.ptype), GatewayErrorKind::BadGateway, &msg);
    }
    let (body, injected) = tollgate_protocol::prepare_body(a.family, &info, body);
    let stripped_query = query.map(headers::strip_query_key);
    let url = upstream_url(&spec.upstream_base_url(), path, stripped_query.as_deref());
    let Ok(url) = reqwest::Url::parse(&url) else {
        return refuse(&state, Some(a.ptype), GatewayErrorKind::BadRequest, "the request path is not a valid URL path");
    };
    if bedrock {
        // Sign the final bytes: the URL as it will be sent, these headers, this body.
        // Boxed: credential loading (STS, metadata endpoints) makes this a large future, and
        // inlined it would grow the future of every request, Bedrock or not.
        let signed = Box::pin(state.aws().sign(
            &state,
            SecretLookup::Snapshot(&snap),
            spec,
            Outgoing { method: parts.method.as_str(), url: url.as_str(), body: &body },
            &mut headers,
        ))
        .await;
        if let Err(e) = signed {
            tracing::warn!(provider = name, error = %e, "cannot sign the Bedrock request");
            return refuse(&state, Some(a.ptype), GatewayErrorKind::BadGateway, &e.to_string());
        }
    }

    let event_id = uuid::Uuid::now_v7().to_string();
    let draft = state.settings().usage_recording.then(|| UsageEvent {
        id: event_id.clone(),
        ts_ms,
        provider: name.to_string(),
        provider_type: a.ptype,
        model: info.model.clone(),
        endpoint: path.to_string(),
        user: a.token.user.clone(),
        agent: a.token.agent.clone(),
        token_id: Some(a.token.id.clone()),
        status: RequestStatus::Success,
        http_status: None,
        error_class: None,
        streamed: info.stream,
        latency_ms: 0,
        ttft_ms: None,
        usage: Usage::default(),
        cost: Cost::default(),
        catalog_version: None,
        priced_by_override: false,
        unpriced: false,
        request_id: event_id.clone(),
        conversation_id: conversation_id(&parts.headers),
    });
    let mut recorder = Recorder::new(state.meter().clone(), state.metrics().clone(), draft, started, a.entry.clone());

    let method = parts.method.clone();
    let read_timeout = state.settings().upstream_read_timeout;
    let sent = match url.as_str().parse::<http::Uri>() {
        Ok(uri) => {
            let mut up = http::Request::new(crate::upstream::ProxyBody::new(body));
            *up.method_mut() = method.clone();
            *up.uri_mut() = uri;
            *up.headers_mut() = headers;
            match tokio::time::timeout(read_timeout, state.proxy_client().request(up)).await {
                Ok(Ok(r)) => Ok(r),
                Ok(Err(e)) => Err(SendError::Client(e)),
                Err(_) => Err(SendError::Timeout),
            }
        }
        Err(_) => Err(SendError::BadUrl),
    };
    let upstream = match sent {
        Ok(r) => r,
        Err(e) => {
            // A connect timeout is both: it is a connection failure (502), not a slow answer.
            // The message names the cause and the host (never the path, query or a credential).
            let host = crate::upstream::host_of(url.as_str());
            let (status, class, kind, msg) = match &e {
                SendError::Client(c) if c.is_connect() => (
                    RequestStatus::ConnectionError,
                    "connect_error",
                    GatewayErrorKind::BadGateway,
                    format!("could not be reached at {host}: {}", crate::upstream::failure_cause(c)),
                ),
                SendError::Timeout => (
                    RequestStatus::Timeout,
                    "read_timeout",
                    GatewayErrorKind::GatewayTimeout,
                    format!(
                        "at {host} did not answer in time (no response head within {} s)",
                        read_timeout.as_secs_f64()
                    ),
                ),
                SendError::Client(c) => (
                    RequestStatus::ConnectionError,
                    "upstream_error",
                    GatewayErrorKind::BadGateway,
                    format!("at {host} failed: {}", crate::upstream::failure_cause(c)),
                ),
                SendError::BadUrl => (
                    RequestStatus::ConnectionError,
                    "upstream_error",
                    GatewayErrorKind::BadGateway,
                    "failed: the upstream URL is not valid".to_string(),
                ),
            };
            tracing::warn!(provider = name, error = %e, "upstream request failed");
            let resp = native(Some(a.ptype), kind, &format!("the upstream of provider \"{name}\" {msg}"));
            recorder.emit(Outcome {
                status,
                http_status: Some(resp.status().as_u16()),
                error_class: Some(class),
                usage: None,
                ttft: None,
            });
            return resp;
        }
    };
    let status = upstream.status();
    if status.is_redirection() {
        let resp = native(
            Some(a.ptype),
            GatewayErrorKind::BadGateway,
            &format!(
                "the upstream of provider \"{name}\" answered with a redirect ({}), which the gateway does not follow",
                status.as_u16()
            ),
        );
        recorder.emit(Outcome {
            status: RequestStatus::UpstreamError,
            http_status: Some(resp.status().as_u16()),
            error_class: Some("upstream_redirect"),
            usage: None,
            ttft: None,
        });
        return resp;
    }
    if let Some(rid) = ["x-request-id", "request-id", "x-amzn-requestid"]
        .iter()
        .find_map(|h| upstream.headers().get(*h))
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 200)
    {
        recorder.set_request_id(rid);
    }

    let content_type = upstream.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
    let mut tap = Tap::new(a.family, &info, status.as_u16(), content_type.as_deref(), injected);
    if bedrock {
        for (k, v) in upstream.headers() {
            if let Ok(v) = v.to_str() {
                tap.observe_header(k.as_str(), v);
            }
        }
    }
    let filter_models = info.endpoint == Endpoint::ListModels
        && method == Method::GET
        && status.is_success()
        && !spec.provider_models.is_empty();
    let mut out_headers = headers::client_response_headers(upstream.headers(), injected || filter_models);
    if let Ok(v) = HeaderValue::from_str(&event_id) {
        out_headers.insert("x-tollgate-request-id", v);
    }

    if filter_models {
        return Box::pin(filtered_model_list(upstream, read_timeout, a.family, spec, recorder, out_headers, status))
            .await;
    }

    let expected_len = if injected { None } else { upstream.body().size_hint().exact() };
    let stream = MeteredStream::new(upstream.into_body(), read_timeout, tap, recorder, status.as_u16(), expected_len);
    let mut resp = Response::new(Body::from_stream(stream));
    *resp.status_mut() = status;
    *resp.headers_mut() = out_headers;
    resp
}

/// Why the upstream request produced no response head.
#[derive(Debug)]
enum SendError {
    /// The base URL + path did not make a valid URI.
    BadUrl,
    /// Connecting, sending or reading the head failed.
    Client(hyper_util::client::legacy::Error),
    /// No response head within the read timeout.
    Timeout,
}

impl std::fmt::Display for SendError {
    /// The error and its causes (`client error (Connect): tcp connect error: Connection
    /// refused`); never a URL or a header value.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::BadUrl => f.write_str("the upstream URL is not valid"),
            SendError::Timeout => f.write_str("no response head within the read timeout"),
            SendError::Client(e) => {
                write!(f, "{e}")?;
                let mut source = std::error::Error::source(e);
                while let Some(s) = source {
                    write!(f, ": {s}")?;
                    source = s.source();
                }
                Ok(())
            }
        }
    }
}

/// Discovery: a models list filtered to the provider's allow-list.
async fn filtered_model_list(
    upstream: http::Response<hyper::body::Incoming>,
    read_timeout: std::time::Duration,
    family: WireFamilyId,
    spec: &ProviderSpec,
    mut recorder: Recorder,
    headers: HeaderMap,
    status: StatusCode,
) -> Response {
    let ttft = recorder.started().elapsed();
    let mut bytes = Vec::new();
    let mut body = upstream.into_body();
    loop {
        let frame = match tokio::time::timeout(read_timeout, body.frame()).await {
            Ok(None) => break,
            Ok(Some(frame)) => frame.map(|f| f.into_data()).map_err(|_| ()),
            Err(_) => Err(()),
        };
        match frame {
            Ok(Ok(c)) if bytes.len() + c.len() <= MAX_MODEL_LIST_BYTES => bytes.extend_from_slice(&c),
            Ok(Err(_trailers)) => {}
            Ok(Ok(_)) | Err(()) => {
                recorder.emit(Outcome {
                    status: RequestStatus::ConnectionError,
                    http_status: Some(502),
                    error_class: Some("upstream_body_error"),
                    usage: None,
                    ttft: None,
                });
                return native(
                    spec.provider_type,
                    GatewayErrorKind::BadGateway,
                    "the upstream's model list could not be read",
                );
            }
        }
    }
    let allowed = |m: &str| spec.allows_model(m);
    let body = tollgate_protocol::filter_model_list(family, &bytes, &allowed).unwrap_or(bytes);
    recorder.emit(Outcome {
        status: RequestStatus::Success,
        http_status: Some(status.as_u16()),
        error_class: None,
        usage: None,
        ttft: Some(ttft),
    });
    let mut resp = (status, body).into_response();
    for (k, v) in &headers {
        resp.headers_mut().insert(k.clone(), v.clone());
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_name_and_raw_path() {
        assert_eq!(split_path("/llm/v1/providers/oa/chat/completions"), Some(("oa", "/chat/completions")));
        assert_eq!(
            split_path("/llm/v1/providers/g/v1beta/models/tunedModels%2Fx:generateContent"),
            Some(("g", "/v1beta/models/tunedModels%2Fx:generateContent"))
        );
        assert_eq!(split_path("/llm/v1/providers/oa"), Some(("oa", "")));
        assert_eq!(split_path("/llm/v1/providers/oa/"), Some(("oa", "/")));
        assert_eq!(split_path("/llm/v1/providers/"), None);
    }

    #[test]
    fn profile_only_bedrock_models_name_their_profiles() {
        let catalog = tollgate_core::catalog::Catalog::embedded().unwrap_or_else(|e| panic!("{e}"));
        let catalog = &catalog;
        let info = |path: &str| tollgate_protocol::inspect(WireFamilyId::Bedrock, "POST", path, None, b"{}");
        let refused =
            check_profile_only(catalog, ProviderType::Bedrock, &info("/model/anthropic.claude-sonnet-4-6/converse"));
        let Err(r) = refused else { panic!("a bare Sonnet 4.6 id is refused") };
        assert_eq!(r.kind, GatewayErrorKind::BadRequest);
        for p in
            ["us.anthropic.claude-sonnet-4-6", "eu.anthropic.claude-sonnet-4-6", "global.anthropic.claude-sonnet-4-6"]
        {
            assert!(r.message.contains(p), "{}", r.message);
        }
        for ok in [
            "/model/us.anthropic.claude-sonnet-4-6/converse",
            "/model/anthropic.claude-sonnet-4-5-20250929-v1:0/invoke",
            "/model/anthropic.claude-sonnet-4-6/count-tokens",
        ] {
            assert!(check_profile_only(catalog, ProviderType::Bedrock, &info(ok)).is_ok(), "{ok}");
        }
        assert!(
            check_profile_only(catalog, ProviderType::Anthropic, &info("/model/anthropic.claude-sonnet-4-6/converse"))
                .is_ok()
        );
    }

    #[test]
    fn joins_base_path_and_query() {
        assert_eq!(
            upstream_url("https://api.openai.com/v1", "/chat/completions", None),
            "https://api.openai.com/v1/chat/completions"
        );
        assert_eq!(upstream_url("https://api.openai.com/v1/", "/v1/models", None), "https://api.openai.com/v1/models");
        assert_eq!(
            upstream_url("https://api.anthropic.com", "/v1/messages", Some("beta=true")),
            "https://api.anthropic.com/v1/messages?beta=true"
        );
        assert_eq!(upstream_url("http://h/v1", "/v1beta/x", Some("")), "http://h/v1/v1beta/x");
    }
}
