-- Transcripts: the recorded message bodies of proxied requests (ARCHITECTURE.md, Decisions:
-- Transcripts), in tables of their own. One row per usage event whose provider recorded input
-- and/or output; each body is zstd-compressed, then sealed with the master key
-- (`v1:<key_id>:...`, AAD binding it to its event and direction).
CREATE TABLE transcripts (
    event_id TEXT PRIMARY KEY,
    ts BIGINT NOT NULL,
    provider TEXT NOT NULL,
    key_id TEXT NOT NULL,
    request_headers TEXT NOT NULL,
    response_content_type TEXT,
    input_sealed TEXT,
    input_bytes BIGINT,
    input_truncated BOOLEAN NOT NULL DEFAULT FALSE,
    output_sealed TEXT,
    output_bytes BIGINT,
    output_truncated BOOLEAN NOT NULL DEFAULT FALSE,
    stored_bytes BIGINT NOT NULL
);
CREATE INDEX transcripts_ts ON transcripts (ts, event_id);
CREATE INDEX transcripts_provider_ts ON transcripts (provider, ts);
CREATE INDEX transcripts_key_id ON transcripts (key_id);

-- The request log reads events newest first by (ts, id) and per conversation; conversations
-- are kept as one row each, upserted with their events (the Transcripts list pages over them).
CREATE INDEX usage_events_ts_id ON usage_events (ts, id);
CREATE INDEX usage_events_conversation ON usage_events (conversation_id, ts);
CREATE TABLE conversations (
    id TEXT PRIMARY KEY,
    started_at BIGINT NOT NULL,
    last_at BIGINT NOT NULL,
    providers TEXT NOT NULL,
    user_email TEXT,
    agent TEXT,
    turns BIGINT NOT NULL,
    failed_turns BIGINT NOT NULL,
    tokens BIGINT NOT NULL,
    cost BIGINT NOT NULL
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
