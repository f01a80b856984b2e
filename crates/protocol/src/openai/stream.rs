//! OpenAI responses on the side: chat/completions SSE chunks (usage on the chunk whose `usage`
//! is non-null; with an injected `include_usage`, that usage-only chunk is dropped), Responses
//! API events (usage from the final `response.*` object; errors from `response.failed` and
//! `error` events), and non-streamed bodies (the top-level `usage` member).

use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::Usage;
use crate::json_scan::ErrorField;
use crate::openai::usage::RawUsage;
use crate::sse::SseEvent;
use crate::wire::{Action, Endpoint};

/// Top-level members of a non-streamed body that carry usage.
pub(crate) const BODY_MEMBERS: &[&str] = &["usage"];

#[derive(Debug)]
pub(crate) struct Decoder {
    /// Drop the usage-only chunk (the request was edited to ask for it).
    filter: bool,
    usage: Option<Usage>,
    error: Option<String>,
    /// The stream's last event was seen: `data: [DONE]` (chat/completions, completions) or a
    /// Responses `response.completed` / `response.failed` / `response.incomplete`.
    terminal: bool,
}

/// The parts of a chat/completions chunk or a Responses event the tap reads.
#[derive(Deserialize)]
struct Payload {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    choices: Option<Vec<IgnoredAny>>,
    #[serde(default)]
    usage: Option<RawUsage>,
    #[serde(default)]
    response: Option<ResponseObject>,
    #[serde(default)]
    error: Option<ErrorField>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct ResponseObject {
    #[serde(default)]
    usage: Option<RawUsage>,
    #[serde(default)]
    error: Option<ErrorField>,
}

impl Decoder {
    pub(crate) fn new(_endpoint: Endpoint, filter: bool) -> Decoder {
        Decoder { filter, usage: None, error: None, terminal: false }
    }

    pub(crate) fn on_event(&mut self, ev: &SseEvent) -> Action {
        if ev.truncated {
            return Action::Forward;
        }
        if ev.data.trim() == "[DONE]" {
            self.terminal = true;
            return Action::Forward;
        }
        let Ok(p) = serde_json::from_str::<Payload>(&ev.data) else {
            return Action::Forward;
        };
        let usage_only = p.usage.is_some() && p.choices.as_ref().is_none_or(Vec::is_empty) && p.error.is_none();
        self.apply(p);
        if self.filter && usage_only { Action::Drop } else { Action::Forward }
    }

    pub(crate) fn on_element(&mut self, json: &[u8]) {
        if let Ok(p) = serde_json::from_slice::<Payload>(json) {
            self.apply(p);
        }
    }

    pub(crate) fn on_member(&mut self, name: &str, raw: &[u8]) {
        if name == "usage"
            && let Ok(Some(u)) = serde_json::from_slice::<Option<RawUsage>>(raw)
        {
            self.usage = Some(u.normalize());
        }
    }

    pub(crate) fn usage(&self) -> Option<Usage> {
        self.usage
    }

    pub(crate) fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    pub(crate) fn terminal(&self) -> bool {
        self.terminal
    }

    fn apply(&mut self, p: Payload) {
        if matches!(p.kind.as_deref(), Some("response.completed" | "response.failed" | "response.incomplete")) {
            self.terminal = true;
        }
        if let Some(u) = &p.usage {
            self.usage = Some(u.normalize());
        }
        if let Some(u) = p.response.as_ref().and_then(|r| r.usage.as_ref()) {
            self.usage = Some(u.normalize());
        }
        if self.error.is_some() {
            return;
        }
        self.error = match p.kind.as_deref() {
            Some("error") => p
                .message
                .filter(|m| !m.is_empty())
                .map(|m| crate::json_scan::short(&m))
                .or_else(|| p.error.as_ref().and_then(ErrorField::message))
                .or_else(|| Some("error".to_string())),
            Some("response.failed") => p
                .response
                .as_ref()
                .and_then(|r| r.error.as_ref())
                .and_then(ErrorField::message)
                .or_else(|| Some("response.failed".to_string())),
            _ => p.error.as_ref().and_then(ErrorField::message),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(data: &str) -> SseEvent {
        SseEvent { event: None, data: data.to_string(), id: None, start: 0, end: 0, truncated: false }
    }

    #[test]
    fn drops_only_the_usage_only_chunk_when_filtering() {
        let mut d = Decoder::new(Endpoint::ChatCompletions, true);
        let content = r#"{"id":"c","choices":[{"index":0,"delta":{"content":"hi"}}],"usage":null}"#;
        assert_eq!(d.on_event(&ev(content)), Action::Forward);
        let usage = r#"{"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#;
        assert_eq!(d.on_event(&ev(usage)), Action::Drop);
        assert!(!d.terminal());
        assert_eq!(d.on_event(&ev("[DONE]")), Action::Forward);
        assert!(d.terminal(), "[DONE] ends a chat stream");
        assert_eq!(d.usage(), Some(Usage { input: 3, output: 1, ..Usage::default() }));
        let mut pass = Decoder::new(Endpoint::ChatCompletions, false);
        assert_eq!(pass.on_event(&ev(usage)), Action::Forward);
        assert_eq!(pass.usage(), Some(Usage { input: 3, output: 1, ..Usage::default() }));
    }

    #[test]
    fn errors_in_streams() {
        let mut d = Decoder::new(Endpoint::ChatCompletions, false);
        d.on_event(&ev(r#"{"error":{"message":"The server had an error","type":"server_error"}}"#));
        assert_eq!(d.error(), Some("The server had an error"));
        let mut d = Decoder::new(Endpoint::Responses, false);
        d.on_event(&ev(r#"{"type":"error","code":"ERR","message":"Something went wrong","param":null}"#));
        assert_eq!(d.error(), Some("Something went wrong"));
        let mut d = Decoder::new(Endpoint::Responses, false);
        d.on_event(&ev(
            r#"{"type":"response.failed","response":{"status":"failed","error":{"code":"server_error","message":"boom"},"usage":{"input_tokens":4,"output_tokens":0}}}"#,
        ));
        assert_eq!(d.error(), Some("boom"));
        assert_eq!(d.usage(), Some(Usage { input: 4, ..Usage::default() }));
        let mut d = Decoder::new(Endpoint::Responses, false);
        d.on_event(&ev(r#"{"type":"response.created","response":{"error":null,"usage":null}}"#));
        assert_eq!((d.error(), d.usage()), (None, None));
        assert!(!d.terminal());
        d.on_event(&ev(r#"{"type":"response.completed","response":{"usage":{"input_tokens":4,"output_tokens":1}}}"#));
        assert!(d.terminal(), "response.completed ends a Responses stream");
    }
}
