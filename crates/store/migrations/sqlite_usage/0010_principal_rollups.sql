-- Hourly rollups per user and per agent alone (issue 21, reports at scale): an hourly report
-- grouped or filtered by user (or by agent) and by nothing else reads one row per hour and
-- user instead of summing the full hourly table's rows (one per hour, provider, model, user
-- and agent) in a sort: at 10^7 events over 30 days the hourly series of all 40 users read
-- 82,080 rows through a temporary B-tree for 28,800 groups. Same counters as the other
-- rollups; the usage writer upserts them with the others in each batch's transaction, and
-- they outlive raw-event retention like the others. Backfilled from usage_rollup_hourly.
-- Keep in step with ../postgres/0016_principal_rollups.sql.
CREATE TABLE usage_rollup_hourly_user (
    bucket_start INTEGER NOT NULL,
    user_email TEXT NOT NULL,
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
    PRIMARY KEY (bucket_start, user_email)
) WITHOUT ROWID;
INSERT INTO usage_rollup_hourly_user (bucket_start, user_email, requests, failed_requests, unpriced_requests, override_requests, tokens_input, tokens_output, tokens_reasoning, tokens_cached_input, tokens_cache_write_5m, tokens_cache_write_1h, tokens_cache_write_unknown, cost_input, cost_output, cost_reasoning, cost_cached_input, cost_cache_write_5m, cost_cache_write_1h, cost_cache_write_unknown, cost_total)
SELECT bucket_start, user_email, SUM(requests), SUM(failed_requests), SUM(unpriced_requests), SUM(override_requests), SUM(tokens_input), SUM(tokens_output), SUM(tokens_reasoning), SUM(tokens_cached_input), SUM(tokens_cache_write_5m), SUM(tokens_cache_write_1h), SUM(tokens_cache_write_unknown), SUM(cost_input), SUM(cost_output), SUM(cost_reasoning), SUM(cost_cached_input), SUM(cost_cache_write_5m), SUM(cost_cache_write_1h), SUM(cost_cache_write_unknown), SUM(cost_total)
FROM usage_rollup_hourly GROUP BY bucket_start, user_email;
CREATE TABLE usage_rollup_hourly_agent (
    bucket_start INTEGER NOT NULL,
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
    PRIMARY KEY (bucket_start, agent)
) WITHOUT ROWID;
INSERT INTO usage_rollup_hourly_agent (bucket_start, agent, requests, failed_requests, unpriced_requests, override_requests, tokens_input, tokens_output, tokens_reasoning, tokens_cached_input, tokens_cache_write_5m, tokens_cache_write_1h, tokens_cache_write_unknown, cost_input, cost_output, cost_reasoning, cost_cached_input, cost_cache_write_5m, cost_cache_write_1h, cost_cache_write_unknown, cost_total)
SELECT bucket_start, agent, SUM(requests), SUM(failed_requests), SUM(unpriced_requests), SUM(override_requests), SUM(tokens_input), SUM(tokens_output), SUM(tokens_reasoning), SUM(tokens_cached_input), SUM(tokens_cache_write_5m), SUM(tokens_cache_write_1h), SUM(tokens_cache_write_unknown), SUM(cost_input), SUM(cost_output), SUM(cost_reasoning), SUM(cost_cached_input), SUM(cost_cache_write_5m), SUM(cost_cache_write_1h), SUM(cost_cache_write_unknown), SUM(cost_total)
FROM usage_rollup_hourly GROUP BY bucket_start, agent;
