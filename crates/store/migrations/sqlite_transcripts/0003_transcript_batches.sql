-- One row per flush of the usage writer and provider: that batch's transcripts, encoded
-- together (protobuf), compressed and sealed once with the master key (AAD
-- `transcript-batch:<id>`). The events name their batch (`usage_events.transcript_batch`);
-- `event_ids` lists those still held (space-separated), so a purge or a retention sweep that
-- removes some of a batch's transcripts rewrites it (`version` guards a concurrent rewrite)
-- and the request log knows which remain without opening it. `stored_bytes` is the sum of
-- the transcripts' encoded sizes before compression: what the size cap counts.
-- Keep in step with ../postgres/0014_transcript_batches.sql.
CREATE TABLE transcript_batches (
    id TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    ts_first INTEGER NOT NULL,
    ts_last INTEGER NOT NULL,
    key_id TEXT NOT NULL,
    entries INTEGER NOT NULL,
    event_ids TEXT NOT NULL,
    plain_bytes INTEGER NOT NULL,
    stored_bytes INTEGER NOT NULL,
    sealed TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX transcript_batches_ts ON transcript_batches (ts_first, id);
CREATE INDEX transcript_batches_provider_ts ON transcript_batches (provider, ts_first);
