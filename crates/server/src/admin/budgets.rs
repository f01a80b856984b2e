//! `/api/v1/budgets`: create, list, get, PATCH (JSON merge patch; `name` immutable) and delete
//! spend caps (ARCHITECTURE.md, Decisions: Budgets and rate limits). Readers read, writers
//! write; a token scoped to some providers may read but not write budgets (they span
//! providers). Answers add the output-only fields: the period's bounds, the spend so far (the
//! largest pool for per-agent and per-user budgets, named by `top_key`) and the reservations in
//! flight on the answering replica. Editing a budget never resets its period's spend.

use crate::admin::query::Query;
use crate::admin::{Write, WriteParams, parse_json_object};
use crate::auth::authorize;
use crate::error::{ApiError, ErrorBody};
use crate::limits::Kind;
use crate::state::AppState;
use crate::time::rfc3339;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;
use std::collections::HashMap;
use tollgate_core::Role;
use tollgate_core::budget::{BudgetSpec, Pooling};
use tollgate_core::patch::merge_patch;
use tollgate_store::{Dimension, LimitRecord, LimitResource, StoreError, TokenRecord};
use utoipa::ToSchema;

/// Every budget.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListBudgetsResponse {
    pub budgets: Vec<BudgetSpec>,
}

/// Budgets and rate limits span providers: only a token without a provider scope writes them.
pub(crate) fn require_unscoped(caller: &TokenRecord) -> Result<(), ApiError> {
    if caller.providers.is_some() {
        return Err(ApiError::PermissionDenied(
            "budgets and rate limits span providers: a token scoped to some providers may not change them".into(),
        ));
    }
    Ok(())
}

/// The spend of a budget's current period: `(top pool, its spend, reserved here)`, from the
/// flushed windows plus what this replica settled and has in flight; a pool with no window
/// yet (no matching call since the budget was made) shows what the usage rollups hold of the
/// period, which is where its window will start from, so a new budget shows the period's
/// spend at once rather than $0 until its first call.
pub async fn usage(state: &AppState, b: &BudgetSpec) -> Result<(Option<String>, i64, i64), ApiError> {
    let now = state.now_ms();
    let (start, end) = b.period.bounds(now);
    let mut pools: HashMap<String, i64> =
        state.store().limit_window_spent(Kind::Budget.as_str(), &b.name, start).await?.into_iter().collect();
    let mut reserved = 0;
    for (pool, r, consumed) in state.limits().local(Kind::Budget, &b.name, start) {
        *pools.entry(pool).or_default() += consumed;
        reserved += r;
    }
    // A shared budget's one pool with a window already has its spend: no rollup read.
    if !(b.pooling_mode == Pooling::Shared && pools.contains_key("")) {
        for (pool, spent) in rollup_pools(state, b, start, end, now).await? {
            pools.entry(pool).or_insert(spent);
        }
    }
    let top = pools.into_iter().max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(&a.0)));
    Ok(match top {
        Some((pool, spent)) => (Some(pool).filter(|p| !p.is_empty()), spent, reserved),
        None => (None, 0, reserved),
    })
}

/// The period's spend per pool as the usage rollups hold it: the whole scope for a shared
/// budget, each user's or agent's for a per-user or per-agent one (a default leaves out those
/// with an override of their own, whose calls it does not cap: `budget::matching_budgets`).
async fn rollup_pools(
    state: &AppState,
    b: &BudgetSpec,
    start: i64,
    end: i64,
    now: i64,
) -> Result<HashMap<String, i64>, ApiError> {
    let (per, agent, user) = match (b.pooling_mode, b.override_key()) {
        (Pooling::Shared, _) => (None, b.scope.agent.as_deref(), b.scope.user.as_deref()),
        (Pooling::PerAgent, key) => (Some(Dimension::Agent), key, b.scope.user.as_deref()),
        (Pooling::PerUser, key) => (Some(Dimension::User), b.scope.agent.as_deref(), key),
    };
    let src = crate::limits::SourceRef { agent, user, providers: &b.scope.providers };
    let mut pools = crate::limits::rollup_spend(state.usage(), src, start, end, now, per).await?;
    if per.is_some() && b.override_key().is_none() {
        let snapshot = state.snapshot();
        for other in snapshot.limits.budgets.iter().map(|o| &o.spec) {
            if other.pooling_mode == b.pooling_mode
                && let Some(key) = other.override_key()
            {
                pools.remove(key);
            }
        }
    }
    Ok(pools)
}

/// The API view: the spec plus output-only fields.
pub async fn view(
    state: &AppState,
    mut b: BudgetSpec,
    created_ms: i64,
    updated_ms: i64,
) -> Result<BudgetSpec, ApiError> {
    let (start, end) = b.period.bounds(state.now_ms());
    let (top, spent, reserved) = usage(state, &b).await?;
    b.current_spend_microcents = Some(spent);
    b.top_key = top;
    b.reserved_microcents = Some(reserved);
    b.period_starts_at = Some(rfc3339(start));
    b.period_resets_at = Some(rfc3339(end));
    b.created_at = Some(rfc3339(created_ms));
    b.updated_at = Some(rfc3339(updated_ms));
    let providers = b.scope.providers.iter().enumerate().map(|(i, p)| (format!("scope.providers[{i}]"), p.clone()));
    b.warnings = super::dangling_refs(state, providers.collect::<Vec<_>>(), None);
    Ok(b)
}

fn record(b: &BudgetSpec, created_ms: i64, updated_ms: i64) -> Result<LimitRecord, ApiError> {
    Ok(LimitRecord {
        name: b.name.clone(),
        override_key: b.override_key().map(|k| format!("{}:{k}", b.pooling_mode.as_str())),
        spec_json: serde_json::to_string(b).map_err(|e| ApiError::Internal(e.to_string()))?,
        created_at_ms: created_ms,
        updated_at_ms: updated_ms,
    })
}

fn store_error(b: &BudgetSpec, e: StoreError) -> ApiError {
    match e {
        StoreError::AlreadyExists { what: "budget override", name } => ApiError::unprocessable(
            b.override_field(),
            format!(
                "`{}` already has a {} override budget ({name}); at most one per {}",
                b.override_key().unwrap_or_default(),
                b.pooling_mode.as_str(),
                if b.override_field() == "scope.user" { "user" } else { "agent" }
            ),
        ),
        other => other.into(),
    }
}

async fn stored(state: &AppState, name: &str) -> Result<(BudgetSpec, LimitRecord), ApiError> {
    let rec = state
        .store()
        .get_limit_resource(LimitResource::Budget, name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("budget \"{name}\" not found")))?;
    Ok((parse(&rec)?, rec))
}

fn parse(rec: &LimitRecord) -> Result<BudgetSpec, ApiError> {
    let name = &rec.name;
    let v: serde_json::Value = serde_json::from_str(&rec.spec_json)
        .map_err(|e| ApiError::Internal(format!("stored budget {name} is unreadable: {e}")))?;
    BudgetSpec::from_value(v).map_err(|e| ApiError::Internal(format!("stored budget {name}: {e}")))
}

/// Creates a validated budget (the API and the console). The caller checked the role.
pub async fn create_spec(
    state: &AppState,
    caller: &TokenRecord,
    b: BudgetSpec,
    write: Write,
) -> Result<BudgetSpec, ApiError> {
    require_unscoped(caller)?;
    let now = state.now_ms();
    write
        .store(state)
        .insert_limit_resource(LimitResource::Budget, &record(&b, now, now)?)
        .await
        .map_err(|e| store_error(&b, e))?;
    if write.committed(state).await {
        tracing::info!(budget = %b.name, "budget created");
    }
    view(state, b, now, now).await
}

/// Applies a merge patch (the API and the console). The caller checked the role.
pub async fn update_spec(
    state: &AppState,
    caller: &TokenRecord,
    name: &str,
    patch: &serde_json::Value,
    write: Write,
) -> Result<BudgetSpec, ApiError> {
    require_unscoped(caller)?;
    let (_, rec) = stored(state, name).await?;
    if let Some(v) = patch.get("name")
        && v.as_str() != Some(name)
    {
        return Err(ApiError::unprocessable("name", format!("is immutable; it is `{name}`")));
    }
    let mut doc: serde_json::Value = serde_json::from_str(&rec.spec_json)
        .map_err(|e| ApiError::Internal(format!("stored budget {name} is unreadable: {e}")))?;
    merge_patch(&mut doc, patch);
    let b = BudgetSpec::from_value(doc)?;
    let now = state.now_ms();
    write
        .store(state)
        .update_limit_resource(LimitResource::Budget, &record(&b, rec.created_at_ms, now)?)
        .await
        .map_err(|e| store_error(&b, e))?;
    if write.committed(state).await {
        tracing::info!(budget = %name, "budget updated");
    }
    view(state, b, rec.created_at_ms, now).await
}

/// Deletes a budget and its windows (the API and the console). The caller checked the role.
pub async fn delete_named(state: &AppState, caller: &TokenRecord, name: &str) -> Result<(), ApiError> {
    require_unscoped(caller)?;
    state.store().delete_limit_resource(LimitResource::Budget, name).await?;
    super::reload_after_write(state).await;
    tracing::info!(budget = %name, "budget deleted");
    Ok(())
}

/// Every budget with its current usage, by name (the API and the console).
pub async fn all(state: &AppState) -> Result<Vec<BudgetSpec>, ApiError> {
    let mut out = Vec::new();
    for rec in state.store().all_limit_resources(LimitResource::Budget).await? {
        let spec = parse(&rec)?;
        out.push(view(state, spec, rec.created_at_ms, rec.updated_at_ms).await?);
    }
    Ok(out)
}

/// Create a budget.
#[utoipa::path(post, path = "/api/v1/budgets", tag = "budgets",
    params(WriteParams),
    request_body = BudgetSpec,
    responses(
        (status = 201, description = "Created", body = BudgetSpec),
        (status = 200, description = "`dry_run=true`: every check passed; what would be created, nothing was", body = BudgetSpec),
        (status = 400, description = "Not JSON, a wrong JSON type or an unknown field; `field` names it", body = ErrorBody),
        (status = 422, description = "A value breaks a rule; `field` names it", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "A budget with this name exists", body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(w): Query<WriteParams>,
    body: Bytes,
) -> Result<axum::response::Response, ApiError> {
    let caller = authorize(&state, &headers, Role::Writer)?;
    let b = BudgetSpec::from_value(parse_json_object(&body)?)?;
    let created = create_spec(&state, &caller, b, w.write()).await?;
    Ok(super::created(w.write(), format!("/api/v1/budgets/{}", created.name), Json(created)))
}

/// List budgets, with each one's spend in its current period.
#[utoipa::path(get, path = "/api/v1/budgets", tag = "budgets",
    responses((status = 200, body = ListBudgetsResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<ListBudgetsResponse>, ApiError> {
    let caller = authorize(&state, &headers, Role::Reader)?;
    let budgets = all(&state).await?.into_iter().filter(|b| visible_to(&caller, b)).collect();
    Ok(Json(ListBudgetsResponse { budgets }))
}

/// Whether `caller` may see budget `b`: every budget for an unscoped token; for a token scoped
/// to some providers, only budgets scoped to providers within its scope (the others count
/// spend through providers it may not read: another team's spend).
pub fn visible_to(caller: &TokenRecord, b: &BudgetSpec) -> bool {
    match &caller.providers {
        None => true,
        Some(mine) => !b.scope.providers.is_empty() && b.scope.providers.iter().all(|p| mine.contains(p)),
    }
}

/// Get a budget.
#[utoipa::path(get, path = "/api/v1/budgets/{name}", tag = "budgets",
    params(("name" = String, Path, description = "Budget name")),
    responses((status = 200, body = BudgetSpec), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<BudgetSpec>, ApiError> {
    let caller = authorize(&state, &headers, Role::Reader)?;
    let (spec, rec) = stored(&state, &name).await?;
    if !visible_to(&caller, &spec) {
        return Err(ApiError::NotFound(format!("budget \"{name}\" not found")));
    }
    Ok(Json(view(&state, spec, rec.created_at_ms, rec.updated_at_ms).await?))
}

/// Update a budget with a JSON merge patch (RFC 7396). `name` cannot change; the period's
/// spend is kept.
#[utoipa::path(patch, path = "/api/v1/budgets/{name}", tag = "budgets",
    params(("name" = String, Path, description = "Budget name"), WriteParams),
    request_body(content = BudgetSpec, content_type = "application/merge-patch+json",
        description = "Fields to change; `null` clears a field"),
    responses((status = 200, body = BudgetSpec), (status = 400, body = ErrorBody),
        (status = 422, description = "A value breaks a rule, or the name changed; `field` names it", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(w): Query<WriteParams>,
    body: Bytes,
) -> Result<Json<BudgetSpec>, ApiError> {
    let caller = authorize(&state, &headers, Role::Writer)?;
    let patch = parse_json_object(&body)?;
    Ok(Json(update_spec(&state, &caller, &name, &patch, w.write()).await?))
}

/// Delete a budget (its spend history stays in the usage reports).
#[utoipa::path(delete, path = "/api/v1/budgets/{name}", tag = "budgets",
    params(("name" = String, Path, description = "Budget name")),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let caller = authorize(&state, &headers, Role::Writer)?;
    delete_named(&state, &caller, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
