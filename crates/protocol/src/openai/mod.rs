//! The OpenAI wire family (OpenAI and every OpenAI-compatible server): chat completions,
//! legacy completions, the Responses API and embeddings.
//!
//! - `request`: endpoint and model from the path and body, the `stream_options.include_usage`
//!   edit, models-list filtering.
//! - `usage`: `usage` objects (both the `prompt_tokens` and the `input_tokens` styles) into
//!   disjoint buckets.
//! - `stream`: chat/completions chunks and Responses events, including the decision to drop
//!   the usage-only chunk the edit caused.

pub(crate) mod request;
pub(crate) mod stream;
pub(crate) mod usage;
