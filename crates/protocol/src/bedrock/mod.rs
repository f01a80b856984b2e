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

pub(crate) mod assemble;
pub(crate) mod control;
pub(crate) mod request;
pub(crate) mod stream;
pub(crate) mod usage;

use bytes::Bytes;

use crate::Usage;
use crate::eventstream::Frame;
use crate::openai;
use crate::wire::{Endpoint, RequestInfo, StreamDecoder, WireFamily};
use tollgate_core::WireFamilyId;

/// The Bedrock runtime wire family.
#[derive(Debug)]
pub(crate) struct Bedrock;

impl WireFamily for Bedrock {
    fn id(&self) -> WireFamilyId {
        WireFamilyId::Bedrock
    }
    fn inspect(&self, method: &str, path: &str, query: Option<&str>, body: &[u8]) -> RequestInfo {
        request::inspect(method, path, query, body)
    }
    /// Bedrock's OpenAI-compatible chat completions get the OpenAI edit.
    fn prepare_body(&self, info: &RequestInfo, body: Bytes) -> (Bytes, bool) {
        openai::request::prepare_body(info, body)
    }
    fn filter_model_list(&self, body: &[u8], allowed: &dyn Fn(&str) -> bool) -> Option<Vec<u8>> {
        openai::request::filter_model_list(body, allowed)
    }
    fn filters_usage_chunk(&self, endpoint: Endpoint) -> bool {
        openai::request::edits(endpoint)
    }
    fn decoder(&self, endpoint: Endpoint, filter: bool) -> Box<dyn StreamDecoder> {
        if openai::request::is_openai_endpoint(endpoint) {
            Box::new(openai::stream::Decoder::new(endpoint, filter, false))
        } else {
            Box::new(stream::Decoder::new(endpoint))
        }
    }
    fn assemble_body(&self, body: &serde_json::Value, out: &mut crate::wire::Assembled) {
        assemble::body(body, out);
    }
    fn assemble_event(&self, event: Option<&str>, data: &serde_json::Value, out: &mut crate::wire::Assembled) {
        assemble::frame(event, data, out);
    }
}

impl StreamDecoder for stream::Decoder {
    fn body_members(&self) -> &'static [&'static str] {
        stream::BODY_MEMBERS
    }
    fn on_frame(&mut self, frame: &Frame) {
        stream::Decoder::on_frame(self, frame);
    }
    fn on_header(&mut self, name: &str, value: &str) {
        stream::Decoder::on_header(self, name, value);
    }
    fn on_member(&mut self, name: &str, raw: &[u8]) {
        stream::Decoder::on_member(self, name, raw);
    }
    fn usage(&self) -> Option<Usage> {
        stream::Decoder::usage(self)
    }
    fn error(&self) -> Option<&str> {
        stream::Decoder::error(self)
    }
    fn terminal(&self) -> bool {
        stream::Decoder::terminal(self)
    }
    fn generation_ended(&self) -> bool {
        stream::Decoder::generation_ended(self)
    }
}
