//! `/api/v1/tokens`: gateway tokens. The token is shown once, on create; only its SHA-256
//! is stored. Admin role required throughout.

use super::query::Query;
use crate::admin::secrets::PageParams;
use crate::admin::{paging, parse_json_object};
use crate::auth::{authorize, generate_token, hash_token};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::time::{parse_rfc3339, rfc3339};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use tollgate_core::token::display_prefix;
use tollgate_core::{Role, validate};
use tollgate_store::{DAY_MS, PageQuery, TokenRecord, TokenUsage};
use utoipa::ToSchema;

/// Body of `POST /api/v1/tokens`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    /// A label, 1 to 128 characters, not only spaces, no control characters.
    #[schema(value_type = String, min_length = 1, max_length = 128)]
    pub name: Option<String>,
    #[schema(value_type = Role)]
    pub role: Option<Role>,
    /// The user this token acts for (an email); usage is attributed to it.
    #[schema(format = Email)]
    pub user: Option<String>,
    /// The agent this token acts for (a slug like `support-bot`).
    #[schema(pattern = r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")]
    pub agent: Option<String>,
    /// Restrict the token to these providers (at least one); absent = all.
    #[schema(min_items = 1)]
    pub providers: Option<Vec<String>>,
    /// RFC 3339, in the future; absent = never expires.
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
}

/// A gateway token. `token` is present only in the response to create.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    pub id: String,
    pub name: String,
    /// The token itself: shown once, on create.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// First characters of the token, to recognise it.
    pub prefix: String,
    pub user: Option<String>,
    pub agent: Option<String>,
    pub role: Role,
    pub providers: Option<Vec<String>>,
    pub expires_at: Option<String>,
    pub created_at: String,
    pub revoked_at: Option<String>,
    /// active | expired | revoked
    pub status: String,
    /// When the newest request made with this token arrived (as its usage was stored); `null`
    /// when it was never used.
    #[schema(format = DateTime)]
    pub last_used_at: Option<String>,
    /// Requests made with this token over the last 7 UTC days (today and the 6 before).
    pub requests_7d: i64,
    /// What they cost, in microcents.
    pub spend_7d_microcents: i64,
    /// `providers` entries that name no existing provider (the token is issued; it cannot use
    /// them until they are created).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<tollgate_core::warnings::FieldWarning>,
}

impl TokenView {
    pub fn of(t: &TokenRecord, now: i64) -> TokenView {
        let status = if t.revoked_at_ms.is_some() {
            "revoked"
        } else if t.expires_at_ms.is_some_and(|e| e <= now) {
            "expired"
        } else {
            "active"
        };
        TokenView {
            id: t.id.to_string(),
            name: t.name.clone(),
            token: None,
            prefix: t.prefix.clone(),
            user: t.user.as_deref().map(str::to_string),
            agent: t.agent.as_deref().map(str::to_string),
            role: t.role,
            providers: t.providers.clone(),
            expires_at: t.expires_at_ms.map(rfc3339),
            created_at: rfc3339(t.created_at_ms),
            revoked_at: t.revoked_at_ms.map(rfc3339),
            status: status.into(),
            last_used_at: None,
            requests_7d: 0,
            spend_7d_microcents: 0,
            warnings: Vec::new(),
        }
    }

    /// Adds the warnings about `providers` entries that name no existing provider.
    pub fn with_warnings(mut self, state: &AppState) -> TokenView {
        let scope = self.providers.iter().flatten().enumerate().map(|(i, p)| (format!("providers[{i}]"), p.clone()));
        self.warnings = super::dangling_refs(state, scope.collect::<Vec<_>>(), None);
        self
    }

    /// Adds the token's usage (from [`usage_by_token`]).
    pub fn with_usage(mut self, u: Option<&TokenUsage>) -> TokenView {
        if let Some(u) = u {
            self.last_used_at = u.last_used_ms.map(rfc3339);
            self.requests_7d = u.recent_requests;
            self.spend_7d_microcents = u.recent_cost;
        }
        self
    }
}

/// Every token's usage: last use, and requests and spend over the last 7 UTC days (today and
/// the 6 before), from the per-token daily table the usage writer keeps.
pub async fn usage_by_token(state: &AppState) -> Result<HashMap<String, TokenUsage>, ApiError> {
    let now = state.now_ms();
    let since = now - now.rem_euclid(DAY_MS) - 6 * DAY_MS;
    Ok(state.usage().token_usage(since).await?)
}

/// A page of tokens.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListTokensResponse {
    pub tokens: Vec<TokenView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && s.len() <= 254
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Validates a create request into a record (without id, hash or prefix: see [`mint`]).
fn validate_request(req: CreateTokenRequest, now: i64) -> Result<TokenRecord, ApiError> {
    let name = req.name.unwrap_or_default();
    if name.trim().is_empty() {
        return Err(ApiError::unprocessable("name", "is required (1 to 128 characters)"));
    }
    validate::char_len(&name, 1, 128).map_err(|m| ApiError::unprocessable("name", m))?;
    validate::no_control(&name).map_err(|m| ApiError::unprocessable("name", m))?;
    let role = req
        .role
        .ok_or_else(|| ApiError::unprocessable("role", "is required: one of admin, writer, reader, invoker"))?;
    if let Some(u) = &req.user
        && !is_email(u)
    {
        return Err(ApiError::unprocessable("user", format!("`{u}` is not an email address")));
    }
    if let Some(a) = &req.agent {
        validate::resource_name(a).map_err(|m| ApiError::unprocessable("agent", m))?;
    }
    let providers = match req.providers {
        None => None,
        Some(list) => {
            if list.is_empty() {
                return Err(ApiError::unprocessable(
                    "providers",
                    "must name at least one provider; omit it for a token that may use every provider",
                ));
            }
            let mut out: Vec<String> = Vec::new();
            for (i, p) in list.into_iter().enumerate() {
                validate::resource_name(&p).map_err(|m| ApiError::unprocessable(format!("providers[{i}]"), m))?;
                if !out.contains(&p) {
                    out.push(p);
                }
            }
            Some(out)
        }
    };
    let expires_at_ms = match req.expires_at.as_deref() {
        None => None,
        Some(s) => {
            let ms = parse_rfc3339(s).ok_or_else(|| {
                ApiError::unprocessable(
                    "expires_at",
                    format!("`{s}` is not an RFC 3339 timestamp like 2027-01-31T00:00:00Z"),
                )
            })?;
            if ms <= now {
                return Err(ApiError::unprocessable("expires_at", "must be in the future"));
            }
            Some(ms)
        }
    };
    Ok(TokenRecord {
        id: "".into(),
        name,
        hash: [0; 32],
        prefix: String::new(),
        user: req.user.map(Into::into),
        agent: req.agent.map(Into::into),
        role,
        providers,
        expires_at_ms,
        created_at_ms: now,
        revoked_at_ms: None,
    })
}

/// Builds a new token record for `template`; returns the token and the record to store.
pub fn mint(mut template: TokenRecord) -> Result<(String, TokenRecord), ApiError> {
    let token = generate_token()?;
    template.id = uuid::Uuid::now_v7().to_string().into();
    template.hash = hash_token(&token);
    template.prefix = display_prefix(&token);
    Ok((token, template))
}

/// Create a gateway token. The response carries the token once.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = CreateTokenRequest,
    responses((status = 201, body = TokenView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, description = "A value breaks a rule; `field` names it", body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<TokenView>), ApiError> {
    let caller = authorize(&state, &headers, Role::Admin)?;
    let req: CreateTokenRequest = tollgate_core::error::from_json_value(parse_json_object(&body)?)?;
    Ok((StatusCode::CREATED, Json(create_from(&state, &caller, req).await?)))
}

/// A provider-scoped caller acts within its scope whatever its role: it may create or revoke
/// only tokens scoped within its own providers (an admin scoped to one provider must not mint
/// an unscoped admin, or revoke other teams' tokens).
fn within_scope(caller: &TokenRecord, providers: Option<&[String]>, what: &str) -> Result<(), ApiError> {
    let Some(mine) = caller.providers.as_ref() else { return Ok(()) };
    match providers {
        Some(theirs) if theirs.iter().all(|p| mine.contains(p)) => Ok(()),
        Some(theirs) => {
            let outside: Vec<&str> = theirs.iter().filter(|p| !mine.contains(p)).map(String::as_str).collect();
            Err(ApiError::PermissionDenied(format!(
                "this token is scoped to {}; it may not {what} a token for {}",
                mine.join(", "),
                outside.join(", ")
            )))
        }
        None => Err(ApiError::PermissionDenied(format!(
            "this token is scoped to {}; it may not {what} a token for every provider (name `providers` within its scope)",
            mine.join(", ")
        ))),
    }
}

/// Whether `caller` may see token `t`: every token for an unscoped caller; for a scoped one,
/// only tokens scoped within its providers (the ones it may create and revoke).
pub fn visible_to(caller: &TokenRecord, t: &TokenRecord) -> bool {
    within_scope(caller, t.providers.as_deref(), "see").is_ok()
}

/// Validates, mints and stores a token (the caller has checked the role; a scoped caller
/// creates only tokens within its scope); the view carries the token, once. Shared by the
/// admin API and the console.
pub async fn create_from(
    state: &AppState,
    caller: &TokenRecord,
    req: CreateTokenRequest,
) -> Result<TokenView, ApiError> {
    let now = state.now_ms();
    let template = validate_request(req, now)?;
    within_scope(caller, template.providers.as_deref(), "create")?;
    let (token, rec) = mint(template)?;
    state.store().insert_token(&rec).await?;
    super::reload_after_write(state).await;
    tracing::info!(token_id = %rec.id, name = %rec.name, role = %rec.role, "gateway token created");
    let mut view = TokenView::of(&rec, now).with_warnings(state);
    view.token = Some(token);
    Ok(view)
}

/// List gateway tokens (never the tokens themselves).
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", params(PageParams),
    responses((status = 200, body = ListTokensResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<PageParams>,
) -> Result<Json<ListTokensResponse>, ApiError> {
    let caller = authorize(&state, &headers, Role::Admin)?;
    let page = paging::parse(p.page_size.as_deref(), p.page_token.as_deref())?;
    let res = state.store().list_tokens(&PageQuery { after: page.after, limit: page.limit }).await?;
    let usage = usage_by_token(&state).await?;
    let now = state.now_ms();
    Ok(Json(ListTokensResponse {
        tokens: res
            .items
            .iter()
            .filter(|t| visible_to(&caller, t))
            .map(|t| TokenView::of(t, now).with_usage(usage.get(&*t.id)).with_warnings(&state))
            .collect(),
        next_page_token: res.next_after.map(|k| paging::encode(&k)),
    }))
}

/// Get one gateway token's metadata (a revoked token is gone: 410; the list still shows it).
#[utoipa::path(get, path = "/api/v1/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "Token id")),
    responses((status = 200, body = TokenView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 410, description = "The token was revoked", body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<TokenView>, ApiError> {
    let caller = authorize(&state, &headers, Role::Admin)?;
    let t = state
        .store()
        .get_token(&id)
        .await?
        .filter(|t| visible_to(&caller, t))
        .ok_or_else(|| ApiError::NotFound(format!("token \"{id}\" not found")))?;
    // DELETE revoked it: gone as a resource; the list keeps it (status `revoked`) for audit
    if let Some(at) = t.revoked_at_ms {
        return Err(ApiError::Gone(format!("token \"{id}\" ({}) was revoked at {}", t.name, rfc3339(at))));
    }
    let usage = usage_by_token(&state).await?;
    Ok(Json(TokenView::of(&t, state.now_ms()).with_usage(usage.get(&*t.id)).with_warnings(&state)))
}

/// Revoke a gateway token. It stops working for the next request.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "Token id")),
    responses((status = 200, description = "Revoked", body = TokenView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "The last lasting admin token (unscoped, without an expiry)", body = ErrorBody)))]
pub async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<TokenView>, ApiError> {
    let caller = authorize(&state, &headers, Role::Admin)?;
    Ok(Json(revoke_id(&state, &caller, &id).await?))
}

/// Revokes a token (the caller has checked the role; a scoped caller revokes only tokens
/// within its scope); the last lasting admin token — active, unscoped, without an expiry —
/// cannot be revoked, so the gateway always keeps one that can administer everything.
/// Shared by the admin API and the console.
pub async fn revoke_id(state: &AppState, caller: &TokenRecord, id: &str) -> Result<TokenView, ApiError> {
    let now = state.now_ms();
    if caller.providers.is_some() {
        let target = state
            .store()
            .get_token(id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("token \"{id}\" not found")))?;
        within_scope(caller, target.providers.as_deref(), "revoke")?;
    }
    let t = state.store().revoke_token(id, now).await?;
    super::reload_after_write(state).await;
    tracing::info!(token_id = %id, "gateway token revoked");
    Ok(TokenView::of(&t, now))
}
