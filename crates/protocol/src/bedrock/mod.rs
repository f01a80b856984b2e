//! The AWS Bedrock runtime wire family: `InvokeModel` (`/model/{id}/invoke`),
//! `InvokeModelWithResponseStream` (`/invoke-with-response-stream`), `Converse` (`/converse`),
//! `ConverseStream` (`/converse-stream`), and the OpenAI-compatible Chat Completions endpoint
//! bedrock-runtime serves at `/openai/v1/chat/completions` (which reuses the OpenAI family's
//! request, usage and stream logic, `include_usage` edit included).
//!
//! - `request`: endpoint and model id from the path (percent-decoded, so ARNs and
//!   inference-profile ids work), streaming from the path.
//! - `usage`: Converse `usage` (cache reads, cache writes split by TTL through `cacheDetails`),
//!   `amazon-bedrock-invocationMetrics`, the `x-amzn-bedrock-*-token-count` headers, and how
//!   they combine with the model's own (Anthropic-shaped) usage into disjoint buckets.
//! - `stream`: the usage decoder over AWS event-stream frames (invoke `chunk` events carrying
//!   base64 model chunks; converse `metadata` events) and non-streamed JSON bodies.
//! - `control`: the control-plane calls Bedrock clients make on the proxy URL
//!   (`ListInferenceProfiles`, `GetInferenceProfile`, `ListFoundationModels`) and the
//!   allow-list filter over their answers.
//! - `eventstream`: the incremental binary event-stream frame reader (prelude + headers +
//!   payload + CRCs, checked by `aws-smithy-eventstream`), fed chunk by chunk as bytes pass.

pub(crate) mod control;
pub(crate) mod eventstream;
pub(crate) mod request;
pub(crate) mod stream;
pub(crate) mod usage;
