//! Metering off the request path: proxied requests hand their finished [`UsageEvent`] to a
//! bounded in-memory queue with `try_send` (never awaiting), and one writer task commits
//! them to the usage store in batches (N events or T ms, whichever first).
//!
//! The writer prices each event as it takes it from the queue (never on the request path), with
//! the catalog current at that moment and the provider's price overrides captured when the
//! request arrived (an `Arc` of its snapshot entry, so capturing them costs a reference count),
//! and gathers the priced events until a batch is full or the interval ends.
//!
//! When the queue is full the event is dropped, counted in [`Metrics`] and logged at most once
//! a minute: the proxy never slows down because the database is slow.
//!
//! Faults (ARCHITECTURE.md, Invariants: usage under faults): a batch whose commit fails is
//! rolled back (the store discards the connection) and is never counted as written. It goes to
//! the **spill file** (`<data-dir>/usage-spill.jsonl`, at most `--usage-spill-max-bytes`), or,
//! when that is full or cannot be written, is held in memory (at most the queue capacity);
//! only beyond that are events dropped, counted and logged. While anything is spilled or held
//! the store is marked down (`/readyz` answers 503) and the writer retries with backoff (at
//! once on [`Meter::flush`] and on shutdown): it replays the spill and the held events oldest
//! first, then writes new batches again. A spill left by a killed process is replayed on the
//! next start; ids already stored are skipped, so a replayed batch is never counted twice.
//! Counters always add up: `queued = written + dropped + pending`.

use crate::catalog::CatalogHandle;
use crate::metrics::Metrics;
use crate::snapshot::ProviderEntry;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt as _, AsyncSeekExt as _, AsyncWriteExt as _};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;
use tollgate_store::{UsageEvent, UsageStore};

/// File in the data dir that holds usage events the store could not take yet.
pub const SPILL_FILE: &str = "usage-spill.jsonl";

/// A finished event on its way to the writer, with the provider as it was configured when the
/// request arrived (for its price overrides).
#[derive(Debug)]
pub struct Metered {
    pub event: UsageEvent,
    pub provider: Option<Arc<ProviderEntry>>,
    /// The model the response named, for types that price by it
    /// (`ProviderDescriptor::model_from_response`).
    pub response_model: Option<String>,
    /// The bodies captured for the provider's transcript, if it records any (already counted
    /// in the pending-bytes gauge, see `transcript::admit`).
    pub transcript: Option<Box<crate::transcript::Captured>>,
    /// The request's span and measured durations: finished by the writer after pricing
    /// (`telemetry::observe`).
    pub observed: crate::telemetry::Observed,
}

/// The writer stores its batch from the boxes the requests filled in (`UsageStore::insert_events`
/// borrows each event where it is).
impl std::borrow::Borrow<UsageEvent> for Box<Metered> {
    fn borrow(&self) -> &UsageEvent {
        &self.event
    }
}

/// The sending half, held by the app state; cheap to clone.
#[derive(Debug, Clone)]
pub struct Meter {
    tx: mpsc::Sender<Box<Metered>>,
    metrics: Arc<Metrics>,
    last_drop_log_ms: Arc<AtomicI64>,
    inflight: Arc<Inflight>,
    flush_tx: mpsc::UnboundedSender<oneshot::Sender<()>>,
    /// Set when shutdown cuts the requests still open: their events get error class
    /// [`SHUTDOWN_CUT`] instead of the client's cancellation.
    cutting: Arc<AtomicBool>,
}

/// Error class of a request cut because the shutdown grace ran out.
pub const SHUTDOWN_CUT: &str = "shutdown";

/// Requests forwarded whose usage event is not emitted yet (see [`Meter::flush`]).
#[derive(Debug, Default)]
struct Inflight {
    n: AtomicUsize,
    idle: Notify,
}

/// Where the writer spills events the store cannot take (`None` in [`channel`]: no spill,
/// events are held in memory up to the queue capacity, then dropped).
#[derive(Debug, Clone)]
pub struct SpillConfig {
    pub path: PathBuf,
    /// The file never grows beyond this many bytes; 0 turns spilling off.
    pub max_bytes: u64,
}

/// The receiving half, run by [`UsageWriter::run`].
#[derive(Debug)]
pub struct UsageWriter {
    rx: mpsc::Receiver<Box<Metered>>,
    flush_rx: mpsc::UnboundedReceiver<oneshot::Sender<()>>,
    store: UsageStore,
    catalog: Arc<CatalogHandle>,
    metrics: Arc<Metrics>,
    batch_size: usize,
    flush_interval: Duration,
    spill: Option<Spill>,
    /// Priced events neither stored nor spilled, oldest first (at most `held_cap`).
    held: Vec<UsageEvent>,
    held_cap: usize,
    /// While the store is failing: when to try again, and the next wait.
    retry_at: Option<Instant>,
    backoff: Duration,
    /// Where captured transcripts go (none: they are dropped, see [`UsageWriter::with_transcripts`]).
    transcripts: Option<crate::transcript::Sink>,
    /// The batch being gathered: events priced as they arrive (see [`UsageWriter::take`]), in
    /// the boxes the requests filled in (stored from there: moving an event out of its box
    /// copied ~0.5 KB, twice), their captures and the transcript batches those are assigned to.
    #[expect(clippy::vec_box, reason = "the requests' boxes, stored where they are (unboxing copies ~0.5 KB each)")]
    events: Vec<Box<Metered>>,
    captures: Vec<crate::transcript::Pending>,
    batches: crate::transcript::Batches,
}

/// The spill file: events appended one JSON object a line; `replayed` bytes from its start are
/// already stored (the file is emptied once everything is).
#[derive(Debug)]
struct Spill {
    config: SpillConfig,
    /// Current length of the file.
    len: u64,
    /// Events in the file not yet stored.
    events: u64,
    /// Bytes at the start of the file already stored.
    replayed: u64,
}

/// Longest wait between two attempts while the store is failing.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Builds a connected meter/writer pair.
pub fn channel(
    store: UsageStore,
    catalog: Arc<CatalogHandle>,
    metrics: Arc<Metrics>,
    capacity: usize,
    batch_size: usize,
    flush_interval: Duration,
    spill: Option<SpillConfig>,
) -> (Meter, UsageWriter) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let (flush_tx, flush_rx) = mpsc::unbounded_channel();
    let meter = Meter {
        tx,
        metrics: metrics.clone(),
        last_drop_log_ms: Arc::new(AtomicI64::new(i64::MIN)),
        inflight: Arc::default(),
        flush_tx,
        cutting: Arc::default(),
    };
    let writer = UsageWriter {
        rx,
        flush_rx,
        store,
        catalog,
        metrics,
        batch_size: batch_size.max(1),
        flush_interval,
        spill: spill.filter(|s| s.max_bytes > 0).map(|config| Spill { config, len: 0, events: 0, replayed: 0 }),
        held: Vec::new(),
        held_cap: capacity.max(1),
        retry_at: None,
        backoff: flush_interval,
        transcripts: None,
        events: Vec::with_capacity(batch_size.max(1)),
        captures: Vec::new(),
        batches: crate::transcript::Batches::default(),
    };
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

    /// Waits until every request forwarded so far has emitted its usage event (queued it).
    pub async fn emitted(&self) {
        loop {
            let idle = self.inflight.idle.notified();
            if self.inflight.n.load(Ordering::Acquire) == 0 {
                break;
            }
            idle.await;
        }
    }

    /// Waits until every request forwarded so far has emitted its usage event and the writer has
    /// tried to commit every event queued before that (and anything spilled or held, without
    /// waiting for the retry backoff): after it returns, the store holds every event of the
    /// requests that came before, unless the store is failing (then they are pending or
    /// counted as dropped). For tests and shutdown checks; the request path never calls it.
    pub async fn flush(&self) {
        self.emitted().await;
        let (ack, done) = oneshot::channel();
        if self.flush_tx.send(ack).is_ok() {
            let _ = done.await;
        }
    }

    /// From now on, requests that end cancelled were cut by the shutdown (their connections
    /// are being dropped), not abandoned by their clients.
    /// Whether shutdown is cutting the requests still open.
    pub fn is_cutting(&self) -> bool {
        self.cutting.load(Ordering::Acquire)
    }

    pub fn cutting_at_shutdown(&self) {
        self.cutting.store(true, Ordering::Release);
    }

    /// Queues one event without waiting. Never blocks the caller. `provider` is the snapshot
    /// entry the request was served with: its `custom_pricing` overrides the catalog.
    pub fn record(&self, event: UsageEvent, provider: Option<Arc<ProviderEntry>>) {
        self.record_metered(Box::new(Metered {
            event,
            provider,
            response_model: None,
            transcript: None,
            observed: Default::default(),
        }));
    }

    /// Queues an event with everything the writer needs to price it (boxed: the queue and the
    /// writer's batch move a pointer, not the ~1 KB it holds).
    pub fn record_metered(&self, mut metered: Box<Metered>) {
        let event = &mut metered.event;
        if event.status == tollgate_core::RequestStatus::ClientCancelled && self.cutting.load(Ordering::Acquire) {
            event.error_class = Some(SHUTDOWN_CUT.to_string());
        }
        // Counted before it is sent, so the writer can never see an event `pending` does not hold.
        Metrics::inc(&self.metrics.usage_events_queued);
        Metrics::inc(&self.metrics.usage_events_pending);
        if let Err(e) = self.tx.try_send(metered) {
            let (refused, why) = match e {
                mpsc::error::TrySendError::Full(m) => (m, "the usage queue is full"),
                mpsc::error::TrySendError::Closed(m) => (m, "the usage writer has stopped"),
            };
            if let Some(t) = &refused.transcript {
                self.metrics.transcripts_pending_bytes.fetch_sub(t.size(), Ordering::AcqRel);
                Metrics::inc(&self.metrics.transcripts_dropped);
            }
            self.metrics.usage_events_pending.fetch_sub(1, Ordering::Relaxed);
            Metrics::inc(&self.metrics.usage_events_dropped);
            let now = crate::time::system_now_ms();
            let last = self.last_drop_log_ms.load(Ordering::Relaxed);
            if now.saturating_sub(last) >= 60_000
                && self.last_drop_log_ms.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
            {
                tracing::warn!(
                    dropped_total = self.metrics.usage_events_dropped.load(Ordering::Relaxed),
                    "dropping usage events: {why}"
                );
            }
        }
    }
}

impl UsageWriter {
    /// Stores the transcripts that travel with events in `sink` (after each batch's events).
    pub fn with_transcripts(mut self, sink: crate::transcript::Sink) -> UsageWriter {
        self.transcripts = Some(sink);
        self
    }

    /// Commits batches until `shutdown` flips, then drains the queue and returns. A spill file
    /// left by an earlier process is counted as queued and replayed first.
    pub async fn run(mut self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        self.open_spill().await;
        let mut incoming: Vec<Box<Metered>> = Vec::with_capacity(self.batch_size);
        let mut tick = tokio::time::interval(self.flush_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                n = self.rx.recv_many(&mut incoming, self.batch_size) => {
                    if n == 0 {
                        break;
                    }
                    self.take_all(&mut incoming).await;
                }
                _ = tick.tick() => self.flush().await,
                Some(ack) = self.flush_rx.recv() => {
                    // Everything queued before the flush request, committed before the answer
                    // (a failing store is tried once more now, not once per batch).
                    self.retry_now();
                    while let Ok(m) = self.rx.try_recv() {
                        incoming.push(m);
                    }
                    self.take_all(&mut incoming).await;
                    self.flush().await;
                    let _ = ack.send(());
                }
                _ = shutdown.changed() => break,
            }
        }
        // Drain: no new events can be queued once the receiver is closed. A failing store is
        // tried once now; if it still fails, the rest goes straight to the spill, so a dead
        // database cannot hold shutdown for one timeout per batch.
        self.rx.close();
        self.retry_now();
        while self.rx.recv_many(&mut incoming, self.batch_size).await > 0 {
            self.take_all(&mut incoming).await;
        }
        self.flush().await;
        if !self.held.is_empty() {
            let n = self.held.len() as u64;
            self.drop_events(n);
            tracing::error!(events = n, "usage store unavailable at shutdown; events held in memory dropped");
            self.held.clear();
        }
        if let Some(spill) = &self.spill
            && spill.events > 0
        {
            tracing::warn!(
                events = spill.events,
                path = %spill.config.path.display(),
                "usage store unavailable at shutdown; spilled events are replayed on the next start"
            );
        }
        tracing::debug!("usage writer drained");
    }

    /// Fills in cost, catalog version and the override / unpriced flags.
    ///
    /// For a type whose descriptor says `model_from_response` (Azure OpenAI: clients call a
    /// deployment name), the model the response named replaces the called one when the
    /// catalog knows it; otherwise the called name stays. Price overrides are the provider's
    /// for the model as called (its allow-list names), else for the model that priced it.
    ///
    /// Then the request's telemetry is finished with the priced event (`telemetry::observe`:
    /// metric series, access-log line, span end).
    fn price(&self, catalog: &tollgate_core::Catalog, m: &mut Metered) {
        let event = &mut m.event;
        let (model, priced) = crate::catalog::price_call(
            catalog,
            m.provider.as_deref(),
            event.provider_type,
            event.model.as_deref(),
            m.response_model.as_deref(),
            &event.usage,
        );
        // The priced model is the called one unless the response named another (no copy then).
        if model != event.model.as_deref() {
            event.model = model.map(str::to_string);
        }
        if priced.unpriced {
            Metrics::inc(&self.metrics.usage_events_unpriced);
        }
        event.cost = priced.cost;
        event.unpriced = priced.unpriced;
        event.priced_by_override = priced.override_applied;
        event.catalog_version = Some(catalog.shared_version());
        crate::telemetry::observe(
            &self.metrics,
            priced.matched != tollgate_core::pricing::CatalogMatch::None,
            m.provider.as_deref(),
            event,
            m.response_model.as_deref(),
            std::mem::take(&mut m.observed),
        );
    }

    fn written(&self, n: u64) {
        Metrics::add(&self.metrics.usage_events_written, n);
        self.metrics.usage_events_pending.fetch_sub(n, Ordering::Relaxed);
    }

    fn drop_events(&self, n: u64) {
        Metrics::add(&self.metrics.usage_events_dropped, n);
        self.metrics.usage_events_pending.fetch_sub(n, Ordering::Relaxed);
    }

    fn backlog(&self) -> bool {
        !self.held.is_empty() || self.spill.as_ref().is_some_and(|s| s.events > 0)
    }

    /// While the store is failing: make the next flush try it at once (an explicit flush, the
    /// shutdown drain).
    fn retry_now(&mut self) {
        if self.retry_at.is_some() {
            self.retry_at = Some(Instant::now());
        }
    }

    /// Takes in events as they arrive, and commits a batch whenever one is full.
    #[expect(clippy::vec_box, reason = "the queue's boxes, moved as they came (unboxing copies ~1 KB each)")]
    async fn take_all(&mut self, incoming: &mut Vec<Box<Metered>>) {
        let catalog = self.catalog.current();
        for m in incoming.drain(..) {
            self.take(&catalog, m);
            if self.events.len() >= self.batch_size {
                self.flush().await;
            }
        }
    }

    /// Adds one event to the batch as it arrives, while what the request wrote is still in
    /// the core's caches (priced at the end of a 1,000-event batch, every event was read back
    /// from memory): its capture goes to a transcript batch, then it is priced and its
    /// telemetry finished.
    fn take(&mut self, catalog: &tollgate_core::Catalog, mut m: Box<Metered>) {
        if let (Some(span), Some(t)) = (m.observed.span.as_mut(), m.transcript.as_deref()) {
            crate::telemetry::set_output_messages(span, &m.event, t);
        }
        // A transcript batch per provider and flush (more when one would pass
        // `transcript::BATCH_MAX_BYTES`); each event names its batch.
        if let Some(t) = m.transcript.take() {
            let batch = self.batches.assign(&m.event.provider, t.size(), &m.event.id);
            if self.transcripts.is_some() {
                let batch = self.batches.id(batch).clone();
                m.event.transcript = Some(tollgate_store::TranscriptRef { batch, flags: t.flags() });
            }
            if self.captures.capacity() == 0 {
                // Sized once per batch: growing it moved every capture already in.
                self.captures.reserve(self.batch_size);
            }
            self.captures.push(crate::transcript::Pending { ts_ms: m.event.ts_ms, batch, captured: *t });
        }
        self.price(catalog, &mut m);
        if self.events.capacity() == 0 {
            self.events.reserve(self.batch_size);
        }
        self.events.push(m);
    }

    /// Commits (or keeps) the batch's events, then stores its transcripts: they never hold
    /// back an event, and a failing usage store does not stop them.
    async fn flush(&mut self) {
        self.flush_events().await;
        let batches = std::mem::take(&mut self.batches);
        if self.captures.is_empty() {
            return;
        }
        let captures = std::mem::take(&mut self.captures);
        match &self.transcripts {
            Some(sink) => sink.write(batches, captures).await,
            None => {
                let size: u64 = captures.iter().map(|p| p.captured.size()).sum();
                self.metrics.transcripts_pending_bytes.fetch_sub(size, Ordering::AcqRel);
                Metrics::add(&self.metrics.transcripts_dropped, captures.len() as u64);
            }
        }
    }

    /// Commits the batch's events; kept (spilled or held) when the store fails. The batch's
    /// vector keeps its capacity for the next one.
    async fn flush_events(&mut self) {
        // While the store is failing, batches go straight to the spill until the next retry.
        if self.retry_at.is_some_and(|at| Instant::now() < at) {
            let batch = self.take_batch();
            self.park(batch).await;
            return;
        }
        if self.backlog()
            && let Err(e) = self.recover().await
        {
            self.failed(&e);
            let batch = self.take_batch();
            self.park(batch).await;
            return;
        }
        if self.events.is_empty() {
            return;
        }
        match self.store.insert_events(&self.events).await {
            Ok(()) => {
                self.written(self.events.len() as u64);
                self.events.clear();
                self.healthy();
            }
            Err(e) => {
                self.failed(&e);
                let batch = self.take_batch();
                self.park(batch).await;
            }
        }
    }

    /// The batch's events out of their boxes (a batch the store did not take).
    fn take_batch(&mut self) -> Vec<UsageEvent> {
        std::mem::take(&mut self.events).into_iter().map(|m| m.event).collect()
    }

    fn healthy(&mut self) {
        if self.retry_at.take().is_some() {
            tracing::info!("usage store writable again");
        }
        self.backoff = self.flush_interval;
        self.metrics.usage_store_failing.store(0, Ordering::Relaxed);
    }

    fn failed(&mut self, e: &tollgate_store::StoreError) {
        if self.retry_at.is_none() {
            tracing::error!(error = %e, "usage batch write failed; events are kept and retried");
        } else {
            tracing::warn!(error = %e, retry_in_ms = self.backoff.as_millis() as u64, "usage store still failing");
        }
        self.metrics.usage_store_failing.store(1, Ordering::Relaxed);
        self.retry_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }

    /// Keeps a batch the store did not take: in the spill file when it fits, else in memory up to
    /// `held_cap`; the rest is dropped and counted.
    async fn park(&mut self, batch: Vec<UsageEvent>) {
        if batch.is_empty() {
            return;
        }
        if let Some(spill) = &mut self.spill {
            match spill.append(&batch).await {
                Ok(true) => {
                    Metrics::add(&self.metrics.usage_events_spilled, batch.len() as u64);
                    return;
                }
                Ok(false) => {
                    tracing::warn!(path = %spill.config.path.display(), "usage spill file is full; holding events in memory")
                }
                Err(e) => {
                    tracing::warn!(error = %e, path = %spill.config.path.display(), "could not write the usage spill file; holding events in memory")
                }
            }
        }
        let room = self.held_cap.saturating_sub(self.held.len());
        let keep = batch.len().min(room);
        let mut batch = batch;
        let lost = batch.split_off(keep);
        self.held.extend(batch);
        if !lost.is_empty() {
            self.drop_events(lost.len() as u64);
            tracing::error!(events = lost.len(), "usage store, spill and memory full; usage events dropped");
        }
    }

    /// Writes the spill file's events and then the held ones; stops at the first failure.
    async fn recover(&mut self) -> Result<(), tollgate_store::StoreError> {
        if let Some(mut spill) = self.spill.take() {
            let r = self.replay(&mut spill).await;
            self.spill = Some(spill);
            r?;
        }
        while !self.held.is_empty() {
            let n = self.held.len().min(self.batch_size);
            self.store.insert_events(&self.held[..n]).await?;
            self.held.drain(..n);
            self.written(n as u64);
        }
        self.healthy();
        Ok(())
    }

    /// Stores the spill file's events from `replayed` on, batch by batch; empties the file at
    /// the end. Ids already stored (a commit whose answer was lost) are skipped and counted as
    /// written; lines that cannot be read (a torn write) are skipped and logged.
    async fn replay(&self, spill: &mut Spill) -> Result<(), tollgate_store::StoreError> {
        if spill.events == 0 {
            return Ok(());
        }
        let io = |e: std::io::Error| tollgate_store::StoreError::Invalid(format!("reading the usage spill file: {e}"));
        let mut file = tokio::fs::File::open(&spill.config.path).await.map_err(io)?;
        file.seek(std::io::SeekFrom::Start(spill.replayed)).await.map_err(io)?;
        let mut lines = tokio::io::BufReader::new(file);
        let mut offset = spill.replayed;
        let mut line = String::new();
        loop {
            let mut chunk = Vec::with_capacity(self.batch_size);
            let mut chunk_end = offset;
            while chunk.len() < self.batch_size {
                line.clear();
                let n = lines.read_line(&mut line).await.map_err(io)?;
                if n == 0 {
                    break;
                }
                chunk_end += n as u64;
                let parsed = serde_json::from_str::<serde_json::Value>(&line)
                    .map_err(|e| tollgate_store::StoreError::Corrupt(e.to_string()))
                    .and_then(tollgate_store::decode_event);
                match parsed {
                    Ok(e) => chunk.push(e),
                    Err(e) => tracing::error!(error = %e, "skipping an unreadable line of the usage spill file"),
                }
            }
            if chunk.is_empty() && chunk_end == offset {
                break;
            }
            let stored = self.store.existing_ids(&chunk).await?;
            let read = chunk.len() as u64;
            let fresh: Vec<UsageEvent> = chunk.into_iter().filter(|e| !stored.contains(&e.id)).collect();
            self.store.insert_events(&fresh).await?;
            let done = read.min(spill.events);
            spill.events -= done;
            self.written(done);
            offset = chunk_end;
            spill.replayed = offset;
        }
        // Everything readable is stored: empty the file (shrinking needs no free space). Lines
        // that could not be read were counted as pending when they were written: dropped now.
        let f = tokio::fs::OpenOptions::new().write(true).open(&spill.config.path).await.map_err(io)?;
        f.set_len(0).await.map_err(io)?;
        if spill.events > 0 {
            self.drop_events(spill.events);
        }
        *spill = Spill { config: spill.config.clone(), len: 0, events: 0, replayed: 0 };
        tracing::info!(path = %spill.config.path.display(), "usage spill file replayed into the store");
        Ok(())
    }

    /// Counts the events a previous process left in the spill file (they are pending now).
    async fn open_spill(&mut self) {
        let Some(spill) = &mut self.spill else { return };
        let text = match tokio::fs::read(&spill.config.path).await {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                tracing::error!(error = %e, path = %spill.config.path.display(), "cannot read the usage spill file");
                return;
            }
        };
        let events = text.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count() as u64;
        spill.len = text.len() as u64;
        spill.events = events;
        if events > 0 {
            Metrics::add(&self.metrics.usage_events_queued, events);
            Metrics::add(&self.metrics.usage_events_pending, events);
            tracing::info!(events, path = %spill.config.path.display(), "replaying usage events spilled by an earlier run");
        }
    }
}

impl Spill {
    /// Appends a batch as one write; `Ok(false)` when it would pass `max_bytes`. A failed
    /// write is cut back to the previous length, so the file holds whole lines only.
    async fn append(&mut self, batch: &[UsageEvent]) -> std::io::Result<bool> {
        let mut buf = Vec::new();
        for e in batch {
            serde_json::to_writer(&mut buf, &tollgate_store::encode_event(e)).map_err(std::io::Error::other)?;
            buf.push(b'\n');
        }
        if self.len + buf.len() as u64 > self.config.max_bytes {
            return Ok(false);
        }
        let mut f = tokio::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(&self.config.path).await?;
        let written = async {
            f.write_all(&buf).await?;
            f.sync_data().await
        }
        .await;
        if let Err(e) = written {
            let _ = f.set_len(self.len).await;
            return Err(e);
        }
        self.len += buf.len() as u64;
        self.events += batch.len() as u64;
        Ok(true)
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
            transcript: None,
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
            channel(store(dir.path()).await, catalog(), metrics.clone(), 2, 10, Duration::from_secs(3600), None);
        for i in 0..5 {
            meter.record(event(i), None); // no writer is running: the queue fills after 2
        }
        // Every event offered counts as queued; the three refused ones as dropped at once.
        assert_eq!(metrics.usage_events_queued.load(Relaxed), 5);
        assert_eq!(metrics.usage_events_dropped.load(Relaxed), 3);
        assert_eq!(metrics.usage_events_pending.load(Relaxed), 2);
    }

    #[tokio::test]
    async fn shutdown_drains_everything_queued() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let usage = store(dir.path()).await;
        let metrics = Arc::new(Metrics::default());
        // Batches of 7 and an hour between timed flushes: only size and the drain flush.
        let (meter, writer) =
            channel(usage.clone(), catalog(), metrics.clone(), 100, 7, Duration::from_secs(3600), None);
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
        let (meter, writer) =
            channel(usage.clone(), catalog(), metrics.clone(), 100, 50, Duration::from_secs(3600), None);
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
        let (meter, writer) =
            channel(usage.clone(), catalog(), metrics.clone(), 100, 100, Duration::from_secs(3600), None);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(writer.run(stop_rx));
        let spec: tollgate_core::ProviderSpec = serde_json::from_value(serde_json::json!({
            "name": "p", "display_name": "P", "type": "openai", "openai_config": {"api_key_ref": "K"},
            "provider_models": [{"name": "gpt-5.4", "custom_pricing": {"output_per_million": 0}}]
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let entry = Arc::new(ProviderEntry::new(spec, 0, 0));
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
    /// A spill left by an earlier process is replayed on start: an event already stored (its
    /// commit's answer was lost) is not stored twice, a torn line is dropped and counted, and
    /// the counters add up with nothing pending afterwards.
    #[tokio::test]
    async fn a_left_over_spill_is_replayed_once_on_start() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let usage = store(dir.path()).await;
        usage.insert_events(&[event(1)]).await.unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join(SPILL_FILE);
        let mut spill =
            Spill { config: SpillConfig { path: path.clone(), max_bytes: 1 << 20 }, len: 0, events: 0, replayed: 0 };
        assert!(spill.append(&[event(1), event(2), event(3)]).await.unwrap_or(false));
        {
            use std::io::Write as _;
            let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap_or_else(|e| panic!("{e}"));
            f.write_all(b"{\"id\": \"torn\n").unwrap_or_else(|e| panic!("{e}"));
        }
        let metrics = Arc::new(Metrics::default());
        let config = SpillConfig { path: path.clone(), max_bytes: 1 << 20 };
        let (meter, writer) =
            channel(usage.clone(), catalog(), metrics.clone(), 100, 100, Duration::from_secs(3600), Some(config));
        let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let _task = tokio::spawn(writer.run(stop_rx));
        meter.flush().await;
        assert_eq!(usage.count_events().await.unwrap_or(-1), 3, "e1 once, e2 and e3 replayed");
        let (q, w, d, p) = (
            metrics.usage_events_queued.load(Relaxed),
            metrics.usage_events_written.load(Relaxed),
            metrics.usage_events_dropped.load(Relaxed),
            metrics.usage_events_pending.load(Relaxed),
        );
        assert_eq!((q, w, d, p), (4, 3, 1, 0), "4 lines: 3 stored (one already was), 1 torn");
        assert_eq!(std::fs::metadata(&path).map(|m| m.len()).unwrap_or(1), 0, "the spill is emptied");
        assert_eq!(metrics.usage_store_failing.load(Relaxed), 0);
    }
}
