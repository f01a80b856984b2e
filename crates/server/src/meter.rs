//! Metering off the request path: proxied requests hand their finished [`UsageEvent`] to a
//! bounded in-memory queue with `try_send` (never awaiting), and one writer task commits
//! them to the usage store in batches (N events or T ms, whichever first).
//!
//! The writer prices each event just before it is stored (never on the request path), with the
//! catalog current at that moment and the provider's price overrides captured when the request
//! arrived (an `Arc` of its snapshot entry, so capturing them costs a reference count).
//!
//! When the queue is full the event is dropped, counted in [`Metrics`] and logged at most once
//! a minute: the proxy never slows down because the database is slow. On shutdown the writer
//! drains everything still queued before the process exits. A failed batch is retried a few
//! times, then dropped and counted, so a database outage cannot grow memory without bound.

use crate::catalog::CatalogHandle;
use crate::metrics::Metrics;
use crate::snapshot::ProviderEntry;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, oneshot};
use tollgate_core::pricing::{PriceInput, price};
use tollgate_store::{UsageEvent, UsageStore};

/// A finished event on its way to the writer, with the provider as it was configured when the
/// request arrived (for its price overrides).
#[derive(Debug)]
pub struct Metered {
    pub event: UsageEvent,
    pub provider: Option<Arc<ProviderEntry>>,
    /// The model the response named, for types that price by it
    /// (`ProviderDescriptor::model_from_response`).
    pub response_model: Option<String>,
}

/// The sending half, held by the app state; cheap to clone.
#[derive(Debug, Clone)]
pub struct Meter {
    tx: mpsc::Sender<Metered>,
    metrics: Arc<Metrics>,
    last_drop_log_ms: Arc<AtomicI64>,
    inflight: Arc<Inflight>,
    flush_tx: mpsc::UnboundedSender<oneshot::Sender<()>>,
}

/// Requests forwarded whose usage event is not emitted yet (see [`Meter::flush`]).
#[derive(Debug, Default)]
struct Inflight {
    n: AtomicUsize,
    idle: Notify,
}

/// The receiving half, run by [`UsageWriter::run`].
#[derive(Debug)]
pub struct UsageWriter {
    rx: mpsc::Receiver<Metered>,
    flush_rx: mpsc::UnboundedReceiver<oneshot::Sender<()>>,
    store: UsageStore,
    catalog: Arc<CatalogHandle>,
    metrics: Arc<Metrics>,
    batch_size: usize,
    flush_interval: Duration,
}

/// Builds a connected meter/writer pair.
pub fn channel(
    store: UsageStore,
    catalog: Arc<CatalogHandle>,
    metrics: Arc<Metrics>,
    capacity: usize,
    batch_size: usize,
    flush_interval: Duration,
) -> (Meter, UsageWriter) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let (flush_tx, flush_rx) = mpsc::unbounded_channel();
    let meter = Meter {
        tx,
        metrics: metrics.clone(),
        last_drop_log_ms: Arc::new(AtomicI64::new(i64::MIN)),
        inflight: Arc::default(),
        flush_tx,
    };
    let writer = UsageWriter { rx, flush_rx, store, catalog, metrics, batch_size: batch_size.max(1), flush_interval };
    (meter, writer)
}

impl Meter {
    /// A forwarded request whose event will follow ([`end`](Self::end) is called once when it
    /// is emitted, or when the request ends without one).
    pub(crate) fn begin(&self) {
        self.inflight.n.fetch_add(1, Ordering::AcqRel);
    }

    /// The event of a request counted by [`begin`](Self::begin) has been queued (or was not
    /// recorded).
    pub(crate) fn end(&self) {
        if self.inflight.n.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.inflight.idle.notify_waiters();
        }
    }

    /// Waits until every request forwarded so far has emitted its usage event and the writer has
    /// committed (or dropped and counted) every event queued before that: after it returns,
    /// the store holds every event of the requests that came before. For tests and shutdown
    /// checks; the request path never calls it.
    pub async fn flush(&self) {
        loop {
            let idle = self.inflight.idle.notified();
            if self.inflight.n.load(Ordering::Acquire) == 0 {
                break;
            }
            idle.await;
        }
        let (ack, done) = oneshot::channel();
        if self.flush_tx.send(ack).is_ok() {
            let _ = done.await;
        }
    }

    /// Queues one event without waiting. Never blocks the caller. `provider` is the snapshot
    /// entry the request was served with: its `custom_pricing` overrides the catalog.
    pub fn record(&self, event: UsageEvent, provider: Option<Arc<ProviderEntry>>) {
        self.record_metered(Metered { event, provider, response_model: None });
    }

    /// Queues an event with everything the writer needs to price it.
    pub fn record_metered(&self, metered: Metered) {
        match self.tx.try_send(metered) {
            Ok(()) => Metrics::inc(&self.metrics.usage_events_queued),
            Err(e) => {
                Metrics::inc(&self.metrics.usage_events_dropped);
                let now = crate::time::system_now_ms();
                let last = self.last_drop_log_ms.load(Ordering::Relaxed);
                if now.saturating_sub(last) >= 60_000
                    && self.last_drop_log_ms.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
                {
                    let why = match e {
                        mpsc::error::TrySendError::Full(_) => "the usage queue is full",
                        mpsc::error::TrySendError::Closed(_) => "the usage writer has stopped",
                    };
                    tracing::warn!(
                        dropped_total = self.metrics.usage_events_dropped.load(Ordering::Relaxed),
                        "dropping usage events: {why}"
                    );
                }
            }
        }
    }
}

const MAX_ATTEMPTS: u32 = 3;

impl UsageWriter {
    /// Commits batches until `shutdown` flips, then drains the queue and returns.
    pub async fn run(mut self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut batch: Vec<Metered> = Vec::with_capacity(self.batch_size);
        let mut tick = tokio::time::interval(self.flush_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                n = self.rx.recv_many(&mut batch, self.batch_size) => {
                    if n == 0 {
                        break;
                    }
                    if batch.len() >= self.batch_size {
                        self.flush(&mut batch).await;
                    }
                }
                _ = tick.tick() => self.flush(&mut batch).await,
                Some(ack) = self.flush_rx.recv() => {
                    // Everything queued before the flush request, committed before the answer.
                    while let Ok(m) = self.rx.try_recv() {
                        batch.push(m);
                        if batch.len() >= self.batch_size {
                            self.flush(&mut batch).await;
                        }
                    }
                    self.flush(&mut batch).await;
                    let _ = ack.send(());
                }
                _ = shutdown.changed() => break,
            }
        }
        // Drain: no new events can be queued once the receiver is closed.
        self.rx.close();
        while self.rx.recv_many(&mut batch, self.batch_size).await > 0 {
            self.flush(&mut batch).await;
        }
        self.flush(&mut batch).await;
        tracing::debug!("usage writer drained");
    }

    /// Fills in cost, catalog version and the override / unpriced flags.
    ///
    /// For a type whose descriptor says `model_from_response` (Azure OpenAI: clients call a
    /// deployment name), the model the response named replaces the called one when the
    /// catalog knows it; otherwise the called name stays. Price overrides are the provider's
    /// for the model as called (its allow-list names), else for the model that priced it.
    fn price(&self, catalog: &tollgate_core::Catalog, m: Metered) -> UsageEvent {
        let mut event = m.event;
        let called = event.model.clone();
        if let Some(reported) = m.response_model.filter(|_| event.provider_type.descriptor().model_from_response)
            && tollgate_core::pricing::lookup(catalog, event.provider_type, &reported).0.is_some()
        {
            event.model = Some(reported);
        }
        let find = |model: &Option<String>| match (&m.provider, model) {
            (Some(p), Some(model)) => {
                p.spec.provider_models.iter().find(|pm| &pm.name == model).and_then(|pm| pm.custom_pricing.as_ref())
            }
            _ => None,
        };
        let overrides = find(&called).or_else(|| find(&event.model));
        let priced = price(
            &PriceInput {
                provider_type: event.provider_type,
                model: event.model.as_deref(),
                usage: &event.usage,
                overrides,
            },
            catalog,
        );
        if priced.unpriced {
            Metrics::inc(&self.metrics.usage_events_unpriced);
        }
        event.cost = priced.cost;
        event.unpriced = priced.unpriced;
        event.priced_by_override = priced.override_applied;
        event.catalog_version = Some(catalog.version().to_string());
        event
    }

    async fn flush(&self, pending: &mut Vec<Metered>) {
        if pending.is_empty() {
            return;
        }
        let catalog = self.catalog.current();
        let batch: Vec<UsageEvent> = pending.drain(..).map(|m| self.price(&catalog, m)).collect();
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.store.insert_events(&batch).await {
                Ok(()) => {
                    Metrics::add(&self.metrics.usage_events_written, batch.len() as u64);
                    break;
                }
                Err(e) if attempt < MAX_ATTEMPTS => {
                    tracing::warn!(error = %e, attempt, events = batch.len(), "usage batch write failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
                }
                Err(e) => {
                    Metrics::add(&self.metrics.usage_events_dropped, batch.len() as u64);
                    tracing::error!(error = %e, events = batch.len(), "usage batch write failed; events dropped");
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering::Relaxed;
    use tollgate_core::{Cost, ProviderType, RequestStatus, Usage};

    fn event(i: usize) -> UsageEvent {
        UsageEvent {
            id: format!("e{i}"),
            ts_ms: i as i64,
            provider: "p".into(),
            provider_type: ProviderType::Openai,
            model: None,
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
            usage: Usage { input: i as i64, ..Usage::default() },
            cost: Cost::default(),
            catalog_version: None,
            priced_by_override: false,
            unpriced: false,
            request_id: format!("r{i}"),
            conversation_id: None,
        }
    }

    fn catalog() -> Arc<CatalogHandle> {
        Arc::new(CatalogHandle::load(None, Arc::new(Metrics::default())).unwrap_or_else(|e| panic!("{e}")))
    }

    async fn store(dir: &std::path::Path) -> UsageStore {
        match UsageStore::connect(&format!("sqlite://{}/usage.sqlite?mode=rwc", dir.display())).await {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    }

    #[tokio::test]
    async fn full_queue_drops_and_counts_without_waiting() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let metrics = Arc::new(Metrics::default());
        let (meter, _writer) =
            channel(store(dir.path()).await, catalog(), metrics.clone(), 2, 10, Duration::from_secs(3600));
        for i in 0..5 {
            meter.record(event(i), None); // no writer is running: the queue fills after 2
        }
        assert_eq!(metrics.usage_events_queued.load(Relaxed), 2);
        assert_eq!(metrics.usage_events_dropped.load(Relaxed), 3);
    }

    #[tokio::test]
    async fn shutdown_drains_everything_queued() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let usage = store(dir.path()).await;
        let metrics = Arc::new(Metrics::default());
        // Batches of 7 and an hour between timed flushes: only size and the drain flush.
        let (meter, writer) = channel(usage.clone(), catalog(), metrics.clone(), 100, 7, Duration::from_secs(3600));
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(writer.run(stop_rx));
        for i in 0..30 {
            meter.record(event(i), None);
        }
        let _ = stop_tx.send(true);
        task.await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(usage.count_events().await.unwrap_or(-1), 30);
        assert_eq!(metrics.usage_events_written.load(Relaxed), 30);
        // After the writer stopped, recording is refused without blocking and counted.
        meter.record(event(99), None);
        assert_eq!(metrics.usage_events_dropped.load(Relaxed), 1);
    }

    #[tokio::test]
    async fn flush_waits_for_open_requests_and_commits_what_was_queued() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let usage = store(dir.path()).await;
        let metrics = Arc::new(Metrics::default());
        // An hour between timed flushes and batches larger than the test: only `flush` writes.
        let (meter, writer) = channel(usage.clone(), catalog(), metrics.clone(), 100, 50, Duration::from_secs(3600));
        let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let _task = tokio::spawn(writer.run(stop_rx));
        for i in 0..3 {
            meter.record(event(i), None);
        }
        meter.flush().await;
        assert_eq!(usage.count_events().await.unwrap_or(-1), 3, "flush commits everything queued before it");

        // A request still open holds the flush until its event is queued.
        meter.begin();
        let waiting = tokio::spawn({
            let meter = meter.clone();
            async move { meter.flush().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "flush returned while a request was still open");
        meter.record(event(3), None);
        meter.end();
        waiting.await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(usage.count_events().await.unwrap_or(-1), 4);
    }

    #[tokio::test]
    async fn the_writer_prices_with_the_current_catalog_and_captured_overrides() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let usage = store(dir.path()).await;
        let metrics = Arc::new(Metrics::default());
        let (meter, writer) = channel(usage.clone(), catalog(), metrics.clone(), 100, 100, Duration::from_secs(3600));
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(writer.run(stop_rx));
        let spec: tollgate_core::ProviderSpec = serde_json::from_value(serde_json::json!({
            "name": "p", "display_name": "P", "type": "openai", "openai_config": {"api_key_ref": "K"},
            "provider_models": [{"name": "gpt-5.4", "custom_pricing": {"output_per_million": 0}}]
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let entry = Arc::new(ProviderEntry { spec, created_at_ms: 0, updated_at_ms: 0 });
        let mut a = event(1);
        a.model = Some("gpt-5.4".into());
        a.usage = Usage { input: 1000, output: 1000, ..Usage::default() };
        meter.record(a.clone(), None);
        a.id = "e2".into();
        meter.record(a.clone(), Some(entry));
        a.id = "e3".into();
        a.model = Some("gpt-unknown".into());
        meter.record(a, None);
        let _ = stop_tx.send(true);
        task.await.unwrap_or_else(|e| panic!("{e}"));
        let events = usage.list_events(&tollgate_store::UsageQuery::default()).await.unwrap_or_default();
        let by_id = |id: &str| events.iter().find(|e| e.id == id).cloned().unwrap_or_else(|| panic!("{id}"));
        let (e1, e2, e3) = (by_id("e1"), by_id("e2"), by_id("e3"));
        // gpt-5.4: $2.50 in, $15 out per 1M → 1000 × 2.5e8 / 1e6 = 250,000; 1000 × 1.5e9 / 1e6 = 1,500,000
        assert_eq!((e1.cost.input, e1.cost.output, e1.cost.total), (250_000, 1_500_000, 1_750_000));
        assert!(!e1.priced_by_override && !e1.unpriced);
        assert_eq!(e1.catalog_version.as_deref(), Some("2026-11-24.1"));
        // the override makes output free
        assert_eq!((e2.cost.output, e2.cost.total), (0, 250_000));
        assert!(e2.priced_by_override);
        assert!(e3.unpriced && e3.cost.total == 0);
        assert_eq!(metrics.usage_events_unpriced.load(Relaxed), 1);
    }
}
