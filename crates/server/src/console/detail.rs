//! A provider's page (`/providers/{name}`): the Overview tab (7-day KPIs with sparklines, the
//! Connection card with the Discovery URL, models with prices and 7-day spend, Verify
//! connection, delete), the Models and Settings tabs ([`super::provider_tabs`]) and the
//! Connect tab (gateway token, client setup, code). Also the actions: enable, disable, delete
//! (type the name to confirm) and Test Connection (a JSON endpoint the button fetches, running
//! the admin API's own check).

use super::connect::{self, Target};
use super::spend::{self, Query as SpendQuery};
use super::{Console, ConsoleError, Form, Layout, Session, format, html_page, notice_from, type_icon};
use crate::admin;
use crate::state::ProviderEntry;
use askama::Template;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use tollgate_core::Role;
use tollgate_core::catalog::CatalogPricing;
use tollgate_core::provider::{BedrockCredentialMode, Probe};
use tollgate_store::{DAY_MS, Dimension};

#[derive(Debug, Default, Deserialize)]
pub struct DetailParams {
    pub tab: Option<String>,
    pub notice: Option<String>,
    pub name: Option<String>,
}

/// One KPI card.
#[derive(Debug)]
pub struct Kpi {
    pub id: &'static str,
    pub label: &'static str,
    pub value: String,
    pub spark: String,
    pub more_url: String,
}

/// A row of the Connection card.
#[derive(Debug)]
pub struct Prop {
    pub label: &'static str,
    pub value: String,
    /// Shown as code with a copy button.
    pub copy: bool,
}

/// A model row of the Overview tab.
#[derive(Debug)]
pub struct ModelLine {
    pub name: String,
    pub label: String,
    pub input: String,
    pub output: String,
    pub overridden: bool,
    pub spend: String,
    pub requests: String,
}

/// A command of "Show commands": as shown for the model selected when the page loads, and the
/// two forms the page's script switches between when another model is chosen.
#[derive(Debug)]
pub struct CheckCommand {
    pub title: String,
    pub code: String,
    /// For "Any model (credential only)".
    pub any: String,
    /// For a model: [`MODEL_SLOT`] stands where the model goes.
    pub template: String,
}

/// Where the model goes in a [`CheckCommand::template`].
pub const MODEL_SLOT: &str = "__TOLLGATE_MODEL__";

#[derive(Template)]
#[template(path = "provider_detail.html")]
struct DetailPage {
    layout: Layout,
    name: String,
    display_name: String,
    type_label: &'static str,
    icon: String,
    enabled: bool,
    tab: &'static str,
    kpis: Vec<Kpi>,
    props: Vec<Prop>,
    models: Vec<ModelLine>,
    all_models: bool,
    check_models: Vec<String>,
    commands: Vec<CheckCommand>,
    model_slot: &'static str,
    /// What Test Connection calls, said plainly (for Bedrock: the control plane, not the Base URL).
    probe_note: String,
    setups: Vec<connect::ClientSetup>,
    snippets: connect::Snippets,
    proxy_url: String,
    token_cmd: String,
    token_url: String,
    passthrough: bool,
    usage_url: String,
    /// Models the catalog does not know or Bedrock cannot serve by bare id.
    warnings: Vec<tollgate_core::warnings::FieldWarning>,
    /// The budgets that can cap calls through this provider.
    budgets: Vec<super::budgets::BudgetRow>,
    model_rows: Vec<super::provider_tabs::ModelRow>,
    settings: super::provider_tabs::Settings,
}

fn entry(console: &Console, session: &Session, name: &str) -> Result<Arc<ProviderEntry>, ConsoleError> {
    session.require_scope(name)?;
    console
        .state
        .snapshot()
        .providers
        .get(name)
        .cloned()
        .ok_or_else(|| ConsoleError::NotFound(format!("provider \"{name}\" not found")))
}

/// The price shown for a bucket: the override when set, else the catalog rate.
fn price(over: Option<i64>, catalog: Option<i64>) -> String {
    match (over, catalog) {
        (Some(v), _) | (None, Some(v)) => format::rate(v),
        (None, None) => "—".into(),
    }
}

/// `GET /providers/{name}`.
pub async fn show(
    State(console): State<Console>,
    session: Session,
    Path(name): Path<String>,
    Query(p): Query<DetailParams>,
) -> Result<Response, ConsoleError> {
    let e = entry(&console, &session, &name)?;
    let spec = &e.spec;
    let ptype = spec.kind();
    let tab = match p.tab.as_deref() {
        Some("connect") => "connect",
        Some("models") => "models",
        Some("settings") => "settings",
        _ => "overview",
    };
    let proxy_url = console.state.proxy_url(&name);
    let region = spec.bedrock_config.as_ref().and_then(|c| c.region.clone()).unwrap_or_else(|| "us-east-1".into());
    let example = spec.provider_models.first().map_or(connect::example_model(ptype), |m| m.name.as_str()).to_string();
    let allowed: Vec<String> = spec.provider_models.iter().map(|m| m.name.clone()).collect();
    let api_version = spec
        .azure_openai_config
        .as_ref()
        .map_or(tollgate_core::provider::DEFAULT_AZURE_API_VERSION, |c| c.api_version())
        .to_string();
    let target = Target {
        ptype,
        proxy_url: &proxy_url,
        model: &example,
        models: &allowed,
        region: &region,
        api_version: &api_version,
        passthrough: spec.authorization_passthrough(),
    };
    let usage_url = format!("/usage?range=7d&provider={name}");

    // 7 days: per day (KPIs) and per model (model list), from the rollups
    let (start_ms, end_ms) = spend::last_7_days(console.state.now_ms());
    let q = SpendQuery { start_ms, end_ms, providers: vec![name.clone()], ..SpendQuery::default() };
    let days = spend::daily(&spend::rows(&console, &q, None, Some(DAY_MS)).await?, start_ms, 7);
    let by_model = spend::rows(&console, &q, Some(Dimension::Model), None).await?;
    let total = |f: &dyn Fn(&tollgate_store::RollupStats) -> i64| days.iter().map(f).sum::<i64>();
    let series = |f: &dyn Fn(&tollgate_store::RollupStats) -> i64| days.iter().map(f).collect::<Vec<i64>>();
    let cost = |s: &tollgate_store::RollupStats| s.cost.total;
    let reqs = |s: &tollgate_store::RollupStats| s.requests;
    let toks = |s: &tollgate_store::RollupStats| s.tokens.total_tokens();
    let kpis = vec![
        Kpi {
            id: "kpi-spend",
            label: "TOTAL SPEND",
            value: format::usd(total(&cost)),
            spark: super::charts::sparkline(&series(&cost), 120, 28, "Spend per day, last 7 days"),
            more_url: format!("{usage_url}&group_by=model"),
        },
        Kpi {
            id: "kpi-requests",
            label: "REQUESTS",
            value: format::int(total(&reqs)),
            spark: super::charts::sparkline(&series(&reqs), 120, 28, "Requests per day, last 7 days"),
            more_url: format!("{usage_url}&group_by=model#requests"),
        },
        Kpi {
            id: "kpi-tokens",
            label: "TOKENS",
            value: format::int(total(&toks)),
            spark: super::charts::sparkline(&series(&toks), 120, 28, "Tokens per day, last 7 days"),
            more_url: format!("{usage_url}&group_by=token_type#tokens"),
        },
    ];

    let mut props = vec![
        Prop { label: "Type", value: ptype.label().into(), copy: false },
        Prop { label: "Status", value: if spec.is_enabled() { "Enabled" } else { "Disabled" }.into(), copy: false },
    ];
    if ptype.descriptor().supports_passthrough {
        let on = spec.authorization_passthrough();
        props.push(Prop {
            label: "Authorization passthrough",
            value: if on { "On: clients send their own Authorization" } else { "Off" }.into(),
            copy: false,
        });
    }
    props.push(Prop { label: "Proxy URL", value: proxy_url.clone(), copy: true });
    // where clients discover how to get a token: the OIDC issuer's document when one is set
    props.push(match console.state.oidc() {
        Some(o) => Prop {
            label: "Discovery URL",
            value: format!("{}/.well-known/openid-configuration", o.settings().issuer.trim_end_matches('/')),
            copy: true,
        },
        None => Prop {
            label: "Discovery URL",
            value: "None: no OIDC issuer is configured; clients use gateway tokens".into(),
            copy: false,
        },
    });
    props.push(Prop { label: "Base URL", value: spec.upstream_base_url(), copy: false });
    match spec.bedrock_credential_mode() {
        Some(mode) => {
            let c = spec.bedrock_config.clone().unwrap_or_default();
            props.push(Prop { label: "Region", value: region.clone(), copy: false });
            let cred = match mode {
                BedrockCredentialMode::DefaultChain => "Default chain".to_string(),
                BedrockCredentialMode::StaticKeys => {
                    let s = c.static_credentials.clone().unwrap_or_default();
                    format!(
                        "Static keys: {} / {}",
                        s.access_key_id_ref.unwrap_or_default(),
                        s.secret_access_key_ref.unwrap_or_default()
                    )
                }
                BedrockCredentialMode::AssumeRole => {
                    format!("Assume IAM role: {}", c.assume_role.and_then(|r| r.role_arn).unwrap_or_default())
                }
            };
            props.push(Prop { label: "Credentials", value: cred, copy: false });
            props.push(Prop { label: "Guardrail", value: c.guardrail.unwrap_or_else(|| "None".into()), copy: false });
        }
        None => props.push(Prop {
            label: "API key reference",
            value: spec.api_key_ref().map_or_else(|| "None".to_string(), str::to_string),
            copy: false,
        }),
    }
    props.push(Prop {
        label: "Transcripts",
        value: match (spec.transcripts.record_input_messages, spec.transcripts.record_output_messages) {
            (false, false) => "Not recorded".into(),
            (true, false) => "Inputs recorded".into(),
            (false, true) => "Outputs recorded".into(),
            (true, true) => "Inputs and outputs recorded".into(),
        },
        copy: false,
    });

    let catalog = console.state.catalog();
    let spend_of = |m: &str| {
        by_model.iter().filter(|r| r.key == m).fold((0, 0), |(c, n), r| (c + r.stats.cost.total, n + r.stats.requests))
    };
    let line = |name: &str, over: Option<&tollgate_core::provider::ModelPricing>| {
        let entry = catalog.get(ptype, name);
        let cp = entry.map(|e| e.pricing.clone()).unwrap_or_else(CatalogPricing::default);
        let (c, n) = spend_of(name);
        ModelLine {
            name: name.to_string(),
            label: entry.map(|e| e.label.clone()).filter(|l| l != name).unwrap_or_default(),
            input: price(over.and_then(|o| o.input_per_million), cp.input_per_million),
            output: price(over.and_then(|o| o.output_per_million), cp.output_per_million),
            overridden: over.is_some_and(|o| !o.is_empty()),
            spend: format::usd(c),
            requests: format::int(n),
        }
    };
    let all_models = spec.provider_models.is_empty();
    let models: Vec<ModelLine> = if all_models {
        // every model allowed: list the ones used in the last 7 days
        let mut used: Vec<&tollgate_store::SpendingRow> = by_model.iter().filter(|r| !r.key.is_empty()).collect();
        used.sort_by(|a, b| b.stats.cost.total.cmp(&a.stats.cost.total).then_with(|| a.key.cmp(&b.key)));
        used.iter().map(|r| line(&r.key, None)).collect()
    } else {
        spec.provider_models.iter().map(|m| line(&m.name, m.custom_pricing.as_ref())).collect()
    };
    let check_models: Vec<String> = if all_models {
        super::form::pickable_models(&catalog, ptype).into_iter().take(200).map(|m| m.name.clone()).collect()
    } else {
        spec.provider_models.iter().map(|m| m.name.clone()).collect()
    };
    // the commands follow the dropdown: its first choice when the page loads ("Any model" when
    // every model is allowed), and the script swaps in the model picked
    let selected = if all_models { None } else { check_models.first().map(String::as_str) };
    let public = console.state.public_url();
    let commands = connect::check_commands(public, &name, &target, selected)
        .into_iter()
        .zip(connect::check_commands(public, &name, &target, None))
        .zip(connect::check_commands(public, &name, &target, Some(MODEL_SLOT)))
        .map(|(((title, code), (_, any)), (_, template))| CheckCommand { title, code, any, template })
        .collect();
    let probe_note = match ptype.descriptor().probe {
        Probe::BedrockControl { .. } => {
            let control = console.state.settings().bedrock_control_url(crate::aws::region(spec));
            format!(
                "For Bedrock, Test Connection calls ListFoundationModels on the control plane, {control}/foundation-models, \
                 signed with the provider's credentials: it proves the region and the credentials. It does not call \
                 the Base URL ({}), which only the proxy uses; the curl command below goes through it.",
                spec.upstream_base_url()
            )
        }
        Probe::Runtime { .. } => {
            format!("Test Connection asks {} for its model list.", spec.upstream_base_url())
        }
    };
    let page = DetailPage {
        layout: Layout::of(&session, spec.display_name.clone(), "providers")
            .with_notice(notice_from(p.notice.as_deref(), p.name.as_deref())),
        name: name.clone(),
        display_name: spec.display_name.clone(),
        type_label: ptype.label(),
        icon: type_icon(ptype),
        enabled: spec.is_enabled(),
        tab,
        kpis,
        props,
        models,
        all_models,
        check_models,
        commands,
        model_slot: MODEL_SLOT,
        probe_note,
        setups: connect::client_setups(&target),
        snippets: connect::snippets(&target),
        proxy_url: proxy_url.clone(),
        token_cmd: format!("tollgate token create {name}-app --role invoker --provider {name} --agent {name}-app"),
        token_url: format!("/tokens?providers={name}&role=invoker&name={name}-app"),
        passthrough: spec.authorization_passthrough(),
        usage_url,
        warnings: tollgate_core::warnings::model_warnings(spec, &catalog),
        budgets: super::budgets::rows(&console, &session, Some(&name)).await?.into_iter().map(|(_, r)| r).collect(),
        model_rows: if tab == "models" {
            super::provider_tabs::model_rows(spec, &catalog, &by_model)
        } else {
            Vec::new()
        },
        settings: super::provider_tabs::settings(spec),
    };
    html_page(StatusCode::OK, &page)
}

async fn set_enabled(console: &Console, session: &Session, name: &str, on: bool) -> Result<Response, ConsoleError> {
    session.require(Role::Writer)?;
    session.require_scope(name)?;
    admin::providers::update_spec(&console.state, &session.token, name, &json!({"enabled": on}), admin::Write::Commit)
        .await?;
    let code = if on { "enabled" } else { "disabled" };
    Ok(Redirect::to(&format!("/providers/{name}?notice={code}&name={name}")).into_response())
}

/// `POST /providers/{name}/enable`.
pub async fn enable(
    State(console): State<Console>,
    session: Session,
    Path(name): Path<String>,
) -> Result<Response, ConsoleError> {
    set_enabled(&console, &session, &name, true).await
}

/// `POST /providers/{name}/disable`.
pub async fn disable(
    State(console): State<Console>,
    session: Session,
    Path(name): Path<String>,
) -> Result<Response, ConsoleError> {
    set_enabled(&console, &session, &name, false).await
}

/// `POST /providers/{name}/delete`: only with `confirm` equal to the name.
pub async fn delete(
    State(console): State<Console>,
    session: Session,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    session.require(Role::Writer)?;
    session.require_scope(&name)?;
    let form = Form::parse(&body);
    if form.text("confirm") != name {
        return Err(ConsoleError::BadRequest(format!(
            "type the provider's name, {name}, to confirm the deletion; nothing was deleted"
        )));
    }
    admin::providers::delete_named(&console.state, &session.token, &name).await?;
    Ok(Redirect::to(&format!("/providers?notice=deleted&name={name}")).into_response())
}

/// `POST /providers/{name}/check` (JSON, `X-CSRF-Token`): Test Connection, through the same
/// code as `POST /api/v1/llm-providers/{name}/check`.
pub async fn check(
    State(console): State<Console>,
    session: Session,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let refuse = |status: StatusCode, message: String| {
        (status, Json(json!({"error": {"code": "refused", "message": message}}))).into_response()
    };
    if let Err(e) = session.require(Role::Writer).and_then(|_| session.require_scope(&name)) {
        return refuse(StatusCode::FORBIDDEN, e.to_string());
    }
    let model = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["model"].as_str().map(str::to_string))
        .filter(|m| !m.is_empty());
    let req = admin::check::CheckRequest { model };
    match admin::check::run(&console.state, &session.token, &name, req).await {
        Ok(result) => result.into_response(),
        Err(e) => e.into_response(),
    }
}
