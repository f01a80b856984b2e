//! Spending for console pages, through the reporting engine ([`crate::report`], shared with the
//! admin spending API): the 7-day figures of the providers list and detail pages. Nothing here
//! scans raw events.

use super::{Console, ConsoleError};
use crate::report::{self, ReportError};
pub use crate::report::{Query, ceil_hour, day_start, floor_hour};
use std::collections::HashMap;
use tollgate_store::{DAY_MS, Dimension, RollupStats, SpendingRow};

impl From<ReportError> for ConsoleError {
    fn from(e: ReportError) -> ConsoleError {
        match e {
            ReportError::Invalid { message, .. } => ConsoleError::BadRequest(message),
            ReportError::Forbidden(m) => ConsoleError::Forbidden(m),
            ReportError::Store(e) => ConsoleError::Api(crate::ApiError::from(e)),
        }
    }
}

/// Rollup rows for `q`, grouped by `group` and bucketed by `bucket_ms`, bucket filters applied
/// (see [`report::rows`]).
pub async fn rows(
    console: &Console,
    q: &Query,
    group: Option<Dimension>,
    bucket_ms: Option<i64>,
) -> Result<Vec<SpendingRow>, ConsoleError> {
    Ok(report::rows(&console.state, q, group, bucket_ms).await?)
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

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_core::{Cost, Usage};
    use tollgate_store::HOUR_MS;

    fn stats(cost_in: i64, cost_out: i64) -> RollupStats {
        RollupStats {
            requests: 2,
            tokens: Usage { input: 10, output: 20, ..Usage::default() },
            cost: Cost { input: cost_in, output: cost_out, total: cost_in + cost_out, ..Cost::default() },
            ..RollupStats::default()
        }
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
