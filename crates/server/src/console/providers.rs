//! The LLM Providers list (`GET /providers`): every provider the signed-in token may see,
//! with its type, proxy URL, status, first models, 7-day spend with a sparkline and when it
//! changed; filtered by type, status and name, paginated with a rows-per-page choice.
//!
//! Providers come from the in-memory snapshot (no database read); spend comes from one
//! grouped query over the hourly rollups.

use super::{Console, ConsoleError, Layout, Session, format, html_page, notice_from, type_icon};

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use tollgate_core::ProviderType;

/// Rows-per-page choices.
pub const PAGE_SIZES: [usize; 4] = [10, 25, 50, 100];
const DEFAULT_PAGE_SIZE: usize = 25;

#[derive(Debug, Default, Deserialize)]
pub struct ListParams {
    #[serde(rename = "type")]
    pub provider_type: Option<String>,
    /// `enabled` or `disabled`.
    pub status: Option<String>,
    /// Substring of the name or display name.
    pub q: Option<String>,
    pub page: Option<String>,
    pub per_page: Option<String>,
    pub notice: Option<String>,
    pub name: Option<String>,
}

/// One row of the list.
#[derive(Debug)]
pub struct Row {
    pub name: String,
    pub display_name: String,
    pub type_label: &'static str,
    pub icon: String,
    pub url: String,
    pub enabled: bool,
    /// The first two models; empty when every model is allowed.
    pub models: Vec<String>,
    /// How many more models there are.
    pub more_models: usize,
    pub spend: String,
    pub spark: String,
    pub updated: String,
    pub updated_full: String,
}

/// A `<select>` option.
#[derive(Debug)]
pub struct Opt {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "providers.html")]
struct ListPage {
    layout: Layout,
    rows: Vec<Row>,
    types: Vec<Opt>,
    statuses: Vec<Opt>,
    sizes: Vec<Opt>,
    q: String,
    total: usize,
    first: usize,
    last: usize,
    prev_url: String,
    next_url: String,
    filtered: bool,
    visible_total: usize,
}

fn query_string(pairs: &[(&str, String)]) -> String {
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if !v.is_empty() {
            ser.append_pair(k, v);
        }
    }
    let s = ser.finish();
    if s.is_empty() { "/providers".into() } else { format!("/providers?{s}") }
}

/// `GET /providers`.
pub async fn list(
    State(console): State<Console>,
    session: Session,
    Query(p): Query<ListParams>,
) -> Result<Response, ConsoleError> {
    let snap = console.state.snapshot();
    let type_filter = p.provider_type.as_deref().filter(|s| !s.is_empty()).and_then(|t| t.parse::<ProviderType>().ok());
    let status = p.status.clone().filter(|s| s == "enabled" || s == "disabled");
    let q = p.q.clone().unwrap_or_default().trim().to_string();
    let needle = q.to_lowercase();
    let mut visible: Vec<_> = snap.providers.values().filter(|e| session.in_scope(&e.spec.name)).collect();
    let visible_total = visible.len();
    visible.retain(|e| {
        type_filter.is_none_or(|t| e.spec.provider_type == Some(t))
            && status.as_deref().is_none_or(|s| (s == "enabled") == e.spec.is_enabled())
            && (needle.is_empty()
                || e.spec.name.contains(&needle)
                || e.spec.display_name.to_lowercase().contains(&needle))
    });
    visible.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
    let total = visible.len();
    let per_page = p
        .per_page
        .as_deref()
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|n| PAGE_SIZES.contains(n))
        .unwrap_or(DEFAULT_PAGE_SIZE);
    let pages = total.div_ceil(per_page).max(1);
    let page = p.page.as_deref().and_then(|s| s.parse::<usize>().ok()).unwrap_or(1).clamp(1, pages);
    let start = (page - 1) * per_page;
    let shown: Vec<_> = visible.into_iter().skip(start).take(per_page).collect();
    let names: Vec<String> = shown.iter().map(|e| e.spec.name.clone()).collect();
    let spend = super::spend::last_7_days_by_provider(&console, &names).await?;
    let now = console.state.now_ms();
    let rows = shown
        .into_iter()
        .map(|e| {
            let spec = &e.spec;
            let (total_mc, daily) = spend.get(&spec.name).cloned().unwrap_or_default();
            Row {
                name: spec.name.clone(),
                display_name: spec.display_name.clone(),
                type_label: spec.kind().label(),
                icon: type_icon(spec.kind()),
                url: console.state.proxy_url(&spec.name),
                enabled: spec.is_enabled(),
                models: spec.provider_models.iter().take(2).map(|m| m.name.clone()).collect(),
                more_models: spec.provider_models.len().saturating_sub(2),
                spend: format::usd(total_mc),
                spark: super::charts::sparkline(&daily, 72, 22, &format!("7-day spend of {}", spec.name)),
                updated: format::ago(e.updated_at_ms, now),
                updated_full: format::date_time(e.updated_at_ms),
            }
        })
        .collect();
    let t = type_filter.map(|t| t.as_str().to_string()).unwrap_or_default();
    let st = status.clone().unwrap_or_default();
    let base = |page: usize| {
        query_string(&[
            ("type", t.clone()),
            ("status", st.clone()),
            ("q", q.clone()),
            ("per_page", if per_page == DEFAULT_PAGE_SIZE { String::new() } else { per_page.to_string() }),
            ("page", if page <= 1 { String::new() } else { page.to_string() }),
        ])
    };
    let mut types = vec![Opt { value: String::new(), label: "All types".into(), selected: type_filter.is_none() }];
    types.extend(ProviderType::ALL.iter().map(|pt| Opt {
        value: pt.as_str().into(),
        label: pt.label().into(),
        selected: type_filter == Some(*pt),
    }));
    let statuses = [("", "Any status"), ("enabled", "Enabled"), ("disabled", "Disabled")]
        .iter()
        .map(|(v, l)| Opt { value: (*v).into(), label: (*l).into(), selected: st == *v })
        .collect();
    let sizes = PAGE_SIZES
        .iter()
        .map(|n| Opt { value: n.to_string(), label: n.to_string(), selected: *n == per_page })
        .collect();
    let page_view = ListPage {
        layout: Layout::of(&session, "LLM Providers", "providers")
            .with_notice(notice_from(p.notice.as_deref(), p.name.as_deref())),
        rows,
        types,
        statuses,
        sizes,
        q: q.clone(),
        total,
        first: if total == 0 { 0 } else { start + 1 },
        last: (start + per_page).min(total),
        prev_url: if page > 1 { base(page - 1) } else { String::new() },
        next_url: if page < pages { base(page + 1) } else { String::new() },
        filtered: type_filter.is_some() || status.is_some() || !q.is_empty(),
        visible_total,
    };
    html_page(StatusCode::OK, &page_view)
}
