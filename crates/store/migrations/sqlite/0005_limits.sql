-- Budgets and rate limits (ARCHITECTURE.md, Decisions: Budgets and rate limits).
-- Keep in step with ../postgres/0006_limits.sql.

-- The resources: the validated spec as JSON. `override_key` is `<pooling>:<agent or user>`
-- for a per-agent / per-user override (at most one per agent or user), else NULL.
CREATE TABLE budgets (
    name         TEXT NOT NULL PRIMARY KEY,
    override_key TEXT,
    spec_json    TEXT   NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE TABLE rate_limits (
    name       TEXT NOT NULL PRIMARY KEY,
    spec_json  TEXT   NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- One window per (kind, resource, pool key, period start): kind is `budget` (microcents),
-- `requests` or `tokens` (per minute). `spent` is what the replicas have settled and flushed.
CREATE TABLE limit_windows (
    kind         TEXT NOT NULL,
    name         TEXT NOT NULL,
    pool         TEXT NOT NULL,
    period_start INTEGER NOT NULL,
    spent        INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (kind, name, pool, period_start)
);

-- What each replica (`holder`) holds of a window: taken from what is left, handed back on
-- sync; an expired lease no longer counts.
CREATE TABLE limit_leases (
    kind         TEXT NOT NULL,
    name         TEXT NOT NULL,
    pool         TEXT NOT NULL,
    period_start INTEGER NOT NULL,
    holder       TEXT NOT NULL,
    amount       INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    PRIMARY KEY (kind, name, pool, period_start, holder)
);
