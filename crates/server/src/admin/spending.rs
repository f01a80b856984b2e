//! `/api/v1/spending/{summary,timeseries,breakdown,export.csv}`: where the money
//! went. A thin adapter over the reporting engine ([`crate::report`], shared with the console):
//! it parses the query parameters into a [`report::Query`], runs it and renders JSON or CSV.
//!
//! The window is `[start, end)` (RFC 3339; default the last 7 days) widened to whole hours; every
//! response states the effective window. Filters match exactly (`""` = unattributed). A
//! `token_type` filter keeps one bucket: its tokens and cost become the totals. Empty buckets
//! come back as zeros. Rows of one token type carry no request counts (`null`): requests are
//! not split by token type. Providers that no longer exist keep their history, marked
//! `deleted: true` and labelled with their name. Readers may read spending; a token scoped to
//! providers reads only those: a `provider` outside its scope is refused, and without one the
//! report covers the scope's providers.

use super::given;
use super::query::Query;
use crate::auth::authorize;
use crate::error::{ApiError, ErrorBody};
use crate::report::{self, Group, Query as ReportQuery};
use crate::state::AppState;
use crate::time::{parse_rfc3339, rfc3339};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tollgate_core::{Bucket, Role};
use tollgate_store::{DAY_MS, HOUR_MS, RollupStats};
use utoipa::{IntoParams, ToSchema};

/// Default and largest number of series of a grouped time series.
const DEFAULT_SERIES: usize = 10;
const MAX_SERIES: usize = 1000;

/// Filters shared by the spending endpoints.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SpendingParams {
    /// RFC 3339; default `end` − 7 days. Rounded down to the hour. At or after `end`: an empty
    /// window.
    #[param(value_type = Option<String>, format = DateTime)]
    pub start: Option<String>,
    /// RFC 3339, exclusive; default now. Rounded up to the hour.
    #[param(value_type = Option<String>, format = DateTime)]
    pub end: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    /// The user (email) usage is attributed to; empty = unattributed.
    pub user: Option<String>,
    pub agent: Option<String>,
    #[param(value_type = Option<tollgate_core::ProviderType>)]
    pub provider_type: Option<String>,
    /// Report only this bucket.
    #[param(value_type = Option<TokenType>, inline)]
    pub token_type: Option<String>,
}

/// `GET /api/v1/spending/breakdown`: the dimension to break down by.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BreakdownParams {
    #[param(value_type = GroupBy, inline, required)]
    pub dimension: Option<String>,
}

/// `GET /api/v1/spending/timeseries` options.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TimeseriesParams {
    /// Default hour up to 2 days, else day. A window of more than 10,000 buckets keeps its
    /// most recent 10,000 (the answer's `start` says where it begins).
    #[param(value_type = Option<Width>, inline)]
    pub bucket: Option<String>,
    /// One series per value of this dimension.
    #[param(value_type = Option<GroupBy>, inline)]
    pub group_by: Option<String>,
    /// With group_by: at most this many series (default 10), the highest total cost first;
    /// the other groups are summed into one series keyed `(other)`.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
}

/// `GET /api/v1/spending/export.csv` options.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// Default day.
    #[param(value_type = Option<ExportWidth>, inline)]
    pub bucket: Option<String>,
    #[param(value_type = Option<GroupBy>, inline)]
    pub group_by: Option<String>,
}

/// A dimension to group or break down by (schema of the `dimension` / `group_by` parameters).
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // a schema only: the values are parsed by `report::Group::parse`
pub enum GroupBy {
    Provider,
    Model,
    User,
    Agent,
    ProviderType,
    TokenType,
}

/// A token bucket (schema of the `token_type` parameter).
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // a schema only: the values are parsed by `report::parse_bucket`
pub enum TokenType {
    Input,
    Output,
    CachedInput,
    #[schema(rename = "cache_write_5m")]
    CacheWrite5m,
    #[schema(rename = "cache_write_1h")]
    CacheWrite1h,
    CacheWriteUnknown,
    Reasoning,
}

/// Time series bucket width.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // a schema only: the values are parsed by `report::parse_width`
pub enum Width {
    Hour,
    Day,
}

/// CSV bucket width: `total` is one row per group for the whole window.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // a schema only
pub enum ExportWidth {
    Hour,
    Day,
    Total,
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

fn opt(v: &Option<String>) -> Option<String> {
    v.as_ref().map(|s| s.trim().to_string())
}

fn nonempty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// The parameters → the engine's query: one value per filter (`""` = unattributed for model,
/// user and agent), the caller's provider scope applied.
fn parse_query(caller: &tollgate_store::TokenRecord, p: &SpendingParams, now_ms: i64) -> Result<ReportQuery, ApiError> {
    let time = |field: &'static str, v: &Option<String>| -> Result<Option<i64>, ApiError> {
        match given(field, v)? {
            None => Ok(None),
            Some(s) => parse_rfc3339(s).map(Some).ok_or_else(|| {
                ApiError::invalid(field, format!("`{s}` is not an RFC 3339 timestamp (e.g. 2026-11-24T00:00:00Z)"))
            }),
        }
    };
    let (start_ms, end_ms) = report::explicit_window(time("start", &p.start)?, time("end", &p.end)?, now_ms);
    let provider_types = match given("provider_type", &p.provider_type)? {
        None => vec![],
        Some(t) => vec![report::parse_provider_type("provider_type", t)?],
    };
    let buckets = match given("token_type", &p.token_type)? {
        None => None,
        Some(t) => Some(vec![report::parse_bucket("token_type", t)?]),
    };
    let mut q = ReportQuery {
        start_ms,
        end_ms,
        providers: nonempty(&p.provider).map(str::to_string).into_iter().collect(),
        models: opt(&p.model).into_iter().collect(),
        users: opt(&p.user).into_iter().collect(),
        agents: opt(&p.agent).into_iter().collect(),
        provider_types,
        buckets,
    };
    q.scope(caller.providers.as_deref())?;
    Ok(q)
}

fn parse_group(field: &'static str, v: &Option<String>) -> Result<Option<Group>, ApiError> {
    Ok(given(field, v)?.map(|g| Group::parse(field, g)).transpose()?)
}

/// Rollup counters → API stats; request counts only where `requests` (not on a row of one
/// token type, see [`report::requests_split`]).
fn stats(r: &RollupStats, requests: bool) -> Stats {
    let bs = |b: Bucket| BucketStats { tokens: r.tokens.get(b), cost_microcents: r.cost.get(b) };
    let buckets = Buckets {
        input: bs(Bucket::Input),
        output: bs(Bucket::Output),
        cached_input: bs(Bucket::CachedInput),
        cache_write_5m: bs(Bucket::CacheWrite5m),
        cache_write_1h: bs(Bucket::CacheWrite1h),
        cache_write_unknown: bs(Bucket::CacheWriteUnknown),
        reasoning: bs(Bucket::Reasoning),
    };
    let count = |n: i64| requests.then_some(n);
    Stats {
        total_cost_microcents: r.cost.total,
        total_requests: count(r.requests),
        failed_requests: count(r.failed_requests),
        unpriced_requests: count(r.unpriced_requests),
        total_tokens: r.tokens.total_tokens(),
        buckets,
    }
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
    let q = parse_query(&caller, &p, state.now_ms())?;
    let prev = q.previous();
    let now = report::totals(&state, &q).await?;
    let before = report::totals(&state, &prev).await?;
    Ok(Json(SummaryResponse {
        start: rfc3339(q.start_ms),
        end: rfc3339(q.end_ms),
        stats: stats(&now, true),
        previous_start: rfc3339(prev.start_ms),
        previous_end: rfc3339(prev.end_ms),
        previous: stats(&before, true),
    }))
}

/// Totals per value of one dimension (for `token_type`: per bucket).
#[utoipa::path(get, path = "/api/v1/spending/breakdown", tag = "spending",
    params(SpendingParams, BreakdownParams),
    responses((status = 200, body = BreakdownResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn breakdown(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<SpendingParams>,
    Query(b): Query<BreakdownParams>,
) -> Result<Json<BreakdownResponse>, ApiError> {
    let caller = authorize(&state, &headers, Role::Reader)?;
    let q = parse_query(&caller, &p, state.now_ms())?;
    let group = parse_group("dimension", &b.dimension)?.ok_or_else(|| {
        ApiError::invalid("dimension", "is required: provider, model, user, agent, provider_type or token_type")
    })?;
    let entries = report::breakdown(&state, &q, group)
        .await?
        .into_iter()
        .map(|e| {
            let (label, deleted) = report::label(&state, Some(group), &e.key, 0);
            BreakdownEntry { stats: stats(&e.value, report::requests_split(Some(group))), key: e.key, label, deleted }
        })
        .collect();
    Ok(Json(BreakdownResponse {
        start: rfc3339(q.start_ms),
        end: rfc3339(q.end_ms),
        dimension: group.name().to_string(),
        entries,
    }))
}

/// Spend over time in hour or day buckets (UTC), zero-filled, optionally one series per group.
#[utoipa::path(get, path = "/api/v1/spending/timeseries", tag = "spending",
    params(SpendingParams, TimeseriesParams),
    responses((status = 200, body = TimeseriesResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn timeseries(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<SpendingParams>,
    Query(t): Query<TimeseriesParams>,
) -> Result<Json<TimeseriesResponse>, ApiError> {
    let caller = authorize(&state, &headers, Role::Reader)?;
    let mut q = parse_query(&caller, &p, state.now_ms())?;
    let width =
        report::parse_width("bucket", given("bucket", &t.bucket)?, report::default_width(q.start_ms, q.end_ms))?;
    q.start_ms = report::clip_start(q.start_ms, q.end_ms, width);
    let group = parse_group("group_by", &t.group_by)?;
    let limit = match given("limit", &t.limit)? {
        None => DEFAULT_SERIES,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_SERIES).contains(&n) => n,
            _ => return Err(ApiError::invalid("limit", format!("`{v}` must be an integer from 1 to {MAX_SERIES}"))),
        },
    };
    let ts = report::timeseries(&state, &q, group, width, limit).await?;
    let start_text: Vec<String> = ts.starts.iter().map(|s| rfc3339(*s)).collect();
    let series = ts
        .series
        .into_iter()
        .map(|s| {
            let (label, deleted) = report::label(&state, group, &s.key, ts.truncated_key_count);
            let points = s
                .value
                .iter()
                .zip(&start_text)
                .map(|(st, start)| Point { start: start.clone(), stats: stats(st, report::requests_split(group)) })
                .collect();
            Series { key: s.key, label, deleted, points }
        })
        .collect();
    Ok(Json(TimeseriesResponse {
        start: rfc3339(q.start_ms),
        end: rfc3339(q.end_ms),
        bucket: if width == HOUR_MS { "hour" } else { "day" }.to_string(),
        group_by: group.map(|g| g.name().to_string()),
        series,
        truncated_key_count: ts.truncated_key_count,
    }))
}

/// The report as CSV: one row per bucket (hour, day, or the whole window) and group.
#[utoipa::path(get, path = "/api/v1/spending/export.csv", tag = "spending",
    params(SpendingParams, ExportParams),
    responses((status = 200, description = "CSV: bucket_start, dimension, key, label, deleted, requests, \
failed_requests, unpriced_requests, total_tokens, total_cost_microcents, total_cost_usd, then tokens and \
cost per bucket; with group_by=token_type the three request counts are empty (requests are not split by \
token type)", content_type = "text/csv"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn export_csv(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<SpendingParams>,
    Query(e): Query<ExportParams>,
) -> Result<Response, ApiError> {
    let caller = authorize(&state, &headers, Role::Reader)?;
    let q = parse_query(&caller, &p, state.now_ms())?;
    let width = match given("bucket", &e.bucket)? {
        Some("total") => None,
        other => Some(report::parse_width("bucket", other, DAY_MS)?),
    };
    let group = parse_group("group_by", &e.group_by)?;
    Ok(csv_response(report::csv(&state, &q, group, width).await?, &q))
}

/// A CSV body as a download named after the window (shared with the console's export).
pub fn csv_response(body: String, q: &ReportQuery) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    if let Ok(v) = HeaderValue::from_str(&report::csv_disposition(q)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}
