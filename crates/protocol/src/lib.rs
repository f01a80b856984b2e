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
//! - [`errors`] renders errors the gateway itself produces in each family's native shape.
//! - [`fixture`] describes the golden wire fixtures under `tests/fixtures/<family>/`.
//!
//! - [`sigv4`] signs a Bedrock request (AWS Signature Version 4) over the exact bytes sent;
//!   credentials, region and time are arguments.
//!
//! Each provider family has one module with the same files (`request`, `usage`, `stream`;
//! Bedrock adds `eventstream`, the AWS binary frame reader); [`Family`] is matched
//! exhaustively wherever the families differ, so adding one is adding a variant, a module, and
//! the match arms the compiler asks for.
//!
//! Memory stays bounded on long streams: parsers keep only the current SSE event or JSON-array
//! element, and a non-streamed JSON body is scanned for its top-level `usage` member without
//! being held. No single held event, element or captured value grows past [`MAX_HELD_BYTES`];
//! beyond it that item is skipped (its usage, if any, is lost) and its bytes are forwarded.

pub mod errors;
pub mod exchange;
pub mod fixture;
pub mod json_scan;
pub mod sse;

pub mod sigv4;

mod anthropic;
mod bedrock;
mod google;
mod openai;

pub use bedrock::control::{ControlCall, filter_control_list, profile_allowed};
/// The AWS event-stream frame reader, public for the fuzz targets (`fuzz/`).
pub use bedrock::eventstream::{EventStreamReader, Frame as EventStreamFrame};
pub use bedrock::request::is_profile_or_arn;

pub use exchange::{Endpoint, RequestInfo, Tap, filter_model_list, inspect, prepare_body};
pub use fixture::Case;
pub use sse::{SseEvent, SseParser};
pub use tollgate_core::Usage;

use tollgate_core::ProviderType;

/// The largest single SSE event, JSON-array element or captured JSON value the parsers hold
/// (16 MiB). An item beyond it is not parsed: its bytes still flow to the client, its usage
/// (if it carried any) is lost, and the buffer never grows further.
pub const MAX_HELD_BYTES: usize = 16 * 1024 * 1024;

/// Wire family: OpenAI and OpenAI-compatible share one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    OpenAi,
    Anthropic,
    Google,
    /// Bedrock runtime: native paths, plus the OpenAI-compatible chat completions.
    Bedrock,
}

impl Family {
    /// Every family, in a stable order.
    pub const ALL: [Family; 4] = [Family::OpenAi, Family::Anthropic, Family::Google, Family::Bedrock];

    /// The wire family of a provider type.
    pub fn of(t: ProviderType) -> Family {
        match t {
            ProviderType::Openai | ProviderType::OpenaiCompatible => Family::OpenAi,
            ProviderType::Anthropic => Family::Anthropic,
            ProviderType::Google => Family::Google,
            ProviderType::Bedrock => Family::Bedrock,
        }
    }

    /// The directory of this family's golden fixtures under `tests/fixtures/`.
    pub fn fixture_dir(self) -> &'static str {
        match self {
            Family::OpenAi => "openai",
            Family::Anthropic => "anthropic",
            Family::Google => "google",
            Family::Bedrock => "bedrock",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn family_of_each_type() {
        assert_eq!(Family::of(ProviderType::Openai), Family::OpenAi);
        assert_eq!(Family::of(ProviderType::OpenaiCompatible), Family::OpenAi);
        assert_eq!(Family::of(ProviderType::Anthropic), Family::Anthropic);
        assert_eq!(Family::of(ProviderType::Google), Family::Google);
        assert_eq!(Family::of(ProviderType::Bedrock), Family::Bedrock);
        let dirs: Vec<_> = Family::ALL.iter().map(|f| f.fixture_dir()).collect();
        assert_eq!(dirs, ["openai", "anthropic", "google", "bedrock"]);
    }
}
