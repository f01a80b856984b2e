//! Usage events: one per proxied request, written in batches by the gateway's usage writer
//! (never on the request path) as segments (`segments.rs`: a batch's events encoded together,
//! with a term row per filterable value), plus their hourly rollups, upserted in the same
//! transaction (so a report never sees an event without its rollup or the reverse). Reports
//! read the rollups (`spending.rs`); raw events are for drill-down and expire with retention
//! ([`UsageStore::delete_events_before`], in chunks so no statement holds a long lock).
//!
//! [`UsageStore`] is separate from [`crate::Store`]: on SQLite it is its own file
//! (`usage.sqlite`), so a burst of usage writes never holds the config database's write lock;
//! on PostgreSQL it is the same database (and may share the config pool).

use crate::conversation::{CONVERSATION_UPSERT, ConversationDelta, conversation_deltas};
use crate::db::{Pool, RowExt};
use crate::rollup::{bind_rollup, rollup};
use crate::token_usage::{TOKEN_DAY_UPSERT, token_days};
use crate::transcripts::{TranscriptFlags, TranscriptRef};
use crate::{Store, StoreError, UsageEvent};
use std::sync::Arc;
use tollgate_core::{Cost, ProviderType, RequestStatus, Usage};

/// Filters for [`UsageStore::list_events`]; events come back oldest first.
#[derive(Debug, Clone, Default)]
pub struct UsageQuery {
    pub provider: Option<String>,
    /// Inclusive lower bound on `ts_ms`.
    pub since_ms: Option<i64>,
    /// At most this many rows (default 1000).
    pub limit: Option<u32>,
}

/// Handle on the usage database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct UsageStore {
    pub(crate) inner: Arc<UsageInner>,
}

#[derive(Debug)]
pub(crate) struct UsageInner {
    pub(crate) pool: Pool,
}

macro_rules! columns {
    () => {
        "id, ts, provider, provider_type, model, endpoint, user_email, agent, token_id, status, \
     http_status, error_class, streamed, latency_ms, ttft_ms, tokens_input, tokens_output, tokens_reasoning, \
     tokens_cached_input, tokens_cache_write_5m, tokens_cache_write_1h, tokens_cache_write_unknown, cost_input, \
     cost_output, cost_reasoning, cost_cached_input, cost_cache_write_5m, cost_cache_write_1h, \
     cost_cache_write_unknown, cost_total, catalog_version, priced_by_override, unpriced, request_id, conversation_id, \
     transcript_batch, transcript_flags"
    };
}

/// The term rows of a segment, in fixed prepared sizes (`db::MultiRowInsert`). Each carries
/// its segment's `ts_max` (a copy): a read driven by one term walks `(term, ts_max, segment)`
/// in the order pages need, without reading the segments it skips.
static TERMS: crate::db::MultiRowInsert =
    crate::db::MultiRowInsert::new("usage_segment_terms", "term, ts_max, segment", "", &[32, 16, 8, 4, 2, 1]);

const INSERT_SEGMENT: &str =
    "INSERT INTO usage_segments (ts_min, ts_max, events, data) VALUES ($1, $2, $3, $4) RETURNING id";

/// Writes `events` as segments (`segments.rs`) inside the transaction `tx` (either backend).
macro_rules! write_segments {
    ($tx:expr, $events:expr, $is_pg:expr) => {{
        for seg in crate::segments::cut($events) {
            let id: i64 = sqlx::query_scalar(INSERT_SEGMENT)
                .bind(seg.ts_min)
                .bind(seg.ts_max)
                .bind(seg.events)
                .bind(seg.data)
                .fetch_one(&mut *$tx)
                .await?;
            for (sql, chunk) in TERMS.statements($is_pg, &seg.terms) {
                let mut q = sqlx::query(sql);
                for t in chunk {
                    q = q.bind(t.as_str()).bind(seg.ts_max).bind(id);
                }
                q.persistent(true).execute(&mut *$tx).await?;
            }
        }
    }};
}

pub(crate) fn event_from_row<R: RowExt>(row: &R) -> Result<UsageEvent, StoreError> {
    let id = row.text("id")?;
    let type_text = row.text("provider_type")?;
    let provider_type = type_text
        .parse::<ProviderType>()
        .map_err(|_| StoreError::Corrupt(format!("usage event \"{id}\" has unknown provider type \"{type_text}\"")))?;
    let status_text = row.text("status")?;
    let status = RequestStatus::parse(&status_text)
        .ok_or_else(|| StoreError::Corrupt(format!("usage event \"{id}\" has unknown status \"{status_text}\"")))?;
    Ok(UsageEvent {
        ts_ms: row.int("ts")?,
        provider: row.text("provider")?.into(),
        provider_type,
        model: row.opt_text("model")?,
        endpoint: row.text("endpoint")?,
        user: row.opt_text("user_email")?.map(Into::into),
        agent: row.opt_text("agent")?.map(Into::into),
        token_id: row.opt_text("token_id")?.map(Into::into),
        status,
        http_status: row.opt_int("http_status")?,
        error_class: row.opt_text("error_class")?,
        streamed: row.boolean("streamed")?,
        latency_ms: row.int("latency_ms")?,
        ttft_ms: row.opt_int("ttft_ms")?,
        usage: Usage {
            input: row.int("tokens_input")?,
            output: row.int("tokens_output")?,
            reasoning: row.int("tokens_reasoning")?,
            cached_input: row.int("tokens_cached_input")?,
            cache_write_5m: row.int("tokens_cache_write_5m")?,
            cache_write_1h: row.int("tokens_cache_write_1h")?,
            cache_write_unknown: row.int("tokens_cache_write_unknown")?,
        },
        cost: Cost {
            input: row.int("cost_input")?,
            output: row.int("cost_output")?,
            reasoning: row.int("cost_reasoning")?,
            cached_input: row.int("cost_cached_input")?,
            cache_write_5m: row.int("cost_cache_write_5m")?,
            cache_write_1h: row.int("cost_cache_write_1h")?,
            cache_write_unknown: row.int("cost_cache_write_unknown")?,
            total: row.int("cost_total")?,
        },
        catalog_version: row.opt_text("catalog_version")?.map(Into::into),
        priced_by_override: row.boolean("priced_by_override")?,
        unpriced: row.boolean("unpriced")?,
        request_id: row.text("request_id")?,
        conversation_id: row.opt_text("conversation_id")?,
        transcript: match row.opt_text("transcript_batch")? {
            Some(batch) => Some(TranscriptRef {
                batch: batch.into(),
                flags: TranscriptFlags::from_bits(row.opt_int("transcript_flags")?.unwrap_or(0)),
            }),
            None => None,
        },
        id,
    })
}

impl UsageStore {
    /// Opens the usage database at `url` (a SQLite file of its own, or PostgreSQL) and runs
    /// its migrations.
    pub async fn connect(url: &str) -> Result<UsageStore, StoreError> {
        let pool = crate::db::connect(url, crate::db::USAGE).await?;
        let store = UsageStore { inner: Arc::new(UsageInner { pool }) };
        store.upgrade().await?;
        Ok(store)
    }

    /// Shares the config store's pool (PostgreSQL: usage tables are in the same database and
    /// the config migrations created them). `None` on SQLite, whose usage lives in its own file.
    pub fn sharing(store: &Store) -> Option<UsageStore> {
        store.postgres_pool().map(|pool| UsageStore { inner: Arc::new(UsageInner { pool }) })
    }

    /// Writes a batch of events and adds them to their hourly rollups, in one transaction:
    /// all or none.
    ///
    /// On any error the batch is rolled back and the connection it ran on is closed instead of
    /// going back to the pool. SQLite rolls a transaction back by itself on some errors
    /// (`SQLITE_FULL`, `SQLITE_IOERR`, …); sqlx's rollback on drop then fails ("no transaction
    /// is active") and the connection keeps believing it is inside one, so the next batch on it
    /// began with a `SAVEPOINT` and never really committed — while holding the write lock the
    /// other connections then waited on. A fresh connection has no such state.
    ///
    /// The events are borrowed in any form (`UsageEvent`, `&UsageEvent`, a writer's boxes):
    /// the usage writer stores the boxes the requests filled in, without moving ~0.5 KB out
    /// of each.
    pub fn insert_events<'a, E: std::borrow::Borrow<UsageEvent>>(
        &'a self,
        events: &'a [E],
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send + 'a {
        let events: Vec<&UsageEvent> = events.iter().map(std::borrow::Borrow::borrow).collect();
        self.insert_borrowed(events)
    }

    async fn insert_borrowed(&self, events: Vec<&UsageEvent>) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let events = &events[..];
        let rollups = rollup(events);
        let conversations: Vec<(&str, ConversationDelta<'_>)> = conversation_deltas(events).into_iter().collect();
        let token_days: Vec<_> = token_days(events).into_iter().collect();
        let is_pg = matches!(self.inner.pool, crate::db::Pool::Postgres(_));
        on_pool!(self, |p| {
            let mut conn = p.acquire().await?;
            let result: Result<(), StoreError> = async {
                let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                write_segments!(tx, events, is_pg);
                // Tables in a fixed order and keys sorted (a BTreeMap): concurrent writers on
                // PostgreSQL lock rollup rows in the same order and cannot deadlock each other.
                // Every statement is one of a few prepared sizes (`db::MultiRowInsert`).
                for (table, rows) in &rollups {
                    let rows: Vec<_> = rows.iter().collect();
                    let keys = table.keys();
                    for (sql, chunk) in table.upsert().statements(is_pg, &rows) {
                        let mut q = sqlx::query(sql);
                        for (k, v) in chunk {
                            q = bind_rollup!(q, k, v, keys);
                        }
                        q.persistent(true).execute(&mut *tx).await?;
                    }
                }
                for (sql, chunk) in CONVERSATION_UPSERT.statements(is_pg, &conversations) {
                    let mut q = sqlx::query(sql);
                    for (id, c) in chunk {
                        q = q
                            .bind(id.to_string())
                            .bind(c.started_at)
                            .bind(c.last_at)
                            .bind(c.providers.to_string())
                            .bind(c.user.map(str::to_string))
                            .bind(c.agent.map(str::to_string))
                            .bind(c.turns)
                            .bind(c.failed_turns)
                            .bind(c.tokens)
                            .bind(c.cost);
                    }
                    q.persistent(true).execute(&mut *tx).await?;
                }
                for (sql, chunk) in TOKEN_DAY_UPSERT.statements(is_pg, &token_days) {
                    let mut q = sqlx::query(sql);
                    for ((token, day), d) in chunk {
                        q = q.bind(token.to_string()).bind(*day).bind(d.requests).bind(d.cost).bind(d.last_at);
                    }
                    q.persistent(true).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(())
            }
            .await;
            if result.is_err() {
                // Closing rolls back whatever the server still holds and frees its locks.
                conn.close_on_drop();
            }
            result?
        });
        Ok(())
    }

    /// Which of `events` are already stored, by id (a batch replayed from the spill file
    /// after a commit whose answer was lost must not be counted twice): the segments over the
    /// batch's arrival times are read.
    pub async fn existing_ids(&self, events: &[UsageEvent]) -> Result<std::collections::HashSet<String>, StoreError> {
        let (Some(lo), Some(hi)) = (events.iter().map(|e| e.ts_ms).min(), events.iter().map(|e| e.ts_ms).max()) else {
            return Ok(std::collections::HashSet::new());
        };
        let wanted: std::collections::HashSet<&str> = events.iter().map(|e| e.id.as_str()).collect();
        let scan = crate::segments::Scan {
            start_ms: Some(lo),
            end_ms: Some(hi.saturating_add(1)),
            ..crate::segments::Scan::default()
        };
        let found = self.scan(&scan, |e| wanted.contains(e.id.as_str())).await?;
        Ok(found.into_iter().map(|e| e.id).collect())
    }

    /// Deletes raw events older than `before_ms` and returns how many went; rollups are kept.
    /// Whole segments go at most `chunk` events' worth per statement; a segment holding events
    /// on both sides of `before_ms` is rewritten with the newer ones.
    pub async fn delete_events_before(&self, before_ms: i64, chunk: i64) -> Result<u64, StoreError> {
        let span = crate::segments::SPAN_MAX_MS;
        // Segments entirely older: deleted with their terms, a chunk at a time.
        const OLD: &str = "SELECT id, events FROM usage_segments WHERE ts_max < $1 ORDER BY ts_max LIMIT 256";
        const DROP_TERMS: &str = "DELETE FROM usage_segment_terms WHERE segment = $1";
        let mut total = 0u64;
        loop {
            let n = on_pool!(self, |p| {
                let mut tx = p.begin().await?;
                let rows: Vec<(i64, i64)> = sqlx::query_as(OLD).bind(before_ms).fetch_all(&mut *tx).await?;
                let mut n = 0i64;
                for (i, (id, events)) in rows.iter().enumerate() {
                    if i > 0 && n + events > chunk {
                        break;
                    }
                    sqlx::query("DELETE FROM usage_segments WHERE id = $1").bind(id).execute(&mut *tx).await?;
                    sqlx::query(DROP_TERMS).bind(id).execute(&mut *tx).await?;
                    n += events;
                }
                tx.commit().await?;
                if rows.is_empty() { None } else { Some(u64::try_from(n).unwrap_or(0)) }
            });
            match n {
                Some(n) => total += n,
                None => break,
            }
        }
        // Segments straddling the cut (their `ts_max` is within a span of it).
        const STRADDLING: &str = "SELECT id, data FROM usage_segments WHERE ts_max >= $1 AND ts_max < $2 \
             AND ts_min < $1 ORDER BY ts_max, id";
        let is_pg = matches!(self.inner.pool, crate::db::Pool::Postgres(_));
        let removed = on_pool!(self, |p| {
            let mut tx = p.begin().await?;
            let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(STRADDLING)
                .bind(before_ms)
                .bind(before_ms.saturating_add(span).saturating_add(1))
                .fetch_all(&mut *tx)
                .await?;
            let mut removed = 0u64;
            for (id, data) in rows {
                let events = crate::segments::decode(id, &data)?;
                let kept: Vec<&UsageEvent> = events.iter().filter(|e| e.ts_ms >= before_ms).collect();
                removed += (events.len() - kept.len()) as u64;
                sqlx::query("DELETE FROM usage_segments WHERE id = $1").bind(id).execute(&mut *tx).await?;
                sqlx::query(DROP_TERMS).bind(id).execute(&mut *tx).await?;
                write_segments!(tx, &kept, is_pg);
            }
            tx.commit().await?;
            removed
        });
        Ok(total + removed)
    }

    /// Events matching `q`, oldest first.
    pub async fn list_events(&self, q: &UsageQuery) -> Result<Vec<UsageEvent>, StoreError> {
        let scan = crate::segments::Scan {
            groups: q.provider.iter().map(|p| vec![crate::segments::Term::Provider(p).text()]).collect(),
            start_ms: q.since_ms,
            oldest_first: true,
            limit: q.limit.unwrap_or(1000) as usize,
            ..crate::segments::Scan::default()
        };
        self.scan(&scan, |e| q.provider.as_deref().is_none_or(|p| *p == *e.provider)).await
    }

    /// How many events are stored.
    pub async fn count_events(&self) -> Result<i64, StoreError> {
        const SQL: &str = "SELECT CAST(COALESCE((SELECT SUM(events) FROM usage_segments), 0) AS BIGINT) \
             + (SELECT COUNT(*) FROM usage_events)";
        let n: i64 = on_pool!(self, |p| { sqlx::query_scalar(SQL).fetch_one(p).await? });
        Ok(n)
    }

    /// Moves events stored before segments (rows of `usage_events`) into segments, a
    /// thousand at a time, each move one transaction (the rows are deleted and returned by
    /// one statement, so replicas upgrading together never move a row twice). Run when the
    /// store opens; returns how many moved.
    pub async fn upgrade(&self) -> Result<u64, StoreError> {
        const TAKE: &str = concat!(
            "DELETE FROM usage_events WHERE id IN (SELECT id FROM usage_events ORDER BY ts, id LIMIT 1000) RETURNING ",
            columns!()
        );
        let is_pg = matches!(self.inner.pool, crate::db::Pool::Postgres(_));
        let mut moved = 0u64;
        loop {
            let n = on_pool!(self, |p| {
                let mut tx = p.begin().await?;
                let rows = sqlx::query(TAKE).fetch_all(&mut *tx).await?;
                let events = rows.iter().map(event_from_row).collect::<Result<Vec<_>, _>>()?;
                write_segments!(tx, &events.iter().collect::<Vec<_>>(), is_pg);
                tx.commit().await?;
                events.len() as u64
            });
            if n == 0 {
                break;
            }
            if moved == 0 {
                tracing::info!("moving usage events stored before segments into segments");
            }
            moved += n;
        }
        if moved > 0 {
            tracing::info!(events = moved, "usage events moved into segments");
        }
        Ok(moved)
    }

    pub async fn close(&self) {
        on_pool!(self, |p| p.close().await)
    }
}

/// One event as a self-describing JSON object (for a file of events waiting to be stored:
/// the gateway's usage spill); [`decode_event`] reads it back.
pub fn encode_event(e: &UsageEvent) -> serde_json::Value {
    serde_json::json!({
        "id": e.id, "ts_ms": e.ts_ms, "provider": &*e.provider, "provider_type": e.provider_type,
        "model": e.model, "endpoint": e.endpoint, "user": e.user, "agent": e.agent,
        "token_id": e.token_id, "status": e.status.as_str(), "http_status": e.http_status,
        "error_class": e.error_class, "streamed": e.streamed, "latency_ms": e.latency_ms,
        "ttft_ms": e.ttft_ms, "usage": e.usage, "cost": e.cost, "catalog_version": e.catalog_version.as_deref(),
        "priced_by_override": e.priced_by_override, "unpriced": e.unpriced,
        "request_id": e.request_id, "conversation_id": e.conversation_id,
        "transcript": e.transcript.as_ref().map(|t| serde_json::json!({"batch": &*t.batch, "flags": t.flags.bits()})),
    })
}

/// The inverse of [`encode_event`]; `Corrupt` names what is wrong.
pub fn decode_event(v: serde_json::Value) -> Result<UsageEvent, StoreError> {
    #[derive(serde::Deserialize)]
    struct Wire {
        id: String,
        ts_ms: i64,
        provider: String,
        provider_type: ProviderType,
        model: Option<String>,
        endpoint: String,
        user: Option<String>,
        agent: Option<String>,
        token_id: Option<String>,
        status: String,
        http_status: Option<i64>,
        error_class: Option<String>,
        streamed: bool,
        latency_ms: i64,
        ttft_ms: Option<i64>,
        usage: Usage,
        cost: Cost,
        catalog_version: Option<String>,
        priced_by_override: bool,
        unpriced: bool,
        request_id: String,
        conversation_id: Option<String>,
        #[serde(default)]
        transcript: Option<WireRef>,
    }
    #[derive(serde::Deserialize)]
    struct WireRef {
        batch: String,
        flags: i64,
    }
    let w: Wire = serde_json::from_value(v).map_err(|e| StoreError::Corrupt(format!("usage event: {e}")))?;
    let status = RequestStatus::parse(&w.status)
        .ok_or_else(|| StoreError::Corrupt(format!("usage event \"{}\" has unknown status \"{}\"", w.id, w.status)))?;
    Ok(UsageEvent {
        id: w.id,
        ts_ms: w.ts_ms,
        provider: w.provider.into(),
        provider_type: w.provider_type,
        model: w.model,
        endpoint: w.endpoint,
        user: w.user.map(Into::into),
        agent: w.agent.map(Into::into),
        token_id: w.token_id.map(Into::into),
        status,
        http_status: w.http_status,
        error_class: w.error_class,
        streamed: w.streamed,
        latency_ms: w.latency_ms,
        ttft_ms: w.ttft_ms,
        usage: w.usage,
        cost: w.cost,
        catalog_version: w.catalog_version.map(Into::into),
        priced_by_override: w.priced_by_override,
        unpriced: w.unpriced,
        request_id: w.request_id,
        conversation_id: w.conversation_id,
        transcript: w
            .transcript
            .map(|t| TranscriptRef { batch: t.batch.into(), flags: TranscriptFlags::from_bits(t.flags) }),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A batch's few rows take one statement per bit of their count (each statement is a
    /// round trip to SQLite's worker thread), and every row goes into exactly one statement.
    #[test]
    fn few_rows_take_few_statements() {
        assert_eq!(TERMS.pieces(6), vec![4, 2]);
        assert_eq!(TERMS.pieces(63), vec![32, 16, 8, 4, 2, 1]);
        assert_eq!(TERMS.pieces(70), vec![32, 32, 4, 2]);
        let rollups = crate::rollup::Table::Hourly.upsert();
        assert_eq!(rollups.pieces(1), vec![1]);
        assert_eq!(rollups.pieces(7), vec![4, 2, 1]);
        assert_eq!(rollups.pieces(911), vec![400, 400, 100, 8, 2, 1]);
        assert_eq!(crate::conversation::CONVERSATION_UPSERT.pieces(45), vec![32, 8, 4, 1]);
        for n in 0..1_000 {
            assert_eq!(rollups.pieces(n).iter().sum::<usize>(), n);
            let rows: Vec<usize> = (0..n).collect();
            let cut: Vec<usize> = TERMS.statements(false, &rows).flat_map(|(_, piece)| piece.iter().copied()).collect();
            assert_eq!(cut, rows, "every row once, in order");
        }
    }

    pub(crate) fn event(i: usize) -> UsageEvent {
        UsageEvent {
            id: format!("ev-{i:08}-{}", "x".repeat(40)),
            ts_ms: i as i64 * 1000,
            provider: "p".into(),
            provider_type: ProviderType::Openai,
            model: Some(format!("model-{}", i % 50)),
            endpoint: "/chat/completions".into(),
            user: Some(format!("user-{}", i % 100).into()),
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
            request_id: format!("r{i}-{}", "y".repeat(60)),
            conversation_id: None,
            transcript: None,
        }
    }

    #[test]
    fn spill_encoding_round_trips() {
        let mut e = event(7);
        e.status = RequestStatus::ClientCancelled;
        e.ttft_ms = Some(3);
        e.cost.total = 12;
        let back = decode_event(encode_event(&e)).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(back, e);
        assert!(decode_event(serde_json::json!({"id": "x"})).is_err());
    }
}
