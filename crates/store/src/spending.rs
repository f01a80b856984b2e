//! Hourly usage rollups: how a batch of events becomes rollup rows (upserted with the events,
//! see `usage.rs`), and the spending queries that read them.
//!
//! A rollup row is keyed by (hour or day, provider, provider type, model, user, agent) — absent
//! model, user or agent are stored as `''` — and holds request counts plus tokens and cost per
//! bucket. Six tables hold the same counters under coarser keys (`rollup::Table`); a report
//! reads the smallest that can answer it ([`tables_for`]): the `*_model` tables unless it
//! filters or groups by user or agent, the hourly table of one principal alone when it names a
//! user (or an agent) and nothing of provider or model, and the daily tables for the whole days
//! of a window that is not bucketed by hour (the hours at its edges come from an hourly table).
//! Reports never scan raw events, so their cost grows with buckets × groups, not with traffic.
//!
//! A grouped series cut to its top N keys ([`UsageStore::spending_top`]) never aggregates the
//! keys it cuts: it ranks keys by their window totals (the daily tables), buckets only the top
//! N, and gets "other" per bucket as the ungrouped total (the small `*_model` tables when no
//! user or agent is involved) minus the top N. Counters are integers, so this is exact.

use crate::db::RowExt;
use crate::rollup::{DAY_MS, HOUR_MS, RollupKey, RollupStats, STAT_COLUMNS, Table};
use crate::token_usage::TokenUsage;
use crate::{StoreError, UsageStore};
use std::collections::{BTreeMap, HashMap};
use tollgate_core::{Cost, Usage};

/// Working memory for a report over the per-user hourly rollup on PostgreSQL (`SET LOCAL`).
const PG_REPORT_WORK_MEM: &str = "SET LOCAL work_mem = '64MB'";

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

/// A grouped, bucketed report cut to its largest keys (see [`UsageStore::spending_top`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopSpending {
    /// The kept keys with their totals over the window, largest cost first (ties by key).
    pub keys: Vec<(String, RollupStats)>,
    /// The kept keys' rows per bucket (only buckets with rows).
    pub rows: Vec<SpendingRow>,
    /// Everything the cut keys add up to, per bucket (key `""`); empty when nothing was cut.
    pub other: Vec<SpendingRow>,
    /// How many keys were cut into `other`.
    pub truncated_key_count: usize,
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
        self.spending_of(f, group, bucket_ms, None).await
    }

    /// [`UsageStore::spending`] grouped by `group` and bucketed by `bucket_ms`, keeping the
    /// `limit` keys with the largest total cost over the window (ties: the smaller key) and
    /// summing the rest per bucket into `other`. The cut keys are never bucketed one by one:
    /// the ranking comes from the window totals (daily rollups), the kept keys are bucketed
    /// with a key filter, and `other` is the ungrouped bucketed total minus the kept keys.
    pub async fn spending_top(
        &self,
        f: &SpendingFilter,
        group: Dimension,
        bucket_ms: i64,
        limit: usize,
    ) -> Result<TopSpending, StoreError> {
        let mut keys: Vec<(String, RollupStats)> =
            self.spending_of(f, Some(group), None, None).await?.into_iter().map(|r| (r.key, r.stats)).collect();
        keys.sort_by(|a, b| b.1.cost.total.cmp(&a.1.cost.total).then_with(|| a.0.cmp(&b.0)));
        if keys.len() <= limit {
            let rows = self.spending_of(f, Some(group), Some(bucket_ms), None).await?;
            return Ok(TopSpending { keys, rows, other: Vec::new(), truncated_key_count: 0 });
        }
        let truncated_key_count = keys.len() - limit;
        keys.truncate(limit);
        let kept: Vec<String> = keys.iter().map(|(k, _)| k.clone()).collect();
        // The kept keys' buckets and the ungrouped total are independent reads: run them together.
        let (rows, total) = tokio::try_join!(
            self.spending_of(f, Some(group), Some(bucket_ms), Some(&kept)),
            self.spending_of(f, None, Some(bucket_ms), None)
        )?;
        let mut other: BTreeMap<i64, RollupStats> = BTreeMap::new();
        for r in total {
            other.entry(r.bucket_start_ms).or_default().add(&r.stats);
        }
        for r in &rows {
            other.entry(r.bucket_start_ms).or_default().sub(&r.stats);
        }
        let other = other
            .into_iter()
            .map(|(bucket_start_ms, stats)| SpendingRow { bucket_start_ms, key: String::new(), stats })
            .collect();
        Ok(TopSpending { keys, rows, other, truncated_key_count })
    }

    /// [`UsageStore::spending`], limited to the groups in `keys` when given.
    async fn spending_of(
        &self,
        f: &SpendingFilter,
        group: Option<Dimension>,
        bucket_ms: Option<i64>,
        keys: Option<&[String]>,
    ) -> Result<Vec<SpendingRow>, StoreError> {
        let (hourly, daily) = tables_for(f, group);
        let (start, end) = (f.start_ms, f.end_ms);
        let segments: Vec<(Table, i64, i64)> = match bucket_ms {
            Some(HOUR_MS) => vec![(hourly, start, end)],
            None | Some(DAY_MS) => {
                let first_day = start + (DAY_MS - start.rem_euclid(DAY_MS)) % DAY_MS;
                let last_day = end - end.rem_euclid(DAY_MS);
                if first_day < last_day {
                    vec![(hourly, start, first_day), (daily, first_day, last_day), (hourly, last_day, end)]
                } else {
                    vec![(hourly, start, end)]
                }
            }
            Some(w) => return Err(StoreError::Invalid(format!("bucket width {w} ms is neither an hour nor a day"))),
        };
        let mut merged: BTreeMap<(i64, String), RollupStats> = BTreeMap::new();
        let mut queries = 0;
        for (table, from, to) in segments.into_iter().filter(|(_, from, to)| from < to) {
            queries += 1;
            for r in self.spending_segment(table, f, from, to, group, bucket_ms, keys).await? {
                merged.entry((r.bucket_start_ms, r.key)).or_default().add(&r.stats);
            }
        }
        if queries == 0 || (merged.is_empty() && group.is_none() && bucket_ms.is_none()) {
            merged.insert((0, String::new()), RollupStats::default());
        }
        Ok(merged
            .into_iter()
            .map(|((bucket_start_ms, key), stats)| SpendingRow { bucket_start_ms, key, stats })
            .collect())
    }

    /// One table over `[from, to)`; with `keys`, only those groups (`group` must be set).
    #[allow(clippy::too_many_arguments)]
    async fn spending_segment(
        &self,
        table: Table,
        f: &SpendingFilter,
        from: i64,
        to: i64,
        group: Option<Dimension>,
        bucket_ms: Option<i64>,
        keys: Option<&[String]>,
    ) -> Result<Vec<SpendingRow>, StoreError> {
        // Every piece of SQL text below comes from fixed sets (never from user input).
        let bucket_expr = match bucket_ms {
            Some(w) if w == table.width_ms() => "bucket_start".to_string(),
            Some(w) => format!("(bucket_start - (bucket_start % {w}))"),
            None => "CAST(0 AS BIGINT)".to_string(),
        };
        let key_expr = group.map_or("''", Dimension::column);
        // Grouped by the table's whole key (a per-user table by hour and user): each row is a
        // group of its own, read as it is stored (no sums, no sort).
        let whole_key =
            bucket_ms == Some(table.width_ms()) && group.is_some() && table.key_columns()[1..] == [key_expr];
        let sums: Vec<String> = if whole_key {
            STAT_COLUMNS.iter().map(|c| c.to_string()).collect()
        } else {
            STAT_COLUMNS.iter().map(|c| format!("CAST(COALESCE(SUM({c}), 0) AS BIGINT) AS {c}")).collect()
        };
        let mut grouping = Vec::new();
        if bucket_ms.is_some() {
            grouping.push(bucket_expr.clone());
        }
        if group.is_some() {
            grouping.push(key_expr.to_string());
        }
        let group_by =
            if grouping.is_empty() || whole_key { String::new() } else { format!(" GROUP BY {}", grouping.join(", ")) };
        // Every filter is bound ($3–$7); one on a column the table lacks must be absent
        // (`tables_for` picks a table that has it).
        let k = table.keys();
        let filters: String = [
            ("provider", 3, k.model),
            ("model", 4, k.model),
            ("user_email", 5, k.user),
            ("agent", 6, k.agent),
            ("provider_type", 7, k.model),
        ]
        .iter()
        .map(
            |(column, n, kept)| {
                if *kept { format!(" AND (${n} IS NULL OR {column} = ${n})") } else { format!(" AND ${n} IS NULL") }
            },
        )
        .collect();
        let keys = match (keys, group) {
            (Some(k), Some(_)) => k,
            (Some(_), None) => return Err(StoreError::Invalid("a key filter needs a grouping".into())),
            (None, _) => &[],
        };
        let key_filter = if keys.is_empty() {
            String::new()
        } else {
            let marks: Vec<String> = (0..keys.len()).map(|i| format!("${}", i + 8)).collect();
            format!(" AND {key_expr} IN ({})", marks.join(", "))
        };
        let sql = format!(
            "SELECT {bucket_expr} AS bucket_start, {key_expr} AS group_key, {} FROM {} \
             WHERE bucket_start >= $1 AND bucket_start < $2{filters}{key_filter}{group_by}",
            sums.join(", "),
            table.name()
        );
        macro_rules! bound {
            () => {{
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(from)
                    .bind(to)
                    .bind(f.provider.as_deref())
                    .bind(f.model.as_deref())
                    .bind(f.user.as_deref())
                    .bind(f.agent.as_deref())
                    .bind(f.provider_type.as_deref());
                for k in keys {
                    q = q.bind(k.as_str());
                }
                q
            }};
        }
        match &self.inner.pool {
            crate::db::Pool::Sqlite(p) => bound!().fetch_all(p).await?.iter().map(spending_row).collect(),
            crate::db::Pool::Postgres(p) if table == Table::Hourly => {
                // The per-user hourly rollup is the one table whose grouped reads sort or hash
                // tens of thousands of rows: give the report room so it does not spill to disk
                // (PostgreSQL's default work_mem is 4 MB), for this transaction only.
                let mut tx = p.begin().await?;
                sqlx::query(PG_REPORT_WORK_MEM).execute(&mut *tx).await?;
                let rows = bound!().fetch_all(&mut *tx).await?;
                tx.commit().await?;
                rows.iter().map(spending_row).collect()
            }
            crate::db::Pool::Postgres(p) => bound!().fetch_all(p).await?.iter().map(spending_row).collect(),
        }
    }

    /// Rows of the full hourly rollup (per user and agent) in `[start_ms, end_ms)`, ordered by key.
    pub async fn rollup_rows(&self, start_ms: i64, end_ms: i64) -> Result<Vec<(RollupKey, RollupStats)>, StoreError> {
        let sql = format!(
            "SELECT bucket_start, provider, provider_type, model, user_email, agent, {} FROM usage_rollup_hourly \
             WHERE bucket_start >= $1 AND bucket_start < $2 \
             ORDER BY bucket_start, provider, provider_type, model, user_email, agent",
            STAT_COLUMNS.join(", ")
        );
        on_pool!(self, |p| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(start_ms).bind(end_ms).fetch_all(p).await?;
            rows.iter()
                .map(|r| {
                    let pt = r.text("provider_type")?;
                    let provider_type = pt
                        .parse::<tollgate_core::ProviderType>()
                        .map_err(|_| StoreError::Corrupt(format!("rollup row has unknown provider type \"{pt}\"")))?
                        .as_str();
                    let key = RollupKey {
                        bucket_start_ms: r.int("bucket_start")?,
                        provider: r.text("provider")?,
                        provider_type,
                        model: r.text("model")?,
                        user: r.text("user_email")?,
                        agent: r.text("agent")?,
                    };
                    Ok((key, stats_at(r, 6)?))
                })
                .collect()
        })
    }
}

/// The hourly and daily tables a report reads: the smallest whose key has every dimension the
/// report filters or groups by. No user or agent: the `*_model` tables. A user (or an agent)
/// and no provider, provider type or model: the hourly table of that principal alone (there is
/// no daily one: the whole days of such a report sum the full daily table, which is small next
/// to the hourly rows it replaces). Anything else: the full tables.
fn tables_for(f: &SpendingFilter, group: Option<Dimension>) -> (Table, Table) {
    let by = |d: Dimension| group == Some(d);
    let model = f.provider.is_some()
        || f.model.is_some()
        || f.provider_type.is_some()
        || by(Dimension::Provider)
        || by(Dimension::Model)
        || by(Dimension::ProviderType);
    let user = f.user.is_some() || by(Dimension::User);
    let agent = f.agent.is_some() || by(Dimension::Agent);
    match (model, user, agent) {
        (_, false, false) => (Table::HourlyModel, Table::DailyModel),
        (false, true, false) => (Table::HourlyUser, Table::Daily),
        (false, false, true) => (Table::HourlyAgent, Table::Daily),
        _ => (Table::Hourly, Table::Daily),
    }
}

fn spending_row<R: RowExt>(r: &R) -> Result<SpendingRow, StoreError> {
    Ok(SpendingRow { bucket_start_ms: r.int_at(0)?, key: r.text("group_key")?, stats: stats_at(r, 2)? })
}

/// The counters of a row whose columns from `first` on are [`STAT_COLUMNS`], in order (read
/// by position: a report's rows are many and wide).
fn stats_at<R: RowExt>(r: &R, first: usize) -> Result<RollupStats, StoreError> {
    let mut v = [0i64; STAT_COLUMNS.len()];
    for (i, slot) in v.iter_mut().enumerate() {
        *slot = r.int_at(first + i)?;
    }
    let [
        requests,
        failed_requests,
        unpriced_requests,
        override_requests,
        tokens_input,
        tokens_output,
        tokens_reasoning,
        tokens_cached_input,
        tokens_cache_write_5m,
        tokens_cache_write_1h,
        tokens_cache_write_unknown,
        cost_input,
        cost_output,
        cost_reasoning,
        cost_cached_input,
        cost_cache_write_5m,
        cost_cache_write_1h,
        cost_cache_write_unknown,
        cost_total,
    ] = v;
    Ok(RollupStats {
        requests,
        failed_requests,
        unpriced_requests,
        override_requests,
        tokens: Usage {
            input: tokens_input,
            output: tokens_output,
            reasoning: tokens_reasoning,
            cached_input: tokens_cached_input,
            cache_write_5m: tokens_cache_write_5m,
            cache_write_1h: tokens_cache_write_1h,
            cache_write_unknown: tokens_cache_write_unknown,
        },
        cost: Cost {
            input: cost_input,
            output: cost_output,
            reasoning: cost_reasoning,
            cached_input: cost_cached_input,
            cache_write_5m: cost_cache_write_5m,
            cache_write_1h: cost_cache_write_1h,
            cache_write_unknown: cost_cache_write_unknown,
            total: cost_total,
        },
    })
}

/// Per-token usage, from `token_usage_daily` (`token_usage.rs`).
impl UsageStore {
    /// Every token's usage: when it was last used (ever), and its requests and spend over the
    /// UTC days starting at or after `since_day_ms` (a day start). Tokens never used are absent.
    pub async fn token_usage(&self, since_day_ms: i64) -> Result<HashMap<String, TokenUsage>, StoreError> {
        const SQL: &str = "SELECT token_id, MAX(last_at) AS last_at, \
             CAST(SUM(CASE WHEN day_start >= $1 THEN requests ELSE 0 END) AS BIGINT) AS recent_requests, \
             CAST(SUM(CASE WHEN day_start >= $1 THEN cost_total ELSE 0 END) AS BIGINT) AS recent_cost \
             FROM token_usage_daily GROUP BY token_id";
        on_pool!(self, |p| {
            let rows = sqlx::query(SQL).bind(since_day_ms).fetch_all(p).await?;
            rows.iter()
                .map(|r| {
                    Ok((
                        r.text("token_id")?,
                        TokenUsage {
                            last_used_ms: Some(r.int("last_at")?),
                            recent_requests: r.int("recent_requests")?,
                            recent_cost: r.int("recent_cost")?,
                        },
                    ))
                })
                .collect()
        })
    }
}
