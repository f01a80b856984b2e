//! `POST /api/v1/llm-providers/{name}/check` (the console's "Test Connection"): probes the
//! upstream with the provider's stored credential, through the same client and credential
//! injection as the proxy, and reports pass/fail with latency and a message.
//!
//! The probe is the upstream's free model-list endpoint, named by the type's descriptor
//! (`ProviderDescriptor::probe`: OpenAI `/models`, Anthropic `/v1/models`, Gemini
//! `/v1beta/models`, Bedrock's control-plane `ListFoundationModels`, signed with the
//! provider's AWS credentials in its region), which proves reachability, TLS
//! and the key without spending tokens; with a `model`, it also says whether the upstream
//! lists that model (for Bedrock, an inference profile's foundation model). Nothing is metered.

use crate::auth::{authorize, require_scope};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use std::cell::Cell;
use std::time::{Duration, Instant};
use tollgate_core::Role;
use tollgate_core::provider::Probe;
use utoipa::ToSchema;

/// How long a probe may take in all.
const PROBE_TIMEOUT: Duration = Duration::from_secs(15);

/// What to check.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// A model id to look for in the upstream's model list.
    #[serde(default)]
    pub model: Option<String>,
}

/// The outcome of a connection check.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckResult {
    /// The upstream answered 2xx to the probe (and listed `model`, when one was given).
    pub ok: bool,
    /// What was probed, e.g. `GET /v1/models`.
    pub probe: String,
    /// The upstream's HTTP status; absent when it could not be reached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_status: Option<u16>,
    pub latency_ms: i64,
    /// Whether the upstream lists `model`; absent when no model was asked about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_found: Option<bool>,
    /// One line for people: what worked or what failed.
    pub message: String,
}

impl CheckResult {
    /// A failed check that got no HTTP answer from the upstream.
    fn no_answer(probe: &str, latency_ms: i64, message: String) -> Json<CheckResult> {
        Json(CheckResult {
            ok: false,
            probe: probe.to_string(),
            upstream_status: None,
            latency_ms,
            model_found: None,
            message,
        })
    }
}

/// Test a provider's connection: reachability, TLS and the stored credential.
#[utoipa::path(post, path = "/api/v1/llm-providers/{name}/check", tag = "providers",
    params(("name" = String, Path, description = "Provider name", pattern = r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")),
    request_body(content = Option<CheckRequest>, description = "Optional: a model to look for"),
    responses((status = 200, description = "The check ran (see `ok`)", body = CheckResult),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn check(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<CheckResult>, ApiError> {
    let caller = authorize(&state, &headers, Role::Writer)?;
    super::providers::check_path_name(&name)?;
    require_scope(&caller, &name)?;
    // no body, or JSON `null`: no model to look for
    let req: CheckRequest = if body.iter().all(u8::is_ascii_whitespace) || body.trim_ascii() == b"null" {
        CheckRequest::default()
    } else {
        tollgate_core::error::from_json_value(super::parse_json_object(&body)?).map_err(ApiError::from)?
    };
    run(&state, &caller, &name, req).await
}

/// Runs the connection check of provider `name` for `caller` (role checked by the caller of
/// this function). Shared by the admin API and the console's Test Connection button.
pub async fn run(
    state: &AppState,
    caller: &tollgate_store::TokenRecord,
    name: &str,
    req: CheckRequest,
) -> Result<Json<CheckResult>, ApiError> {
    require_scope(caller, name)?;
    let state = state.clone();
    let name = name.to_string();
    let snap = state.snapshot();
    let entry = snap
        .providers
        .get(&name)
        .cloned()
        .ok_or_else(|| ApiError::NotFound(format!("provider \"{name}\" not found")))?;
    let spec = &entry.spec;
    let ptype = spec.provider_type.ok_or_else(|| ApiError::Internal(format!("provider \"{name}\" has no type")))?;
    let family = ptype.wire_family();
    let probe_spec = ptype.descriptor().probe;
    let probe_path = probe_spec.path();
    let (path, query) = probe_path.split_once('?').map_or((probe_path, None), |(p, q)| (p, Some(q)));
    let (base, extra_headers) = match probe_spec {
        Probe::Runtime { headers, .. } => (spec.upstream_base_url(), headers),
        Probe::BedrockControl { .. } => (state.settings().bedrock_control_url(crate::aws::region(spec)), &[][..]),
    };
    let url = crate::proxy::upstream_url(&base, path, query);
    let probe = format!("GET {path}");
    if let Err(d) = state.address_policy().check_url(&url) {
        return Ok(CheckResult::no_answer(&probe, 0, d.to_string()));
    }
    let mut upstream_headers = HeaderMap::new();
    for (name, value) in extra_headers {
        upstream_headers.insert(*name, axum::http::HeaderValue::from_static(value));
    }
    let passthrough = spec.authorization_passthrough();
    let signed = matches!(probe_spec, Probe::BedrockControl { .. });
    if signed {
        if let Err(e) = state
            .aws()
            .sign(
                state.secret_lookup(Some(&snap)),
                spec,
                crate::aws::Outgoing { method: "GET", url: &url, body: b"" },
                &mut upstream_headers,
            )
            .await
        {
            return Ok(CheckResult::no_answer(&probe, 0, e.to_string()));
        }
    } else if !passthrough
        && let Err(msg) = crate::proxy::add_credential(&state, &snap, &entry, ptype, &mut upstream_headers).await
    {
        return Ok(CheckResult::no_answer(&probe, 0, msg.to_string()));
    }
    let started = Instant::now();
    let sent = tokio::time::timeout(PROBE_TIMEOUT, async {
        let resp = state.http().get(&url).headers(upstream_headers).send().await?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await?;
        Ok::<_, reqwest::Error>((status, bytes))
    })
    .await;
    let latency_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let (status, bytes) = match sent {
        Err(_) => {
            let message = format!(
                "the upstream at {} did not answer within {} s",
                crate::upstream::host_of(&url),
                PROBE_TIMEOUT.as_secs()
            );
            return Ok(CheckResult::no_answer(&probe, latency_ms, message));
        }
        Ok(Err(e)) => {
            // The cause (DNS, refused, TLS, timeout) and the host; never the URL's query.
            let host = crate::upstream::host_of(&url);
            let connect = e.is_connect();
            let cause = crate::upstream::failure_cause(&e.without_url());
            let message = if connect {
                format!("the upstream could not be reached at {host}: {cause}")
            } else {
                format!("the upstream at {host} failed: {cause}")
            };
            return Ok(CheckResult::no_answer(&probe, latency_ms, message));
        }
        Ok(Ok(v)) => v,
    };
    let model_found = req.model.as_deref().filter(|_| (200..300).contains(&status)).map(|model| {
        if signed {
            return bedrock_lists(&bytes, model);
        }
        let found = Cell::new(false);
        let _ = tollgate_protocol::filter_model_list(family, &bytes, &|m: &str| {
            if m == model {
                found.set(true);
            }
            false
        });
        found.get()
    });
    let (ok, message) = match (status, model_found) {
        (200..=299, Some(false)) => (
            false,
            format!("connected, but the upstream does not list model \"{}\"", req.model.as_deref().unwrap_or_default()),
        ),
        (200..=299, _) if passthrough => {
            (true, "reachable (authorization passthrough: clients bring their own credential)".to_string())
        }
        (200..=299, _) => (true, "connected: the upstream accepted the credential".to_string()),
        (401 | 403, _) => (false, format!("the upstream refused the credential ({status})")),
        (300..=399, _) => (false, format!("the upstream redirected ({status}); check the base URL")),
        _ => (false, format!("the upstream answered {status}")),
    };
    Ok(Json(CheckResult { ok, probe, upstream_status: Some(status), latency_ms, model_found, message }))
}

/// Whether a `ListFoundationModels` answer lists `model`, or the foundation model of the
/// inference profile `model` names (`us.anthropic.x` → `anthropic.x`).
fn bedrock_lists(body: &[u8], model: &str) -> bool {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else { return false };
    let bare = model.split_once('.').filter(|_| tollgate_protocol::is_profile_or_arn(model)).map_or(model, |(_, b)| b);
    v["modelSummaries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["modelId"].as_str())
        .any(|id| id == model || id == bare)
}
