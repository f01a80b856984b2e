//! Transcript capture on the side of a proxied exchange (ARCHITECTURE.md, Decisions:
//! Transcripts). When the provider's snapshot entry — the one the request was admitted with,
//! so a toggle flipped mid-traffic applies to requests that start afterwards — records input
//! and/or output, [`begin`] starts a [`Capture`]; the `Recorder` carries it, the response body
//! stream shows it every batch it hands the client ([`Capture::output`]), and the finished
//! [`Captured`] travels with the usage event to the writer, which compresses and seals it.
//!
//! The input is a copy of the request body (the client's bytes, before the gateway's
//! `include_usage` edit) and the output a copy of the batches the client received, appended as
//! they are sent (copies, not references: see `transcript::Body`). Each direction keeps at most
//! `--transcript-max-bytes` (the head; the rest is counted and flagged truncated). With both
//! toggles off there is no capture at all. Headers: only [`HEADER_ALLOW_LIST`] is kept, so no
//! client credential, gateway token or injected upstream key can reach a transcript.

use crate::snapshot::ProviderEntry;
use crate::transcript::{Body, Captured};
use axum::http::{HeaderMap, HeaderName, header};
use bytes::Bytes;

/// Request headers kept with a transcript: non-secret, and useful to read a body back. Names,
/// not strings: a lookup by `&str` parses the name first (~600 instructions each).
pub static HEADER_ALLOW_LIST: [HeaderName; 4] = [
    header::CONTENT_TYPE,
    HeaderName::from_static("anthropic-version"),
    HeaderName::from_static("anthropic-beta"),
    header::USER_AGENT,
];

/// Longest header value kept.
const MAX_HEADER_VALUE: usize = 512;

/// A capture in progress.
#[derive(Debug)]
pub struct Capture {
    max: usize,
    input: Option<Body>,
    output: Option<Out>,
    /// The allow-listed request headers as `name: value` lines.
    request_headers: String,
}

#[derive(Debug, Default)]
struct Out {
    bytes: Vec<u8>,
    truncated: bool,
}

/// Starts a capture when the provider records input or output; `None` (nothing held) when
/// both toggles are off or `max_bytes` is 0.
pub fn begin(entry: &ProviderEntry, headers: &HeaderMap, body: &Bytes, max_bytes: usize) -> Option<Box<Capture>> {
    let t = entry.spec.transcripts;
    if !(t.record_input_messages || t.record_output_messages) || max_bytes == 0 {
        return None;
    }
    let input = t.record_input_messages.then(|| {
        let truncated = body.len() > max_bytes;
        Body { bytes: body[..body.len().min(max_bytes)].to_vec(), truncated }
    });
    // One pass over the request's headers (four map lookups cost more: each hashes its name),
    // keeping the first value of each allow-listed name, in the client's order.
    let mut request_headers = String::with_capacity(128);
    let mut seen = [false; HEADER_ALLOW_LIST.len()];
    for (name, value) in headers {
        let Some(i) = HEADER_ALLOW_LIST.iter().position(|n| n == name) else { continue };
        // `to_str` admits visible ASCII only: every byte is a character, and none a line break.
        let Ok(v) = value.to_str() else { continue };
        if std::mem::replace(&mut seen[i], true) {
            continue;
        }
        request_headers.push_str(name.as_str());
        request_headers.push_str(": ");
        request_headers.push_str(&v[..v.len().min(MAX_HEADER_VALUE)]);
        request_headers.push('\n');
    }
    Some(Box::new(Capture {
        max: max_bytes,
        input,
        output: t.record_output_messages.then(Out::default),
        request_headers,
    }))
}

impl Capture {
    /// Keeps a copy of bytes the client was sent, up to the limit.
    pub fn output(&mut self, bytes: &Bytes) {
        let Some(out) = self.output.as_mut() else { return };
        if out.truncated || bytes.is_empty() {
            out.truncated |= !bytes.is_empty();
            return;
        }
        let room = self.max - out.bytes.len();
        if bytes.len() > room {
            out.truncated = true;
            out.bytes.extend_from_slice(&bytes[..room]);
            return;
        }
        out.bytes.extend_from_slice(bytes);
    }

    /// The finished capture; `response_content_type` tells how to read the output back.
    pub fn finish(self, response_content_type: Option<String>) -> Captured {
        let output = self.output.map(|o| Body { bytes: o.bytes, truncated: o.truncated });
        Captured { input: self.input, output, request_headers: self.request_headers, response_content_type }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(input: bool, output: bool) -> ProviderEntry {
        let spec: tollgate_core::ProviderSpec = serde_json::from_value(serde_json::json!({
            "name": "p", "display_name": "P", "type": "openai", "openai_config": {"api_key_ref": "K"},
            "transcripts": {"record_input_messages": input, "record_output_messages": output}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        ProviderEntry::new(spec, 0, 0)
    }

    #[test]
    fn nothing_is_held_with_both_toggles_off() {
        assert!(begin(&entry(false, false), &HeaderMap::new(), &Bytes::from_static(b"x"), 10).is_none());
        assert!(begin(&entry(true, true), &HeaderMap::new(), &Bytes::from_static(b"x"), 0).is_none());
    }

    #[test]
    fn each_direction_keeps_its_head_up_to_the_limit() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer tg_secret".parse().unwrap_or_else(|e| panic!("{e}")));
        h.insert("user-agent", "sdk/1".parse().unwrap_or_else(|e| panic!("{e}")));
        h.append("anthropic-beta", "first".parse().unwrap_or_else(|e| panic!("{e}")));
        h.append("anthropic-beta", "second".parse().unwrap_or_else(|e| panic!("{e}")));
        h.insert("x-api-key", "sk-secret".parse().unwrap_or_else(|e| panic!("{e}")));
        let mut c =
            begin(&entry(true, true), &h, &Bytes::from_static(b"0123456789"), 4).unwrap_or_else(|| panic!("capture"));
        c.output(&Bytes::from_static(b"ab"));
        c.output(&Bytes::from_static(b"cde"));
        c.output(&Bytes::from_static(b"f"));
        let done = c.finish(Some("text/event-stream".into()));
        let input = done.input.unwrap_or_else(|| panic!("input"));
        assert_eq!((&input.bytes[..], input.truncated), (&b"0123"[..], true));
        let output = done.output.unwrap_or_else(|| panic!("output"));
        assert_eq!((&output.bytes[..], output.truncated), (&b"abcd"[..], true));
        assert_eq!(
            done.request_headers, "user-agent: sdk/1\nanthropic-beta: first\n",
            "the first value of each kept name"
        );
    }

    #[test]
    fn output_only_keeps_no_input_and_a_short_body_is_whole() {
        let mut c = begin(&entry(false, true), &HeaderMap::new(), &Bytes::from_static(b"prompt"), 100)
            .unwrap_or_else(|| panic!("capture"));
        c.output(&Bytes::from_static(b"answer"));
        let done = c.finish(None);
        assert!(done.input.is_none());
        let output = done.output.unwrap_or_else(|| panic!("output"));
        assert_eq!((&output.bytes[..], output.truncated), (&b"answer"[..], false));
    }
}
