-- Budgets and rate limits (ARCHITECTURE.md, Decisions: Budgets and rate limits).
-- Keep in step with ../sqlite/0004_limits.sql.

-- The resources: the validated spec as JSON. `override_key` is `<pooling>:<agent or user>`
-- for a per-agent / per-user override (at most one per agent or user), else NULL.
CREATE TABLE budgets (
    name         TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    override_key TEXT COLLATE "C",
    spec_json    TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE TABLE rate_limits (
    name       TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    spec_json  TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- One window per (kind, resource, pool key, period start): kind is `budget` (microcents),
-- `requests` or `tokens` (per minute). `spent` is what the replicas have settled and flushed.
CREATE TABLE limit_windows (
    kind         TEXT COLLATE "C" NOT NULL,
    name         TEXT COLLATE "C" NOT NULL,
    pool         TEXT COLLATE "C" NOT NULL,
    period_start BIGINT NOT NULL,
    spent        BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (kind, name, pool, period_start)
);

-- What each replica (`holder`) holds of a window: taken from what is left, handed back on
-- sync; an expired lease no longer counts.
CREATE TABLE limit_leases (
    kind         TEXT COLLATE "C" NOT NULL,
    name         TEXT COLLATE "C" NOT NULL,
    pool         TEXT COLLATE "C" NOT NULL,
    period_start BIGINT NOT NULL,
    holder       TEXT COLLATE "C" NOT NULL,
    amount       BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    PRIMARY KEY (kind, name, pool, period_start, holder)
);
