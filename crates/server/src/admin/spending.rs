//! `/api/v1/spending/{summary,timeseries,breakdown,export.csv}` (DESIGN.md §2): where the money
//! went, read from the hourly rollups only (never raw events), so every report costs
//! hours × groups whatever the traffic.
//!
//! The window is `[start, end)` (RFC 3339; default the last 7 days) widened to whole hours; every
//! response states the effective window. Filters match exactly (`""` = unattributed). A
//! `token_type` filter keeps one bucket: its tokens and cost become the totals. Empty buckets
//! come back as zeros. Rows of one token type carry no request counts (`null`): requests are
//! not split by token type. Providers that no longer exist keep their history, marked
//! `deleted: true` and labelled with their name. Readers may read spending; a token scoped to
//! providers must name one of them in `provider`.

use crate::auth::authorize;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::time::{parse_rfc3339, rfc3339};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tollgate_core::{Bucket, ProviderType, Role};
use tollgate_store::{DAY_MS, Dimension, HOUR_MS, RollupStats, SpendingFilter, SpendingRow};
use utoipa::{IntoParams, ToSchema};

/// Default window when `start` is absent: the 7 days before `end`.
const DEFAULT_WINDOW_MS: i64 = 7 * DAY_MS;
/// Most points a time series may have (buckets × 1).
const MAX_POINTS: i64 = 10_000;
/// Default and largest number of series of a grouped time series.
const DEFAULT_SERIES: usize = 10;
const MAX_SERIES: usize = 1000;
/// The key of the series that sums the groups beyond `limit`.
pub const OTHER_KEY: &str = "(other)";

/// Filters and options of the spending endpoints.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SpendingParams {
    /// RFC 3339; default `end` − 7 days. Rounded down to the hour.
    pub start: Option<String>,
    /// RFC 3339, exclusive; default now. Rounded up to the hour.
    pub end: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    /// The user (email) usage is attributed to; empty = unattributed.
    pub user: Option<String>,
    pub agent: Option<String>,
    /// openai | anthropic | google | bedrock | openai_compatible | azure_openai
    pub provider_type: Option<String>,
    /// input | output | cached_input | cache_write_5m | cache_write_1h | cache_write_unknown | reasoning:
    /// report only this bucket.
    pub token_type: Option<String>,
    /// timeseries: hour | day (default hour up to 3 days, else day); export.csv: hour | day | total
    /// (default day).
    pub bucket: Option<String>,
    /// timeseries and export.csv: provider | model | user | agent | provider_type | token_type.
    pub group_by: Option<String>,
    /// breakdown (required): provider | model | user | agent | provider_type | token_type.
    pub dimension: Option<String>,
    /// timeseries with group_by: at most this many series (1..=1000, default 10), the highest
    /// total cost first; the other groups are summed into one series keyed `(other)`.
    pub limit: Option<String>,
}

/// Tokens and cost of one bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct BucketStats {
    pub tokens: i64,
    pub cost_microcents: i64,
}

/// Per-bucket tokens and cost; they add up to the totals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Buckets {
    pub input: BucketStats,
    pub output: BucketStats,
    pub cached_input: BucketStats,
    pub cache_write_5m: BucketStats,
    pub cache_write_1h: BucketStats,
    pub cache_write_unknown: BucketStats,
    pub reasoning: BucketStats,
}

/// Totals of a set of requests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Stats {
    /// Microcents (1 USD = 100,000,000).
    pub total_cost_microcents: i64,
    /// Null on a row of one token type (breakdown, timeseries or export by `token_type`):
    /// requests are not split by token type, so no per-type count exists.
    #[schema(required = true)]
    pub total_requests: Option<i64>,
    /// Requests that did not end in success (upstream errors, timeouts, cancellations).
    /// Null on a row of one token type, like `total_requests`.
    #[schema(required = true)]
    pub failed_requests: Option<i64>,
    /// Requests whose model or a bucket had no price (counted at 0). Null on a row of one
    /// token type, like `total_requests`.
    #[schema(required = true)]
    pub unpriced_requests: Option<i64>,
    pub total_tokens: i64,
    pub buckets: Buckets,
}

/// `GET /api/v1/spending/summary`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SummaryResponse {
    /// The effective window (whole hours).
    pub start: String,
    pub end: String,
    pub stats: Stats,
    /// The window of equal length just before this one.
    pub previous_start: String,
    pub previous_end: String,
    pub previous: Stats,
}

/// One group of a breakdown.
#[derive(Debug, Serialize, ToSchema)]
pub struct BreakdownEntry {
    /// The dimension's value (`""` = unattributed); for `token_type` the bucket name.
    pub key: String,
    pub label: String,
    /// The provider no longer exists (its history stays).
    pub deleted: bool,
    pub stats: Stats,
}

/// `GET /api/v1/spending/breakdown`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BreakdownResponse {
    pub start: String,
    pub end: String,
    pub dimension: String,
    /// Highest cost first.
    pub entries: Vec<BreakdownEntry>,
}

/// One bucket of a series.
#[derive(Debug, Serialize, ToSchema)]
pub struct Point {
    pub start: String,
    pub stats: Stats,
}

/// One series: a group's points, one per bucket, zero-filled.
#[derive(Debug, Serialize, ToSchema)]
pub struct Series {
    /// The group's key, or `all` without `group_by`.
    pub key: String,
    pub label: String,
    pub deleted: bool,
    pub points: Vec<Point>,
}

/// `GET /api/v1/spending/timeseries`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimeseriesResponse {
    pub start: String,
    pub end: String,
    /// hour | day
    pub bucket: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_by: Option<String>,
    /// Highest total cost first (an `(other)` series, if any, last).
    pub series: Vec<Series>,
    /// How many groups were summed into the `(other)` series (0 when none).
    pub truncated_key_count: usize,
}

/// A grouping: a rollup column or the token bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    Column(Dimension),
    TokenType,
}

impl Group {
    fn parse(field: &str, v: &str) -> Result<Group, ApiError> {
        Ok(match v {
            "provider" => Group::Column(Dimension::Provider),
            "model" => Group::Column(Dimension::Model),
            "user" => Group::Column(Dimension::User),
            "agent" => Group::Column(Dimension::Agent),
            "provider_type" => Group::Column(Dimension::ProviderType),
            "token_type" => Group::TokenType,
            other => {
                return Err(ApiError::invalid(
                    field,
                    format!("`{other}` is not one of provider, model, user, agent, provider_type, token_type"),
                ));
            }
        })
    }

    fn name(self) -> &'static str {
        match self {
            Group::Column(Dimension::Provider) => "provider",
            Group::Column(Dimension::Model) => "model",
            Group::Column(Dimension::User) => "user",
            Group::Column(Dimension::Agent) => "agent",
            Group::Column(Dimension::ProviderType) => "provider_type",
            Group::TokenType => "token_type",
        }
    }

    fn column(self) -> Option<Dimension> {
        match self {
            Group::Column(d) => Some(d),
            Group::TokenType => None,
        }
    }
}

/// A parsed request: the store filter on the effective window, and the bucket to keep.
#[derive(Debug)]
struct Request {
    filter: SpendingFilter,
    only: Option<Bucket>,
}

fn opt(v: &Option<String>) -> Option<String> {
    v.as_ref().map(|s| s.trim().to_string())
}

fn parse_request(caller: &tollgate_store::TokenRecord, p: &SpendingParams, now_ms: i64) -> Result<Request, ApiError> {
    let time = |field: &'static str, v: &Option<String>| -> Result<Option<i64>, ApiError> {
        match v.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(s) => parse_rfc3339(s).map(Some).ok_or_else(|| {
                ApiError::invalid(field, format!("`{s}` is not an RFC 3339 timestamp (e.g. 2026-11-24T00:00:00Z)"))
            }),
        }
    };
    let end = time("end", &p.end)?.unwrap_or(now_ms);
    let start = time("start", &p.start)?.unwrap_or(end - DEFAULT_WINDOW_MS);
    if start >= end {
        return Err(ApiError::invalid("start", "must be before end"));
    }
    let start_ms = start - start.rem_euclid(HOUR_MS);
    let end_ms = match end.rem_euclid(HOUR_MS) {
        0 => end,
        r => end - r + HOUR_MS,
    };
    let provider_type = match p.provider_type.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(t) => {
            Some(t.parse::<ProviderType>().map_err(|m| ApiError::invalid("provider_type", m))?.as_str().to_string())
        }
    };
    let only = match p.token_type.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(t) => Some(Bucket::parse(t).ok_or_else(|| {
            ApiError::invalid("token_type", format!("`{t}` is not one of {}", bucket_names().join(", ")))
        })?),
    };
    let provider = opt(&p.provider).filter(|s| !s.is_empty());
    if let Some(scope) = &caller.providers {
        match &provider {
            Some(name) if scope.iter().any(|s| s == name) => {}
            Some(name) => {
                return Err(ApiError::PermissionDenied(format!("this token is not scoped to provider \"{name}\"")));
            }
            None => {
                return Err(ApiError::PermissionDenied(format!(
                    "this token is scoped to providers ({}); pass one of them as `provider`",
                    scope.join(", ")
                )));
            }
        }
    }
    Ok(Request {
        filter: SpendingFilter {
            start_ms,
            end_ms,
            provider,
            model: opt(&p.model),
            user: opt(&p.user),
            agent: opt(&p.agent),
            provider_type,
        },
        only,
    })
}

fn bucket_names() -> Vec<&'static str> {
    Bucket::ALL.iter().map(|b| b.as_str()).collect()
}

/// Whether a row's request counts are meaningful: not on a row of one token type, where the
/// rollup's counts are every request's (they are not split by bucket).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Requests {
    Counted,
    NotPerTokenType,
}

impl Requests {
    /// Request counts are left out of rows grouped by token type.
    fn of(group: Option<Group>) -> Requests {
        match group {
            Some(Group::TokenType) => Requests::NotPerTokenType,
            Some(Group::Column(_)) | None => Requests::Counted,
        }
    }
}

/// Rollup counters → API stats, keeping only `only` when set.
fn stats(r: &RollupStats, only: Option<Bucket>, requests: Requests) -> Stats {
    let keep = |b: Bucket| only.is_none_or(|o| o == b);
    let bs = |b: Bucket| {
        if keep(b) {
            BucketStats { tokens: r.tokens.get(b), cost_microcents: r.cost.get(b) }
        } else {
            BucketStats::default()
        }
    };
    let buckets = Buckets {
        input: bs(Bucket::Input),
        output: bs(Bucket::Output),
        cached_input: bs(Bucket::CachedInput),
        cache_write_5m: bs(Bucket::CacheWrite5m),
        cache_write_1h: bs(Bucket::CacheWrite1h),
        cache_write_unknown: bs(Bucket::CacheWriteUnknown),
        reasoning: bs(Bucket::Reasoning),
    };
    let (total_tokens, total_cost) = match only {
        None => (r.tokens.total_tokens(), r.cost.total),
        Some(b) => (r.tokens.get(b), r.cost.get(b)),
    };
    let count = |n: i64| match requests {
        Requests::Counted => Some(n),
        Requests::NotPerTokenType => None,
    };
    Stats {
        total_cost_microcents: total_cost,
        total_requests: count(r.requests),
        failed_requests: count(r.failed_requests),
        unpriced_requests: count(r.unpriced_requests),
        total_tokens,
        buckets,
    }
}

/// The label and deleted flag of a group key.
fn label(state: &AppState, group: Group, key: &str) -> (String, bool) {
    match group {
        Group::Column(Dimension::Provider) => match state.snapshot().providers.get(key) {
            Some(p) => (p.spec.display_name.clone(), false),
            None => (key.to_string(), true),
        },
        Group::Column(Dimension::Model) => {
            if key.is_empty() {
                return ("(no model)".into(), false);
            }
            let catalog = state.catalog();
            let found = ProviderType::ALL.iter().find_map(|t| catalog.get(*t, key)).map(|m| m.label.clone());
            (found.unwrap_or_else(|| key.to_string()), false)
        }
        Group::Column(Dimension::User) | Group::Column(Dimension::Agent) => {
            (if key.is_empty() { "(unattributed)".to_string() } else { key.to_string() }, false)
        }
        Group::Column(Dimension::ProviderType) => {
            (key.parse::<ProviderType>().map(|t| t.label().to_string()).unwrap_or_else(|_| key.to_string()), false)
        }
        Group::TokenType => {
            (Bucket::parse(key).map(|b| b.label().to_string()).unwrap_or_else(|| key.to_string()), false)
        }
    }
}

fn single(rows: &[SpendingRow]) -> RollupStats {
    let mut s = RollupStats::default();
    for r in rows {
        s.add(&r.stats);
    }
    s
}

/// A rollup's counters restricted to one bucket (requests stay: they are not split by bucket).
fn of_bucket(r: &RollupStats, b: Bucket) -> RollupStats {
    let mut t = tollgate_core::Usage::default();
    let mut c = tollgate_core::Cost::default();
    let set_u = |u: &mut tollgate_core::Usage, v: i64| match b {
        Bucket::Input => u.input = v,
        Bucket::Output => u.output = v,
        Bucket::CachedInput => u.cached_input = v,
        Bucket::CacheWrite5m => u.cache_write_5m = v,
        Bucket::CacheWrite1h => u.cache_write_1h = v,
        Bucket::CacheWriteUnknown => u.cache_write_unknown = v,
        Bucket::Reasoning => u.reasoning = v,
    };
    set_u(&mut t, r.tokens.get(b));
    let v = r.cost.get(b);
    match b {
        Bucket::Input => c.input = v,
        Bucket::Output => c.output = v,
        Bucket::CachedInput => c.cached_input = v,
        Bucket::CacheWrite5m => c.cache_write_5m = v,
        Bucket::CacheWrite1h => c.cache_write_1h = v,
        Bucket::CacheWriteUnknown => c.cache_write_unknown = v,
        Bucket::Reasoning => c.reasoning = v,
    }
    c.total = v;
    RollupStats { tokens: t, cost: c, ..*r }
}

/// Totals per group key (for token_type: per bucket), highest cost first.
fn grouped(group: Group, rows: &[SpendingRow]) -> Vec<(String, RollupStats)> {
    let mut by: BTreeMap<String, RollupStats> = BTreeMap::new();
    match group {
        Group::TokenType => {
            let all = single(rows);
            for b in Bucket::ALL {
                by.insert(b.as_str().to_string(), of_bucket(&all, b));
            }
        }
        Group::Column(_) => {
            for r in rows {
                by.entry(r.key.clone()).or_default().add(&r.stats);
            }
        }
    }
    let mut out: Vec<(String, RollupStats)> = by.into_iter().collect();
    out.sort_by(|a, b| b.1.cost.total.cmp(&a.1.cost.total).then_with(|| a.0.cmp(&b.0)));
    out
}

/// Totals, with the same filters and the previous window of equal length for comparison.
#[utoipa::path(get, path = "/api/v1/spending/summary", tag = "spending",
    params(SpendingParams),
    responses((status = 200, body = SummaryResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn summary(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<SpendingParams>,
) -> Result<Json<SummaryResponse>, ApiError> {
    let caller = authorize(&state, &headers, Role::Reader)?;
    let req = parse_request(&caller, &p, state.now_ms())?;
    let f = &req.filter;
    let len = f.end_ms - f.start_ms;
    let prev = SpendingFilter { start_ms: f.start_ms - len, end_ms: f.start_ms, ..f.clone() };
    let now = single(&state.usage().spending(f, None, None).await?);
    let before = single(&state.usage().spending(&prev, None, None).await?);
    Ok(Json(SummaryResponse {
        start: rfc3339(f.start_ms),
        end: rfc3339(f.end_ms),
        stats: stats(&now, req.only, Requests::Counted),
        previous_start: rfc3339(prev.start_ms),
        previous_end: rfc3339(prev.end_ms),
        previous: stats(&before, req.only, Requests::Counted),
    }))
}

/// Totals per value of one dimension (for `token_type`: per bucket).
#[utoipa::path(get, path = "/api/v1/spending/breakdown", tag = "spending",
    params(SpendingParams),
    responses((status = 200, body = BreakdownResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn breakdown(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<SpendingParams>,
) -> Result<Json<BreakdownResponse>, ApiError> {
    let caller = authorize(&state, &headers, Role::Reader)?;
    let req = parse_request(&caller, &p, state.now_ms())?;
    let dim = p.dimension.as_deref().map(str::trim).filter(|s| !s.is_empty()).ok_or_else(|| {
        ApiError::invalid("dimension", "is required: provider, model, user, agent, provider_type or token_type")
    })?;
    let group = Group::parse("dimension", dim)?;
    let rows = state.usage().spending(&req.filter, group.column(), None).await?;
    let entries = grouped(group, &rows)
        .into_iter()
        .map(|(key, s)| {
            let (label, deleted) = label(&state, group, &key);
            BreakdownEntry { stats: stats(&s, req.only, Requests::of(Some(group))), key, label, deleted }
        })
        .collect();
    Ok(Json(BreakdownResponse {
        start: rfc3339(req.filter.start_ms),
        end: rfc3339(req.filter.end_ms),
        dimension: group.name().to_string(),
        entries,
    }))
}

fn bucket_width(v: Option<&str>, default: i64) -> Result<i64, ApiError> {
    match v.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(default),
        Some("hour") => Ok(HOUR_MS),
        Some("day") => Ok(DAY_MS),
        Some(other) => Err(ApiError::invalid("bucket", format!("`{other}` must be hour or day"))),
    }
}

/// Spend over time in hour or day buckets (UTC), zero-filled, optionally one series per group.
#[utoipa::path(get, path = "/api/v1/spending/timeseries", tag = "spending",
    params(SpendingParams),
    responses((status = 200, body = TimeseriesResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn timeseries(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<SpendingParams>,
) -> Result<Json<TimeseriesResponse>, ApiError> {
    let caller = authorize(&state, &headers, Role::Reader)?;
    let req = parse_request(&caller, &p, state.now_ms())?;
    let f = &req.filter;
    let default = if f.end_ms - f.start_ms <= 3 * DAY_MS { HOUR_MS } else { DAY_MS };
    let width = bucket_width(p.bucket.as_deref(), default)?;
    let first = f.start_ms - f.start_ms.rem_euclid(width);
    let n = (f.end_ms - first + width - 1) / width;
    if n > MAX_POINTS {
        return Err(ApiError::invalid(
            "bucket",
            format!("{n} buckets is more than {MAX_POINTS}; use a shorter window or day buckets"),
        ));
    }
    let group = match p.group_by.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(g) => Some(Group::parse("group_by", g)?),
    };
    let limit = match p.limit.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => DEFAULT_SERIES,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_SERIES).contains(&n) => n,
            _ => return Err(ApiError::invalid("limit", format!("`{v}` must be an integer from 1 to {MAX_SERIES}"))),
        },
    };
    // Grouped by a column: the store keeps the top `limit` keys and sums the rest itself, so the
    // cut keys are never bucketed one by one.
    let (rows, cut) = match group {
        Some(Group::Column(dim)) => {
            let top = state.usage().spending_top(f, dim, width, limit).await?;
            let cut = (top.truncated_key_count > 0).then_some((top.other, top.truncated_key_count));
            (top.rows, cut)
        }
        _ => (state.usage().spending(f, group.and_then(Group::column), Some(width)).await?, None),
    };
    let starts: Vec<i64> = (0..n).map(|i| first + i * width).collect();
    let index = |ms: i64| usize::try_from((ms - first) / width).ok().filter(|i| *i < starts.len());
    // key → per-bucket counters
    let mut series: BTreeMap<String, Vec<RollupStats>> = BTreeMap::new();
    let blank = || vec![RollupStats::default(); starts.len()];
    match group {
        None => {
            let s = series.entry("all".to_string()).or_insert_with(blank);
            for r in &rows {
                if let Some(i) = index(r.bucket_start_ms) {
                    s[i].add(&r.stats);
                }
            }
        }
        Some(Group::TokenType) => {
            for b in Bucket::ALL {
                let s = series.entry(b.as_str().to_string()).or_insert_with(blank);
                for r in &rows {
                    if let Some(i) = index(r.bucket_start_ms) {
                        s[i].add(&of_bucket(&r.stats, b));
                    }
                }
            }
        }
        Some(Group::Column(_)) => {
            for r in &rows {
                if let Some(i) = index(r.bucket_start_ms) {
                    series.entry(r.key.clone()).or_insert_with(blank)[i].add(&r.stats);
                }
            }
        }
    }
    let mut ordered: Vec<(String, Vec<RollupStats>)> = series.into_iter().collect();
    let total = |v: &Vec<RollupStats>| v.iter().map(|s| s.cost.total).sum::<i64>();
    ordered.sort_by(|a, b| total(&b.1).cmp(&total(&a.1)).then_with(|| a.0.cmp(&b.0)));
    let mut truncated_key_count = 0;
    if let Some((other_rows, cut_keys)) = cut {
        truncated_key_count = cut_keys;
        let mut other = blank();
        for r in &other_rows {
            if let Some(i) = index(r.bucket_start_ms) {
                other[i].add(&r.stats);
            }
        }
        ordered.push((OTHER_KEY.to_string(), other));
    } else if group.is_some() && ordered.len() > limit {
        let rest = ordered.split_off(limit);
        truncated_key_count = rest.len();
        let mut other = blank();
        for (_, points) in &rest {
            for (o, p) in other.iter_mut().zip(points) {
                o.add(p);
            }
        }
        ordered.push((OTHER_KEY.to_string(), other));
    }
    let start_text: Vec<String> = starts.iter().map(|s| rfc3339(*s)).collect();
    let series = ordered
        .into_iter()
        .map(|(key, points)| {
            let (label, deleted) = match group {
                None => ("All".to_string(), false),
                Some(_) if key == OTHER_KEY => (format!("Other ({truncated_key_count} more)"), false),
                Some(g) => label(&state, g, &key),
            };
            let points = points
                .iter()
                .zip(&start_text)
                .map(|(s, start)| Point { start: start.clone(), stats: stats(s, req.only, Requests::of(group)) })
                .collect();
            Series { key, label, deleted, points }
        })
        .collect();
    Ok(Json(TimeseriesResponse {
        start: rfc3339(f.start_ms),
        end: rfc3339(f.end_ms),
        bucket: if width == HOUR_MS { "hour" } else { "day" }.to_string(),
        group_by: group.map(|g| g.name().to_string()),
        series,
        truncated_key_count,
    }))
}

fn csv_field(s: &str) -> String {
    // Quote when needed; a leading =+-@ is prefixed so spreadsheets do not run it as a formula.
    let s = if s.starts_with(['=', '+', '-', '@']) { format!("'{s}") } else { s.to_string() };
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s }
}

/// A request count for CSV: empty when the row has none (one token type).
fn count_cell(n: Option<i64>) -> String {
    n.map_or_else(String::new, |n| n.to_string())
}

/// The report as CSV: one row per bucket (hour, day, or the whole window) and group.
#[utoipa::path(get, path = "/api/v1/spending/export.csv", tag = "spending",
    params(SpendingParams),
    responses((status = 200, description = "CSV: bucket_start, dimension, key, label, deleted, requests, \
failed_requests, unpriced_requests, total_tokens, total_cost_microcents, total_cost_usd, then tokens and \
cost per bucket; with group_by=token_type the three request counts are empty (requests are not split by \
token type)", content_type = "text/csv"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn export_csv(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<SpendingParams>,
) -> Result<Response, ApiError> {
    let caller = authorize(&state, &headers, Role::Reader)?;
    let req = parse_request(&caller, &p, state.now_ms())?;
    let f = &req.filter;
    let width = match p.bucket.as_deref().map(str::trim) {
        Some("total") => None,
        other => Some(bucket_width(other, DAY_MS)?),
    };
    let group = match p.group_by.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(g) => Some(Group::parse("group_by", g)?),
    };
    let rows = state.usage().spending(f, group.and_then(Group::column), width).await?;
    // (bucket start, key) → counters
    let mut cells: BTreeMap<(i64, String), RollupStats> = BTreeMap::new();
    for r in &rows {
        let start = if width.is_some() { r.bucket_start_ms } else { f.start_ms };
        match group {
            Some(Group::TokenType) => {
                for b in Bucket::ALL {
                    cells.entry((start, b.as_str().to_string())).or_default().add(&of_bucket(&r.stats, b));
                }
            }
            _ => cells.entry((start, r.key.clone())).or_default().add(&r.stats),
        }
    }
    let mut out = String::from(
        "bucket_start,dimension,key,label,deleted,requests,failed_requests,unpriced_requests,total_tokens,\
         total_cost_microcents,total_cost_usd",
    );
    for b in Bucket::ALL {
        out.push_str(&format!(",{0}_tokens,{0}_cost_microcents", b.as_str()));
    }
    out.push('\n');
    for ((start, key), s) in &cells {
        if s.requests == 0 && s.cost.total == 0 && s.tokens.total_tokens() == 0 {
            continue;
        }
        let st = stats(s, req.only, Requests::of(group));
        let (lbl, deleted) = match group {
            None => ("All".to_string(), false),
            Some(g) => label(&state, g, key),
        };
        let dim = group.map_or("all", Group::name);
        let key = if group.is_none() { "all" } else { key.as_str() };
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{}",
            rfc3339(*start),
            dim,
            csv_field(key),
            csv_field(&lbl),
            deleted,
            count_cell(st.total_requests),
            count_cell(st.failed_requests),
            count_cell(st.unpriced_requests),
            st.total_tokens,
            st.total_cost_microcents,
            tollgate_core::Microcents(st.total_cost_microcents).to_usd_string()
        ));
        let b = &st.buckets;
        for x in
            [b.input, b.output, b.cached_input, b.cache_write_5m, b.cache_write_1h, b.cache_write_unknown, b.reasoning]
        {
            out.push_str(&format!(",{},{}", x.tokens, x.cost_microcents));
        }
        out.push('\n');
    }
    let filename = format!(
        "attachment; filename=\"tollgate-spending-{}-{}.csv\"",
        rfc3339(f.start_ms).replace(':', ""),
        rfc3339(f.end_ms).replace(':', "")
    );
    let mut resp = out.into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    if let Ok(v) = HeaderValue::from_str(&filename) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}
