//! The Models and Settings tabs of a provider's page (`/providers/{name}?tab=models|settings`)
//! and their writes.
//!
//! **Models** lists the allowed models (an allow-list), enabled first, then the rest of the
//! catalog's models for the type; with an empty allow-list every model is allowed and the
//! catalog's models are listed, all enabled. Each row: capabilities, context window, max
//! output, the effective input / output / cached-input / cache-write rates (an override
//! marked), 7-day requests and spend, and a switch. The switch edits the allow-list
//! (`POST /providers/{name}/models`): enabling adds the model, disabling removes it; disabling a
//! model while every model is allowed turns the list into "every catalog model but this one";
//! the last enabled model cannot be disabled (an empty list would allow everything again).
//! Custom pricing on the models that stay is kept.
//!
//! **Settings** shows the read-only identity (name, type), each secret reference with a link
//! to rotate it on the Secrets page, and a form for the transcript toggles and the tags
//! (`POST /providers/{name}/settings`). Both writes go through the admin API's
//! `update_spec`, as a JSON merge patch, so validation and the reload are the API's.

use super::{Console, ConsoleError, Form, Session, format};
use crate::admin;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{Map, Value, json};
use tollgate_core::catalog::{Capabilities, CatalogPricing, ModelEntry};
use tollgate_core::provider::{ModelPricing, ProviderSpec};
use tollgate_core::{Catalog, Role};
use tollgate_store::SpendingRow;

/// One row of the Models tab.
#[derive(Debug)]
pub struct ModelRow {
    pub name: String,
    pub label: String,
    pub enabled: bool,
    pub capabilities: Vec<&'static str>,
    pub context: String,
    pub max_output: String,
    /// (bucket label, rate, overridden)
    pub rates: Vec<(&'static str, String, bool)>,
    pub overridden: bool,
    pub requests: String,
    pub spend: String,
    pub in_catalog: bool,
}

/// The capability names shown for a catalog entry.
fn capability_names(c: &Capabilities) -> Vec<&'static str> {
    [
        (c.streaming, "streaming"),
        (c.tools, "tools"),
        (c.vision, "vision"),
        (c.structured_output || c.json_mode, "json"),
        (c.reasoning, "reasoning"),
        (c.prompt_caching, "caching"),
        (c.pdf_input, "pdf"),
        (c.audio, "audio"),
        (c.web_search, "web search"),
        (c.embeddings, "embeddings"),
    ]
    .into_iter()
    .filter(|(on, _)| *on)
    .map(|(_, n)| n)
    .collect()
}

fn tokens(n: Option<i64>) -> String {
    n.map_or_else(|| "—".into(), format::compact)
}

fn rate(over: Option<i64>, catalog: Option<i64>) -> (String, bool) {
    match (over, catalog) {
        (Some(v), _) => (format::rate(v), true),
        (None, Some(v)) => (format::rate(v), false),
        (None, None) => ("—".into(), false),
    }
}

fn row(
    name: &str,
    entry: Option<&ModelEntry>,
    over: Option<&ModelPricing>,
    enabled: bool,
    usage: &[SpendingRow],
) -> ModelRow {
    let cp: CatalogPricing = entry.map(|e| e.pricing.clone()).unwrap_or_default();
    let o = over.cloned().unwrap_or_default();
    let rates = vec![
        ("Input", rate(o.input_per_million, cp.input_per_million)),
        ("Output", rate(o.output_per_million, cp.output_per_million)),
        ("Cached input", rate(o.cached_input_per_million, cp.cached_input_per_million)),
        ("Cache write", rate(o.cache_creation_5m_per_million, cp.cache_creation_5m_per_million)),
    ]
    .into_iter()
    .map(|(l, (v, ov))| (l, v, ov))
    .collect::<Vec<_>>();
    let (cost, requests) =
        usage.iter().filter(|r| r.key == name).fold((0, 0), |(c, n), r| (c + r.stats.cost.total, n + r.stats.requests));
    ModelRow {
        name: name.to_string(),
        label: entry.map(|e| e.label.clone()).filter(|l| l != name).unwrap_or_default(),
        enabled,
        capabilities: entry.map(|e| capability_names(&e.capabilities)).unwrap_or_default(),
        context: tokens(entry.and_then(|e| e.max_input_tokens)),
        max_output: tokens(entry.and_then(|e| e.max_output_tokens)),
        overridden: rates.iter().any(|r| r.2),
        rates,
        requests: format::int(requests),
        spend: format::usd(cost),
        in_catalog: entry.is_some(),
    }
}

/// The Models tab's rows: enabled first (in allow-list order), then the catalog's others.
pub fn model_rows(spec: &ProviderSpec, catalog: &Catalog, usage: &[SpendingRow]) -> Vec<ModelRow> {
    let t = spec.kind();
    let all = spec.provider_models.is_empty();
    let mut rows: Vec<ModelRow> = spec
        .provider_models
        .iter()
        .map(|m| row(&m.name, catalog.get(t, &m.name), m.custom_pricing.as_ref(), true, usage))
        .collect();
    for m in super::form::pickable_models(catalog, t) {
        if !spec.provider_models.iter().any(|p| p.name == m.name) {
            rows.push(row(&m.name, Some(m), None, all, usage));
        }
    }
    rows
}

/// A secret reference of the Settings tab.
#[derive(Debug)]
pub struct SecretRef {
    pub field: String,
    pub name: String,
    pub rotate_url: String,
}

/// The Settings tab.
#[derive(Debug, Default)]
pub struct Settings {
    pub secrets: Vec<SecretRef>,
    pub record_input: bool,
    pub record_output: bool,
    /// `key=value` per line.
    pub tags: String,
    pub tag_list: Vec<(String, String)>,
}

pub fn settings(spec: &ProviderSpec) -> Settings {
    Settings {
        secrets: spec
            .secret_refs()
            .into_iter()
            .map(|(field, name)| SecretRef { rotate_url: format!("/secrets?rotate={name}#rotate-{name}"), field, name })
            .collect(),
        record_input: spec.transcripts.record_input_messages,
        record_output: spec.transcripts.record_output_messages,
        tags: spec.tags.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("\n"),
        tag_list: spec.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
    }
}

fn current(console: &Console, session: &Session, name: &str) -> Result<ProviderSpec, ConsoleError> {
    session.require(Role::Writer)?;
    session.require_scope(name)?;
    console
        .state
        .snapshot()
        .providers
        .get(name)
        .map(|e| e.spec.clone())
        .ok_or_else(|| ConsoleError::NotFound(format!("provider \"{name}\" not found")))
}

/// `POST /providers/{name}/models`: `model` and `enabled` (`true` / `false`).
pub async fn toggle_model(
    State(console): State<Console>,
    session: Session,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    let spec = current(&console, &session, &name)?;
    let form = Form::parse(&body);
    let model = form.text("model");
    let on = form.get("enabled") == Some("true");
    if model.is_empty() {
        return Err(ConsoleError::BadRequest("no model named; nothing changed".into()));
    }
    let mut list: Vec<Value> = spec
        .provider_models
        .iter()
        .map(|m| serde_json::to_value(m).map_err(|e| ConsoleError::Internal(e.to_string())))
        .collect::<Result<_, _>>()?;
    let has = |list: &[Value]| list.iter().any(|v| v["name"] == model.as_str());
    if on {
        if !spec.provider_models.is_empty() && !has(&list) {
            list.push(json!({"name": model}));
        }
    } else {
        if spec.provider_models.is_empty() {
            // every model was allowed: allow every catalog model but this one
            list = super::form::pickable_models(&console.state.catalog(), spec.kind())
                .into_iter()
                .map(|m| json!({"name": m.name}))
                .collect();
        }
        list.retain(|v| v["name"] != model.as_str());
        if list.is_empty() {
            return Err(ConsoleError::BadRequest(format!(
                "{model} is the last enabled model: an empty list would allow every model; enable another first"
            )));
        }
    }
    admin::providers::update_spec(
        &console.state,
        &session.token,
        &name,
        &json!({"provider_models": list}),
        admin::Write::Commit,
    )
    .await?;
    let code = if on { "model-enabled" } else { "model-disabled" };
    Ok(Redirect::to(&format!("/providers/{name}?tab=models&notice={code}&name={model}")).into_response())
}

/// Parses `key=value` lines (blank lines skipped).
pub fn parse_tags(text: &str) -> Result<Map<String, Value>, ConsoleError> {
    let mut out = Map::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (k, v) = line.split_once('=').ok_or_else(|| {
            ConsoleError::BadRequest(format!("tags line {}: `{line}` is not key=value; nothing was saved", i + 1))
        })?;
        out.insert(k.trim().to_string(), Value::String(v.trim().to_string()));
    }
    Ok(out)
}

/// `POST /providers/{name}/settings`: transcript toggles and tags.
pub async fn save_settings(
    State(console): State<Console>,
    session: Session,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    let spec = current(&console, &session, &name)?;
    let form = Form::parse(&body);
    let mut tags = parse_tags(form.get("tags").unwrap_or_default())?;
    // a merge patch: tags no longer listed are removed with null
    for k in spec.tags.keys() {
        tags.entry(k.clone()).or_insert(Value::Null);
    }
    let patch = json!({
        "transcripts": {
            "record_input_messages": form.checked("record_input_messages"),
            "record_output_messages": form.checked("record_output_messages"),
        },
        "tags": tags,
    });
    admin::providers::update_spec(&console.state, &session.token, &name, &patch, admin::Write::Commit).await?;
    Ok(Redirect::to(&format!("/providers/{name}?tab=settings&notice=updated&name={name}")).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_parse_as_key_value_lines() {
        let t = parse_tags("team = search\n\ncost-center=42\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.get("team"), Some(&json!("search")));
        assert_eq!(t.get("cost-center"), Some(&json!("42")));
        assert!(parse_tags("no equals sign").is_err());
    }
}
