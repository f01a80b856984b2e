-- One fewer index entry per recorded request (issue 16: transcripts at ≤ 5 % of RPS). The only
-- query on `key_id` is re-sealing after a key rotation, `WHERE key_id <> $1 ORDER BY ts,
-- event_id`, which neither SQLite nor PostgreSQL answers from a B-tree on `key_id` (an
-- inequality): it walks `transcripts_ts`. Keep in step with ../postgres/0013_lean_transcript_indexes.sql.
DROP INDEX transcripts_key_id;
