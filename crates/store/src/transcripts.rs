//! Transcripts: the recorded request and response bodies of proxied requests whose provider
//! asked for them (ARCHITECTURE.md, Decisions: Transcripts), written by the gateway's usage
//! writer (never on the request path) a batch at a time: one row of `transcript_batches` per
//! provider and flush ([`seal_batch`]: the batch's [`Entry`]s encoded together with protobuf,
//! compressed with zstd from [`COMPRESS_FROM`] bytes on, sealed once with the master key
//! ([`Keyring::seal`]: AES-256-GCM, `v1:<key_id>:…`, AAD naming the batch id, so a sealed batch
//! copied to another row does not open). Each usage event names its batch
//! ([`TranscriptRef`]); the row lists the event ids it still holds, keeps the key id (for
//! [`TranscriptStore::reseal`], run by `secrets rotate-key`) and what the size cap counts.
//! Besides the bodies only an allow-list of non-secret request headers is kept. Deleting some
//! of a batch's transcripts (retention, the size cap, purges) re-seals it without them.
//!
//! Transcripts recorded before batching are rows of their own in `transcripts` (one per event,
//! each body sealed alone: [`seal_body`], [`TranscriptRecord`]); they are read, deleted and
//! re-sealed beside the batches, and nothing writes new ones.
//!
//! [`TranscriptStore`] is a handle of its own: on SQLite its own file (`transcripts.sqlite`,
//! own migration list), so large body writes never hold the usage database's write lock; on
//! PostgreSQL tables of their own in the config database. Deletes run in chunks so no
//! statement holds a long lock.

use crate::db::{Pool, RowExt};
use crate::{Keyring, Store, StoreError};
use std::collections::HashMap;
use std::sync::Arc;

/// zstd level: the fastest of the regular levels. On a batch of 100 chat exchanges level 1
/// ran ~15 % faster than level 3 and compressed as well (x16 either way: a batch repeats
/// itself, system prompts and JSON keys above all); level -1 compressed a third less and saved
/// only ~250 of the ~7,600 instructions a recorded request costs (callgrind, P1 shape).
const ZSTD_LEVEL: i32 = 1;

/// Which half of an exchange a body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Input,
    Output,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Direction::Input => "input",
            Direction::Output => "output",
        }
    }
}

fn aad(event_id: &str, dir: Direction) -> Vec<u8> {
    format!("transcript:{event_id}:{}", dir.as_str()).into_bytes()
}

thread_local! {
    /// One zstd compression context per thread, reused body after body: creating a context
    /// (`zstd::bulk::compress` makes one per call) was 15 % of the gateway's CPU with
    /// transcripts on under load (`bench/profile.sh --tool perf --mode transcripts`).
    static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

fn compress(plain: &[u8]) -> std::io::Result<Vec<u8>> {
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        if c.is_none() {
            *c = Some(zstd::bulk::Compressor::new(ZSTD_LEVEL)?);
        }
        match c.as_mut() {
            Some(z) => z.compress(plain),
            None => zstd::bulk::compress(plain, ZSTD_LEVEL),
        }
    })
}

/// Bodies shorter than this are sealed as they are, behind [`RAW`]: a zstd frame costs ~50,000
/// instructions whatever the body's size (~16,000 even at zstd's fastest level; measured with
/// callgrind on a 325-byte chat answer, which level 3 shrank by a quarter), which made
/// compression most of the cost of recording small exchanges.
pub const COMPRESS_FROM: usize = 1024;

/// First byte of a body stored uncompressed. A zstd frame starts with its magic number
/// (`28 B5 2F FD`), so the two cannot be confused, and bodies sealed before the tag existed
/// (every one a zstd frame) open as before.
const RAW: u8 = 0;

/// `plain` behind [`RAW`] when shorter than [`COMPRESS_FROM`], else a zstd frame.
fn pack(plain: &[u8]) -> Result<Vec<u8>, StoreError> {
    if plain.len() < COMPRESS_FROM {
        let mut tagged = Vec::with_capacity(plain.len() + 1);
        tagged.push(RAW);
        tagged.extend_from_slice(plain);
        return Ok(tagged);
    }
    compress(plain).map_err(|e| StoreError::Invalid(format!("compressing a transcript: {e}")))
}

/// The inverse of [`pack`]; `original_len` bounds the output; `what` names it in errors.
fn unpack(packed: &[u8], original_len: usize, what: &str) -> Result<Vec<u8>, StoreError> {
    if let Some((&RAW, plain)) = packed.split_first() {
        return Ok(plain.to_vec());
    }
    zstd::bulk::decompress(packed, original_len.max(1))
        .map_err(|e| StoreError::Corrupt(format!("{what} does not decompress: {e}")))
}

/// Compresses (from [`COMPRESS_FROM`] bytes on) and seals one body under the keyring's primary
/// key: the format of transcripts recorded before they were batched (one row per event),
/// still read, purged and re-sealed.
pub fn seal_body(keyring: &Keyring, event_id: &str, dir: Direction, plain: &[u8]) -> Result<String, StoreError> {
    keyring.seal(&aad(event_id, dir), &pack(plain)?)
}

/// Opens and decompresses a body sealed by [`seal_body`]; `original_len` bounds the output.
pub fn open_body(
    keyring: &Keyring,
    event_id: &str,
    dir: Direction,
    sealed: &str,
    original_len: usize,
) -> Result<Vec<u8>, StoreError> {
    let packed = keyring.open(&aad(event_id, dir), sealed)?;
    unpack(&packed, original_len, &format!("transcript of \"{event_id}\""))
}

/// One sealed body and what is known about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedBody {
    /// `v1:<key_id>:…` of the zstd-compressed bytes.
    pub sealed: String,
    /// Length of the captured bytes (after truncation), before compression.
    pub bytes: i64,
    /// The body was longer than the capture limit: only its head is kept.
    pub truncated: bool,
}

/// One transcript row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscriptRecord {
    pub event_id: String,
    pub ts_ms: i64,
    pub provider: String,
    /// Key id the bodies are sealed under.
    pub key_id: String,
    /// JSON object of the allow-listed request headers.
    pub request_headers: String,
    pub response_content_type: Option<String>,
    pub input: Option<SealedBody>,
    pub output: Option<SealedBody>,
}

impl TranscriptRecord {
    /// What the size cap counts: the sealed text of both bodies.
    pub fn stored_bytes(&self) -> i64 {
        let len = |b: &Option<SealedBody>| b.as_ref().map_or(0, |b| b.sealed.len() as i64);
        len(&self.input) + len(&self.output) + self.request_headers.len() as i64
    }
}

/// Which bodies an event has (for lists: flags without reading bodies).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TranscriptFlags {
    pub input: bool,
    pub output: bool,
    pub truncated: bool,
}

impl TranscriptFlags {
    /// As stored with the event (`transcript_flags`): 1 input, 2 output, 4 truncated.
    pub fn bits(self) -> i64 {
        i64::from(self.input) | i64::from(self.output) << 1 | i64::from(self.truncated) << 2
    }

    /// Of a transcript whose input and output are each absent (`None`) or held, truncated or
    /// not (`Some(truncated)`).
    pub fn of(input: Option<bool>, output: Option<bool>) -> TranscriptFlags {
        TranscriptFlags {
            input: input.is_some(),
            output: output.is_some(),
            truncated: input == Some(true) || output == Some(true),
        }
    }

    pub fn from_bits(bits: i64) -> TranscriptFlags {
        TranscriptFlags { input: bits & 1 != 0, output: bits & 2 != 0, truncated: bits & 4 != 0 }
    }
}

/// Where an event's transcript is: the batch it was sealed into, and what it recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscriptRef {
    /// Shared by every event of the batch (the writer hands each event a reference, not a copy).
    pub batch: Arc<str>,
    pub flags: TranscriptFlags,
}

/// One event's transcript, in the clear: what a batch holds per event (encoded with protobuf,
/// `prost`, inside the sealed batch). `Debug` leaves the bodies out.
#[derive(Clone, PartialEq, prost::Message)]
#[prost(skip_debug)]
pub struct Entry {
    #[prost(string, tag = "1")]
    pub event_id: String,
    /// The event's `ts_ms` (when the request arrived): what retention goes by.
    #[prost(int64, tag = "2")]
    pub ts_ms: i64,
    /// The allow-listed request headers as `name: value` lines (values are visible ASCII).
    #[prost(string, tag = "3")]
    pub request_headers: String,
    #[prost(string, optional, tag = "4")]
    pub response_content_type: Option<String>,
    #[prost(bytes = "vec", optional, tag = "5")]
    pub input: Option<Vec<u8>>,
    #[prost(bool, tag = "6")]
    pub input_truncated: bool,
    #[prost(bytes = "vec", optional, tag = "7")]
    pub output: Option<Vec<u8>>,
    #[prost(bool, tag = "8")]
    pub output_truncated: bool,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("event_id", &self.event_id)
            .field("ts_ms", &self.ts_ms)
            .field("input_bytes", &self.input.as_ref().map(Vec::len))
            .field("output_bytes", &self.output.as_ref().map(Vec::len))
            .finish_non_exhaustive()
    }
}

impl Entry {
    /// What the size cap counts for it: its encoded size before compression, without the
    /// event id (which a batch keeps beside its entries, see [`seal_batch`]), so the count is the
    /// same whether the id is filled in or not.
    pub fn stored_bytes(&self) -> i64 {
        // field 1, length-delimited: a one-byte key, the length, the bytes
        let n = self.event_id.len();
        let id = if n == 0 { 0 } else { 1 + prost::length_delimiter_len(n) + n };
        i64::try_from(prost::Message::encoded_len(self) - id).unwrap_or(i64::MAX)
    }
}

#[derive(Clone, PartialEq, prost::Message)]
#[prost(skip_debug)]
struct Entries {
    #[prost(message, repeated, tag = "1")]
    entries: Vec<Entry>,
}

/// A batch ready for [`TranscriptStore::insert_batches`]: its transcripts encoded, compressed
/// and sealed once ([`seal_batch`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedBatch {
    pub id: String,
    pub provider: String,
    pub ts_first: i64,
    pub ts_last: i64,
    pub key_id: String,
    pub entries: i64,
    /// The event ids it holds, space-separated.
    pub event_ids: String,
    /// Length of the encoded batch before compression (bounds decompression).
    pub plain_bytes: i64,
    /// Sum of the entries' [`Entry::stored_bytes`].
    pub stored_bytes: i64,
    /// `v1:<key_id>:…` of the compressed, encoded entries.
    pub sealed: String,
}

/// The AAD of a batch: its id and the list of its event ids, in entry order. The ids are kept
/// beside the sealed entries (the row's `event_ids`), not inside them: a batch of small
/// exchanges compressed 3.7 times faster and 7 times smaller without 36 random characters per
/// entry. Bound in the AAD, the list cannot be altered or reordered without the batch failing
/// to open.
fn batch_aad(id: &str, event_ids: &str) -> Vec<u8> {
    const PREFIX: &[u8] = b"transcript-batch:";
    let mut aad = Vec::with_capacity(PREFIX.len() + id.len() + 1 + event_ids.len());
    aad.extend_from_slice(PREFIX);
    aad.extend_from_slice(id.as_bytes());
    aad.push(b':');
    aad.extend_from_slice(event_ids.as_bytes());
    aad
}

/// The AAD of batches sealed before their ids moved out of the entries: the id only.
fn legacy_batch_aad(id: &str) -> Vec<u8> {
    format!("transcript-batch:{id}").into_bytes()
}

/// Encodes, compresses and seals `entries` (one provider's, at least one) as batch `id`,
/// under the keyring's primary key; the AAD binds the sealed text to the batch id and its
/// event ids (taken from the entries; the sealed entries carry none).
pub fn seal_batch(
    keyring: &Keyring,
    id: String,
    provider: String,
    mut entries: Vec<Entry>,
) -> Result<SealedBatch, StoreError> {
    let mut event_ids = String::with_capacity(entries.len() * 37);
    for e in &mut entries {
        if !event_ids.is_empty() {
            event_ids.push(' ');
        }
        event_ids.push_str(&std::mem::take(&mut e.event_id));
    }
    seal_batch_of(keyring, id, provider, event_ids, &entries)
}

/// [`seal_batch`] with the event ids given as the batch keeps them (space-separated, in entry
/// order); the entries' own `event_id` must be empty. The usage writer collects the list as it
/// assigns events to batches, so no entry carries a copy of its id, and keeps the entries to
/// free them on a runtime worker (freed on the sealing thread, each of their buffers went back
/// through the allocator's cross-thread path, and the proxy's next allocations on those pages
/// took its slow path; ARCHITECTURE.md, Decisions: Memory allocator).
pub fn seal_batch_of(
    keyring: &Keyring,
    id: String,
    provider: String,
    event_ids: String,
    entries: &[Entry],
) -> Result<SealedBatch, StoreError> {
    // Spaces counted byte by byte rather than split into a list: one id per request of the batch.
    let listed = if event_ids.is_empty() { 0 } else { event_ids.bytes().filter(|b| *b == b' ').count() + 1 };
    if listed != entries.len() || entries.iter().any(|e| !e.event_id.is_empty()) {
        return Err(StoreError::Invalid(format!(
            "transcript batch \"{id}\": {listed} event ids for {} entries (or an entry that names its own)",
            entries.len()
        )));
    }
    let ts_first = entries.iter().map(|e| e.ts_ms).min().unwrap_or(0);
    let ts_last = entries.iter().map(|e| e.ts_ms).max().unwrap_or(0);
    let stored_bytes = entries.iter().map(Entry::stored_bytes).sum();
    let n = entries.len() as i64;
    let plain = encode_entries(entries)?;
    let sealed = keyring.seal(&batch_aad(&id, &event_ids), &pack(&plain)?)?;
    Ok(SealedBatch {
        id,
        provider,
        ts_first,
        ts_last,
        key_id: keyring.primary_id(),
        entries: n,
        event_ids,
        plain_bytes: plain.len() as i64,
        stored_bytes,
        sealed,
    })
}

/// `entries` encoded as an [`Entries`] message (field 1, repeated), from a slice: the same
/// bytes as `Entries { entries }.encode_to_vec()`, without owning them.
fn encode_entries(entries: &[Entry]) -> Result<Vec<u8>, StoreError> {
    let lens: usize = entries
        .iter()
        .map(|e| {
            let n = prost::Message::encoded_len(e);
            1 + prost::length_delimiter_len(n) + n
        })
        .sum();
    let mut plain = Vec::with_capacity(lens);
    for e in entries {
        plain.push(0x0A); // field 1, wire type 2 (length-delimited)
        prost::Message::encode_length_delimited(e, &mut plain)
            .map_err(|e| StoreError::Invalid(format!("encoding a transcript batch: {e}")))?;
    }
    Ok(plain)
}

/// Opens a batch sealed by [`seal_batch`] (under any key the keyring holds), `event_ids` being
/// the list its row keeps; each entry comes back with its event id filled in. A batch sealed
/// before the ids moved out of the entries opens under its id alone and keeps its own ids.
pub fn open_batch(
    keyring: &Keyring,
    id: &str,
    event_ids: &str,
    sealed: &str,
    plain_bytes: i64,
) -> Result<Vec<Entry>, StoreError> {
    let (packed, legacy) = match keyring.open(&batch_aad(id, event_ids), sealed) {
        Ok(p) => (p, false),
        Err(e) => (keyring.open(&legacy_batch_aad(id), sealed).map_err(|_| e)?, true),
    };
    let what = || format!("transcript batch \"{id}\"");
    let plain = unpack(&packed, usize::try_from(plain_bytes).unwrap_or(0), &what())?;
    let decoded: Entries = prost::Message::decode(plain.as_slice())
        .map_err(|e| StoreError::Corrupt(format!("{} does not decode: {e}", what())))?;
    let mut entries = decoded.entries;
    if legacy {
        return Ok(entries);
    }
    let ids: Vec<&str> = if event_ids.is_empty() { Vec::new() } else { event_ids.split(' ').collect() };
    if ids.len() != entries.len() {
        return Err(StoreError::Corrupt(format!(
            "{} lists {} event ids for {} entries",
            what(),
            ids.len(),
            entries.len()
        )));
    }
    for (e, event_id) in entries.iter_mut().zip(ids) {
        e.event_id = event_id.to_string();
    }
    Ok(entries)
}

/// One opened body.
#[derive(Clone, PartialEq, Eq)]
pub struct OpenBody {
    pub bytes: Vec<u8>,
    /// The body was longer than the capture limit: only its head is kept.
    pub truncated: bool,
}

impl std::fmt::Debug for OpenBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenBody").field("len", &self.bytes.len()).field("truncated", &self.truncated).finish()
    }
}

/// An event's transcript, opened ([`TranscriptStore::open`]), whichever way it was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transcript {
    pub event_id: String,
    /// Key id it is sealed under.
    pub key_id: String,
    /// The allow-listed request headers, in the order they were kept.
    pub request_headers: Vec<(String, String)>,
    pub response_content_type: Option<String>,
    pub input: Option<OpenBody>,
    pub output: Option<OpenBody>,
}

impl Transcript {
    pub fn flags(&self) -> TranscriptFlags {
        TranscriptFlags::of(self.input.as_ref().map(|b| b.truncated), self.output.as_ref().map(|b| b.truncated))
    }

    fn from_entry(e: Entry, key_id: String) -> Result<Transcript, StoreError> {
        let body = |b: Option<Vec<u8>>, truncated| b.map(|bytes| OpenBody { bytes, truncated });
        Ok(Transcript {
            request_headers: parse_headers(&e.request_headers)
                .map_err(|why| StoreError::Corrupt(format!("headers of transcript \"{}\": {why}", e.event_id)))?,
            input: body(e.input, e.input_truncated),
            output: body(e.output, e.output_truncated),
            event_id: e.event_id,
            key_id,
            response_content_type: e.response_content_type,
        })
    }
}

/// Kept request headers as stored: `name: value` lines, or a JSON object of strings (the rows
/// of transcripts recorded before batching, and the first batches written, kept them so).
fn parse_headers(text: &str) -> Result<Vec<(String, String)>, String> {
    if text.starts_with('{') {
        let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text).map_err(|e| e.to_string())?;
        return Ok(map.into_iter().map(|(n, v)| (n, v.as_str().unwrap_or_default().to_string())).collect());
    }
    Ok(text.lines().filter_map(|l| l.split_once(": ")).map(|(n, v)| (n.to_string(), v.to_string())).collect())
}

/// A stored batch's row.
struct BatchRow {
    id: String,
    provider: String,
    key_id: String,
    entries: i64,
    event_ids: String,
    plain_bytes: i64,
    stored_bytes: i64,
    sealed: String,
    version: i64,
}

macro_rules! batch_columns {
    () => {
        "id, provider, key_id, entries, event_ids, plain_bytes, stored_bytes, sealed, version"
    };
}

/// `bind_contents!(query, batch)`: binds a sealed batch's contents after what `query` bound
/// already: `ts_first`, `ts_last`, `key_id`, `entries`, `event_ids`, `plain_bytes`,
/// `stored_bytes`, `sealed`, in that order (the INSERT and the rewrite's UPDATE both).
macro_rules! bind_contents {
    ($q:expr, $b:expr) => {{
        let b: &SealedBatch = $b;
        $q.bind(b.ts_first)
            .bind(b.ts_last)
            .bind(b.key_id.as_str())
            .bind(b.entries)
            .bind(b.event_ids.as_str())
            .bind(b.plain_bytes)
            .bind(b.stored_bytes)
            .bind(b.sealed.as_str())
    }};
}

/// `fetch_batches!(store, sql, binds…)`: the batch rows `sql` selects.
macro_rules! fetch_batches {
    ($store:expr, $sql:expr $(, $bind:expr)*) => {
        on_pool!($store, |p| {
            let rows = sqlx::query($sql)$(.bind($bind))*.fetch_all(p).await?;
            rows.iter().map(batch_from_row).collect::<Result<Vec<BatchRow>, StoreError>>()?
        })
    };
}

fn batch_from_row<R: RowExt>(row: &R) -> Result<BatchRow, StoreError> {
    Ok(BatchRow {
        id: row.text("id")?,
        provider: row.text("provider")?,
        key_id: row.text("key_id")?,
        entries: row.int("entries")?,
        event_ids: row.text("event_ids")?,
        plain_bytes: row.int("plain_bytes")?,
        stored_bytes: row.int("stored_bytes")?,
        sealed: row.text("sealed")?,
        version: row.int("version")?,
    })
}

/// Handle on the transcript database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct TranscriptStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pool: Pool,
    /// Per provider, the purge cutoff ([`TranscriptStore::mark_purged`]).
    purged: std::sync::Mutex<std::collections::HashMap<String, i64>>,
}

impl Inner {
    fn new(pool: Pool) -> Inner {
        Inner { pool, purged: std::sync::Mutex::default() }
    }
}

const COLUMNS: &str = "event_id, ts, provider, key_id, request_headers, response_content_type, input_sealed, \
     input_bytes, input_truncated, output_sealed, output_bytes, output_truncated, stored_bytes";

fn record_from_row<R: RowExt>(row: &R) -> Result<TranscriptRecord, StoreError> {
    let body = |sealed: &str, bytes: &str, truncated: &str| -> Result<Option<SealedBody>, StoreError> {
        Ok(match row.opt_text(sealed)? {
            None => None,
            Some(s) => Some(SealedBody {
                sealed: s,
                bytes: row.opt_int(bytes)?.unwrap_or(0),
                truncated: row.boolean(truncated)?,
            }),
        })
    };
    Ok(TranscriptRecord {
        event_id: row.text("event_id")?,
        ts_ms: row.int("ts")?,
        provider: row.text("provider")?,
        key_id: row.text("key_id")?,
        request_headers: row.text("request_headers")?,
        response_content_type: row.opt_text("response_content_type")?,
        input: body("input_sealed", "input_bytes", "input_truncated")?,
        output: body("output_sealed", "output_bytes", "output_truncated")?,
    })
}

/// Rows per multi-row statement (13 columns: far under both backends' bind limits).
const ROWS_PER_INSERT: usize = 200;

/// The transcript INSERTs: a batch is cut into these statement sizes, each prepared once
/// (`db::MultiRowInsert`); a row whose event id is stored already is left as it is.
static INSERT: crate::db::MultiRowInsert = crate::db::MultiRowInsert::new(
    "transcripts",
    COLUMNS,
    " ON CONFLICT (event_id) DO NOTHING",
    &[ROWS_PER_INSERT, 50, 10, 1],
);

impl TranscriptStore {
    /// Opens the transcript database at `url` (a SQLite file of its own, or PostgreSQL) and
    /// runs its migrations.
    pub async fn connect(url: &str) -> Result<TranscriptStore, StoreError> {
        let pool = crate::db::connect(url, crate::db::TRANSCRIPTS).await?;
        Ok(TranscriptStore { inner: Arc::new(Inner::new(pool)) })
    }

    /// Shares the config store's pool (PostgreSQL: the config migrations created the tables).
    /// `None` on SQLite, whose transcripts live in their own file.
    pub fn sharing(store: &Store) -> Option<TranscriptStore> {
        store.postgres_pool().map(|pool| TranscriptStore { inner: Arc::new(Inner::new(pool)) })
    }

    /// Records that `provider`'s transcripts of requests that started before `cutoff_ms` were
    /// purged: the ones still on their way (queued in this process's usage writer, or of a
    /// stream still running) are dropped when they are written ([`TranscriptStore::purge_cutoffs`]),
    /// instead of landing after the purge. Per process: another replica's queue is its own.
    pub fn mark_purged(&self, provider: &str, cutoff_ms: i64) {
        let mut purged = match self.inner.purged.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let c = purged.entry(provider.to_string()).or_insert(cutoff_ms);
        *c = (*c).max(cutoff_ms);
    }

    /// The cutoffs [`TranscriptStore::mark_purged`] recorded, by provider.
    pub fn purge_cutoffs(&self) -> std::collections::HashMap<String, i64> {
        match self.inner.purged.lock() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Writes sealed batches ([`seal_batch`]) in one transaction; a batch whose id is stored
    /// already is left as it is.
    pub async fn insert_batches(&self, batches: &[SealedBatch]) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO transcript_batches (id, provider, ts_first, ts_last, key_id, entries, \
             event_ids, plain_bytes, stored_bytes, sealed) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (id) DO NOTHING";
        if batches.is_empty() {
            return Ok(());
        }
        on_pool!(self, |p| {
            let mut tx = p.begin().await?;
            for b in batches {
                bind_contents!(sqlx::query(SQL).bind(b.id.as_str()).bind(b.provider.as_str()), b)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Writes transcripts as rows of their own, one per event: the format gateways wrote before
    /// transcripts were batched. Nothing writes it any more; it is kept so the upgrade path
    /// (those rows read, purged, swept and re-sealed as before) stays tested. A row whose event
    /// id is already stored is left as it is.
    pub async fn insert_rows(&self, records: &[TranscriptRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let is_pg = matches!(self.inner.pool, crate::db::Pool::Postgres(_));
        on_pool!(self, |p| {
            let mut tx = p.begin().await?;
            for (sql, chunk) in INSERT.statements(is_pg, records) {
                let mut q = sqlx::query(sql);
                for r in chunk {
                    let (is, ib, it) = split(&r.input);
                    let (os, ob, ot) = split(&r.output);
                    q = q
                        .bind(r.event_id.as_str())
                        .bind(r.ts_ms)
                        .bind(r.provider.as_str())
                        .bind(r.key_id.as_str())
                        .bind(r.request_headers.as_str())
                        .bind(r.response_content_type.as_deref())
                        .bind(is)
                        .bind(ib)
                        .bind(it)
                        .bind(os)
                        .bind(ob)
                        .bind(ot)
                        .bind(r.stored_bytes());
                }
                q.persistent(true).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// The transcript of event `event_id`, opened with `keyring`, if it is held: in the batch
    /// `reference` names, or (no reference: recorded before batching) in a row of its own.
    pub async fn open(
        &self,
        keyring: &Keyring,
        event_id: &str,
        reference: Option<&TranscriptRef>,
    ) -> Result<Option<Transcript>, StoreError> {
        let Some(r) = reference else {
            let Some(row) = self.get(event_id).await? else { return Ok(None) };
            let open = |dir, b: Option<SealedBody>| -> Result<Option<OpenBody>, StoreError> {
                b.map(|b| {
                    let bytes = open_body(keyring, event_id, dir, &b.sealed, usize::try_from(b.bytes).unwrap_or(0))?;
                    Ok(OpenBody { bytes, truncated: b.truncated })
                })
                .transpose()
            };
            return Ok(Some(Transcript {
                input: open(Direction::Input, row.input)?,
                output: open(Direction::Output, row.output)?,
                request_headers: parse_headers(&row.request_headers)
                    .map_err(|why| StoreError::Corrupt(format!("headers of transcript \"{event_id}\": {why}")))?,
                event_id: row.event_id,
                key_id: row.key_id,
                response_content_type: row.response_content_type,
            }));
        };
        const SQL: &str = concat!("SELECT ", batch_columns!(), " FROM transcript_batches WHERE id = $1");
        let row = on_pool!(self, |p| {
            let row = sqlx::query(SQL).bind(&*r.batch).fetch_optional(p).await?;
            row.as_ref().map(batch_from_row).transpose()?
        });
        let Some(row) = row else { return Ok(None) };
        let entries = open_batch(keyring, &row.id, &row.event_ids, &row.sealed, row.plain_bytes)?;
        entries.into_iter().find(|e| e.event_id == event_id).map(|e| Transcript::from_entry(e, row.key_id)).transpose()
    }

    /// The row of an event's transcript recorded before batching, if there is one.
    pub async fn get(&self, event_id: &str) -> Result<Option<TranscriptRecord>, StoreError> {
        const SQL: &str = "SELECT event_id, ts, provider, key_id, request_headers, response_content_type, \
             input_sealed, input_bytes, input_truncated, output_sealed, output_bytes, output_truncated, stored_bytes \
             FROM transcripts WHERE event_id = $1";
        on_pool!(self, |p| {
            let row = sqlx::query(SQL).bind(event_id).fetch_optional(p).await?;
            row.as_ref().map(record_from_row).transpose()
        })
    }

    /// Which of `events` have a transcript held, and of what (by event id): an event naming a
    /// batch when the batch still holds it, an older one when its row exists.
    pub async fn flags(&self, events: &[crate::UsageEvent]) -> Result<HashMap<String, TranscriptFlags>, StoreError> {
        let legacy: Vec<String> = events.iter().filter(|e| e.transcript.is_none()).map(|e| e.id.clone()).collect();
        let mut out = self.row_flags(&legacy).await?;
        let mut batches: Vec<&str> = events.iter().filter_map(|e| e.transcript.as_ref()).map(|t| &*t.batch).collect();
        batches.sort_unstable();
        batches.dedup();
        let mut held: HashMap<String, String> = HashMap::new();
        for chunk in batches.chunks(ROWS_PER_INSERT) {
            let rows: Vec<(String, String)> = on_pool!(self, |p| {
                let mut qb = sqlx::QueryBuilder::new("SELECT id, event_ids FROM transcript_batches WHERE id IN (");
                let mut sep = qb.separated(", ");
                for id in chunk {
                    sep.push_bind(id.to_string());
                }
                qb.push(")");
                qb.build_query_as().persistent(false).fetch_all(p).await?
            });
            held.extend(rows);
        }
        for e in events {
            if let Some(t) = &e.transcript
                && held.get(&*t.batch).is_some_and(|ids| ids.split(' ').any(|id| id == e.id))
            {
                out.insert(e.id.clone(), t.flags);
            }
        }
        Ok(out)
    }

    /// Which of `ids` have a transcript row of their own (recorded before batching), and of what.
    async fn row_flags(&self, ids: &[String]) -> Result<HashMap<String, TranscriptFlags>, StoreError> {
        let mut out = HashMap::new();
        for chunk in ids.chunks(ROWS_PER_INSERT) {
            if chunk.is_empty() {
                continue;
            }
            let rows: Vec<(String, bool, bool, bool, bool)> = on_pool!(self, |p| {
                let mut qb = sqlx::QueryBuilder::new(
                    "SELECT event_id, input_sealed IS NOT NULL, output_sealed IS NOT NULL, input_truncated, \
                     output_truncated FROM transcripts WHERE event_id IN (",
                );
                let mut sep = qb.separated(", ");
                for id in chunk {
                    sep.push_bind(id.clone());
                }
                qb.push(")");
                qb.build_query_as().persistent(false).fetch_all(p).await?
            });
            for (id, input, output, it, ot) in rows {
                out.insert(id, TranscriptFlags { input, output, truncated: it || ot });
            }
        }
        Ok(out)
    }

    /// Deletes transcripts older than `before_ms` (of `provider` only, when given), at most
    /// `chunk` rows per statement, until none are left; returns how many went. A batch wholly
    /// older goes; one holding transcripts from both sides is re-sealed without the older ones
    /// (`keyring` opens and seals it).
    pub async fn delete_before(
        &self,
        keyring: &Keyring,
        provider: Option<&str>,
        before_ms: i64,
        chunk: i64,
    ) -> Result<u64, StoreError> {
        let mut total = self.delete_rows_before(provider, before_ms, chunk).await?;
        const WHOLE: &str = "DELETE FROM transcript_batches WHERE id IN (SELECT id FROM transcript_batches \
             WHERE ts_first < $1 AND ts_last < $1 AND ($2 IS NULL OR provider = $2) ORDER BY ts_first LIMIT $3) \
             RETURNING entries";
        loop {
            let gone: Vec<i64> = on_pool!(self, |p| {
                sqlx::query_scalar(WHOLE).bind(before_ms).bind(provider).bind(chunk.max(1)).fetch_all(p).await?
            });
            if gone.is_empty() {
                break;
            }
            total += gone.iter().map(|n| u64::try_from(*n).unwrap_or(0)).sum::<u64>();
        }
        // What is left starting before `before_ms` ends after it: keep the newer transcripts.
        const STRADDLING: &str = concat!(
            "SELECT ",
            batch_columns!(),
            " FROM transcript_batches WHERE ts_first < $1 AND ($2 IS NULL OR provider = $2) ORDER BY ts_first, id LIMIT $3"
        );
        loop {
            let rows = fetch_batches!(self, STRADDLING, before_ms, provider, chunk.max(1));
            if rows.is_empty() {
                return Ok(total);
            }
            for row in rows {
                let entries = open_batch(keyring, &row.id, &row.event_ids, &row.sealed, row.plain_bytes)?;
                let (kept, gone): (Vec<Entry>, Vec<Entry>) = entries.into_iter().partition(|e| e.ts_ms >= before_ms);
                if self.replace(keyring, &row, kept).await? {
                    total += gone.len() as u64;
                }
            }
        }
    }

    /// Stores `kept` as batch `row` (re-sealed under the primary key), or deletes the batch when
    /// nothing is kept. `false` when the batch changed since `row` was read (another rewrite
    /// won): nothing is written and the caller reads it again.
    async fn replace(&self, keyring: &Keyring, row: &BatchRow, kept: Vec<Entry>) -> Result<bool, StoreError> {
        if kept.is_empty() {
            let n = on_pool!(self, |p| {
                sqlx::query("DELETE FROM transcript_batches WHERE id = $1 AND version = $2")
                    .bind(row.id.as_str())
                    .bind(row.version)
                    .execute(p)
                    .await?
                    .rows_affected()
            });
            return Ok(n == 1);
        }
        let b = seal_batch(keyring, row.id.clone(), row.provider.clone(), kept)?;
        const REWRITE: &str = "UPDATE transcript_batches SET ts_first = $3, ts_last = $4, key_id = $5, entries = $6, \
             event_ids = $7, plain_bytes = $8, stored_bytes = $9, sealed = $10, version = version + 1 \
             WHERE id = $1 AND version = $2";
        let n = on_pool!(self, |p| {
            bind_contents!(sqlx::query(REWRITE).bind(row.id.as_str()).bind(row.version), &b)
                .execute(p)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }

    /// [`TranscriptStore::delete_before`] over the rows recorded before batching.
    async fn delete_rows_before(&self, provider: Option<&str>, before_ms: i64, chunk: i64) -> Result<u64, StoreError> {
        const SQL: &str = "DELETE FROM transcripts WHERE event_id IN (SELECT event_id FROM transcripts \
             WHERE ts < $1 AND ($2 IS NULL OR provider = $2) ORDER BY ts LIMIT $3)";
        let mut total = 0u64;
        loop {
            let n = on_pool!(self, |p| {
                sqlx::query(SQL).bind(before_ms).bind(provider).bind(chunk.max(1)).execute(p).await?.rows_affected()
            });
            total += n;
            if n == 0 {
                return Ok(total);
            }
        }
    }

    /// What the size cap counts over every transcript: the sealed size of each row recorded
    /// before batching, and each batched transcript's encoded size before compression.
    pub async fn total_bytes(&self) -> Result<i64, StoreError> {
        let (rows, batches): (Option<i64>, Option<i64>) = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT (SELECT CAST(SUM(stored_bytes) AS BIGINT) FROM transcripts), \
                 (SELECT CAST(SUM(stored_bytes) AS BIGINT) FROM transcript_batches)",
            )
            .fetch_one(p)
            .await?
        });
        Ok(rows.unwrap_or(0) + batches.unwrap_or(0))
    }

    /// How many transcripts are stored.
    pub async fn count(&self) -> Result<i64, StoreError> {
        let (rows, batched): (i64, Option<i64>) = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT (SELECT COUNT(*) FROM transcripts), \
                 (SELECT CAST(SUM(entries) AS BIGINT) FROM transcript_batches)",
            )
            .fetch_one(p)
            .await?
        });
        Ok(rows + batched.unwrap_or(0))
    }

    /// Deletes the oldest transcripts until what the cap counts ([`TranscriptStore::total_bytes`])
    /// is at most `max_total`, reading at most `chunk` rows at a time; returns how many went.
    /// Rows recorded before batching are the oldest and go first; then whole batches, oldest
    /// first, and of the batch that crosses the line its oldest transcripts (it is re-sealed
    /// without them with `keyring`).
    pub async fn shrink_to(&self, keyring: &Keyring, max_total: i64, chunk: i64) -> Result<u64, StoreError> {
        let mut excess = self.total_bytes().await? - max_total.max(0);
        let mut total = 0u64;
        while excess > 0 {
            let oldest: Vec<(String, i64)> = on_pool!(self, |p| {
                sqlx::query_as("SELECT event_id, stored_bytes FROM transcripts ORDER BY ts, event_id LIMIT $1")
                    .bind(chunk.max(1))
                    .fetch_all(p)
                    .await?
            });
            if oldest.is_empty() {
                break;
            }
            let mut ids = Vec::new();
            for (id, bytes) in oldest {
                if excess <= 0 {
                    break;
                }
                excess -= bytes;
                ids.push(id);
            }
            total += self.delete_ids(&ids).await?;
        }
        const OLDEST: &str =
            concat!("SELECT ", batch_columns!(), " FROM transcript_batches ORDER BY ts_first, id LIMIT $1");
        while excess > 0 {
            let rows = fetch_batches!(self, OLDEST, chunk.max(1));
            if rows.is_empty() {
                break;
            }
            for row in rows {
                if excess <= 0 {
                    break;
                }
                if row.stored_bytes <= excess {
                    if self.replace(keyring, &row, Vec::new()).await? {
                        excess -= row.stored_bytes;
                        total += u64::try_from(row.entries).unwrap_or(0);
                    }
                    continue;
                }
                let mut entries = open_batch(keyring, &row.id, &row.event_ids, &row.sealed, row.plain_bytes)?;
                entries.sort_by(|a, b| (a.ts_ms, &a.event_id).cmp(&(b.ts_ms, &b.event_id)));
                let mut freed = 0;
                let cut = entries
                    .iter()
                    .take_while(|e| {
                        let go = freed < excess;
                        freed += e.stored_bytes();
                        go
                    })
                    .count();
                let kept = entries.split_off(cut);
                let freed: i64 = entries.iter().map(Entry::stored_bytes).sum();
                if self.replace(keyring, &row, kept).await? {
                    excess -= freed;
                    total += cut as u64;
                }
            }
        }
        Ok(total)
    }

    async fn delete_ids(&self, ids: &[String]) -> Result<u64, StoreError> {
        let mut n = 0;
        for chunk in ids.chunks(ROWS_PER_INSERT) {
            n += on_pool!(self, |p| {
                let mut qb = sqlx::QueryBuilder::new("DELETE FROM transcripts WHERE event_id IN (");
                let mut sep = qb.separated(", ");
                for id in chunk {
                    sep.push_bind(id.clone());
                }
                qb.push(")");
                qb.build().persistent(false).execute(p).await?.rows_affected()
            });
        }
        Ok(n)
    }

    /// Re-seals every transcript not sealed under `keyring`'s primary key, `chunk` rows per
    /// transaction; returns how many were re-sealed. A row sealed under a key the keyring does
    /// not hold fails the run (nothing of its chunk changes). Safe to repeat after a crash:
    /// rows done carry the new key id and are skipped.
    pub async fn reseal(&self, keyring: &Keyring, chunk: i64) -> Result<u64, StoreError> {
        let new_id = keyring.primary_id();
        let mut total = 0u64;
        loop {
            const SELECT: &str = "SELECT event_id, ts, provider, key_id, request_headers, response_content_type, \
                 input_sealed, input_bytes, input_truncated, output_sealed, output_bytes, output_truncated, stored_bytes \
                 FROM transcripts WHERE key_id <> $1 ORDER BY ts, event_id LIMIT $2";
            let rows: Vec<TranscriptRecord> = on_pool!(self, |p| {
                let rows = sqlx::query(SELECT).bind(&new_id).bind(chunk.max(1)).fetch_all(p).await?;
                rows.iter().map(record_from_row).collect::<Result<Vec<_>, _>>()?
            });
            if rows.is_empty() {
                break;
            }
            let mut updated = Vec::with_capacity(rows.len());
            for mut r in rows {
                for (dir, body) in [(Direction::Input, &mut r.input), (Direction::Output, &mut r.output)] {
                    if let Some(b) = body {
                        let plain = keyring.open(&aad(&r.event_id, dir), &b.sealed)?;
                        b.sealed = keyring.seal(&aad(&r.event_id, dir), &plain)?;
                    }
                }
                r.key_id = new_id.clone();
                updated.push(r);
            }
            on_pool!(self, |p| {
                let mut tx = p.begin().await?;
                for r in &updated {
                    sqlx::query(
                        "UPDATE transcripts SET key_id = $2, input_sealed = $3, output_sealed = $4, stored_bytes = $5 \
                         WHERE event_id = $1",
                    )
                    .bind(&r.event_id)
                    .bind(&r.key_id)
                    .bind(r.input.as_ref().map(|b| b.sealed.clone()))
                    .bind(r.output.as_ref().map(|b| b.sealed.clone()))
                    .bind(r.stored_bytes())
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
            });
            total += updated.len() as u64;
        }
        const STALE: &str = concat!(
            "SELECT ",
            batch_columns!(),
            " FROM transcript_batches WHERE key_id <> $1 ORDER BY ts_first, id LIMIT $2"
        );
        loop {
            let rows = fetch_batches!(self, STALE, new_id.as_str(), chunk.max(1));
            if rows.is_empty() {
                return Ok(total);
            }
            for row in rows {
                let entries = open_batch(keyring, &row.id, &row.event_ids, &row.sealed, row.plain_bytes)?;
                let n = entries.len() as u64;
                if self.replace(keyring, &row, entries).await? {
                    total += n;
                }
            }
        }
    }

    pub async fn close(&self) {
        on_pool!(self, |p| p.close().await)
    }
}

fn split(b: &Option<SealedBody>) -> (Option<&str>, Option<i64>, bool) {
    match b {
        Some(b) => (Some(b.sealed.as_str()), Some(b.bytes), b.truncated),
        None => (None, None, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MasterKey;

    fn ring() -> Keyring {
        Keyring::new(MasterKey::generate().unwrap_or_else(|e| panic!("{e}")))
    }

    #[test]
    fn inserts_are_cut_into_prepared_sizes_with_their_conflict_clause() {
        assert_eq!(INSERT.pieces(263), vec![200, 50, 10, 1, 1, 1]);
        let sqlite = INSERT.sql(false, 10);
        assert_eq!(sqlite.matches('?').count(), 10 * 13);
        assert!(sqlite.starts_with("INSERT INTO transcripts (event_id, ts, "), "{sqlite}");
        let pg = INSERT.sql(true, 10);
        assert!(pg.ends_with("$129, $130) ON CONFLICT (event_id) DO NOTHING"), "{pg}");
        assert!(pg.contains("($14, $15, "), "{pg}");
        assert_eq!(INSERT.sql(true, 3), "", "only the prepared sizes exist");
        let rows: Vec<usize> = (0..63).collect();
        let cut: Vec<(usize, Vec<usize>)> =
            INSERT.statements(false, &rows).map(|(sql, p)| (sql.matches('?').count() / 13, p.to_vec())).collect();
        assert_eq!(
            cut.iter().map(|(n, p)| (*n, p.len())).collect::<Vec<_>>(),
            vec![(50, 50), (10, 10), (1, 1), (1, 1), (1, 1)]
        );
        assert_eq!(cut.into_iter().flat_map(|(_, p)| p).collect::<Vec<_>>(), rows, "every row once, in order");
    }

    #[test]
    fn small_bodies_are_stored_raw_large_ones_compressed_and_both_open() {
        let ring = ring();
        let small = br#"{"messages":[{"role":"user","content":"hi"}]}"#.to_vec();
        let large = "{\"content\":\"la la la \"}".repeat(200).into_bytes();
        assert!(small.len() < COMPRESS_FROM && large.len() >= COMPRESS_FROM);
        for plain in [&small, &large, &Vec::new()] {
            let sealed = seal_body(&ring, "ev", Direction::Output, plain).unwrap_or_else(|e| panic!("{e}"));
            let packed = ring.open(&aad("ev", Direction::Output), &sealed).unwrap_or_else(|e| panic!("{e}"));
            if plain.len() < COMPRESS_FROM {
                assert_eq!(packed.first(), Some(&RAW));
            } else {
                assert!(packed.starts_with(&[0x28, 0xB5, 0x2F, 0xFD]), "a zstd frame");
                assert!(packed.len() < plain.len() / 4, "compressed: {} of {}", packed.len(), plain.len());
            }
            let opened = open_body(&ring, "ev", Direction::Output, &sealed, plain.len());
            assert_eq!(opened.unwrap_or_else(|e| panic!("{e}")), *plain);
        }
    }

    fn entry(id: &str, ts_ms: i64, body: &[u8]) -> Entry {
        Entry {
            event_id: id.into(),
            ts_ms,
            request_headers: "user-agent: t/1\n".into(),
            input: Some(body.to_vec()),
            output: Some(body.to_vec()),
            output_truncated: true,
            ..Entry::default()
        }
    }

    #[test]
    fn a_batch_opens_under_its_own_id_only_and_keeps_every_entry() {
        let ring = ring();
        let small = vec![entry("e1", 5, b"{\"a\":1}")];
        let large: Vec<Entry> =
            (0..50).map(|i| entry(&format!("e{i}"), 100 - i, format!("body {i} la la la").as_bytes())).collect();
        for entries in [small, large] {
            let b = seal_batch(&ring, "b-1".into(), "p".into(), entries.clone()).unwrap_or_else(|e| panic!("{e}"));
            let first = entries.iter().map(|e| e.ts_ms).min();
            let last = entries.iter().map(|e| e.ts_ms).max();
            assert_eq!((b.entries, Some(b.ts_first), Some(b.ts_last)), (entries.len() as i64, first, last));
            assert_eq!(b.event_ids.split(' ').count(), entries.len());
            assert_eq!(b.stored_bytes, entries.iter().map(Entry::stored_bytes).sum::<i64>());
            assert!(b.sealed.starts_with("v1:") && !b.sealed.contains("la la"), "sealed");
            let open = |id: &str, ids: &str| open_batch(&ring, id, ids, &b.sealed, b.plain_bytes);
            let opened = open("b-1", &b.event_ids).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(opened, entries, "every entry, its id filled in from the batch's list");
            assert!(open("b-2", &b.event_ids).is_err(), "bound to its batch id");
            // The ids are kept beside the entries, bound by the AAD: altered, the batch does not open.
            let mut ids: Vec<&str> = b.event_ids.split(' ').collect();
            if ids.len() > 1 {
                ids.swap(0, 1);
                assert!(open("b-1", &ids.join(" ")).is_err(), "ids reordered");
            }
            assert!(open("b-1", &b.event_ids.replacen("e1", "e9", 1)).is_err(), "an id replaced");
            assert!(open("b-1", &format!("{} e99", b.event_ids)).is_err(), "an id added");
            assert!(
                b.plain_bytes < entries.iter().map(|e| prost::Message::encoded_len(e) as i64 + 2).sum::<i64>(),
                "the sealed entries carry no ids"
            );
        }
        let e = entry("e1", 5, b"secret prompt");
        assert!(!format!("{e:?}").contains("secret"), "Debug leaves bodies out");
        let pairs = |v: &[(&str, &str)]| v.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect::<Vec<_>>();
        assert_eq!(parse_headers("user-agent: t/1\nx-y: a: b\n"), Ok(pairs(&[("user-agent", "t/1"), ("x-y", "a: b")])));
        assert_eq!(
            parse_headers(r#"{"content-type":"application/json"}"#),
            Ok(pairs(&[("content-type", "application/json")]))
        );
        assert_eq!(parse_headers(""), Ok(Vec::new()));
        assert!(parse_headers("{not json").is_err());
        let flags = TranscriptFlags::of(Some(false), Some(true));
        assert_eq!(flags, TranscriptFlags { input: true, output: true, truncated: true });
        assert_eq!(TranscriptFlags::from_bits(flags.bits()), flags);
        let input_only = TranscriptFlags::of(Some(false), None);
        assert_eq!(TranscriptFlags::from_bits(input_only.bits()), input_only);
        assert_eq!(input_only, TranscriptFlags { input: true, output: false, truncated: false });
    }

    #[test]
    fn batches_sealed_with_their_ids_inside_still_open() {
        // Before the ids moved out: each entry carried its id, the AAD named the batch only.
        let ring = ring();
        let entries: Vec<Entry> = (0..3).map(|i| entry(&format!("old-{i}"), i, b"answer")).collect();
        let plain = prost::Message::encode_to_vec(&Entries { entries: entries.clone() });
        let sealed = ring.seal(&legacy_batch_aad("b-old"), &pack(&plain).unwrap_or_else(|e| panic!("{e}")));
        let sealed = sealed.unwrap_or_else(|e| panic!("{e}"));
        let listed = "old-0 old-1 old-2";
        let opened = open_batch(&ring, "b-old", listed, &sealed, plain.len() as i64);
        assert_eq!(opened.unwrap_or_else(|e| panic!("{e}")), entries);
        assert!(open_batch(&ring, "b-other", listed, &sealed, plain.len() as i64).is_err(), "still bound to its id");
        // Re-sealed (retention, rotate-key), it takes the current form and opens the same.
        let again = seal_batch(&ring, "b-old".into(), "p".into(), entries.clone()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again.event_ids, listed);
        let reopened = open_batch(&ring, "b-old", &again.event_ids, &again.sealed, again.plain_bytes);
        assert_eq!(reopened.unwrap_or_else(|e| panic!("{e}")), entries);
        // The writer's form: ids given as a list, entries without their own.
        let bare: Vec<Entry> = entries.iter().map(|e| Entry { event_id: String::new(), ..e.clone() }).collect();
        let of = seal_batch_of(&ring, "b-new".into(), "p".into(), listed.into(), &bare);
        let of = of.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(of.stored_bytes, again.stored_bytes, "the size cap counts the same either way");
        let opened = open_batch(&ring, "b-new", listed, &of.sealed, of.plain_bytes).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(opened, entries);
        assert!(seal_batch_of(&ring, "b".into(), "p".into(), "a b".into(), &bare).is_err(), "ids ≠ entries");
        assert!(seal_batch_of(&ring, "b".into(), "p".into(), listed.into(), &entries).is_err(), "entries name ids");
        let bytes = encode_entries(&bare).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(bytes, prost::Message::encode_to_vec(&Entries { entries: bare }), "a slice encodes as the message");
    }

    #[test]
    fn bodies_sealed_before_the_raw_tag_still_open() {
        let ring = ring();
        let plain = b"short, and compressed as every body once was";
        let frame = zstd::bulk::compress(plain, ZSTD_LEVEL).unwrap_or_else(|e| panic!("{e}"));
        let sealed = ring.seal(&aad("old", Direction::Input), &frame).unwrap_or_else(|e| panic!("{e}"));
        let opened = open_body(&ring, "old", Direction::Input, &sealed, plain.len());
        assert_eq!(opened.unwrap_or_else(|e| panic!("{e}")), plain.to_vec());
    }
}
