-- Cost: whether the catalog could price an event, and hourly rollups of usage (DESIGN.md §4).
-- The usage writer upserts one rollup row per (hour, provider, provider type, model, user,
-- agent) in the same transaction as the events it summarises; spending reports read only
-- the rollups, so they cost buckets x groups, not raw events. Absent model/user/agent are ''.
-- Rollups outlive raw-event retention.
ALTER TABLE usage_events ADD COLUMN unpriced BOOLEAN NOT NULL DEFAULT FALSE;
CREATE TABLE usage_rollup_hourly (
    hour_start INTEGER NOT NULL,
    provider TEXT NOT NULL,
    provider_type TEXT NOT NULL,
    model TEXT NOT NULL,
    user_email TEXT NOT NULL,
    agent TEXT NOT NULL,
    requests INTEGER NOT NULL DEFAULT 0,
    failed_requests INTEGER NOT NULL DEFAULT 0,
    unpriced_requests INTEGER NOT NULL DEFAULT 0,
    override_requests INTEGER NOT NULL DEFAULT 0,
    tokens_input INTEGER NOT NULL DEFAULT 0,
    tokens_output INTEGER NOT NULL DEFAULT 0,
    tokens_reasoning INTEGER NOT NULL DEFAULT 0,
    tokens_cached_input INTEGER NOT NULL DEFAULT 0,
    tokens_cache_write_5m INTEGER NOT NULL DEFAULT 0,
    tokens_cache_write_1h INTEGER NOT NULL DEFAULT 0,
    tokens_cache_write_unknown INTEGER NOT NULL DEFAULT 0,
    cost_input INTEGER NOT NULL DEFAULT 0,
    cost_output INTEGER NOT NULL DEFAULT 0,
    cost_reasoning INTEGER NOT NULL DEFAULT 0,
    cost_cached_input INTEGER NOT NULL DEFAULT 0,
    cost_cache_write_5m INTEGER NOT NULL DEFAULT 0,
    cost_cache_write_1h INTEGER NOT NULL DEFAULT 0,
    cost_cache_write_unknown INTEGER NOT NULL DEFAULT 0,
    cost_total INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (hour_start, provider, provider_type, model, user_email, agent)
) WITHOUT ROWID; -- SQLite: rows clustered by the key, so an hour range is one contiguous scan
