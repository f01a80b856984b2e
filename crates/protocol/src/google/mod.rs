//! The Google Gemini API wire family (`generativelanguage.googleapis.com`): the model and
//! action from the path, `usageMetadata` in JSON bodies, SSE (`alt=sse`) and the progressively
//! streamed JSON array that `streamGenerateContent` returns without `alt=sse`.
//!
//! - `request`: endpoint and model from `/v1beta/models/{model}:{action}` (and `/v1/`,
//!   `/v1alpha/`, `tunedModels/`), models-list filtering on `models[].name`.
//! - `usage`: `usageMetadata` into disjoint buckets.
//! - `stream`: the last `usageMetadata` of a stream (each chunk carries the cumulative count)
//!   and error elements.

pub(crate) mod assemble;
pub(crate) mod request;
pub(crate) mod stream;
pub(crate) mod usage;

use crate::wire::{Endpoint, RequestInfo, StreamDecoder, WireFamily};
use tollgate_core::WireFamilyId;

/// The Google wire family.
#[derive(Debug)]
pub(crate) struct Google;

impl WireFamily for Google {
    fn id(&self) -> WireFamilyId {
        WireFamilyId::Google
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
        assemble::chunk(body, out);
    }
    fn assemble_event(&self, _event: Option<&str>, data: &serde_json::Value, out: &mut crate::wire::Assembled) {
        assemble::chunk(data, out);
    }
}
