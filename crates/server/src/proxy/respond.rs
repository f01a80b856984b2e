//! Stage 4, **respond**: turns the upstream's response into the client's.
//!
//! The head is the upstream's own, cleaned in place of hop-by-hop headers (and
//! `content-length` when the body may change), plus `x-tollgate-request-id`. The body is a
//! [`MeteredStream`]: each upstream chunk goes through the protocol's `Tap` (usage parsed on
//! the side; the `include_usage` extra chunk dropped) and on to the client at once; its end,
//! error or drop emits the usage event. Bedrock's `x-amzn-bedrock-*-token-count` response
//! headers are shown to the tap too. A successful `GET` models list of a provider with an
//! allow-list is the one body read whole (up to [`MAX_MODEL_LIST_BYTES`]) and filtered to the
//! allowed models.
//!
//! An upstream that compresses although asked for `identity` (gzip, deflate) is decoded for
//! the client (`content-encoding` and `content-length` dropped), so usage is read and edits
//! act on plain bytes.
//!
//! Invariants: the status and every other (decoded) byte are the upstream's; nothing but the models
//! list is buffered; the recorder from [`super::forward`] is consumed here, so the event is
//! emitted exactly once.

use super::admit::{Admitted, Inbound};
use super::body::{Decoder, MeteredStream, Outcome, Recorder};
use super::error::{Fault, ProxyError};
use super::forward::Forwarded;
use super::headers;
use crate::state::AppState;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt as _;
use hyper::body::Body as _;
use tollgate_core::{ProviderSpec, RequestStatus};
use tollgate_protocol::{Endpoint, Tap, WireFamilyId};

/// Largest models-list body the gateway reads whole to filter it.
pub(super) const MAX_MODEL_LIST_BYTES: usize = 16 * 1024 * 1024;

/// The client's response to a forwarded request. `injected` is
/// [`super::prepare::Prepared::injected`].
pub(super) async fn respond(
    state: &AppState,
    a: &Admitted,
    method: &Method,
    inbound: &Inbound,
    injected: bool,
    fwd: Forwarded,
    extra: super::limit::Extra,
) -> Response {
    const REQUEST_ID: header::HeaderName = header::HeaderName::from_static("x-tollgate-request-id");
    let Forwarded { upstream, mut recorder, event_id } = fwd;
    let spec = &a.entry.spec;
    let info = &inbound.info;
    let status = upstream.status();
    let read_timeout = state.settings().upstream_read_timeout;
    let content_type = upstream.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
    recorder.set_response_content_type(content_type.as_deref());
    let mut tap = Tap::new(a.family, info, status.as_u16(), content_type.as_deref(), injected);
    if recorder.tracing() {
        tap.record_outcome(a.family, info.endpoint);
    }
    if a.family == WireFamilyId::Bedrock {
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
    // Asked for identity, an upstream may still compress: decode it here (the tap must read
    // it, and the allow-list filter and the injected usage chunk act on plain bytes).
    let encoding = upstream.headers().get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok());
    let decoder = encoding.and_then(Decoder::for_encoding);
    if let (None, Some(other)) = (&decoder, encoding.filter(|e| !e.trim().eq_ignore_ascii_case("identity"))) {
        tracing::warn!(provider = %spec.name, encoding = %other,
            "the upstream compressed its answer with an encoding the gateway does not decode; its usage cannot be read");
    }
    // The client gets the upstream's own header map, cleaned in place (not copied: a copy
    // hashes every name again).
    let (head, body) = upstream.into_parts();
    let mut out_headers = head.headers;
    headers::to_client_response(&mut out_headers, injected || filter_models || decoder.is_some(), 1 + extra.len());
    if decoder.is_some() {
        out_headers.remove(header::CONTENT_ENCODING);
    }
    if let Ok(v) = HeaderValue::from_str(&event_id) {
        out_headers.insert(REQUEST_ID, v);
    }
    for (k, v) in extra {
        out_headers.insert(k, v);
    }

    if filter_models {
        return Box::pin(filtered_model_list(state, body, a, recorder, out_headers, status, decoder)).await;
    }

    let expected_len = if injected { None } else { body.size_hint().exact() };
    let stream = MeteredStream::new(body, read_timeout, tap, recorder, status.as_u16(), expected_len).decoding(decoder);
    let mut resp = Response::new(Body::from_stream(super::body::ClientBody::new(stream)));
    *resp.status_mut() = status;
    *resp.headers_mut() = out_headers;
    resp
}

/// Discovery: a models list filtered to the provider's allow-list.
async fn filtered_model_list(
    state: &AppState,
    mut body: hyper::body::Incoming,
    a: &Admitted,
    mut recorder: Box<Recorder>,
    headers: HeaderMap,
    status: StatusCode,
    decoder: Option<Decoder>,
) -> Response {
    let spec: &ProviderSpec = &a.entry.spec;
    let read_timeout = state.settings().upstream_read_timeout;
    let ttft = recorder.started().elapsed();
    let mut bytes = Vec::new();
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
                let e = ProxyError::new(
                    Fault::BodyUnreadable,
                    Some(a.ptype),
                    "the upstream's model list could not be read",
                );
                return e.respond(state.metrics(), Some(&mut recorder));
            }
        }
    }
    recorder.release_connection();
    if let Some(mut d) = decoder {
        let decoded = d.decode(&bytes).and_then(|head| Ok([head, d.finish()?].concat()));
        match decoded {
            Ok(plain) if plain.len() <= MAX_MODEL_LIST_BYTES => bytes = plain,
            Ok(_) | Err(_) => {
                let e = ProxyError::new(
                    Fault::BodyUnreadable,
                    Some(a.ptype),
                    "the upstream's model list could not be decoded",
                );
                return e.respond(state.metrics(), Some(&mut recorder));
            }
        }
    }
    let allowed = |m: &str| spec.allows_model(m);
    let body = bytes::Bytes::from(tollgate_protocol::filter_model_list(a.family, &bytes, &allowed).unwrap_or(bytes));
    recorder.capture_output(&body);
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
