//! The vocabulary every wire family shares: what a request is ([`Endpoint`], [`RequestInfo`]),
//! what a response decoder does ([`StreamDecoder`], [`Action`]), the [`WireFamily`] trait
//! each family implements, and the models-list filter helpers. Family modules import this
//! module, never `exchange`; `exchange` (the dispatcher and the [`Tap`](crate::Tap)) reaches
//! the families only through `exchange::family`.

use bytes::Bytes;

use crate::Usage;
use crate::eventstream::Frame;
use crate::json_scan;
use crate::sse::SseEvent;
use tollgate_core::WireFamilyId;

/// What a request asks the upstream to do (drives metering and the body edit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// OpenAI `POST /chat/completions`.
    ChatCompletions,
    /// OpenAI legacy `POST /completions`.
    Completions,
    /// OpenAI `POST /responses`.
    Responses,
    /// OpenAI `POST /embeddings`.
    Embeddings,
    /// Anthropic `POST /v1/messages`.
    Messages,
    /// Anthropic `POST /v1/messages/count_tokens`, Gemini `:countTokens`.
    CountTokens,
    /// Gemini `:generateContent`.
    GenerateContent,
    /// Gemini `:streamGenerateContent`.
    StreamGenerateContent,
    /// Gemini `:embedContent` / `:batchEmbedContents`.
    EmbedContent,
    /// Bedrock `POST /model/{id}/invoke`.
    Invoke,
    /// Bedrock `POST /model/{id}/invoke-with-response-stream`.
    InvokeStream,
    /// Bedrock `POST /model/{id}/converse`.
    Converse,
    /// Bedrock `POST /model/{id}/converse-stream`.
    ConverseStream,
    /// `GET` of the models list.
    ListModels,
    /// Anything else: passed through, not metered.
    Other,
}

impl Endpoint {
    /// Whether responses of this endpoint carry billable usage that the [`Tap`] extracts.
    pub fn is_metered(self) -> bool {
        matches!(
            self,
            Endpoint::ChatCompletions
                | Endpoint::Completions
                | Endpoint::Responses
                | Endpoint::Embeddings
                | Endpoint::Messages
                | Endpoint::GenerateContent
                | Endpoint::StreamGenerateContent
                | Endpoint::Invoke
                | Endpoint::InvokeStream
                | Endpoint::Converse
                | Endpoint::ConverseStream
        )
    }
}

/// What [`inspect`] learned about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestInfo {
    pub endpoint: Endpoint,
    /// Model from the JSON body `model` (OpenAI, Anthropic, Bedrock's OpenAI-compatible path)
    /// or from the path for Google (`/v1beta/models/{model}:action`, `/v1/models/{model}:action`,
    /// `/v1alpha/...`, also GET `/v1beta/models/{model}`) and Bedrock (`/model/{id}/...`),
    /// percent-decoded.
    pub model: Option<String>,
    /// The client asked for a streamed response (body `"stream": true`, Google
    /// streamGenerateContent, Bedrock `*-stream`).
    pub stream: bool,
    /// Set when the body looks like JSON (first non-whitespace byte `{`) but the model cannot
    /// be read unambiguously: invalid JSON, `model` not a string, or `model` given twice.
    /// The message names the field and the rule. (The proxy refuses such requests with 400
    /// when the provider has an allow-list.)
    pub body_error: Option<String>,
    /// The request's output-token cap ([`crate::output_limit`]), when inspect read the body.
    pub output_limit: OutputLimit,
    /// The endpoint takes its model from the request body (a JSON `model` member, or a
    /// `model` form field in a multipart body: OpenAI's audio and image edits), so a request
    /// to it that names none leaves the upstream to pick one (OpenAI's images and audio have
    /// defaults). The proxy refuses such a request when the provider has an allow-list.
    /// False where the model is in the path (Gemini, Bedrock, Azure deployments) and for
    /// endpoints that name no model (models lists, files, batches).
    pub body_names_model: bool,
}

/// A request's own cap on its output tokens, as [`crate::inspect`] found it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OutputLimit {
    /// The family reads its model from the path, so inspect left the body unread:
    /// [`RequestInfo::output_limit`] reads it when asked.
    #[default]
    Unread,
    /// Read with the model: the largest positive cap the body names, if any.
    Read(Option<i64>),
}

impl RequestInfo {
    /// A request whose model (and output cap) came from its JSON body.
    pub(crate) fn peeked(endpoint: Endpoint, peek: crate::json_scan::BodyPeek) -> RequestInfo {
        RequestInfo {
            endpoint,
            model: peek.model,
            stream: peek.stream,
            body_error: peek.error,
            output_limit: OutputLimit::Read(peek.output_limit),
            body_names_model: false,
        }
    }

    /// The request's output-token cap: what inspect read, else read from `body` now (only
    /// the budget estimate asks, so families that do not read the body pay only then).
    pub fn output_limit(&self, body: &[u8]) -> Option<i64> {
        match self.output_limit {
            OutputLimit::Read(v) => v,
            OutputLimit::Unread => crate::output_limit(body),
        }
    }
}

/// Keeps the elements of the array member `list` of the top-level object whose string member
/// `field` passes `keep`; elements without it are dropped. Whitespace around and between
/// elements follows the original.
pub fn filter_list(body: &[u8], list: &str, field: &str, keep: &dyn Fn(&str) -> bool) -> Option<Vec<u8>> {
    filter_list_by(body, list, &|el| {
        json_scan::object_members(el, 0)
            .and_then(|o| json_scan::find_member(el, &o, field).cloned())
            .and_then(|m| serde_json::from_slice::<String>(&el[m.value]).ok())
            .is_some_and(|name| keep(&name))
    })
}

/// Keeps the elements of the array member `list` of the top-level object that `keep` accepts
/// (given each element's raw JSON bytes); the rest of the body is unchanged. Each kept element
/// after the first keeps the separator that preceded it in the original, so the result is
/// never longer than the body, and is the body itself when every element is kept.
pub fn filter_list_by(body: &[u8], list: &str, keep: &dyn Fn(&[u8]) -> bool) -> Option<Vec<u8>> {
    let obj = json_scan::object_members(body, 0)?;
    let member = json_scan::find_member(body, &obj, list)?;
    let arr = json_scan::array_elements(body, member.value.start)?;
    let mut out = Vec::with_capacity(body.len());
    out.extend_from_slice(&body[..=arr.open]);
    let mut wrote = false;
    for (i, el) in arr.elements.iter().enumerate() {
        if !keep(&body[el.clone()]) {
            continue;
        }
        // Before the first kept element the whitespace after `[`; before each later one the
        // separator (comma and whitespace) that preceded it in the original.
        let gap = if wrote { arr.elements[i - 1].end..el.start } else { arr.open + 1..arr.elements[0].start };
        out.extend_from_slice(&body[gap]);
        out.extend_from_slice(&body[el.clone()]);
        wrote = true;
    }
    if let Some(last) = arr.elements.last().filter(|_| wrote) {
        out.extend_from_slice(&body[last.end..arr.close]);
    }
    out.extend_from_slice(&body[arr.close..]);
    Some(out)
}

/// What a filtering tap does with one SSE event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Forward,
    Drop,
}

/// One response decoder: fed what the [`Tap`](crate::Tap)'s reader finds in the body (SSE
/// events, JSON-array elements, top-level members of a JSON body, AWS event-stream frames,
/// response headers) and answering usage, in-stream errors and whether the stream ended.
pub trait StreamDecoder: std::fmt::Debug + Send + Sync {
    /// Top-level members of a non-streamed JSON body the decoder wants.
    fn body_members(&self) -> &'static [&'static str];
    /// One SSE event; `Drop` removes it from what the client gets (only when filtering).
    fn on_event(&mut self, _ev: &SseEvent) -> Action {
        Action::Forward
    }
    /// One AWS event-stream frame.
    fn on_frame(&mut self, _frame: &Frame) {}
    /// One upstream response header.
    fn on_header(&mut self, _name: &str, _value: &str) {}
    /// One element of a streamed JSON array.
    fn on_element(&mut self, _json: &[u8]) {}
    /// One top-level member of a non-streamed JSON body (among [`Self::body_members`]).
    fn on_member(&mut self, name: &str, raw: &[u8]);
    fn usage(&self) -> Option<Usage>;
    fn error(&self) -> Option<&str>;
    fn terminal(&self) -> bool;
    /// The model the response names, when the decoder records it (families whose
    /// clients call a deployment name rather than the model: Azure OpenAI).
    fn response_model(&self) -> Option<&str> {
        None
    }
    /// The response's own id, when recorded (see [`crate::Tap::record_outcome`]).
    fn response_id(&self) -> Option<&str> {
        None
    }
    /// The response's finish (stop) reasons, one per generation, when recorded.
    fn finish_reasons(&self) -> Vec<String> {
        Vec::new()
    }
    /// Generation is over and only the stream's trailing metadata is left (an OpenAI chunk
    /// with a `finish_reason`, after which the usage chunk comes; Bedrock's `messageStop`,
    /// before its `metadata`). Families whose usage travels with the end say false.
    fn generation_ended(&self) -> bool {
        false
    }
}

/// A response read back as a message (for transcripts): the text, the reasoning ("thinking")
/// and the tool calls, in the order the response gave them. Built by [`crate::assemble`] from a
/// JSON body or from the events of a stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Assembled {
    pub text: String,
    pub thinking: String,
    pub tool_calls: Vec<ToolCall>,
    /// The stream key (block or call index) of each tool call, parallel to `tool_calls`.
    #[serde(skip)]
    keys: Vec<String>,
}

/// One tool call of an assembled message.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ToolCall {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub name: String,
    /// The arguments as the model wrote them (JSON text, possibly cut short).
    pub arguments: String,
}

impl Assembled {
    /// The tool call a stream keys `key` (an index), created on first use.
    pub fn tool(&mut self, key: &str) -> &mut ToolCall {
        let at = match self.keys.iter().position(|k| k == key) {
            Some(i) => i,
            None => {
                self.keys.push(key.to_string());
                self.tool_calls.push(ToolCall::default());
                self.tool_calls.len() - 1
            }
        };
        &mut self.tool_calls[at]
    }

    /// A whole tool call (from a non-streamed body).
    pub fn push_tool(&mut self, call: ToolCall) {
        self.keys.push(format!("#{}", self.keys.len()));
        self.tool_calls.push(call);
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty() && self.thinking.is_empty() && self.tool_calls.is_empty()
    }
}

/// A string member, or "".
pub fn str_of<'a>(v: &'a serde_json::Value, key: &str) -> &'a str {
    v.get(key).and_then(serde_json::Value::as_str).unwrap_or("")
}

/// A JSON value as argument text: a string as-is, anything else serialised.
pub fn json_text(v: Option<&serde_json::Value>) -> String {
    match v {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// A wire family: the request classification, the one body edit, the models-list filter and
/// the response decoder of one format. Implemented by one unit struct per family module.
pub trait WireFamily: Sync {
    fn id(&self) -> WireFamilyId;
    /// Classifies a request (see [`crate::inspect`]).
    fn inspect(&self, method: &str, path: &str, query: Option<&str>, body: &[u8]) -> RequestInfo;
    /// The documented body edit, if this family makes one (see [`crate::prepare_body`]).
    fn prepare_body(&self, _info: &RequestInfo, body: Bytes) -> (Bytes, bool) {
        (body, false)
    }
    /// Narrows a models list to the allowed models (see [`crate::filter_model_list`]).
    fn filter_model_list(&self, body: &[u8], allowed: &dyn Fn(&str) -> bool) -> Option<Vec<u8>>;
    /// Whether the usage-only chunk an injected `include_usage` causes may be dropped on this
    /// endpoint (the edit is the family's own, so is the filter).
    fn filters_usage_chunk(&self, _endpoint: Endpoint) -> bool {
        false
    }
    /// The decoder of a metered response; `filter` drops the usage-only chunk.
    fn decoder(&self, endpoint: Endpoint, filter: bool) -> Box<dyn StreamDecoder>;
    /// Adds a whole (non-streamed) JSON response body to `out`.
    fn assemble_body(&self, body: &serde_json::Value, out: &mut Assembled);
    /// Adds one stream item to `out`: an SSE event's data or a JSON-array element as JSON
    /// (`event` is the SSE `event:` field), or an AWS event-stream frame's payload (`event` is
    /// its `:event-type`).
    fn assemble_event(&self, event: Option<&str>, data: &serde_json::Value, out: &mut Assembled);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Separators of different widths (found by the `json_scan` fuzz target: keeping every
    /// element once wrote the first separator between all of them, one byte more than given).
    #[test]
    fn filtered_lists_keep_their_own_separators() {
        let body = br#"{"data": [ {"id":"a"},   {"id":"b"},{"id":"c"} ,
 {"id":"d"} ], "more": 1}"#;
        let keep = |ids: &'static [&'static str]| move |name: &str| ids.contains(&name);
        let all = filter_list(body, "data", "id", &keep(&["a", "b", "c", "d"]));
        assert_eq!(all.as_deref(), Some(body.as_slice()), "every element kept: the body itself");
        let some = filter_list(body, "data", "id", &keep(&["b", "d"])).unwrap_or_default();
        assert_eq!(String::from_utf8_lossy(&some), "{\"data\": [ {\"id\":\"b\"} ,\n {\"id\":\"d\"} ], \"more\": 1}");
        let first_last = filter_list(body, "data", "id", &keep(&["a", "d"])).unwrap_or_default();
        assert_eq!(
            String::from_utf8_lossy(&first_last),
            "{\"data\": [ {\"id\":\"a\"} ,\n {\"id\":\"d\"} ], \"more\": 1}"
        );
        let none = filter_list(body, "data", "id", &keep(&[])).unwrap_or_default();
        assert_eq!(String::from_utf8_lossy(&none), "{\"data\": [], \"more\": 1}");
        for out in [&some, &first_last, &none] {
            assert!(out.len() < body.len());
            assert!(serde_json::from_slice::<serde_json::Value>(out).is_ok(), "{}", String::from_utf8_lossy(out));
        }
    }
}
