//! Cost & Usage (`/usage`): spend, requests and tokens over time as stacked bars, grouped by
//! provider, model, token type, user or agent; filter chips for provider, model, cost type,
//! token type, user and agent (several values per filter, all combined); ranges of the last
//! 7/14/30/90 days, month/quarter/year to date and custom; a footer summing the view by cost
//! bucket; a breakdown table; and the same view as CSV (`/usage/export.csv`).
//!
//! Exploring without script: every bar is a link to its own bucket's window (a click narrows
//! the range), every breakdown row links to the view filtered to it and grouped by the next
//! dimension, `compare=1` draws the previous period of the same length as a dashed line (and
//! the headline's spend change is always against it), the "+ Filter" builder submits
//! `add=dim:value`, which redirects to the canonical URL with that filter, and deleted
//! providers are folded into one "Deleted providers" entry unless `show_deleted=1`. The
//! script adds the crosshair tooltip (every series' value in the bucket) and click-to-isolate
//! legend entries.
//!
//! The URL is the state: `range`, `customStart`/`customEnd` (ISO-8601, rewritten to
//! `YYYY-MM-DDTHH:MM:SSZ` so a copied URL opens the same window), `group_by` and repeatable
//! filter parameters. Windows are whole UTC days for the presets and whole hours for custom
//! ranges; buckets are hours for windows up to 2 days, days otherwise. The page is a thin
//! adapter: the view becomes a [`report::Query`] and the numbers, labels and CSV come from the
//! reporting engine shared with the admin spending API ([`crate::report`]).

use super::charts::{self, BarChart, OKABE_ITO, Series};
use super::spend;
use super::{Console, ConsoleError, Layout, Session, format, html_page};
pub use crate::report::COST_TYPES;
use crate::report::{self, Group, Query as SpendQuery};
use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use std::collections::{BTreeMap, HashMap};
use tollgate_core::{Bucket, ProviderType};
use tollgate_store::{DAY_MS, Dimension, HOUR_MS, RollupStats};

/// The date ranges of the picker.
pub const RANGES: [(&str, &str); 8] = [
    ("7d", "Last 7 days"),
    ("14d", "Last 14 days"),
    ("30d", "Last 30 days"),
    ("90d", "Last 90 days"),
    ("mtd", "Month to date"),
    ("qtd", "Quarter to date"),
    ("ytd", "Year to date"),
    ("custom", "Custom range"),
];

/// Group-by choices.
pub const GROUPS: [(&str, &str); 6] = [
    ("provider", "Provider"),
    ("model", "Model"),
    ("token_type", "Token type"),
    ("user", "User"),
    ("agent", "Agent"),
    ("none", "Nothing"),
];

/// Longest custom window.
const MAX_WINDOW_MS: i64 = 400 * DAY_MS;
/// Most series drawn; the rest are summed into "Other".
const MAX_SERIES: usize = 10;

fn bucket_color(b: Bucket) -> &'static str {
    match b {
        Bucket::Input => OKABE_ITO[4],
        Bucket::Output => OKABE_ITO[0],
        Bucket::CachedInput => OKABE_ITO[2],
        Bucket::CacheWrite5m => OKABE_ITO[6],
        Bucket::CacheWrite1h => OKABE_ITO[5],
        Bucket::CacheWriteUnknown => OKABE_ITO[1],
        Bucket::Reasoning => OKABE_ITO[3],
    }
}

/// The parsed, canonical view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    pub range: String,
    pub custom_start: Option<i64>,
    pub custom_end: Option<i64>,
    pub group_by: String,
    pub providers: Vec<String>,
    pub models: Vec<String>,
    pub users: Vec<String>,
    pub agents: Vec<String>,
    pub token_types: Vec<String>,
    pub cost_types: Vec<String>,
    /// Provider tags, `key:value`: the view keeps the providers carrying every one (as they
    /// are tagged now; a deleted provider has no tags).
    pub tags: Vec<String>,
    /// Draw the previous period of the same length (`compare=1`).
    pub compare: bool,
    /// List deleted providers one by one (`show_deleted=1`); otherwise they are folded into
    /// one "Deleted providers" entry.
    pub show_deleted: bool,
    /// `add=dim:value` was given (the "+ Filter" builder's form): the page redirects to the
    /// canonical URL with it as a filter.
    pub added: bool,
}

/// Parses an ISO-8601 time: RFC 3339, or a date-time / date without zone (taken as UTC). A bare
/// date as an end means the end of that day.
pub fn parse_iso(s: &str, is_end: bool) -> Option<i64> {
    let s = s.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.timestamp_millis());
    }
    for f in ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"] {
        if let Ok(d) = NaiveDateTime::parse_from_str(s, f) {
            return Some(d.and_utc().timestamp_millis());
        }
    }
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    let ms = d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis();
    Some(if is_end { ms + DAY_MS } else { ms })
}

impl View {
    /// Reads the query string; unknown values fall back to defaults, bad custom times are errors.
    pub fn parse(query: &str) -> Result<View, String> {
        let mut v = View {
            range: "7d".into(),
            custom_start: None,
            custom_end: None,
            group_by: "provider".into(),
            providers: vec![],
            models: vec![],
            users: vec![],
            agents: vec![],
            token_types: vec![],
            cost_types: vec![],
            tags: vec![],
            compare: false,
            show_deleted: false,
            added: false,
        };
        let push = |list: &mut Vec<String>, val: &str| {
            let val = val.trim();
            if !val.is_empty() && !list.iter().any(|x| x == val) {
                list.push(val.to_string());
            }
        };
        // model, user and agent: an empty value is a real key, "(no model)" / "(unattributed)"
        let push_key = |list: &mut Vec<String>, val: &str| {
            let val = val.trim();
            if !list.iter().any(|x| x == val) {
                list.push(val.to_string());
            }
        };
        let mut errors = Vec::new();
        for (k, val) in url::form_urlencoded::parse(query.as_bytes()) {
            match k.as_ref() {
                "range" if RANGES.iter().any(|(r, _)| *r == val) => v.range = val.into_owned(),
                "group_by" if GROUPS.iter().any(|(g, _)| *g == val) => v.group_by = val.into_owned(),
                "group_by" if val.strip_prefix("tag:").is_some_and(|k| !k.trim().is_empty()) => {
                    v.group_by = val.into_owned()
                }
                "tag" if val.split_once(':').is_some_and(|(k, _)| !k.trim().is_empty()) => push(&mut v.tags, &val),
                "customStart" if !val.trim().is_empty() => match parse_iso(&val, false) {
                    Some(ms) => v.custom_start = Some(ms),
                    None => {
                        errors.push(format!("customStart `{val}` is not an ISO-8601 time like 2026-11-01T00:00:00Z"))
                    }
                },
                "customEnd" if !val.trim().is_empty() => match parse_iso(&val, true) {
                    Some(ms) => v.custom_end = Some(ms),
                    None => errors.push(format!("customEnd `{val}` is not an ISO-8601 time like 2026-11-24T00:00:00Z")),
                },
                "provider" => push(&mut v.providers, &val),
                "model" => push_key(&mut v.models, &val),
                "user" => push_key(&mut v.users, &val),
                "agent" => push_key(&mut v.agents, &val),
                "token_type" if Bucket::parse(&val).is_some() => push(&mut v.token_types, &val),
                "cost_type" if COST_TYPES.iter().any(|(c, _)| *c == val) => push(&mut v.cost_types, &val),
                "compare" => v.compare = val == "1" || val == "on" || val == "true",
                "show_deleted" => v.show_deleted = val == "1" || val == "on" || val == "true",
                "add" => {
                    v.added = true;
                    let (dim, value) = val.split_once(':').unwrap_or((val.as_ref(), ""));
                    match dim {
                        "provider" => push(&mut v.providers, value),
                        "model" => push_key(&mut v.models, value),
                        "user" => push_key(&mut v.users, value),
                        "agent" => push_key(&mut v.agents, value),
                        "tag" if value.split_once(':').is_some_and(|(k, _)| !k.trim().is_empty()) => {
                            push(&mut v.tags, value)
                        }
                        "token_type" if Bucket::parse(value).is_some() => push(&mut v.token_types, value),
                        "cost_type" if COST_TYPES.iter().any(|(c, _)| *c == value) => push(&mut v.cost_types, value),
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        if v.range == "custom" {
            match (v.custom_start, v.custom_end) {
                (Some(s), Some(e)) if s >= e => errors.push("customStart must be before customEnd".into()),
                (Some(s), Some(e)) if e - s > MAX_WINDOW_MS => {
                    errors.push("a custom range may span at most 400 days".into())
                }
                (Some(_), Some(_)) => {}
                _ => errors.push("a custom range needs customStart and customEnd".into()),
            }
        }
        if errors.is_empty() { Ok(v) } else { Err(errors.join("; ")) }
    }

    /// The window `[start, end)` and the bucket width, at `now_ms`.
    pub fn window(&self, now_ms: i64) -> (i64, i64, i64) {
        let (start, end) = report::preset_window(&self.range, (self.custom_start, self.custom_end), now_ms);
        (start, end, report::default_width(start, end))
    }

    /// The canonical query pairs (what the URL should say).
    pub fn pairs(&self) -> Vec<(String, String)> {
        let mut out = vec![("range".to_string(), self.range.clone())];
        if self.range == "custom" {
            if let Some(s) = self.custom_start {
                out.push(("customStart".into(), format::iso(s)));
            }
            if let Some(e) = self.custom_end {
                out.push(("customEnd".into(), format::iso(e)));
            }
        }
        if self.group_by != "provider" {
            out.push(("group_by".into(), self.group_by.clone()));
        }
        for (k, list) in self.filter_lists() {
            for v in list {
                out.push((k.to_string(), v.clone()));
            }
        }
        if self.compare {
            out.push(("compare".into(), "1".into()));
        }
        if self.show_deleted {
            out.push(("show_deleted".into(), "1".into()));
        }
        out
    }

    fn filter_lists(&self) -> [(&'static str, &Vec<String>); 7] {
        [
            ("provider", &self.providers),
            ("tag", &self.tags),
            ("model", &self.models),
            ("cost_type", &self.cost_types),
            ("token_type", &self.token_types),
            ("user", &self.users),
            ("agent", &self.agents),
        ]
    }

    /// The buckets the token-type and cost-type chips keep (`None` = all).
    pub fn buckets(&self) -> Option<Vec<Bucket>> {
        let by_token: Vec<Bucket> = self.token_types.iter().filter_map(|t| Bucket::parse(t)).collect();
        report::bucket_set(&by_token, &self.cost_types)
    }

    /// The grouping (`None` for "Nothing"); a tag grouping reads by provider (the page folds
    /// providers by their tag value).
    pub fn group(&self) -> Option<Group> {
        if self.tag_key().is_some() {
            return Some(Group::Column(Dimension::Provider));
        }
        Group::parse("group_by", &self.group_by).ok()
    }

    /// The tag key of a `group_by=tag:KEY` view.
    pub fn tag_key(&self) -> Option<&str> {
        self.group_by.strip_prefix("tag:")
    }
}

/// A URL of this page for `pairs`.
fn url_of(path: &str, pairs: &[(String, String)]) -> String {
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        ser.append_pair(k, v);
    }
    // `:` may stand unescaped in a query (RFC 3986), so shared ISO-8601 times stay readable
    format!("{path}?{}", ser.finish().replace("%3A", ":"))
}

/// A filter chip.
#[derive(Debug)]
pub struct Chip {
    pub dim: &'static str,
    pub value: String,
    pub label: String,
    pub remove_url: String,
}

/// A filter `<select>` that adds a chip.
#[derive(Debug)]
pub struct FilterSelect {
    pub key: &'static str,
    pub label: &'static str,
    pub options: Vec<(String, String)>,
    pub hidden: Vec<(String, String)>,
}

/// One chart and its legend.
#[derive(Debug)]
pub struct ChartView {
    pub id: &'static str,
    pub title: &'static str,
    pub svg: String,
    pub legend: Vec<(String, String)>,
    pub total: String,
}

/// A headline figure.
#[derive(Debug)]
pub struct Headline {
    pub label: &'static str,
    pub value: String,
    /// Where it leads ("" for nowhere).
    pub link: String,
    /// Its change against the previous period ("" when not computed).
    pub change: String,
    pub trend: &'static str,
}

impl Headline {
    fn plain(label: &'static str, value: String) -> Headline {
        Headline { label, value, link: String::new(), change: String::new(), trend: "flat" }
    }
}

/// A row of the breakdown table.
#[derive(Debug)]
pub struct BreakdownRow {
    pub key: String,
    /// The view filtered to this row and grouped by the next dimension ("" for none).
    pub drill_url: String,
    pub label: String,
    pub deleted: bool,
    pub spend: String,
    pub requests: String,
    pub tokens: String,
    pub share: String,
}

#[derive(Template)]
#[template(path = "usage.html")]
struct UsagePage {
    layout: Layout,
    /// Every budget with its spend this period.
    budgets: Vec<super::budgets::BudgetRow>,
    subtitle: String,
    ranges: Vec<(&'static str, &'static str, bool)>,
    groups: Vec<(String, String, bool)>,
    custom_start: String,
    custom_end: String,
    hidden_range: Vec<(String, String)>,
    hidden_group: Vec<(String, String)>,
    chips: Vec<Chip>,
    filters: Vec<FilterSelect>,
    clear_url: String,
    charts: Vec<ChartView>,
    sums: Vec<(&'static str, String)>,
    headline: Vec<Headline>,
    /// The "+ Filter" builder's form keeps the view's other parameters.
    add_hidden: Vec<(String, String)>,
    /// The compare / show-deleted switches' form keeps the others.
    switch_hidden: Vec<(String, String)>,
    compare: bool,
    show_deleted: bool,
    show_deleted_switch: bool,
    breakdown: Vec<BreakdownRow>,
    group_label: &'static str,
    /// False when grouped by token type: requests are not split by token type, so a
    /// per-type request count does not exist (the column is left out).
    show_requests: bool,
    csv_url: String,
    /// This view's canonical URL (custom ranges as `customStart` / `customEnd`), to share.
    share_url: String,
}

/// What a view resolves to: the store query and the labels of providers.
struct Resolved {
    view: View,
    query: SpendQuery,
    width: i64,
}

/// A provider name no provider can have (names are lowercase): the filter of "no provider".
const NO_PROVIDER: &str = "(NONE)";

fn resolve(console: &Console, session: &Session, view: View, now_ms: i64) -> Result<Resolved, ConsoleError> {
    let (start_ms, end_ms, width) = view.window(now_ms);
    let mut query = SpendQuery {
        start_ms,
        end_ms,
        providers: view.providers.clone(),
        models: view.models.clone(),
        users: view.users.clone(),
        agents: view.agents.clone(),
        provider_types: vec![],
        buckets: view.buckets(),
    };
    if !view.tags.is_empty() {
        let snap = console.state.snapshot();
        let mut tagged: Vec<String> = snap
            .providers
            .values()
            .filter(|p| {
                view.tags.iter().all(|t| {
                    let (k, v) = t.split_once(':').unwrap_or((t.as_str(), ""));
                    p.spec.tags.get(k).is_some_and(|x| x == v)
                })
            })
            .map(|p| p.spec.name.clone())
            .filter(|n| query.providers.is_empty() || query.providers.contains(n))
            .collect();
        tagged.sort();
        // no provider carries them: a name no provider can have, so the view is empty
        query.providers = if tagged.is_empty() { vec![NO_PROVIDER.to_string()] } else { tagged };
    }
    query.scope(session.token.providers.as_deref())?;
    Ok(Resolved { view, query, width })
}

/// The label of a group key (`group` as in the URL: `none` is no grouping, and a filter
/// dimension labels its values like the grouping of the same name).
fn key_label(console: &Console, group: &str, key: &str) -> (String, bool) {
    report::label(&console.state, Group::parse("group_by", group).ok(), key, 0)
}

/// Colour and hatch per series: providers by type (hatched by their rank within the type),
/// token types by bucket, anything else through the palette then hatches.
fn styles(console: &Console, group: &str, keys: &[String]) -> Vec<(String, usize)> {
    let snap = console.state.snapshot();
    let mut per_type: HashMap<Option<ProviderType>, usize> = HashMap::new();
    keys.iter()
        .enumerate()
        .map(|(i, k)| match group {
            "provider" => {
                let t = snap.providers.get(k).map(|p| p.spec.kind());
                let n = per_type.entry(t).or_insert(0);
                let hatch = *n;
                *n += 1;
                (t.map_or(OKABE_ITO[7], charts::type_color).to_string(), hatch)
            }
            "token_type" => (Bucket::parse(k).map_or(OKABE_ITO[7], bucket_color).to_string(), 0),
            _ => (OKABE_ITO[i % OKABE_ITO.len()].to_string(), i / OKABE_ITO.len()),
        })
        .collect()
}

fn tick_label(ms: i64, width: i64) -> (String, String) {
    let d = DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default();
    if width == HOUR_MS {
        (d.format("%H:%M").to_string(), d.format("%b %-d, %Y %H:00 UTC").to_string())
    } else {
        (d.format("%b %-d").to_string(), d.format("%a %b %-d, %Y").to_string())
    }
}

/// Everything the page needs.
struct Data {
    resolved: Resolved,
    series: report::Timeseries,
    breakdown: Vec<report::Keyed<RollupStats>>,
    totals: RollupStats,
    /// The window of the same length just before: its totals, and per bucket when comparing.
    previous: RollupStats,
    previous_series: Option<Vec<RollupStats>>,
}

/// The key deleted providers are folded into while "Show deleted providers" is off.
pub const DELETED_KEY: &str = "(deleted providers)";

/// The key of providers without the grouped tag.
pub const UNTAGGED_KEY: &str = "(untagged)";

/// Folds provider entries into their value of tag `key` ([`UNTAGGED_KEY`] without it), highest
/// cost first as the engine ranks.
fn fold_by_tag<T: Clone>(
    console: &Console,
    key: &str,
    entries: &[report::Keyed<T>],
    add: impl Fn(&mut T, &T),
) -> Vec<report::Keyed<T>> {
    let snap = console.state.snapshot();
    let mut out: Vec<report::Keyed<T>> = Vec::new();
    for e in entries {
        let tag = snap
            .providers
            .get(&e.key)
            .and_then(|p| p.spec.tags.get(key).cloned())
            .unwrap_or_else(|| UNTAGGED_KEY.to_string());
        match out.iter_mut().find(|x| x.key == tag) {
            Some(x) => add(&mut x.value, &e.value),
            None => out.push(report::Keyed { key: tag, value: e.value.clone() }),
        }
    }
    out
}

/// Folds the entries of deleted providers into one [`DELETED_KEY`] entry (at the end).
fn fold_deleted<T: Clone>(
    console: &Console,
    entries: &[report::Keyed<T>],
    add: impl Fn(&mut T, &T),
) -> Vec<report::Keyed<T>> {
    let mut out: Vec<report::Keyed<T>> = Vec::with_capacity(entries.len());
    let mut folded: Option<T> = None;
    for e in entries {
        if e.key != report::OTHER_KEY && key_label(console, "provider", &e.key).1 {
            match &mut folded {
                Some(f) => add(f, &e.value),
                None => folded = Some(e.value.clone()),
            }
        } else {
            out.push(e.clone());
        }
    }
    if let Some(value) = folded {
        out.push(report::Keyed { key: DELETED_KEY.to_string(), value });
    }
    out
}

async fn load(console: &Console, session: &Session, view: View) -> Result<Data, ConsoleError> {
    let resolved = resolve(console, session, view, console.state.now_ms())?;
    let q = &resolved.query;
    let group = resolved.view.group();
    let state = &console.state;
    let series = report::timeseries(state, q, group, resolved.width, MAX_SERIES).await?;
    let mut totals = RollupStats::default();
    for s in &series.totals {
        totals.add(s);
    }
    let breakdown = match group {
        Some(g) => report::breakdown(state, q, g).await?,
        None if totals.requests > 0 || totals.tokens.total_tokens() > 0 || totals.cost.total != 0 => {
            vec![report::Keyed { key: report::ALL_KEY.to_string(), value: totals }]
        }
        None => vec![],
    };
    let prev_q = q.previous();
    let (previous, previous_series) = if resolved.view.compare {
        let prev = report::timeseries(state, &prev_q, None, resolved.width, 1).await?;
        let mut t = RollupStats::default();
        for s in &prev.totals {
            t.add(s);
        }
        (t, Some(prev.totals))
    } else {
        (report::totals(state, &prev_q).await?, None)
    };
    Ok(Data { resolved, series, breakdown, totals, previous, previous_series })
}

/// `GET /usage`.
pub async fn page(
    State(console): State<Console>,
    session: Session,
    RawQuery(raw): RawQuery,
) -> Result<Response, ConsoleError> {
    let raw = raw.unwrap_or_default();
    let view = match View::parse(&raw) {
        Ok(v) => v,
        Err(msg) => {
            let fallback = View::parse("").map_err(ConsoleError::BadRequest)?;
            return render(&console, &session, fallback, super::Notice::error(msg), StatusCode::BAD_REQUEST).await;
        }
    };
    // a filter added by the builder becomes an ordinary filter parameter in the URL
    if view.added {
        return Ok(Redirect::to(&url_of("/usage", &view.pairs())).into_response());
    }
    // a custom range is written back as canonical ISO-8601 so the URL is shareable as is
    if view.range == "custom" {
        let canonical = |key: &str, ms: Option<i64>| {
            url::form_urlencoded::parse(raw.as_bytes())
                .filter(|(k, _)| k == key)
                .all(|(_, v)| ms.is_some_and(|ms| v == format::iso(ms)))
        };
        if !canonical("customStart", view.custom_start) || !canonical("customEnd", view.custom_end) {
            return Ok(Redirect::to(&url_of("/usage", &view.pairs())).into_response());
        }
    }
    render(&console, &session, view, None, StatusCode::OK).await
}

async fn render(
    console: &Console,
    session: &Session,
    view: View,
    notice: Option<super::Notice>,
    status: StatusCode,
) -> Result<Response, ConsoleError> {
    let data = load(console, session, view).await?;
    let view = &data.resolved.view;
    let q = &data.resolved.query;
    let width = data.resolved.width;
    let group = view.group_by.as_str();
    let pairs = view.pairs();
    let without = |key: &str| pairs.iter().filter(|(k, _)| k != key).cloned().collect::<Vec<_>>();

    // charts: the engine's top series and "(other)"; token types without tokens or cost are
    // left out
    let ts = &data.series;
    let (ticks, titles): (Vec<String>, Vec<String>) = ts.starts.iter().map(|s| tick_label(*s, width)).unzip();
    let fold = group == "provider" && !view.show_deleted;
    let add_points = |a: &mut Vec<RollupStats>, b: &Vec<RollupStats>| {
        for (x, y) in a.iter_mut().zip(b) {
            x.add(y);
        }
    };
    let series_list = if let Some(k) = view.tag_key() {
        fold_by_tag(console, k, &ts.series, add_points)
    } else if fold {
        fold_deleted(console, &ts.series, add_points)
    } else {
        ts.series.clone()
    };
    // a click on a bar narrows the range to its bucket (same filters and grouping)
    let keep: Vec<(String, String)> =
        pairs.iter().filter(|(k, _)| !["range", "customStart", "customEnd"].contains(&k.as_str())).cloned().collect();
    let links: Vec<String> = ts
        .starts
        .iter()
        .map(|s| {
            let mut p = vec![
                ("range".to_string(), "custom".to_string()),
                ("customStart".into(), format::iso(*s)),
                ("customEnd".into(), format::iso(s + width)),
            ];
            p.extend(keep.iter().cloned());
            url_of("/usage", &p)
        })
        .collect();
    let shown: Vec<&report::Keyed<Vec<RollupStats>>> = series_list
        .iter()
        .filter(|s| group != "token_type" || s.value.iter().any(|p| p.tokens.total_tokens() > 0 || p.cost.total != 0))
        .collect();
    let keys: Vec<String> = shown.iter().map(|s| s.key.clone()).collect();
    let mut style = styles(console, group, &keys);
    for (k, st) in keys.iter().zip(style.iter_mut()) {
        if k == report::OTHER_KEY || k == DELETED_KEY {
            *st = ("#8a94a3".into(), if k == DELETED_KEY { 1 } else { 0 });
        }
    }
    let points: Vec<Vec<RollupStats>> = shown.iter().map(|s| s.value.clone()).collect();
    let labels: Vec<String> = keys
        .iter()
        .map(|k| {
            if k == DELETED_KEY {
                "Deleted providers".to_string()
            } else if view.tag_key().is_some() {
                k.clone()
            } else {
                report::label(&console.state, view.group(), k, ts.truncated_key_count).0
            }
        })
        .collect();
    let build = |id: &'static str,
                 title: &'static str,
                 metric: &dyn Fn(&RollupStats) -> i64,
                 fmt: fn(i64) -> String,
                 axis: fn(i64) -> String,
                 min_top: i64| {
        let series: Vec<Series> = if group == "token_type" && id == "chart-requests" {
            // requests are not split by token type: one series
            vec![Series {
                label: "Requests".into(),
                color: OKABE_ITO[4].into(),
                hatch: 0,
                values: ts.totals.iter().map(metric).collect(),
            }]
        } else {
            points
                .iter()
                .zip(&labels)
                .zip(&style)
                .map(|((p, label), (color, hatch))| Series {
                    label: label.clone(),
                    color: color.clone(),
                    hatch: *hatch,
                    values: p.iter().map(metric).collect(),
                })
                .collect()
        };
        let svg = charts::bars(&BarChart {
            id,
            title,
            buckets: titles.clone(),
            ticks: ticks.clone(),
            series: series.clone(),
            fmt,
            axis_fmt: axis,
            width: 960,
            height: 240,
            min_top,
            links: links.clone(),
            previous: data.previous_series.as_ref().map(|p| p.iter().map(metric).collect()),
        });
        let legend = series
            .iter()
            .enumerate()
            .filter(|(_, s)| s.values.iter().any(|v| *v > 0) || series.len() <= MAX_SERIES)
            .map(|(i, s)| (charts::swatch(&format!("{id}-lg{i}"), s), s.label.clone()))
            .collect();
        let total: i64 = series.iter().flat_map(|s| s.values.iter()).sum();
        ChartView { id, title, svg, legend, total: fmt(total) }
    };
    let charts = vec![
        build("chart-spend", "Spend over time", &|s| s.cost.total, format::usd, format::usd_compact, 1_000_000),
        build("chart-requests", "Requests over time", &|s| s.requests, format::int, format::compact, 4),
        build("chart-tokens", "Tokens over time", &|s| s.tokens.total_tokens(), format::int, format::compact, 4),
    ];

    // footer: the view by cost bucket
    let t = &data.totals;
    let mut sums = vec![("Total", format::usd(t.cost.total))];
    for (label, v) in [
        ("Input", t.cost.input),
        ("Output", t.cost.output),
        ("Cached", t.cost.cached_input),
        ("Cache writes", t.cost.cache_write_5m + t.cost.cache_write_1h + t.cost.cache_write_unknown),
        ("Reasoning", t.cost.reasoning),
    ] {
        let tokens = match label {
            "Input" => t.tokens.input,
            "Output" => t.tokens.output,
            "Cached" => t.tokens.cached_input,
            "Cache writes" => t.tokens.cache_write_5m + t.tokens.cache_write_1h + t.tokens.cache_write_unknown,
            _ => t.tokens.reasoning,
        };
        if v != 0 || tokens != 0 {
            sums.push((label, format::usd(v)));
        }
    }
    // Failed requests → the request log, filtered to them (window start, and the provider when
    // the view has exactly one).
    let failed_url = {
        let mut u = url::form_urlencoded::Serializer::new(String::new());
        u.append_pair("status", "failed");
        u.append_pair("start", &crate::time::rfc3339(q.start_ms));
        if let [p] = q.providers.as_slice() {
            u.append_pair("provider", p);
        }
        format!("/requests?{}", u.finish())
    };
    let (change, trend) = super::home::change(t.cost.total, data.previous.cost.total, "previous period");
    let per_k = if t.requests == 0 {
        "—".to_string()
    } else {
        format::usd((i128::from(t.cost.total) * 1000 / i128::from(t.requests)) as i64)
    };
    let headline = vec![
        Headline { label: "Total spend", value: format::usd(t.cost.total), link: String::new(), change, trend },
        Headline::plain("Requests", format::int(t.requests)),
        Headline::plain("Cost / 1,000 requests", per_k),
        Headline::plain("Tokens", format::int(t.tokens.total_tokens())),
        Headline { link: failed_url, ..Headline::plain("Failed requests", format::int(t.failed_requests)) },
    ];

    // breakdown table
    let grand = t.cost.total.max(1);
    let entries = if let Some(k) = view.tag_key() {
        let mut e = fold_by_tag(console, k, &data.breakdown, |a: &mut RollupStats, b| a.add(b));
        e.sort_by(|a, b| b.value.cost.total.cmp(&a.value.cost.total).then_with(|| a.key.cmp(&b.key)));
        e
    } else if fold {
        fold_deleted(console, &data.breakdown, |a: &mut RollupStats, b| a.add(b))
    } else {
        data.breakdown.clone()
    };
    // a row drills into its value: the filter added, grouped by the next dimension
    let next_group = match group {
        "provider" | "user" | "agent" => Some("model"),
        "model" => Some("provider"),
        "token_type" => Some("provider"),
        _ => None,
    };
    let drill = |key: &str| -> String {
        let Some(next) = next_group else { return String::new() };
        if key == report::OTHER_KEY || key == DELETED_KEY || key == report::ALL_KEY {
            return String::new();
        }
        let mut p: Vec<(String, String)> = pairs.iter().filter(|(k, _)| k != "group_by").cloned().collect();
        if !p.iter().any(|(k, v)| k == group && v == key) {
            p.push((group.to_string(), key.to_string()));
        }
        p.push(("group_by".into(), next.to_string()));
        url_of("/usage", &p)
    };
    let breakdown = entries
        .iter()
        .filter(|e| group != "token_type" || e.value.tokens.total_tokens() > 0 || e.value.cost.total != 0)
        .map(|e| {
            let s = &e.value;
            let (label, deleted) = if e.key == DELETED_KEY {
                ("Deleted providers".to_string(), true)
            } else {
                if view.tag_key().is_some() { (e.key.clone(), false) } else { key_label(console, group, &e.key) }
            };
            let share = s.cost.total * 1000 / grand;
            BreakdownRow {
                drill_url: drill(&e.key),
                key: e.key.clone(),
                label,
                deleted,
                spend: format::usd(s.cost.total),
                requests: format::int(s.requests),
                tokens: format::int(s.tokens.total_tokens()),
                share: if t.cost.total == 0 { "—".into() } else { format!("{}.{}%", share / 10, share % 10) },
            }
        })
        .collect();

    // chips and filter options (each list honours the other filters)
    let mut chips = Vec::new();
    for (dim, list) in view.filter_lists() {
        for v in list {
            let remove: Vec<(String, String)> =
                pairs.iter().filter(|(k, val)| !(k == dim && val == v)).cloned().collect();
            let label = match dim {
                "provider" => key_label(console, "provider", v).0,
                "token_type" => Bucket::parse(v).map_or_else(|| v.clone(), |b| b.label().to_string()),
                "cost_type" => COST_TYPES.iter().find(|(c, _)| c == v).map_or(v.as_str(), |(_, l)| l).to_string(),
                "tag" => v.replacen(':', "=", 1),
                _ => key_label(console, dim, v).0,
            };
            chips.push(Chip { dim, value: v.clone(), label, remove_url: url_of("/usage", &remove) });
        }
    }
    let mut filters = Vec::new();
    for (key, label, dim) in [
        ("provider", "Provider", Dimension::Provider),
        ("model", "Model", Dimension::Model),
        ("user", "User", Dimension::User),
        ("agent", "Agent", Dimension::Agent),
    ] {
        let mut oq = q.clone();
        match dim {
            Dimension::Provider => oq.providers = session.token.providers.clone().unwrap_or_default(),
            Dimension::Model => oq.models.clear(),
            Dimension::User => oq.users.clear(),
            _ => oq.agents.clear(),
        }
        oq.buckets = None;
        let mut totals: BTreeMap<String, i64> = BTreeMap::new();
        for r in spend::rows(console, &oq, Some(dim), None).await? {
            *totals.entry(r.key).or_default() += r.stats.cost.total + r.stats.requests;
        }
        let taken: Vec<&String> =
            view.filter_lists().iter().filter(|(d, _)| *d == key).flat_map(|(_, l)| l.iter()).collect();
        let options =
            totals.keys().filter(|k| !taken.contains(k)).map(|k| (k.clone(), key_label(console, key, k).0)).collect();
        filters.push(FilterSelect { key, label, options, hidden: pairs.clone() });
    }
    // provider tags as they are now: every key (for group by) and key:value (for filters)
    let (tag_keys, tag_values) = {
        let snap = console.state.snapshot();
        let mut keys: Vec<String> = Vec::new();
        let mut values: Vec<String> = Vec::new();
        for p in snap.providers.values() {
            for (k, v) in &p.spec.tags {
                if !keys.contains(k) {
                    keys.push(k.clone());
                }
                let kv = format!("{k}:{v}");
                if !values.contains(&kv) && !view.tags.contains(&kv) {
                    values.push(kv);
                }
            }
        }
        keys.sort();
        values.sort();
        (keys, values)
    };
    filters.push(FilterSelect {
        key: "tag",
        label: "Tag",
        options: tag_values.iter().map(|kv| (kv.clone(), kv.replacen(':', "=", 1))).collect(),
        hidden: pairs.clone(),
    });
    filters.push(FilterSelect {
        key: "cost_type",
        label: "Cost type",
        options: COST_TYPES
            .iter()
            .filter(|(c, _)| !view.cost_types.iter().any(|x| x == c))
            .map(|(c, l)| ((*c).to_string(), (*l).to_string()))
            .collect(),
        hidden: pairs.clone(),
    });
    filters.push(FilterSelect {
        key: "token_type",
        label: "Token type",
        options: Bucket::ALL
            .iter()
            .filter(|b| !view.token_types.iter().any(|x| x == b.as_str()))
            .map(|b| (b.as_str().to_string(), b.label().to_string()))
            .collect(),
        hidden: pairs.clone(),
    });

    let range_label = RANGES.iter().find(|(r, _)| *r == view.range).map_or("", |(_, l)| l);
    let subtitle = format!(
        "{} · {}{} buckets",
        format::date_range(q.start_ms, q.end_ms),
        if view.range == "custom" { String::new() } else { format!("{range_label} · ") },
        if width == HOUR_MS { "hourly" } else { "daily" }
    );
    let page = UsagePage {
        layout: Layout::of(session, "Cost & Usage", "usage").with_notice(notice),
        budgets: super::budgets::rows(console, session, None).await?.into_iter().map(|(_, r)| r).collect(),
        subtitle,
        ranges: RANGES.iter().map(|(r, l)| (*r, *l, *r == view.range)).collect(),
        groups: GROUPS
            .iter()
            .map(|(g, l)| (g.to_string(), l.to_string()))
            .chain(tag_keys.iter().map(|k| (format!("tag:{k}"), format!("Tag: {k}"))))
            .map(|(g, l)| {
                let on = g == group;
                (g, l, on)
            })
            .collect(),
        custom_start: format::datetime_local(view.custom_start.unwrap_or(q.start_ms)),
        custom_end: format::datetime_local(view.custom_end.unwrap_or(q.end_ms)),
        hidden_range: without("range").into_iter().filter(|(k, _)| k != "customStart" && k != "customEnd").collect(),
        hidden_group: without("group_by"),
        chips,
        filters,
        clear_url: url_of(
            "/usage",
            &pairs
                .iter()
                .filter(|(k, _)| ["range", "customStart", "customEnd", "group_by"].contains(&k.as_str()))
                .cloned()
                .collect::<Vec<_>>(),
        ),
        charts,
        sums,
        headline,
        add_hidden: pairs.clone(),
        switch_hidden: pairs.iter().filter(|(k, _)| k != "compare" && k != "show_deleted").cloned().collect(),
        compare: view.compare,
        show_deleted: view.show_deleted,
        show_deleted_switch: group == "provider",
        breakdown,
        group_label: if view.tag_key().is_some() {
            "Tag"
        } else {
            GROUPS.iter().find(|(g, _)| *g == group).map_or("Group", |(_, l)| l)
        },
        show_requests: group != "token_type",
        csv_url: url_of("/usage/export.csv", &pairs),
        share_url: url_of("/usage", &pairs),
    };
    html_page(status, &page)
}

/// `GET /usage/export.csv`: the current view through the engine's one CSV writer (the same
/// bytes as the admin API's `export.csv` for the same query), one row per bucket and group.
pub async fn csv(
    State(console): State<Console>,
    session: Session,
    RawQuery(raw): RawQuery,
) -> Result<Response, ConsoleError> {
    let view = View::parse(&raw.unwrap_or_default()).map_err(ConsoleError::BadRequest)?;
    let r = resolve(&console, &session, view, console.state.now_ms())?;
    let body = report::csv(&console.state, &r.query, r.view.group(), Some(r.width)).await?;
    let mut resp = crate::admin::spending::csv_response(body, &r.query);
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOV24: i64 = 1_795_478_400_000;

    #[test]
    fn parses_repeated_filters_and_canonicalises_custom_ranges() {
        let v = View::parse(
            "range=custom&customStart=2026-11-01T00:00&customEnd=2026-11-24&provider=a&provider=b&provider=a&token_type=input&cost_type=output&group_by=model&bogus=1",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.providers, vec!["a", "b"]);
        assert_eq!(v.group_by, "model");
        assert_eq!(v.custom_end, Some(NOV24 + DAY_MS));
        let pairs = v.pairs();
        assert!(pairs.contains(&("customStart".into(), "2026-11-01T00:00:00Z".into())));
        assert!(pairs.contains(&("customEnd".into(), "2026-11-25T00:00:00Z".into())));
        // input ∩ output is empty: nothing is kept
        assert_eq!(v.buckets(), Some(vec![]));
        assert!(View::parse("range=custom&customStart=2026-11-02&customEnd=2026-11-01").is_err());
        assert!(View::parse("range=custom&customStart=yesterday&customEnd=2026-11-01").is_err());
        assert!(View::parse("range=custom").is_err());
        assert_eq!(View::parse("range=nonsense").map(|v| v.range).unwrap_or_default(), "7d");
    }

    #[test]
    fn windows_and_bucket_sizes() {
        let now = NOV24 + 5 * HOUR_MS;
        let v = |q: &str| View::parse(q).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v("").window(now), (NOV24 - 6 * DAY_MS, NOV24 + DAY_MS, DAY_MS));
        assert_eq!(v("range=90d").window(now).0, NOV24 - 89 * DAY_MS);
        assert_eq!(v("range=mtd").window(now).0, NOV24 - 23 * DAY_MS);
        assert_eq!(v("range=qtd").window(now).0, parse_iso("2026-10-01", false).unwrap_or(0));
        assert_eq!(v("range=ytd").window(now).0, parse_iso("2026-01-01", false).unwrap_or(0));
        let c = v("range=custom&customStart=2026-11-23T10:30:00Z&customEnd=2026-11-24T09:10:00Z").window(now);
        assert_eq!(c, (NOV24 - 14 * HOUR_MS, NOV24 + 10 * HOUR_MS, HOUR_MS), "hourly up to 2 days");
    }

    #[test]
    fn cost_types_combine_with_token_types() {
        let v = View::parse("cost_type=cache_writes&token_type=cache_write_1h").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.buckets(), Some(vec![Bucket::CacheWrite1h]));
        let v = View::parse("cost_type=cache_writes").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.buckets().map(|b| b.len()), Some(3));
    }
}
