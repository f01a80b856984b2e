//! The Anthropic Messages wire family: `POST /v1/messages` (JSON or SSE), token counting and
//! the models list.
//!
//! - `request`: endpoint from the path, `model` and `stream` from the JSON body, models-list
//!   filtering on `data[].id`.
//! - `usage`: `usage` objects into disjoint buckets (cache reads, cache writes by TTL).
//! - `stream`: `message_start` + `message_delta` usage merged without double counting, and
//!   `event: error` inside a 2xx stream.

pub(crate) mod request;
pub(crate) mod stream;
pub(crate) mod usage;
