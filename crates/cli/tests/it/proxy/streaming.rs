//! Streams: passed through as they arrive (never buffered), the include_usage injection and
//! its hidden chunk, a client that disconnects mid-stream or right after the terminal event
//! (complete, not cancelled), an upstream that stalls mid-stream, an upstream that gzips.

use super::*;
use crate::both_backends;
use std::sync::Arc;
use tollgate_core::{RequestStatus, Usage};
use tollgate_testkit::upstream::{Reply as UpReply, Step, openai as fake_openai};

/// The next body chunk within `within`, or None when the body ended.
async fn next_chunk(resp: &mut reqwest::Response, within: Duration) -> Option<Bytes> {
    match tokio::time::timeout(within, resp.chunk()).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => panic!("body failed: {e:#}"),
        Err(_) => panic!("no chunk within {within:?}"),
    }
}

/// The first SSE event reaches the client while the upstream still holds the second —
/// both for plain passthrough and for a stream the gateway filters (injected include_usage).
async fn first_event_is_not_buffered(db: TestDb) {
    let rig = Rig::new(db, "openai", json!({})).await;
    for client_asked_usage in [true, false] {
        let events = fake_openai::chat_stream("gpt-4o", true);
        let gate = Arc::new(tokio::sync::Notify::new());
        let mut steps = vec![Step::Send(events[0].clone()), Step::Wait(gate.clone())];
        steps.extend(events[1..].iter().cloned().map(Step::Send));
        rig.up.push(UpReply::script(200, "text/event-stream", steps));
        let mut body = json!({"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
        if client_asked_usage {
            body["stream_options"] = json!({"include_usage": true});
        }
        let mut resp = match rig.request(Method::POST, "/chat/completions").json(&body).send().await {
            Ok(r) => r,
            Err(e) => panic!("{e:#}"),
        };
        assert_eq!(resp.status(), 200);
        let first = next_chunk(&mut resp, Duration::from_secs(5)).await.unwrap_or_default();
        assert_eq!(first, events[0], "the first event arrived whole and unchanged before the second was sent");
        gate.notify_one();
        let mut rest = Vec::new();
        while let Some(c) = next_chunk(&mut resp, Duration::from_secs(5)).await {
            rest.extend_from_slice(&c);
        }
        let expected_rest: Vec<u8> = events[1..]
            .iter()
            .filter(|e| client_asked_usage || !String::from_utf8_lossy(e).contains("\"choices\":[]"))
            .flat_map(|e| e.to_vec())
            .collect();
        assert_eq!(String::from_utf8_lossy(&rest), String::from_utf8_lossy(&expected_rest));
    }
    let events = rig.events(2).await;
    for e in &events {
        assert_eq!(e.status, RequestStatus::Success);
        assert!(e.streamed);
        assert_eq!(e.usage, chat_usage_buckets());
    }
}

/// The fake's chat usage (prompt 57 incl. 12 cached; completion 17 incl. 5 reasoning) in buckets.
fn chat_usage_buckets() -> Usage {
    Usage {
        input: (fake_openai::CHAT_PROMPT_TOKENS - fake_openai::CHAT_CACHED_TOKENS) as i64,
        cached_input: fake_openai::CHAT_CACHED_TOKENS as i64,
        output: (fake_openai::CHAT_COMPLETION_TOKENS - fake_openai::CHAT_REASONING_TOKENS) as i64,
        reasoning: fake_openai::CHAT_REASONING_TOKENS as i64,
        ..Usage::default()
    }
}

/// A client that did not ask for usage gets exactly the stream it asked for (no usage-only
/// chunk), while the gateway still meters it: the fake only sends usage when asked, so the
/// stored buckets prove the injection happened.
async fn injected_include_usage(db: TestDb) {
    let rig = Rig::new(db, "openai_compatible", json!({})).await;
    let body = json!({"model": "llama3", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let r = rig.post("/chat/completions", &body).await;
    assert_eq!(r.status, 200);
    let want: Vec<u8> = fake_openai::chat_stream("llama3", true)
        .into_iter()
        .filter(|e| !String::from_utf8_lossy(e).contains("\"choices\":[]"))
        .flat_map(|e| e.to_vec())
        .collect();
    assert_eq!(r.text(), String::from_utf8_lossy(&want));
    assert!(!r.text().contains("prompt_tokens"), "the usage-only chunk leaked: {}", r.text());
    let got = rig.up.last_request().unwrap_or_else(|| panic!("no upstream request"));
    assert_eq!(got.json().unwrap_or_default()["stream_options"], json!({"include_usage": true}));
    let events = rig.events(1).await;
    assert_eq!(events[0].usage, chat_usage_buckets());
    assert_eq!(events[0].model.as_deref(), Some("llama3"));
}

/// The client goes away mid-stream: exactly one usage event, client_cancelled, with the
/// usage seen so far; the upstream connection is closed too.
async fn client_disconnect_mid_stream(db: TestDb) {
    let rig = Rig::new(db, "anthropic", json!({})).await;
    let events = tollgate_testkit::upstream::anthropic::message_stream("claude-x");
    rig.up.push(UpReply::script(
        200,
        "text/event-stream",
        vec![Step::Send(events[0].clone()), Step::Send(events[1].clone()), Step::Hang],
    ));
    let body =
        json!({"model": "claude-x", "max_tokens": 10, "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let mut resp = match rig.request(Method::POST, "/v1/messages").json(&body).send().await {
        Ok(r) => r,
        Err(e) => panic!("{e:#}"),
    };
    let first = next_chunk(&mut resp, Duration::from_secs(5)).await.unwrap_or_default();
    assert!(String::from_utf8_lossy(&first).contains("message_start"));
    drop(resp);
    let stored = rig.events(1).await;
    assert_eq!(stored[0].status, RequestStatus::ClientCancelled);
    assert_eq!(stored[0].error_class.as_deref(), Some("client_cancelled"));
    // message_start carried the input side: it is kept.
    assert_eq!(stored[0].usage.input, tollgate_testkit::upstream::anthropic::INPUT_TOKENS as i64);
    assert!(stored[0].streamed);
    match rig.up.wait_bodies(1, Duration::from_secs(5)).await {
        Ok((_, aborted)) => assert_eq!(aborted, 1, "the upstream stream was not closed"),
        Err(e) => panic!("{e:#}"),
    }
    let metrics = send(rig.gw.client.get(rig.gw.url("/metrics"))).await.text();
    assert!(metrics.contains("tollgate_proxy_client_cancelled_total 1"), "{metrics}");
}

/// The client stops reading at the finish reason, before the usage chunk (the one the gateway
/// asked for itself) arrived: the gateway reads the rest of the stream for its usage, so the
/// cancelled call is metered with the upstream's own tokens, not at nothing.
async fn hang_up_after_the_finish_reason_keeps_the_usage(db: TestDb) {
    let rig = Rig::new(db, "openai", json!({})).await;
    let events = fake_openai::chat_stream("gpt-4o", true);
    let (generated, rest) = events.split_at(events.len() - 2); // the usage chunk and [DONE] last
    let mut steps: Vec<Step> = generated.iter().cloned().map(Step::Send).collect();
    steps.push(Step::Sleep(Duration::from_millis(300)));
    steps.extend(rest.iter().cloned().map(Step::Send));
    rig.up.push(UpReply::script(200, "text/event-stream", steps));
    let stream = json!({"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let mut resp = match rig.request(Method::POST, "/chat/completions").json(&stream).send().await {
        Ok(r) => r,
        Err(e) => panic!("{e:#}"),
    };
    let mut seen = String::new();
    while !seen.contains("\"finish_reason\":\"stop\"") {
        let Some(chunk) = next_chunk(&mut resp, Duration::from_secs(5)).await else { panic!("no finish: {seen}") };
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(!seen.contains("[DONE]"), "the client left before the end: {seen}");
    drop(resp);
    let stored = rig.events(1).await;
    assert_eq!(stored[0].status, RequestStatus::ClientCancelled);
    assert_eq!(stored[0].usage, chat_usage_buckets(), "the upstream's usage, read after the hang-up");
}

/// The gateway's upstream connection pool (`upstream::pool`): an answer read to its end (JSON
/// or a stream) gives its connection back, so requests one after another reach the upstream
/// on one connection; a stream the client abandoned closes its connection, and the next
/// request comes on a new one.
async fn upstream_connections_are_reused_after_whole_answers(db: TestDb) {
    let rig = Rig::new(db, "openai", json!({})).await;
    let chat = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});
    let stream = json!({"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    for body in [&chat, &stream, &chat, &stream] {
        let r = rig.post("/chat/completions", body).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let peers: Vec<_> = rig.up.requests().iter().map(|r| r.peer).collect();
    assert_eq!(peers.len(), 4);
    assert!(peers[0].is_some() && peers.iter().all(|p| *p == peers[0]), "one upstream connection: {peers:?}");

    let events = fake_openai::chat_stream("gpt-4o", true);
    rig.up.push(UpReply::script(200, "text/event-stream", vec![Step::Send(events[0].clone()), Step::Hang]));
    let mut resp = match rig.request(Method::POST, "/chat/completions").json(&stream).send().await {
        Ok(r) => r,
        Err(e) => panic!("{e:#}"),
    };
    assert!(next_chunk(&mut resp, Duration::from_secs(5)).await.is_some());
    drop(resp);
    rig.events(5).await;
    let r = rig.post("/chat/completions", &chat).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let peers: Vec<_> = rig.up.requests().iter().map(|r| r.peer).collect();
    assert_eq!(peers[4], peers[0], "the abandoned stream was on the pooled connection");
    assert_ne!(peers[5], peers[0], "a connection whose answer was cut is not used again");
}

/// The client gives up while the gateway still waits for the upstream's response head: the
/// request is abandoned at once (the upstream connection closed) and still gets its one event.
async fn client_gives_up_before_the_head(db: TestDb) {
    let rig = Rig::new(db, "openai", json!({})).await;
    rig.up.push(UpReply::stall_headers(200).delayed(Duration::from_secs(30)));
    let (path, body) = super::errors::generation("openai", "gpt-4o");
    let gave_up = rig.request(Method::POST, &path).json(&body).timeout(Duration::from_millis(300)).send().await;
    assert!(gave_up.is_err_and(|e| e.is_timeout()));
    let stored = rig.events(1).await;
    assert_eq!(stored[0].status, RequestStatus::ClientCancelled);
    assert_eq!(stored[0].http_status, None, "no response head was ever sent");
    assert!(stored[0].latency_ms < 10_000, "recorded when the client left, not when the upstream answered");
}

/// The upstream stops sending mid-stream for longer than the read timeout: the client's body
/// ends with an error and one event records the timeout with the usage seen so far.
async fn upstream_stalls_mid_stream(db: TestDb) {
    let gw = TestGateway::start_with(Some(db), |s| s.upstream_read_timeout = Duration::from_millis(400))
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let rig = Rig::on(gw, "google", json!({})).await;
    rig.up.push(UpReply::script(
        200,
        "text/event-stream",
        vec![
            Step::Send(Bytes::from_static(
                b"data: {\"candidates\":[],\"usageMetadata\":{\"promptTokenCount\":9,\"candidatesTokenCount\":2}}\r\n\r\n",
            )),
            Step::Sleep(Duration::from_secs(3)),
        ],
    ));
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
    let resp = rig
        .request(Method::POST, "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse")
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(resp.status(), 200);
    assert!(resp.bytes().await.is_err(), "the body should end with an error");
    let stored = rig.events(1).await;
    assert_eq!(stored[0].status, RequestStatus::Timeout);
    assert_eq!(stored[0].usage, Usage { input: 9, output: 2, ..Usage::default() });
    assert_eq!(stored[0].model.as_deref(), Some("gemini-2.5-flash"));
}

/// The upstream resets the connection mid-stream: the client's body ends with an error after the
/// bytes that did arrive, and the one event is a connection error that keeps the usage seen.
async fn upstream_resets_mid_stream(db: TestDb) {
    let rig = Rig::new(db, "anthropic", json!({})).await;
    let start = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m1\",\"model\":\"claude-x\",\"usage\":{\"input_tokens\":11,\"output_tokens\":1}}}\n\n";
    rig.up.push(UpReply::script(
        200,
        "text/event-stream",
        vec![Step::Send(Bytes::from_static(start.as_bytes())), Step::Abort],
    ));
    let body =
        json!({"model": "claude-x", "max_tokens": 10, "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let resp = rig.request(Method::POST, "/v1/messages").json(&body).send().await.unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(resp.status(), 200);
    assert!(resp.bytes().await.is_err(), "a reset upstream ends the client's body with an error");
    let stored = rig.events(1).await;
    assert_eq!(
        (stored[0].status, stored[0].error_class.as_deref()),
        (RequestStatus::ConnectionError, Some("upstream_body_error"))
    );
    assert_eq!(stored[0].usage.input, 11, "the usage seen before the reset is kept");
}

/// A drip-feeding upstream (one small chunk at a time, with pauses shorter than the read
/// timeout): every byte reaches the client unchanged and the event is a success.
async fn upstream_drips_slowly(db: TestDb) {
    let gw = TestGateway::start_with(Some(db), |s| s.upstream_read_timeout = Duration::from_millis(500))
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let rig = Rig::on(gw, "anthropic", json!({})).await;
    let whole: Vec<u8> = tollgate_testkit::upstream::anthropic::message_stream("claude-x")
        .into_iter()
        .flat_map(|e| e.to_vec())
        .collect();
    let mut steps = Vec::new();
    for piece in whole.chunks(7) {
        steps.push(Step::Send(Bytes::copy_from_slice(piece)));
        steps.push(Step::Sleep(Duration::from_millis(2)));
    }
    rig.up.push(UpReply::script(200, "text/event-stream", steps));
    let body =
        json!({"model": "claude-x", "max_tokens": 10, "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let r = rig.post("/v1/messages", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(&r.body[..], &whole[..], "a dripped stream reaches the client byte for byte");
    let stored = rig.events(1).await;
    assert_eq!(stored[0].status, RequestStatus::Success);
    assert!(stored[0].usage.input > 0 && stored[0].usage.output > 0, "{:?}", stored[0].usage);
}

/// Built-in streams of every family, paced, metered end to end.
async fn paced_streams_every_family(db: TestDb) {
    let rig = Rig::new(db, "anthropic", json!({})).await;
    rig.up.set_pace(Duration::from_millis(5));
    let body =
        json!({"model": "claude-x", "max_tokens": 10, "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let r = rig.post("/v1/messages", &body).await;
    let want: Vec<u8> = tollgate_testkit::upstream::anthropic::message_stream("claude-x")
        .into_iter()
        .flat_map(|e| e.to_vec())
        .collect();
    assert_eq!(r.text(), String::from_utf8_lossy(&want));
    let a = tollgate_testkit::upstream::anthropic::INPUT_TOKENS as i64;
    let stored = rig.events(1).await;
    assert_eq!(
        stored[0].usage,
        Usage {
            input: a,
            output: tollgate_testkit::upstream::anthropic::OUTPUT_TOKENS as i64,
            cached_input: tollgate_testkit::upstream::anthropic::CACHE_READ_INPUT_TOKENS as i64,
            cache_write_5m: tollgate_testkit::upstream::anthropic::EPHEMERAL_5M_INPUT_TOKENS as i64,
            cache_write_1h: tollgate_testkit::upstream::anthropic::EPHEMERAL_1H_INPUT_TOKENS as i64,
            ..Usage::default()
        }
    );
    assert!(stored[0].ttft_ms.is_some_and(|t| t < stored[0].latency_ms || stored[0].latency_ms == 0));
}

/// A hand-written HTTP/1.1 client: sends `body` to the proxy, reads the chunked response until
/// `want` body bytes arrived, then closes the socket without reading the rest (the chunked
/// terminator) — as the OpenAI SDK, LangChain and Codex do once they have the last event.
/// Returns the body bytes read.
async fn read_then_hang_up(rig: &Rig, path: &str, body: &Value, want: usize) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = rig.gw.base_url.trim_start_matches("http://").to_string();
    let auth = match rig.kind {
        "anthropic" => format!("x-api-key: {}\r\nanthropic-version: 2023-06-01\r\n", rig.token),
        "google" => format!("x-goog-api-key: {}\r\n", rig.token),
        _ => format!("authorization: Bearer {}\r\n", rig.token),
    };
    let payload = body.to_string();
    let request = format!(
        "POST /llm/v1/providers/{}{path} HTTP/1.1\r\nhost: {addr}\r\n{auth}content-type: application/json\r\n\
         content-length: {}\r\n\r\n{payload}",
        rig.name,
        payload.len()
    );
    let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap_or_else(|e| panic!("connect: {e}"));
    sock.write_all(request.as_bytes()).await.unwrap_or_else(|e| panic!("write: {e}"));
    let mut raw = Vec::new();
    let mut out = Vec::new();
    let mut pos: Option<usize> = None;
    let mut buf = [0u8; 8192];
    loop {
        // Parse what arrived: the head once, then every complete chunk.
        if pos.is_none()
            && let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n")
        {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            assert!(head.starts_with("http/1.1 200"), "{head}");
            assert!(head.contains("transfer-encoding: chunked"), "{head}");
            pos = Some(end + 4);
        }
        while let Some(p) = pos {
            let Some(eol) = raw[p..].windows(2).position(|w| w == b"\r\n") else { break };
            let line = String::from_utf8_lossy(&raw[p..p + eol]).to_string();
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                .unwrap_or_else(|e| panic!("chunk size {line:?}: {e}"));
            assert!(size > 0, "the body ended before {want} bytes: {}", String::from_utf8_lossy(&out));
            let start = p + eol + 2;
            if raw.len() < start + size + 2 {
                break;
            }
            out.extend_from_slice(&raw[start..start + size]);
            pos = Some(start + size + 2);
        }
        if out.len() >= want {
            drop(sock);
            return out;
        }
        let n = match tokio::time::timeout(Duration::from_secs(10), sock.read(&mut buf)).await {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => panic!("read: {e}"),
            Err(_) => panic!("stalled at {} of {want} bytes: {}", out.len(), String::from_utf8_lossy(&out)),
        };
        assert!(n > 0, "connection closed at {} of {want} bytes", out.len());
        raw.extend_from_slice(&buf[..n]);
    }
}

/// One streamed call: where it goes, what the upstream sends (one chunk per element), and how
/// many trailing chunks make up its terminal event (and anything after it).
struct Streamed {
    path: String,
    body: Value,
    content_type: &'static str,
    chunks: Vec<Bytes>,
    tail: usize,
}

/// Every family's streams, each three times: read whole by a normal client (the reference),
/// read up to the terminal event by a client that then hangs up while the upstream keeps the
/// body open (a success with the reference's usage), and left one event before the end
/// (client cancelled).
async fn complete_stream_then_client_hangs_up(db: TestDb) {
    use tollgate_testkit::upstream::{anthropic as fake_anthropic, bedrock as fake_bedrock, google as fake_google};
    let chat = json!({"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let mut chat_with_usage = chat.clone();
    chat_with_usage["stream_options"] = json!({"include_usage": true});
    let invoke_model = "us.anthropic.claude-haiku-4-5-20251001-v1:0";
    let families: Vec<(&'static str, Vec<Streamed>)> = vec![
        (
            "openai",
            vec![
                Streamed {
                    path: "/chat/completions".into(),
                    body: chat_with_usage,
                    content_type: "text/event-stream",
                    chunks: fake_openai::chat_stream("gpt-4o", true),
                    tail: 1,
                },
                // Injected include_usage: the gateway drops the usage-only chunk.
                Streamed {
                    path: "/chat/completions".into(),
                    body: chat,
                    content_type: "text/event-stream",
                    chunks: fake_openai::chat_stream("gpt-4o", true),
                    tail: 1,
                },
                Streamed {
                    path: "/responses".into(),
                    body: json!({"model": "gpt-4o", "stream": true, "input": "hi"}),
                    content_type: "text/event-stream",
                    chunks: fake_openai::response_stream("gpt-4o"),
                    tail: 1,
                },
            ],
        ),
        (
            "anthropic",
            vec![Streamed {
                path: "/v1/messages".into(),
                body: json!({"model": "claude-x", "max_tokens": 10, "stream": true,
                             "messages": [{"role": "user", "content": "hi"}]}),
                content_type: "text/event-stream",
                chunks: fake_anthropic::message_stream("claude-x"),
                tail: 1,
            }],
        ),
        (
            "google",
            vec![
                Streamed {
                    path: "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse".into(),
                    body: json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}),
                    content_type: "text/event-stream",
                    chunks: fake_google::stream_sse("gemini-2.5-flash"),
                    tail: 1,
                },
                Streamed {
                    path: "/v1beta/models/gemini-2.5-flash:streamGenerateContent".into(),
                    body: json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}),
                    content_type: "application/json; charset=UTF-8",
                    chunks: fake_google::stream_json_array("gemini-2.5-flash"),
                    // The finishing element, then the closing `]`.
                    tail: 2,
                },
            ],
        ),
        (
            "bedrock",
            vec![
                Streamed {
                    path: "/model/us.anthropic.claude-haiku-4-5-20251001-v1%3A0/converse-stream".into(),
                    body: json!({"messages": [{"role": "user", "content": [{"text": "hi"}]}]}),
                    content_type: "application/vnd.amazon.eventstream",
                    chunks: fake_bedrock::frames(&fake_bedrock::converse_stream_events()),
                    tail: 1,
                },
                Streamed {
                    path: "/model/us.anthropic.claude-haiku-4-5-20251001-v1%3A0/invoke-with-response-stream".into(),
                    body: json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 10,
                                 "messages": [{"role": "user", "content": "hi"}]}),
                    content_type: "application/vnd.amazon.eventstream",
                    chunks: fake_bedrock::frames(&fake_bedrock::invoke_stream_events(invoke_model)),
                    tail: 1,
                },
            ],
        ),
    ];
    let mut db = Some(db);
    for (kind, calls) in families {
        // One database per test: the first family uses it, the others run on SQLite.
        let db = match db.take() {
            Some(d) => d,
            None => TestDb::sqlite().await,
        };
        let rig = Rig::new(db, kind, json!({})).await;
        let mut stored = 0;
        for call in calls {
            let label = format!("{kind} {}", call.path);
            let queue = |chunks: &[Bytes], hang: bool| {
                let mut steps: Vec<Step> = chunks.iter().cloned().map(Step::Send).collect();
                if hang {
                    steps.push(Step::Hang);
                }
                rig.up.push(UpReply::script(200, call.content_type, steps));
            };
            // The reference: a client that reads to the end.
            queue(&call.chunks, false);
            let reference = rig.post(&call.path, &call.body).await;
            assert_eq!(reference.status, 200, "{label}: {}", reference.text());
            // Everything up to and including the terminal event; the upstream keeps the body
            // open, so only the client's hang-up ends the exchange.
            queue(&call.chunks, true);
            let got = read_then_hang_up(&rig, &call.path, &call.body, reference.body.len()).await;
            assert_eq!(got, reference.body.to_vec(), "{label}: the client got the whole stream");
            // Gone before the terminal event.
            let cut = call.chunks.len() - call.tail;
            let short: usize = call.chunks[cut..].iter().map(Bytes::len).sum();
            queue(&call.chunks[..cut], true);
            read_then_hang_up(&rig, &call.path, &call.body, reference.body.len() - short).await;

            stored += 3;
            let events = rig.events(stored).await;
            let [full, hung_up, left] = &events[stored - 3..] else { panic!("{label}: {events:#?}") };
            assert_eq!(full.status, RequestStatus::Success, "{label}");
            assert_ne!(full.usage, Usage::default(), "{label}: the reference stream is metered");
            assert_eq!(
                (hung_up.status, hung_up.error_class.as_deref(), hung_up.http_status),
                (RequestStatus::Success, None, Some(200)),
                "{label}: the whole stream reached the client"
            );
            assert_eq!(hung_up.usage, full.usage, "{label}: full usage");
            assert!(hung_up.streamed, "{label}");
            assert_eq!(
                (left.status, left.error_class.as_deref()),
                (RequestStatus::ClientCancelled, Some("client_cancelled")),
                "{label}: left before the terminal event"
            );
        }
        let metrics = send(rig.gw.client.get(rig.gw.url("/metrics"))).await.text();
        let cancelled = stored / 3;
        assert!(metrics.contains(&format!("tollgate_proxy_client_cancelled_total {cancelled}")), "{kind}: {metrics}");
    }
}

both_backends!(
    first_event_is_not_buffered,
    injected_include_usage,
    complete_stream_then_client_hangs_up,
    client_disconnect_mid_stream,
    hang_up_after_the_finish_reason_keeps_the_usage,
    upstream_connections_are_reused_after_whole_answers,
    client_gives_up_before_the_head,
    upstream_stalls_mid_stream,
    upstream_resets_mid_stream,
    upstream_drips_slowly,
    paced_streams_every_family,
    compressed_upstream_answers
);

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap_or_else(|e| panic!("{e}"));
    e.finish().unwrap_or_else(|e| panic!("{e}"))
}

/// The gateway asks upstreams for `identity`; one that gzips anyway is decoded: the client
/// gets the plain stream (without the injected usage chunk and without `content-encoding`)
/// and the event is metered with its tokens, streamed and not.
async fn compressed_upstream_answers(db: TestDb) {
    let rig = Rig::new(db, "openai_compatible", json!({})).await;
    let plain: Vec<u8> = fake_openai::chat_stream("llama3", true).into_iter().flat_map(|e| e.to_vec()).collect();
    let packed = gzip(&plain);
    let steps = packed.chunks(packed.len() / 4 + 1).map(|c| Step::Send(Bytes::copy_from_slice(c))).collect();
    rig.up.push(UpReply::script(200, "text/event-stream", steps).with_header("content-encoding", "gzip"));
    let body = json!({"model": "llama3", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let r = rig.request(Method::POST, "/chat/completions").header("accept-encoding", "gzip, br").json(&body);
    let r = send(r).await;
    assert_eq!(r.status, 200);
    let got = rig.up.last_request().unwrap_or_else(|| panic!("no upstream request"));
    assert_eq!(got.header("accept-encoding"), Some("identity"));
    assert!(r.headers.get("content-encoding").is_none(), "{:?}", r.headers);
    let want: Vec<u8> = fake_openai::chat_stream("llama3", true)
        .into_iter()
        .filter(|e| !String::from_utf8_lossy(e).contains("\"choices\":[]"))
        .flat_map(|e| e.to_vec())
        .collect();
    assert_eq!(r.text(), String::from_utf8_lossy(&want), "the decoded stream minus the usage-only chunk");

    let json_body = serde_json::to_vec(&fake_openai::chat_completion("llama3")).unwrap_or_default();
    rig.up.push(UpReply::raw(200, "application/json", gzip(&json_body)).with_header("content-encoding", "gzip"));
    let body = json!({"model": "llama3", "messages": [{"role": "user", "content": "hi"}]});
    let r = rig.post("/chat/completions", &body).await;
    assert_eq!(r.status, 200);
    assert!(r.headers.get("content-encoding").is_none(), "{:?}", r.headers);
    assert_eq!(r.body.as_ref(), json_body.as_slice());

    let events = rig.events(2).await;
    for e in &events {
        assert_eq!(e.status, RequestStatus::Success, "{e:?}");
        assert_eq!(e.usage, chat_usage_buckets(), "{e:?}");
    }
}
