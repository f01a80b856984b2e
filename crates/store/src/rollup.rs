//! The rollup schema, shared by the usage writer (`usage.rs`, which upserts a batch's rollup
//! rows in the batch's transaction) and the spending queries (`spending.rs`, which read them):
//! the key of a row, its counters, the six tables and how a batch of events becomes rows.
//! Depends on the event type only, never on the writer or the queries.

use crate::UsageEvent;
use crate::db::MultiRowInsert;
use hashbrown::HashMap;
use std::collections::BTreeMap;
use std::sync::LazyLock;
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

/// A rollup table. All six hold the same counters; they differ in their key. `Hourly` and
/// `Daily` keep every dimension; the `*_model` ones drop user and agent (far fewer rows); the
/// `*_user` and `*_agent` ones keep only that principal (an hourly report over all users reads
/// one row per hour and user instead of summing every provider and model of each in a sort).
/// The daily ones are keyed by UTC day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Table {
    Hourly,
    HourlyModel,
    HourlyUser,
    HourlyAgent,
    Daily,
    DailyModel,
}

/// Which dimensions a table's rows are keyed by (besides the bucket).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Keys {
    /// Provider, provider type and model.
    pub(crate) model: bool,
    pub(crate) user: bool,
    pub(crate) agent: bool,
}

impl Table {
    pub(crate) const ALL: [Table; 6] =
        [Table::Hourly, Table::HourlyModel, Table::HourlyUser, Table::HourlyAgent, Table::Daily, Table::DailyModel];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Table::Hourly => "usage_rollup_hourly",
            Table::HourlyModel => "usage_rollup_hourly_model",
            Table::HourlyUser => "usage_rollup_hourly_user",
            Table::HourlyAgent => "usage_rollup_hourly_agent",
            Table::Daily => "usage_rollup_daily",
            Table::DailyModel => "usage_rollup_daily_model",
        }
    }

    /// The dimensions rows are keyed by.
    pub(crate) fn keys(self) -> Keys {
        let (model, user, agent) = match self {
            Table::Hourly | Table::Daily => (true, true, true),
            Table::HourlyModel | Table::DailyModel => (true, false, false),
            Table::HourlyUser => (false, true, false),
            Table::HourlyAgent => (false, false, true),
        };
        Keys { model, user, agent }
    }

    /// The key columns, in primary-key order.
    pub(crate) fn key_columns(self) -> Vec<&'static str> {
        let k = self.keys();
        let mut columns = vec!["bucket_start"];
        if k.model {
            columns.extend(["provider", "provider_type", "model"]);
        }
        if k.user {
            columns.push("user_email");
        }
        if k.agent {
            columns.push("agent");
        }
        columns
    }

    pub(crate) fn width_ms(self) -> i64 {
        match self {
            Table::Hourly | Table::HourlyModel | Table::HourlyUser | Table::HourlyAgent => HOUR_MS,
            Table::Daily | Table::DailyModel => DAY_MS,
        }
    }

    /// The table's multi-row upsert (`INSERT … ON CONFLICT (<key>) DO UPDATE SET` each counter
    /// to its sum with `excluded`), in fixed prepared sizes (`db::MultiRowInsert`): a batch's
    /// rows in a table are few and vary, and a statement prepared per batch cost more than its
    /// rows.
    pub(crate) fn upsert(self) -> &'static MultiRowInsert {
        &UPSERTS[self as usize]
    }
}

/// Per table: its key and counter columns, and its `ON CONFLICT` tail.
static UPSERT_TEXTS: LazyLock<Vec<(String, String)>> = LazyLock::new(|| {
    Table::ALL
        .iter()
        .map(|t| {
            let key = t.key_columns().join(", ");
            let sets: Vec<String> =
                STAT_COLUMNS.iter().map(|c| format!("{c} = {}.{c} + excluded.{c}", t.name())).collect();
            (
                format!("{key}, {}", STAT_COLUMNS.join(", ")),
                format!(" ON CONFLICT ({key}) DO UPDATE SET {}", sets.join(", ")),
            )
        })
        .collect()
});

static UPSERTS: LazyLock<Vec<MultiRowInsert>> = LazyLock::new(|| {
    Table::ALL
        .iter()
        .zip(UPSERT_TEXTS.iter())
        .map(|(t, (columns, tail))| {
            MultiRowInsert::new(t.name(), columns, tail, &[ROLLUP_ROWS_PER_UPSERT, 100, 32, 16, 8, 4, 2, 1])
        })
        .collect()
});

/// The rollup rows a batch of events adds to, per table, summed per key (sorted, so upserts
/// take row locks in one global order and concurrent writers cannot deadlock). A dimension a
/// table is not keyed by is `""` in its keys.
///
/// Each event is summed once, into its hourly row with user and agent, under a key borrowed
/// from the event (one hash per event, no allocation); the five coarser tables are then
/// summed from those rows (a batch has far fewer rows than events), and the owned, sorted keys
/// are made once per row at the end. Integer sums: the order of addition changes nothing.
pub(crate) fn rollup(events: &[&UsageEvent]) -> Vec<(Table, BTreeMap<RollupKey, RollupStats>)> {
    type Borrowed<'a> = (i64, &'a str, &'static str, &'a str, &'a str, &'a str);
    // The hourly rows in the order they appear, found by key. Consecutive events mostly share
    // a row (one provider, model and principal), so the previous event's row is tried first:
    // comparing its key (shared names by pointer) costs less than hashing this one's.
    let mut hourly: Vec<(Borrowed<'_>, RollupStats)> = Vec::with_capacity(64);
    let mut index: HashMap<Borrowed<'_>, usize> = HashMap::with_capacity(64);
    let same = |a: &Borrowed<'_>, b: &Borrowed<'_>| {
        let text = |x: &str, y: &str| std::ptr::eq(x, y) || x == y;
        a.0 == b.0 && text(a.1, b.1) && text(a.2, b.2) && text(a.3, b.3) && text(a.4, b.4) && text(a.5, b.5)
    };
    let mut last = usize::MAX;
    for e in events {
        let model = e.model.as_deref().unwrap_or_default();
        let (user, agent) = (e.user.as_deref().unwrap_or_default(), e.agent.as_deref().unwrap_or_default());
        let bucket = e.ts_ms - e.ts_ms.rem_euclid(Table::Hourly.width_ms());
        let key = (bucket, &*e.provider, e.provider_type.as_str(), model, user, agent);
        if hourly.get(last).is_none_or(|(k, _)| !same(k, &key)) {
            last = *index.entry(key).or_insert_with(|| {
                hourly.push((key, RollupStats::default()));
                hourly.len() - 1
            });
        }
        hourly[last].1.add(&RollupStats::of(e));
    }
    Table::ALL
        .iter()
        .map(|table| {
            let mut rows: BTreeMap<RollupKey, RollupStats> = BTreeMap::new();
            let k = table.keys();
            for &((hour, provider, provider_type, model, user, agent), ref stats) in &hourly {
                let (provider, provider_type, model) =
                    if k.model { (provider, provider_type, model) } else { ("", "", "") };
                let key = RollupKey {
                    bucket_start_ms: hour - hour.rem_euclid(table.width_ms()),
                    provider: provider.to_string(),
                    provider_type,
                    model: model.to_string(),
                    user: if k.user { user } else { "" }.to_string(),
                    agent: if k.agent { agent } else { "" }.to_string(),
                };
                rows.entry(key).or_default().add(stats);
            }
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

/// Binds one rollup row's values (the key columns the table has, `Table::key_columns` order,
/// then the counters) to a query: `$q = bind_rollup!($q, key, stats, table.keys())`.
macro_rules! bind_rollup {
    ($q:expr, $k:expr, $v:expr, $keys:expr) => {{
        let k: &$crate::rollup::RollupKey = $k;
        let v: &$crate::rollup::RollupStats = $v;
        let keys: $crate::rollup::Keys = $keys;
        let mut q = $q.bind(k.bucket_start_ms);
        if keys.model {
            q = q.bind(k.provider.clone()).bind(k.provider_type).bind(k.model.clone());
        }
        if keys.user {
            q = q.bind(k.user.clone());
        }
        if keys.agent {
            q = q.bind(k.agent.clone());
        }
        q.bind(v.requests)
            .bind(v.failed_requests)
            .bind(v.unpriced_requests)
            .bind(v.override_requests)
            .bind(v.tokens.input)
            .bind(v.tokens.output)
            .bind(v.tokens.reasoning)
            .bind(v.tokens.cached_input)
            .bind(v.tokens.cache_write_5m)
            .bind(v.tokens.cache_write_1h)
            .bind(v.tokens.cache_write_unknown)
            .bind(v.cost.input)
            .bind(v.cost.output)
            .bind(v.cost.reasoning)
            .bind(v.cost.cached_input)
            .bind(v.cost.cache_write_5m)
            .bind(v.cost.cache_write_1h)
            .bind(v.cost.cache_write_unknown)
            .bind(v.cost.total)
    }};
}
pub(crate) use bind_rollup;

#[cfg(test)]
mod tests {
    use super::*;

    /// Every table holds each event exactly once, under its own bucket width and key: the
    /// coarser tables, summed from the hourly rows, equal a direct sum per event.
    #[test]
    fn coarser_tables_equal_direct_sums() {
        let events: Vec<UsageEvent> = (0..300)
            .map(|i| {
                let mut e = crate::usage::tests::event(i);
                e.ts_ms = i as i64 * 299_000; // ~1 day, 12 events an hour
                // Runs of events under one key (the previous row found again) and keys that
                // come back after others (found by hash).
                e.user = (i % 9 != 0).then(|| format!("u{}", (i / 4) % 3).into());
                e.model = Some(format!("m{}", (i / 8) % 2));
                e.agent = (i % 5 == 0).then(|| "a".into());
                e.status = if i % 7 == 0 { RequestStatus::UpstreamError } else { RequestStatus::Success };
                e.cost.total = i as i64 * 11;
                e
            })
            .collect();
        let got = rollup(&events.iter().collect::<Vec<_>>());
        assert_eq!(got.iter().map(|(t, _)| *t).collect::<Vec<_>>(), Table::ALL.to_vec());
        for (table, rows) in &got {
            let mut want: BTreeMap<RollupKey, RollupStats> = BTreeMap::new();
            for e in &events {
                let k = table.keys();
                let key = RollupKey {
                    bucket_start_ms: e.ts_ms - e.ts_ms.rem_euclid(table.width_ms()),
                    provider: if k.model { e.provider.to_string() } else { String::new() },
                    provider_type: if k.model { e.provider_type.as_str() } else { "" },
                    model: if k.model { e.model.clone().unwrap_or_default() } else { String::new() },
                    user: if k.user { e.user.as_deref().unwrap_or_default().to_string() } else { String::new() },
                    agent: if k.agent { e.agent.as_deref().unwrap_or_default().to_string() } else { String::new() },
                };
                want.entry(key).or_default().add(&RollupStats::of(e));
            }
            assert_eq!(rows, &want, "{table:?}");
            let requests: i64 = rows.values().map(|s| s.requests).sum();
            assert_eq!(requests, 300, "{table:?}: each event once");
        }
    }
}
