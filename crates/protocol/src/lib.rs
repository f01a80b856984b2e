//! Wire formats of the upstream LLM APIs, as pure functions over bytes: no sockets, no
//! clock, no database. The proxy (in `tollgate-server`) calls into this crate; this crate
//! depends only on `tollgate-core`.
//!
//! - [`inspect`] classifies a request (endpoint, model, streaming) without a full JSON parse.
//! - [`prepare_body`] makes the one documented body edit (OpenAI `stream_options.include_usage`).
//! - [`Tap`] watches one upstream response on the side: it forwards bytes unchanged (or, for an
//!   injected OpenAI stream, minus the usage-only chunk the edit caused) and extracts normalised
//!   [`Usage`] and in-stream errors.
//! - [`filter_model_list`] narrows a models-list response to the provider's allow-list.
//! - [`assemble`] reads a recorded response (body or stream) back as a message: text,
//!   thinking and tool calls (transcripts).
//! - [`request_params`] reads the sampling parameters traces name (max tokens, temperature, top p),
//!   [`input_messages`] the input messages in the GenAI conventions' parts format.
//! - [`errors`] renders errors the gateway itself produces in each family's native shape.
//! - [`fixture`] describes the golden wire fixtures under `tests/fixtures/<family>/`.
//!
//! - [`sigv4`] signs a Bedrock request (AWS Signature Version 4) over the exact bytes sent;
//!   credentials, region and time are arguments.
//!
//! Each wire family has one module with the same files (`request`, `usage`, `stream`, `assemble`) and a
//! unit struct implementing [`WireFamily`] in its `mod.rs`; [`family`] maps a
//! [`WireFamilyId`] (named by each provider type's descriptor in `tollgate-core`) to it. The
//! shared vocabulary ([`Endpoint`], [`RequestInfo`], the decoder trait) is in [`wire`], which
//! the family modules import; only [`exchange`] imports the families. [`eventstream`] is the
//! AWS binary frame reader, like [`sse`] a transport framing.
//!
//! Memory stays bounded on long streams: parsers keep only the current SSE event or JSON-array
//! element, and a non-streamed JSON body is scanned for its top-level `usage` member without
//! being held. No single held event, element or captured value grows past [`MAX_HELD_BYTES`];
//! beyond it that item is skipped (its usage, if any, is lost) and its bytes are forwarded.

pub mod errors;
pub mod eventstream;
pub mod exchange;
pub mod fixture;
pub mod json_scan;
pub mod messages;
pub mod params;
pub mod sse;
pub mod wire;

pub mod sigv4;

mod anthropic;
mod azure_openai;
mod bedrock;
mod google;
mod openai;
mod outcome;

pub use bedrock::control::{ControlCall, filter_control_list, profile_allowed};
pub use bedrock::request::is_profile_or_arn;
/// The AWS event-stream frame reader, public for the fuzz targets (`fuzz/`).
pub use eventstream::{EventStreamReader, Frame as EventStreamFrame};

pub use exchange::{Tap, assemble, family, filter_model_list, inspect, output_limit, prepare_body};
pub use fixture::Case;
pub use messages::{input_messages, output_messages};
pub use params::{RequestParams, request_params};
pub use sse::{SseEvent, SseParser};
pub use tollgate_core::{Usage, WireFamilyId};
pub use wire::{Assembled, Endpoint, OutputLimit, RequestInfo, StreamDecoder, ToolCall, WireFamily};

#[cfg(test)]
use tollgate_core::ProviderType;

/// The largest single SSE event, JSON-array element or captured JSON value the parsers hold
/// (4 MiB: usage-bearing items are a few KiB; the cap only has to keep a huge content event
/// from being held, since many run at once). An item beyond it is not parsed: its bytes
/// still flow to the client, its usage (if it carried any) is lost, and the buffer never
/// grows further.
pub const MAX_HELD_BYTES: usize = 4 * 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_provider_type_has_an_implemented_family() {
        for t in ProviderType::ALL {
            let id = t.wire_family();
            assert_eq!(family(id).id(), id, "{t}");
        }
        let dirs: Vec<_> = WireFamilyId::ALL.iter().map(|f| f.as_str()).collect();
        assert_eq!(dirs, ["openai", "anthropic", "google", "bedrock", "azure_openai"]);
    }
}
