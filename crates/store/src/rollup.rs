//! The rollup schema, shared by the usage writer (`usage.rs`, which upserts a batch's rollup
//! rows in the batch's transaction) and the spending queries (`spending.rs`, which read them):
//! the key of a row, its counters, the four tables and how a batch of events becomes rows.
//! Depends on the event type only, never on the writer or the queries.

use crate::UsageEvent;
use std::collections::{BTreeMap, HashMap};
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

    pub(crate) fn name(self) -> &'static str {
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

    pub(crate) fn width_ms(self) -> i64 {
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
///
/// Summed under keys borrowed from the events (no allocation per event: a batch has far fewer
/// rows than events); the owned, sorted keys are made once per row at the end.
pub(crate) fn rollup(events: &[UsageEvent]) -> Vec<(Table, BTreeMap<RollupKey, RollupStats>)> {
    type Borrowed<'a> = (i64, &'a str, &'static str, &'a str, &'a str, &'a str);
    let mut sums: [HashMap<Borrowed<'_>, RollupStats>; 4] = Default::default();
    for e in events {
        let stats = RollupStats::of(e);
        let model = e.model.as_deref().unwrap_or_default();
        for (table, rows) in Table::ALL.iter().zip(sums.iter_mut()) {
            let (user, agent) = if table.principal() {
                (e.user.as_deref().unwrap_or_default(), e.agent.as_deref().unwrap_or_default())
            } else {
                ("", "")
            };
            let bucket = e.ts_ms - e.ts_ms.rem_euclid(table.width_ms());
            rows.entry((bucket, &e.provider, e.provider_type.as_str(), model, user, agent)).or_default().add(&stats);
        }
    }
    Table::ALL
        .iter()
        .zip(sums)
        .map(|(table, rows)| {
            let rows = rows
                .into_iter()
                .map(|((bucket_start_ms, provider, provider_type, model, user, agent), stats)| {
                    let key = RollupKey {
                        bucket_start_ms,
                        provider: provider.to_string(),
                        provider_type,
                        model: model.to_string(),
                        user: user.to_string(),
                        agent: agent.to_string(),
                    };
                    (key, stats)
                })
                .collect();
            (*table, rows)
        })
        .collect()
}

/// The counter columns of the rollup tables, in [`RollupStats`] order.
pub(crate) const STAT_COLUMNS: [&str; 19] = [
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

/// Rows per upsert statement: at most 25 columns × 400 stays under both backends' bind limits.
pub(crate) const ROLLUP_ROWS_PER_UPSERT: usize = 400;

/// Pushes one rollup row's values (the key, user and agent only for `principal` tables, then
/// the counters) onto a `push_values` row builder.
macro_rules! push_rollup {
    ($b:expr, $k:expr, $v:expr, $principal:expr) => {{
        let k: &$crate::rollup::RollupKey = $k;
        let v: &$crate::rollup::RollupStats = $v;
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
pub(crate) use push_rollup;
