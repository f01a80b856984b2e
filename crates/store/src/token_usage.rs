//! Per-token usage: the `token_usage_daily` table (requests, spend and the newest request's time
//! per gateway token and UTC day), written by the usage writer (`usage.rs`, in each batch's
//! transaction, like the rollups) and read (`spending.rs`, `UsageStore::token_usage`) by the tokens page and API ("last used", "7-day
//! spend"). The spending rollups carry no token dimension, and scanning raw events per token
//! would cost a page load in proportion to the traffic; this table costs one upsert row per
//! token and day present in a batch (usually one or a few) and a page load in proportion to
//! tokens × days. Depends on the event type only.

use crate::UsageEvent;
use crate::rollup::DAY_MS;
use std::collections::BTreeMap;

/// What one batch adds to a token's day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TokenDay {
    pub requests: i64,
    pub cost: i64,
    pub last_at: i64,
}

/// A batch's token-day rows, keyed (and so locked, on PostgreSQL) in sorted order; events
/// without a token (none reach the proxy without one today) are left out.
pub(crate) fn token_days<'e>(events: &[&'e UsageEvent]) -> BTreeMap<(&'e str, i64), TokenDay> {
    let mut out: BTreeMap<(&str, i64), TokenDay> = BTreeMap::new();
    // Consecutive events mostly share a token (the same shared text: compared by pointer) and
    // a day: they are summed here and entered in the map when the key changes.
    let mut run: Option<((&str, i64), TokenDay)> = None;
    for e in events {
        let Some(token) = e.token_id.as_deref() else { continue };
        let key = (token, e.ts_ms - e.ts_ms.rem_euclid(DAY_MS));
        let d = match &mut run {
            Some((k, d)) if k.1 == key.1 && (std::ptr::eq(k.0, key.0) || k.0 == key.0) => d,
            _ => {
                if let Some((k, d)) = run.take() {
                    add(out.entry(k).or_default(), d);
                }
                &mut run.insert((key, TokenDay::default())).1
            }
        };
        d.requests += 1;
        d.cost += e.cost.total;
        d.last_at = d.last_at.max(e.ts_ms);
    }
    if let Some((k, d)) = run {
        add(out.entry(k).or_default(), d);
    }
    out
}

fn add(into: &mut TokenDay, d: TokenDay) {
    into.requests += d.requests;
    into.cost += d.cost;
    into.last_at = into.last_at.max(d.last_at);
}

/// Same text on both backends (`CASE` instead of `GREATEST`/`MAX`).
const TOKEN_DAY_UPSERT_TAIL: &str = " ON CONFLICT (token_id, day_start) DO UPDATE SET \
     requests = token_usage_daily.requests + excluded.requests, \
     cost_total = token_usage_daily.cost_total + excluded.cost_total, \
     last_at = CASE WHEN excluded.last_at > token_usage_daily.last_at THEN excluded.last_at \
               ELSE token_usage_daily.last_at END";

/// The token-day upserts, in fixed prepared sizes (`db::MultiRowInsert`).
pub(crate) static TOKEN_DAY_UPSERT: crate::db::MultiRowInsert = crate::db::MultiRowInsert::new(
    "token_usage_daily",
    "token_id, day_start, requests, cost_total, last_at",
    TOKEN_DAY_UPSERT_TAIL,
    &crate::db::SMALL_BATCH_SIZES,
);

/// One token's usage as the tokens page shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenUsage {
    /// The newest request's time, epoch ms; `None` when the token was never used.
    pub last_used_ms: Option<i64>,
    /// Requests and spend over the days starting at or after the `since` of the query.
    pub recent_requests: i64,
    pub recent_cost: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_sums_per_token_and_utc_day() {
        let mut a = crate::usage::tests::event(1);
        a.token_id = Some("t1".into());
        a.ts_ms = 5 * DAY_MS + 10;
        a.cost.total = 300;
        let mut b = a.clone();
        b.ts_ms = 5 * DAY_MS + 20;
        b.cost.total = 5;
        let mut c = a.clone();
        c.ts_ms = 6 * DAY_MS;
        let mut none = a.clone();
        none.token_id = None;
        // Back to the first token and day after others: added to the same row.
        let mut again = b.clone();
        again.ts_ms = 5 * DAY_MS + 15;
        again.cost.total = 7;
        let batch = [a, b, c, none, again];
        let days = token_days(&batch.iter().collect::<Vec<_>>());
        assert_eq!(days.len(), 2);
        assert_eq!(days[&("t1", 5 * DAY_MS)], TokenDay { requests: 3, cost: 312, last_at: 5 * DAY_MS + 20 });
        assert_eq!(days[&("t1", 6 * DAY_MS)], TokenDay { requests: 1, cost: 300, last_at: 6 * DAY_MS });
    }
}
