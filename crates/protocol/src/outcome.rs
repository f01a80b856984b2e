//! The response's own id and its finish (stop) reasons, for the trace span's
//! `gen_ai.response.id` and `gen_ai.response.finish_reasons`: a [`StreamDecoder`] that wraps a
//! family's decoder (which keeps reading usage, errors and the end of the stream exactly as
//! before) and also reads, from the same events, elements, frames and members:
//!
//! | family | id | finish reasons |
//! |---|---|---|
//! | OpenAI chat / completions (and Bedrock's and Azure's) | `id` | `choices[].finish_reason`, by `index` |
//! | OpenAI Responses | `id` / `response.id` | `status` / `response.status` (the last one seen) |
//! | Anthropic Messages | `id` / `message.id` (`message_start`) | `stop_reason` / `delta.stop_reason` |
//! | Gemini | `responseId` | `candidates[].finishReason`, by `index` |
//! | Bedrock (Converse, InvokeModel, their streams) | the `x-amzn-requestid` response header | `stopReason` (`messageStop`), or the model's own (`stop_reason` of an Anthropic model, also inside a stream's `chunk`s) |
//!
//! Only built when the request's span records ([`crate::Tap::record_outcome`]): with tracing
//! off (or a span not sampled) nothing here runs, so it costs the request path nothing then.

use base64::Engine as _;
use serde_json::Value;
use std::borrow::Cow;

use crate::eventstream::Frame;
use crate::sse::SseEvent;
use crate::wire::{Action, Endpoint, StreamDecoder};
use crate::{Usage, WireFamilyId};

/// Every top-level member a wrapped decoder may want, plus the ones read here: the JSON
/// reader captures these (a member the wrapped decoder does not want is not passed to it).
const MEMBERS: &[&str] = &[
    "usage",
    "model",
    "usageMetadata",
    "amazon-bedrock-invocationMetrics",
    "prompt_token_count",
    "generation_token_count",
    "id",
    "responseId",
    "status",
    "choices",
    "candidates",
    "stop_reason",
    "stopReason",
];

/// One element of a body's `choices` (OpenAI) or `candidates` (Gemini): only what is read
/// here; every other member of it is skipped without being built.
#[derive(serde::Deserialize)]
struct Generation<'a> {
    #[serde(default)]
    index: Option<u64>,
    #[serde(default, borrow)]
    finish_reason: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "finishReason")]
    finish_reason_camel: Option<Cow<'a, str>>,
}

/// A family's decoder plus the response id and finish reasons.
#[derive(Debug)]
pub(crate) struct OutcomeDecoder {
    inner: Box<dyn StreamDecoder>,
    family: WireFamilyId,
    endpoint: Endpoint,
    id: Option<String>,
    /// Finish reasons by generation (choice / candidate) index; `None` until one is seen.
    reasons: Vec<Option<String>>,
}

impl OutcomeDecoder {
    pub(crate) fn new(inner: Box<dyn StreamDecoder>, family: WireFamilyId, endpoint: Endpoint) -> OutcomeDecoder {
        OutcomeDecoder { inner, family, endpoint, id: None, reasons: Vec::new() }
    }

    fn set_reason(&mut self, index: usize, reason: &str) {
        // a generation index is small; an absurd one is ignored rather than allocated
        if reason.is_empty() || index >= 128 {
            return;
        }
        if self.reasons.len() <= index {
            self.reasons.resize(index + 1, None);
        }
        self.reasons[index] = Some(reason.to_string());
    }

    fn set_id(&mut self, id: Option<&Value>) {
        if let Some(id) = id.and_then(Value::as_str) {
            self.set_id_str(id);
        }
    }

    fn set_id_str(&mut self, id: &str) {
        if self.id.is_none() && self.family != WireFamilyId::Bedrock && !id.is_empty() {
            self.id = Some(id.to_string());
        }
    }

    /// Reads one JSON object: a whole body, a stream event, a streamed element.
    fn absorb(&mut self, v: &Value) {
        let Some(obj) = v.as_object() else { return };
        self.set_id(obj.get("responseId"));
        self.set_id(obj.get("response").and_then(|r| r.get("id")));
        self.set_id(obj.get("message").filter(|m| m.is_object()).and_then(|m| m.get("id")));
        self.set_id(obj.get("id"));
        for (list, key) in [("choices", "finish_reason"), ("candidates", "finishReason")] {
            if let Some(items) = obj.get(list).and_then(Value::as_array) {
                for (pos, item) in items.iter().enumerate() {
                    let index = item.get("index").and_then(Value::as_u64).map_or(pos, |i| i as usize);
                    if let Some(r) = item.get(key).and_then(Value::as_str) {
                        self.set_reason(index, r);
                    }
                }
            }
        }
        let single = obj
            .get("stop_reason")
            .or_else(|| obj.get("delta").and_then(|d| d.get("stop_reason")))
            .or_else(|| obj.get("stopReason"))
            .or_else(|| obj.get("response").and_then(|r| r.get("status")))
            .or_else(|| obj.get("status").filter(|_| self.endpoint == Endpoint::Responses));
        if let Some(r) = single.and_then(Value::as_str) {
            self.set_reason(0, r);
        }
    }

    fn absorb_bytes(&mut self, json: &[u8]) {
        if let Ok(v) = serde_json::from_slice::<Value>(json) {
            self.absorb(&v);
        }
    }
}

impl StreamDecoder for OutcomeDecoder {
    fn body_members(&self) -> &'static [&'static str] {
        MEMBERS
    }

    fn on_event(&mut self, ev: &SseEvent) -> Action {
        if !ev.truncated {
            self.absorb_bytes(ev.data.as_bytes());
        }
        self.inner.on_event(ev)
    }

    fn on_frame(&mut self, frame: &Frame) {
        if frame.message_type.as_deref().is_none_or(|t| t == "event") {
            match frame.event_type.as_deref() {
                Some("chunk") => {
                    let inner = serde_json::from_slice::<Value>(&frame.payload).ok().and_then(|v| {
                        let b64 = v.get("bytes")?.as_str()?.to_string();
                        base64::engine::general_purpose::STANDARD.decode(b64.as_bytes()).ok()
                    });
                    if let Some(inner) = inner {
                        self.absorb_bytes(&inner);
                    }
                }
                _ => self.absorb_bytes(&frame.payload),
            }
        }
        self.inner.on_frame(frame);
    }

    fn on_header(&mut self, name: &str, value: &str) {
        if self.family == WireFamilyId::Bedrock && name.eq_ignore_ascii_case("x-amzn-requestid") && !value.is_empty() {
            self.id = Some(value.to_string());
        }
        self.inner.on_header(name, value);
    }

    fn on_element(&mut self, json: &[u8]) {
        self.absorb_bytes(json);
        self.inner.on_element(json);
    }

    fn on_member(&mut self, name: &str, raw: &[u8]) {
        // A whole body's top-level members: read into borrowed, typed values (the rest of a
        // member, such as the generated message, is skipped, not built).
        match name {
            "id" | "responseId" => {
                if let Ok(id) = serde_json::from_slice::<Cow<'_, str>>(raw) {
                    self.set_id_str(&id);
                }
            }
            "choices" | "candidates" => {
                if let Ok(items) = serde_json::from_slice::<Vec<Generation<'_>>>(raw) {
                    for (pos, item) in items.iter().enumerate() {
                        let index = item.index.map_or(pos, |i| usize::try_from(i).unwrap_or(usize::MAX));
                        let reason = if name == "choices" { &item.finish_reason } else { &item.finish_reason_camel };
                        if let Some(r) = reason {
                            self.set_reason(index, r);
                        }
                    }
                }
            }
            "stop_reason" | "stopReason" | "status" if name != "status" || self.endpoint == Endpoint::Responses => {
                if let Ok(r) = serde_json::from_slice::<Cow<'_, str>>(raw) {
                    self.set_reason(0, &r);
                }
            }
            _ => {}
        }
        if self.inner.body_members().contains(&name) {
            self.inner.on_member(name, raw);
        }
    }

    fn usage(&self) -> Option<Usage> {
        self.inner.usage()
    }

    fn error(&self) -> Option<&str> {
        self.inner.error()
    }

    fn terminal(&self) -> bool {
        self.inner.terminal()
    }

    fn response_model(&self) -> Option<&str> {
        self.inner.response_model()
    }

    fn response_id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    fn generation_ended(&self) -> bool {
        self.inner.generation_ended()
    }

    fn finish_reasons(&self) -> Vec<String> {
        self.reasons.iter().flatten().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::{RequestInfo, Tap, WireFamilyId, inspect};
    use bytes::Bytes;

    fn tap(family: WireFamilyId, path: &str, body: &str, content_type: &str) -> Tap {
        let info: RequestInfo = inspect(family, "POST", path, None, body.as_bytes());
        let mut t = Tap::new(family, &info, 200, Some(content_type), false);
        t.record_outcome(family, info.endpoint);
        t
    }

    fn run(t: &mut Tap, chunks: &[&str]) -> (Option<String>, Vec<String>) {
        for c in chunks {
            t.feed(Bytes::from(c.to_string()));
        }
        t.finish();
        (t.response_id().map(str::to_string), t.finish_reasons())
    }

    #[test]
    fn openai_chat_body_and_stream() {
        let mut t = tap(WireFamilyId::OpenAi, "/v1/chat/completions", r#"{"model":"gpt-4o"}"#, "application/json");
        let body = r#"{"id":"chatcmpl-1","choices":[{"index":0,"finish_reason":"stop","message":{"content":"x"}},
            {"index":1,"finish_reason":"length"}],"usage":{"prompt_tokens":3,"completion_tokens":4}}"#;
        assert_eq!(run(&mut t, &[body]), (Some("chatcmpl-1".into()), vec!["stop".into(), "length".into()]));
        assert_eq!(t.usage().map(|u| u.input), Some(3), "the wrapped decoder still reads usage");
        let mut s = tap(WireFamilyId::OpenAi, "/v1/chat/completions", r#"{"stream":true}"#, "text/event-stream");
        let got = run(
            &mut s,
            &[
                "data: {\"id\":\"chatcmpl-2\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"},\"finish_reason\":null}]}\n\n",
                "data: {\"id\":\"chatcmpl-2\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\ndata: [DONE]\n\n",
            ],
        );
        assert_eq!(got, (Some("chatcmpl-2".into()), vec!["tool_calls".into()]));
    }

    #[test]
    fn responses_anthropic_gemini_bedrock() {
        let mut r = tap(WireFamilyId::OpenAi, "/v1/responses", r#"{"model":"gpt-5"}"#, "text/event-stream");
        let got = run(
            &mut r,
            &[
                "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_1\",\"status\":\"in_progress\"}}\n\n",
                "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_1\",\"status\":\"completed\"}}\n\n",
            ],
        );
        assert_eq!(got, (Some("resp_1".into()), vec!["completed".into()]));
        let mut a = tap(WireFamilyId::Anthropic, "/v1/messages", r#"{"model":"claude"}"#, "application/json");
        assert_eq!(
            run(
                &mut a,
                &[
                    r#"{"id":"msg_1","type":"message","content":[],"stop_reason":"end_turn","usage":{"input_tokens":1,"output_tokens":2}}"#
                ]
            ),
            (Some("msg_1".into()), vec!["end_turn".into()])
        );
        let mut g =
            tap(WireFamilyId::Google, "/v1beta/models/gemini-2.5-pro:streamGenerateContent", "{}", "application/json");
        let got = run(
            &mut g,
            &[
                r#"[{"responseId":"g-1","candidates":[{"content":{}}]},{"responseId":"g-1","candidates":[{"content":{},"finishReason":"MAX_TOKENS"}]}]"#,
            ],
        );
        assert_eq!(got, (Some("g-1".into()), vec!["MAX_TOKENS".into()]));
        let mut b = tap(WireFamilyId::Bedrock, "/model/m/converse", "{}", "application/json");
        b.observe_header("x-amzn-RequestId", "req-b-1");
        assert_eq!(
            run(
                &mut b,
                &[
                    r#"{"output":{},"stopReason":"end_turn","usage":{"inputTokens":1,"outputTokens":2,"totalTokens":3}}"#
                ]
            ),
            (Some("req-b-1".into()), vec!["end_turn".into()])
        );
        assert_eq!(b.usage().map(|u| u.output), Some(2));
    }
}
