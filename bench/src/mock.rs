//! The mock upstream: an OpenAI-shaped `POST …/chat/completions` and an Anthropic-shaped
//! `POST …/v1/messages` server that is as cheap as possible per request, so the benchmark
//! measures the proxy in front of it.
//!
//! Non-streamed requests get one pre-built `chat.completion` JSON with `usage`, after an
//! optional fixed latency. Requests with `"stream":true` get `chunks` SSE
//! `chat.completion.chunk` events: the first after `first_chunk`, the rest `chunk_interval`
//! apart (all at once when both are zero), then — when the request asked for
//! `stream_options.include_usage`, as OpenAI does — the usage-only chunk, then `[DONE]`.
//! A path ending in `/messages` is answered in Anthropic's shape instead: one `message` JSON
//! with `usage.input_tokens`/`output_tokens`, or — `"stream":true` — the `message_start`,
//! `content_block_*`, `message_delta` (output usage) and `message_stop` events, paced the same.
//! When a key is configured, a request without `Authorization: Bearer <key>` (Anthropic:
//! `x-api-key: <key>`) gets 401 in that API's error shape, so a proxy that fails to inject the
//! credential is caught. `POST /v1/traces` is an OTLP/HTTP
//! trace receiver for the traced rows (any body accepted, answered 200).
//!
//! Plain hyper (HTTP/1.1, keep-alive) on a caller-provided Tokio runtime; no IO beyond the
//! listener.

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// How the mock answers.
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// Added before a non-streamed answer (zero: answer at once).
    pub latency: Duration,
    /// Content chunks in a streamed answer (the usage chunk and `[DONE]` come on top).
    pub chunks: usize,
    /// Delay before the first streamed chunk.
    pub first_chunk: Duration,
    /// Delay between streamed chunks.
    pub chunk_interval: Duration,
    /// The upstream key a request must carry as `Authorization: Bearer`; `None` accepts any.
    pub key: Option<String>,
}

impl Default for MockConfig {
    fn default() -> MockConfig {
        MockConfig {
            latency: Duration::ZERO,
            chunks: 20,
            first_chunk: Duration::ZERO,
            chunk_interval: Duration::ZERO,
            key: None,
        }
    }
}

/// Usage the mock reports on every answer (non-streamed: `completion_tokens` = 7).
pub const PROMPT_TOKENS: u64 = 12;

const COMPLETION: &str = concat!(
    r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini","#,
    r#""choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the bench mock."},"#,
    r#""logprobs":null,"finish_reason":"stop"}],"#,
    r#""usage":{"prompt_tokens":12,"completion_tokens":7,"total_tokens":19}}"#
);

const MESSAGE: &str = concat!(
    r#"{"id":"msg_bench","type":"message","role":"assistant","model":"claude-sonnet-4-5","#,
    r#""content":[{"type":"text","text":"Hello from the bench mock."}],"stop_reason":"end_turn","#,
    r#""stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":7}}"#
);

/// Pre-rendered SSE events of one streamed Anthropic answer.
#[derive(Debug)]
struct MessageFrames {
    /// Content delta `i`; the first carries `message_start` (input usage) and
    /// `content_block_start` before it.
    content: Vec<Bytes>,
    /// `content_block_stop`, `message_delta` with the output usage, `message_stop`.
    tail: Bytes,
}

fn message_frames(chunks: usize) -> MessageFrames {
    let delta = |i: usize| {
        let head = if i == 0 {
            format!(
                "event: message_start\ndata: {{\"type\":\"message_start\",\"message\":{{\"id\":\"msg_bench\",\
                 \"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\
                 \"stop_reason\":null,\"stop_sequence\":null,\"usage\":{{\"input_tokens\":{PROMPT_TOKENS},\
                 \"output_tokens\":1}}}}}}\n\n\
                 event: content_block_start\ndata: {{\"type\":\"content_block_start\",\"index\":0,\
                 \"content_block\":{{\"type\":\"text\",\"text\":\"\"}}}}\n\n"
            )
        } else {
            String::new()
        };
        Bytes::from(format!(
            "{head}event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\
             \"delta\":{{\"type\":\"text_delta\",\"text\":\"tok \"}}}}\n\n"
        ))
    };
    let tail = Bytes::from(format!(
        "event: content_block_stop\ndata: {{\"type\":\"content_block_stop\",\"index\":0}}\n\n\
         event: message_delta\ndata: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"end_turn\",\
         \"stop_sequence\":null}},\"usage\":{{\"output_tokens\":{chunks}}}}}\n\n\
         event: message_stop\ndata: {{\"type\":\"message_stop\"}}\n\n"
    ));
    MessageFrames { content: (0..chunks).map(delta).collect(), tail }
}

/// Pre-rendered SSE events of one streamed answer.
#[derive(Debug)]
struct Frames {
    /// Content chunk `i` with `"usage":null` (include_usage) and without.
    content: Vec<(Bytes, Bytes)>,
    /// The usage-only chunk followed by `[DONE]`.
    usage_and_done: Bytes,
    done: Bytes,
}

fn frames(chunks: usize) -> Frames {
    let chunk = |i: usize, usage_null: bool| {
        let last = i + 1 == chunks;
        let content = if last { "" } else { "tok " };
        let finish = if last { r#""stop""# } else { "null" };
        let usage = if usage_null { r#","usage":null"# } else { "" };
        Bytes::from(format!(
            "data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\
             \"model\":\"gpt-4o-mini\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{content}\"}},\
             \"logprobs\":null,\"finish_reason\":{finish}}}]{usage}}}\n\n"
        ))
    };
    let content = (0..chunks).map(|i| (chunk(i, true), chunk(i, false))).collect();
    let completion = chunks.saturating_sub(1);
    let usage_and_done = Bytes::from(format!(
        "data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\
         \"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{{\"prompt_tokens\":{PROMPT_TOKENS},\
         \"completion_tokens\":{completion},\"total_tokens\":{}}}}}\n\ndata: [DONE]\n\n",
        PROMPT_TOKENS + completion as u64
    ));
    Frames { content, usage_and_done, done: Bytes::from_static(b"data: [DONE]\n\n") }
}

struct Shared {
    cfg: MockConfig,
    expected_auth: Option<HeaderValue>,
    /// The key as Anthropic's `x-api-key` carries it.
    expected_api_key: Option<HeaderValue>,
    frames: Frames,
    message_frames: MessageFrames,
}

/// What a streamed answer looks like.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// OpenAI chunks; the usage-only chunk when the request asked for it.
    Openai {
        include_usage: bool,
    },
    Anthropic,
}

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// A running mock: its address and the task accepting connections (aborted on drop).
#[derive(Debug)]
pub struct Mock {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Mock {
    /// Binds `addr` (port 0 picks one) and serves on the current runtime.
    pub async fn start(addr: SocketAddr, cfg: MockConfig) -> anyhow::Result<Mock> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(serve(listener, cfg));
        Ok(Mock { addr, task })
    }

    /// The base URL a provider would use: `http://<addr>/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Accepts connections forever.
pub async fn serve(listener: TcpListener, cfg: MockConfig) {
    let expected_auth = cfg.key.as_ref().and_then(|k| HeaderValue::from_str(&format!("Bearer {k}")).ok());
    let expected_api_key = cfg.key.as_ref().and_then(|k| HeaderValue::from_str(k).ok());
    let chunks = cfg.chunks.max(1);
    let shared = Arc::new(Shared {
        frames: frames(chunks),
        message_frames: message_frames(chunks),
        cfg,
        expected_auth,
        expected_api_key,
    });
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| answer(shared.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}

fn respond(status: StatusCode, content_type: &'static str, body: Body) -> Response<Body> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

async fn answer(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    // The OTLP/HTTP trace receiver of the traced rows: reads and accepts any export (an empty
    // `ExportTraceServiceResponse` is zero bytes); the gateway counts what it exported.
    if req.uri().path() == "/v1/traces" {
        let _ = req.into_body().collect().await;
        return Ok(respond(StatusCode::OK, "application/x-protobuf", Full::new(Bytes::new()).boxed_unsync()));
    }
    let anthropic = req.uri().path().ends_with("/messages");
    let authorized = match (anthropic, &shared.expected_auth, &shared.expected_api_key) {
        (false, Some(want), _) => req.headers().get(header::AUTHORIZATION) == Some(want),
        (true, _, Some(want)) => req.headers().get("x-api-key") == Some(want),
        _ => true,
    };
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    if !authorized {
        let e = if anthropic {
            r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#
        } else {
            r#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}"#
        };
        return Ok(respond(
            StatusCode::UNAUTHORIZED,
            "application/json",
            Full::new(Bytes::from_static(e.as_bytes())).boxed_unsync(),
        ));
    }
    let compact: Vec<u8> = body.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
    if !contains(&compact, br#""stream":true"#) {
        if !shared.cfg.latency.is_zero() {
            tokio::time::sleep(shared.cfg.latency).await;
        }
        let answer = if anthropic { MESSAGE } else { COMPLETION };
        let full = Full::new(Bytes::from_static(answer.as_bytes())).boxed_unsync();
        return Ok(respond(StatusCode::OK, "application/json", full));
    }
    let shape = if anthropic {
        Shape::Anthropic
    } else {
        Shape::Openai { include_usage: contains(&compact, br#""include_usage":true"#) }
    };
    Ok(respond(StatusCode::OK, "text/event-stream", stream(shared, shape)))
}

fn stream(shared: Arc<Shared>, shape: Shape) -> Body {
    let n = shared.frames.content.len();
    let paced = !shared.cfg.first_chunk.is_zero() || !shared.cfg.chunk_interval.is_zero();
    let events = futures_util::stream::unfold(0usize, move |i| {
        let shared = shared.clone();
        async move {
            if i > n {
                return None;
            }
            if paced && i < n {
                let wait = if i == 0 { shared.cfg.first_chunk } else { shared.cfg.chunk_interval };
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
            }
            let (f, m) = (&shared.frames, &shared.message_frames);
            let bytes = match (shape, i < n) {
                (Shape::Openai { include_usage: true }, true) => f.content[i].0.clone(),
                (Shape::Openai { include_usage: false }, true) => f.content[i].1.clone(),
                (Shape::Openai { include_usage: true }, false) => f.usage_and_done.clone(),
                (Shape::Openai { include_usage: false }, false) => f.done.clone(),
                (Shape::Anthropic, true) => m.content[i].clone(),
                (Shape::Anthropic, false) => m.tail.clone(),
            };
            Some((Ok::<_, Infallible>(Frame::data(bytes)), i + 1))
        }
    });
    StreamBody::new(events.boxed()).boxed_unsync()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_frames_carry_usage_only_at_the_end() {
        let f = frames(3);
        assert_eq!(f.content.len(), 3);
        assert!(f.content.iter().all(|(with, without)| {
            contains(with, br#""usage":null"#) && !contains(without, b"usage") && with.ends_with(b"\n\n")
        }));
        assert!(contains(&f.content[2].0, br#""finish_reason":"stop""#));
        let tail = std::str::from_utf8(&f.usage_and_done).unwrap_or_default();
        assert!(tail.contains(r#""usage":{"prompt_tokens":12,"completion_tokens":2,"total_tokens":14}"#), "{tail}");
        assert!(tail.ends_with("data: [DONE]\n\n"));
        let v: serde_json::Value = serde_json::from_str(COMPLETION).unwrap_or_default();
        assert_eq!(v["usage"]["total_tokens"], 19);
    }

    /// Every Anthropic event is `event: <type>` then a `data:` JSON of that type; the input usage
    /// comes in `message_start`, the output usage in `message_delta`.
    #[test]
    fn message_frames_are_anthropic_events() {
        let f = message_frames(3);
        let all: Vec<u8> = f.content.iter().chain(std::iter::once(&f.tail)).flat_map(|b| b.to_vec()).collect();
        let text = String::from_utf8(all).unwrap_or_default();
        let mut types = Vec::new();
        for event in text.split("\n\n").filter(|e| !e.is_empty()) {
            let (name, data) = event.split_once('\n').unwrap_or_default();
            let name = name.strip_prefix("event: ").unwrap_or_default();
            let v: serde_json::Value = serde_json::from_str(data.strip_prefix("data: ").unwrap_or_default())
                .unwrap_or_else(|e| panic!("{data}: {e}"));
            assert_eq!(v["type"], name, "{event}");
            types.push(name.to_owned());
            if name == "message_start" {
                assert_eq!(v["message"]["usage"]["input_tokens"], PROMPT_TOKENS);
            }
            if name == "message_delta" {
                assert_eq!(v["usage"]["output_tokens"], 3);
            }
        }
        let want = ["message_start", "content_block_start", "content_block_delta", "content_block_delta"];
        assert_eq!(&types[..4], want);
        assert_eq!(&types[4..], ["content_block_delta", "content_block_stop", "message_delta", "message_stop"]);
        let v: serde_json::Value = serde_json::from_str(MESSAGE).unwrap_or_default();
        assert_eq!((v["type"].as_str(), v["usage"]["input_tokens"].as_u64()), (Some("message"), Some(PROMPT_TOKENS)));
    }
}
