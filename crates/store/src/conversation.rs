//! The conversation schema, shared by the usage writer (`usage.rs`, which upserts a batch's
//! conversation rows in the batch's transaction, like its rollups) and the request-log queries
//! (`requests.rs`, which read them). A conversation is the requests sharing a conversation id
//! (`X-Tollgate-Conversation`, or a session id a well-known client sends); a request without
//! one is a conversation of its own, keyed by its event id. Such a one-turn conversation has
//! no row here: it is read from its event (segments holding one carry the term "one-turn
//! conversation", `segments.rs`), so an event without a conversation id costs nothing more
//! than being stored (issue 21).
//! Depends on the event type only.

use crate::UsageEvent;
use std::borrow::Cow;
use std::collections::BTreeMap;
use tollgate_core::RequestStatus;

/// What one batch adds to a conversation row (borrowing the batch's strings: no allocation
/// per event unless a conversation spans providers).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ConversationDelta<'a> {
    pub started_at: i64,
    pub last_at: i64,
    /// Provider names, comma-separated (names cannot hold a comma); deduplicated on read.
    pub providers: Cow<'a, str>,
    pub user: Option<&'a str>,
    pub agent: Option<&'a str>,
    pub turns: i64,
    pub failed_turns: i64,
    pub tokens: i64,
    pub cost: i64,
}

/// The conversation id an event counts under.
pub fn conversation_of(e: &UsageEvent) -> &str {
    e.conversation_id.as_deref().unwrap_or(&e.id)
}

/// A batch's conversation rows, keyed (and so locked, on PostgreSQL) in sorted order: one per
/// conversation id in the batch (events without one are their own conversation, read from the
/// event, and add no row).
pub(crate) fn conversation_deltas<'e>(events: &[&'e UsageEvent]) -> BTreeMap<&'e str, ConversationDelta<'e>> {
    let mut out: BTreeMap<&str, ConversationDelta<'_>> = BTreeMap::new();
    for e in events {
        let Some(id) = e.conversation_id.as_deref() else { continue };
        let d = out.entry(id).or_insert_with(|| ConversationDelta {
            started_at: e.ts_ms,
            last_at: e.ts_ms,
            providers: Cow::Borrowed(&e.provider),
            ..ConversationDelta::default()
        });
        d.started_at = d.started_at.min(e.ts_ms);
        d.last_at = d.last_at.max(e.ts_ms);
        if !d.providers.split(',').any(|p| *p == *e.provider) {
            let providers = d.providers.to_mut();
            providers.push(',');
            providers.push_str(&e.provider);
        }
        if d.user.is_none() {
            d.user = e.user.as_deref();
        }
        if d.agent.is_none() {
            d.agent = e.agent.as_deref();
        }
        d.turns += 1;
        d.failed_turns += i64::from(e.status != RequestStatus::Success);
        d.tokens += e.usage.total_tokens();
        d.cost += e.cost.total;
    }
    out
}

/// Same text on both backends (`CASE` instead of `LEAST`/`MIN`, `||` concatenation).
const CONVERSATION_UPSERT_TAIL: &str = " ON CONFLICT (id) DO UPDATE SET \
     started_at = CASE WHEN excluded.started_at < conversations.started_at THEN excluded.started_at \
                  ELSE conversations.started_at END, \
     last_at = CASE WHEN excluded.last_at > conversations.last_at THEN excluded.last_at \
               ELSE conversations.last_at END, \
     providers = CASE WHEN (',' || conversations.providers || ',') LIKE ('%,' || excluded.providers || ',%') \
                 THEN conversations.providers ELSE conversations.providers || ',' || excluded.providers END, \
     user_email = COALESCE(conversations.user_email, excluded.user_email), \
     agent = COALESCE(conversations.agent, excluded.agent), \
     turns = conversations.turns + excluded.turns, \
     failed_turns = conversations.failed_turns + excluded.failed_turns, \
     tokens = conversations.tokens + excluded.tokens, \
     cost = conversations.cost + excluded.cost";

/// The conversation upserts (10 binds per row), in fixed prepared sizes (`db::MultiRowInsert`).
pub(crate) static CONVERSATION_UPSERT: crate::db::MultiRowInsert = crate::db::MultiRowInsert::new(
    "conversations",
    "id, started_at, last_at, providers, user_email, agent, turns, failed_turns, tokens, cost",
    CONVERSATION_UPSERT_TAIL,
    &crate::db::SMALL_BATCH_SIZES,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_named_conversations_get_a_row() {
        let mut a = crate::usage::tests::event(1);
        a.conversation_id = Some("c".into());
        let mut b = crate::usage::tests::event(2);
        b.conversation_id = Some("c".into());
        b.status = RequestStatus::UpstreamError;
        let lone = crate::usage::tests::event(3);
        let batch = [a, b, lone];
        let rows = conversation_deltas(&batch.iter().collect::<Vec<_>>());
        assert_eq!(rows.keys().copied().collect::<Vec<_>>(), vec!["c"]);
        assert_eq!((rows["c"].turns, rows["c"].failed_turns), (2, 1));
        assert_eq!(conversation_of(&batch[2]), batch[2].id, "the lone event is its own conversation");
    }
}
