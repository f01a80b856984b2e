//! The native proxy: `/llm/v1/providers/{name}/{*path}` forwards to the provider's base URL
//! plus path and query, in the upstream's own wire format (ARCHITECTURE.md, Decisions: The
//! proxy path). Wire knowledge lives in `tollgate-protocol`; this module only moves bytes and
//! headers.
//!
//! [`handle`] runs four stages, each its own module:
//! 1. [`admit`] — gateway token, provider, scope and enabled, body size, model allow-list:
//!    whether the gateway serves the request at all; then [`limit`] — budgets and rate limits
//!    (reservations held in memory, settled by the recorder);
//! 2. [`prepare`] — the exact upstream request: headers, credential, body edit, URL, SigV4;
//! 3. [`forward`] — the [`Recorder`](body::Recorder) (from here exactly one usage event), the
//!    send, the response head;
//! 4. [`respond`] — the client's response: the upstream's head and the metered body
//!    ([`body`]), or the filtered models list.
//!
//! Every error the proxy answers itself is one [`ProxyError`](error::ProxyError), classified
//! by source (downstream, upstream, internal) in one table ([`error`]) that owns its HTTP
//! status, native rendering, metric label and usage status; `ProxyError::respond` is the one
//! place it becomes a response. Everything is read from the in-memory snapshot; the request
//! never awaits the database.
//!
//! Bedrock control-plane calls clients make on the proxy URL (`ListInferenceProfiles`,
//! `GetInferenceProfile`, `ListFoundationModels`) are served by [`control`] after admission,
//! unmetered.

mod admit;
pub mod body;
pub mod capture;
pub mod client_auth;
mod control;
pub mod error;
mod forward;
pub mod headers;
mod limit;
mod prepare;
mod respond;

pub(crate) use prepare::{add_credential, upstream_url};

use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::response::Response;
use error::{Fault, ProxyError};
use std::time::Instant;
use tollgate_core::ProviderType;

const PREFIX: &str = "/llm/v1/providers/";

/// The proxy as a service: the connection layer (`conn::App`) sends every request whose path
/// [`is_proxy_path`] here, not through the router (axum's path matching and its two layers of
/// wrapped futures were ~6,000 instructions per request under callgrind). Every method, on
/// `/llm/v1/providers/<name>` and below.
pub(crate) fn service(
    state: AppState,
) -> impl tower::Service<
    Request,
    Response = Response,
    Error = std::convert::Infallible,
    Future = impl Future<Output = Result<Response, std::convert::Infallible>> + Send + 'static,
> + Clone
+ Send
+ Sync
+ 'static {
    tower::service_fn(move |req: Request| {
        let state = state.clone();
        // Boxed where it is made: the handler's future (~7 KB) is then moved once, into its
        // box, instead of by value through each layer that wraps it (the trace layer, the
        // response map, the type-erasing box): ~5 copies of it per request (callgrind).
        Box::pin(async move { Ok(handle(State(state), req).await) })
    })
}

/// Whether `path` is the proxy's: `/llm/v1/providers/<name>` and below (a non-empty name).
pub(crate) fn is_proxy_path(path: &str) -> bool {
    split_path(path).is_some()
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

/// A UUIDv7 carrying `ts_ms` (epoch ms) and random bits.
fn request_id(ts_ms: i64) -> String {
    let ms = u64::try_from(ts_ms).unwrap_or(0);
    let ts = uuid::Timestamp::from_unix(uuid::NoContext, ms / 1000, ((ms % 1000) * 1_000_000) as u32);
    uuid::Uuid::new_v7(ts).to_string()
}

async fn handle(State(state): State<AppState>, req: Request) -> Response {
    let arrived = (Instant::now(), state.now_ms());
    // The request's id: in every log line of the request (a field of the connection layer's
    // `request` span), the usage event's id, `x-tollgate-request-id` and the span attribute.
    // A UUIDv7 of the arrival time the event records: the usage store finds an event by the
    // time its id carries (tollgate_store's segments.rs).
    let request_id = request_id(arrived.1);
    tracing::Span::current().record("request_id", request_id.as_str());
    let (parts, body) = req.into_parts();
    let metrics = state.metrics();
    let Some((name, path)) = split_path(parts.uri.path()) else {
        return ProxyError::new(Fault::NotFound, None, "no such route").respond(metrics, None);
    };
    if path.is_empty() || path == "/" {
        if parts.method == Method::HEAD {
            return base_probe();
        }
        let e = ProxyError::new(
            Fault::NotFound,
            None,
            "no such route: send requests to the proxy URL followed by the upstream's own path",
        );
        return e.respond(metrics, None);
    }
    let snap = state.snapshot();

    // 1. Admit.
    let a = match admit::caller(&state, &snap, name, &parts.headers, parts.uri.query(), arrived.1) {
        Ok(a) => a,
        Err(e) => return e.respond(metrics, None),
    };
    if let Err(e) =
        admit::check_loop(&state, a.ptype, name, &parts.headers).and_then(|()| admit::check_path(a.ptype, path))
    {
        return e.respond(metrics, None);
    }
    // Bedrock control-plane calls made on the runtime URL (Claude Code lists inference
    // profiles): served from the control endpoint, filtered, not metered.
    if a.ptype == ProviderType::Bedrock
        && let Some(call) = tollgate_protocol::ControlCall::of(parts.method.as_str(), path)
    {
        return Box::pin(control::serve(&state, &snap, name, &a.entry.spec, call, path, parts.uri.query())).await;
    }
    let mut inbound = match admit::request(&state, &a, name, &parts, path, body).await {
        Ok(r) => r,
        Err(e) => return e.respond(metrics, None),
    };

    // 1b. Budgets and rate limits: reserve (settled by the recorder, released if dropped).
    let limit::Admission { charge, headers: extra } = match limit::check(&state, &snap, &a, name, &inbound).await {
        Ok(x) => x,
        Err(refusal) => return refusal.respond(metrics),
    };
    // Transcript capture (a reference to the client's body, before the include_usage edit),
    // when the provider as admitted records bodies.
    let capture = capture::begin(&a.entry, &parts.headers, &inbound.body, state.settings().transcript_max_bytes);
    // The trace span (tracing on): started once the request is admitted, ended by the usage
    // writer after pricing.
    let span = state.tracing().map(|t| {
        let conversation = forward::conversation_id(&parts.headers);
        let start = span_start(&a, name, &inbound, &request_id, conversation.as_deref());
        let mut span = t.start_span(&parts.headers, &start, {
            let ms = u64::try_from(arrived.1).unwrap_or(0);
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)
        });
        let operation = crate::telemetry::operation_name(inbound.info.endpoint);
        span.set_request_body(&inbound.body, operation, a.entry.spec.transcripts.record_input_messages);
        span
    });

    // 2. Prepare.
    let prepared =
        match prepare::prepare(&state, &snap, &a, name, &parts, path, &mut inbound, span.as_deref(), extra.len()).await
        {
            Ok(p) => p,
            Err(e) => {
                if let Some(span) = span {
                    let row = e.fault.row();
                    span.end_internal(row.reason, row.kind.status(), arrived.0.elapsed());
                }
                return e.respond(metrics, None);
            }
        };
    let injected = prepared.injected;

    // 3. Forward.
    let at = forward::Arrival { started: arrived.0, ts_ms: arrived.1, name, path, request_id };
    let mut forwarded =
        match forward::send(&state, &a, at, &parts, &mut inbound, prepared, forward::Riders { capture, span }).await {
            Ok(f) => f,
            Err((e, mut recorder)) => {
                recorder.attach_charge(charge);
                let mut resp = e.respond(metrics, Some(&mut recorder));
                limit::add_headers(&mut resp, extra);
                return resp;
            }
        };
    forwarded.recorder.attach_charge(charge);

    // 4. Respond.
    respond::respond(&state, &a, &parts.method, &inbound, injected, forwarded, extra).await
}

/// What the span of an admitted request starts with.
fn span_start<'a>(
    a: &'a admit::Admitted,
    name: &'a str,
    inbound: &'a admit::Inbound,
    request_id: &'a str,
    conversation: Option<&'a str>,
) -> crate::telemetry::SpanStart<'a> {
    crate::telemetry::SpanStart {
        provider: name,
        ptype: a.ptype,
        endpoint: inbound.info.endpoint,
        model: inbound.info.model.as_deref(),
        streamed: inbound.info.stream,
        request_id,
        token_id: &a.token.id,
        user: a.token.user.as_deref(),
        agent: a.token.agent.as_deref(),
        conversation_id: conversation,
        server_address: a.entry.server.as_ref().map(|(h, _)| h.as_str()),
        server_port: a.entry.server.as_ref().map(|(_, p)| *p),
    }
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
}
