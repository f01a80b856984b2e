//! Usage events: one row per proxied request, written in batches by the gateway's usage
//! writer (never on the request path), plus their hourly rollups, upserted in the same
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
use hashbrown::HashMap;
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
pub(crate) const COLUMNS: &str = columns!();

/// Rows per INSERT statement: 38 columns × 400 stays under both backends' bind limits.
const ROWS_PER_INSERT: usize = 400;

/// The usage-event INSERTs: a batch is cut into these statement sizes, each prepared once
/// (`db::MultiRowInsert`).
static INSERT: crate::db::MultiRowInsert =
    crate::db::MultiRowInsert::new("usage_events", COLUMNS, "", &[ROWS_PER_INSERT, 100, 25, 5, 1]);

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
        provider: row.text("provider")?,
        provider_type,
        model: row.opt_text("model")?,
        endpoint: row.text("endpoint")?,
        user: row.opt_text("user_email")?,
        agent: row.opt_text("agent")?,
        token_id: row.opt_text("token_id")?,
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
        catalog_version: row.opt_text("catalog_version")?,
        priced_by_override: row.boolean("priced_by_override")?,
        unpriced: row.boolean("unpriced")?,
        request_id: row.text("request_id")?,
        conversation_id: row.opt_text("conversation_id")?,
        transcript: match row.opt_text("transcript_batch")? {
            Some(batch) => Some(TranscriptRef {
                batch,
                flags: TranscriptFlags::from_bits(row.opt_int("transcript_flags")?.unwrap_or(0)),
            }),
            None => None,
        },
        id,
    })
}

/// Shared copies of the text values a batch of events repeats (provider, model, user, token,
/// status, …): bound as `Arc<str>`, a repeated value costs a reference count instead of the
/// copy and the allocations sqlx makes of an owned `String` or a `&str` (two each, freed after
/// the statement). A value seen once is copied once (`Arc<str>` holds its bytes inline).
#[derive(Default)]
struct Interned<'a> {
    values: HashMap<&'a str, Arc<str>>,
}

impl<'a> Interned<'a> {
    fn get(&mut self, s: &'a str) -> Arc<str> {
        self.values.entry(s).or_insert_with(|| Arc::from(s)).clone()
    }

    fn opt(&mut self, s: Option<&'a str>) -> Option<Arc<str>> {
        s.map(|s| self.get(s))
    }
}

/// Binds one event's 38 values, in [`COLUMNS`] order, onto a query; `$t` is the batch's
/// [`Interned`] values.
macro_rules! bind_event {
    ($q:expr, $e:expr, $t:expr) => {{
        let e: &UsageEvent = $e;
        let t: &mut Interned<'_> = $t;
        $q.bind(Arc::<str>::from(e.id.as_str()))
            .bind(e.ts_ms)
            .bind(t.get(&e.provider))
            .bind(t.get(e.provider_type.as_str()))
            .bind(t.opt(e.model.as_deref()))
            .bind(t.get(&e.endpoint))
            .bind(t.opt(e.user.as_deref()))
            .bind(t.opt(e.agent.as_deref()))
            .bind(t.opt(e.token_id.as_deref()))
            .bind(t.get(e.status.as_str()))
            .bind(e.http_status)
            .bind(t.opt(e.error_class.as_deref()))
            .bind(e.streamed)
            .bind(e.latency_ms)
            .bind(e.ttft_ms)
            .bind(e.usage.input)
            .bind(e.usage.output)
            .bind(e.usage.reasoning)
            .bind(e.usage.cached_input)
            .bind(e.usage.cache_write_5m)
            .bind(e.usage.cache_write_1h)
            .bind(e.usage.cache_write_unknown)
            .bind(e.cost.input)
            .bind(e.cost.output)
            .bind(e.cost.reasoning)
            .bind(e.cost.cached_input)
            .bind(e.cost.cache_write_5m)
            .bind(e.cost.cache_write_1h)
            .bind(e.cost.cache_write_unknown)
            .bind(e.cost.total)
            .bind(t.opt(e.catalog_version.as_deref()))
            .bind(e.priced_by_override)
            .bind(e.unpriced)
            .bind(Arc::<str>::from(e.request_id.as_str()))
            .bind(e.conversation_id.as_deref().map(Arc::<str>::from))
            .bind(t.opt(e.transcript.as_ref().map(|r| r.batch.as_str())))
            .bind(e.transcript.as_ref().map(|r| r.flags.bits()))
    }};
}

impl UsageStore {
    /// Opens the usage database at `url` (a SQLite file of its own, or PostgreSQL) and runs
    /// its migrations.
    pub async fn connect(url: &str) -> Result<UsageStore, StoreError> {
        let pool = crate::db::connect(url, crate::db::USAGE).await?;
        Ok(UsageStore { inner: Arc::new(UsageInner { pool }) })
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
    pub async fn insert_events(&self, events: &[UsageEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let rollups = rollup(events);
        let conversations: Vec<(&str, ConversationDelta<'_>)> = conversation_deltas(events).into_iter().collect();
        let token_days: Vec<_> = token_days(events).into_iter().collect();
        let is_pg = matches!(self.inner.pool, crate::db::Pool::Postgres(_));
        on_pool!(self, |p| {
            let mut conn = p.acquire().await?;
            let result: Result<(), StoreError> = async {
                let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                let mut interned = Interned::default();
                for (sql, chunk) in INSERT.statements(is_pg, events) {
                    let mut q = sqlx::query(sql);
                    for e in chunk {
                        q = bind_event!(q, e, &mut interned);
                    }
                    q.persistent(true).execute(&mut *tx).await?;
                }
                // Tables in a fixed order and keys sorted (a BTreeMap): concurrent writers on
                // PostgreSQL lock rollup rows in the same order and cannot deadlock each other.
                // Every statement is one of a few prepared sizes (`db::MultiRowInsert`).
                for (table, rows) in &rollups {
                    let rows: Vec<_> = rows.iter().collect();
                    let principal = table.principal();
                    for (sql, chunk) in table.upsert().statements(is_pg, &rows) {
                        let mut q = sqlx::query(sql);
                        for (k, v) in chunk {
                            q = bind_rollup!(q, k, v, principal);
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

    /// Which of `ids` are already stored (a batch replayed from the spill file after a commit
    /// whose answer was lost must not be counted twice).
    pub async fn existing_ids(&self, ids: &[String]) -> Result<std::collections::HashSet<String>, StoreError> {
        let mut found = std::collections::HashSet::new();
        for chunk in ids.chunks(ROWS_PER_INSERT) {
            let rows: Vec<String> = on_pool!(self, |p| {
                let mut qb = sqlx::QueryBuilder::new("SELECT id FROM usage_events WHERE id IN (");
                let mut sep = qb.separated(", ");
                for id in chunk {
                    sep.push_bind(id.clone());
                }
                qb.push(")");
                qb.build_query_scalar::<String>().persistent(false).fetch_all(p).await?
            });
            found.extend(rows);
        }
        Ok(found)
    }

    /// Deletes raw events older than `before_ms`, at most `chunk` per statement, until none
    /// are left; returns how many went. Rollups are kept.
    pub async fn delete_events_before(&self, before_ms: i64, chunk: i64) -> Result<u64, StoreError> {
        const SQL: &str =
            "DELETE FROM usage_events WHERE id IN (SELECT id FROM usage_events WHERE ts < $1 ORDER BY ts LIMIT $2)";
        let mut total = 0u64;
        loop {
            let n = on_pool!(self, |p| {
                sqlx::query(SQL).bind(before_ms).bind(chunk.max(1)).execute(p).await?.rows_affected()
            });
            total += n;
            if n == 0 {
                return Ok(total);
            }
        }
    }

    /// Events matching `q`, oldest first.
    pub async fn list_events(&self, q: &UsageQuery) -> Result<Vec<UsageEvent>, StoreError> {
        let limit = i64::from(q.limit.unwrap_or(1000));
        const SQL: &str = concat!(
            "SELECT ",
            columns!(),
            " FROM usage_events WHERE ($1 IS NULL OR provider = $1) AND ts >= $2 ORDER BY ts, id LIMIT $3"
        );
        on_pool!(self, |p| {
            let rows = sqlx::query(SQL)
                .bind(q.provider.as_deref())
                .bind(q.since_ms.unwrap_or(i64::MIN))
                .bind(limit)
                .fetch_all(p)
                .await?;
            rows.iter().map(event_from_row).collect()
        })
    }

    /// How many events are stored.
    pub async fn count_events(&self) -> Result<i64, StoreError> {
        let n: i64 =
            on_pool!(self, |p| { sqlx::query_scalar("SELECT COUNT(*) FROM usage_events").fetch_one(p).await? });
        Ok(n)
    }

    pub async fn close(&self) {
        on_pool!(self, |p| p.close().await)
    }
}

/// One event as a self-describing JSON object (for a file of events waiting to be stored:
/// the gateway's usage spill); [`decode_event`] reads it back.
pub fn encode_event(e: &UsageEvent) -> serde_json::Value {
    serde_json::json!({
        "id": e.id, "ts_ms": e.ts_ms, "provider": e.provider, "provider_type": e.provider_type,
        "model": e.model, "endpoint": e.endpoint, "user": e.user, "agent": e.agent,
        "token_id": e.token_id, "status": e.status.as_str(), "http_status": e.http_status,
        "error_class": e.error_class, "streamed": e.streamed, "latency_ms": e.latency_ms,
        "ttft_ms": e.ttft_ms, "usage": e.usage, "cost": e.cost, "catalog_version": e.catalog_version,
        "priced_by_override": e.priced_by_override, "unpriced": e.unpriced,
        "request_id": e.request_id, "conversation_id": e.conversation_id,
        "transcript": e.transcript.as_ref().map(|t| serde_json::json!({"batch": t.batch, "flags": t.flags.bits()})),
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
        provider: w.provider,
        provider_type: w.provider_type,
        model: w.model,
        endpoint: w.endpoint,
        user: w.user,
        agent: w.agent,
        token_id: w.token_id,
        status,
        http_status: w.http_status,
        error_class: w.error_class,
        streamed: w.streamed,
        latency_ms: w.latency_ms,
        ttft_ms: w.ttft_ms,
        usage: w.usage,
        cost: w.cost,
        catalog_version: w.catalog_version,
        priced_by_override: w.priced_by_override,
        unpriced: w.unpriced,
        request_id: w.request_id,
        conversation_id: w.conversation_id,
        transcript: w.transcript.map(|t| TranscriptRef { batch: t.batch, flags: TranscriptFlags::from_bits(t.flags) }),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn batches_are_cut_into_the_prepared_sizes_only() {
        assert_eq!(INSERT.pieces(0), Vec::<usize>::new());
        assert_eq!(INSERT.pieces(1000), vec![400, 400, 100, 100]);
        assert_eq!(INSERT.pieces(237), vec![100, 100, 25, 5, 5, 1, 1]);
        for n in 0..=1234 {
            let pieces = INSERT.pieces(n);
            assert_eq!(pieces.iter().sum::<usize>(), n, "{n}");
            assert!(pieces.iter().all(|p| [400, 100, 25, 5, 1].contains(p)), "{n}: {pieces:?}");
            assert!(pieces.windows(2).all(|w| w[0] >= w[1]), "{n}: largest first");
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
            user: Some(format!("user-{}", i % 100)),
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
