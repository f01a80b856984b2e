-- The request log reads events newest first by (ts, id) and per conversation; conversations
-- are kept as one row each, upserted with their events (the Transcripts list pages over them).
CREATE INDEX usage_events_ts_id ON usage_events (ts, id);
CREATE INDEX usage_events_conversation ON usage_events (conversation_id, ts);
CREATE TABLE conversations (
    id TEXT PRIMARY KEY,
    started_at INTEGER NOT NULL,
    last_at INTEGER NOT NULL,
    providers TEXT NOT NULL,
    user_email TEXT,
    agent TEXT,
    turns INTEGER NOT NULL,
    failed_turns INTEGER NOT NULL,
    tokens INTEGER NOT NULL,
    cost INTEGER NOT NULL
);
CREATE INDEX conversations_last ON conversations (last_at, id);
-- Events stored before this migration: one conversation per conversation id (a request
-- without one is a conversation of its own).
INSERT INTO conversations (id, started_at, last_at, providers, user_email, agent, turns, failed_turns, tokens, cost)
SELECT COALESCE(conversation_id, id), MIN(ts), MAX(ts), MIN(provider), MIN(user_email), MIN(agent), COUNT(*),
       SUM(CASE WHEN status = 'success' THEN 0 ELSE 1 END),
       SUM(tokens_input + tokens_output + tokens_reasoning + tokens_cached_input + tokens_cache_write_5m
           + tokens_cache_write_1h + tokens_cache_write_unknown),
       SUM(cost_total)
FROM usage_events GROUP BY COALESCE(conversation_id, id);
