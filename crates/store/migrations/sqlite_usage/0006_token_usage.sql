-- Per gateway token and UTC day: requests, spend and the newest request's time, for the tokens
-- page and API (last used, 7-day spend). The usage writer upserts it in each batch's
-- transaction, one row per token and day present in the batch (the events' own rollups carry
-- no token). Like the rollups it outlives raw-event retention. Backfilled from the events kept.
-- Keep in step with ../postgres/0011_token_usage.sql.
CREATE TABLE token_usage_daily (
    token_id TEXT NOT NULL,
    day_start INTEGER NOT NULL,
    requests INTEGER NOT NULL DEFAULT 0,
    cost_total INTEGER NOT NULL DEFAULT 0,
    last_at INTEGER NOT NULL,
    PRIMARY KEY (token_id, day_start)
) WITHOUT ROWID;
INSERT INTO token_usage_daily (token_id, day_start, requests, cost_total, last_at)
SELECT token_id, ts - (ts % 86400000), COUNT(*), SUM(cost_total), MAX(ts)
FROM usage_events WHERE token_id IS NOT NULL
GROUP BY token_id, ts - (ts % 86400000);
