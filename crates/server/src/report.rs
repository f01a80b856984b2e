//! The one reporting engine behind the admin spending API (`admin/spending.rs`) and the
//! console's Cost & Usage pages (`console/usage.rs`, `console/spend.rs`): both parse their input
//! into a [`Query`], run it here and only render the result (JSON, HTML, CSV).
//!
//! It owns: the window (explicit RFC 3339 bounds widened to whole hours, or the console's
//! presets), the bucket width (hours for windows up to 2 days, days beyond), the grouping (a
//! rollup column or the token bucket), the filters (several values per dimension, `""` =
//! unattributed / no model; token-type and cost-type filters keep only their buckets), the
//! caller's provider scope, the labels of group keys, the top-N + "(other)" cut of a series and
//! the one CSV writer ([`CSV_COLUMNS`]). Everything is read from the rollups through
//! [`tollgate_store::UsageStore::spending`] / [`spending_top`](tollgate_store::UsageStore::spending_top),
//! never from raw events.
//!
//! Several values of one filter run one store query per combination and add the rows up (each
//! rollup row has exactly one value per dimension, so the combinations are disjoint and the sum
//! is exact), at most [`MAX_COMBINATIONS`]. Rows of one token type keep the request counts of
//! the whole (requests are not split by bucket): renderers leave them out rather than repeat
//! the grand total on every row (see [`requests_split`]).

use crate::error::ApiError;
use crate::state::AppState;
use crate::time::rfc3339;
use chrono::{DateTime, Datelike, TimeZone, Utc};
use std::collections::BTreeMap;
use tollgate_core::{Bucket, Cost, Microcents, ProviderType, Usage};
use tollgate_store::{DAY_MS, Dimension, HOUR_MS, RollupStats, SpendingFilter, SpendingRow, StoreError};

/// Most store queries one query's filters may expand to.
pub const MAX_COMBINATIONS: usize = 64;
/// Most points a time series may have.
pub const MAX_POINTS: i64 = 10_000;
/// Windows up to this long are bucketed by hour by default, longer ones by day.
pub const HOURLY_UP_TO_MS: i64 = 2 * DAY_MS;
/// Default window of an explicit query without `start`: the 7 days before `end`.
pub const DEFAULT_WINDOW_MS: i64 = 7 * DAY_MS;
/// The key of the series that sums the groups beyond a series limit.
pub const OTHER_KEY: &str = "(other)";
/// The key of the one series or row of an ungrouped report.
pub const ALL_KEY: &str = "all";

/// Cost types: the cost categories of the console's footer (cache writes of every TTL are one).
pub const COST_TYPES: [(&str, &str); 5] = [
    ("input", "Input"),
    ("output", "Output"),
    ("cached", "Cached input"),
    ("cache_writes", "Cache writes"),
    ("reasoning", "Reasoning"),
];

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{message}")]
    Invalid { field: &'static str, message: String },
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ReportError {
    fn invalid(field: &'static str, message: impl Into<String>) -> ReportError {
        ReportError::Invalid { field, message: message.into() }
    }
}

impl From<ReportError> for ApiError {
    fn from(e: ReportError) -> ApiError {
        match e {
            ReportError::Invalid { field, message } => ApiError::invalid(field, message),
            ReportError::Forbidden(m) => ApiError::PermissionDenied(m),
            ReportError::Store(e) => ApiError::from(e),
        }
    }
}

/// A grouping: a rollup column or the token bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    Column(Dimension),
    TokenType,
}

impl Group {
    /// `provider | model | user | agent | provider_type | token_type`; `field` names the input.
    pub fn parse(field: &'static str, v: &str) -> Result<Group, ReportError> {
        Ok(match v {
            "provider" => Group::Column(Dimension::Provider),
            "model" => Group::Column(Dimension::Model),
            "user" => Group::Column(Dimension::User),
            "agent" => Group::Column(Dimension::Agent),
            "provider_type" => Group::Column(Dimension::ProviderType),
            "token_type" => Group::TokenType,
            other => {
                return Err(ReportError::invalid(
                    field,
                    format!("`{other}` is not one of provider, model, user, agent, provider_type, token_type"),
                ));
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Group::Column(Dimension::Provider) => "provider",
            Group::Column(Dimension::Model) => "model",
            Group::Column(Dimension::User) => "user",
            Group::Column(Dimension::Agent) => "agent",
            Group::Column(Dimension::ProviderType) => "provider_type",
            Group::TokenType => "token_type",
        }
    }

    pub fn column(self) -> Option<Dimension> {
        match self {
            Group::Column(d) => Some(d),
            Group::TokenType => None,
        }
    }
}

/// Whether rows of this grouping carry their own request counts: not rows of one token type,
/// whose counts would be every request's (requests are not split by bucket).
pub fn requests_split(group: Option<Group>) -> bool {
    match group {
        Some(Group::TokenType) => false,
        Some(Group::Column(_)) | None => true,
    }
}

/// What to report: a window on hour boundaries, value lists per dimension (empty = any; `""`
/// = unattributed / no model) and the buckets to keep (`None` = all).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pub start_ms: i64,
    pub end_ms: i64,
    pub providers: Vec<String>,
    pub models: Vec<String>,
    pub users: Vec<String>,
    pub agents: Vec<String>,
    pub provider_types: Vec<String>,
    pub buckets: Option<Vec<Bucket>>,
}

impl Query {
    /// Applies the caller's provider scope: every named provider must be in it, and without a
    /// provider filter the report covers the scope's providers.
    pub fn scope(&mut self, scope: Option<&[String]>) -> Result<(), ReportError> {
        let Some(scope) = scope else { return Ok(()) };
        if let Some(p) = self.providers.iter().find(|p| !scope.contains(p)) {
            return Err(ReportError::Forbidden(format!("this token is not scoped to provider \"{p}\"")));
        }
        if self.providers.is_empty() {
            self.providers = scope.to_vec();
        }
        Ok(())
    }

    /// Every single-valued store filter this query stands for.
    pub fn filters(&self) -> Result<Vec<SpendingFilter>, ReportError> {
        let dim = |v: &Vec<String>| -> Vec<Option<String>> {
            if v.is_empty() { vec![None] } else { v.iter().cloned().map(Some).collect() }
        };
        let (p, m, u, a, t) =
            (dim(&self.providers), dim(&self.models), dim(&self.users), dim(&self.agents), dim(&self.provider_types));
        let n = p.len() * m.len() * u.len() * a.len() * t.len();
        if n > MAX_COMBINATIONS {
            return Err(ReportError::invalid(
                "filters",
                format!("these filters combine into {n} queries (at most {MAX_COMBINATIONS}); remove some values"),
            ));
        }
        let mut out = Vec::with_capacity(n);
        for provider in &p {
            for model in &m {
                for user in &u {
                    for agent in &a {
                        for provider_type in &t {
                            out.push(SpendingFilter {
                                start_ms: self.start_ms,
                                end_ms: self.end_ms,
                                provider: provider.clone(),
                                model: model.clone(),
                                user: user.clone(),
                                agent: agent.clone(),
                                provider_type: provider_type.clone(),
                            });
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// The window of equal length just before this one, same filters.
    pub fn previous(&self) -> Query {
        let len = self.end_ms - self.start_ms;
        Query { start_ms: self.start_ms - len, end_ms: self.start_ms, ..self.clone() }
    }
}

// ---- input: windows, widths, buckets ----

/// The start of the UTC hour holding `ms`.
pub fn floor_hour(ms: i64) -> i64 {
    ms - ms.rem_euclid(HOUR_MS)
}

/// The first hour boundary at or after `ms`.
pub fn ceil_hour(ms: i64) -> i64 {
    match ms.rem_euclid(HOUR_MS) {
        0 => ms,
        r => ms - r + HOUR_MS,
    }
}

/// The start of the UTC day holding `ms`.
pub fn day_start(ms: i64) -> i64 {
    ms - ms.rem_euclid(DAY_MS)
}

/// An explicit window `[start, end)` (default: `end` = now, `start` = `end` − 7 days), widened
/// to whole hours. `start` at or after `end` is the empty window at `end`'s hour.
pub fn explicit_window(start: Option<i64>, end: Option<i64>, now_ms: i64) -> (i64, i64) {
    let end = end.unwrap_or(now_ms);
    let start = start.unwrap_or(end.saturating_sub(DEFAULT_WINDOW_MS));
    // `start` at or after `end` is an empty window (reports of nothing), not an error: the
    // answer's `start`/`end` say which window was read.
    if start >= end {
        let at = floor_hour(end);
        return (at, at);
    }
    (floor_hour(start), ceil_hour(end))
}

/// A named window at `now_ms`: `7d` `14d` `30d` `90d` (whole UTC days, today included), `mtd`
/// `qtd` `ytd`, or `custom` (`custom` bounds widened to whole hours). Unknown names are `7d`.
pub fn preset_window(range: &str, custom: (Option<i64>, Option<i64>), now_ms: i64) -> (i64, i64) {
    let today = day_start(now_ms);
    let tomorrow = today + DAY_MS;
    let now = DateTime::<Utc>::from_timestamp_millis(now_ms).unwrap_or_default();
    let ms_of =
        |y: i32, m: u32| Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).single().map_or(today, |d| d.timestamp_millis());
    match range {
        "14d" => (today - 13 * DAY_MS, tomorrow),
        "30d" => (today - 29 * DAY_MS, tomorrow),
        "90d" => (today - 89 * DAY_MS, tomorrow),
        "mtd" => (ms_of(now.year(), now.month()), tomorrow),
        "qtd" => (ms_of(now.year(), (now.month() - 1) / 3 * 3 + 1), tomorrow),
        "ytd" => (ms_of(now.year(), 1), tomorrow),
        "custom" => (floor_hour(custom.0.unwrap_or(today)), ceil_hour(custom.1.unwrap_or(tomorrow))),
        _ => (today - 6 * DAY_MS, tomorrow),
    }
}

/// The default bucket width of a window: hours up to [`HOURLY_UP_TO_MS`], days beyond.
pub fn default_width(start_ms: i64, end_ms: i64) -> i64 {
    if end_ms - start_ms <= HOURLY_UP_TO_MS { HOUR_MS } else { DAY_MS }
}

/// `hour` | `day` (absent or empty: `default`).
pub fn parse_width(field: &'static str, v: Option<&str>, default: i64) -> Result<i64, ReportError> {
    match v.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(default),
        Some("hour") => Ok(HOUR_MS),
        Some("day") => Ok(DAY_MS),
        Some(other) => Err(ReportError::invalid(field, format!("`{other}` must be hour or day"))),
    }
}

/// A provider type filter value, canonicalised.
pub fn parse_provider_type(field: &'static str, v: &str) -> Result<String, ReportError> {
    v.parse::<ProviderType>().map(|t| t.as_str().to_string()).map_err(|m| ReportError::invalid(field, m))
}

/// A token type (bucket) name.
pub fn parse_bucket(field: &'static str, v: &str) -> Result<Bucket, ReportError> {
    Bucket::parse(v).ok_or_else(|| {
        let names: Vec<&str> = Bucket::ALL.iter().map(|b| b.as_str()).collect();
        ReportError::invalid(field, format!("`{v}` is not one of {}", names.join(", ")))
    })
}

/// The buckets of a cost type.
pub fn cost_type_buckets(c: &str) -> &'static [Bucket] {
    match c {
        "input" => &[Bucket::Input],
        "output" => &[Bucket::Output],
        "cached" => &[Bucket::CachedInput],
        "cache_writes" => &[Bucket::CacheWrite5m, Bucket::CacheWrite1h, Bucket::CacheWriteUnknown],
        "reasoning" => &[Bucket::Reasoning],
        _ => &[],
    }
}

/// The buckets token-type and cost-type filters keep (`None` = all): a bucket is kept when it
/// is one of the token types (if any) and in one of the cost types (if any).
pub fn bucket_set(token_types: &[Bucket], cost_types: &[String]) -> Option<Vec<Bucket>> {
    if token_types.is_empty() && cost_types.is_empty() {
        return None;
    }
    let by_cost: Vec<Bucket> = cost_types.iter().flat_map(|c| cost_type_buckets(c).iter().copied()).collect();
    Some(
        Bucket::ALL
            .into_iter()
            .filter(|b| {
                (token_types.is_empty() || token_types.contains(b)) && (by_cost.is_empty() || by_cost.contains(b))
            })
            .collect(),
    )
}

/// The first bucket start and the number of buckets of `[start, end)` at `width`, at most
/// [`MAX_POINTS`].
pub fn buckets_of(start_ms: i64, end_ms: i64, width: i64) -> Result<(i64, usize), ReportError> {
    let first = start_ms - start_ms.rem_euclid(width);
    let n = (end_ms - first + width - 1) / width;
    if n > MAX_POINTS {
        return Err(ReportError::invalid(
            "bucket",
            format!("{n} buckets is more than {MAX_POINTS}; use a shorter window or day buckets"),
        ));
    }
    Ok((first, usize::try_from(n).unwrap_or(0)))
}

/// The start of the latest `[start, end)` that fits [`MAX_POINTS`] buckets of `width`: a
/// longer window keeps its most recent part (the API's answer names the start it used).
pub fn clip_start(start_ms: i64, end_ms: i64, width: i64) -> i64 {
    let earliest = end_ms.saturating_sub(MAX_POINTS.saturating_mul(width));
    let earliest = earliest + (width - earliest.rem_euclid(width)) % width;
    start_ms.max(earliest)
}

// ---- running ----

/// A rollup's counters with only the buckets in `keep` (requests are not split by bucket and
/// stay whole); the total is the sum of the kept buckets.
pub fn keep_buckets(r: &RollupStats, keep: &[Bucket]) -> RollupStats {
    let mut tokens = Usage::default();
    let mut cost = Cost::default();
    for b in keep {
        let (t, c) = (r.tokens.get(*b), r.cost.get(*b));
        match b {
            Bucket::Input => (tokens.input, cost.input) = (t, c),
            Bucket::Output => (tokens.output, cost.output) = (t, c),
            Bucket::CachedInput => (tokens.cached_input, cost.cached_input) = (t, c),
            Bucket::CacheWrite5m => (tokens.cache_write_5m, cost.cache_write_5m) = (t, c),
            Bucket::CacheWrite1h => (tokens.cache_write_1h, cost.cache_write_1h) = (t, c),
            Bucket::CacheWriteUnknown => (tokens.cache_write_unknown, cost.cache_write_unknown) = (t, c),
            Bucket::Reasoning => (tokens.reasoning, cost.reasoning) = (t, c),
        }
    }
    cost.total = keep.iter().map(|b| cost.get(*b)).sum();
    RollupStats { tokens, cost, ..*r }
}

fn sum(rows: &[SpendingRow]) -> RollupStats {
    let mut s = RollupStats::default();
    for r in rows {
        s.add(&r.stats);
    }
    s
}

/// Rollup rows for `q`, grouped by `group` and bucketed by `width` (see the store's
/// `spending`), bucket filters applied.
pub async fn rows(
    state: &AppState,
    q: &Query,
    group: Option<Dimension>,
    width: Option<i64>,
) -> Result<Vec<SpendingRow>, ReportError> {
    let mut out = Vec::new();
    for f in q.filters()? {
        out.extend(state.usage().spending(&f, group, width).await?);
    }
    if let Some(keep) = &q.buckets {
        for r in &mut out {
            r.stats = keep_buckets(&r.stats, keep);
        }
    }
    Ok(out)
}

/// The totals of `q`.
pub async fn totals(state: &AppState, q: &Query) -> Result<RollupStats, ReportError> {
    Ok(sum(&rows(state, q, None, None).await?))
}

/// One group's counters (a breakdown entry, or a series' points).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyed<T> {
    pub key: String,
    pub value: T,
}

/// Highest cost first, ties by key.
fn rank<T>(v: &mut [Keyed<T>], cost: impl Fn(&T) -> i64) {
    v.sort_by(|a, b| cost(&b.value).cmp(&cost(&a.value)).then_with(|| a.key.cmp(&b.key)));
}

/// Totals per group key, highest cost first; by token type one entry per bucket (all seven,
/// zero when a filter drops the bucket).
pub async fn breakdown(state: &AppState, q: &Query, group: Group) -> Result<Vec<Keyed<RollupStats>>, ReportError> {
    let rows = rows(state, q, group.column(), None).await?;
    let mut out: Vec<Keyed<RollupStats>> = match group {
        Group::TokenType => {
            let all = sum(&rows);
            Bucket::ALL
                .into_iter()
                .map(|b| Keyed { key: b.as_str().to_string(), value: keep_buckets(&all, &[b]) })
                .collect()
        }
        Group::Column(_) => {
            let mut by: BTreeMap<String, RollupStats> = BTreeMap::new();
            for r in rows {
                by.entry(r.key).or_default().add(&r.stats);
            }
            by.into_iter().map(|(key, value)| Keyed { key, value }).collect()
        }
    };
    rank(&mut out, |s| s.cost.total);
    Ok(out)
}

/// A report over time.
#[derive(Debug, Clone)]
pub struct Timeseries {
    pub width_ms: i64,
    /// The start of each bucket.
    pub starts: Vec<i64>,
    /// One series per group key (zero-filled), highest total cost first, an [`OTHER_KEY`]
    /// series last when groups were cut; without a grouping one series keyed [`ALL_KEY`].
    pub series: Vec<Keyed<Vec<RollupStats>>>,
    /// How many groups were summed into the `(other)` series (0 when none).
    pub truncated_key_count: usize,
    /// The whole report per bucket (every group, requests counted once).
    pub totals: Vec<RollupStats>,
}

/// `q` over time in buckets of `width` (UTC-aligned, zero-filled), one series per group of
/// `group`, at most `limit` series plus `(other)`.
pub async fn timeseries(
    state: &AppState,
    q: &Query,
    group: Option<Group>,
    width: i64,
    limit: usize,
) -> Result<Timeseries, ReportError> {
    let (first, n) = buckets_of(q.start_ms, q.end_ms, width)?;
    let starts: Vec<i64> = (0..n).map(|i| first + i as i64 * width).collect();
    let index = |ms: i64| usize::try_from((ms - first).div_euclid(width)).ok().filter(|i| *i < n);
    let blank = || vec![RollupStats::default(); n];
    let place = |rows: &[SpendingRow], into: &mut Vec<RollupStats>| {
        for r in rows {
            if let Some(i) = index(r.bucket_start_ms) {
                into[i].add(&r.stats);
            }
        }
    };
    let filters = q.filters()?;
    let mut totals = blank();
    let mut by: BTreeMap<String, Vec<RollupStats>> = BTreeMap::new();
    let mut cut: Option<(Vec<RollupStats>, usize)> = None;
    match group {
        // One store query grouped by a column, all buckets: the store keeps the top `limit` keys
        // and sums the rest itself, so the cut keys are never bucketed one by one. (With a bucket
        // filter the ranking is by the kept buckets' cost, so it is done here.)
        Some(Group::Column(dim)) if filters.len() == 1 && q.buckets.is_none() => {
            let f = &filters[0];
            let top = state.usage().spending_top(f, dim, width, limit).await?;
            for r in &top.rows {
                if let Some(i) = index(r.bucket_start_ms) {
                    by.entry(r.key.clone()).or_insert_with(blank)[i].add(&r.stats);
                }
            }
            // every kept key has a series, even one whose buckets kept nothing
            for (k, _) in &top.keys {
                by.entry(k.clone()).or_insert_with(blank);
            }
            place(&top.rows, &mut totals);
            place(&top.other, &mut totals);
            if top.truncated_key_count > 0 {
                let mut other = blank();
                place(&top.other, &mut other);
                cut = Some((other, top.truncated_key_count));
            }
        }
        Some(Group::Column(dim)) => {
            let rows = rows(state, q, Some(dim), Some(width)).await?;
            for r in &rows {
                if let Some(i) = index(r.bucket_start_ms) {
                    by.entry(r.key.clone()).or_insert_with(blank)[i].add(&r.stats);
                }
            }
            place(&rows, &mut totals);
        }
        Some(Group::TokenType) => {
            let rows = rows(state, q, None, Some(width)).await?;
            place(&rows, &mut totals);
            for b in Bucket::ALL {
                by.insert(b.as_str().to_string(), totals.iter().map(|s| keep_buckets(s, &[b])).collect());
            }
        }
        None => {
            let rows = rows(state, q, None, Some(width)).await?;
            place(&rows, &mut totals);
            by.insert(ALL_KEY.to_string(), totals.clone());
        }
    }
    let mut series: Vec<Keyed<Vec<RollupStats>>> = by.into_iter().map(|(key, value)| Keyed { key, value }).collect();
    rank(&mut series, |v| v.iter().map(|s| s.cost.total).sum());
    if cut.is_none() && group.is_some() && series.len() > limit {
        let rest = series.split_off(limit);
        let mut other = blank();
        for s in &rest {
            for (o, p) in other.iter_mut().zip(&s.value) {
                o.add(p);
            }
        }
        cut = Some((other, rest.len()));
    }
    let mut truncated_key_count = 0;
    if let Some((other, count)) = cut {
        truncated_key_count = count;
        series.push(Keyed { key: OTHER_KEY.to_string(), value: other });
    }
    Ok(Timeseries { width_ms: width, starts, series, truncated_key_count, totals })
}

// ---- output: labels and CSV ----

/// The label of a group key and whether it is a provider that no longer exists (its history
/// stays, labelled with its name). `truncated` is the count behind an `(other)` key.
pub fn label(state: &AppState, group: Option<Group>, key: &str, truncated: usize) -> (String, bool) {
    let Some(group) = group else { return ("All".to_string(), false) };
    if key == OTHER_KEY {
        return (format!("Other ({truncated} more)"), false);
    }
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
        Group::Column(Dimension::User | Dimension::Agent) => {
            (if key.is_empty() { "(unattributed)".to_string() } else { key.to_string() }, false)
        }
        Group::Column(Dimension::ProviderType) => {
            (key.parse::<ProviderType>().map(|t| t.label().to_string()).unwrap_or_else(|_| key.to_string()), false)
        }
        Group::TokenType => (Bucket::parse(key).map_or_else(|| key.to_string(), |b| b.label().to_string()), false),
    }
}

/// The CSV's columns before the two per bucket (`<bucket>_tokens`, `<bucket>_cost_microcents`,
/// in [`Bucket::ALL`] order). `dimension` is the grouping (`all` without one); the three request
/// counts are empty on rows of one token type.
pub const CSV_COLUMNS: &str = "bucket_start,dimension,key,label,deleted,requests,failed_requests,\
unpriced_requests,total_tokens,total_cost_microcents,total_cost_usd";

fn csv_field(s: &str) -> String {
    // Quote when needed; a leading =+-@ is prefixed so spreadsheets do not run it as a formula.
    let s = if s.starts_with(['=', '+', '-', '@']) { format!("'{s}") } else { s.to_string() };
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s }
}

/// `q` as CSV: one row per bucket of `width` (`None`: one bucket, the whole window, dated at its
/// start) and group, ordered by bucket then key; rows without requests, tokens or cost are left
/// out.
pub async fn csv(state: &AppState, q: &Query, group: Option<Group>, width: Option<i64>) -> Result<String, ReportError> {
    let rows = rows(state, q, group.and_then(Group::column), width).await?;
    // (bucket start, key) → counters
    let mut cells: BTreeMap<(i64, String), RollupStats> = BTreeMap::new();
    for r in &rows {
        let start = if width.is_some() { r.bucket_start_ms } else { q.start_ms };
        match group {
            Some(Group::TokenType) => {
                for b in Bucket::ALL {
                    cells.entry((start, b.as_str().to_string())).or_default().add(&keep_buckets(&r.stats, &[b]));
                }
            }
            Some(Group::Column(_)) => cells.entry((start, r.key.clone())).or_default().add(&r.stats),
            None => cells.entry((start, ALL_KEY.to_string())).or_default().add(&r.stats),
        }
    }
    let split = requests_split(group);
    let mut out = String::from(CSV_COLUMNS);
    for b in Bucket::ALL {
        out.push_str(&format!(",{0}_tokens,{0}_cost_microcents", b.as_str()));
    }
    out.push('\n');
    let count = |n: i64| if split { n.to_string() } else { String::new() };
    for ((start, key), s) in &cells {
        if (s.requests == 0 || !split) && s.cost.total == 0 && s.tokens.total_tokens() == 0 {
            continue;
        }
        let (lbl, deleted) = label(state, group, key, 0);
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{}",
            rfc3339(*start),
            group.map_or(ALL_KEY, Group::name),
            csv_field(key),
            csv_field(&lbl),
            deleted,
            count(s.requests),
            count(s.failed_requests),
            count(s.unpriced_requests),
            s.tokens.total_tokens(),
            s.cost.total,
            Microcents(s.cost.total).to_usd_string()
        ));
        for b in Bucket::ALL {
            out.push_str(&format!(",{},{}", s.tokens.get(b), s.cost.get(b)));
        }
        out.push('\n');
    }
    Ok(out)
}

/// The `Content-Disposition` of a CSV export of `q`.
pub fn csv_disposition(q: &Query) -> String {
    format!(
        "attachment; filename=\"tollgate-spending-{}-{}.csv\"",
        rfc3339(q.start_ms).replace(':', ""),
        rfc3339(q.end_ms).replace(':', "")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOV24: i64 = 1_795_478_400_000;

    fn stats(cost_in: i64, cost_out: i64) -> RollupStats {
        RollupStats {
            requests: 2,
            tokens: Usage { input: 10, output: 20, ..Usage::default() },
            cost: Cost { input: cost_in, output: cost_out, total: cost_in + cost_out, ..Cost::default() },
            ..RollupStats::default()
        }
    }

    #[test]
    fn bucket_filters_keep_only_their_buckets() {
        let r = keep_buckets(&stats(100, 250), &[Bucket::Output]);
        assert_eq!((r.tokens.input, r.tokens.output, r.cost.total, r.requests), (0, 20, 250, 2));
        let all = keep_buckets(&stats(100, 250), &Bucket::ALL);
        assert_eq!(all.cost.total, 350);
        assert_eq!(bucket_set(&[], &["cache_writes".into()]).map(|b| b.len()), Some(3));
        assert_eq!(bucket_set(&[Bucket::CacheWrite1h], &["cache_writes".into()]), Some(vec![Bucket::CacheWrite1h]));
        assert_eq!(bucket_set(&[Bucket::Input], &["output".into()]), Some(vec![]));
        assert_eq!(bucket_set(&[], &[]), None);
    }

    #[test]
    fn several_values_expand_into_disjoint_single_filters() {
        let q = Query {
            start_ms: 0,
            end_ms: HOUR_MS,
            providers: vec!["a".into(), "b".into()],
            models: vec!["m1".into(), "m2".into(), String::new()],
            ..Query::default()
        };
        let f = q.filters().unwrap_or_default();
        assert_eq!(f.len(), 6);
        assert!(f.iter().all(|f| f.user.is_none() && f.agent.is_none() && f.end_ms == HOUR_MS));
        assert_eq!(f[0].provider.as_deref(), Some("a"));
        assert_eq!(f[5].model.as_deref(), Some(""), "an empty value matches unattributed rows");
        assert_eq!(Query::default().filters().unwrap_or_default().len(), 1);
        let many = Query { users: (0..65).map(|i| i.to_string()).collect(), ..Query::default() };
        assert!(matches!(many.filters(), Err(ReportError::Invalid { field: "filters", .. })));
    }

    #[test]
    fn scope_confines_and_defaults_the_providers() {
        let scope = vec!["p2".to_string(), "p3".to_string()];
        let mut q = Query::default();
        assert!(q.scope(Some(&scope)).is_ok());
        assert_eq!(q.providers, scope);
        let mut q = Query { providers: vec!["p1".into()], ..Query::default() };
        assert!(matches!(q.scope(Some(&scope)), Err(ReportError::Forbidden(_))));
        let mut q = Query { providers: vec!["p3".into()], ..Query::default() };
        assert!(q.scope(Some(&scope)).is_ok());
        assert_eq!(q.providers, vec!["p3"]);
        assert!(Query::default().scope(None).is_ok());
    }

    #[test]
    fn windows_widths_and_buckets() {
        let now = NOV24 + 5 * HOUR_MS;
        assert_eq!(preset_window("7d", (None, None), now), (NOV24 - 6 * DAY_MS, NOV24 + DAY_MS));
        assert_eq!(preset_window("nonsense", (None, None), now), (NOV24 - 6 * DAY_MS, NOV24 + DAY_MS));
        assert_eq!(preset_window("90d", (None, None), now).0, NOV24 - 89 * DAY_MS);
        assert_eq!(preset_window("mtd", (None, None), now).0, NOV24 - 23 * DAY_MS);
        let custom = preset_window("custom", (Some(NOV24 - 14 * HOUR_MS + 1), Some(NOV24 + 9 * HOUR_MS + 1)), now);
        assert_eq!(custom, (NOV24 - 14 * HOUR_MS, NOV24 + 10 * HOUR_MS));
        assert_eq!(explicit_window(None, None, now), (now - 7 * DAY_MS, now));
        assert_eq!(explicit_window(Some(NOV24 + 1), Some(NOV24 + 2), now), (NOV24, NOV24 + HOUR_MS));
        assert_eq!(explicit_window(Some(NOV24 + 1), Some(NOV24 + 1), now), (NOV24, NOV24));
        assert_eq!(explicit_window(Some(NOV24 + DAY_MS), Some(NOV24), now), (NOV24, NOV24));
        assert_eq!(default_width(0, 2 * DAY_MS), HOUR_MS);
        assert_eq!(default_width(0, 2 * DAY_MS + HOUR_MS), DAY_MS);
        assert_eq!(buckets_of(NOV24 + HOUR_MS, NOV24 + 2 * DAY_MS, DAY_MS).ok(), Some((NOV24, 2)));
        assert!(buckets_of(0, (MAX_POINTS + 1) * HOUR_MS, HOUR_MS).is_err());
        let end = (MAX_POINTS + 5) * HOUR_MS;
        let start = clip_start(0, end, HOUR_MS);
        assert_eq!(start, 5 * HOUR_MS);
        assert_eq!(buckets_of(start, end, HOUR_MS).ok(), Some((5 * HOUR_MS, MAX_POINTS as usize)));
        assert_eq!(clip_start(7 * HOUR_MS, end, HOUR_MS), 7 * HOUR_MS);
        assert!(parse_width("bucket", Some("week"), DAY_MS).is_err());
    }

    #[test]
    fn csv_fields_are_quoted_and_defused() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("=cmd()"), "'=cmd()");
        assert_eq!(csv_field("plain"), "plain");
    }
}
