//! `/api/v1/rate-limits`: create, list, get, PATCH (JSON merge patch; `name` immutable) and
//! delete requests-per-minute / tokens-per-minute limits (ARCHITECTURE.md, Decisions: Budgets
//! and rate limits). Readers read; writers without a provider scope write.

use crate::admin::budgets::require_unscoped;
use crate::admin::query::Query;
use crate::admin::{Write, WriteParams, parse_json_object};
use crate::auth::authorize;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::time::rfc3339;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;
use tollgate_core::Role;
use tollgate_core::budget::RateLimitSpec;
use tollgate_core::patch::merge_patch;
use tollgate_store::{LimitRecord, LimitResource, TokenRecord};
use utoipa::ToSchema;

/// Every rate limit.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListRateLimitsResponse {
    pub rate_limits: Vec<RateLimitSpec>,
}

fn view(state: &AppState, mut r: RateLimitSpec, created_ms: i64, updated_ms: i64) -> RateLimitSpec {
    r.created_at = Some(rfc3339(created_ms));
    r.updated_at = Some(rfc3339(updated_ms));
    r.warnings = scope_warnings(state, &r);
    r
}

/// The limit's scope references that name nothing (the API's `warnings`, the console's note).
pub fn scope_warnings(state: &AppState, r: &RateLimitSpec) -> Vec<tollgate_core::warnings::FieldWarning> {
    let provider = r.scope.provider.clone().map(|p| ("scope.provider".to_string(), p));
    super::dangling_refs(state, provider, r.scope.token.as_deref().map(|t| ("scope.token", t)))
}

fn record(r: &RateLimitSpec, created_ms: i64, updated_ms: i64) -> Result<LimitRecord, ApiError> {
    Ok(LimitRecord {
        name: r.name.clone(),
        override_key: None,
        spec_json: serde_json::to_string(r).map_err(|e| ApiError::Internal(e.to_string()))?,
        created_at_ms: created_ms,
        updated_at_ms: updated_ms,
    })
}

fn parse(rec: &LimitRecord) -> Result<RateLimitSpec, ApiError> {
    let name = &rec.name;
    let v: serde_json::Value = serde_json::from_str(&rec.spec_json)
        .map_err(|e| ApiError::Internal(format!("stored rate limit {name} is unreadable: {e}")))?;
    RateLimitSpec::from_value(v).map_err(|e| ApiError::Internal(format!("stored rate limit {name}: {e}")))
}

async fn stored(state: &AppState, name: &str) -> Result<LimitRecord, ApiError> {
    state
        .store()
        .get_limit_resource(LimitResource::RateLimit, name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("rate limit \"{name}\" not found")))
}

/// Every rate limit, by name (the API and the console).
pub async fn all(state: &AppState) -> Result<Vec<RateLimitSpec>, ApiError> {
    let recs = state.store().all_limit_resources(LimitResource::RateLimit).await?;
    recs.iter().map(|rec| Ok(view(state, parse(rec)?, rec.created_at_ms, rec.updated_at_ms))).collect()
}

/// Creates a validated rate limit. The caller checked the role.
pub async fn create_spec(
    state: &AppState,
    caller: &TokenRecord,
    r: RateLimitSpec,
    write: Write,
) -> Result<RateLimitSpec, ApiError> {
    require_unscoped(caller)?;
    let now = state.now_ms();
    write.store(state).insert_limit_resource(LimitResource::RateLimit, &record(&r, now, now)?).await?;
    if write.committed(state).await {
        tracing::info!(rate_limit = %r.name, "rate limit created");
    }
    Ok(view(state, r, now, now))
}

/// Create a rate limit.
#[utoipa::path(post, path = "/api/v1/rate-limits", tag = "rate-limits",
    params(WriteParams),
    request_body = RateLimitSpec,
    responses(
        (status = 201, description = "Created", body = RateLimitSpec),
        (status = 200, description = "`dry_run=true`: every check passed; what would be created, nothing was", body = RateLimitSpec),
        (status = 400, description = "Not JSON, a wrong JSON type or an unknown field; `field` names it", body = ErrorBody),
        (status = 422, description = "A value breaks a rule; `field` names it", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "A rate limit with this name exists", body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(w): Query<WriteParams>,
    body: Bytes,
) -> Result<axum::response::Response, ApiError> {
    let caller = authorize(&state, &headers, Role::Writer)?;
    let r = RateLimitSpec::from_value(parse_json_object(&body)?)?;
    let created = create_spec(&state, &caller, r, w.write()).await?;
    Ok(super::created(w.write(), format!("/api/v1/rate-limits/{}", created.name), Json(created)))
}

/// List rate limits.
#[utoipa::path(get, path = "/api/v1/rate-limits", tag = "rate-limits",
    responses((status = 200, body = ListRateLimitsResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<ListRateLimitsResponse>, ApiError> {
    let caller = authorize(&state, &headers, Role::Reader)?;
    let rate_limits = all(&state).await?.into_iter().filter(|r| visible_to(&caller, r)).collect();
    Ok(Json(ListRateLimitsResponse { rate_limits }))
}

/// Whether `caller` may see rate limit `r`: every one for an unscoped token; for a token
/// scoped to some providers, only those scoped to one of its providers.
pub fn visible_to(caller: &TokenRecord, r: &RateLimitSpec) -> bool {
    match &caller.providers {
        None => true,
        Some(mine) => r.scope.provider.as_ref().is_some_and(|p| mine.contains(p)),
    }
}

/// Get a rate limit.
#[utoipa::path(get, path = "/api/v1/rate-limits/{name}", tag = "rate-limits",
    params(("name" = String, Path, description = "Rate limit name")),
    responses((status = 200, body = RateLimitSpec), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<RateLimitSpec>, ApiError> {
    let caller = authorize(&state, &headers, Role::Reader)?;
    let rec = stored(&state, &name).await?;
    let spec = parse(&rec)?;
    if !visible_to(&caller, &spec) {
        return Err(ApiError::NotFound(format!("rate limit \"{name}\" not found")));
    }
    Ok(Json(view(&state, spec, rec.created_at_ms, rec.updated_at_ms)))
}

/// Update a rate limit with a JSON merge patch (RFC 7396). `name` cannot change.
#[utoipa::path(patch, path = "/api/v1/rate-limits/{name}", tag = "rate-limits",
    params(("name" = String, Path, description = "Rate limit name"), WriteParams),
    request_body(content = RateLimitSpec, content_type = "application/merge-patch+json",
        description = "Fields to change; `null` clears a field"),
    responses((status = 200, body = RateLimitSpec), (status = 400, body = ErrorBody),
        (status = 422, description = "A value breaks a rule, or the name changed; `field` names it", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(w): Query<WriteParams>,
    body: Bytes,
) -> Result<Json<RateLimitSpec>, ApiError> {
    let caller = authorize(&state, &headers, Role::Writer)?;
    require_unscoped(&caller)?;
    let write = w.write();
    let patch = parse_json_object(&body)?;
    let rec = stored(&state, &name).await?;
    if let Some(v) = patch.get("name")
        && v.as_str() != Some(name.as_str())
    {
        return Err(ApiError::unprocessable("name", format!("is immutable; it is `{name}`")));
    }
    let mut doc: serde_json::Value = serde_json::from_str(&rec.spec_json)
        .map_err(|e| ApiError::Internal(format!("stored rate limit {name} is unreadable: {e}")))?;
    merge_patch(&mut doc, &patch);
    let r = RateLimitSpec::from_value(doc)?;
    let now = state.now_ms();
    write.store(&state).update_limit_resource(LimitResource::RateLimit, &record(&r, rec.created_at_ms, now)?).await?;
    if write.committed(&state).await {
        tracing::info!(rate_limit = %name, "rate limit updated");
    }
    Ok(Json(view(&state, r, rec.created_at_ms, now)))
}

/// Delete a rate limit.
#[utoipa::path(delete, path = "/api/v1/rate-limits/{name}", tag = "rate-limits",
    params(("name" = String, Path, description = "Rate limit name")),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let caller = authorize(&state, &headers, Role::Writer)?;
    require_unscoped(&caller)?;
    state.store().delete_limit_resource(LimitResource::RateLimit, &name).await?;
    super::reload_after_write(&state).await;
    tracing::info!(rate_limit = %name, "rate limit deleted");
    Ok(StatusCode::NO_CONTENT)
}
