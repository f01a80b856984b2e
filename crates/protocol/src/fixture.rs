//! The golden wire fixtures' case format. Each case is `tests/fixtures/<family>/<case>.case.json`
//! plus the recorded upstream body it names (`.json`, or `.sse` for streams) and, when the
//! client must receive something else (the injected usage chunk removed), a client body.
//! The protocol golden tests, the testkit's fake upstreams and the gateway's integration tests
//! all read the same files; adding a case is adding files. Pure: callers read the files.

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
