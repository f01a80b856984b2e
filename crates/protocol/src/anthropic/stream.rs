//! Anthropic responses on the side. A stream reports usage twice: `message_start` carries
//! `message.usage` (the input side and a small `output_tokens`), `message_delta` carries the
//! cumulative usage so far (`output_tokens`, and on newer API versions the input and cache
//! fields too). Fields in `message_delta` replace those from `message_start`. An `error` event
//! inside a 2xx stream is recorded. Non-streamed bodies: the top-level `usage` member.

use serde::Deserialize;

use crate::Usage;
use crate::anthropic::usage::RawUsage;
use crate::json_scan::ErrorField;
use crate::sse::SseEvent;
use crate::wire::{Action, Endpoint, StreamDecoder};

/// Top-level members of a non-streamed body that carry usage.
pub(crate) const BODY_MEMBERS: &[&str] = &["usage"];

#[derive(Debug)]
pub(crate) struct Decoder {
    usage: Option<RawUsage>,
    error: Option<String>,
    /// `message_stop` (the stream's last event) was seen.
    terminal: bool,
}

#[derive(Deserialize)]
struct Payload {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    message: Option<MessageObject>,
    #[serde(default)]
    usage: Option<RawUsage>,
    #[serde(default)]
    error: Option<ErrorField>,
}

#[derive(Deserialize)]
struct MessageObject {
    #[serde(default)]
    usage: Option<RawUsage>,
}

impl Decoder {
    pub(crate) fn new(_endpoint: Endpoint) -> Decoder {
        Decoder { usage: None, error: None, terminal: false }
    }
}

/// The decoder as the tap drives it.
impl StreamDecoder for Decoder {
    fn body_members(&self) -> &'static [&'static str] {
        BODY_MEMBERS
    }
    fn on_event(&mut self, ev: &SseEvent) -> Action {
        if !ev.truncated {
            self.on_element(ev.data.as_bytes());
        }
        Action::Forward
    }

    fn on_element(&mut self, json: &[u8]) {
        let Ok(p) = serde_json::from_slice::<Payload>(json) else {
            return;
        };
        if p.kind.as_deref() == Some("message_stop") {
            self.terminal = true;
        }
        if p.kind.as_deref() == Some("message_start")
            && let Some(u) = p.message.and_then(|m| m.usage)
        {
            self.usage = Some(u);
        }
        if let Some(u) = p.usage {
            match &mut self.usage {
                Some(old) => old.merge(u),
                None => self.usage = Some(u),
            }
        }
        if self.error.is_none()
            && let Some(e) = &p.error
        {
            self.error = e.message().or_else(|| Some("error".to_string()));
        }
    }

    fn on_member(&mut self, name: &str, raw: &[u8]) {
        if name == "usage"
            && let Ok(Some(u)) = serde_json::from_slice::<Option<RawUsage>>(raw)
        {
            self.usage = Some(u);
        }
    }

    fn usage(&self) -> Option<Usage> {
        self.usage.as_ref().map(RawUsage::normalize)
    }

    fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    fn terminal(&self) -> bool {
        self.terminal
    }
}
