//! Gemini responses on the side. Every streamed chunk (an SSE event with `alt=sse`, else an
//! element of the streamed JSON array) carries the cumulative `usageMetadata` so far: the last
//! one with counts wins. An element with a top-level `error` records the upstream's message.
//! Non-streamed bodies: the top-level `usageMetadata` member.

use serde::Deserialize;

use crate::Usage;
use crate::google::usage::RawUsage;
use crate::json_scan::ErrorField;
use crate::sse::SseEvent;
use crate::wire::{Action, Endpoint, StreamDecoder};

/// Top-level members of a non-streamed body that carry usage.
pub(crate) const BODY_MEMBERS: &[&str] = &["usageMetadata"];

#[derive(Debug)]
pub(crate) struct Decoder {
    usage: Option<Usage>,
    error: Option<String>,
    /// A chunk with a candidate's `finishReason` (the stream's last chunk) was seen.
    terminal: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload {
    #[serde(default)]
    usage_metadata: Option<RawUsage>,
    #[serde(default)]
    error: Option<ErrorField>,
    #[serde(default)]
    candidates: Option<Vec<Candidate>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    #[serde(default)]
    finish_reason: Option<String>,
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
        let finished = |c: &Candidate| {
            c.finish_reason.as_deref().is_some_and(|r| !r.is_empty() && r != "FINISH_REASON_UNSPECIFIED")
        };
        if p.candidates.as_ref().is_some_and(|cs| cs.iter().any(finished)) {
            self.terminal = true;
        }
        if let Some(u) = p.usage_metadata.filter(RawUsage::has_counts) {
            self.usage = Some(u.normalize());
        }
        if self.error.is_none()
            && let Some(e) = &p.error
        {
            self.error = e.message().or_else(|| Some("error".to_string()));
        }
    }

    fn on_member(&mut self, name: &str, raw: &[u8]) {
        if name == "usageMetadata"
            && let Ok(Some(u)) = serde_json::from_slice::<Option<RawUsage>>(raw)
            && u.has_counts()
        {
            self.usage = Some(u.normalize());
        }
    }

    fn usage(&self) -> Option<Usage> {
        self.usage
    }

    fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    fn terminal(&self) -> bool {
        self.terminal
    }
}
