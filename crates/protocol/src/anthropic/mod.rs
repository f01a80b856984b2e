//! The Anthropic Messages wire family: `POST /v1/messages` (JSON or SSE), token counting and
//! the models list.
//!
//! - `request`: endpoint from the path, `model` and `stream` from the JSON body, models-list
//!   filtering on `data[].id`.
//! - `usage`: `usage` objects into disjoint buckets (cache reads, cache writes by TTL).
//! - `stream`: `message_start` + `message_delta` usage merged without double counting, and
//!   `event: error` inside a 2xx stream.

pub(crate) mod assemble;
pub(crate) mod request;
pub(crate) mod stream;
pub(crate) mod usage;

use crate::wire::{Endpoint, RequestInfo, StreamDecoder, WireFamily};
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
    fn assemble_body(&self, body: &serde_json::Value, out: &mut crate::wire::Assembled) {
        assemble::body(body, out);
    }
    fn assemble_event(&self, _event: Option<&str>, data: &serde_json::Value, out: &mut crate::wire::Assembled) {
        assemble::event(data, out);
    }
}
