-- Tollgate config store, SQLite dialect. Timestamps are epoch milliseconds.
-- Keep in step with ../postgres/0001_config.sql.

CREATE TABLE config_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO config_version (id, version) VALUES (1, 0);

CREATE TABLE providers (
    name         TEXT    NOT NULL PRIMARY KEY,
    type         TEXT    NOT NULL,
    display_name TEXT    NOT NULL,
    enabled      INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    spec_json    TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);

-- No foreign key to secrets: a ref may name a secret held by a read-only backend
-- (environment, mounted files). delete_secret checks this table instead.
CREATE TABLE provider_secret_refs (
    provider TEXT NOT NULL REFERENCES providers (name) ON DELETE CASCADE,
    field    TEXT NOT NULL,
    secret   TEXT NOT NULL,
    PRIMARY KEY (provider, field)
);
CREATE INDEX provider_secret_refs_secret ON provider_secret_refs (secret);

CREATE TABLE secrets (
    name       TEXT    NOT NULL PRIMARY KEY,
    sealed     TEXT    NOT NULL,
    key_id     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE gateway_tokens (
    id             TEXT    NOT NULL PRIMARY KEY,
    name           TEXT    NOT NULL,
    hash           BLOB    NOT NULL UNIQUE CHECK (length(hash) = 32),
    prefix         TEXT    NOT NULL,
    user_email     TEXT,
    agent          TEXT,
    role           TEXT    NOT NULL,
    providers_json TEXT,
    expires_at     INTEGER,
    created_at     INTEGER NOT NULL,
    revoked_at     INTEGER
);
