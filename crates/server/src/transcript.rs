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
use tollgate_store::transcripts::{Entry, SealedBatch, seal_batch};
use tollgate_store::{Keyring, Store, TranscriptFlags, TranscriptStore};

/// Largest total of captured bytes waiting for the writer; a capture that would pass it is
/// dropped (and counted) while the usage event itself is still queued.
pub const MAX_PENDING_BYTES: u64 = 256 * 1024 * 1024;

/// Rows per retention DELETE statement.
pub const CHUNK: i64 = 1_000;

const DAY_MS: i64 = 86_400_000;

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
    /// Every batch of the flush: its id (a UUIDv7), provider and captured bytes so far.
    list: Vec<(String, String, u64)>,
    /// Per provider, the index of its open batch in `list`.
    open: Vec<usize>,
}

impl Batches {
    /// The index of the batch a transcript of `size` bytes from `provider` goes into: the
    /// provider's open batch, or a new one when there is none or it would pass
    /// [`BATCH_MAX_BYTES`].
    pub fn assign(&mut self, provider: &str, size: u64) -> usize {
        let open = self.open.iter_mut().find(|i| self.list[**i].1 == provider);
        if let Some(i) = open {
            let bytes = &mut self.list[*i].2;
            if *bytes == 0 || size == 0 || *bytes + size <= BATCH_MAX_BYTES {
                *bytes += size;
                return *i;
            }
            *i = self.list.len();
            self.list.push((uuid::Uuid::now_v7().to_string(), provider.to_string(), size));
            return *i;
        }
        self.open.push(self.list.len());
        self.list.push((uuid::Uuid::now_v7().to_string(), provider.to_string(), size));
        self.list.len() - 1
    }

    /// The id of batch `i` (an index [`Batches::assign`] returned).
    pub fn id(&self, i: usize) -> &str {
        &self.list[i].0
    }
}

/// A capture with the event it belongs to and the batch (an index into the flush's
/// [`Batches`]) the event names.
#[derive(Debug)]
pub struct Pending {
    pub event_id: String,
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
        let sealed = tokio::task::spawn_blocking(move || seal_all(&keyring, batches, batch)).await;
        let sealed = match sealed {
            Ok(Ok(r)) => Some(r),
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
/// are skipped).
fn seal_all(
    keyring: &tollgate_store::Keyring,
    batches: Batches,
    batch: Vec<Pending>,
) -> Result<Vec<SealedBatch>, String> {
    let mut groups: Vec<Vec<Entry>> = batches.list.iter().map(|_| Vec::new()).collect();
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
            event_id: p.event_id,
            ts_ms: p.ts_ms,
            request_headers: p.captured.request_headers,
            response_content_type: p.captured.response_content_type,
        };
        match groups.get_mut(p.batch) {
            Some(entries) => entries.push(entry),
            None => return Err(format!("transcript names batch {} of {}", p.batch, batches.list.len())),
        }
    }
    batches
        .list
        .into_iter()
        .zip(groups)
        .filter(|(_, entries)| !entries.is_empty())
        .map(|((id, provider, _), entries)| seal_batch(keyring, id, provider, entries).map_err(|e| e.to_string()))
        .collect()
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
        let first = b.assign("p", 10);
        assert_eq!(b.assign("p", BATCH_MAX_BYTES - 10), first, "up to the limit: the same batch");
        let q = b.assign("q", 1);
        assert_ne!(b.id(q), b.id(first), "another provider: another batch");
        let second = b.assign("p", 1);
        assert_ne!(b.id(second), b.id(first), "past the limit: a new batch");
        assert_eq!(b.assign("p", 1), second, "the new batch is the provider's open one");
        let huge = b.assign("q", BATCH_MAX_BYTES * 2);
        assert_ne!(huge, q, "a transcript larger than the limit starts a batch of its own");
        assert_ne!(b.assign("q", 1), huge, "and nothing joins it");
        let mut lone = Batches::default();
        let big = lone.assign("p", BATCH_MAX_BYTES * 2);
        assert_eq!(lone.assign("p", 0), big, "an empty capture adds nothing");
    }
}
