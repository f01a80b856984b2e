//! Hourly usage rollups: how a batch of events becomes rollup rows (upserted with the events,
//! see `usage.rs`), and the spending queries that read them.
//!
//! A rollup row is keyed by (hour or day, provider, provider type, model, user, agent) — absent
//! model, user or agent are stored as `''` — and holds request counts plus tokens and cost per
//! bucket. Four tables (hourly/daily × with/without user and agent) hold the same counters; a
//! report reads the smallest that can answer it: the `*_model` tables unless it filters or
//! groups by user or agent, and the daily tables for the whole days of a window that is not
//! bucketed by hour (the hours at its edges come from the hourly table). Reports never scan raw
//! events, so their cost grows with buckets × groups, not with traffic.
//!
//! A grouped series cut to its top N keys ([`UsageStore::spending_top`]) never aggregates the
//! keys it cuts: it ranks keys by their window totals (the daily tables), buckets only the top
//! N, and gets "other" per bucket as the ungrouped total (the small `*_model` tables when no
//! user or agent is involved) minus the top N. Counters are integers, so this is exact.

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
    /// Start of the row's hour or day, epoch ms.
    pub bucket_start_ms: i64,
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
        self.combine(o, 1);
    }

    /// Takes `o` away (the inverse of [`RollupStats::add`]).
    pub fn sub(&mut self, o: &RollupStats) {
        self.combine(o, -1);
    }

    /// Adds `sign` × `o`, counter by counter (the counters are integers: exact either way).
    fn combine(&mut self, o: &RollupStats, sign: i64) {
        self.requests += sign * o.requests;
        self.failed_requests += sign * o.failed_requests;
        self.unpriced_requests += sign * o.unpriced_requests;
        self.override_requests += sign * o.override_requests;
        let (t, u) = (&mut self.tokens, &o.tokens);
        t.input += sign * u.input;
        t.output += sign * u.output;
        t.reasoning += sign * u.reasoning;
        t.cached_input += sign * u.cached_input;
        t.cache_write_5m += sign * u.cache_write_5m;
        t.cache_write_1h += sign * u.cache_write_1h;
        t.cache_write_unknown += sign * u.cache_write_unknown;
        let (c, d) = (&mut self.cost, &o.cost);
        c.input += sign * d.input;
        c.output += sign * d.output;
        c.reasoning += sign * d.reasoning;
        c.cached_input += sign * d.cached_input;
        c.cache_write_5m += sign * d.cache_write_5m;
        c.cache_write_1h += sign * d.cache_write_1h;
        c.cache_write_unknown += sign * d.cache_write_unknown;
        c.total += sign * d.total;
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

/// A rollup table. All four hold the same counters; the `*_model` ones drop user and agent
/// (far fewer rows), the daily ones are keyed by UTC day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Table {
    Hourly,
    HourlyModel,
    Daily,
    DailyModel,
}

impl Table {
    pub(crate) const ALL: [Table; 4] = [Table::Hourly, Table::HourlyModel, Table::Daily, Table::DailyModel];

    fn name(self) -> &'static str {
        match self {
            Table::Hourly => "usage_rollup_hourly",
            Table::HourlyModel => "usage_rollup_hourly_model",
            Table::Daily => "usage_rollup_daily",
            Table::DailyModel => "usage_rollup_daily_model",
        }
    }

    /// Whether rows are keyed by user and agent too.
    pub(crate) fn principal(self) -> bool {
        matches!(self, Table::Hourly | Table::Daily)
    }

    fn width_ms(self) -> i64 {
        match self {
            Table::Hourly | Table::HourlyModel => HOUR_MS,
            Table::Daily | Table::DailyModel => DAY_MS,
        }
    }

    /// `INSERT INTO <table> (<key>, <counters>) ` — the head of a multi-row upsert.
    pub(crate) fn upsert_head(self) -> &'static str {
        &UPSERTS[self as usize].0
    }

    /// `ON CONFLICT (<key>) DO UPDATE SET x = <table>.x + excluded.x, …`
    pub(crate) fn upsert_tail(self) -> &'static str {
        &UPSERTS[self as usize].1
    }
}

static UPSERTS: std::sync::LazyLock<Vec<(String, String)>> = std::sync::LazyLock::new(|| {
    Table::ALL
        .iter()
        .map(|t| {
            let key = if t.principal() {
                "bucket_start, provider, provider_type, model, user_email, agent"
            } else {
                "bucket_start, provider, provider_type, model"
            };
            let sets: Vec<String> =
                STAT_COLUMNS.iter().map(|c| format!("{c} = {}.{c} + excluded.{c}", t.name())).collect();
            (
                format!("INSERT INTO {} ({key}, {}) ", t.name(), STAT_COLUMNS.join(", ")),
                format!(" ON CONFLICT ({key}) DO UPDATE SET {}", sets.join(", ")),
            )
        })
        .collect()
});

/// The rollup rows a batch of events adds to, per table, summed per key (sorted, so upserts
/// take row locks in one global order and concurrent writers cannot deadlock).
pub(crate) fn rollup(events: &[UsageEvent]) -> Vec<(Table, BTreeMap<RollupKey, RollupStats>)> {
    let mut out: Vec<(Table, BTreeMap<RollupKey, RollupStats>)> =
        Table::ALL.iter().map(|t| (*t, BTreeMap::new())).collect();
    for e in events {
        let stats = RollupStats::of(e);
        for (table, rows) in &mut out {
            let key = RollupKey {
                bucket_start_ms: e.ts_ms - e.ts_ms.rem_euclid(table.width_ms()),
                provider: e.provider.clone(),
                provider_type: e.provider_type.as_str(),
                model: e.model.clone().unwrap_or_default(),
                user: if table.principal() { e.user.clone().unwrap_or_default() } else { String::new() },
                agent: if table.principal() { e.agent.clone().unwrap_or_default() } else { String::new() },
            };
            rows.entry(key).or_default().add(&stats);
        }
    }
    out
}

/// The counter columns of the rollup tables, in [`RollupStats`] order.
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

/// Working memory for a report over the per-user hourly rollup on PostgreSQL (`SET LOCAL`).
const PG_REPORT_WORK_MEM: &str = "SET LOCAL work_mem = '64MB'";

/// Rows per upsert statement: at most 25 columns × 400 stays under both backends' bind limits.
pub(crate) const ROLLUP_ROWS_PER_UPSERT: usize = 400;

/// Pushes one rollup row's values (the key, user and agent only for `principal` tables, then
/// the counters) onto a `push_values` row builder.
macro_rules! push_rollup {
    ($b:expr, $k:expr, $v:expr, $principal:expr) => {{
        let k: &$crate::spending::RollupKey = $k;
        let v: &$crate::spending::RollupStats = $v;
        $b.push_bind(k.bucket_start_ms)
            .push_bind(k.provider.clone())
            .push_bind(k.provider_type)
            .push_bind(k.model.clone());
        if $principal {
            $b.push_bind(k.user.clone()).push_bind(k.agent.clone());
        }
        $b.push_bind(v.requests)
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
        let principal =
            f.user.is_some() || f.agent.is_some() || matches!(group, Some(Dimension::User | Dimension::Agent));
        let (hourly, daily) =
            if principal { (Table::Hourly, Table::Daily) } else { (Table::HourlyModel, Table::DailyModel) };
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
        let principal_filters = if table.principal() {
            " AND ($5 IS NULL OR user_email = $5) AND ($6 IS NULL OR agent = $6)"
        } else {
            " AND $5 IS NULL AND $6 IS NULL"
        };
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
             WHERE bucket_start >= $1 AND bucket_start < $2 AND ($3 IS NULL OR provider = $3) \
             AND ($4 IS NULL OR model = $4){principal_filters} AND ($7 IS NULL OR provider_type = $7){key_filter}{group_by}",
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
