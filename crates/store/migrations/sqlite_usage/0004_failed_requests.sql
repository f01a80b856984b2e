-- The request log's "failed" filter (Cost & Usage's "Failed requests", the console's status
-- chip) reads the failed events newest first: a partial index holds only them (about 2% of
-- events in a healthy deployment, so inserts of successful events do not touch it). The
-- request-log query names it (INDEXED BY) when it filters on failed requests without a
-- conversation, since SQLite without statistics would scan the provider index instead.
CREATE INDEX usage_events_failed ON usage_events (ts, id) WHERE status <> 'success';
