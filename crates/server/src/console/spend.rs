//! Spending for console pages, read from the hourly rollups through the store's one spending
//! query ([`tollgate_store::UsageStore::spending`]); nothing here scans raw events.
//!
//! The console's filters may hold several values per dimension (chips combine): the store
//! filter takes one value per dimension, so a filter with several values runs one store query
//! per combination and adds the rows up (each rollup row has exactly one value per dimension,
//! so the combinations are disjoint and the sum is exact). Token-type and cost-type filters keep
//! only the chosen buckets of every row.

use super::{Console, ConsoleError};
use std::collections::HashMap;
use tollgate_core::{Bucket, Cost, Usage};
use tollgate_store::{DAY_MS, Dimension, HOUR_MS, RollupStats, SpendingFilter, SpendingRow};

/// Most store queries one console filter may expand to.
pub const MAX_COMBINATIONS: usize = 64;

/// What to read: a window on hour boundaries, value lists per dimension (empty = any), and the
/// buckets to keep (`None` = all).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pub start_ms: i64,
    pub end_ms: i64,
    pub providers: Vec<String>,
    pub models: Vec<String>,
    pub users: Vec<String>,
    pub agents: Vec<String>,
    pub buckets: Option<Vec<Bucket>>,
}

impl Query {
    /// Every single-valued store filter this query stands for.
    pub fn filters(&self) -> Result<Vec<SpendingFilter>, ConsoleError> {
        let dim = |v: &Vec<String>| -> Vec<Option<String>> {
            if v.is_empty() { vec![None] } else { v.iter().cloned().map(Some).collect() }
        };
        let (p, m, u, a) = (dim(&self.providers), dim(&self.models), dim(&self.users), dim(&self.agents));
        let n = p.len() * m.len() * u.len() * a.len();
        if n > MAX_COMBINATIONS {
            return Err(ConsoleError::BadRequest(format!(
                "these filters combine into {n} queries (at most {MAX_COMBINATIONS}); remove some chips"
            )));
        }
        let mut out = Vec::with_capacity(n);
        for provider in &p {
            for model in &m {
                for user in &u {
                    for agent in &a {
                        out.push(SpendingFilter {
                            start_ms: self.start_ms,
                            end_ms: self.end_ms,
                            provider: provider.clone(),
                            model: model.clone(),
                            user: user.clone(),
                            agent: agent.clone(),
                            provider_type: None,
                        });
                    }
                }
            }
        }
        Ok(out)
    }
}

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
    cost.total = Bucket::ALL.iter().map(|b| cost.get(*b)).sum();
    RollupStats { tokens, cost, ..*r }
}

/// Rollup rows for `q`, grouped by `group` and bucketed by `bucket_ms` (see the store's
/// `spending`), bucket filters applied.
pub async fn rows(
    console: &Console,
    q: &Query,
    group: Option<Dimension>,
    bucket_ms: Option<i64>,
) -> Result<Vec<SpendingRow>, ConsoleError> {
    let mut out = Vec::new();
    for f in q.filters()? {
        out.extend(console.state.usage().spending(&f, group, bucket_ms).await.map_err(crate::ApiError::from)?);
    }
    if let Some(keep) = &q.buckets {
        for r in &mut out {
            r.stats = keep_buckets(&r.stats, keep);
        }
    }
    Ok(out)
}

/// The start of the UTC day holding `ms`.
pub fn day_start(ms: i64) -> i64 {
    ms - ms.rem_euclid(DAY_MS)
}

/// The last 7 UTC days, today included: `[today − 6 days, tomorrow)`.
pub fn last_7_days(now_ms: i64) -> (i64, i64) {
    let today = day_start(now_ms);
    (today - 6 * DAY_MS, today + DAY_MS)
}

/// Per-day counters over a window of whole days, zero-filled, from day-bucketed rows.
pub fn daily(rows: &[SpendingRow], start_ms: i64, days: usize) -> Vec<RollupStats> {
    let mut out = vec![RollupStats::default(); days];
    for r in rows {
        let i = (r.bucket_start_ms - start_ms).div_euclid(DAY_MS);
        if let Some(slot) = usize::try_from(i).ok().and_then(|i| out.get_mut(i)) {
            slot.add(&r.stats);
        }
    }
    out
}

/// 7-day spend of each named provider: the total and the seven daily amounts (one query).
pub async fn last_7_days_by_provider(
    console: &Console,
    names: &[String],
) -> Result<HashMap<String, (i64, Vec<i64>)>, ConsoleError> {
    if names.is_empty() {
        return Ok(HashMap::new());
    }
    let (start_ms, end_ms) = last_7_days(console.state.now_ms());
    let q = Query { start_ms, end_ms, ..Query::default() };
    let rows = rows(console, &q, Some(Dimension::Provider), Some(DAY_MS)).await?;
    let mut out: HashMap<String, (i64, Vec<i64>)> = names.iter().map(|n| (n.clone(), (0, vec![0; 7]))).collect();
    for r in rows {
        if let Some((total, days)) = out.get_mut(&r.key) {
            let i = (r.bucket_start_ms - start_ms).div_euclid(DAY_MS);
            if let Some(slot) = usize::try_from(i).ok().and_then(|i| days.get_mut(i)) {
                *slot += r.stats.cost.total;
                *total += r.stats.cost.total;
            }
        }
    }
    Ok(out)
}

/// Hour boundaries at or around `ms`.
pub fn floor_hour(ms: i64) -> i64 {
    ms - ms.rem_euclid(HOUR_MS)
}

pub fn ceil_hour(ms: i64) -> i64 {
    match ms.rem_euclid(HOUR_MS) {
        0 => ms,
        r => ms - r + HOUR_MS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }

    #[test]
    fn several_values_expand_into_disjoint_single_filters() {
        let q = Query {
            start_ms: 0,
            end_ms: HOUR_MS,
            providers: vec!["a".into(), "b".into()],
            models: vec!["m1".into(), "m2".into(), "m3".into()],
            ..Query::default()
        };
        let f = q.filters().unwrap_or_default();
        assert_eq!(f.len(), 6);
        assert!(f.iter().all(|f| f.user.is_none() && f.agent.is_none() && f.end_ms == HOUR_MS));
        assert_eq!(f[0].provider.as_deref(), Some("a"));
        assert_eq!(f[5].model.as_deref(), Some("m3"));
        let none = Query::default().filters().unwrap_or_default();
        assert_eq!(none.len(), 1);
        let many = Query { users: (0..65).map(|i| i.to_string()).collect(), ..Query::default() };
        assert!(many.filters().is_err());
    }

    #[test]
    fn days_and_hours() {
        let nov24 = 1_795_478_400_000;
        assert_eq!(last_7_days(nov24 + 5 * HOUR_MS), (nov24 - 6 * DAY_MS, nov24 + DAY_MS));
        assert_eq!(floor_hour(nov24 + 90 * 60_000), nov24 + HOUR_MS);
        assert_eq!(ceil_hour(nov24 + 1), nov24 + HOUR_MS);
        assert_eq!(ceil_hour(nov24), nov24);
        let rows = vec![
            SpendingRow { bucket_start_ms: nov24 - DAY_MS, key: String::new(), stats: stats(1, 0) },
            SpendingRow { bucket_start_ms: nov24 + DAY_MS, key: String::new(), stats: stats(5, 0) },
        ];
        let d = daily(&rows, nov24 - 2 * DAY_MS, 3);
        assert_eq!(d.iter().map(|s| s.cost.total).collect::<Vec<_>>(), vec![0, 1, 0]);
    }
}
