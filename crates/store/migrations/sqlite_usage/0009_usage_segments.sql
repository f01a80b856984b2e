-- Usage events stored a batch at a time (issue 21: metering's work per event proportional to
-- what is new in a batch, not to the columns and indexes of a row per event). Each flush of
-- the usage writer becomes one or a few segments: up to 1,000 events spanning at most 60 s of
-- arrival time, encoded together (src/segments.rs), with one term row per distinct filterable
-- value (provider, model, user, agent, status, failure, conversation, one-turn conversation).
-- The request log, conversations and retention read segments in `ts_max` order, driven by a
-- term when the query names one. Rows of `usage_events` (events stored before this
-- migration) are moved into segments when the store opens (`UsageStore::upgrade`).
-- Keep in step with ../postgres/0015_usage_segments.sql.
CREATE TABLE usage_segments (
    id INTEGER PRIMARY KEY,
    ts_min INTEGER NOT NULL,
    ts_max INTEGER NOT NULL,
    events INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX usage_segments_ts ON usage_segments (ts_max);
CREATE TABLE usage_segment_terms (
    term TEXT NOT NULL,
    ts_max INTEGER NOT NULL,
    segment INTEGER NOT NULL,
    PRIMARY KEY (term, ts_max, segment)
) WITHOUT ROWID;
-- Retention and rewrites drop a segment's terms by segment.
CREATE INDEX usage_segment_terms_segment ON usage_segment_terms (segment);
