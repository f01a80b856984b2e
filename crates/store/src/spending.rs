//! Hourly usage rollups: how a batch of events becomes rollup rows (upserted with the events,
//! see `usage.rs`), and the spending queries that read them.
//!
//! A rollup row is keyed by (hour start, provider, provider type, model, user, agent) — absent
//! model, user or agent are stored as `''` — and holds request counts plus tokens and cost per
//! bucket. Reports group rollup rows by an hour or day bucket and one dimension; they never
//! scan raw events, so their cost grows with hours × groups, not with traffic.

use crate::db::RowExt;
use crate::usage::UsageEvent;
use crate::{StoreError, UsageStore};
use std::collections::BTreeMap;
use tollgate_core::{Cost, RequestStatus, Usage};

/// One hour in milliseconds.
pub const HOUR_MS: i64 = 3_600_000;
/// One day in milliseconds.
pub const DAY_MS: i64 = 86_400_000;

/// The identity of a rollup row.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RollupKey {
    pub hour_start_ms: i64,
    pub provider: String,
    pub provider_type: &'static str,
    pub model: String,
    pub user: String,
    pub agent: String,
}

/// Counters of a set of requests: what a rollup row holds and what reports add up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RollupStats {
    pub requests: i64,
    /// Requests whose status is not `success`.
    pub failed_requests: i64,
    pub unpriced_requests: i64,
    pub override_requests: i64,
    pub tokens: Usage,
    pub cost: Cost,
}

impl RollupStats {
    pub fn add(&mut self, o: &RollupStats) {
        self.requests += o.requests;
        self.failed_requests += o.failed_requests;
        self.unpriced_requests += o.unpriced_requests;
        self.override_requests += o.override_requests;
        let (t, u) = (&mut self.tokens, &o.tokens);
        t.input += u.input;
        t.output += u.output;
        t.reasoning += u.reasoning;
        t.cached_input += u.cached_input;
        t.cache_write_5m += u.cache_write_5m;
        t.cache_write_1h += u.cache_write_1h;
        t.cache_write_unknown += u.cache_write_unknown;
        let (c, d) = (&mut self.cost, &o.cost);
        c.input += d.input;
        c.output += d.output;
        c.reasoning += d.reasoning;
        c.cached_input += d.cached_input;
        c.cache_write_5m += d.cache_write_5m;
        c.cache_write_1h += d.cache_write_1h;
        c.cache_write_unknown += d.cache_write_unknown;
        c.total += d.total;
    }

    fn of(e: &UsageEvent) -> RollupStats {
        RollupStats {
            requests: 1,
            failed_requests: i64::from(e.status != RequestStatus::Success),
            unpriced_requests: i64::from(e.unpriced),
            override_requests: i64::from(e.priced_by_override),
            tokens: e.usage,
            cost: e.cost,
        }
    }
}

/// The rollup rows a batch of events adds to, summed per key (sorted, so upserts take row
/// locks in one global order).
pub(crate) fn rollup(events: &[UsageEvent]) -> BTreeMap<RollupKey, RollupStats> {
    let mut out: BTreeMap<RollupKey, RollupStats> = BTreeMap::new();
    for e in events {
        let key = RollupKey {
            hour_start_ms: e.ts_ms - e.ts_ms.rem_euclid(HOUR_MS),
            provider: e.provider.clone(),
            provider_type: e.provider_type.as_str(),
            model: e.model.clone().unwrap_or_default(),
            user: e.user.clone().unwrap_or_default(),
            agent: e.agent.clone().unwrap_or_default(),
        };
        out.entry(key).or_default().add(&RollupStats::of(e));
    }
    out
}

macro_rules! stat_columns {
    () => {
        "requests, failed_requests, unpriced_requests, override_requests, tokens_input, tokens_output, \
         tokens_reasoning, tokens_cached_input, tokens_cache_write_5m, tokens_cache_write_1h, \
         tokens_cache_write_unknown, cost_input, cost_output, cost_reasoning, cost_cached_input, \
         cost_cache_write_5m, cost_cache_write_1h, cost_cache_write_unknown, cost_total"
    };
}

/// The counter columns of `usage_rollup_hourly`, in [`RollupStats`] order.
const STAT_COLUMNS: [&str; 19] = [
    "requests",
    "failed_requests",
    "unpriced_requests",
    "override_requests",
    "tokens_input",
    "tokens_output",
    "tokens_reasoning",
    "tokens_cached_input",
    "tokens_cache_write_5m",
    "tokens_cache_write_1h",
    "tokens_cache_write_unknown",
    "cost_input",
    "cost_output",
    "cost_reasoning",
    "cost_cached_input",
    "cost_cache_write_5m",
    "cost_cache_write_1h",
    "cost_cache_write_unknown",
    "cost_total",
];

pub(crate) const UPSERT_HEAD: &str = concat!(
    "INSERT INTO usage_rollup_hourly (hour_start, provider, provider_type, model, user_email, agent, ",
    stat_columns!(),
    ") "
);

/// `ON CONFLICT … DO UPDATE SET x = usage_rollup_hourly.x + excluded.x` for every counter.
pub(crate) static UPSERT_TAIL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let sets: Vec<String> =
        STAT_COLUMNS.iter().map(|c| format!("{c} = usage_rollup_hourly.{c} + excluded.{c}")).collect();
    format!(
        " ON CONFLICT (hour_start, provider, provider_type, model, user_email, agent) DO UPDATE SET {}",
        sets.join(", ")
    )
});

/// Rows per upsert statement: 25 columns × 400 stays under both backends' bind limits.
pub(crate) const ROLLUP_ROWS_PER_UPSERT: usize = 400;

/// Pushes one rollup row's 25 values onto a `push_values` row builder.
macro_rules! push_rollup {
    ($b:expr, $k:expr, $v:expr) => {{
        let k: &$crate::spending::RollupKey = $k;
        let v: &$crate::spending::RollupStats = $v;
        $b.push_bind(k.hour_start_ms)
            .push_bind(k.provider.clone())
            .push_bind(k.provider_type)
            .push_bind(k.model.clone())
            .push_bind(k.user.clone())
            .push_bind(k.agent.clone())
            .push_bind(v.requests)
            .push_bind(v.failed_requests)
            .push_bind(v.unpriced_requests)
            .push_bind(v.override_requests)
            .push_bind(v.tokens.input)
            .push_bind(v.tokens.output)
            .push_bind(v.tokens.reasoning)
            .push_bind(v.tokens.cached_input)
            .push_bind(v.tokens.cache_write_5m)
            .push_bind(v.tokens.cache_write_1h)
            .push_bind(v.tokens.cache_write_unknown)
            .push_bind(v.cost.input)
            .push_bind(v.cost.output)
            .push_bind(v.cost.reasoning)
            .push_bind(v.cost.cached_input)
            .push_bind(v.cost.cache_write_5m)
            .push_bind(v.cost.cache_write_1h)
            .push_bind(v.cost.cache_write_unknown)
            .push_bind(v.cost.total);
    }};
}

/// Which rollups a report covers. The window is `[start_ms, end_ms)` on hour starts; callers
/// widen it to whole hours. A filter value matches exactly (`""` = unattributed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpendingFilter {
    pub start_ms: i64,
    pub end_ms: i64,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub user: Option<String>,
    pub agent: Option<String>,
    pub provider_type: Option<String>,
}

/// A rollup column reports can group by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dimension {
    Provider,
    Model,
    User,
    Agent,
    ProviderType,
}

impl Dimension {
    fn column(self) -> &'static str {
        match self {
            Dimension::Provider => "provider",
            Dimension::Model => "model",
            Dimension::User => "user_email",
            Dimension::Agent => "agent",
            Dimension::ProviderType => "provider_type",
        }
    }
}

/// One group of a spending query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpendingRow {
    /// Start of the hour or day bucket (epoch ms); 0 when the query is not bucketed.
    pub bucket_start_ms: i64,
    /// The dimension's value; `""` when the query is not grouped (or for unattributed usage).
    pub key: String,
    pub stats: RollupStats,
}

impl UsageStore {
    /// Sums rollups matching `f`, grouped by bucket (`bucket_ms` = [`HOUR_MS`] or [`DAY_MS`],
    /// UTC-aligned) and/or by one dimension. Only groups with rows come back (callers zero-fill).
    pub async fn spending(
        &self,
        f: &SpendingFilter,
        group: Option<Dimension>,
        bucket_ms: Option<i64>,
    ) -> Result<Vec<SpendingRow>, StoreError> {
        // Both expressions come from fixed sets (never from user text).
        let bucket_expr = match bucket_ms {
            Some(HOUR_MS) => "hour_start".to_string(),
            Some(w) if w > 0 && w % HOUR_MS == 0 => format!("(hour_start - (hour_start % {w}))"),
            Some(w) => return Err(StoreError::Invalid(format!("bucket width {w} ms is not a whole number of hours"))),
            None => "CAST(0 AS BIGINT)".to_string(),
        };
        let key_expr = group.map_or("''", Dimension::column);
        let sums: Vec<String> =
            STAT_COLUMNS.iter().map(|c| format!("CAST(COALESCE(SUM({c}), 0) AS BIGINT) AS {c}")).collect();
        let mut grouping = Vec::new();
        if bucket_ms.is_some() {
            grouping.push(bucket_expr.clone());
        }
        if group.is_some() {
            grouping.push(key_expr.to_string());
        }
        let group_by = if grouping.is_empty() { String::new() } else { format!(" GROUP BY {}", grouping.join(", ")) };
        let sql = format!(
            "SELECT {bucket_expr} AS bucket_start, {key_expr} AS group_key, {} FROM usage_rollup_hourly \
             WHERE hour_start >= $1 AND hour_start < $2 AND ($3 IS NULL OR provider = $3) \
             AND ($4 IS NULL OR model = $4) AND ($5 IS NULL OR user_email = $5) AND ($6 IS NULL OR agent = $6) \
             AND ($7 IS NULL OR provider_type = $7){group_by}",
            sums.join(", ")
        );
        let rows = on_pool!(self, |p| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(f.start_ms)
                .bind(f.end_ms)
                .bind(f.provider.as_deref())
                .bind(f.model.as_deref())
                .bind(f.user.as_deref())
                .bind(f.agent.as_deref())
                .bind(f.provider_type.as_deref())
                .fetch_all(p)
                .await?;
            rows.iter().map(spending_row).collect::<Result<Vec<_>, StoreError>>()?
        });
        Ok(rows)
    }

    /// Rollup rows, for tests and exports that need every key (ordered by key).
    pub async fn rollup_rows(&self, start_ms: i64, end_ms: i64) -> Result<Vec<(RollupKey, RollupStats)>, StoreError> {
        const SQL: &str = concat!(
            "SELECT hour_start, provider, provider_type, model, user_email, agent, ",
            stat_columns!(),
            " FROM usage_rollup_hourly WHERE hour_start >= $1 AND hour_start < $2 ",
            "ORDER BY hour_start, provider, provider_type, model, user_email, agent"
        );
        on_pool!(self, |p| {
            let rows = sqlx::query(SQL).bind(start_ms).bind(end_ms).fetch_all(p).await?;
            rows.iter()
                .map(|r| {
                    let pt = r.text("provider_type")?;
                    let provider_type = pt
                        .parse::<tollgate_core::ProviderType>()
                        .map_err(|_| StoreError::Corrupt(format!("rollup row has unknown provider type \"{pt}\"")))?
                        .as_str();
                    let key = RollupKey {
                        hour_start_ms: r.int("hour_start")?,
                        provider: r.text("provider")?,
                        provider_type,
                        model: r.text("model")?,
                        user: r.text("user_email")?,
                        agent: r.text("agent")?,
                    };
                    Ok((key, stats_from_row(r)?))
                })
                .collect()
        })
    }
}

fn spending_row<R: RowExt>(r: &R) -> Result<SpendingRow, StoreError> {
    Ok(SpendingRow { bucket_start_ms: r.int("bucket_start")?, key: r.text("group_key")?, stats: stats_from_row(r)? })
}

fn stats_from_row<R: RowExt>(r: &R) -> Result<RollupStats, StoreError> {
    Ok(RollupStats {
        requests: r.int("requests")?,
        failed_requests: r.int("failed_requests")?,
        unpriced_requests: r.int("unpriced_requests")?,
        override_requests: r.int("override_requests")?,
        tokens: Usage {
            input: r.int("tokens_input")?,
            output: r.int("tokens_output")?,
            reasoning: r.int("tokens_reasoning")?,
            cached_input: r.int("tokens_cached_input")?,
            cache_write_5m: r.int("tokens_cache_write_5m")?,
            cache_write_1h: r.int("tokens_cache_write_1h")?,
            cache_write_unknown: r.int("tokens_cache_write_unknown")?,
        },
        cost: Cost {
            input: r.int("cost_input")?,
            output: r.int("cost_output")?,
            reasoning: r.int("cost_reasoning")?,
            cached_input: r.int("cost_cached_input")?,
            cache_write_5m: r.int("cost_cache_write_5m")?,
            cache_write_1h: r.int("cost_cache_write_1h")?,
            cache_write_unknown: r.int("cost_cache_write_unknown")?,
            total: r.int("cost_total")?,
        },
    })
}
