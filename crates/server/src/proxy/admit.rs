//! Stage 1, **admit**: decides whether the gateway serves this request at all, before anything
//! is sent anywhere. [`caller`]: the gateway token (401, one shape whatever the provider, so
//! it reveals no names; then 400 when passthrough needs `X-Tollgate-Token`) → the provider
//! (404, OpenAI shape) → token scope and enabled (403).
//! [`request`]: the body up to `--max-request-body-bytes` (413), the protocol's reading of it
//! (endpoint, model, stream flag; a multipart body's `model` field), the model allow-list (404,
//! the native unknown-model error, message `model_not_allowed: …`; 400 when an endpoint that
//! takes its model from the body names none) and Bedrock's profile-only models (400
//! `ValidationException`).
//!
//! Invariants: the checks run in this fixed order; everything is read from the snapshot (no
//! database, no upstream); every refusal is a downstream [`ProxyError`] (counted, no usage
//! event).

use super::client_auth::{self, TokenProblem};
use super::error::{Fault, ProxyError};
use crate::auth;
use crate::body::BodyError;
use crate::state::{AppState, ProviderEntry, Snapshot};
use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use bytes::Bytes;
use std::sync::Arc;
use tollgate_core::ProviderType;
use tollgate_protocol::{Endpoint, RequestInfo, WireFamilyId};
use tollgate_store::TokenRecord;

/// Everything about the caller and the provider once the checks passed.
pub(super) struct Admitted {
    pub token: Arc<TokenRecord>,
    pub entry: Arc<ProviderEntry>,
    pub ptype: ProviderType,
    pub family: WireFamilyId,
}

/// The request as the protocol reads it, once its body and model passed.
pub(super) struct Inbound {
    pub body: Bytes,
    /// `info.model` is moved into the usage event by `forward::send` when usage is recorded:
    /// the stages after it do not read it.
    pub info: RequestInfo,
}

/// Gateway token, provider, scope, enabled. `now_ms`: the request's arrival on the gateway's
/// clock (the token's expiry is checked against it; the request reads the clock once).
pub(super) fn caller(
    state: &AppState,
    snap: &Snapshot,
    name: &str,
    headers: &HeaderMap,
    query: Option<&str>,
    now_ms: i64,
) -> Result<Admitted, ProxyError> {
    // Authentication first, the same way for every name (known, unknown, passthrough or not),
    // and answered in one provider-independent 401 shape: a request without a valid token
    // learns nothing about which providers exist.
    let presented = client_auth::presented_token(headers, query, false).map_err(|_| {
        ProxyError::new(
            Fault::Unauthenticated,
            None,
            "missing gateway token: send it as `Authorization: Bearer`, `x-api-key`, `x-goog-api-key`, `api-key` \
             or `X-Tollgate-Token` (providers with authorization passthrough take it only in `X-Tollgate-Token`)",
        )
    })?;
    let token = auth::lookup(state, presented, now_ms)
        .map_err(|e| ProxyError::new(Fault::Unauthenticated, None, e.to_string()))?;
    let entry = snap.providers.get(name).cloned();
    let ptype = entry.as_ref().and_then(|e| e.spec.provider_type);
    let passthrough = entry.as_ref().is_some_and(|e| e.spec.authorization_passthrough());
    if passthrough && client_auth::presented_token(headers, query, true) == Err(TokenProblem::PassthroughNeedsHeader) {
        return Err(ProxyError::new(
            Fault::BadRequest,
            ptype,
            format!(
                "provider \"{name}\" forwards your Authorization header to the upstream (authorization \
                 passthrough), so send the gateway token in the X-Tollgate-Token header"
            ),
        ));
    }
    let (Some(entry), Some(ptype)) = (entry, ptype) else {
        return Err(ProxyError::new(Fault::NotFound, None, format!("no LLM provider named \"{name}\"")));
    };
    if !auth::in_scope(&token, name) {
        return Err(ProxyError::new(
            Fault::PermissionDenied,
            Some(ptype),
            format!("this gateway token is not scoped to provider \"{name}\""),
        ));
    }
    if !entry.spec.is_enabled() {
        return Err(ProxyError::new(Fault::PermissionDenied, Some(ptype), format!("provider \"{name}\" is disabled")));
    }
    Ok(Admitted { token, entry, ptype, family: ptype.wire_family() })
}

/// The proxied path (raw, still percent-encoded) must stay under the base URL's prefix: a
/// segment that is `.` or `..` once decoded — `%2e%2e`, `%2E.`, or hidden inside a segment
/// behind an encoded slash or a backslash (`a%2f..`, `..%5c`, `..\\`) — is refused with 400
/// before anything is sent (ARCHITECTURE.md, Decisions: Secrets go only where they were meant
/// to). Encoded slashes themselves stay allowed: Bedrock model ARNs and Gemini tuned-model names
/// carry them (`inference-profile%2Fus.anthropic…`).
pub(super) fn check_path(ptype: ProviderType, path: &str) -> Result<(), ProxyError> {
    let traversal = if path.bytes().any(|b| b == b'%' || b == b'\\') {
        path.split('/').any(|segment| {
            let decoded = percent_encoding::percent_decode_str(segment).decode_utf8_lossy();
            decoded.as_bytes().split(|&b| b == b'/' || b == b'\\').any(dot_segment)
        })
    } else {
        // Nothing encoded, no backslash (the usual path): its own segments.
        path.as_bytes().split(|&b| b == b'/').any(dot_segment)
    };
    if traversal {
        return Err(ProxyError::new(
            Fault::PathTraversal,
            Some(ptype),
            "request path: a `.` or `..` segment (also percent-encoded, or behind an encoded slash or a \
             backslash) would leave the provider's base URL; such paths are refused",
        ));
    }
    Ok(())
}

/// Whether a path segment is `.` or `..` (as it stands: decoding is the caller's).
pub(super) fn dot_segment(segment: &[u8]) -> bool {
    segment == b"." || segment == b".."
}

/// A request that already passed through this gateway (its `x-tollgate-hop` names this
/// process) or through more than [`headers::MAX_HOPS`] gateways is a loop: refused with 400
/// before anything is sent, so one request can never turn into thousands of forwards.
pub(super) fn check_loop(state: &AppState, ptype: ProviderType, name: &str, h: &HeaderMap) -> Result<(), ProxyError> {
    let own = state.hop_id();
    let (mut seen, mut count) = (false, 0);
    for hop in super::headers::hops(h) {
        seen |= hop == own;
        count += 1;
    }
    if seen || count >= super::headers::MAX_HOPS {
        return Err(ProxyError::new(
            Fault::LoopDetected,
            Some(ptype),
            format!(
                "request loop detected: this request already passed through this gateway ({count} hop(s) in \
                 x-tollgate-hop); provider \"{name}\"'s base URL must not lead back to a gateway"
            ),
        ));
    }
    Ok(())
}

/// Body size, the protocol's reading of the request, the model checks.
pub(super) async fn request(
    state: &AppState,
    a: &Admitted,
    name: &str,
    parts: &Parts,
    path: &str,
    body: Body,
) -> Result<Inbound, ProxyError> {
    let body = read_body(state, a.ptype, &parts.headers, body).await?;
    let mut info = tollgate_protocol::inspect(a.family, parts.method.as_str(), path, parts.uri.query(), &body);
    if info.body_names_model
        && info.model.is_none()
        && info.body_error.is_none()
        && let Some(boundary) = multipart_boundary(&parts.headers)
    {
        match multipart_model(body.clone(), boundary).await {
            Ok(model) => info.model = model,
            Err(problem) => info.body_error = Some(problem),
        }
    }
    check_model(a, name, &info)?;
    // The live catalog (embedded + the operator's overlay), so an overlay that marks a model
    // profile-only, or lists new profiles, takes effect without a restart.
    if a.ptype == ProviderType::Bedrock {
        check_profile_only(&state.catalog(), a.ptype, &info)?;
    }
    Ok(Inbound { body, info })
}

/// Reads the request body up to the configured cap (an oversized one is drained first; see
/// [`crate::body`]).
async fn read_body(
    state: &AppState,
    ptype: ProviderType,
    headers: &HeaderMap,
    body: Body,
) -> Result<Bytes, ProxyError> {
    let cap = state.settings().max_request_body_bytes;
    crate::body::read_capped(headers, body, cap).await.map_err(|e| match e {
        BodyError::TooLarge { cap } => ProxyError::new(
            Fault::PayloadTooLarge,
            Some(ptype),
            format!("request body: larger than the gateway's limit of {cap} bytes"),
        ),
        BodyError::Unreadable => ProxyError::new(Fault::BadRequest, Some(ptype), e.to_string()),
    })
}

/// The boundary of a `multipart/form-data` body, from its `content-type`.
fn multipart_boundary(headers: &HeaderMap) -> Option<String> {
    let ct = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    if !ct.trim_start().to_ascii_lowercase().starts_with("multipart/form-data") {
        return None;
    }
    multer::parse_boundary(ct).ok()
}

/// The `model` form field of a multipart body (OpenAI's audio transcriptions and
/// translations, image edits and variations), read with `multer` from the body already in
/// memory: none when absent; an error naming the rule when the body is not multipart as its
/// header says, or names the model twice.
async fn multipart_model(body: Bytes, boundary: String) -> Result<Option<String>, String> {
    let bad = |e: multer::Error| format!("request body: not valid multipart/form-data ({e})");
    let chunks = futures_util::stream::once(async move { Ok::<Bytes, std::convert::Infallible>(body) });
    let mut form = multer::Multipart::new(chunks, boundary);
    let mut model = None;
    while let Some(field) = form.next_field().await.map_err(bad)? {
        if field.name() == Some("model") {
            if model.is_some() {
                return Err("model: given more than once; name the model once".to_string());
            }
            model = Some(field.text().await.map_err(bad)?);
        }
    }
    Ok(model)
}

/// The model allow-list: a request outside it is refused as the upstream refuses an unknown
/// model; one to an endpoint that takes its model from the body but names none is refused
/// too (the upstream would pick a default model, outside the operator's choice).
fn check_model(a: &Admitted, name: &str, info: &RequestInfo) -> Result<(), ProxyError> {
    let spec = &a.entry.spec;
    if spec.provider_models.is_empty() {
        return Ok(());
    }
    if let Some(problem) = &info.body_error {
        return Err(ProxyError::new(Fault::BadRequest, Some(a.ptype), problem.clone()));
    }
    match &info.model {
        Some(model) if !spec.allows_model(model) => Err(ProxyError::new(
            Fault::ModelNotAllowed,
            Some(a.ptype),
            format!("model \"{model}\" is not enabled on provider \"{name}\""),
        )),
        None if info.body_names_model => Err(ProxyError::new(
            Fault::BadRequest,
            Some(a.ptype),
            format!(
                "model: required; provider \"{name}\" serves only the models it lists (provider_models), so the \
                 request must name one"
            ),
        )),
        Some(_) | None => Ok(()),
    }
}

/// Bedrock models that only run through an inference profile (Claude 4.6 and later), called
/// by their bare foundation-model id: refused the way Bedrock refuses them (400
/// `ValidationException`), naming the profile ids to use, without an upstream call.
fn check_profile_only(
    catalog: &tollgate_core::catalog::Catalog,
    ptype: ProviderType,
    info: &RequestInfo,
) -> Result<(), ProxyError> {
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
    Err(ProxyError::new(
        Fault::BadRequest,
        Some(ptype),
        format!(
            "Invocation of model ID {model} with on-demand throughput isn’t supported. Retry your request with the ID \
             or ARN of an inference profile that contains this model: {hint}."
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_are_refused_in_every_spelling() {
        for bad in [
            "/../admin",
            "/%2e%2e/%2e%2e/admin/secret",
            "/%2E%2e/x",
            "/v1/./models",
            "/v1/%2e/models",
            "/a%2f..%2fadmin",
            "/a%2F%2E%2E",
            "/..%5cadmin",
            "/x/..\\admin",
            "/x/.%5C",
            "/..",
        ] {
            assert!(check_path(ProviderType::Openai, bad).is_err(), "{bad} must be refused");
        }
        for good in [
            "/chat/completions",
            "/v1beta/models/tunedModels%2Fx:generateContent",
            "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ainference-profile%2Fus.anthropic.claude/converse",
            "/v1/files/a..b",
            "/v1/...",
            "/models/gpt-4.1",
        ] {
            assert!(check_path(ProviderType::Openai, good).is_ok(), "{good} must pass");
        }
    }

    #[test]
    fn profile_only_bedrock_models_name_their_profiles() {
        let catalog = tollgate_core::catalog::Catalog::embedded().unwrap_or_else(|e| panic!("{e}"));
        let catalog = &catalog;
        let info = |path: &str| tollgate_protocol::inspect(WireFamilyId::Bedrock, "POST", path, None, b"{}");
        let refused =
            check_profile_only(catalog, ProviderType::Bedrock, &info("/model/anthropic.claude-sonnet-4-6/converse"));
        let Err(r) = refused else { panic!("a bare Sonnet 4.6 id is refused") };
        assert_eq!(r.fault, Fault::BadRequest);
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
}
