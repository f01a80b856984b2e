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
/// The same, plus the model the response names (for families that report it).
pub(crate) const BODY_MEMBERS_WITH_MODEL: &[&str] = &["usage", "model"];

#[derive(Debug)]
pub(crate) struct Decoder {
    /// Drop the usage-only chunk (the request was edited to ask for it).
    filter: bool,
    usage: Option<Usage>,
    error: Option<String>,
    /// The stream's last event was seen: `data: [DONE]` (chat/completions, completions) or a
    /// Responses `response.completed` / `response.failed` / `response.incomplete`.
    terminal: bool,
    /// Record the model the response names.
    want_model: bool,
    model: Option<String>,
    /// A chunk named a `finish_reason`: generation is over (the usage chunk, if any, is next).
    ended: bool,
}

/// A choice of a chunk: only whether it finished.
#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    finish_reason: Option<IgnoredAny>,
}

/// The parts of a chat/completions chunk or a Responses event the tap reads.
#[derive(Deserialize)]
struct Payload {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    choices: Option<Vec<Choice>>,
    #[serde(default)]
    usage: Option<RawUsage>,
    #[serde(default)]
    response: Option<ResponseObject>,
    #[serde(default)]
    error: Option<ErrorField>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    model: Option<String>,
}

#[derive(Deserialize)]
struct ResponseObject {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    usage: Option<RawUsage>,
    #[serde(default)]
    error: Option<ErrorField>,
}

impl Decoder {
    /// `want_model`: also record the model the response names (chunk or body `model`,
    /// Responses `response.model`), the first one seen.
    pub(crate) fn new(_endpoint: Endpoint, filter: bool, want_model: bool) -> Decoder {
        Decoder { filter, usage: None, error: None, terminal: false, want_model, model: None, ended: false }
    }

    pub(crate) fn body_members(&self) -> &'static [&'static str] {
        if self.want_model { BODY_MEMBERS_WITH_MODEL } else { BODY_MEMBERS }
    }

    pub(crate) fn response_model(&self) -> Option<&str> {
        self.model.as_deref()
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
        if name == "model" && self.want_model && self.model.is_none() {
            self.model = serde_json::from_slice::<String>(raw).ok().filter(|m| !m.is_empty());
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

    pub(crate) fn generation_ended(&self) -> bool {
        self.ended
    }

    fn apply(&mut self, mut p: Payload) {
        if p.choices.as_ref().is_some_and(|c| c.iter().any(|c| c.finish_reason.is_some())) {
            self.ended = true;
        }
        if self.want_model && self.model.is_none() {
            self.model =
                p.model.take().or_else(|| p.response.as_mut().and_then(|r| r.model.take())).filter(|m| !m.is_empty());
        }
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
        let mut d = Decoder::new(Endpoint::ChatCompletions, true, false);
        let content = r#"{"id":"c","choices":[{"index":0,"delta":{"content":"hi"}}],"usage":null}"#;
        assert_eq!(d.on_event(&ev(content)), Action::Forward);
        let usage = r#"{"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#;
        assert!(!d.generation_ended());
        let finished = r#"{"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}"#;
        assert_eq!(d.on_event(&ev(finished)), Action::Forward);
        assert!(d.generation_ended(), "a finish_reason: only the usage chunk is left");
        assert_eq!(d.on_event(&ev(usage)), Action::Drop);
        assert!(!d.terminal());
        assert_eq!(d.on_event(&ev("[DONE]")), Action::Forward);
        assert!(d.terminal(), "[DONE] ends a chat stream");
        assert_eq!(d.usage(), Some(Usage { input: 3, output: 1, ..Usage::default() }));
        let mut pass = Decoder::new(Endpoint::ChatCompletions, false, false);
        assert_eq!(pass.on_event(&ev(usage)), Action::Forward);
        assert_eq!(pass.usage(), Some(Usage { input: 3, output: 1, ..Usage::default() }));
    }

    #[test]
    fn errors_in_streams() {
        let mut d = Decoder::new(Endpoint::ChatCompletions, false, false);
        d.on_event(&ev(r#"{"error":{"message":"The server had an error","type":"server_error"}}"#));
        assert_eq!(d.error(), Some("The server had an error"));
        let mut d = Decoder::new(Endpoint::Responses, false, false);
        d.on_event(&ev(r#"{"type":"error","code":"ERR","message":"Something went wrong","param":null}"#));
        assert_eq!(d.error(), Some("Something went wrong"));
        let mut d = Decoder::new(Endpoint::Responses, false, false);
        d.on_event(&ev(
            r#"{"type":"response.failed","response":{"status":"failed","error":{"code":"server_error","message":"boom"},"usage":{"input_tokens":4,"output_tokens":0}}}"#,
        ));
        assert_eq!(d.error(), Some("boom"));
        assert_eq!(d.usage(), Some(Usage { input: 4, ..Usage::default() }));
        let mut d = Decoder::new(Endpoint::Responses, false, false);
        d.on_event(&ev(r#"{"type":"response.created","response":{"error":null,"usage":null}}"#));
        assert_eq!((d.error(), d.usage()), (None, None));
        assert!(!d.terminal());
        d.on_event(&ev(r#"{"type":"response.completed","response":{"usage":{"input_tokens":4,"output_tokens":1}}}"#));
        assert!(d.terminal(), "response.completed ends a Responses stream");
    }

    #[test]
    fn records_the_response_model_only_when_asked() {
        let chunk = r#"{"id":"c","model":"gpt-4o-2024-08-06","choices":[{"index":0,"delta":{"content":"hi"}}]}"#;
        let mut d = Decoder::new(Endpoint::ChatCompletions, false, true);
        d.on_event(&ev(chunk));
        d.on_event(&ev(r#"{"id":"c","model":"other","choices":[]}"#));
        assert_eq!(d.response_model(), Some("gpt-4o-2024-08-06"), "the first one seen");
        let mut plain = Decoder::new(Endpoint::ChatCompletions, false, false);
        plain.on_event(&ev(chunk));
        assert_eq!((plain.response_model(), plain.body_members()), (None, BODY_MEMBERS));
        let mut body = Decoder::new(Endpoint::ChatCompletions, false, true);
        assert_eq!(body.body_members(), BODY_MEMBERS_WITH_MODEL);
        body.on_member("model", br#""gpt-4o-mini-2024-07-18""#);
        assert_eq!(body.response_model(), Some("gpt-4o-mini-2024-07-18"));
        let mut responses = Decoder::new(Endpoint::Responses, false, true);
        responses.on_event(&ev(r#"{"type":"response.created","response":{"model":"gpt-5-2025-08-07","usage":null}}"#));
        assert_eq!(responses.response_model(), Some("gpt-5-2025-08-07"));
    }
}
