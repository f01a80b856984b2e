//! Transcripts off the request path (ARCHITECTURE.md, Decisions: Transcripts): what a capture
//! hands the usage writer ([`Captured`], built by `proxy::capture`), how the writer stores it
//! ([`Sink::write`]: a flush's transcripts of one provider encoded together, compressed and
//! sealed once with the master key in a blocking task, then one row per batch in the
//! [`TranscriptStore`]; each event names its batch), the memory bound on captures waiting in
//! the usage queue ([`admit`]), and retention ([`sweep`]: age, then the total-size cap, oldest
//! first, in chunks).
//!
//! Transcripts are best effort next to usage: a batch the transcript store refuses is dropped
//! and counted (`tollgate_transcripts_dropped_total`), never spilled to disk (the spill file is
//! plaintext) and never allowed to hold back usage events.

use crate::metrics::Metrics;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tollgate_store::transcripts::{Entry, SealedBatch, seal_batch_of};
use tollgate_store::{DAY_MS, Keyring, Store, TranscriptFlags, TranscriptStore};

/// Largest total of captured bytes waiting for the writer; a capture that would pass it is
/// dropped (and counted) while the usage event itself is still queued.
pub const MAX_PENDING_BYTES: u64 = 256 * 1024 * 1024;

/// Rows per retention DELETE statement.
pub const CHUNK: i64 = 1_000;

/// One captured direction: a copy of the bytes as they were read or sent. A copy, not the
/// `Bytes` themselves: those are views into hyper's connection read buffers, and holding one
/// until the writer's next flush keeps the whole buffer (8–16 KiB) from being reused, so every
/// following read on that connection allocated a fresh one (measured: P8 cost ~20 % of RPS
/// holding references, against the ~300 instructions of copying a small body).
#[derive(Debug, Clone, Default)]
pub struct Body {
    pub bytes: Vec<u8>,
    /// The body was longer than `--transcript-max-bytes`: this is its head.
    pub truncated: bool,
}

impl Body {
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// A finished capture, on its way to the writer with its usage event.
#[derive(Debug, Clone)]
pub struct Captured {
    pub input: Option<Body>,
    pub output: Option<Body>,
    /// Allow-listed request headers (`proxy::capture::HEADER_ALLOW_LIST`) as `name: value`
    /// lines.
    pub request_headers: String,
    pub response_content_type: Option<String>,
}

impl Captured {
    /// What the event's reference says it recorded.
    pub fn flags(&self) -> TranscriptFlags {
        TranscriptFlags::of(self.input.as_ref().map(|b| b.truncated), self.output.as_ref().map(|b| b.truncated))
    }

    /// Bytes held in memory.
    pub fn size(&self) -> u64 {
        let len = |b: &Option<Body>| b.as_ref().map_or(0, |b| b.len() as u64);
        len(&self.input) + len(&self.output)
    }
}

/// Whether a capture of `size` bytes may join the queue: reserves the bytes in the pending
/// gauge, or counts a drop.
pub fn admit(metrics: &Metrics, size: u64) -> bool {
    let pending = metrics.transcripts_pending_bytes.fetch_add(size, Ordering::AcqRel);
    if pending + size > MAX_PENDING_BYTES {
        metrics.transcripts_pending_bytes.fetch_sub(size, Ordering::AcqRel);
        Metrics::inc(&metrics.transcripts_dropped);
        return false;
    }
    true
}

/// Most captured bytes sealed into one batch: a flush's transcripts of a provider go into as
/// many batches as keep each under this, unless a single transcript is larger on its own. A
/// batch is encoded, compressed and sealed in memory and stored as one row, and reading one
/// request opens its whole batch (the console's conversation view opens one per turn): 1 MiB
/// opens in ~2 ms, and a flush of small exchanges (1,000 of ~600 bytes) still fits in one.
pub const BATCH_MAX_BYTES: u64 = 1024 * 1024;

/// The batches a flush fills: each has an id and a provider, and one per provider is open.
#[derive(Debug, Default)]
pub struct Batches {
    /// Every batch of the flush, in the order they were opened.
    list: Vec<Batch>,
    /// Per provider, the index of its open batch in `list`.
    open: Vec<usize>,
}

/// One batch of a flush: its id (a UUIDv7), provider, captured bytes and the event ids of its
/// transcripts so far, space-separated in the order they were assigned (the batch keeps them
/// beside its sealed entries, see `seal_batch_of`; the count sizes its entry list once, where
/// growing it moved every entry already in).
#[derive(Debug)]
struct Batch {
    id: Arc<str>,
    provider: String,
    bytes: u64,
    count: usize,
    event_ids: String,
}

impl Batch {
    fn new(provider: &str, bytes: u64, event_id: &str) -> Batch {
        let mut event_ids = String::with_capacity(64 * 37);
        event_ids.push_str(event_id);
        let id = uuid::Uuid::now_v7().to_string().into();
        Batch { id, provider: provider.to_string(), bytes, count: 1, event_ids }
    }
}

impl Batches {
    /// The index of the batch the transcript of event `event_id`, `size` bytes from
    /// `provider`, goes into: the provider's open batch, or a new one when there is none or it
    /// would pass [`BATCH_MAX_BYTES`]. Transcripts must reach [`Sink::write`] in the order they
    /// were assigned.
    pub fn assign(&mut self, provider: &str, size: u64, event_id: &str) -> usize {
        let open = self.open.iter_mut().find(|i| self.list[**i].provider == provider);
        if let Some(i) = open {
            let b = &mut self.list[*i];
            if b.bytes == 0 || size == 0 || b.bytes + size <= BATCH_MAX_BYTES {
                b.bytes += size;
                b.count += 1;
                b.event_ids.push(' ');
                b.event_ids.push_str(event_id);
                return *i;
            }
            *i = self.list.len();
            self.list.push(Batch::new(provider, size, event_id));
            return *i;
        }
        self.open.push(self.list.len());
        self.list.push(Batch::new(provider, size, event_id));
        self.list.len() - 1
    }

    /// The id of batch `i` (an index [`Batches::assign`] returned).
    pub fn id(&self, i: usize) -> &Arc<str> {
        &self.list[i].id
    }
}

/// A capture with the batch (an index into the flush's [`Batches`]) its event names; the
/// batch holds the event's id.
#[derive(Debug)]
pub struct Pending {
    pub ts_ms: i64,
    pub batch: usize,
    pub captured: Captured,
}

/// Where the usage writer puts transcripts.
#[derive(Debug, Clone)]
pub struct Sink {
    pub store: TranscriptStore,
    /// The config store, for its keyring (the current master key).
    pub keys: Store,
    pub metrics: Arc<Metrics>,
}

impl Sink {
    /// Seals and stores a flush's transcripts, one batch per batch id; failures are logged and
    /// counted, never retried.
    pub async fn write(&self, batches: Batches, batch: Vec<Pending>) {
        if batch.is_empty() {
            return;
        }
        let size: u64 = batch.iter().map(|p| p.captured.size()).sum();
        let n = batch.len() as u64;
        let truncated = batch.iter().filter(|p| p.captured.flags().truncated).count() as u64;
        let keyring = self.keys.keyring();
        let purged = self.store.purge_cutoffs();
        let sealed = tokio::task::spawn_blocking(move || seal_all(&keyring, &purged, batches, batch)).await;
        let sealed = match sealed {
            Ok(Ok((r, captures))) => {
                // The captured bodies go back to the allocator here, on a runtime worker (with
                // one worker thread, the one that allocated them; see `seal_batch_of`).
                drop(captures);
                Some(r)
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "sealing transcripts failed; dropped");
                None
            }
            Err(e) => {
                tracing::error!(error = %e, "sealing transcripts failed; dropped");
                None
            }
        };
        if let Some(batches) = sealed {
            // What reaches the disk: the sealed text (the size cap counts bytes before compression).
            let stored: usize = batches.iter().map(|b| b.sealed.len()).sum();
            match self.store.insert_batches(&batches).await {
                Ok(()) => {
                    Metrics::add(&self.metrics.transcripts_captured, n);
                    Metrics::add(&self.metrics.transcripts_truncated, truncated);
                    Metrics::add(&self.metrics.transcripts_bytes_stored, stored as u64);
                }
                Err(e) => {
                    tracing::error!(error = %e, transcripts = n, "transcript store write failed; transcripts dropped");
                    Metrics::add(&self.metrics.transcripts_dropped, n);
                }
            }
        } else {
            Metrics::add(&self.metrics.transcripts_dropped, n);
        }
        self.metrics.transcripts_pending_bytes.fetch_sub(size, Ordering::AcqRel);
    }
}

/// Groups `batch` by the batch each names and seals each group (batches without a transcript
/// are skipped); hands the entries back with the sealed batches, for the caller to free.
fn seal_all(
    keyring: &tollgate_store::Keyring,
    purged: &std::collections::HashMap<String, i64>,
    mut batches: Batches,
    batch: Vec<Pending>,
) -> Result<(Vec<SealedBatch>, Vec<Vec<Entry>>), String> {
    let mut groups: Vec<Vec<Entry>> = batches.list.iter().map(|b| Vec::with_capacity(b.count)).collect();
    for p in batch {
        let (input_truncated, output_truncated) = (
            p.captured.input.as_ref().is_some_and(|b| b.truncated),
            p.captured.output.as_ref().is_some_and(|b| b.truncated),
        );
        let entry = Entry {
            input: p.captured.input.map(|b| b.bytes),
            input_truncated,
            output: p.captured.output.map(|b| b.bytes),
            output_truncated,
            event_id: String::new(),
            ts_ms: p.ts_ms,
            request_headers: p.captured.request_headers,
            response_content_type: p.captured.response_content_type,
        };
        match groups.get_mut(p.batch) {
            Some(entries) => entries.push(entry),
            None => return Err(format!("transcript names batch {} of {}", p.batch, batches.list.len())),
        }
    }
    // A purge of the provider after these requests started: their transcripts are dropped,
    // with their ids (the batch lists one id per entry, in entry order).
    for (b, entries) in batches.list.iter_mut().zip(groups.iter_mut()) {
        let Some(&cutoff) = purged.get(&b.provider) else { continue };
        if entries.iter().all(|e| e.ts_ms >= cutoff) {
            continue;
        }
        let ids: Vec<String> = b.event_ids.split(' ').map(str::to_string).collect();
        let mut kept_ids = String::new();
        let mut kept = Vec::with_capacity(entries.len());
        for (e, id) in std::mem::take(entries).into_iter().zip(ids) {
            if e.ts_ms >= cutoff {
                if !kept_ids.is_empty() {
                    kept_ids.push(' ');
                }
                kept_ids.push_str(&id);
                kept.push(e);
            }
        }
        tracing::debug!(provider = %b.provider, dropped = b.count - kept.len(), "transcripts purged before they were written");
        b.count = kept.len();
        b.event_ids = kept_ids;
        *entries = kept;
    }
    let sealed = batches
        .list
        .into_iter()
        .zip(&groups)
        .filter(|(_, entries)| !entries.is_empty())
        .map(|(b, entries)| {
            seal_batch_of(keyring, b.id.to_string(), b.provider, b.event_ids, entries).map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<SealedBatch>, String>>()?;
    Ok((sealed, groups))
}

/// Deletes transcripts older than `days` days (0: no age limit), then the oldest until the
/// rest fit in `max_total_bytes` (0: no cap); returns how many went.
pub async fn sweep(
    store: &TranscriptStore,
    keyring: &Keyring,
    metrics: &Metrics,
    days: u32,
    max_total_bytes: u64,
    now_ms: i64,
) -> u64 {
    let mut gone = 0;
    if days > 0 {
        match store.delete_before(keyring, None, now_ms - i64::from(days) * DAY_MS, CHUNK).await {
            Ok(n) => gone += n,
            Err(e) => tracing::warn!(error = %e, "transcript retention sweep failed; will retry"),
        }
    }
    if max_total_bytes > 0 {
        match store.shrink_to(keyring, i64::try_from(max_total_bytes).unwrap_or(i64::MAX), CHUNK).await {
            Ok(n) => gone += n,
            Err(e) => tracing::warn!(error = %e, "transcript size cap sweep failed; will retry"),
        }
    }
    if gone > 0 {
        Metrics::add(&metrics.transcripts_expired, gone);
        tracing::info!(deleted = gone, days, max_total_bytes, "transcript retention: deleted transcripts");
    }
    gone
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_holds_one_provider_and_at_most_its_share_of_bytes() {
        let mut b = Batches::default();
        let first = b.assign("p", 10, "e1");
        assert_eq!(b.assign("p", BATCH_MAX_BYTES - 10, "e2"), first, "up to the limit: the same batch");
        let q = b.assign("q", 1, "e3");
        assert_ne!(b.id(q), b.id(first), "another provider: another batch");
        let second = b.assign("p", 1, "e4");
        assert_ne!(b.id(second), b.id(first), "past the limit: a new batch");
        assert_eq!(b.assign("p", 1, "e5"), second, "the new batch is the provider's open one");
        let huge = b.assign("q", BATCH_MAX_BYTES * 2, "e6");
        assert_ne!(huge, q, "a transcript larger than the limit starts a batch of its own");
        assert_ne!(b.assign("q", 1, "e7"), huge, "and nothing joins it");
        let ids: Vec<(&str, &str)> = b.list.iter().map(|x| (x.provider.as_str(), x.event_ids.as_str())).collect();
        assert_eq!(
            ids,
            [("p", "e1 e2"), ("q", "e3"), ("p", "e4 e5"), ("q", "e6"), ("q", "e7")],
            "each batch's ids, in order"
        );
        assert_eq!(b.list.iter().map(|x| x.count).collect::<Vec<_>>(), [2, 1, 2, 1, 1]);
        let mut lone = Batches::default();
        let big = lone.assign("p", BATCH_MAX_BYTES * 2, "e1");
        assert_eq!(lone.assign("p", 0, "e2"), big, "an empty capture adds nothing");
    }

    /// Three captures (`p`, `q`, `p`, at ts 0, 1, 2) assigned to their batches.
    fn three() -> (Batches, Vec<Pending>) {
        let mut batches = Batches::default();
        let mut pending = Vec::new();
        for (i, provider) in ["p", "q", "p"].into_iter().enumerate() {
            let event_id = format!("event-{i}");
            let body = Body { bytes: format!("prompt {i}").into_bytes(), truncated: false };
            let captured = Captured {
                input: Some(body),
                output: None,
                request_headers: String::new(),
                response_content_type: None,
            };
            let batch = batches.assign(provider, captured.size(), &event_id);
            pending.push(Pending { ts_ms: i as i64, batch, captured });
        }
        (batches, pending)
    }

    #[test]
    fn a_flush_seals_each_batch_with_its_events_in_order() {
        let ring =
            tollgate_store::Keyring::new(tollgate_store::MasterKey::generate().unwrap_or_else(|e| panic!("{e}")));
        let (batches, pending) = three();
        let (sealed, entries) =
            seal_all(&ring, &Default::default(), batches, pending).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(entries.iter().map(Vec::len).collect::<Vec<_>>(), [2, 1], "the entries come back to be freed");
        let listed: Vec<(&str, &str)> = sealed.iter().map(|b| (b.provider.as_str(), b.event_ids.as_str())).collect();
        assert_eq!(listed, [("p", "event-0 event-2"), ("q", "event-1")]);
        let p = &sealed[0];
        let opened = tollgate_store::transcripts::open_batch(&ring, &p.id, &p.event_ids, &p.sealed, p.plain_bytes)
            .unwrap_or_else(|e| panic!("{e}"));
        let got: Vec<(String, Option<Vec<u8>>)> = opened.into_iter().map(|e| (e.event_id, e.input)).collect();
        assert_eq!(
            got,
            [("event-0".into(), Some(b"prompt 0".to_vec())), ("event-2".into(), Some(b"prompt 2".to_vec()))]
        );
    }

    #[test]
    fn a_purge_drops_the_transcripts_of_requests_started_before_it() {
        let ring =
            tollgate_store::Keyring::new(tollgate_store::MasterKey::generate().unwrap_or_else(|e| panic!("{e}")));
        let (batches, pending) = three();
        // p purged at ts 1: event-0 (ts 0) goes, event-2 (ts 2, started after) stays; q untouched.
        let purged = [("p".to_string(), 1)].into_iter().collect();
        let (sealed, _) = seal_all(&ring, &purged, batches, pending).unwrap_or_else(|e| panic!("{e}"));
        let listed: Vec<(&str, &str, i64)> =
            sealed.iter().map(|b| (b.provider.as_str(), b.event_ids.as_str(), b.entries)).collect();
        assert_eq!(listed, [("p", "event-2", 1), ("q", "event-1", 1)]);
        // a purge after all of them: p's batch is not written at all
        let (batches, pending) = three();
        let purged = [("p".to_string(), 3)].into_iter().collect();
        let (sealed, _) = seal_all(&ring, &purged, batches, pending).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sealed.iter().map(|b| b.provider.as_str()).collect::<Vec<_>>(), ["q"]);
    }
}
