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

use crate::Usage;
use crate::sse::SseEvent;
use crate::wire::{Action, Endpoint, RequestInfo, StreamDecoder, WireFamily};
use tollgate_core::WireFamilyId;

/// The Anthropic wire family.
#[derive(Debug)]
pub(crate) struct Anthropic;

impl WireFamily for Anthropic {
    fn id(&self) -> WireFamilyId {
        WireFamilyId::Anthropic
    }
    fn inspect(&self, method: &str, path: &str, query: Option<&str>, body: &[u8]) -> RequestInfo {
        request::inspect(method, path, query, body)
    }
    fn filter_model_list(&self, body: &[u8], allowed: &dyn Fn(&str) -> bool) -> Option<Vec<u8>> {
        request::filter_model_list(body, allowed)
    }
    fn decoder(&self, endpoint: Endpoint, _filter: bool) -> Box<dyn StreamDecoder> {
        Box::new(stream::Decoder::new(endpoint))
    }
}

impl StreamDecoder for stream::Decoder {
    fn body_members(&self) -> &'static [&'static str] {
        stream::BODY_MEMBERS
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
}
