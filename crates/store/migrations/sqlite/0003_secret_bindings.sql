-- The hosts (`host[:port]` of a provider's upstream base URL) each secret may be sent to.
-- No foreign key to secrets: the secret may live in a read-only backend (environment,
-- mounted files); the binding is kept here for every backend. No rows = not bound yet
-- (the first provider that references the secret binds it).
CREATE TABLE secret_bindings (
    secret TEXT NOT NULL,
    host   TEXT NOT NULL,
    PRIMARY KEY (secret, host)
);
