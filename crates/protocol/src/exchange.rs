//! One proxied exchange, as the proxy sees it: classify the request ([`inspect`]), make the one
//! documented body edit ([`prepare_body`]), watch the response on the side ([`Tap`]), and
//! narrow a models list ([`filter_model_list`]). Family-specific rules live in the family
//! modules; this module reaches them through [`family`] (the [`WireFamily`] trait), and they
//! never import this module.
//!
//! Pure: bytes in, bytes out. The caller owns sockets, time and the usage event.

use bytes::Bytes;

use crate::Usage;
use crate::eventstream::EventStreamReader;
use crate::json_scan::{ArraySplitter, ObjectCapture};
use crate::sse::{SseEvent, SseParser};
use crate::wire::{Action, Assembled, StreamDecoder, WireFamily};
use crate::{anthropic, azure_openai, bedrock, google, openai};
use tollgate_core::WireFamilyId;

pub use crate::wire::{Endpoint, RequestInfo};

/// The implementation of a wire family.
pub fn family(id: WireFamilyId) -> &'static dyn WireFamily {
    match id {
        WireFamilyId::OpenAi => &openai::OpenAi,
        WireFamilyId::Anthropic => &anthropic::Anthropic,
        WireFamilyId::Google => &google::Google,
        WireFamilyId::Bedrock => &bedrock::Bedrock,
        WireFamilyId::AzureOpenAi => &azure_openai::AzureOpenAi,
    }
}

/// Classifies a request. `path` is the upstream-relative path with a leading slash (as it
/// will be appended to the provider's base URL), `query` the raw query string without `?`.
/// Never fails; reads the body with a borrowing visitor, never a full `Value`.
pub fn inspect(id: WireFamilyId, method: &str, path: &str, query: Option<&str>, body: &[u8]) -> RequestInfo {
    family(id).inspect(method, path, query, body)
}

/// The output-token limit a request sets, wherever its family puts it: top-level
/// `max_tokens`, `max_completion_tokens`, `max_output_tokens` (OpenAI, Anthropic, Bedrock
/// InvokeModel bodies), `generationConfig.maxOutputTokens` (Gemini) or
/// `inferenceConfig.maxTokens` (Bedrock Converse). The largest when several are given;
/// `None` when the body sets none (or is not a JSON object). Budgets reserve by it
/// (ARCHITECTURE.md, Decisions: Budgets and rate limits).
///
/// Read by the same single pass that finds the model (`json_scan::peek_body`): families that
/// read their model from the body carry it in [`RequestInfo::output_limit`] already; this
/// reads it for the others (model in the path). Member names are compared decoded (as the
/// upstream's parser reads them); a value that is not an integer caps nothing.
pub fn output_limit(body: &[u8]) -> Option<i64> {
    crate::json_scan::peek_body(body).output_limit
}

/// The one documented body edit: an OpenAI chat/completions stream that does not already ask
/// for `stream_options.include_usage=true` gets it, and `true` is returned (the [`Tap`] then
/// removes the extra usage-only chunk). Every other byte of the body is kept as-is. Any other
/// request: the same `Bytes` and `false`.
pub fn prepare_body(id: WireFamilyId, info: &RequestInfo, body: Bytes) -> (Bytes, bool) {
    family(id).prepare_body(info, body)
}

/// Narrows a models-list response to the models `allowed` accepts. OpenAI/Anthropic filter
/// `data[].id`; Google filters `models[].name` ("models/gemini-2.5-flash" matches either
/// "gemini-2.5-flash" or the full name). Other members and the kept elements' bytes are
/// unchanged. `None` when the body is not the expected shape (pass it through).
pub fn filter_model_list(id: WireFamilyId, body: &[u8], allowed: &dyn Fn(&str) -> bool) -> Option<Vec<u8>> {
    family(id).filter_model_list(body, allowed)
}

/// How the tap reads the response body.
#[derive(Debug)]
enum Reader {
    /// Not metered, or not 2xx: nothing is parsed.
    Off,
    Sse {
        parser: SseParser,
        filter: Option<Held>,
    },
    Json(ObjectCapture),
    JsonArray(ArraySplitter),
    /// AWS binary event stream (Bedrock `*-stream`).
    EventStream(EventStreamReader),
}

/// The most bytes of one open event a filtered SSE stream holds back before forwarding it:
/// the only event it may drop is the usage-only chunk, which is far smaller, so a longer
/// event is clearly not it and flows through.
pub(crate) const MAX_FILTER_HELD_BYTES: usize = 64 * 1024;

/// The unforwarded tail of a filtered SSE stream: at most one incomplete event.
#[derive(Debug, Default)]
struct Held {
    bytes: Vec<u8>,
    /// Stream offset of `bytes[0]`.
    start: u64,
    /// The open event outgrew [`MAX_FILTER_HELD_BYTES`]: its bytes are forwarded as they arrive
    /// until it closes (it cannot be the small usage-only chunk).
    through: bool,
}

impl Held {
    /// Applies `events` (every event completed by `chunk`), appends `chunk`, and returns the
    /// bytes to forward: every closed block up to `boundary` except dropped events.
    fn process(&mut self, chunk: &Bytes, events: &[SseEvent], boundary: u64, decoder: &mut dyn StreamDecoder) -> Bytes {
        let mut drops: Vec<(u64, u64)> = Vec::new();
        for ev in events {
            // A truncated (over-cap) event is never dropped, and only it can start before
            // `self.start` (its head was already forwarded).
            if decoder.on_event(ev) == Action::Drop && ev.start >= self.start {
                drops.push((ev.start, ev.end));
            }
        }
        let chunk_end = self.start + (self.bytes.len() + chunk.len()) as u64;
        let closed_any = boundary > self.start;
        if self.through && closed_any {
            self.through = false;
        }
        if self.bytes.is_empty() && drops.is_empty() && (boundary == chunk_end || self.through) {
            // Nothing held, nothing dropped, nothing left open (or the open event flows
            // through): forward the chunk itself.
            self.start = chunk_end;
            return chunk.clone();
        }
        self.bytes.extend_from_slice(chunk);
        let mut out: Vec<u8> = Vec::with_capacity(self.bytes.len());
        let mut cursor = self.start;
        for (start, end) in drops {
            out.extend_from_slice(&self.bytes[self.rel(cursor)..self.rel(start)]);
            cursor = end;
        }
        let end = boundary.max(cursor);
        out.extend_from_slice(&self.bytes[self.rel(cursor)..self.rel(end)]);
        self.bytes.drain(..self.rel(end));
        self.start = end;
        if self.through || self.bytes.len() > MAX_FILTER_HELD_BYTES {
            self.through = true;
            self.start += self.bytes.len() as u64;
            out.append(&mut self.bytes);
        }
        Bytes::from(out)
    }

    fn rel(&self, offset: u64) -> usize {
        usize::try_from(offset.saturating_sub(self.start)).unwrap_or(usize::MAX).min(self.bytes.len())
    }
}

/// Side tap over one upstream response: forwards bytes (byte-for-byte, or minus the usage-only
/// chunk an injected `include_usage` caused) and extracts normalised usage and in-stream
/// errors. Memory is bounded by [`crate::MAX_HELD_BYTES`] per event / element / captured value.
#[derive(Debug)]
pub struct Tap {
    decoder: Option<Box<dyn StreamDecoder>>,
    reader: Reader,
}

impl Tap {
    /// Starts a tap once the upstream's status and headers are known. `content_type` is the
    /// upstream `Content-Type`: `text/event-stream` is parsed as SSE; Google
    /// streamGenerateContent without `alt=sse` as a progressively streamed JSON array; any
    /// other 2xx body as one JSON object whose `usage` / `usageMetadata` member is captured.
    /// Non-2xx responses and unmetered endpoints are passed through without parsing.
    /// `injected_include_usage` is the second value [`prepare_body`] returned.
    pub fn new(
        id: WireFamilyId,
        info: &RequestInfo,
        status: u16,
        content_type: Option<&str>,
        injected_include_usage: bool,
    ) -> Tap {
        if !info.endpoint.is_metered() || !(200..300).contains(&status) {
            return Tap { decoder: None, reader: Reader::Off };
        }
        let sse = content_type.is_some_and(is_event_stream);
        let family = family(id);
        let filter = sse && injected_include_usage && family.filters_usage_chunk(info.endpoint);
        let decoder = family.decoder(info.endpoint, filter);
        let reader = if content_type.is_some_and(is_aws_event_stream) {
            Reader::EventStream(EventStreamReader::new())
        } else if sse {
            Reader::Sse { parser: SseParser::new(), filter: filter.then(Held::default) }
        } else if info.endpoint == Endpoint::StreamGenerateContent {
            Reader::JsonArray(ArraySplitter::new())
        } else {
            Reader::Json(ObjectCapture::new(decoder.body_members()))
        };
        Tap { decoder: Some(decoder), reader }
    }

    /// Feeds one chunk as received from upstream; returns the bytes to forward to the client
    /// now. Unless filtering, that is `chunk` itself (a cheap clone). When filtering, every
    /// complete SSE event is forwarded as soon as its blank line arrives, only an incomplete
    /// trailing event is held, and the usage-only chunk is dropped (its usage recorded).
    pub fn feed(&mut self, chunk: Bytes) -> Bytes {
        let Some(decoder) = self.decoder.as_mut() else {
            return chunk;
        };
        match &mut self.reader {
            Reader::Off => chunk,
            Reader::Sse { parser, filter } => {
                let events = parser.push(&chunk);
                match filter {
                    Some(held) => held.process(&chunk, &events, parser.boundary(), decoder.as_mut()),
                    None => {
                        for ev in &events {
                            decoder.on_event(ev);
                        }
                        chunk
                    }
                }
            }
            Reader::Json(capture) => {
                for (name, raw) in capture.push(&chunk) {
                    decoder.on_member(name, &raw);
                }
                chunk
            }
            Reader::JsonArray(splitter) => {
                for element in splitter.push(&chunk) {
                    decoder.on_element(&element);
                }
                chunk
            }
            Reader::EventStream(reader) => {
                for frame in reader.push(&chunk) {
                    decoder.on_frame(&frame);
                }
                chunk
            }
        }
    }

    /// Shows the tap one upstream response header (Bedrock reports InvokeModel token counts
    /// in `x-amzn-bedrock-*-token-count` headers). Other families ignore headers.
    pub fn observe_header(&mut self, name: &str, value: &str) {
        if let (Some(decoder), false) = (self.decoder.as_mut(), matches!(self.reader, Reader::Off)) {
            decoder.on_header(name, value);
        }
    }

    /// Upstream EOF: returns any held bytes to forward, after parsing a final event that lacks
    /// its trailing blank line. Calling it again returns nothing.
    pub fn finish(&mut self) -> Bytes {
        let Some(decoder) = self.decoder.as_mut() else {
            return Bytes::new();
        };
        match &mut self.reader {
            Reader::Sse { parser, filter } => {
                let events = parser.finish();
                match filter {
                    Some(held) => held.process(&Bytes::new(), &events, parser.offset(), decoder.as_mut()),
                    None => {
                        for ev in &events {
                            decoder.on_event(ev);
                        }
                        Bytes::new()
                    }
                }
            }
            Reader::Off | Reader::Json(_) | Reader::JsonArray(_) | Reader::EventStream(_) => Bytes::new(),
        }
    }

    /// Normalised usage seen so far (`None` if the response carried none).
    pub fn usage(&self) -> Option<Usage> {
        self.decoder.as_ref().and_then(|d| d.usage())
    }

    /// An error reported inside a 2xx response (Anthropic `event: error`, an OpenAI chunk with
    /// a top-level `error`, Responses `response.failed` / `error`, a Gemini error element):
    /// the upstream's message text, shortened.
    pub fn stream_error(&self) -> Option<&str> {
        self.decoder.as_deref().and_then(StreamDecoder::error)
    }

    /// Also records the response's id and finish reasons ([`Self::response_id`],
    /// [`Self::finish_reasons`]; see `outcome.rs`). Call before anything is fed; with tracing
    /// off it is never called and the tap does no more than before.
    pub fn record_outcome(&mut self, id: WireFamilyId, endpoint: Endpoint) {
        if let Some(inner) = self.decoder.take() {
            let wrapped = crate::outcome::OutcomeDecoder::new(inner, id, endpoint);
            if let Reader::Json(_) = self.reader {
                self.reader = Reader::Json(ObjectCapture::new(wrapped.body_members()));
            }
            self.decoder = Some(Box::new(wrapped));
        }
    }

    /// Generation is over; only trailing metadata (the usage) is left (see
    /// [`StreamDecoder::generation_ended`]).
    pub fn generation_ended(&self) -> bool {
        self.decoder.as_deref().is_some_and(StreamDecoder::generation_ended)
    }

    /// The response's own id (recorded after [`Self::record_outcome`]).
    pub fn response_id(&self) -> Option<&str> {
        self.decoder.as_deref().and_then(StreamDecoder::response_id)
    }

    /// The response's finish reasons (recorded after [`Self::record_outcome`]).
    pub fn finish_reasons(&self) -> Vec<String> {
        self.decoder.as_deref().map(StreamDecoder::finish_reasons).unwrap_or_default()
    }

    /// The model the response names, for families that record it (see
    /// [`StreamDecoder::response_model`]).
    pub fn response_model(&self) -> Option<&str> {
        self.decoder.as_deref().and_then(StreamDecoder::response_model)
    }

    /// The stream's terminal event has been fed: OpenAI `data: [DONE]`, Responses
    /// `response.completed` (or `.failed` / `.incomplete`), Anthropic `message_stop`, a Gemini
    /// chunk with a `finishReason`, Bedrock's `metadata` event or the chunk with
    /// `amazon-bedrock-invocationMetrics`. The bytes of that event are in the output of the
    /// [`feed`](Self::feed) call that made this true (a terminal event is never held), so once
    /// that output reached the client the exchange is complete, whatever the client does next.
    /// Always false for unmetered endpoints and non-2xx responses.
    pub fn terminal_seen(&self) -> bool {
        !matches!(self.reader, Reader::Off) && self.decoder.as_ref().is_some_and(|d| d.terminal())
    }

    /// Bytes the tap currently holds (parser buffers and unforwarded output); bounded by
    /// [`crate::MAX_HELD_BYTES`] + [`MAX_FILTER_HELD_BYTES`] plus one chunk (a Bedrock frame: 16 MiB).
    pub fn buffered_len(&self) -> usize {
        match &self.reader {
            Reader::Off => 0,
            Reader::Sse { parser, filter } => parser.buffered_len() + filter.as_ref().map_or(0, |h| h.bytes.len()),
            Reader::Json(c) => c.buffered_len(),
            Reader::JsonArray(s) => s.buffered_len(),
            Reader::EventStream(r) => r.buffered_len(),
        }
    }
}

/// `application/vnd.amazon.eventstream`, ignoring case and parameters.
fn is_aws_event_stream(content_type: &str) -> bool {
    content_type.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/vnd.amazon.eventstream"))
}

/// `text/event-stream`, ignoring case and parameters.
fn is_event_stream(content_type: &str) -> bool {
    content_type.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("text/event-stream"))
}

/// Reads a recorded response back as a message (transcripts): a JSON body, an SSE stream, a
/// streamed JSON array (Gemini without `alt=sse`) or an AWS event stream, as `content_type`
/// and `endpoint` say, through the family's `assemble_*`. Items that do not parse (a stream
/// cut short by the capture limit) are skipped. `None` when nothing was found.
pub fn assemble(id: WireFamilyId, endpoint: Endpoint, content_type: Option<&str>, body: &[u8]) -> Option<Assembled> {
    let fam = family(id);
    let mut out = Assembled::default();
    let json = |b: &[u8]| serde_json::from_slice::<serde_json::Value>(b).ok();
    if content_type.is_some_and(is_aws_event_stream) {
        let mut reader = EventStreamReader::new();
        for f in reader.push(body) {
            if let Some(v) = json(&f.payload) {
                fam.assemble_event(f.event_type.as_deref(), &v, &mut out);
            }
        }
    } else if content_type.is_some_and(is_event_stream) {
        let mut parser = SseParser::new();
        let mut events = parser.push(body);
        events.extend(parser.finish());
        for ev in events.iter().filter(|e| !e.truncated) {
            if let Some(v) = json(ev.data.as_bytes()) {
                fam.assemble_event(ev.event.as_deref(), &v, &mut out);
            }
        }
    } else if endpoint == Endpoint::StreamGenerateContent {
        let mut splitter = ArraySplitter::new();
        for el in splitter.push(body) {
            if let Some(v) = json(&el) {
                fam.assemble_event(None, &v, &mut out);
            }
        }
    } else if let Some(v) = json(body) {
        fam.assemble_body(&v, &mut out);
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::MAX_HELD_BYTES;

    fn sse(events: &[serde_json::Value]) -> Vec<u8> {
        events.iter().map(|e| format!("data: {e}\n\n")).collect::<String>().into_bytes()
    }

    fn call(id: Option<&str>, name: &str, arguments: &str) -> crate::ToolCall {
        crate::ToolCall { id: id.map(str::to_string), name: name.into(), arguments: arguments.into() }
    }

    #[test]
    fn assembles_openai_chat_streams_with_tool_calls_and_reasoning() {
        use serde_json::json;
        let body = sse(&[
            json!({"choices": [{"index": 0, "delta": {"reasoning_content": "think "}}]}),
            json!({"choices": [{"index": 0, "delta": {"content": "Hel"}}]}),
            json!({"choices": [{"index": 0, "delta": {"content": "lo", "tool_calls": [{"index": 0, "id": "c1", "function": {"name": "get", "arguments": "{\"a\""}}]}}]}),
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}}]}),
        ]);
        let mut body = body;
        body.extend_from_slice(b"data: [DONE]\n\n");
        let m = assemble(WireFamilyId::OpenAi, Endpoint::ChatCompletions, Some("text/event-stream"), &body).unwrap();
        assert_eq!((m.text.as_str(), m.thinking.as_str()), ("Hello", "think "));
        assert_eq!(m.tool_calls, vec![call(Some("c1"), "get", "{\"a\":1}")]);
        // Cut anywhere (the capture limit), what parsed is kept.
        let cut = assemble(WireFamilyId::OpenAi, Endpoint::ChatCompletions, Some("text/event-stream"), &body[..90]);
        assert!(cut.is_none_or(|m| "Hello".starts_with(&m.text)));
    }

    #[test]
    fn assembles_openai_bodies_and_responses_streams() {
        use serde_json::json;
        let body = json!({"choices": [{"message": {"content": "Hi", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{}"}}]}}]});
        let m = assemble(
            WireFamilyId::AzureOpenAi,
            Endpoint::ChatCompletions,
            Some("application/json"),
            body.to_string().as_bytes(),
        )
        .unwrap();
        assert_eq!((m.text.as_str(), m.tool_calls.clone()), ("Hi", vec![call(Some("c"), "f", "{}")]));
        let events = sse(&[
            json!({"type": "response.reasoning_summary_text.delta", "delta": "plan"}),
            json!({"type": "response.output_text.delta", "delta": "A"}),
            json!({"type": "response.output_text.delta", "delta": "B"}),
            json!({"type": "response.output_item.done", "item": {"type": "function_call", "call_id": "k", "name": "n", "arguments": "{\"x\":2}"}}),
            json!({"type": "response.completed", "response": {"output": []}}),
        ]);
        let m = assemble(WireFamilyId::OpenAi, Endpoint::Responses, Some("text/event-stream"), &events).unwrap();
        assert_eq!((m.text.as_str(), m.thinking.as_str()), ("AB", "plan"));
        assert_eq!(m.tool_calls, vec![call(Some("k"), "n", "{\"x\":2}")]);
    }

    #[test]
    fn assembles_anthropic_streams_with_thinking_and_tool_use() {
        use serde_json::json;
        let body = sse(&[
            json!({"type": "message_start", "message": {"content": []}}),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "hmm"}}),
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Sure"}}),
            json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "tu", "name": "search", "input": {}}}),
            json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{\"q\":"}}),
            json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "\"x\"}"}}),
            json!({"type": "message_stop"}),
        ]);
        let m = assemble(WireFamilyId::Anthropic, Endpoint::Messages, Some("text/event-stream"), &body).unwrap();
        assert_eq!((m.text.as_str(), m.thinking.as_str()), ("Sure", "hmm"));
        assert_eq!(m.tool_calls, vec![call(Some("tu"), "search", "{\"q\":\"x\"}")]);
    }

    #[test]
    fn assembles_gemini_thoughts_and_function_calls_from_json_arrays() {
        use serde_json::json;
        let chunks = json!([
            {"candidates": [{"content": {"parts": [{"text": "plan", "thought": true}, {"text": "Hi "}]}}]},
            {"candidates": [{"content": {"parts": [{"text": "there"}, {"functionCall": {"name": "f", "args": {"a": 1}}}]}}]}
        ]);
        let m = assemble(
            WireFamilyId::Google,
            Endpoint::StreamGenerateContent,
            Some("application/json"),
            chunks.to_string().as_bytes(),
        )
        .unwrap();
        assert_eq!((m.text.as_str(), m.thinking.as_str()), ("Hi there", "plan"));
        assert_eq!(m.tool_calls, vec![call(None, "f", "{\"a\":1}")]);
    }

    #[test]
    fn assembles_bedrock_converse_streams_and_invoke_chunks() {
        use serde_json::json;
        let frames = crate::fixture::event_stream_frames(
            json!([
                {"event": "contentBlockDelta", "payload": {"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "r"}}}},
                {"event": "contentBlockDelta", "payload": {"contentBlockIndex": 1, "delta": {"text": "Yo"}}},
                {"event": "contentBlockStart", "payload": {"contentBlockIndex": 2, "start": {"toolUse": {"toolUseId": "t", "name": "w"}}}},
                {"event": "contentBlockDelta", "payload": {"contentBlockIndex": 2, "delta": {"toolUse": {"input": "{}"}}}},
                {"event": "chunk", "chunk": {"type": "content_block_delta", "index": 3, "delta": {"type": "text_delta", "text": "!"}}}
            ])
            .to_string()
            .as_bytes(),
        )
        .unwrap()
        .concat();
        let m = assemble(
            WireFamilyId::Bedrock,
            Endpoint::ConverseStream,
            Some("application/vnd.amazon.eventstream"),
            &frames,
        )
        .unwrap();
        assert_eq!((m.text.as_str(), m.thinking.as_str()), ("Yo!", "r"));
        assert_eq!(m.tool_calls, vec![call(Some("t"), "w", "{}")]);
        let converse = json!({"output": {"message": {"content": [{"text": "A"}, {"toolUse": {"toolUseId": "u", "name": "n", "input": {"k": true}}}]}}});
        let m = assemble(
            WireFamilyId::Bedrock,
            Endpoint::Converse,
            Some("application/json"),
            converse.to_string().as_bytes(),
        )
        .unwrap();
        assert_eq!((m.text.as_str(), m.tool_calls.clone()), ("A", vec![call(Some("u"), "n", "{\"k\":true}")]));
        assert!(assemble(WireFamilyId::Bedrock, Endpoint::Converse, Some("application/json"), b"not json").is_none());
    }

    fn chat_stream_info() -> RequestInfo {
        inspect(WireFamilyId::OpenAi, "POST", "/chat/completions", None, br#"{"model":"gpt-4o","stream":true}"#)
    }

    #[test]
    fn inspect_reads_model_stream_and_body_errors() {
        let i = inspect(
            WireFamilyId::OpenAi,
            "POST",
            "/v1/chat/completions",
            None,
            br#" {"stream": true, "model": "gpt-4o"}"#,
        );
        assert_eq!(
            i,
            RequestInfo {
                endpoint: Endpoint::ChatCompletions,
                model: Some("gpt-4o".into()),
                stream: true,
                body_error: None,
                output_limit: crate::OutputLimit::Read(None),
                body_names_model: true,
            }
        );
        let dup = inspect(
            WireFamilyId::Anthropic,
            "POST",
            "/v1/messages",
            None,
            br#"{"model":"a","max_tokens":1,"model":"b"}"#,
        );
        assert_eq!(dup.model, None);
        assert!(dup.body_error.unwrap().contains("`model`"));
        let not_string = inspect(WireFamilyId::OpenAi, "POST", "/embeddings", None, br#"{"model":["a"]}"#);
        assert!(not_string.body_error.unwrap().contains("must be a string"));
        let invalid = inspect(WireFamilyId::OpenAi, "POST", "/chat/completions", None, br#"{"model":"gpt-4o""#);
        assert!(invalid.body_error.unwrap().contains("not valid JSON"));
        let multipart =
            inspect(WireFamilyId::OpenAi, "POST", "/audio/transcriptions", None, b"--boundary\r\nContent-Disposition");
        assert_eq!((multipart.model, multipart.body_error), (None, None));
        let google = inspect(
            WireFamilyId::Google,
            "POST",
            "/v1beta/models/tunedModels%2Fx:generateContent",
            Some("alt=sse"),
            b"{",
        );
        assert_eq!(
            google,
            RequestInfo {
                endpoint: Endpoint::GenerateContent,
                model: Some("tunedModels/x".into()),
                stream: false,
                body_error: None,
                output_limit: crate::OutputLimit::Unread,
                body_names_model: false,
            }
        );
        let get = inspect(WireFamilyId::Google, "GET", "/v1beta/models/gemini-2.5-flash", None, b"");
        assert_eq!((get.endpoint, get.model.as_deref()), (Endpoint::Other, Some("gemini-2.5-flash")));
    }

    #[test]
    fn filter_model_lists_of_every_family() {
        let openai = b"{\n  \"object\": \"list\",\n  \"data\": [\n    {\"id\": \"gpt-4o\", \"object\": \"model\"},\n    {\"id\": \"gpt-4.1\", \"object\": \"model\"},\n    {\"id\": \"o3\", \"object\": \"model\"}\n  ]\n}";
        let allow = |m: &str| m == "gpt-4o" || m == "o3";
        let got = filter_model_list(WireFamilyId::OpenAi, openai, &allow).unwrap();
        assert_eq!(
            String::from_utf8(got).unwrap(),
            "{\n  \"object\": \"list\",\n  \"data\": [\n    {\"id\": \"gpt-4o\", \"object\": \"model\"},\n    {\"id\": \"o3\", \"object\": \"model\"}\n  ]\n}"
        );
        let none = filter_model_list(WireFamilyId::OpenAi, openai, &|_| false).unwrap();
        assert_eq!(String::from_utf8(none).unwrap(), "{\n  \"object\": \"list\",\n  \"data\": []\n}");

        let anthropic = br#"{"data":[{"type":"model","id":"claude-sonnet-4-5-20250929"},{"type":"model","id":"claude-opus-4-1-20250805"}],"has_more":false,"first_id":"claude-sonnet-4-5-20250929","last_id":"claude-opus-4-1-20250805"}"#;
        let got = filter_model_list(WireFamilyId::Anthropic, anthropic, &|m| m.starts_with("claude-opus")).unwrap();
        assert_eq!(
            String::from_utf8(got).unwrap(),
            r#"{"data":[{"type":"model","id":"claude-opus-4-1-20250805"}],"has_more":false,"first_id":"claude-sonnet-4-5-20250929","last_id":"claude-opus-4-1-20250805"}"#
        );

        let google = br#"{"models": [{"name": "models/gemini-2.5-flash"}, {"name": "models/gemini-2.5-pro"}, {"displayName": "no name"}], "nextPageToken": "x"}"#;
        let short = filter_model_list(WireFamilyId::Google, google, &|m| m == "gemini-2.5-pro").unwrap();
        assert_eq!(
            String::from_utf8(short).unwrap(),
            r#"{"models": [{"name": "models/gemini-2.5-pro"}], "nextPageToken": "x"}"#
        );
        let full = filter_model_list(WireFamilyId::Google, google, &|m| m == "models/gemini-2.5-flash").unwrap();
        assert_eq!(
            String::from_utf8(full).unwrap(),
            r#"{"models": [{"name": "models/gemini-2.5-flash"}], "nextPageToken": "x"}"#
        );

        assert_eq!(filter_model_list(WireFamilyId::OpenAi, b"[1,2]", &|_| true), None);
        assert_eq!(filter_model_list(WireFamilyId::OpenAi, br#"{"data": {"id": "x"}}"#, &|_| true), None);
        assert_eq!(filter_model_list(WireFamilyId::Google, br#"{"data": []}"#, &|_| true), None);
        assert_eq!(filter_model_list(WireFamilyId::Anthropic, b"not json", &|_| true), None);
    }

    #[test]
    fn passthrough_returns_the_same_bytes_and_parses_nothing() {
        let info = chat_stream_info();
        let chunk = Bytes::from_static(b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}}\n\n");
        let mut tap = Tap::new(WireFamilyId::OpenAi, &info, 200, Some("text/event-stream"), false);
        let out = tap.feed(chunk.clone());
        assert_eq!(out.as_ptr(), chunk.as_ptr());
        assert_eq!(tap.usage(), Some(Usage { input: 1, ..Usage::default() }));

        let mut error = Tap::new(WireFamilyId::OpenAi, &info, 500, Some("text/event-stream"), true);
        assert_eq!(error.feed(chunk.clone()).as_ptr(), chunk.as_ptr());
        assert_eq!((error.usage(), error.finish().len()), (None, 0));

        let count = inspect(WireFamilyId::Anthropic, "POST", "/v1/messages/count_tokens", None, b"{}");
        let mut tap = Tap::new(WireFamilyId::Anthropic, &count, 200, Some("application/json"), false);
        tap.feed(Bytes::from_static(br#"{"input_tokens": 14, "usage": {"input_tokens": 14}}"#));
        assert_eq!((tap.usage(), tap.buffered_len()), (None, 0));
    }

    #[test]
    fn filtering_forwards_complete_events_at_once() {
        let info = chat_stream_info();
        let mut tap = Tap::new(WireFamilyId::OpenAi, &info, 200, Some("Text/Event-Stream; charset=utf-8"), true);
        let first = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\n";
        let out = tap.feed(Bytes::from(format!("{first}data: {{\"choi")));
        assert_eq!(out, first.as_bytes());
        let out = tap.feed(Bytes::from_static(b"ces\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n"));
        assert!(out.is_empty(), "the usage chunk is incomplete and held");
        assert!(!tap.terminal_seen());
        let out = tap.feed(Bytes::from_static(b"\ndata: [DONE]\n\n"));
        assert_eq!(out, &b"data: [DONE]\n\n"[..]);
        assert!(tap.terminal_seen(), "[DONE] was in the bytes just returned");
        assert_eq!(tap.finish().len(), 0);
        assert_eq!(tap.usage(), Some(Usage { input: 3, output: 1, ..Usage::default() }));
    }

    #[test]
    fn filtering_every_split_with_crlf_and_comments() {
        let keep1 = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}],\"usage\":null}\r\n\r\n";
        let comment = ": keep-alive\r\n\r\n";
        let usage = "data: {\"choices\":[],\r\ndata: \"usage\":{\"prompt_tokens\":4,\"completion_tokens\":2}}\r\n\r\n";
        let done = "data: [DONE]\r\n\r\n";
        let upstream = format!("{keep1}{comment}{usage}{done}");
        let expected = format!("{keep1}{comment}{done}");
        let info = chat_stream_info();
        for a in 0..=upstream.len() {
            for b in (a..=upstream.len()).step_by(7) {
                let mut tap = Tap::new(WireFamilyId::OpenAi, &info, 200, Some("text/event-stream"), true);
                let mut out = Vec::new();
                for piece in [&upstream[..a], &upstream[a..b], &upstream[b..]] {
                    out.extend_from_slice(&tap.feed(Bytes::copy_from_slice(piece.as_bytes())));
                }
                out.extend_from_slice(&tap.finish());
                assert_eq!(String::from_utf8(out).unwrap(), expected, "split at {a}, {b}");
                assert_eq!(tap.usage(), Some(Usage { input: 4, output: 2, ..Usage::default() }));
            }
        }
        // Nothing held and only complete events: the chunk itself comes back.
        let mut tap = Tap::new(WireFamilyId::OpenAi, &info, 200, Some("text/event-stream"), true);
        let chunk = Bytes::from(keep1);
        assert_eq!(tap.feed(chunk.clone()).as_ptr(), chunk.as_ptr());
    }

    #[test]
    fn filtering_final_event_without_blank_line() {
        let info = chat_stream_info();
        let mut tap = Tap::new(WireFamilyId::OpenAi, &info, 200, Some("text/event-stream"), true);
        let head = "data: {\"choices\":[{\"index\":0,\"delta\":{}}],\"usage\":null}\n\n";
        let body = format!("{head}data: {{\"choices\":[],\"usage\":{{\"prompt_tokens\":2}}}}");
        let mut out = tap.feed(Bytes::from(body)).to_vec();
        out.extend_from_slice(&tap.finish());
        assert_eq!(out, head.as_bytes());
        assert_eq!(tap.usage(), Some(Usage { input: 2, ..Usage::default() }));
    }

    #[test]
    fn google_json_array_or_sse_by_content_type() {
        let info =
            inspect(WireFamilyId::Google, "POST", "/v1beta/models/gemini-2.5-flash:streamGenerateContent", None, b"");
        let array = br#"[{"usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 1}}, {"usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 6}}]"#;
        let mut tap = Tap::new(WireFamilyId::Google, &info, 200, Some("application/json; charset=UTF-8"), false);
        tap.feed(Bytes::from_static(array));
        assert_eq!(tap.usage(), Some(Usage { input: 4, output: 6, ..Usage::default() }));
        let sse = b"data: {\"usageMetadata\": {\"promptTokenCount\": 4, \"candidatesTokenCount\": 2}}\r\n\r\n";
        let mut tap = Tap::new(WireFamilyId::Google, &info, 200, Some("text/event-stream"), false);
        tap.feed(Bytes::from_static(sse));
        assert_eq!(tap.usage(), Some(Usage { input: 4, output: 2, ..Usage::default() }));
        assert!(!tap.terminal_seen(), "no finishReason yet");
        tap.feed(Bytes::from_static(b"data: {\"candidates\": [{\"finishReason\": \"STOP\"}]}\r\n\r\n"));
        assert!(tap.terminal_seen());
        let mut off = Tap::new(WireFamilyId::Google, &info, 500, Some("text/event-stream"), false);
        off.feed(Bytes::from_static(b"data: {\"candidates\": [{\"finishReason\": \"STOP\"}]}\r\n\r\n"));
        assert!(!off.terminal_seen(), "an error response is never complete");
    }

    /// A 17 MiB event in 64 KiB chunks, then a usage chunk.
    fn huge_stream() -> Vec<Bytes> {
        let mut chunks = vec![Bytes::from_static(b"data: {\"choices\":[{\"delta\":{\"content\":\"")];
        let piece = Bytes::from(vec![b'x'; 64 * 1024]);
        for _ in 0..(17 * 16) {
            chunks.push(piece.clone());
        }
        chunks.push(Bytes::from_static(b"\"}}],\"usage\":null}\n\n"));
        chunks.push(Bytes::from_static(
            b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":9}}\n\n",
        ));
        chunks.push(Bytes::from_static(b"data: [DONE]\n\n"));
        chunks
    }

    #[test]
    fn huge_event_stays_bounded_when_filtering() {
        let info = chat_stream_info();
        let mut tap = Tap::new(WireFamilyId::OpenAi, &info, 200, Some("text/event-stream"), true);
        let chunks = huge_stream();
        let total: usize = chunks.iter().map(Bytes::len).sum();
        let mut forwarded = 0;
        let mut max_held = 0;
        let mut flushed = false;
        for chunk in chunks {
            let (n, x_piece) = (chunk.len(), chunk.len() == 64 * 1024);
            let out = tap.feed(chunk).len();
            if flushed && x_piece {
                assert_eq!(out, n, "past the cap, the open event flows through without holding");
            }
            flushed |= out > MAX_FILTER_HELD_BYTES;
            forwarded += out;
            assert!(tap.buffered_len() <= HELD_BOUND, "held {}", tap.buffered_len());
            max_held = max_held.max(tap.buffered_len());
        }
        forwarded += tap.finish().len();
        let usage_chunk = b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":9}}\n\n".len();
        assert_eq!(forwarded, total - usage_chunk, "everything but the usage chunk reaches the client");
        assert!(max_held <= HELD_BOUND);
        assert_eq!(tap.usage(), Some(Usage { input: 7, output: 9, ..Usage::default() }));
    }

    /// What one tap may hold: the parser's cap, the filter's and one 64 KiB chunk.
    const HELD_BOUND: usize = MAX_HELD_BYTES + MAX_FILTER_HELD_BYTES + 128 * 1024;

    /// Eight concurrent streams, each with one 24 MiB content event (the issue's case: 8 × 50
    /// MiB took the process to 442 MB): together the taps never hold more than 40 MiB.
    #[test]
    fn eight_huge_events_at_once_stay_bounded() {
        let info = chat_stream_info();
        let mut taps: Vec<Tap> =
            (0..8).map(|_| Tap::new(WireFamilyId::OpenAi, &info, 200, Some("text/event-stream"), true)).collect();
        let head = Bytes::from_static(b"data: {\"choices\":[{\"delta\":{\"content\":\"");
        let piece = Bytes::from(vec![b'x'; 64 * 1024]);
        let mut max_total = 0;
        for step in 0..(24 * 16 + 1) {
            for tap in &mut taps {
                tap.feed(if step == 0 { head.clone() } else { piece.clone() });
            }
            max_total = max_total.max(taps.iter().map(Tap::buffered_len).sum::<usize>());
        }
        assert!(max_total <= 40 * 1024 * 1024, "eight taps held {max_total} bytes");
        for tap in &mut taps {
            tap.feed(Bytes::from_static(b"\"}}],\"usage\":null}\n\n"));
            tap.feed(Bytes::from_static(
                b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":9}}\n\n",
            ));
            tap.finish();
            assert_eq!(tap.usage(), Some(Usage { input: 7, output: 9, ..Usage::default() }), "usage still read");
        }
    }

    #[test]
    fn huge_event_stays_bounded_when_only_parsing() {
        let info = chat_stream_info();
        let mut tap = Tap::new(WireFamilyId::OpenAi, &info, 200, Some("text/event-stream"), false);
        for chunk in huge_stream() {
            let n = chunk.len();
            assert_eq!(tap.feed(chunk).len(), n);
            assert!(tap.buffered_len() <= MAX_HELD_BYTES, "held {}", tap.buffered_len());
        }
        tap.finish();
        assert_eq!(tap.usage(), Some(Usage { input: 7, output: 9, ..Usage::default() }));
    }

    #[test]
    fn huge_json_body_is_not_held() {
        let info = inspect(WireFamilyId::OpenAi, "POST", "/embeddings", None, br#"{"model":"text-embedding-3-small"}"#);
        let mut tap = Tap::new(WireFamilyId::OpenAi, &info, 200, Some("application/json"), false);
        tap.feed(Bytes::from_static(b"{\"object\":\"list\",\"data\":[{\"embedding\":["));
        let numbers = Bytes::from("0.0123456,".repeat(100_000));
        for _ in 0..20 {
            tap.feed(numbers.clone());
            assert!(tap.buffered_len() < 128);
        }
        tap.feed(Bytes::from_static(b"1]}],\"model\":\"m\",\"usage\":{\"prompt_tokens\":5,\"total_tokens\":5}}"));
        assert_eq!(tap.usage(), Some(Usage { input: 5, ..Usage::default() }));
    }
}

#[cfg(test)]
mod output_limit_tests {
    use super::output_limit;

    #[test]
    fn reads_each_familys_output_limit() {
        assert_eq!(output_limit(br#"{"model":"m","max_tokens":50}"#), Some(50));
        assert_eq!(output_limit(br#"{"max_completion_tokens":7,"max_tokens":3}"#), Some(7));
        assert_eq!(output_limit(br#"{"input":"x","max_output_tokens":9}"#), Some(9));
        assert_eq!(output_limit(br#"{"contents":[],"generationConfig":{"maxOutputTokens":11}}"#), Some(11));
        assert_eq!(output_limit(br#"{"messages":[],"inferenceConfig":{"maxTokens":12}}"#), Some(12));
        assert_eq!(output_limit(br#"{"messages":[{"max_tokens":99}]}"#), None, "only the request's own limit");
        assert_eq!(output_limit(b"not json"), None);
    }

    #[test]
    fn reads_like_the_upstreams_parser() {
        // Last occurrence of a name wins; the largest positive cap over the names.
        assert_eq!(output_limit(br#"{"max_tokens":500,"max_tokens":5}"#), Some(5));
        assert_eq!(output_limit(br#"{"max_tokens":5,"inferenceConfig":{"maxTokens":8,"maxTokens":6}}"#), Some(6));
        assert_eq!(output_limit(br#"{"generationConfig":{"maxOutputTokens":4},"generationConfig":null}"#), None);
        assert_eq!(output_limit(br#"{"generation_config":{"max_output_tokens":13}}"#), Some(13));
        // Escaped names are the names they decode to, as the upstream reads them.
        assert_eq!(output_limit(br#"{"max\u005ftokens":21}"#), Some(21));
        // Not an integer, not positive, or out of range: no cap.
        for v in ["5.0", "1e3", "\"5\"", "true", "[5]", "{\"a\":5}", "0", "-4", "9223372036854775808"] {
            let body = format!(r#"{{"max_tokens":{v}}}"#);
            assert_eq!(output_limit(body.as_bytes()), None, "{body}");
        }
        assert_eq!(output_limit(br#"{"max_tokens":9223372036854775807}"#), Some(i64::MAX));
        // Not a JSON object, or not valid JSON: no cap (the budget falls back to the catalog).
        assert_eq!(output_limit(br#"[{"max_tokens":5}]"#), None);
        assert_eq!(output_limit(br#"{"max_tokens":5"#), None);
    }

    #[test]
    fn families_reading_the_body_carry_the_cap_and_the_others_read_it_when_asked() {
        use crate::{OutputLimit, WireFamilyId, inspect};
        let body = br#"{"model":"gpt-4o","max_tokens":64}"#;
        let openai = inspect(WireFamilyId::OpenAi, "POST", "/chat/completions", None, body);
        assert_eq!(openai.output_limit, OutputLimit::Read(Some(64)));
        assert_eq!(openai.output_limit(b"{}"), Some(64), "read once, with the model");
        let google_body = br#"{"contents":[],"generationConfig":{"maxOutputTokens":32}}"#;
        let google = inspect(WireFamilyId::Google, "POST", "/v1beta/models/g:generateContent", None, google_body);
        assert_eq!(google.output_limit, OutputLimit::Unread);
        assert_eq!(google.output_limit(google_body), Some(32));
    }
}
