//! The Azure OpenAI wire family: the OpenAI format on an Azure resource's paths.
//!
//! - `request`: the deployment paths (`/openai/deployments/{deployment}/chat/completions`
//!   …`?api-version=…`), where the model is the deployment name from the path, and the
//!   `/openai/v1/…` paths, where it is the body's `model` (also a deployment name).
//! - Bodies, usage and streams are the OpenAI family's (`openai::usage`, `openai::stream`; this
//!   family has no `usage.rs` or `stream.rs` of its own),
//!   with the `include_usage` edit; the decoder also records the model the response names
//!   (Azure reports the deployment's model, e.g. `gpt-4o-2024-08-06`), which prices the call.

pub(crate) mod request;

use bytes::Bytes;

use crate::openai;
use crate::wire::{Endpoint, RequestInfo, StreamDecoder, WireFamily};
use tollgate_core::WireFamilyId;

/// The Azure OpenAI wire family.
#[derive(Debug)]
pub(crate) struct AzureOpenAi;

impl WireFamily for AzureOpenAi {
    fn id(&self) -> WireFamilyId {
        WireFamilyId::AzureOpenAi
    }
    fn inspect(&self, method: &str, path: &str, query: Option<&str>, body: &[u8]) -> RequestInfo {
        request::inspect(method, path, query, body)
    }
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
        Box::new(openai::stream::Decoder::new(endpoint, filter, true))
    }
    fn assemble_body(&self, body: &serde_json::Value, out: &mut crate::wire::Assembled) {
        openai::assemble::body(body, out);
    }
    fn assemble_event(&self, _event: Option<&str>, data: &serde_json::Value, out: &mut crate::wire::Assembled) {
        openai::assemble::event(data, out);
    }
}
