-- Transcripts are stored a batch at a time (issue 16: recording at ≤ 5 % of RPS): the usage
-- writer seals each flush's transcripts of one provider into one row of `transcript_batches`,
-- and each event names its batch, with what it recorded (bit 1 input, 2 output, 4 truncated).
-- Events recorded before keep NULL: their transcript, if any, is a row of its own in
-- `transcripts`, keyed by the event id. `event_ids` lists the transcripts a batch still holds
-- (space-separated), so a purge or a retention sweep that removes some of them rewrites it
-- (`version` guards a concurrent rewrite). `stored_bytes` is the sum of the transcripts'
-- encoded sizes before compression: what the size cap counts.
-- Keep in step with ../sqlite_usage/0008_transcript_refs.sql and
-- ../sqlite_transcripts/0003_transcript_batches.sql.
ALTER TABLE usage_events ADD COLUMN transcript_batch TEXT;
ALTER TABLE usage_events ADD COLUMN transcript_flags BIGINT;
CREATE TABLE transcript_batches (
    id TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    ts_first BIGINT NOT NULL,
    ts_last BIGINT NOT NULL,
    key_id TEXT NOT NULL,
    entries BIGINT NOT NULL,
    event_ids TEXT NOT NULL,
    plain_bytes BIGINT NOT NULL,
    stored_bytes BIGINT NOT NULL,
    sealed TEXT NOT NULL,
    version BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX transcript_batches_ts ON transcript_batches (ts_first, id);
CREATE INDEX transcript_batches_provider_ts ON transcript_batches (provider, ts_first);
