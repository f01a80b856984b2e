//! Transcripts: the recorded request and response bodies of proxied requests whose provider
//! asked for them (ARCHITECTURE.md, Decisions: Transcripts). One row per usage event, keyed
//! by the event id, written in batches by the gateway's usage writer (never on the request path).
//!
//! Each body is compressed with zstd (from [`COMPRESS_FROM`] bytes on; shorter ones are kept
//! as they are, tagged) and then sealed with the master key ([`Keyring::seal`]:
//! AES-256-GCM, `v1:<key_id>:…`), with an AAD naming the event and the direction, so a sealed
//! body copied to another row or swapped with the other direction does not open. The row keeps
//! the key id (for [`TranscriptStore::reseal`], run by `secrets rotate-key`), the original
//! length, whether the capture was truncated, and `stored_bytes` (what the size cap counts).
//! Besides the bodies only an allow-list of non-secret request headers is kept.
//!
//! [`TranscriptStore`] is a handle of its own: on SQLite its own file (`transcripts.sqlite`,
//! own migration list), so large body writes never hold the usage database's write lock; on
//! PostgreSQL tables of their own in the config database. Deletes (retention, the size cap,
//! purges) run in chunks so no statement holds a long lock.

use crate::db::{Pool, RowExt};
use crate::{Keyring, Store, StoreError};
use std::collections::HashMap;
use std::sync::Arc;

/// zstd level: fast, and text bodies still shrink several times.
const ZSTD_LEVEL: i32 = 3;

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

/// Compresses (from [`COMPRESS_FROM`] bytes on) and seals one body under the keyring's primary
/// key.
pub fn seal_body(keyring: &Keyring, event_id: &str, dir: Direction, plain: &[u8]) -> Result<String, StoreError> {
    let packed = if plain.len() < COMPRESS_FROM {
        let mut tagged = Vec::with_capacity(plain.len() + 1);
        tagged.push(RAW);
        tagged.extend_from_slice(plain);
        tagged
    } else {
        compress(plain).map_err(|e| StoreError::Invalid(format!("compressing a transcript body: {e}")))?
    };
    keyring.seal(&aad(event_id, dir), &packed)
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
    if let Some((&RAW, plain)) = packed.split_first() {
        return Ok(plain.to_vec());
    }
    zstd::bulk::decompress(&packed, original_len.max(1))
        .map_err(|e| StoreError::Corrupt(format!("transcript of \"{event_id}\" does not decompress: {e}")))
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

/// Handle on the transcript database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct TranscriptStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pool: Pool,
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
        Ok(TranscriptStore { inner: Arc::new(Inner { pool }) })
    }

    /// Shares the config store's pool (PostgreSQL: the config migrations created the tables).
    /// `None` on SQLite, whose transcripts live in their own file.
    pub fn sharing(store: &Store) -> Option<TranscriptStore> {
        store.postgres_pool().map(|pool| TranscriptStore { inner: Arc::new(Inner { pool }) })
    }

    /// Writes a batch of transcripts in one transaction. A row whose event id is already
    /// stored (a replayed batch) is left as it is.
    pub async fn insert(&self, records: &[TranscriptRecord]) -> Result<(), StoreError> {
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

    /// The transcript of one event, if recorded.
    pub async fn get(&self, event_id: &str) -> Result<Option<TranscriptRecord>, StoreError> {
        const SQL: &str = "SELECT event_id, ts, provider, key_id, request_headers, response_content_type, \
             input_sealed, input_bytes, input_truncated, output_sealed, output_bytes, output_truncated, stored_bytes \
             FROM transcripts WHERE event_id = $1";
        on_pool!(self, |p| {
            let row = sqlx::query(SQL).bind(event_id).fetch_optional(p).await?;
            row.as_ref().map(record_from_row).transpose()
        })
    }

    /// Which of `ids` have a transcript, and of what.
    pub async fn flags(&self, ids: &[String]) -> Result<HashMap<String, TranscriptFlags>, StoreError> {
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
    /// `chunk` per statement, until none are left; returns how many went.
    pub async fn delete_before(&self, provider: Option<&str>, before_ms: i64, chunk: i64) -> Result<u64, StoreError> {
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

    /// Sum of `stored_bytes` over every transcript.
    pub async fn total_bytes(&self) -> Result<i64, StoreError> {
        let n: Option<i64> = on_pool!(self, |p| {
            sqlx::query_scalar("SELECT CAST(SUM(stored_bytes) AS BIGINT) FROM transcripts").fetch_one(p).await?
        });
        Ok(n.unwrap_or(0))
    }

    /// How many transcripts are stored.
    pub async fn count(&self) -> Result<i64, StoreError> {
        let n: i64 = on_pool!(self, |p| { sqlx::query_scalar("SELECT COUNT(*) FROM transcripts").fetch_one(p).await? });
        Ok(n)
    }

    /// Deletes the oldest transcripts until their `stored_bytes` add up to at most `max_total`,
    /// reading and deleting at most `chunk` rows at a time; returns how many went.
    pub async fn shrink_to(&self, max_total: i64, chunk: i64) -> Result<u64, StoreError> {
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
                return Ok(total);
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
