//! `/healthz` (the process is alive), `/readyz` (the database answers, the config
//! snapshot is loaded and the last usage write succeeded) and `/metrics` (Prometheus counters).

use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

/// Health status.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Liveness: answers while the process runs.
#[utoipa::path(get, path = "/healthz", tag = "health", security(()),
    responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok", reason: None })
}

/// Readiness: the database answers, the configuration is loaded and usage events can be written.
#[utoipa::path(get, path = "/readyz", tag = "health", security(()),
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    if !state.is_ready() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health { status: "unavailable", reason: Some("configuration not loaded yet".into()) }),
        );
    }
    if state.metrics().usage_store_failing.load(std::sync::atomic::Ordering::Relaxed) != 0 {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "unavailable",
                reason: Some("usage events cannot be written (spilled or held; retrying)".into()),
            }),
        );
    }
    match state.store().ping().await {
        Ok(()) => (StatusCode::OK, Json(Health { status: "ready", reason: None })),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: database ping failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(Health { status: "unavailable", reason: Some("database unreachable".into()) }),
            )
        }
    }
}

/// Prometheus metrics: proxied requests forwarded and refused (by reason), upstream failures,
/// client cancellations, usage events queued, written and dropped, trace spans exported and
/// dropped; per provider, model and status, histograms of request duration, time to first
/// token and upstream duration, and tokens and cost (microcents) per bucket.
#[utoipa::path(get, path = "/metrics", tag = "health", security(()),
    responses((status = 200, description = "Prometheus text exposition format", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics().render())
}
