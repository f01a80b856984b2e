//! Retention: a background task that deletes raw usage events older than
//! `--usage-retention-days` (and the conversation rows whose last turn is that old) and
//! transcripts older than `--transcript-retention-days` or beyond `--transcript-max-total-bytes`
//! (oldest first, `transcript::sweep`), in chunks (so no statement holds a long lock), once at
//! start and then hourly. Hourly rollups are never deleted, so spending reports keep their
//! history.

use crate::metrics::Metrics;
use std::sync::Arc;
use std::time::Duration;
use tollgate_store::{DAY_MS, TranscriptStore, UsageStore};

/// Rows per DELETE statement.
const CHUNK: i64 = 10_000;

/// Deletes events older than `days` days before `now_ms`; returns how many went.
pub async fn sweep(usage: &UsageStore, metrics: &Metrics, days: u32, now_ms: i64) -> u64 {
    if days == 0 {
        return 0;
    }
    let cutoff = now_ms - i64::from(days) * DAY_MS;
    if let Err(e) = usage.delete_conversations_before(cutoff, CHUNK).await {
        tracing::warn!(error = %e, "conversation retention sweep failed; will retry");
    }
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

/// What the transcript part of a sweep keeps: days (0: any age) and total bytes as the size cap
/// counts them (`TranscriptStore::total_bytes`; 0: any).
#[derive(Debug, Clone)]
pub struct TranscriptLimits {
    pub store: TranscriptStore,
    /// The config store, for its keyring: batches that straddle a limit are re-sealed.
    pub keys: tollgate_store::Store,
    pub days: u32,
    pub max_total_bytes: u64,
}

/// Sweeps now and every `interval` until shutdown. Does nothing when `days` is 0 and there
/// are no transcript limits.
pub async fn run(
    usage: UsageStore,
    metrics: Arc<Metrics>,
    clock: crate::time::Clock,
    days: u32,
    transcripts: TranscriptLimits,
    interval: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    if days == 0 && transcripts.days == 0 && transcripts.max_total_bytes == 0 {
        return;
    }
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        sweep(&usage, &metrics, days, clock.now_ms()).await;
        crate::transcript::sweep(
            &transcripts.store,
            &transcripts.keys.keyring(),
            &metrics,
            transcripts.days,
            transcripts.max_total_bytes,
            clock.now_ms(),
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering::Relaxed;
    use tollgate_core::{Cost, ProviderType, RequestStatus, Usage};
    use tollgate_store::{SpendingFilter, UsageEvent};

    fn event(id: &str, ts_ms: i64) -> UsageEvent {
        UsageEvent {
            id: id.into(),
            ts_ms,
            provider: "p".into(),
            provider_type: ProviderType::Openai,
            model: Some("m".into()),
            endpoint: "/chat/completions".into(),
            user: None,
            agent: None,
            token_id: None,
            status: RequestStatus::Success,
            http_status: Some(200),
            error_class: None,
            streamed: false,
            latency_ms: 1,
            ttft_ms: None,
            usage: Usage { input: 1, ..Usage::default() },
            cost: Cost { input: 7, total: 7, ..Cost::default() },
            catalog_version: None,
            priced_by_override: false,
            unpriced: false,
            request_id: id.into(),
            conversation_id: None,
            transcript: None,
        }
    }

    #[tokio::test]
    async fn sweep_deletes_old_raw_events_and_keeps_rollups() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let url = format!("sqlite://{}/usage.sqlite?mode=rwc", dir.path().display());
        let usage = UsageStore::connect(&url).await.unwrap_or_else(|e| panic!("{e}"));
        let now = 100 * DAY_MS;
        let events = [event("old", now - 10 * DAY_MS), event("edge", now - 3 * DAY_MS + 1), event("new", now - 1)];
        usage.insert_events(&events).await.unwrap_or_else(|e| panic!("{e}"));
        let metrics = Metrics::default();
        assert_eq!(sweep(&usage, &metrics, 0, now).await, 0, "0 keeps everything");
        assert_eq!(sweep(&usage, &metrics, 3, now).await, 1);
        assert_eq!(usage.count_events().await.unwrap_or(-1), 2);
        assert_eq!(metrics.usage_events_expired.load(Relaxed), 1);
        let all = SpendingFilter { start_ms: 0, end_ms: now + DAY_MS, ..SpendingFilter::default() };
        let rows = usage.spending(&all, None, None).await.unwrap_or_default();
        assert_eq!(rows[0].stats.requests, 3, "rollups keep the deleted event");
        assert_eq!(rows[0].stats.cost.total, 21);
    }
}
