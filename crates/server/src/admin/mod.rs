//! The admin REST API under `/api/v1`, its OpenAPI 3.1 document (generated from the handler
//! annotations by utoipa, so routes and spec cannot drift) and the health endpoints.
//!
//! Every handler authenticates with [`crate::auth::authorize`] first. Errors are
//! [`crate::ApiError`]s, mapped to HTTP in one place.

pub mod budgets;
pub mod check;
pub mod conversations;
pub mod health;
mod json;
pub use json::{Strict, strict_value};
pub mod models;
pub mod paging;
pub mod providers;
pub mod query;
pub mod rate_limits;
pub mod requests;
pub mod secrets;
pub mod spending;
pub mod tokens;
pub mod transcripts;

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::DefaultBodyLimit;
use axum::{Extension, Json, Router};
use std::sync::Arc;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tollgate admin API",
        description = "Manage LLM providers, secrets, gateway tokens, budgets and rate limits of a Tollgate AI \
gateway, read the model catalog and spending reports. Authenticate with a gateway token: `Authorization: Bearer tg_…` \
(or, on a gateway started with `--oidc-issuer`, a JWT of that identity provider, whose role comes from its \
claims). Roles: any token may read the model catalog; reader may get and list and read spending and the request \
log, writer may also create, update and delete providers, secrets, budgets and rate limits and purge transcripts, \
admin also manages tokens and reads recorded request and response bodies."
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "providers", description = "LLM providers and their proxy URLs"),
        (name = "secrets", description = "Write-only upstream credentials"),
        (name = "tokens", description = "Gateway tokens"),
        (name = "models", description = "The model catalog: prices, limits and capabilities"),
        (name = "spending", description = "Cost and usage reports, from hourly rollups"),
        (name = "requests", description = "The request log, conversations and transcripts (bodies: admin only)"),
        (name = "budgets", description = "Spend caps per agent, per user or shared, enforced on every proxied call"),
        (name = "rate-limits", description = "Requests and tokens per minute, enforced on every proxied call"),
        (name = "health", description = "Liveness, readiness and this document")
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// The admin router (with state applied) and its OpenAPI document.
pub fn router(state: AppState) -> (Router, utoipa::openapi::OpenApi) {
    let body_limit = state.settings().max_admin_body_bytes;
    let (router, spec) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(health::metrics))
        .routes(routes!(openapi_json))
        .routes(routes!(providers::list, providers::create))
        .routes(routes!(providers::get, providers::update, providers::delete))
        .routes(routes!(check::check))
        .routes(routes!(secrets::list))
        .routes(routes!(secrets::get, secrets::put, secrets::patch, secrets::delete))
        .routes(routes!(tokens::list, tokens::create))
        .routes(routes!(tokens::get, tokens::revoke))
        .routes(routes!(models::list))
        .routes(routes!(models::get))
        .routes(routes!(spending::summary))
        .routes(routes!(spending::timeseries))
        .routes(routes!(spending::breakdown))
        .routes(routes!(spending::export_csv))
        .routes(routes!(requests::list))
        .routes(routes!(requests::get))
        .routes(routes!(conversations::list))
        .routes(routes!(conversations::get))
        .routes(routes!(transcripts::delete))
        .routes(routes!(budgets::list, budgets::create))
        .routes(routes!(budgets::get, budgets::update, budgets::delete))
        .routes(routes!(rate_limits::list, rate_limits::create))
        .routes(routes!(rate_limits::get, rate_limits::update, rate_limits::delete))
        .with_state(state)
        .split_for_parts();
    // no fallback here: the console's (`console::unknown_path`) answers unknown paths, with
    // this API's JSON 404 for everything but a browser's page request
    let router = router
        .layer(Extension(Arc::new(spec.clone())))
        .route_layer(axum::middleware::from_fn(refuse_dry_run))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn(move |req, next| capped_body(req, next, body_limit)));
    (router, spec)
}

/// Reads every admin request's body under the API's limit before routing, so the refusal is
/// this API's JSON error (axum's extractor answers 413 in plain text) and an oversized body is
/// drained first (see [`crate::body`]): a client still writing it gets the 413, not a reset.
async fn capped_body(
    req: axum::extract::Request,
    next: axum::middleware::Next,
    limit: usize,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (parts, body) = req.into_parts();
    match crate::body::read_capped(&parts.headers, body, limit).await {
        Ok(bytes) => next.run(axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes))).await,
        Err(crate::body::BodyError::TooLarge { cap }) => {
            ApiError::PayloadTooLarge(format!("request body: larger than the admin API's limit of {cap} bytes"))
                .into_response()
        }
        Err(e @ crate::body::BodyError::Unreadable) => ApiError::invalid("body", e.to_string()).into_response(),
    }
}

/// Refuses `dry_run` on an operation that has none ([`dry_run_unsupported`]).
async fn refuse_dry_run(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    use axum::response::IntoResponse;
    if dry_run_unsupported(req.method(), req.uri().path(), req.uri().query()) {
        return ApiError::invalid(
            "dry_run",
            "this operation has no dry run (only creating and updating providers, budgets and rate limits have one)",
        )
        .into_response();
    }
    next.run(req).await
}

/// Whether the request asks for a dry run (`dry_run` in its query) of a write that has none
/// (a delete, a token minted, a secret stored, a purge): the parameter would be ignored and
/// the real write done, so it is refused before the handler runs. Reads ignore it, and a
/// method no route has still gets its 405 from the router.
fn dry_run_unsupported(method: &axum::http::Method, path: &str, query: Option<&str>) -> bool {
    use axum::http::Method;
    let asked = query.is_some_and(|q| q.split('&').any(|kv| kv.split('=').next() == Some("dry_run")));
    if !asked {
        return false;
    }
    let segments: Vec<&str> = path.trim_start_matches("/api/v1/").split('/').collect();
    matches!(
        (method, segments.as_slice()),
        (&Method::DELETE, ["llm-providers" | "budgets" | "rate-limits" | "tokens" | "secrets", _] | ["transcripts"])
            | (&Method::POST, ["tokens"] | ["llm-providers", _, "check"])
            | (&Method::PUT | &Method::PATCH, ["secrets", _])
    )
}

/// The OpenAPI 3.1 document of this API.
#[utoipa::path(get, path = "/api/openapi.json", tag = "health", security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json")))]
async fn openapi_json(Extension(spec): Extension<Arc<utoipa::openapi::OpenApi>>) -> Json<utoipa::openapi::OpenApi> {
    Json((*spec).clone())
}

/// Whether a create or update is written, or only rehearsed (`?dry_run=true`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    Commit,
    /// Every check of the real write runs, the store's own inside its transaction (a name
    /// taken, a secret bound elsewhere, a second override), which then rolls back
    /// ([`tollgate_store::Store::rehearsal`]): nothing is written, reloaded or logged.
    DryRun,
}

impl Write {
    /// The store handle this write goes through.
    pub(crate) fn store(self, state: &AppState) -> tollgate_store::Store {
        match self {
            Write::Commit => state.store().clone(),
            Write::DryRun => state.store().rehearsal(),
        }
    }

    /// After the write: a committed one reloads this replica's snapshot and answers true (the
    /// caller logs it); a dry run answers false.
    pub(crate) async fn committed(self, state: &AppState) -> bool {
        if self == Write::DryRun {
            return false;
        }
        reload_after_write(state).await;
        true
    }
}

/// `?dry_run=` of the create and update operations.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WriteParams {
    /// `true`: run every check of the write (the database's inside its transaction, then
    /// rolled back) and answer what it would, changing nothing. `tollgate apply` rehearses
    /// every document this way before it writes any.
    pub dry_run: Option<bool>,
}

impl WriteParams {
    pub fn write(&self) -> Write {
        if self.dry_run == Some(true) { Write::DryRun } else { Write::Commit }
    }
}

/// Warnings for the scope references of a budget or rate limit that name nothing on this
/// replica's snapshot: `providers` (field, name) that do not exist, a `token` (field, id or
/// name) no active token has. Never a refusal: a manifest may create the provider after the
/// limit, and deleting a provider leaves its limits in place (they show the warning then).
pub(crate) fn dangling_refs(
    state: &AppState,
    providers: impl IntoIterator<Item = (String, String)>,
    token: Option<(&str, &str)>,
) -> Vec<tollgate_core::warnings::FieldWarning> {
    use tollgate_core::warnings::FieldWarning;
    let snap = state.snapshot();
    let mut out: Vec<FieldWarning> = providers
        .into_iter()
        .filter(|(_, name)| !snap.providers.contains_key(name.as_str()))
        .map(|(field, name)| FieldWarning {
            field,
            message: format!("provider \"{name}\" does not exist: no call goes through it until it is created"),
        })
        .collect();
    if let Some((field, t)) = token
        && !snap.tokens.values().any(|r| &*r.id == t || r.name == t)
    {
        out.push(FieldWarning {
            field: field.to_string(),
            message: format!("no active token has the id or name \"{t}\": no call matches until one does"),
        });
    }
    out
}

/// A create's answer: 201 with `Location`, or 200 for a dry run (nothing was created).
pub(crate) fn created(
    write: Write,
    location: String,
    body: impl axum::response::IntoResponse,
) -> axum::response::Response {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    match write {
        Write::Commit => (StatusCode::CREATED, [(header::LOCATION, location)], body).into_response(),
        Write::DryRun => (StatusCode::OK, body).into_response(),
    }
}

/// Rebuilds this replica's snapshot right after a config write, so the next request (proxy
/// or admin) sees it; if that fails, the config poller retries.
pub(crate) async fn reload_after_write(state: &AppState) {
    if let Err(e) = state.reload().await {
        tracing::error!(error = %e, "config reload after a write failed; the poller will retry");
    }
}

/// Parses a request body that must be a JSON object; a key twice in one object is refused
/// (400 naming the key).
pub(crate) fn parse_json_object(body: &[u8]) -> Result<serde_json::Value, ApiError> {
    let v = json::parse(body).map_err(|e| match e {
        json::StrictJsonError::Duplicate { path } => duplicate_key(path),
        json::StrictJsonError::Syntax(e) => ApiError::invalid("", format!("request body is not valid JSON: {e}")),
    })?;
    if !v.is_object() {
        return Err(ApiError::invalid("", "request body must be a JSON object"));
    }
    Ok(v)
}

/// The schema of an answer that is a resource plus a few properties of its own (serde's
/// `flatten`). Written out instead of derived because the resource's schema refuses unknown
/// properties (`additionalProperties: false`: it is also what clients send or what files
/// hold), which an `allOf` would carry over to the answer and so refuse the extra properties.
/// `extra` is (name, schema, required).
pub(crate) fn extended_schema<T: utoipa::PartialSchema>(
    description: &str,
    extra: Vec<(&str, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>, bool)>,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::Schema;
    let mut obj = match T::schema() {
        RefOr::T(Schema::Object(o)) => o,
        other => return other,
    };
    obj.additional_properties = None;
    obj.description = Some(description.to_string());
    for (name, schema, required) in extra {
        obj.properties.insert(name.to_string(), schema);
        if required {
            obj.required.push(name.to_string());
        }
    }
    RefOr::T(Schema::Object(obj))
}

/// A query parameter with a documented format or set of values: absent is `None`, an empty
/// value is refused (it is not in the set; omit the parameter instead).
pub(crate) fn given<'a>(field: &'static str, v: &'a Option<String>) -> Result<Option<&'a str>, ApiError> {
    match v.as_deref().map(str::trim) {
        Some("") => Err(ApiError::invalid(field, "must not be empty; omit it instead")),
        other => Ok(other),
    }
}

/// An RFC 3339 query parameter (documented `format: date-time`), see [`given`].
pub(crate) fn time_param(field: &'static str, v: &Option<String>) -> Result<Option<i64>, ApiError> {
    match given(field, v)? {
        None => Ok(None),
        Some(s) => crate::time::parse_rfc3339(s).map(Some).ok_or_else(|| {
            ApiError::invalid(field, format!("`{s}` is not an RFC 3339 timestamp (e.g. 2026-11-24T00:00:00Z)"))
        }),
    }
}

fn duplicate_key(path: String) -> ApiError {
    ApiError::invalid(path, "duplicate key: each key may appear only once in a JSON object")
}

#[cfg(test)]
mod tests {
    use axum::http::Method;

    #[test]
    fn dry_run_only_where_a_write_can_rehearse() {
        let q = Some("dry_run=true");
        for (m, p) in [
            (Method::POST, "/api/v1/llm-providers"),
            (Method::PATCH, "/api/v1/llm-providers/oa"),
            (Method::POST, "/api/v1/budgets"),
            (Method::PATCH, "/api/v1/rate-limits/r"),
        ] {
            assert!(!super::dry_run_unsupported(&m, p, q), "{m} {p}");
        }
        for (m, p) in [
            (Method::DELETE, "/api/v1/llm-providers/oa"),
            (Method::POST, "/api/v1/tokens"),
            (Method::PUT, "/api/v1/secrets/K"),
            (Method::POST, "/api/v1/llm-providers/oa/check"),
            (Method::DELETE, "/api/v1/transcripts"),
        ] {
            assert!(super::dry_run_unsupported(&m, p, q), "{m} {p}");
        }
        // reads ignore it; a method no route has is the router's 405
        for (m, p) in
            [(Method::GET, "/api/v1/budgets"), (Method::TRACE, "/api/v1/budgets"), (Method::PUT, "/api/v1/budgets")]
        {
            assert!(!super::dry_run_unsupported(&m, p, q), "{m} {p}");
        }
        assert!(!super::dry_run_unsupported(
            &Method::DELETE,
            "/api/v1/llm-providers/oa",
            Some("purge_transcripts=true")
        ));
    }
}
