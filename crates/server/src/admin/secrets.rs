//! `/api/v1/secrets`: write-only values, readable names. A value is never returned,
//! logged or echoed in an error; deleting a secret a provider references is refused.

use super::query::Query;
use crate::admin::paging;
use crate::auth::authorize;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::time::rfc3339;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use tollgate_core::{Role, validate};
use tollgate_store::{PageQuery, SecretMeta, SecretValue};
use utoipa::{IntoParams, ToSchema};

/// Longest secret value accepted, in characters (so at most 256 KiB of UTF-8).
pub const MAX_SECRET_CHARS: usize = 64 * 1024;

/// Secret metadata. The value is write-only.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecretView {
    pub name: String,
    /// RFC 3339; absent for read-only backends that do not know it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    /// The hosts (`host[:port]`) this secret may be sent to, sorted; empty until a provider
    /// first uses it (that binds it to the provider's upstream host).
    pub bound_hosts: Vec<String>,
}

impl SecretView {
    /// The view of `m`, with its binding from the current snapshot.
    pub fn of(state: &AppState, m: &SecretMeta) -> Self {
        let t = |ms: i64| (ms > 0).then(|| rfc3339(ms));
        let bound_hosts =
            state.snapshot().bindings.get(&m.name).map(|h| h.iter().cloned().collect()).unwrap_or_default();
        SecretView { name: m.name.clone(), created_at: t(m.created_at_ms), updated_at: t(m.updated_at_ms), bound_hosts }
    }
}

/// A page of secret names.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListSecretsResponse {
    pub secrets: Vec<SecretView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// Body of `PUT /api/v1/secrets/{name}` (documents the shape; the handler parses the body
/// itself so that no error message can quote the value).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutSecretRequest {
    /// The secret value (write-only; never returned).
    #[schema(min_length = 1, max_length = 65536)]
    pub value: String,
    /// Replaces the hosts (`host[:port]`) the secret may be sent to. Whoever re-enters the
    /// value may set it; absent: the binding is kept.
    #[serde(default)]
    #[schema(value_type = Option<Vec<BoundHost>>, max_items = 32)]
    pub bound_hosts: Option<Vec<String>>,
}

/// A host a secret may be sent to: `host[:port]` (see `crate::binding::BOUND_HOST_PATTERN`).
#[derive(Debug, ToSchema)]
#[schema(value_type = String, pattern = r"^(?:(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)*[a-zA-Z](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?|(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9]))(?::(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?$")]
#[allow(dead_code)] // a schema only
pub struct BoundHost(String);

/// Body of `PATCH /api/v1/secrets/{name}` (admin only): rebinding without the value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchSecretRequest {
    /// The hosts (`host[:port]`) the secret may be sent to; `[]` unbinds it (the next
    /// provider save binds it again).
    #[schema(value_type = Vec<BoundHost>, max_items = 32)]
    pub bound_hosts: Vec<String>,
}

impl std::fmt::Debug for PutSecretRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PutSecretRequest {{ value: <redacted>, bound_hosts: {:?} }}", self.bound_hosts)
    }
}

/// Pagination parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// 1 to 1000 (larger values are capped); absent or 0: 50.
    #[param(value_type = Option<i64>, minimum = 0)]
    pub page_size: Option<String>,
    /// `next_page_token` of the previous page.
    #[param(pattern = r"^(k1\.([0-9a-f]{2})*)?$")]
    pub page_token: Option<String>,
}

fn check_name(name: &str) -> Result<(), ApiError> {
    validate::secret_name(name).map_err(|m| ApiError::invalid("name", m))
}

/// One page of secret metadata from whichever backend holds the secrets, and the last name
/// when more follow. Shared by the admin API and the console.
pub async fn list_meta(
    state: &AppState,
    page: paging::PageRequest,
) -> Result<(Vec<SecretMeta>, Option<String>), ApiError> {
    Ok(if state.secrets().is_writable() {
        let res = state.store().list_secrets(&PageQuery { after: page.after, limit: page.limit }).await?;
        (res.items, res.next_after)
    } else {
        let all = state.secrets().list_read_only().await;
        let mut rest: Vec<SecretMeta> =
            all.into_iter().filter(|m| page.after.as_ref().is_none_or(|a| m.name > *a)).collect();
        let more = rest.len() > page.limit as usize;
        rest.truncate(page.limit as usize);
        let next = if more { rest.last().map(|m| m.name.clone()) } else { None };
        (rest, next)
    })
}

/// List secret names.
#[utoipa::path(get, path = "/api/v1/secrets", tag = "secrets", params(PageParams),
    responses((status = 200, body = ListSecretsResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<PageParams>,
) -> Result<Json<ListSecretsResponse>, ApiError> {
    authorize(&state, &headers, Role::Reader)?;
    let page = paging::parse(p.page_size.as_deref(), p.page_token.as_deref())?;
    let (items, next) = list_meta(&state, page).await?;
    Ok(Json(ListSecretsResponse {
        secrets: items.iter().map(|m| SecretView::of(&state, m)).collect(),
        next_page_token: next.map(|k| paging::encode(&k)),
    }))
}

/// Get a secret's metadata (never its value).
#[utoipa::path(get, path = "/api/v1/secrets/{name}", tag = "secrets",
    params(("name" = String, Path, description = "UPPER_SNAKE_CASE secret name", pattern = r"^[A-Z][A-Z0-9_]*$", max_length = 255)),
    responses((status = 200, body = SecretView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<SecretView>, ApiError> {
    authorize(&state, &headers, Role::Reader)?;
    check_name(&name)?;
    let meta = find_meta(&state, &name).await?;
    Ok(Json(SecretView::of(&state, &meta)))
}

/// Create or replace a secret's value.
#[utoipa::path(put, path = "/api/v1/secrets/{name}", tag = "secrets",
    params(("name" = String, Path, description = "UPPER_SNAKE_CASE secret name", pattern = r"^[A-Z][A-Z0-9_]*$", max_length = 255)),
    request_body = PutSecretRequest,
    responses((status = 201, description = "Created", body = SecretView), (status = 200, description = "Replaced", body = SecretView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, description = "A value breaks a rule; `field` names it", body = ErrorBody)))]
pub async fn put(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<SecretView>), ApiError> {
    let caller = authorize(&state, &headers, Role::Writer)?;
    check_name(&name)?;
    if !state.secrets().is_writable() {
        return Err(state.secrets().read_only_error());
    }
    // Parse without serde error text: it could quote part of the value.
    let v = super::json::parse(&body).map_err(|e| match e {
        super::json::StrictJsonError::Duplicate { path } => super::duplicate_key(path),
        super::json::StrictJsonError::Syntax(_) => {
            ApiError::invalid("", "request body must be a JSON object like {\"value\": \"…\"}")
        }
    })?;
    let obj = v
        .as_object()
        .ok_or_else(|| ApiError::invalid("", "request body must be a JSON object like {\"value\": \"…\"}"))?;
    if let Some(k) = obj.keys().find(|k| !matches!(k.as_str(), "value" | "bound_hosts")) {
        return Err(ApiError::invalid(k.clone(), "unknown field; the fields are `value` and `bound_hosts`"));
    }
    let value = match obj.get("value") {
        None | Some(serde_json::Value::Null) => return Err(ApiError::invalid("value", "is required")),
        Some(serde_json::Value::String(s)) => s,
        Some(_) => return Err(ApiError::invalid("value", "must be a string")),
    };
    let hosts = match obj.get("bound_hosts") {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => Some(parse_bound_hosts(v)?),
    };
    let (created, meta) = store_value(&state, &caller, &name, value).await?;
    if let Some(hosts) = hosts {
        state.store().set_secret_bindings(&name, &hosts).await?;
        tracing::info!(secret = %name, hosts = hosts.len(), "secret rebound with its value");
        super::reload_after_write(&state).await;
    }
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(SecretView::of(&state, &meta))))
}

/// Checks `bound_hosts`: an array of at most [`crate::binding::MAX_BOUND_HOSTS`] `host[:port]`.
fn parse_bound_hosts(v: &serde_json::Value) -> Result<BTreeSet<String>, ApiError> {
    let items = v.as_array().ok_or_else(|| ApiError::invalid("bound_hosts", "must be an array of host[:port]"))?;
    if items.len() > crate::binding::MAX_BOUND_HOSTS {
        return Err(ApiError::unprocessable(
            "bound_hosts",
            format!("must have at most {} hosts", crate::binding::MAX_BOUND_HOSTS),
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let field = format!("bound_hosts[{i}]");
            let s = item.as_str().ok_or_else(|| ApiError::invalid(field.clone(), "must be a string"))?;
            crate::binding::parse_bound_host(s).map_err(|m| ApiError::unprocessable(field, m))
        })
        .collect()
}

/// Rebind a secret without its value: replace the hosts it may be sent to. Admin only (a
/// writer rebinds by re-entering the value with `PUT`).
#[utoipa::path(patch, path = "/api/v1/secrets/{name}", tag = "secrets",
    params(("name" = String, Path, description = "UPPER_SNAKE_CASE secret name", pattern = r"^[A-Z][A-Z0-9_]*$", max_length = 255)),
    request_body = PatchSecretRequest,
    responses((status = 200, description = "Rebound", body = SecretView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, description = "A value breaks a rule; `field` names it", body = ErrorBody)))]
pub async fn patch(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<SecretView>, ApiError> {
    let caller = authorize(&state, &headers, Role::Admin)?;
    check_name(&name)?;
    // An admin scoped to some providers rebinds only secrets its own providers alone use.
    check_secret_scope(&state, &caller, &name).await?;
    let v = super::parse_json_object(&body)?;
    let obj = v.as_object().ok_or_else(|| ApiError::invalid("", "request body must be a JSON object"))?;
    if let Some(k) = obj.keys().find(|k| k.as_str() != "bound_hosts") {
        return Err(ApiError::invalid(
            k.clone(),
            "unknown field; only `bound_hosts` may change without the value (use PUT to change the value)",
        ));
    }
    let hosts = match obj.get("bound_hosts") {
        None | Some(serde_json::Value::Null) => return Err(ApiError::invalid("bound_hosts", "is required")),
        Some(v) => parse_bound_hosts(v)?,
    };
    let meta = find_meta(&state, &name).await?;
    state.store().set_secret_bindings(&name, &hosts).await?;
    tracing::info!(secret = %name, hosts = hosts.len(), "secret rebound by an admin");
    super::reload_after_write(&state).await;
    Ok(Json(SecretView::of(&state, &meta)))
}

/// A secret's metadata from whichever backend holds it (404 when none does).
async fn find_meta(state: &AppState, name: &str) -> Result<SecretMeta, ApiError> {
    let not_found = || ApiError::NotFound(format!("secret \"{name}\" not found"));
    if state.secrets().is_writable() {
        state.store().get_secret_meta(name).await?.ok_or_else(not_found)
    } else {
        let all = state.secrets().list_read_only().await;
        all.into_iter().find(|m| m.name == name).ok_or_else(not_found)
    }
}

/// Checks and stores a secret value (the caller has checked the role): name rule, writable
/// backend, size, the sealed write and the reload. Returns whether it was created (not
/// replaced) and its metadata. Shared by the admin API and the console.
pub async fn store_value(
    state: &AppState,
    caller: &tollgate_store::TokenRecord,
    name: &str,
    value: &str,
) -> Result<(bool, SecretMeta), ApiError> {
    check_name(name)?;
    check_secret_scope(state, caller, name).await?;
    if !state.secrets().is_writable() {
        return Err(state.secrets().read_only_error());
    }
    if value.is_empty() {
        return Err(ApiError::unprocessable("value", "must not be empty"));
    }
    if value.chars().count() > MAX_SECRET_CHARS {
        return Err(ApiError::unprocessable("value", format!("must be at most {MAX_SECRET_CHARS} characters")));
    }
    // Every secret is a credential sent in a header (or signing one): a line break or other
    // control character could never be sent, and every call would fail with a 500 instead.
    if let Some(i) = value.chars().position(char::is_control) {
        return Err(ApiError::unprocessable(
            "value",
            format!("must not contain control characters (a line break, a tab, …): one at character {}", i + 1),
        ));
    }
    let created = state.store().put_secret(name, &SecretValue::new(value.to_string()), state.now_ms()).await?;
    let meta = state
        .store()
        .get_secret_meta(name)
        .await?
        .ok_or_else(|| ApiError::Internal(format!("secret {name} vanished after write")))?;
    tracing::info!(secret = %name, created, "secret stored");
    super::reload_after_write(state).await;
    Ok((created, meta))
}

/// A token scoped to some providers may write only secrets that no provider outside its scope
/// references: otherwise it could replace the key another team's provider sends (403 naming
/// the providers). Unscoped writers may write any secret. The referencing providers come from
/// the store's index on references (one query, whatever the number of providers).
pub async fn check_secret_scope(
    state: &AppState,
    caller: &tollgate_store::TokenRecord,
    name: &str,
) -> Result<(), ApiError> {
    if caller.providers.is_none() {
        return Ok(());
    }
    let outside: Vec<String> = state
        .store()
        .providers_referencing(name)
        .await?
        .into_iter()
        .filter(|p| !crate::auth::in_scope(caller, p))
        .collect();
    if outside.is_empty() {
        return Ok(());
    }
    Err(ApiError::PermissionDenied(format!(
        "secret \"{name}\" is used by provider(s) outside this token's scope ({}); only a token scoped to them \
         (or unscoped) may change or use it",
        outside.join(", ")
    )))
}

/// Delete a secret. Refused (409) while a provider references it.
#[utoipa::path(delete, path = "/api/v1/secrets/{name}", tag = "secrets",
    params(("name" = String, Path, description = "UPPER_SNAKE_CASE secret name", pattern = r"^[A-Z][A-Z0-9_]*$", max_length = 255)),
    responses((status = 204, description = "Deleted"), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "Referenced by providers", body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    authorize(&state, &headers, Role::Writer)?;
    remove(&state, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes a secret (the caller has checked the role); refused while a provider references
/// it. Shared by the admin API and the console.
pub async fn remove(state: &AppState, name: &str) -> Result<(), ApiError> {
    check_name(name)?;
    if !state.secrets().is_writable() {
        return Err(state.secrets().read_only_error());
    }
    state.store().delete_secret(name).await?;
    tracing::info!(secret = %name, "secret deleted");
    super::reload_after_write(state).await;
    Ok(())
}
