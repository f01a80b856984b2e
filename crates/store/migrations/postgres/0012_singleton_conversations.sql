-- A request without a conversation id is a conversation of its own (one turn). Its event is
-- stored without one, gets no row in `conversations`, and the conversation list reads it from
-- the event through this partial index: one index entry per such event instead of a
-- conversation row, its primary-key entry, its `(last_at, id)` entry and a
-- `usage_events_conversation` entry (issue 21: the insert's work follows what is new).
-- Events stored before this migration name their own id as conversation and keep their
-- conversation rows, which answer for them as before (no rewrite of existing rows).
-- Keep in step with ../sqlite_usage/0007_singleton_conversations.sql.
CREATE INDEX usage_events_singletons ON usage_events (ts, id) WHERE conversation_id IS NULL;
