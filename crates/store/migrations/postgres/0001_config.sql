-- Tollgate config store, PostgreSQL dialect. Timestamps are epoch milliseconds.
-- Keep in step with ../sqlite/0001_config.sql. Keys use COLLATE "C" so keyset
-- pagination orders exactly like SQLite (bytewise), whatever the database locale.

CREATE TABLE config_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT  NOT NULL
);
INSERT INTO config_version (id, version) VALUES (1, 0);

CREATE TABLE providers (
    name         TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    type         TEXT    NOT NULL,
    display_name TEXT    NOT NULL,
    enabled      BOOLEAN NOT NULL,
    spec_json    TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL
);

-- No foreign key to secrets: a ref may name a secret held by a read-only backend
-- (environment, mounted files). delete_secret checks this table instead.
CREATE TABLE provider_secret_refs (
    provider TEXT COLLATE "C" NOT NULL REFERENCES providers (name) ON DELETE CASCADE,
    field    TEXT NOT NULL,
    secret   TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (provider, field)
);
CREATE INDEX provider_secret_refs_secret ON provider_secret_refs (secret);

CREATE TABLE secrets (
    name       TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    sealed     TEXT   NOT NULL,
    key_id     TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE gateway_tokens (
    id             TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    name           TEXT   NOT NULL,
    hash           BYTEA  NOT NULL UNIQUE CHECK (octet_length(hash) = 32),
    prefix         TEXT   NOT NULL,
    user_email     TEXT,
    agent          TEXT,
    role           TEXT   NOT NULL,
    providers_json TEXT,
    expires_at     BIGINT,
    created_at     BIGINT NOT NULL,
    revoked_at     BIGINT
);
