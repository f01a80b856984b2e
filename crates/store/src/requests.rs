//! The request log and conversations: newest-first, keyset-paginated reads of usage events
//! (every proxied request, recorded bodies or not) and of the conversation rows the usage
//! writer upserts with them (`conversation.rs`). Filters are added to the statement only when
//! set, so each query can use the `(ts, id)` / `(conversation_id, ts)` / `(last_at, id)`
//! indexes; a page is `ORDER BY … DESC LIMIT n` after the last key of the previous page.

use crate::conversation::{SINGLETON, SINGLETON_COLUMNS};
use crate::db::RowExt;
use crate::usage::{COLUMNS, event_from_row};
use crate::{StoreError, UsageEvent, UsageStore};
use sqlx::QueryBuilder;
use tollgate_core::RequestStatus;

/// Filters of the request log. Every field narrows; `None` means any.
#[derive(Debug, Clone, Default)]
pub struct RequestFilter {
    pub provider: Option<String>,
    /// Providers a scoped token may see (`None`: all).
    pub scope: Option<Vec<String>>,
    pub model: Option<String>,
    pub user: Option<String>,
    pub agent: Option<String>,
    pub status: Option<RequestStatus>,
    /// Only requests that did not succeed.
    pub failed: bool,
    pub conversation: Option<String>,
    /// Inclusive lower bound on the arrival time, epoch ms.
    pub start_ms: Option<i64>,
    /// Exclusive upper bound.
    pub end_ms: Option<i64>,
}

/// Filters of the conversation list.
#[derive(Debug, Clone, Default)]
pub struct ConversationFilter {
    /// Conversations that used this provider.
    pub provider: Option<String>,
    pub scope: Option<Vec<String>>,
    pub user: Option<String>,
    pub agent: Option<String>,
    /// `Some(true)`: only conversations with a failed turn; `Some(false)`: only those without.
    pub failed: Option<bool>,
    /// Bounds on the last turn's time, epoch ms (`[start, end)`).
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
}

/// One conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationRow {
    pub id: String,
    pub started_at_ms: i64,
    pub last_at_ms: i64,
    /// Distinct, in first-use order.
    pub providers: Vec<String>,
    pub user: Option<String>,
    pub agent: Option<String>,
    pub turns: i64,
    pub failed_turns: i64,
    pub tokens: i64,
    /// Microcents.
    pub cost: i64,
}

fn conversation_from_row<R: RowExt>(row: &R) -> Result<ConversationRow, StoreError> {
    let mut providers: Vec<String> = Vec::new();
    for p in row.text("providers")?.split(',').filter(|p| !p.is_empty()) {
        if !providers.iter().any(|q| q == p) {
            providers.push(p.to_string());
        }
    }
    Ok(ConversationRow {
        id: row.text("id")?,
        started_at_ms: row.int("started_at")?,
        last_at_ms: row.int("last_at")?,
        providers,
        user: row.opt_text("user_email")?,
        agent: row.opt_text("agent")?,
        turns: row.int("turns")?,
        failed_turns: row.int("failed_turns")?,
        tokens: row.int("tokens")?,
        cost: row.int("cost")?,
    })
}

macro_rules! conversation_columns {
    () => {
        "id, started_at, last_at, providers, user_email, agent, turns, failed_turns, tokens, cost"
    };
}
/// The columns of a conversation row, in `conversation_from_row`'s names.
const CONVERSATION_COLUMNS: &str = conversation_columns!();

/// Pushes one newest-first page over `(column, id)`: the time bounds `[start, end)` on
/// `column`, the keyset condition "before `after`", the order and the limit.
fn push_page<DB: sqlx::Database>(
    qb: &mut QueryBuilder<DB>,
    column: &str,
    (start_ms, end_ms): (Option<i64>, Option<i64>),
    after: Option<(i64, &str)>,
    limit: i64,
) where
    for<'t> String: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> i64: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    if let Some(t) = start_ms {
        qb.push(format!(" AND {column} >= "));
        qb.push_bind(t);
    }
    if let Some(t) = end_ms {
        qb.push(format!(" AND {column} < "));
        qb.push_bind(t);
    }
    if let Some((ts, id)) = after {
        qb.push(format!(" AND ({column} < "));
        qb.push_bind(ts);
        qb.push(format!(" OR ({column} = "));
        qb.push_bind(ts);
        qb.push(" AND id < ");
        qb.push_bind(id.to_string());
        qb.push("))");
    }
    qb.push(format!(" ORDER BY {column} DESC, id DESC LIMIT "));
    qb.push_bind(limit);
}

/// Pushes ` AND provider IN (…)` for a scope (an empty scope matches nothing).
fn push_scope<DB: sqlx::Database>(qb: &mut QueryBuilder<DB>, column: &str, scope: &Option<Vec<String>>)
where
    for<'t> String: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    if let Some(scope) = scope {
        if scope.is_empty() {
            qb.push(" AND 1 = 0");
            return;
        }
        qb.push(format!(" AND {column} IN ("));
        let mut sep = qb.separated(", ");
        for p in scope {
            sep.push_bind(p.clone());
        }
        qb.push(")");
    }
}

/// `Some("")` filters the unattributed (NULL) value; other values match exactly.
fn push_eq<DB: sqlx::Database>(qb: &mut QueryBuilder<DB>, column: &str, v: &Option<String>)
where
    for<'t> String: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    match v.as_deref() {
        None => {}
        Some("") => {
            qb.push(format!(" AND {column} IS NULL"));
        }
        Some(v) => {
            qb.push(format!(" AND {column} = "));
            qb.push_bind(v.to_string());
        }
    }
}

/// `($f, $after, $limit, $sqlite)`: the request-log statement. On SQLite a filter on failed
/// requests (without a conversation, which has its own index) names the partial index of
/// failed events: without statistics the planner would walk the provider index and read every
/// event of that provider (572 ms for provider + failed + user at 10^6 events; with the
/// partial index it reads only failed events). PostgreSQL's planner picks it by itself.
macro_rules! request_query {
    ($f:expr, $after:expr, $limit:expr, $sqlite:expr) => {{
        let hint = if $sqlite && $f.failed && $f.conversation.is_none() && $f.status.is_none() {
            " INDEXED BY usage_events_failed"
        } else {
            ""
        };
        let mut qb = QueryBuilder::new(format!("SELECT {COLUMNS} FROM usage_events{hint} WHERE 1 = 1"));
        push_eq(&mut qb, "provider", &$f.provider);
        push_scope(&mut qb, "provider", &$f.scope);
        push_eq(&mut qb, "model", &$f.model);
        push_eq(&mut qb, "user_email", &$f.user);
        push_eq(&mut qb, "agent", &$f.agent);
        if let Some(s) = $f.status {
            qb.push(" AND status = ");
            qb.push_bind(s.as_str());
        }
        if $f.failed {
            qb.push(" AND status <> 'success'");
        }
        if let Some(c) = &$f.conversation {
            qb.push(" AND (conversation_id = ");
            qb.push_bind(c.clone());
            qb.push(" OR (conversation_id IS NULL AND id = ");
            qb.push_bind(c.clone());
            qb.push("))");
        }
        push_page(&mut qb, "ts", ($f.start_ms, $f.end_ms), $after, $limit);
        qb
    }};
}

impl UsageStore {
    /// Events matching `f`, newest first, after the `(ts, id)` key `after`; at most `limit`.
    pub async fn list_requests(
        &self,
        f: &RequestFilter,
        after: Option<(i64, &str)>,
        limit: i64,
    ) -> Result<Vec<UsageEvent>, StoreError> {
        let sqlite = matches!(self.inner.pool, crate::db::Pool::Sqlite(_));
        on_pool!(self, |p| {
            let mut qb = request_query!(f, after, limit.max(1), sqlite);
            let rows = qb.build().persistent(false).fetch_all(p).await?;
            rows.iter().map(event_from_row).collect()
        })
    }

    /// One event by id.
    pub async fn get_event(&self, id: &str) -> Result<Option<UsageEvent>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM usage_events WHERE id = $1");
        on_pool!(self, |p| {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(p).await?;
            row.as_ref().map(event_from_row).transpose()
        })
    }

    /// The turns of a conversation, oldest first (at most `limit`).
    pub async fn conversation_turns(&self, id: &str, limit: i64) -> Result<Vec<UsageEvent>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM usage_events WHERE conversation_id = $1 OR (conversation_id IS NULL AND id = $1) \
             ORDER BY ts, id LIMIT $2"
        );
        on_pool!(self, |p| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).bind(limit.max(1)).fetch_all(p).await?;
            rows.iter().map(event_from_row).collect()
        })
    }

    /// Conversations matching `f`, most recently active first, after the `(last_at, id)` key
    /// `after`; at most `limit`. Two keyset reads merged: the conversation rows, and the events
    /// without a conversation id (each a one-turn conversation; see `conversation.rs`).
    pub async fn list_conversations(
        &self,
        f: &ConversationFilter,
        after: Option<(i64, &str)>,
        limit: i64,
    ) -> Result<Vec<ConversationRow>, StoreError> {
        let limit = limit.max(1);
        let mut rows = on_pool!(self, |p| {
            let mut qb = QueryBuilder::new(format!("SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE 1 = 1"));
            if let Some(pr) = &f.provider {
                qb.push(" AND (',' || providers || ',') LIKE ");
                qb.push_bind(format!("%,{pr},%"));
            }
            if let Some(scope) = &f.scope {
                // Conversations that used a provider in scope (turns outside it are hidden by
                // the caller).
                qb.push(" AND (1 = 0");
                for pr in scope {
                    qb.push(" OR (',' || providers || ',') LIKE ");
                    qb.push_bind(format!("%,{pr},%"));
                }
                qb.push(")");
            }
            push_eq(&mut qb, "user_email", &f.user);
            push_eq(&mut qb, "agent", &f.agent);
            if let Some(failed) = f.failed {
                qb.push(if failed { " AND failed_turns > 0" } else { " AND failed_turns = 0" });
            }
            push_page(&mut qb, "last_at", (f.start_ms, f.end_ms), after, limit);
            let rows = qb.build().persistent(false).fetch_all(p).await?;
            rows.iter().map(conversation_from_row).collect::<Result<Vec<_>, _>>()?
        });
        let singles = on_pool!(self, |p| {
            let mut qb = QueryBuilder::new(format!("SELECT {SINGLETON_COLUMNS} FROM usage_events WHERE {SINGLETON}"));
            push_eq(&mut qb, "provider", &f.provider);
            push_scope(&mut qb, "provider", &f.scope);
            push_eq(&mut qb, "user_email", &f.user);
            push_eq(&mut qb, "agent", &f.agent);
            if let Some(failed) = f.failed {
                qb.push(if failed { " AND status <> 'success'" } else { " AND status = 'success'" });
            }
            push_page(&mut qb, "ts", (f.start_ms, f.end_ms), after, limit);
            let rows = qb.build().persistent(false).fetch_all(p).await?;
            rows.iter().map(conversation_from_row).collect::<Result<Vec<_>, _>>()?
        });
        rows.extend(singles);
        rows.sort_unstable_by(|a, b| (b.last_at_ms, &b.id).cmp(&(a.last_at_ms, &a.id)));
        rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(rows)
    }

    /// One conversation: its row, or the event without a conversation id that is one.
    pub async fn get_conversation(&self, id: &str) -> Result<Option<ConversationRow>, StoreError> {
        const SQL: &str = concat!("SELECT ", conversation_columns!(), " FROM conversations WHERE id = $1");
        let single = format!("SELECT {SINGLETON_COLUMNS} FROM usage_events WHERE {SINGLETON} AND id = $1");
        on_pool!(self, |p| {
            let row = match sqlx::query(SQL).bind(id).fetch_optional(p).await? {
                Some(row) => Some(row),
                None => sqlx::query(sqlx::AssertSqlSafe(single)).bind(id).fetch_optional(p).await?,
            };
            row.as_ref().map(conversation_from_row).transpose()
        })
    }

    /// Deletes conversations whose last turn is older than `before_ms`, in chunks.
    pub async fn delete_conversations_before(&self, before_ms: i64, chunk: i64) -> Result<u64, StoreError> {
        const SQL: &str = "DELETE FROM conversations WHERE id IN (SELECT id FROM conversations WHERE last_at < $1 \
             ORDER BY last_at LIMIT $2)";
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
}
