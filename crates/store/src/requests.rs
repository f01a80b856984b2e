//! The request log and conversations: newest-first, keyset-paginated reads of usage events
//! (every proxied request, recorded bodies or not; read from their segments,
//! `segments.rs`, driven by the most selective filter's term) and of the conversation rows the
//! usage writer upserts with them (`conversation.rs`, `(last_at, id)` index). A page is the
//! `limit` events or rows after the last key of the previous page.

use crate::db::RowExt;
use crate::segments::{Scan, Term};
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

/// `Some("")` matches the unattributed (absent) value; other values match exactly.
fn eq(filter: &Option<String>, value: Option<&str>) -> bool {
    match filter.as_deref() {
        None => true,
        Some("") => value.is_none(),
        Some(f) => value == Some(f),
    }
}

/// The term group of an optional-value filter (`Some("")`: the absent value).
fn term_of<'a>(filter: &'a Option<String>, make: fn(Option<&'a str>) -> Term<'a>) -> Option<Vec<String>> {
    filter.as_deref().map(|v| vec![make((!v.is_empty()).then_some(v)).text()])
}

/// The scope's term group (a provider in scope); an empty scope matches nothing.
fn scope_terms(scope: &Option<Vec<String>>) -> Option<Vec<String>> {
    scope.as_ref().map(|s| s.iter().map(|p| Term::Provider(p).text()).collect())
}

impl RequestFilter {
    /// Whether `e` passes every filter but the conversation and the time bounds.
    fn matches(&self, e: &UsageEvent) -> bool {
        self.provider.as_deref().is_none_or(|p| *e.provider == *p)
            && self.scope.as_ref().is_none_or(|s| s.iter().any(|p| **p == *e.provider))
            && eq(&self.model, e.model.as_deref())
            && eq(&self.user, e.user.as_deref())
            && eq(&self.agent, e.agent.as_deref())
            && self.status.is_none_or(|s| e.status == s)
            && (!self.failed || e.status != RequestStatus::Success)
    }

    /// Term groups, most selective first (failures have segments of their own).
    fn groups(&self) -> Vec<Vec<String>> {
        [
            self.failed.then(|| vec![Term::Failed.text()]),
            self.status.map(|s| vec![Term::Status(s.as_str()).text()]),
            term_of(&self.user, Term::User),
            term_of(&self.agent, Term::Agent),
            term_of(&self.model, Term::Model),
            self.provider.as_deref().map(|p| vec![Term::Provider(p).text()]),
            scope_terms(&self.scope),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

impl ConversationFilter {
    /// Whether a one-turn conversation's event passes the filters but the time bounds.
    fn matches_single(&self, e: &UsageEvent) -> bool {
        e.conversation_id.is_none()
            && self.provider.as_deref().is_none_or(|p| *e.provider == *p)
            && self.scope.as_ref().is_none_or(|s| s.iter().any(|p| **p == *e.provider))
            && eq(&self.user, e.user.as_deref())
            && eq(&self.agent, e.agent.as_deref())
            && self.failed.is_none_or(|f| f == (e.status != RequestStatus::Success))
    }
}

/// An event without a conversation id as the one-turn conversation it is.
fn single_row(e: UsageEvent) -> ConversationRow {
    ConversationRow {
        started_at_ms: e.ts_ms,
        last_at_ms: e.ts_ms,
        providers: vec![e.provider.to_string()],
        user: e.user.as_deref().map(str::to_string),
        agent: e.agent.as_deref().map(str::to_string),
        turns: 1,
        failed_turns: i64::from(e.status != RequestStatus::Success),
        tokens: e.usage.total_tokens(),
        cost: e.cost.total,
        id: e.id,
    }
}

impl UsageStore {
    /// Events matching `f`, newest first, after the `(ts, id)` key `after`; at most `limit`.
    pub async fn list_requests(
        &self,
        f: &RequestFilter,
        after: Option<(i64, &str)>,
        limit: i64,
    ) -> Result<Vec<UsageEvent>, StoreError> {
        let limit = usize::try_from(limit.max(1)).unwrap_or(usize::MAX);
        let in_time = |e: &UsageEvent| {
            f.start_ms.is_none_or(|s| e.ts_ms >= s)
                && f.end_ms.is_none_or(|x| e.ts_ms < x)
                && after.is_none_or(|(ts, id)| (e.ts_ms, e.id.as_str()) < (ts, id))
        };
        if let Some(c) = &f.conversation {
            // A conversation's turns are few: read them all, then filter and page.
            let mut turns = self.turns(c, 0).await?;
            turns.retain(|e| f.matches(e) && in_time(e));
            turns.reverse();
            turns.truncate(limit);
            return Ok(turns);
        }
        let scan = Scan { groups: f.groups(), start_ms: f.start_ms, end_ms: f.end_ms, after, limit, ..Scan::default() };
        self.scan(&scan, |e| f.matches(e)).await
    }

    /// One event by id (event ids are UUIDv7s, found through the time they carry; an id of
    /// another form names no event).
    pub async fn get_event(&self, id: &str) -> Result<Option<UsageEvent>, StoreError> {
        self.find_event(id).await
    }

    /// The turns of a conversation, oldest first (at most `limit`).
    pub async fn conversation_turns(&self, id: &str, limit: i64) -> Result<Vec<UsageEvent>, StoreError> {
        self.turns(id, usize::try_from(limit.max(1)).unwrap_or(usize::MAX)).await
    }

    /// The events of conversation `id`, oldest first, at most `limit` (0: all): those naming it,
    /// or the event of that id when it names none (a conversation of one turn).
    async fn turns(&self, id: &str, limit: usize) -> Result<Vec<UsageEvent>, StoreError> {
        let scan =
            Scan { groups: vec![vec![Term::Conversation(id).text()]], oldest_first: true, limit, ..Scan::default() };
        let mut turns = self.scan(&scan, |e| e.conversation_id.as_deref() == Some(id)).await?;
        if turns.is_empty()
            && let Some(e) = self.find_event(id).await?
            && e.conversation_id.is_none()
        {
            turns.push(e);
        }
        Ok(turns)
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
        let scan = Scan {
            groups: [
                (f.failed == Some(true)).then(|| vec![Term::Failed.text()]),
                term_of(&f.user, Term::User),
                term_of(&f.agent, Term::Agent),
                f.provider.as_deref().map(|p| vec![Term::Provider(p).text()]),
                Some(vec![Term::Single.text()]),
                scope_terms(&f.scope),
            ]
            .into_iter()
            .flatten()
            .collect(),
            start_ms: f.start_ms,
            end_ms: f.end_ms,
            after,
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
            ..Scan::default()
        };
        let singles: Vec<ConversationRow> =
            self.scan(&scan, |e| f.matches_single(e)).await?.into_iter().map(single_row).collect();
        rows.extend(singles);
        rows.sort_unstable_by(|a, b| (b.last_at_ms, &b.id).cmp(&(a.last_at_ms, &a.id)));
        rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(rows)
    }

    /// One conversation: its row, or the event without a conversation id that is one.
    pub async fn get_conversation(&self, id: &str) -> Result<Option<ConversationRow>, StoreError> {
        const SQL: &str = concat!("SELECT ", conversation_columns!(), " FROM conversations WHERE id = $1");
        let row = on_pool!(self, |p| {
            let row = sqlx::query(SQL).bind(id).fetch_optional(p).await?;
            row.as_ref().map(conversation_from_row).transpose()?
        });
        if row.is_some() {
            return Ok(row);
        }
        Ok(self.find_event(id).await?.filter(|e| e.conversation_id.is_none()).map(single_row))
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
