//! `/api/v1/models`: the model catalog in use (embedded catalog + operator overlay), read-only.
//! Any valid gateway token may read it. Bedrock bare ids list the inference profiles the
//! catalog has for them.

use super::query::Query;
use crate::admin::paging;
use crate::auth::authorize;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::time::rfc3339;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use tollgate_core::{Catalog, ModelEntry, ProviderType, Role};
use utoipa::{IntoParams, ToSchema};

/// A catalog entry as the API shows it.
#[derive(Debug, Serialize)]
pub struct ModelView {
    #[serde(flatten)]
    pub model: ModelEntry,
    /// Bedrock foundation ids: the inference profiles the catalog prices for this model.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub inference_profiles: Vec<String>,
}

/// The entry's schema plus `inference_profiles` ([`super::extended_schema`]).
impl utoipa::PartialSchema for ModelView {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let profiles = utoipa::openapi::schema::ArrayBuilder::new()
            .items(utoipa::openapi::schema::Object::with_type(utoipa::openapi::schema::Type::String))
            .description(Some("Bedrock foundation ids: the inference profiles the catalog prices for this model."))
            .build()
            .into();
        super::extended_schema::<ModelEntry>(
            "A catalog entry as the API shows it.",
            vec![("inference_profiles", profiles, false)],
        )
    }
}

impl ToSchema for ModelView {
    fn schemas(schemas: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)>) {
        <ModelEntry as ToSchema>::schemas(schemas);
    }
}

/// The overlay file's state.
#[derive(Debug, Serialize, ToSchema)]
pub struct OverlayView {
    pub path: String,
    /// The overlay version in use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Why the file on disk is not in use (the previous good catalog stays in use).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loaded_at: Option<String>,
}

/// A page of catalog entries and the catalog they come from.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListModelsResponse {
    /// Stored on every usage event priced with this catalog: `<catalog>` or `<catalog>+<overlay>`.
    pub version: String,
    pub effective_date: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overlay: Option<OverlayView>,
    pub models: Vec<ModelView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// One catalog entry and the catalog version.
#[derive(Debug, Serialize, ToSchema)]
pub struct GetModelResponse {
    pub version: String,
    pub model: ModelView,
}

/// List filters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListModelsParams {
    #[param(value_type = Option<tollgate_core::ProviderType>)]
    pub provider_type: Option<String>,
    /// Case-insensitive substring of the name or label.
    pub name_contains: Option<String>,
    /// 1 to 1000 (larger values are capped); absent or 0: 50.
    #[param(value_type = Option<i64>, minimum = 0)]
    pub page_size: Option<String>,
    /// `next_page_token` of the previous page.
    #[param(pattern = r"^(k1\.([0-9a-f]{2})*)?$")]
    pub page_token: Option<String>,
}

/// `provider_type` of a model lookup.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GetModelParams {
    /// Needed when the name exists under several provider types.
    #[param(value_type = Option<tollgate_core::ProviderType>)]
    pub provider_type: Option<String>,
}

fn parse_type(v: Option<&str>) -> Result<Option<ProviderType>, ApiError> {
    match v.map(str::trim) {
        None => Ok(None),
        Some(t) => t.parse::<ProviderType>().map(Some).map_err(|m| ApiError::invalid("provider_type", m)),
    }
}

fn view(catalog: &Catalog, m: &ModelEntry) -> ModelView {
    let inference_profiles = if m.provider_type == ProviderType::Bedrock {
        catalog.inference_profiles_for(&m.name).into_iter().map(str::to_string).collect()
    } else {
        Vec::new()
    };
    ModelView { model: m.clone(), inference_profiles }
}

/// Page keys sort like the catalog: provider type, then name.
fn key(m: &ModelEntry) -> String {
    format!("{}\u{1f}{}", m.provider_type.as_str(), m.name)
}

/// List the model catalog.
#[utoipa::path(get, path = "/api/v1/models", tag = "models",
    params(ListModelsParams),
    responses((status = 200, body = ListModelsResponse),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<ListModelsParams>,
) -> Result<Json<ListModelsResponse>, ApiError> {
    authorize(&state, &headers, Role::Invoker)?;
    let page = paging::parse(p.page_size.as_deref(), p.page_token.as_deref())?;
    let pt = parse_type(p.provider_type.as_deref())?;
    let needle = p.name_contains.as_deref().map(str::to_lowercase).filter(|s| !s.is_empty());
    let catalog = state.catalog();
    let mut matching = catalog
        .models()
        .iter()
        .filter(|m| pt.is_none_or(|t| m.provider_type == t))
        .filter(|m| {
            needle.as_deref().is_none_or(|n| m.name.to_lowercase().contains(n) || m.label.to_lowercase().contains(n))
        })
        .filter(|m| page.after.as_deref().is_none_or(|a| key(m).as_str() > a))
        .peekable();
    let mut models = Vec::new();
    while models.len() < page.limit as usize {
        match matching.next() {
            Some(m) => models.push(m),
            None => break,
        }
    }
    let next_page_token = match (matching.peek(), models.last()) {
        (Some(_), Some(last)) => Some(paging::encode(&key(last))),
        _ => None,
    };
    let status = state.catalog_handle().status();
    let overlay = status.path.as_ref().map(|path| OverlayView {
        path: path.display().to_string(),
        version: status.version.clone(),
        error: status.error.clone(),
        loaded_at: status.loaded_at_ms.map(rfc3339),
    });
    Ok(Json(ListModelsResponse {
        version: catalog.version().to_string(),
        effective_date: catalog.effective_date().to_string(),
        overlay,
        models: models.into_iter().map(|m| view(&catalog, m)).collect(),
        next_page_token,
    }))
}

/// Get one catalog entry.
#[utoipa::path(get, path = "/api/v1/models/{name}", tag = "models",
    params(("name" = String, Path, description = "Model name as clients send it"), GetModelParams),
    responses((status = 200, body = GetModelResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, description = "The name exists under several provider types: pass `provider_type`", body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(p): Query<GetModelParams>,
) -> Result<Json<GetModelResponse>, ApiError> {
    authorize(&state, &headers, Role::Invoker)?;
    let pt = parse_type(p.provider_type.as_deref())?;
    let catalog = state.catalog();
    let found: Vec<&ModelEntry> = match pt {
        Some(t) => catalog.get(t, &name).into_iter().collect(),
        // a type that shares another's catalog (Azure OpenAI reads OpenAI's) finds the same
        // entry: one model, not an ambiguity
        None => {
            let mut found: Vec<&ModelEntry> = ProviderType::ALL.iter().filter_map(|t| catalog.get(*t, &name)).collect();
            found.sort_by_key(|m| m.provider_type);
            found.dedup_by_key(|m| m.provider_type);
            found
        }
    };
    match found.as_slice() {
        [] => Err(ApiError::NotFound(format!("model \"{name}\" is not in the catalog ({})", catalog.version()))),
        [one] => Ok(Json(GetModelResponse { version: catalog.version().to_string(), model: view(&catalog, one) })),
        many => Err(ApiError::unprocessable(
            "provider_type",
            format!(
                "model \"{name}\" exists for several provider types ({}); pass one",
                many.iter().map(|m| m.provider_type.as_str()).collect::<Vec<_>>().join(", ")
            ),
        )),
    }
}
