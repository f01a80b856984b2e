//! Stage 3, **forward**: sends the prepared request and waits for the upstream's response head.
//!
//! It first creates the [`Recorder`] holding the draft usage event — from here on exactly one
//! event follows, whatever happens. The shared client (hyper's, pooled) sends; a connect
//! failure, a failure before the head, no head within the read timeout, or a 3xx are upstream
//! [`ProxyError`]s (502, or 504 for the timeout), handed back with the recorder so the caller
//! records them; their messages name the cause found in the error chain
//! (`upstream::failure_cause`: refused, DNS, TLS, timeout) and the host, never the path, query
//! or a credential.
//!
//! Invariant: nothing here reads the request body or the response body; any status the
//! upstream answers except a redirect (2xx, 4xx, 5xx) is a response, passed on to
//! [`super::respond`] unchanged.

use super::admit::{Admitted, Inbound};
use super::body::Recorder;
use super::error::{Fault, ProxyError};
use super::prepare::Prepared;
use crate::state::AppState;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use hyper::body::Incoming;
use std::time::Instant;
use tollgate_core::{Cost, RequestStatus, Usage};
use tollgate_store::UsageEvent;

/// Conversation ids longer than this are cut (they are labels, not payloads).
const MAX_CONVERSATION_ID: usize = 200;

/// When and how the request arrived: what the usage event needs besides the stages' results.
pub(super) struct Arrival<'a> {
    pub started: Instant,
    pub ts_ms: i64,
    pub name: &'a str,
    pub path: &'a str,
    /// The gateway's id for the request (the usage event's id, `x-tollgate-request-id`),
    /// handed over: it becomes [`Forwarded::event_id`].
    pub request_id: String,
}

/// The upstream's response head (body not yet read), its recorder and the request's event id.
pub(super) struct Forwarded {
    pub upstream: http::Response<Incoming>,
    /// Boxed: it is ~1 KB and travels by value through `forward`, `respond` and the body.
    pub recorder: Box<Recorder>,
    pub event_id: String,
}

/// What rides along with a forwarded request to its recorder: the transcript capture (when the
/// provider records bodies) and the trace span (when tracing is on).
pub(super) struct Riders {
    pub capture: Option<Box<super::capture::Capture>>,
    pub span: Option<Box<crate::telemetry::RequestSpan>>,
}

/// Sends `prep`; an `Err` carries the recorder, which the caller gives the error to. `span`
/// (tracing on) rides with the recorder to the usage writer.
pub(super) async fn send(
    state: &AppState,
    a: &Admitted,
    at: Arrival<'_>,
    parts: &Parts,
    inbound: &mut Inbound,
    prep: Prepared,
    riders: Riders,
) -> Result<Forwarded, (ProxyError, Box<Recorder>)> {
    let name = at.name;
    let event_id = at.request_id;
    let info = &mut inbound.info;
    // Built in the box the meter's queue takes (one copy onto the heap; the usage writer then
    // stores it from there).
    let draft = state.settings().usage_recording.then(|| {
        Box::new(crate::meter::Metered {
            event: UsageEvent {
                id: event_id.clone(),
                ts_ms: at.ts_ms,
                provider: a.entry.name.clone(),
                provider_type: a.ptype,
                // Moved, not copied: nothing after this stage reads the request's model.
                model: info.model.take(),
                endpoint: at.path.to_string(),
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
                // None: a conversation of its own, read from this event (no conversation row).
                conversation_id: conversation_id(&parts.headers),
                transcript: None,
            },
            provider: None,
            response_model: None,
            transcript: None,
            observed: Default::default(),
        })
    });
    let mut recorder =
        Box::new(Recorder::new(state.meter().clone(), state.metrics().clone(), draft, at.started, a.entry.clone()));
    recorder.set_capture(riders.capture);
    recorder.observe(riders.span, crate::telemetry::operation_name(info.endpoint));

    let read_timeout = state.settings().upstream_read_timeout;
    // For error messages only: parsed when one is written.
    let url = prep.url;
    let host = || crate::upstream::host_of(&url);
    let mut up = http::Request::new(crate::upstream::ProxyBody::new(prep.body));
    *up.method_mut() = parts.method.clone();
    *up.uri_mut() = prep.uri;
    *up.headers_mut() = prep.headers;
    // The request URL's origin is the base URL's (`prepare` checks it), so its `Host` is the
    // one worked out per snapshot (plain-HTTP upstreams only: see `ProviderEntry`); the HTTP
    // client formats one only when none is set.
    if let Some(host) = &a.entry.host_header {
        up.headers_mut().entry(http::header::HOST).or_insert_with(|| host.clone());
    }
    let upstream = match tokio::time::timeout(read_timeout, state.proxy_client().request(up)).await {
        Ok(Ok((r, lease))) => {
            recorder.hold_connection(lease);
            r
        }
        Ok(Err(e)) => {
            tracing::warn!(provider = name, error = %ErrorChain(&e), "upstream request failed");
            // A connect timeout is both: it is a connection failure (502), not a slow answer.
            let cause = crate::upstream::failure_cause(&e);
            let (fault, msg) = if e.is_connect() {
                (Fault::Unreachable, format!("could not be reached at {}: {cause}", host()))
            } else {
                (Fault::Failed, format!("at {} failed: {cause}", host()))
            };
            let err = ProxyError::new(fault, Some(a.ptype), format!("the upstream of provider \"{name}\" {msg}"));
            return Err((err, recorder));
        }
        Err(_) => {
            tracing::warn!(provider = name, "upstream request failed: no response head within the read timeout");
            let err = ProxyError::new(
                Fault::Timeout,
                Some(a.ptype),
                format!(
                    "the upstream of provider \"{name}\" at {} did not answer in time (no response head within {} s)",
                    host(),
                    read_timeout.as_secs_f64()
                ),
            );
            return Err((err, recorder));
        }
    };
    let status = upstream.status();
    if status.is_redirection() {
        let err = ProxyError::new(
            Fault::Redirect,
            Some(a.ptype),
            format!(
                "the upstream of provider \"{name}\" answered with a redirect ({}), which the gateway does not follow",
                status.as_u16()
            ),
        );
        return Err((err, recorder));
    }
    if let Some(rid) = REQUEST_ID_HEADERS
        .iter()
        .find_map(|h| upstream.headers().get(h))
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 200)
    {
        recorder.set_request_id(rid);
    }
    Ok(Forwarded { upstream, recorder, event_id })
}

/// Where upstreams put the id of their answer (OpenAI, Anthropic, Bedrock), in that order.
static REQUEST_ID_HEADERS: [http::HeaderName; 3] = [
    http::HeaderName::from_static("x-request-id"),
    http::HeaderName::from_static("request-id"),
    http::HeaderName::from_static("x-amzn-requestid"),
];

/// Headers that name a conversation, in order of precedence: the gateway's own, then the
/// session ids well-known clients send on every request — Claude Code's
/// `x-claude-code-session-id` (one UUID per session, since v2.1.86), the Codex CLI's
/// `session-id` (older versions and other agents: `session_id`). The OpenAI Agents SDK sends
/// none. Without any, the request is a conversation of its own (keyed by its event id, which
/// its usage event does not repeat as conversation id: see tollgate_store's `conversation.rs`).
/// Typed names: a lookup by `HeaderName` hashes the name without parsing it again (four
/// lookups by `&str` were ~1,500 instructions per request).
pub(super) static CONVERSATION_HEADERS: [http::HeaderName; 4] = [
    http::HeaderName::from_static("x-tollgate-conversation"),
    http::HeaderName::from_static("x-claude-code-session-id"),
    http::HeaderName::from_static("session-id"),
    http::HeaderName::from_static("session_id"),
];

/// The first conversation label of [`CONVERSATION_HEADERS`], trimmed and cut to
/// [`MAX_CONVERSATION_ID`].
///
/// One pass over the client's headers, comparing names (most differ in length, so a
/// comparison is a length check): four hashed lookups of these custom names cost ~640
/// instructions per request, every header name's bytes hashed each time.
pub(super) fn conversation_id(headers: &HeaderMap) -> Option<String> {
    let mut best: Option<(usize, &str)> = None;
    for (name, value) in headers {
        let Some(rank) = CONVERSATION_HEADERS.iter().position(|h| h == name) else { continue };
        if best.is_some_and(|(r, _)| r <= rank) {
            continue;
        }
        let Ok(v) = value.to_str() else { continue };
        let v = v.trim();
        if !v.is_empty() {
            best = Some((rank, v));
        }
    }
    best.map(|(_, v)| v.chars().take(MAX_CONVERSATION_ID).collect())
}

/// An error and its causes (`could not connect: tcp connect error: Connection refused`);
/// never a URL or a header value.
struct ErrorChain<'a>(&'a crate::upstream::UpstreamError);

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = std::error::Error::source(self.0);
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(http::HeaderName::from_static(k), http::HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn the_conversation_header_of_highest_precedence_wins() {
        let h = headers(&[("session_id", "s2"), ("x-claude-code-session-id", "cc"), ("content-type", "x")]);
        assert_eq!(conversation_id(&h).as_deref(), Some("cc"));
        let h = headers(&[("session-id", "  "), ("session_id", "s2")]);
        assert_eq!(conversation_id(&h).as_deref(), Some("s2"), "blank values are skipped");
        let h = headers(&[("x-tollgate-conversation", "mine"), ("x-tollgate-conversation", "later")]);
        assert_eq!(conversation_id(&h).as_deref(), Some("mine"), "the first value of a name");
        assert_eq!(conversation_id(&headers(&[("user-agent", "x")])), None);
        let long = "a".repeat(MAX_CONVERSATION_ID + 10).leak();
        let h = headers(&[("x-tollgate-conversation", long)]);
        assert_eq!(conversation_id(&h).map(|c| c.len()), Some(MAX_CONVERSATION_ID));
    }
}
