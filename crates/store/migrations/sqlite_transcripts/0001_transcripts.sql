-- Transcripts: the recorded message bodies of proxied requests (ARCHITECTURE.md, Decisions:
-- Transcripts), in their own SQLite file (transcripts.sqlite) beside usage.sqlite. One row per
-- usage event whose provider recorded input and/or output; each body is zstd-compressed, then
-- sealed with the master key (`v1:<key_id>:...`, AAD binding it to its event and direction).
CREATE TABLE transcripts (
    event_id TEXT PRIMARY KEY,
    ts INTEGER NOT NULL,
    provider TEXT NOT NULL,
    key_id TEXT NOT NULL,
    request_headers TEXT NOT NULL,
    response_content_type TEXT,
    input_sealed TEXT,
    input_bytes INTEGER,
    input_truncated BOOLEAN NOT NULL DEFAULT FALSE,
    output_sealed TEXT,
    output_bytes INTEGER,
    output_truncated BOOLEAN NOT NULL DEFAULT FALSE,
    stored_bytes INTEGER NOT NULL
);
CREATE INDEX transcripts_ts ON transcripts (ts, event_id);
CREATE INDEX transcripts_provider_ts ON transcripts (provider, ts);
CREATE INDEX transcripts_key_id ON transcripts (key_id);
