//! Bedrock control-plane calls made on a Bedrock provider's proxy URL. Clients configured with
//! one endpoint send some control-plane requests there too: Claude Code in Bedrock mode lists
//! `GET /inference-profiles?type=SYSTEM_DEFINED` at start, and falls back to an older model
//! when that fails. These are served against the provider's control endpoint
//! (`bedrock.<region>.amazonaws.com`, or `--bedrock-control-endpoint`), signed like Test
//! Connection, and the answers are narrowed to the provider's allow-list (exact names, as
//! [`ProviderSpec::allows_model`]): a profile passes when its id or ARN is listed or one of
//! its foundation models (id or ARN) is; a foundation model when its id or ARN is listed.
//! `GetInferenceProfile` of a profile outside the list is the native unknown-model 404.
//!
//! They are not model calls: no usage event is recorded (like Test Connection), whatever the
//! control plane answers; control-plane errors pass through unchanged. The gateway's own
//! errors are [`ProxyError`]s like the model calls' (a signing failure is internal), but an
//! upstream failure here records nothing.

use super::error::{Fault, ProxyError};
use super::respond::MAX_MODEL_LIST_BYTES;
use crate::aws::Outgoing;
use crate::state::{AppState, Snapshot};
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use tollgate_core::{ProviderSpec, ProviderType};
use tollgate_protocol::ControlCall;

/// Response headers of the control plane that reach the client.
const PASSED_HEADERS: [&str; 3] = ["content-type", "x-amzn-requestid", "x-amzn-errortype"];

/// Serves one control-plane call for provider `name`.
pub(super) async fn serve(
    state: &AppState,
    snap: &Snapshot,
    name: &str,
    spec: &ProviderSpec,
    call: ControlCall,
    path: &str,
    query: Option<&str>,
) -> Response {
    match answer(state, snap, name, spec, call, path, query).await {
        Ok(resp) => resp,
        Err(e) => e.respond(state.metrics(), None),
    }
}

async fn answer(
    state: &AppState,
    snap: &Snapshot,
    name: &str,
    spec: &ProviderSpec,
    call: ControlCall,
    path: &str,
    query: Option<&str>,
) -> Result<Response, ProxyError> {
    let bedrock = Some(ProviderType::Bedrock);
    let base = state.settings().bedrock_control_url(crate::aws::region(spec));
    let Ok(url) = reqwest::Url::parse(&super::upstream_url(&base, path, query)) else {
        return Err(ProxyError::new(Fault::BadRequest, bedrock, "the request path is not a valid URL path"));
    };
    if !super::prepare::under_base(&base, &url) {
        return Err(ProxyError::new(
            Fault::PathTraversal,
            bedrock,
            "request path: it would leave the control endpoint",
        ));
    }
    state
        .address_policy()
        .check_url(url.as_str())
        .map_err(|d| ProxyError::new(Fault::UpstreamAddressDenied, bedrock, format!("provider \"{name}\": {d}")))?;
    let mut headers = HeaderMap::new();
    headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    state
        .aws()
        .sign(
            state.secret_lookup(Some(snap)),
            spec,
            Outgoing { method: "GET", url: url.as_str(), body: b"" },
            &mut headers,
        )
        .await
        .map_err(|e| ProxyError::from_aws(&e))?;
    let host = crate::upstream::host_of(url.as_str());
    let sent = async {
        let resp = state.http().get(url.clone()).headers(headers).send().await?;
        let status = resp.status();
        let head = resp.headers().clone();
        let body = resp.bytes().await?;
        Ok::<_, reqwest::Error>((status, head, body))
    }
    .await;
    let (status, head, body) = match sent {
        Ok(v) => v,
        Err(e) => {
            let e = e.without_url();
            tracing::warn!(provider = name, operation = call.operation(), error = %e, "Bedrock control plane failed");
            let cause = crate::upstream::failure_cause(&e);
            let fault = if cause == "timed out" { Fault::Timeout } else { Fault::Unreachable };
            return Err(ProxyError::new(
                fault,
                bedrock,
                format!("the Bedrock control plane of provider \"{name}\" could not be reached at {host}: {cause}"),
            ));
        }
    };
    let mut body = body.to_vec();
    if status.is_success() && !spec.provider_models.is_empty() {
        if body.len() > MAX_MODEL_LIST_BYTES {
            return Err(ProxyError::new(
                Fault::BodyUnreadable,
                bedrock,
                "the control plane's answer is too large to filter",
            ));
        }
        let ok = |m: &str| spec.allows_model(m);
        match call {
            ControlCall::GetInferenceProfile => {
                if tollgate_protocol::profile_allowed(&body, &ok) == Some(false) {
                    let id = path.trim_start_matches("/inference-profiles/");
                    let id = percent_encoding::percent_decode_str(id).decode_utf8_lossy();
                    return Err(ProxyError::new(
                        Fault::ModelNotAllowed,
                        bedrock,
                        format!("inference profile \"{id}\" is not enabled on provider \"{name}\""),
                    ));
                }
            }
            ControlCall::ListInferenceProfiles | ControlCall::ListFoundationModels => {
                if let Some(narrowed) = tollgate_protocol::filter_control_list(call, &body, &ok) {
                    body = narrowed;
                }
            }
        }
    }
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    for h in PASSED_HEADERS {
        if let Some(v) = head.get(h).and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok()) {
            resp.headers_mut().insert(h, v);
        }
    }
    Ok(resp)
}
