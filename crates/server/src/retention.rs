//! Raw usage-event retention: a background task that deletes events older than
//! `--usage-retention-days` in chunks (so no statement holds a long lock), once at start and
//! then hourly. Hourly rollups are never deleted, so spending reports keep their history.

use crate::metrics::Metrics;
use std::sync::Arc;
use std::time::Duration;
use tollgate_store::UsageStore;

/// Rows per DELETE statement.
const CHUNK: i64 = 10_000;
const DAY_MS: i64 = 86_400_000;

/// Deletes events older than `days` days before `now_ms`; returns how many went.
pub async fn sweep(usage: &UsageStore, metrics: &Metrics, days: u32, now_ms: i64) -> u64 {
    if days == 0 {
        return 0;
    }
    let cutoff = now_ms - i64::from(days) * DAY_MS;
    match usage.delete_events_before(cutoff, CHUNK).await {
        Ok(n) => {
            if n > 0 {
                Metrics::add(&metrics.usage_events_expired, n);
                tracing::info!(deleted = n, days, "usage retention: deleted raw events (rollups kept)");
            }
            n
        }
        Err(e) => {
            tracing::warn!(error = %e, "usage retention sweep failed; will retry");
            0
        }
    }
}

/// Sweeps now and every `interval` until shutdown. Does nothing when `days` is 0.
pub async fn run(
    usage: UsageStore,
    metrics: Arc<Metrics>,
    days: u32,
    interval: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    if days == 0 {
        return;
    }
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        sweep(&usage, &metrics, days, crate::time::now_ms()).await;
    }
}
