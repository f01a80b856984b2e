//! The Budgets page (`/budgets`, Governance): per-agent default budgets as cards with a usage
//! bar, the overrides and other budgets in a table (Agent override, Period, Usage, Warn at,
//! Updated), a form to add one (Cap usage at with $25 / $100 / $500 / $1,000 chips or any
//! amount, a Warn at slider defaulting to 80 %), delete, and the rate limits in force.
//! Writes go through the admin API's functions (`admin::budgets`), so validation and the
//! one-override-per-agent rule are the API's. Usage bars are `<meter>` elements: no script,
//! no inline style (the CSP forbids it).

use super::{Console, ConsoleError, Form, Layout, Notice, Session, format, html_page};
use crate::admin;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use tollgate_core::budget::{BudgetSpec, Pooling, RateLimitSpec};
use tollgate_core::{Microcents, Role};

#[derive(Debug, Default, Deserialize)]
pub struct BudgetParams {
    pub notice: Option<String>,
    pub name: Option<String>,
}

/// One budget as the page shows it.
#[derive(Debug, Clone)]
pub struct BudgetRow {
    pub name: String,
    pub display_name: String,
    /// `Default (each agent)`, `agent bot`, `shared`, …
    pub applies: String,
    pub period: String,
    pub spent: String,
    pub limit: String,
    /// Whose spend `spent` is (the top agent or user), empty for a shared pool.
    pub top: String,
    pub spent_raw: i64,
    pub limit_raw: i64,
    pub warn_raw: i64,
    pub warn: String,
    pub resets: String,
    pub updated: String,
    pub percent: i64,
    pub over_warn: bool,
    /// Scope references that name nothing (a provider that does not exist).
    pub warnings: Vec<String>,
}

impl BudgetRow {
    pub fn of(b: &BudgetSpec, now_ms: i64) -> BudgetRow {
        let spent = b.current_spend_microcents.unwrap_or(0);
        let applies = match (b.pooling_mode, b.override_key()) {
            (Pooling::PerAgent, None) => "Default (each agent)".to_string(),
            (Pooling::PerAgent, Some(a)) => a.to_string(),
            (Pooling::PerUser, None) => "Default (each user)".to_string(),
            (Pooling::PerUser, Some(u)) => format!("user {u}"),
            (Pooling::Shared, _) => "Shared pool".to_string(),
        };
        let applies = if b.scope.providers.is_empty() {
            applies
        } else {
            format!("{applies} · {}", b.scope.providers.join(", "))
        };
        let updated_ms = b.updated_at.as_deref().and_then(crate::time::parse_rfc3339).unwrap_or(now_ms);
        BudgetRow {
            name: b.name.clone(),
            display_name: b.display_name.clone(),
            applies,
            period: b.period.as_str().to_string(),
            spent: format::usd(spent),
            limit: format::usd(b.limit_microcents),
            top: b.top_key.clone().unwrap_or_default(),
            spent_raw: spent,
            limit_raw: b.limit_microcents,
            // The meter's `low` (its green region ends there; `high` is the limit, where red
            // starts): the warning level, kept under the limit so a budget at or past its cap
            // is never in the green region (without a warning level, green up to the cap).
            warn_raw: b.warn_at_microcents.unwrap_or(b.limit_microcents).min(b.limit_microcents - 1),
            warn: b.warn_at_microcents.map(format::usd).unwrap_or_else(|| "—".into()),
            resets: b.period_resets_at.clone().unwrap_or_default(),
            updated: format::ago(updated_ms, now_ms),
            percent: if b.limit_microcents > 0 {
                (spent.saturating_mul(100) / b.limit_microcents).clamp(0, 100)
            } else {
                0
            },
            over_warn: b.warn_at_microcents.is_some_and(|w| spent >= w),
            warnings: b.warnings.iter().map(|w| w.message.clone()).collect(),
        }
    }

    /// Is this a per-agent default (a card of its own)?
    fn is_default(b: &BudgetSpec) -> bool {
        b.pooling_mode == Pooling::PerAgent && b.override_key().is_none()
    }
}

/// One rate limit row.
#[derive(Debug)]
pub struct RateRow {
    pub name: String,
    pub applies: String,
    pub rpm: String,
    pub tpm: String,
    /// Scope references that name nothing (a provider that does not exist, an unknown token).
    pub warnings: Vec<String>,
}

impl RateRow {
    fn of(state: &crate::state::AppState, r: &RateLimitSpec) -> RateRow {
        let s = &r.scope;
        let parts: Vec<String> = [
            ("token", &s.token),
            ("user", &s.user),
            ("agent", &s.agent),
            ("provider", &s.provider),
            ("model", &s.model),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k} {v}")))
        .collect();
        RateRow {
            name: r.name.clone(),
            applies: if parts.is_empty() { "every call".into() } else { parts.join(" · ") },
            rpm: r.requests_per_minute.map(format::int).unwrap_or_else(|| "—".into()),
            tpm: r.tokens_per_minute.map(format::int).unwrap_or_else(|| "—".into()),
            warnings: admin::rate_limits::scope_warnings(state, r).into_iter().map(|w| w.message).collect(),
        }
    }
}

/// What the add form shows again after an error.
#[derive(Debug, Clone)]
pub struct BudgetForm {
    pub name: String,
    pub agent: String,
    pub period: String,
    pub cap: String,
    pub custom: String,
    pub warn_pct: String,
    pub error: String,
    pub field: String,
}

impl Default for BudgetForm {
    fn default() -> BudgetForm {
        BudgetForm {
            name: String::new(),
            agent: String::new(),
            period: "monthly".into(),
            cap: "100".into(),
            custom: String::new(),
            warn_pct: "80".into(),
            error: String::new(),
            field: String::new(),
        }
    }
}

#[derive(Template)]
#[template(path = "budgets.html")]
struct BudgetsPage {
    layout: Layout,
    defaults: Vec<BudgetRow>,
    others: Vec<BudgetRow>,
    rates: Vec<RateRow>,
    form: BudgetForm,
    chips: [&'static str; 4],
}

/// Every budget `session` may see as rows, with its spend this period (for this page,
/// provider detail and Cost & Usage); `provider` keeps only the budgets that can apply to
/// calls through it.
pub async fn rows(
    console: &Console,
    session: &Session,
    provider: Option<&str>,
) -> Result<Vec<(bool, BudgetRow)>, ConsoleError> {
    let now = console.state.now_ms();
    let all = admin::budgets::all(&console.state).await?;
    Ok(all
        .iter()
        .filter(|b| admin::budgets::visible_to(&session.token, b))
        .filter(|b| provider.is_none_or(|p| b.scope.providers.is_empty() || b.scope.providers.iter().any(|x| x == p)))
        .map(|b| (BudgetRow::is_default(b), BudgetRow::of(b, now)))
        .collect())
}

async fn render(
    console: &Console,
    session: &Session,
    notice: Option<Notice>,
    form: BudgetForm,
    status: StatusCode,
) -> Result<Response, ConsoleError> {
    let (defaults, others): (Vec<_>, Vec<_>) = rows(console, session, None).await?.into_iter().partition(|(d, _)| *d);
    let rates = console
        .state
        .snapshot()
        .limits
        .rate_limits
        .iter()
        .filter(|r| admin::rate_limits::visible_to(&session.token, &r.spec))
        .map(|r| RateRow::of(&console.state, r))
        .collect();
    let page = BudgetsPage {
        layout: Layout::of(session, "Budgets", "budgets").with_notice(notice),
        defaults: defaults.into_iter().map(|(_, r)| r).collect(),
        others: others.into_iter().map(|(_, r)| r).collect(),
        rates,
        form,
        chips: ["25", "100", "500", "1000"],
    };
    html_page(status, &page)
}

/// `GET /budgets`.
pub async fn page(
    State(console): State<Console>,
    session: Session,
    Query(p): Query<BudgetParams>,
) -> Result<Response, ConsoleError> {
    let n = p.name.unwrap_or_default();
    let notice = match p.notice.as_deref() {
        Some("created") => Notice::ok(format!("Budget \"{n}\" created.")),
        Some("deleted") => Notice::ok(format!("Budget \"{n}\" deleted. Its spend stays in Cost & Usage.")),
        _ => None,
    };
    render(&console, &session, notice, BudgetForm::default(), StatusCode::OK).await
}

/// The budget the form describes: the cap (a chip or a custom USD amount), warn at as a
/// percentage of it, an agent for an override.
fn budget_of(f: &BudgetForm) -> Result<serde_json::Value, (String, String)> {
    let cap_text = if f.cap == "custom" { f.custom.as_str() } else { f.cap.as_str() };
    let cap =
        Microcents::parse_usd(cap_text).map_err(|e| ("limit_microcents".to_string(), format!("Cap usage at: {e}")))?;
    let pct: i64 =
        f.warn_pct.trim().parse().map_err(|_| ("warn_at_microcents".to_string(), "Warn at: a percentage".into()))?;
    if !(0..=100).contains(&pct) {
        return Err(("warn_at_microcents".into(), "Warn at: between 0 and 100 %".into()));
    }
    let warn = i64::try_from(i128::from(cap.0) * i128::from(pct) / 100).unwrap_or(cap.0);
    let mut b =
        serde_json::json!({"name": f.name, "period": f.period, "limit_microcents": cap.0, "warn_at_microcents": warn});
    if !f.agent.trim().is_empty() {
        b["scope"] = serde_json::json!({"agent": f.agent.trim()});
    }
    Ok(b)
}

/// `POST /budgets`.
pub async fn create(State(console): State<Console>, session: Session, body: Bytes) -> Result<Response, ConsoleError> {
    session.require(Role::Writer)?;
    let f = Form::parse(&body);
    let mut form = BudgetForm {
        name: f.text("name"),
        agent: f.text("agent"),
        period: f.text("period"),
        cap: f.text("cap"),
        custom: f.text("cap_custom"),
        warn_pct: f.text("warn_pct"),
        ..BudgetForm::default()
    };
    let result = match budget_of(&form) {
        Ok(v) => match BudgetSpec::from_value(v) {
            Ok(spec) => admin::budgets::create_spec(&console.state, &session.token, spec, admin::Write::Commit)
                .await
                .map(|_| ()),
            Err(e) => Err(e.into()),
        },
        Err((field, message)) => Err(crate::ApiError::invalid(field, message)),
    };
    match result {
        Ok(()) => Ok(Redirect::to(&format!("/budgets?notice=created&name={}", form.name)).into_response()),
        Err(
            crate::ApiError::InvalidArgument { field, message } | crate::ApiError::Unprocessable { field, message },
        ) => {
            form.error = if field.is_empty() { message } else { format!("{field}: {message}") };
            form.field = field;
            render(&console, &session, Notice::error("The budget was not created."), form, StatusCode::BAD_REQUEST)
                .await
        }
        Err(crate::ApiError::AlreadyExists(message)) => {
            form.field = "name".into();
            form.error = message;
            render(&console, &session, Notice::error("The budget was not created."), form, StatusCode::CONFLICT).await
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /budgets/{name}/delete`.
pub async fn delete(
    State(console): State<Console>,
    session: Session,
    Path(name): Path<String>,
) -> Result<Response, ConsoleError> {
    session.require(Role::Writer)?;
    admin::budgets::delete_named(&console.state, &session.token, &name).await?;
    Ok(Redirect::to(&format!("/budgets?notice=deleted&name={name}")).into_response())
}
