-- Fewer index entries per usage event (issue 21: the insert's work follows what is new).
-- Keep in step with ../sqlite_usage/0005_lean_event_indexes.sql.
-- `usage_events_ts` is a prefix of `usage_events_ts_id`: every query on `ts` (retention, the
-- request log, list_events) uses the wider one.
DROP INDEX usage_events_ts;
-- Only events that name a conversation are looked up by it (`conversation_id = ?`); an event
-- without one is found by its id, so it needs no entry here.
DROP INDEX usage_events_conversation;
CREATE INDEX usage_events_conversation ON usage_events (conversation_id, ts) WHERE conversation_id IS NOT NULL;
