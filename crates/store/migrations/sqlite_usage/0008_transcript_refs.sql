-- Transcripts are stored a batch at a time (issue 16: recording at ≤ 5 % of RPS): the usage
-- writer seals each flush's transcripts of one provider into one row of `transcript_batches`
-- (transcripts.sqlite), and each event names its batch here, with what it recorded (bit 1
-- input, 2 output, 4 truncated). Events recorded before keep NULL: their transcript, if any,
-- is a row of its own in `transcripts`, keyed by the event id.
-- Keep in step with ../postgres/0014_transcript_batches.sql.
ALTER TABLE usage_events ADD COLUMN transcript_batch TEXT;
ALTER TABLE usage_events ADD COLUMN transcript_flags INTEGER;
