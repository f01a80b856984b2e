//! The OpenAI wire family (OpenAI and every OpenAI-compatible server): chat completions,
//! legacy completions, the Responses API and embeddings.
//!
//! - `request`: endpoint and model from the path and body, the `stream_options.include_usage`
//!   edit, models-list filtering.
//! - `usage`: `usage` objects (both the `prompt_tokens` and the `input_tokens` styles) into
//!   disjoint buckets.
//! - `stream`: chat/completions chunks and Responses events, including the decision to drop
//!   the usage-only chunk the edit caused.

pub(crate) mod assemble;
pub(crate) mod request;
pub(crate) mod stream;
pub(crate) mod usage;

use bytes::Bytes;

use crate::Usage;
use crate::sse::SseEvent;
use crate::wire::{Action, Endpoint, RequestInfo, StreamDecoder, WireFamily};
use tollgate_core::WireFamilyId;

/// The OpenAI wire family.
#[derive(Debug)]
pub(crate) struct OpenAi;

impl WireFamily for OpenAi {
    fn id(&self) -> WireFamilyId {
        WireFamilyId::OpenAi
    }
    fn inspect(&self, method: &str, path: &str, query: Option<&str>, body: &[u8]) -> RequestInfo {
        request::inspect(method, path, query, body)
    }
    fn prepare_body(&self, info: &RequestInfo, body: Bytes) -> (Bytes, bool) {
        request::prepare_body(info, body)
    }
    fn filter_model_list(&self, body: &[u8], allowed: &dyn Fn(&str) -> bool) -> Option<Vec<u8>> {
        request::filter_model_list(body, allowed)
    }
    fn filters_usage_chunk(&self, endpoint: Endpoint) -> bool {
        request::edits(endpoint)
    }
    fn decoder(&self, endpoint: Endpoint, filter: bool) -> Box<dyn StreamDecoder> {
        Box::new(stream::Decoder::new(endpoint, filter, false))
    }
    fn assemble_body(&self, body: &serde_json::Value, out: &mut crate::wire::Assembled) {
        assemble::body(body, out);
    }
    fn assemble_event(&self, _event: Option<&str>, data: &serde_json::Value, out: &mut crate::wire::Assembled) {
        assemble::event(data, out);
    }
}

impl StreamDecoder for stream::Decoder {
    fn body_members(&self) -> &'static [&'static str] {
        stream::Decoder::body_members(self)
    }
    fn on_event(&mut self, ev: &SseEvent) -> Action {
        stream::Decoder::on_event(self, ev)
    }
    fn on_element(&mut self, json: &[u8]) {
        stream::Decoder::on_element(self, json);
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
    fn response_model(&self) -> Option<&str> {
        stream::Decoder::response_model(self)
    }
    fn generation_ended(&self) -> bool {
        stream::Decoder::generation_ended(self)
    }
}
