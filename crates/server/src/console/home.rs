//! The Home page (`/`): what is happening now, each tile a link into the page that explains it.
//! Spend today (against yesterday at the same hour), over 7 and 30 days (against the 7 or 30
//! days before), requests and failure rate over 7 days, the top providers, models and agents by
//! 7-day spend, budgets at or past their warning level, and the latest failed requests.
//!
//! Everything comes from the hourly rollups through the reporting engine ([`crate::report`],
//! as Cost & Usage), the budgets' own spend counters and the request log's newest failed
//! events (one keyset page of five), so the page costs a handful of indexed reads whatever the
//! number of events. A token scoped to some providers sees only theirs.

use super::{Console, ConsoleError, Layout, Session, format, html_page};
use crate::admin::requests::{self as req_api, RequestParams};
use crate::report::{self, Group, Query as SpendQuery};
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use tollgate_core::Role;
use tollgate_store::{DAY_MS, Dimension, HOUR_MS, RollupStats};

/// Rows per "top" list.
const TOP: usize = 5;
/// A budget at this share of its cap counts as near it (as does one past its warning level).
const NEAR_CAP_PERCENT: i64 = 80;
/// Failed requests listed.
const FAILURES: i64 = 5;

/// A spend tile: the figure, its change against the period before, and where it leads.
#[derive(Debug)]
pub struct SpendTile {
    pub id: &'static str,
    pub label: &'static str,
    pub value: String,
    /// `+12.5% vs yesterday` (empty when the previous period spent nothing).
    pub change: String,
    /// `up`, `down` or `flat`: the arrow and colour of the change.
    pub trend: &'static str,
    pub url: String,
}

/// One row of a top-N list.
#[derive(Debug)]
pub struct TopRow {
    pub label: String,
    pub deleted: bool,
    pub spend: String,
    /// Share of the 7-day total, 0–100, for the bar behind the row.
    pub pct: i64,
    pub url: String,
}

/// A top-N list.
#[derive(Debug)]
pub struct TopList {
    pub id: &'static str,
    pub title: &'static str,
    pub rows: Vec<TopRow>,
    pub more_url: String,
}

/// A failed request.
#[derive(Debug)]
pub struct Failure {
    pub id: String,
    pub time: String,
    pub provider: String,
    pub model: String,
    pub status: String,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    layout: Layout,
    spend: Vec<SpendTile>,
    requests: String,
    requests_url: String,
    failure_rate: String,
    failed: String,
    failed_url: String,
    tops: Vec<TopList>,
    budgets: Vec<super::budgets::BudgetRow>,
    failures: Vec<Failure>,
}

/// The change of `now` against `before`, as text and a direction.
pub fn change(now: i64, before: i64, against: &str) -> (String, &'static str) {
    if before == 0 {
        return (
            if now == 0 { String::new() } else { format!("new vs {against}") },
            if now == 0 { "flat" } else { "up" },
        );
    }
    // tenths of a percent, rounded half away from zero, in integers
    let diff = i128::from(now) - i128::from(before);
    let tenths = (diff * 2000 / i128::from(before.abs()) + diff.signum()) / 2;
    let trend = match tenths.signum() {
        1 => "up",
        -1 => "down",
        _ => "flat",
    };
    let sign = if tenths > 0 {
        "+"
    } else if tenths < 0 {
        "−"
    } else {
        ""
    };
    let a = tenths.abs();
    (format!("{sign}{}.{}% vs {against}", a / 10, a % 10), trend)
}

/// A Cost & Usage URL.
fn usage_url(pairs: &[(&str, &str)]) -> String {
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        ser.append_pair(k, v);
    }
    format!("/usage?{}", ser.finish().replace("%3A", ":"))
}

/// The share of `part` in `whole`, percent.
fn pct(part: i64, whole: i64) -> i64 {
    if whole <= 0 { 0 } else { (i128::from(part) * 100 / i128::from(whole)) as i64 }
}

/// `GET /`.
pub async fn page(State(console): State<Console>, session: Session) -> Result<Response, ConsoleError> {
    session.require(Role::Reader)?;
    let state = &console.state;
    let now = state.now_ms();
    let scope = session.token.providers.as_deref();
    let query = |start_ms: i64, end_ms: i64| -> Result<SpendQuery, ConsoleError> {
        let mut q = SpendQuery { start_ms, end_ms, ..SpendQuery::default() };
        q.scope(scope)?;
        Ok(q)
    };
    let total = |q: SpendQuery| async move { report::totals(state, &q).await.map_err(ConsoleError::from) };

    // today so far (to the end of this hour) against yesterday up to the same hour
    let today = report::day_start(now);
    let hour_end = report::ceil_hour(now + 1).max(today + HOUR_MS);
    let t_now = total(query(today, hour_end)?).await?;
    let t_before = total(query(today - DAY_MS, hour_end - DAY_MS)?).await?;
    let (w7_start, w7_end) = report::preset_window("7d", (None, None), now);
    let q7 = query(w7_start, w7_end)?;
    let s7 = total(q7.clone()).await?;
    let s7_before = total(q7.previous()).await?;
    let (w30_start, w30_end) = report::preset_window("30d", (None, None), now);
    let q30 = query(w30_start, w30_end)?;
    let s30 = total(q30.clone()).await?;
    let s30_before = total(q30.previous()).await?;

    let tile = |id, label, now: &RollupStats, before: &RollupStats, against: &str, url: String| {
        let (change, trend) = change(now.cost.total, before.cost.total, against);
        SpendTile { id, label, value: format::usd(now.cost.total), change, trend, url }
    };
    let today_url = usage_url(&[
        ("range", "custom"),
        ("customStart", &format::iso(today)),
        ("customEnd", &format::iso(today + DAY_MS)),
    ]);
    let spend = vec![
        tile("home-today", "Spend today", &t_now, &t_before, "yesterday", today_url),
        tile("home-7d", "Spend, 7 days", &s7, &s7_before, "previous 7 days", usage_url(&[("range", "7d")])),
        tile("home-30d", "Spend, 30 days", &s30, &s30_before, "previous 30 days", usage_url(&[("range", "30d")])),
    ];

    // the top of each dimension over 7 days
    let mut tops = Vec::new();
    for (id, title, key, dim) in [
        ("top-providers", "Top providers", "provider", Dimension::Provider),
        ("top-models", "Top models", "model", Dimension::Model),
        ("top-agents", "Top agents", "agent", Dimension::Agent),
    ] {
        let group = Group::Column(dim);
        let rows = report::breakdown(state, &q7, group)
            .await?
            .into_iter()
            .filter(|e| e.value.cost.total > 0 || e.value.requests > 0)
            .take(TOP)
            .map(|e| {
                let (label, deleted) = report::label(state, Some(group), &e.key, 0);
                TopRow {
                    label,
                    deleted,
                    spend: format::usd(e.value.cost.total),
                    pct: pct(e.value.cost.total, s7.cost.total),
                    url: usage_url(&[("range", "7d"), ("group_by", "model"), (key, &e.key)]),
                }
            })
            .collect();
        tops.push(TopList { id, title, rows, more_url: usage_url(&[("range", "7d"), ("group_by", key)]) });
    }

    // budgets at or past their warning level
    let budgets = super::budgets::rows(&console, &session, None)
        .await?
        .into_iter()
        .map(|(_, r)| r)
        .filter(|r| r.over_warn || r.percent >= NEAR_CAP_PERCENT)
        .collect();

    // the newest failed requests
    let params = RequestParams { status: Some("failed".into()), ..RequestParams::default() };
    let filter = req_api::filter(&session.token, &params)?;
    let events = state.usage().list_requests(&filter, None, FAILURES).await.map_err(crate::error::ApiError::from)?;
    let failures = events
        .iter()
        .map(|e| Failure {
            id: e.id.clone(),
            time: format::ago(e.ts_ms, now),
            provider: e.provider.to_string(),
            model: e.model.clone().unwrap_or_else(|| "—".into()),
            status: e.status.as_str().to_string(),
        })
        .collect();

    let rate =
        if s7.requests == 0 { 0 } else { (i128::from(s7.failed_requests) * 1000 / i128::from(s7.requests)) as i64 };
    let start7 = crate::time::rfc3339(w7_start);
    let page = HomePage {
        layout: Layout::of(&session, "Home", "home"),
        spend,
        requests: format::int(s7.requests),
        requests_url: format!("/requests?start={start7}"),
        failure_rate: format!("{}.{}%", rate / 10, rate % 10),
        failed: format::int(s7.failed_requests),
        failed_url: format!("/requests?status=failed&start={start7}"),
        tops,
        budgets,
        failures,
    };
    html_page(StatusCode::OK, &page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_exact_tenths_of_a_percent() {
        assert_eq!(change(150, 100, "x"), ("+50.0% vs x".to_string(), "up"));
        assert_eq!(change(100, 150, "x"), ("−33.3% vs x".to_string(), "down"));
        assert_eq!(change(2, 3, "x"), ("−33.3% vs x".to_string(), "down"));
        assert_eq!(change(1, 3, "x"), ("−66.7% vs x".to_string(), "down"));
        assert_eq!(change(100, 100, "x"), ("0.0% vs x".to_string(), "flat"));
        assert_eq!(change(5, 0, "x"), ("new vs x".to_string(), "up"));
        assert_eq!(change(0, 0, "x"), (String::new(), "flat"));
    }
}
