-- Cost: whether the catalog could price an event, and usage rollups (DESIGN.md §4).
-- The usage writer upserts the rollup rows of each batch in the same transaction as its events;
-- spending reports read only rollups, so they cost buckets x groups, not raw events. Four
-- tables, the same counters in each, so a report reads the fewest rows that can answer it:
--   usage_rollup_hourly        per hour, provider, provider type, model, user, agent
--   usage_rollup_hourly_model  per hour, provider, provider type, model (no user/agent filter or grouping)
--   usage_rollup_daily         per UTC day, like usage_rollup_hourly
--   usage_rollup_daily_model   per UTC day, like usage_rollup_hourly_model
-- bucket_start is epoch ms; absent model/user/agent are ''. Rollups outlive raw-event retention.
ALTER TABLE usage_events ADD COLUMN unpriced BOOLEAN NOT NULL DEFAULT FALSE;
-- SQLite: WITHOUT ROWID clusters rows by key, so a time range is one contiguous scan.
CREATE TABLE usage_rollup_hourly (
    bucket_start INTEGER NOT NULL,
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
    PRIMARY KEY (bucket_start, provider, provider_type, model, user_email, agent)
) WITHOUT ROWID;
CREATE TABLE usage_rollup_hourly_model (
    bucket_start INTEGER NOT NULL,
    provider TEXT NOT NULL,
    provider_type TEXT NOT NULL,
    model TEXT NOT NULL,
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
    PRIMARY KEY (bucket_start, provider, provider_type, model)
) WITHOUT ROWID;
CREATE TABLE usage_rollup_daily (
    bucket_start INTEGER NOT NULL,
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
    PRIMARY KEY (bucket_start, provider, provider_type, model, user_email, agent)
) WITHOUT ROWID;
CREATE TABLE usage_rollup_daily_model (
    bucket_start INTEGER NOT NULL,
    provider TEXT NOT NULL,
    provider_type TEXT NOT NULL,
    model TEXT NOT NULL,
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
    PRIMARY KEY (bucket_start, provider, provider_type, model)
) WITHOUT ROWID;
