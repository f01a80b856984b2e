//! `DELETE /api/v1/transcripts?provider=NAME[&before=TIME]`: purges a provider's recorded
//! bodies (all of them, or those of requests before a time); the usage events, the request log
//! and reports stay. Deleting a provider with `?purge_transcripts=true` does the same
//! (`providers::delete`). Writers may purge (within their provider scope).

use super::query::Query;
use crate::auth::{authorize, require_scope};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use tollgate_core::Role;
use utoipa::{IntoParams, ToSchema};

/// What to purge.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PurgeParams {
    /// The provider whose transcripts go (it need not exist any more).
    #[param(value_type = String, required, min_length = 1)]
    pub provider: Option<String>,
    /// Only transcripts of requests that arrived before this (default: all).
    #[param(value_type = Option<String>, format = DateTime)]
    pub before: Option<String>,
}

/// `DELETE /api/v1/transcripts`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PurgeResponse {
    pub provider: String,
    /// Transcripts deleted.
    pub deleted: u64,
}

/// Deletes the transcripts of `provider` before `before_ms` (shared with provider deletion).
pub async fn purge(state: &AppState, provider: &str, before_ms: i64) -> Result<u64, ApiError> {
    let keyring = state.store().keyring();
    // First, so a transcript still queued or captured (its request started before the purge)
    // is dropped when written rather than landing after the delete below.
    state.transcripts().mark_purged(provider, before_ms.min(state.now_ms().saturating_add(1)));
    let n = state.transcripts().delete_before(&keyring, Some(provider), before_ms, crate::transcript::CHUNK).await?;
    tracing::info!(provider, deleted = n, "transcripts purged");
    Ok(n)
}

/// Purge a provider's transcripts (the usage events stay).
#[utoipa::path(delete, path = "/api/v1/transcripts", tag = "requests",
    params(PurgeParams),
    responses((status = 200, body = PurgeResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<PurgeParams>,
) -> Result<Json<PurgeResponse>, ApiError> {
    let caller = authorize(&state, &headers, Role::Writer)?;
    let provider = p
        .provider
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::invalid("provider", "is required: the provider whose transcripts to purge"))?
        .to_string();
    require_scope(&caller, &provider)?;
    let before_ms = super::time_param("before", &p.before)?.unwrap_or(i64::MAX);
    let deleted = purge(&state, &provider, before_ms).await?;
    Ok(Json(PurgeResponse { provider, deleted }))
}
