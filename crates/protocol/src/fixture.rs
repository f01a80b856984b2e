//! The golden wire fixtures' case format. Each case is `tests/fixtures/<family>/<case>.case.json`
//! plus the recorded upstream body it names (`.json`, `.sse` for SSE streams, `.events.json`
//! for AWS event streams) and, when the client must receive something else (the injected usage
//! chunk removed), a client body. The protocol golden tests, the testkit's fake upstreams and
//! the gateway's integration tests all read the same files; adding a case is adding files.
//! Pure: callers read the files.
//!
//! An `.events.json` file describes an `application/vnd.amazon.eventstream` body frame by
//! frame, so the binary is generated (with real CRCs) rather than stored: a JSON array of
//! `{"event": "<:event-type>", "payload": <JSON>}`, `{"event": "chunk", "chunk": <JSON>}` (an
//! InvokeModelWithResponseStream chunk: the JSON is base64-encoded into `{"bytes": …}` the way
//! Bedrock sends it) or `{"exception": "<:exception-type>", "payload": <JSON>}`.
//! [`event_stream_frames`] turns it into the frames' bytes.

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use base64::Engine;
use serde::Deserialize;

use crate::Usage;

/// One recorded exchange and what the gateway must make of it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub description: String,
    /// HTTP method, e.g. "POST".
    pub method: String,
    /// Upstream-relative path as passed to [`crate::inspect`]: "/chat/completions",
    /// "/v1/messages", "/v1beta/models/gemini-2.5-flash:streamGenerateContent".
    pub path: String,
    /// Raw query string without '?', e.g. "alt=sse".
    #[serde(default)]
    pub query: Option<String>,
    /// The request's JSON body.
    #[serde(default)]
    pub request: Option<serde_json::Value>,
    /// Upstream status.
    pub status: u16,
    /// Upstream `Content-Type`.
    pub content_type: String,
    /// Other upstream response headers (e.g. Bedrock's token-count headers).
    #[serde(default)]
    pub response_headers: Vec<(String, String)>,
    /// File name (same directory) of the recorded upstream body.
    pub response: String,
    /// File name of what the client must receive when it differs from `response`.
    #[serde(default)]
    pub client_response: Option<String>,
    /// Whether [`crate::prepare_body`] must inject `include_usage` for this request.
    pub injected: bool,
    /// Expected normalised usage (`None`: the response carries none, or is not metered).
    pub usage: Option<Usage>,
    /// Expected [`crate::Tap::stream_error`] (an error reported inside a 2xx response).
    #[serde(default)]
    pub stream_error: Option<String>,
}

impl Case {
    /// The request body bytes as a client would send them (empty when there is none).
    pub fn request_body(&self) -> Vec<u8> {
        match &self.request {
            Some(v) => serde_json::to_vec(v).unwrap_or_default(),
            None => Vec::new(),
        }
    }

    /// The file whose bytes the client must receive.
    pub fn client_file(&self) -> &str {
        self.client_response.as_deref().unwrap_or(&self.response)
    }
}

/// One frame of an `.events.json` description.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FrameSpec {
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    exception: Option<String>,
    #[serde(default)]
    payload: Option<serde_json::Value>,
    #[serde(default)]
    chunk: Option<serde_json::Value>,
}

/// The bytes of each frame an `.events.json` description names (see the module doc), with
/// the `:message-type`, `:event-type` / `:exception-type` and `:content-type` headers Bedrock
/// sends. Invoke chunks get the `"p"` padding field Bedrock adds.
pub fn event_stream_frames(description: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let specs: Vec<FrameSpec> = serde_json::from_slice(description).map_err(|e| format!("event description: {e}"))?;
    let string = |v: &str| HeaderValue::String(v.to_string().into());
    let mut frames = Vec::with_capacity(specs.len());
    for (i, spec) in specs.into_iter().enumerate() {
        let (kind, name) = match (&spec.event, &spec.exception) {
            (Some(e), None) => ("event", e.clone()),
            (None, Some(x)) => ("exception", x.clone()),
            _ => return Err(format!("frame {i}: exactly one of `event` and `exception`")),
        };
        let payload = match (spec.chunk, spec.payload) {
            (Some(inner), None) => {
                let b64 = base64::engine::general_purpose::STANDARD.encode(inner.to_string());
                serde_json::json!({"bytes": b64, "p": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"}).to_string()
            }
            (None, Some(p)) => p.to_string(),
            (None, None) => String::new(),
            (Some(_), Some(_)) => return Err(format!("frame {i}: `chunk` and `payload` together")),
        };
        let type_header = if kind == "event" { ":event-type" } else { ":exception-type" };
        let message = Message::new(payload.into_bytes())
            .add_header(Header::new(type_header, string(&name)))
            .add_header(Header::new(":content-type", string("application/json")))
            .add_header(Header::new(":message-type", string(kind)));
        let mut out = Vec::new();
        write_message_to(&message, &mut out).map_err(|e| format!("frame {i}: {e}"))?;
        frames.push(out);
    }
    Ok(frames)
}
