//! `/api/v1/llm-providers`: create, list (filters + pagination), get, PATCH (JSON merge
//! patch; name and type immutable) and delete. Secret references must resolve at save time,
//! and a Bedrock guardrail must exist: it is looked up with `GetGuardrail` on the Bedrock
//! control plane, signed with the provider's own credentials in its region.

use super::query::Query;
use crate::admin::{Write, WriteParams, paging, parse_json_object};
use crate::auth::{authorize, require_scope};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::time::rfc3339;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use tollgate_core::patch::merge_patch;
use tollgate_core::warnings::{FieldWarning, model_warnings};
use tollgate_core::{ProviderSpec, ProviderType, Role};
use tollgate_store::{BindOutcome, HostBinding, ProviderQuery, ProviderRecord, StoreError, TokenRecord};
use utoipa::{IntoParams, ToSchema};

/// A page of providers.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListProvidersResponse {
    pub llm_providers: Vec<ProviderSpec>,
    /// Pass as `page_token` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// List filters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListProvidersParams {
    #[serde(rename = "type")]
    #[param(rename = "type", value_type = Option<tollgate_core::ProviderType>)]
    pub provider_type: Option<String>,
    #[param(value_type = Option<bool>)]
    pub enabled: Option<String>,
    /// Case-insensitive substring of the name or display name.
    pub name_contains: Option<String>,
    /// 1 to 1000 (larger values are capped); absent or 0: 50.
    #[param(value_type = Option<i64>, minimum = 0)]
    pub page_size: Option<String>,
    /// `next_page_token` of the previous page.
    #[param(pattern = r"^(k1\.([0-9a-f]{2})*)?$")]
    pub page_token: Option<String>,
}

/// The answer to a create or update: the provider, plus warnings about what was saved (models
/// the catalog does not know, Bedrock models named by a bare id that needs an inference
/// profile). Warnings never refuse a save; the list is empty when there is nothing to say.
#[derive(Debug, Serialize)]
pub struct ProviderWriteResponse {
    #[serde(flatten)]
    pub provider: ProviderSpec,
    pub warnings: Vec<FieldWarning>,
}

/// The provider's schema plus `warnings` ([`super::extended_schema`]).
impl utoipa::PartialSchema for ProviderWriteResponse {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let items = utoipa::openapi::Ref::from_schema_name(<FieldWarning as ToSchema>::name());
        let warnings = utoipa::openapi::schema::ArrayBuilder::new().items(items).build().into();
        super::extended_schema::<ProviderSpec>(
            "A provider as stored, with `warnings` about what was saved.",
            vec![("warnings", warnings, true)],
        )
    }
}

impl ToSchema for ProviderWriteResponse {
    fn schemas(schemas: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)>) {
        <ProviderSpec as ToSchema>::schemas(schemas);
        schemas
            .push((<FieldWarning as ToSchema>::name().into_owned(), <FieldWarning as utoipa::PartialSchema>::schema()));
        <FieldWarning as ToSchema>::schemas(schemas);
    }
}

impl ProviderWriteResponse {
    fn of(state: &AppState, provider: ProviderSpec) -> ProviderWriteResponse {
        let warnings = model_warnings(&provider, &state.catalog());
        ProviderWriteResponse { provider, warnings }
    }
}

/// The API view of a stored provider: the spec plus output-only fields.
pub fn view(state: &AppState, mut spec: ProviderSpec, created_ms: i64, updated_ms: i64) -> ProviderSpec {
    spec.url = Some(state.proxy_url(&spec.name));
    spec.created_at = Some(rfc3339(created_ms));
    spec.updated_at = Some(rfc3339(updated_ms));
    spec
}

fn record_view(state: &AppState, rec: &ProviderRecord) -> Result<ProviderSpec, ApiError> {
    let spec: ProviderSpec = serde_json::from_str(&rec.spec_json)
        .map_err(|e| ApiError::Internal(format!("stored provider {} is unreadable: {e}", rec.name)))?;
    Ok(view(state, spec, rec.created_at_ms, rec.updated_at_ms))
}

/// A provider-scoped caller may not make its provider reference a secret that a provider
/// outside its scope uses: another team's key on the same host would otherwise spend that
/// team's credential and quota (the host binding guards where a key goes, not who uses it).
/// Only references the save adds or changes are checked (`kept`: the stored provider's), so a
/// team keeps editing a provider an admin set up on a shared key.
async fn check_refs_scope(
    state: &AppState,
    caller: &TokenRecord,
    spec: &ProviderSpec,
    kept: &[(String, String)],
) -> Result<(), ApiError> {
    if caller.providers.is_none() {
        return Ok(());
    }
    for (field, name) in spec.secret_refs() {
        if kept.iter().any(|(f, n)| *f == field && *n == name) {
            continue;
        }
        super::secrets::check_secret_scope(state, caller, &name).await?;
    }
    Ok(())
}

/// A provider name in the path must match the name's pattern: 400 naming it, as for every
/// path parameter outside its pattern (a name that cannot exist is not "not found").
pub(crate) fn check_path_name(name: &str) -> Result<(), ApiError> {
    tollgate_core::validate::resource_name(name).map_err(|m| ApiError::invalid("name", m))
}

/// For read-only secret backends the store cannot check references; check them here.
async fn check_refs(state: &AppState, spec: &ProviderSpec) -> Result<bool, ApiError> {
    if state.secrets().is_writable() {
        return Ok(true); // checked inside the store's write transaction
    }
    for (field, name) in spec.secret_refs() {
        if !state.secrets().exists(state.store(), &name).await? {
            return Err(ApiError::unprocessable(field, format!("secret \"{name}\" not found")));
        }
    }
    Ok(false)
}

/// The provider's injected secret must be bound to its base URL's host: an unbound secret is
/// bound by the save (first use binds); a secret bound elsewhere refuses the save (422 naming
/// the ref field) unless the caller is admin, whose save adds the host. The binding is written
/// in the save's own transaction ([`tollgate_store::HostBinding`]), so a save that fails for
/// any reason (a name taken, a provider gone) changes no binding. None when the provider
/// injects no secret.
fn binding<'a>(
    caller: &TokenRecord,
    spec: &ProviderSpec,
    injected: &'a Option<(String, String, Option<String>)>,
) -> Result<Option<HostBinding<'a>>, ApiError> {
    let Some((_, secret, host)) = injected else {
        return Ok(None);
    };
    let Some(host) = host else {
        return Err(ApiError::unprocessable(format!("{}_config.base_url", spec.kind()), "must have a host"));
    };
    let add_if_other = caller.role.allows(Role::Admin);
    Ok(Some(HostBinding { secret, host, add_if_other }))
}

/// What a save's binding did (logged; a dry run logs nothing), or the save's error; a secret
/// bound elsewhere becomes the 422 naming the ref field.
fn saved(
    injected: &Option<(String, String, Option<String>)>,
    result: Result<Option<BindOutcome>, StoreError>,
    write: Write,
) -> Result<(), ApiError> {
    let (field, secret, host) = match injected {
        Some((field, secret, Some(host))) => (field.as_str(), secret.as_str(), host.as_str()),
        _ => ("api_key_ref", "", ""),
    };
    match result {
        // a rehearsal's binding was rolled back: nothing to log
        Ok(_) if write == Write::DryRun => {}
        Ok(Some(BindOutcome::FirstUse)) => tracing::info!(secret = %secret, host = %host, "secret bound on first use"),
        Ok(Some(BindOutcome::Added)) => {
            tracing::info!(secret = %secret, host = %host, "admin added a host to a secret's binding");
        }
        Ok(Some(BindOutcome::AlreadyBound | BindOutcome::Refused(_)) | None) => {}
        Err(StoreError::SecretBoundElsewhere { secret, hosts }) => {
            return Err(ApiError::unprocessable(
                field,
                format!(
                    "secret \"{secret}\" is bound to {} and may not be sent to {host}; an admin may add the host, \
                     or re-enter the secret's value with `bound_hosts`",
                    hosts.join(", ")
                ),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

/// The base URL's host must pass the upstream address policy (link-local, cloud metadata and
/// the gateway's own address are refused unless an operator allows them).
pub fn check_address(state: &AppState, spec: &ProviderSpec) -> Result<(), ApiError> {
    state
        .address_policy()
        .check_url(&spec.upstream_base_url())
        .map_err(|d| ApiError::unprocessable(format!("{}_config.base_url", spec.kind()), d.to_string()))
}

/// How long the guardrail lookup may take.
const GUARDRAIL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// A Bedrock provider's guardrail must exist (and not be on its way out).
async fn check_guardrail(state: &AppState, spec: &ProviderSpec) -> Result<(), ApiError> {
    const FIELD: &str = "bedrock_config.guardrail";
    let Some((id, version)) = spec.bedrock_config.as_ref().and_then(|c| c.guardrail_parts()) else {
        return Ok(());
    };
    let region = crate::aws::region(spec);
    let base = state.settings().bedrock_control_url(region);
    let url = reqwest::Url::parse(&format!("{base}/guardrails/{id}?guardrailVersion={version}"))
        .map_err(|e| ApiError::Internal(format!("guardrail URL: {e}")))?;
    state
        .address_policy()
        .check_url(url.as_str())
        .map_err(|d| ApiError::unprocessable(FIELD, format!("the guardrail could not be checked: {d}")))?;
    let mut headers = HeaderMap::new();
    state
        .aws()
        .sign(
            state.secret_lookup(None),
            spec,
            crate::aws::Outgoing { method: "GET", url: url.as_str(), body: b"" },
            &mut headers,
        )
        .await
        .map_err(|e| match e {
            // A key pair that does not resolve is the secret field's problem, not the guardrail's.
            crate::aws::AwsError::MissingSecret { secret, .. } => {
                let field = spec.secret_refs().into_iter().find(|(_, s)| *s == secret).map(|(f, _)| f);
                ApiError::unprocessable(
                    field.unwrap_or_else(|| FIELD.to_string()),
                    format!("secret \"{secret}\" not found"),
                )
            }
            other => ApiError::unprocessable(FIELD, format!("the guardrail could not be checked: {other}")),
        })?;
    let sent = tokio::time::timeout(GUARDRAIL_TIMEOUT, async {
        let resp = state.http().get(url).headers(headers).send().await?;
        let status = resp.status().as_u16();
        Ok::<_, reqwest::Error>((status, resp.bytes().await?))
    })
    .await;
    let (status, body) = match sent {
        Err(_) => {
            return Err(ApiError::unprocessable(
                FIELD,
                "the guardrail could not be checked: Bedrock did not answer in time",
            ));
        }
        Ok(Err(e)) => {
            return Err(ApiError::unprocessable(
                FIELD,
                format!("the guardrail could not be checked: the Bedrock control plane failed: {}", e.without_url()),
            ));
        }
        Ok(Ok(v)) => v,
    };
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let message = json["message"].as_str().or(json["Message"].as_str()).unwrap_or_default().to_string();
    match status {
        200..=299 => match json["status"].as_str() {
            Some("DELETING" | "FAILED") => Err(ApiError::unprocessable(
                FIELD,
                format!(
                    "guardrail \"{id}\" version {version} is {} in {region}",
                    json["status"].as_str().unwrap_or_default()
                ),
            )),
            _ => Ok(()),
        },
        404 => {
            Err(ApiError::unprocessable(FIELD, format!("guardrail \"{id}\" version {version} not found in {region}")))
        }
        _ => Err(ApiError::unprocessable(
            FIELD,
            format!("the guardrail could not be checked: Bedrock answered {status} {message}").trim_end().to_string(),
        )),
    }
}

fn record(spec: &ProviderSpec, created_ms: i64, updated_ms: i64) -> Result<ProviderRecord, ApiError> {
    Ok(ProviderRecord {
        name: spec.name.clone(),
        provider_type: spec.kind(),
        display_name: spec.display_name.clone(),
        enabled: spec.is_enabled(),
        spec_json: serde_json::to_string(spec).map_err(|e| ApiError::Internal(e.to_string()))?,
        secret_refs: spec.secret_refs(),
        created_at_ms: created_ms,
        updated_at_ms: updated_ms,
    })
}

/// Create a provider.
#[utoipa::path(post, path = "/api/v1/llm-providers", tag = "providers",
    params(WriteParams),
    request_body = ProviderSpec,
    responses(
        (status = 201, description = "Created; `warnings` lists models that will be unpriced or refused", body = ProviderWriteResponse),
        (status = 200, description = "`dry_run=true`: every check passed; what would be created, nothing was", body = ProviderWriteResponse),
        (status = 400, description = "Not JSON, a wrong JSON type or an unknown field; `field` names it", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "A provider with this name exists", body = ErrorBody),
        (status = 422, description = "A value breaks a rule (format, relation between fields, a secret that does not exist, \
the upstream address policy, a secret bound elsewhere); `field` names it", body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(w): Query<WriteParams>,
    body: Bytes,
) -> Result<axum::response::Response, ApiError> {
    let caller = authorize(&state, &headers, Role::Writer)?;
    let spec = ProviderSpec::from_value(parse_json_object(&body)?)?;
    let created = create_spec(&state, &caller, spec, w.write()).await?;
    let body = Json(ProviderWriteResponse::of(&state, created));
    Ok(super::created(w.write(), format!("/api/v1/llm-providers/{}", body.0.provider.name), body))
}

/// Creates a validated provider for `caller` (whose role the caller of this function has
/// checked): scope, secret references, the Bedrock guardrail, the write and the reload. The
/// admin API and the console both create providers through here.
pub async fn create_spec(
    state: &AppState,
    caller: &TokenRecord,
    spec: ProviderSpec,
    write: Write,
) -> Result<ProviderSpec, ApiError> {
    require_scope(caller, &spec.name)?;
    check_address(state, &spec)?;
    check_refs_scope(state, caller, &spec, &[]).await?;
    let in_db = check_refs(state, &spec).await?;
    check_guardrail(state, &spec).await?;
    let now = state.now_ms();
    let rec = record(&spec, now, now)?;
    let injected = crate::binding::injected_secret(&spec);
    let bound = binding(caller, &spec, &injected)?;
    saved(&injected, write.store(state).insert_provider(&rec, in_db, bound).await, write)?;
    if write.committed(state).await {
        tracing::info!(provider = %spec.name, r#type = %spec.kind(), "provider created");
    }
    Ok(view(state, spec, now, now))
}

/// List providers.
#[utoipa::path(get, path = "/api/v1/llm-providers", tag = "providers",
    params(ListProvidersParams),
    responses((status = 200, body = ListProvidersResponse),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<ListProvidersParams>,
) -> Result<Json<ListProvidersResponse>, ApiError> {
    let caller = authorize(&state, &headers, Role::Reader)?;
    let page = paging::parse(p.page_size.as_deref(), p.page_token.as_deref())?;
    let provider_type = match p.provider_type.as_deref() {
        None => None,
        Some(t) => Some(t.parse::<ProviderType>().map_err(|m| ApiError::invalid("type", m))?),
    };
    let enabled = match p.enabled.as_deref() {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(other) => return Err(ApiError::invalid("enabled", format!("`{other}` must be true or false"))),
    };
    let name_contains = p.name_contains.filter(|s| !s.is_empty());
    let limit = page.limit as usize;
    let mut visible: Vec<ProviderRecord> = Vec::new();
    let mut after = page.after;
    // Scoped tokens see only their providers, so a store page may shrink: keep reading until
    // one row past the page is visible (or the rows run out), so no token leads to an empty page.
    let scoped = caller.providers.is_some();
    let more = loop {
        let q =
            ProviderQuery { provider_type, enabled, name_contains: name_contains.clone(), after, limit: page.limit };
        let res = state.store().list_providers(&q).await?;
        visible.extend(res.items.into_iter().filter(|r| crate::auth::in_scope(&caller, &r.name)));
        if !scoped {
            break res.next_after.is_some();
        }
        if visible.len() > limit || res.next_after.is_none() {
            break visible.len() > limit;
        }
        after = res.next_after;
    };
    visible.truncate(limit);
    let next = if more { visible.last().map(|r| r.name.clone()) } else { None };
    let items = visible.iter().map(|r| record_view(&state, r)).collect::<Result<Vec<_>, _>>()?;
    Ok(Json(ListProvidersResponse { llm_providers: items, next_page_token: next.map(|k| paging::encode(&k)) }))
}

/// Get a provider.
#[utoipa::path(get, path = "/api/v1/llm-providers/{name}", tag = "providers",
    params(("name" = String, Path, description = "Provider name", pattern = r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")),
    responses((status = 200, body = ProviderSpec), (status = 400, description = "The name breaks its pattern", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<ProviderSpec>, ApiError> {
    let caller = authorize(&state, &headers, Role::Reader)?;
    check_path_name(&name)?;
    require_scope(&caller, &name)?;
    let rec = state
        .store()
        .get_provider(&name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("provider \"{name}\" not found")))?;
    Ok(Json(record_view(&state, &rec)?))
}

/// Update a provider with a JSON merge patch (RFC 7396). `name` and `type` cannot change.
#[utoipa::path(patch, path = "/api/v1/llm-providers/{name}", tag = "providers",
    params(("name" = String, Path, description = "Provider name", pattern = r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$"), WriteParams),
    request_body(content = ProviderSpec, content_type = "application/merge-patch+json",
        description = "Fields to change; `null` clears a field"),
    responses((status = 200, description = "Updated; `warnings` lists models that will be unpriced or refused",
            body = ProviderWriteResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, description = "A value breaks a rule, or an immutable field changed; `field` names it", body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(w): Query<WriteParams>,
    body: Bytes,
) -> Result<Json<ProviderWriteResponse>, ApiError> {
    let caller = authorize(&state, &headers, Role::Writer)?;
    check_path_name(&name)?;
    let patch = parse_json_object(&body)?;
    let updated = update_spec(&state, &caller, &name, &patch, w.write()).await?;
    Ok(Json(ProviderWriteResponse::of(&state, updated)))
}

/// Applies a JSON merge patch to a provider for `caller` (whose role the caller of this
/// function has checked): scope, immutable fields, full re-validation, secret references, the
/// guardrail, the write and the reload. Shared by the admin API and the console.
pub async fn update_spec(
    state: &AppState,
    caller: &TokenRecord,
    name: &str,
    patch: &serde_json::Value,
    write: Write,
) -> Result<ProviderSpec, ApiError> {
    require_scope(caller, name)?;
    let current = state
        .store()
        .get_provider(name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("provider \"{name}\" not found")))?;
    let mut doc: serde_json::Value = serde_json::from_str(&current.spec_json)
        .map_err(|e| ApiError::Internal(format!("stored provider {name} is unreadable: {e}")))?;
    for (field, now) in [("name", Some(current.name.as_str())), ("type", Some(current.provider_type.as_str()))] {
        if let Some(v) = patch.get(field)
            && v.as_str() != now
        {
            return Err(ApiError::unprocessable(field, format!("is immutable; it is `{}`", now.unwrap_or_default())));
        }
    }
    merge_patch(&mut doc, patch);
    let spec = ProviderSpec::from_value(doc)?;
    check_address(state, &spec)?;
    check_refs_scope(state, caller, &spec, &current.secret_refs).await?;
    let in_db = check_refs(state, &spec).await?;
    check_guardrail(state, &spec).await?;
    let now = state.now_ms();
    let rec = record(&spec, current.created_at_ms, now)?;
    let injected = crate::binding::injected_secret(&spec);
    let bound = binding(caller, &spec, &injected)?;
    saved(&injected, write.store(state).update_provider(&rec, in_db, bound).await, write)?;
    if write.committed(state).await {
        tracing::info!(provider = %name, "provider updated");
    }
    Ok(view(state, spec, current.created_at_ms, now))
}

/// `DELETE /api/v1/llm-providers/{name}` options.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteParams {
    /// `true`: also delete the provider's transcripts (recorded bodies); its usage stays.
    pub purge_transcripts: Option<bool>,
}

/// Delete a provider. Its usage history stays in reports; its transcripts too, unless
/// `purge_transcripts=true`.
#[utoipa::path(delete, path = "/api/v1/llm-providers/{name}", tag = "providers",
    params(("name" = String, Path, description = "Provider name", pattern = r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$"), DeleteParams),
    responses((status = 204, description = "Deleted"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(p): Query<DeleteParams>,
) -> Result<StatusCode, ApiError> {
    let caller = authorize(&state, &headers, Role::Writer)?;
    check_path_name(&name)?;
    delete_named(&state, &caller, &name).await?;
    if p.purge_transcripts == Some(true) {
        super::transcripts::purge(&state, &name, i64::MAX).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes a provider for `caller` (role checked by the caller of this function). Shared by
/// the admin API and the console.
pub async fn delete_named(state: &AppState, caller: &TokenRecord, name: &str) -> Result<(), ApiError> {
    require_scope(caller, name)?;
    state.store().delete_provider(name).await?;
    super::reload_after_write(state).await;
    tracing::info!(provider = %name, "provider deleted");
    Ok(())
}
