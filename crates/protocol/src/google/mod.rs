//! The Google Gemini API wire family (`generativelanguage.googleapis.com`): the model and
//! action from the path, `usageMetadata` in JSON bodies, SSE (`alt=sse`) and the progressively
//! streamed JSON array that `streamGenerateContent` returns without `alt=sse`.
//!
//! - `request`: endpoint and model from `/v1beta/models/{model}:{action}` (and `/v1/`,
//!   `/v1alpha/`, `tunedModels/`), models-list filtering on `models[].name`.
//! - `usage`: `usageMetadata` into disjoint buckets.
//! - `stream`: the last `usageMetadata` of a stream (each chunk carries the cumulative count)
//!   and error elements.

pub(crate) mod request;
pub(crate) mod stream;
pub(crate) mod usage;
