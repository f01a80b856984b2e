-- The config change log: which resources (kind + name; name `*` = every resource of the kind)
-- each config version changed, written in the same transaction as the change and its version
-- bump, so a replica re-reads only those rows (ARCHITECTURE.md, Decisions: Replicas converge).
-- The writes themselves prune rows older than the last 10,000 versions; a replica further
-- behind, or one that finds a version without rows (a write by an older binary), reloads all.
CREATE TABLE config_changes (
    version INTEGER NOT NULL,
    kind    TEXT    NOT NULL,
    name    TEXT    NOT NULL,
    PRIMARY KEY (version, kind, name)
);
