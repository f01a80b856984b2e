use super::*;
use anyhow::{anyhow, ensure};

const WAIT: Duration = Duration::from_secs(5);

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn send(req: reqwest::RequestBuilder) -> anyhow::Result<(u16, String, String)> {
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    Ok((status, ct, resp.text().await?))
}

fn parse(body: &str) -> anyhow::Result<Value> {
    serde_json::from_str(body).with_context(|| format!("not JSON: {body}"))
}

/// The `data:` payloads of an SSE body (events split on blank lines, `\n` or `\r\n`).
fn sse_datas(body: &str) -> Vec<String> {
    body.replace("\r\n", "\n")
        .split("\n\n")
        .filter_map(|ev| ev.lines().find_map(|l| l.strip_prefix("data: ")).map(str::to_string))
        .collect()
}

/// The `event:` names of an SSE body.
fn sse_names(body: &str) -> Vec<String> {
    body.split("\n\n").filter_map(|ev| ev.lines().find_map(|l| l.strip_prefix("event: ")).map(str::to_string)).collect()
}

#[tokio::test]
async fn openai_credential_is_checked_in_openai_shape() -> anyhow::Result<()> {
    let up = FakeUpstream::start(ProviderType::Openai, Some("sk-up")).await?;
    ensure!(up.provider_base_url() == format!("{}/v1", up.base_url));
    let url = up.url("/v1/chat/completions");
    let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});

    let (s, _, b) = send(client().post(&url).json(&body)).await?;
    let v = parse(&b)?;
    ensure!(s == 401 && v["error"]["type"] == "invalid_request_error" && v["error"]["code"].is_null(), "{s} {v}");

    let (s, _, b) = send(client().post(&url).bearer_auth("sk-wrong").json(&body)).await?;
    let v = parse(&b)?;
    ensure!(s == 401 && v["error"]["code"] == "invalid_api_key", "{s} {v}");

    let (s, ct, b) = send(client().post(&url).bearer_auth("sk-up").json(&body)).await?;
    ensure!(s == 200 && ct == "application/json", "{s} {ct}");
    ensure!(parse(&b)? == openai::chat_completion("gpt-4o"));
    ensure!(up.requests().len() == 3);
    Ok(())
}

#[tokio::test]
async fn openai_chat_non_stream_usage() -> anyhow::Result<()> {
    let up = FakeUpstream::start(ProviderType::Openai, None).await?;
    let body = json!({"model": "my-model", "messages": []});
    let (s, _, b) = send(client().post(up.url("/v1/chat/completions")).json(&body)).await?;
    let v = parse(&b)?;
    ensure!(s == 200 && v["object"] == "chat.completion" && v["model"] == "my-model", "{v}");
    ensure!(v["choices"][0]["message"]["content"] == TEXT);
    let u = &v["usage"];
    ensure!(u["prompt_tokens"] == 57 && u["completion_tokens"] == 17 && u["total_tokens"] == 74, "{u}");
    ensure!(u["prompt_tokens_details"]["cached_tokens"] == 12, "{u}");
    ensure!(u["completion_tokens_details"]["reasoning_tokens"] == 5, "{u}");
    Ok(())
}

#[tokio::test]
async fn openai_chat_stream_has_usage_chunk_only_when_asked() -> anyhow::Result<()> {
    let up = FakeUpstream::start(ProviderType::Openai, None).await?;
    let url = up.url("/v1/chat/completions");

    let (s, ct, b) = send(client().post(&url).json(&json!({"model": "gpt-4o", "stream": true}))).await?;
    ensure!(s == 200 && ct.starts_with("text/event-stream"), "{s} {ct}");
    let datas = sse_datas(&b);
    ensure!(datas.len() == TEXT_PARTS.len() + 3, "{datas:?}"); // role, parts, finish, [DONE]
    ensure!(datas.last().map(String::as_str) == Some("[DONE]"));
    let mut text = String::new();
    for d in &datas[..datas.len() - 1] {
        let v = parse(d)?;
        ensure!(v["object"] == "chat.completion.chunk" && v.get("usage").is_none(), "{v}");
        ensure!(v["choices"].as_array().is_some_and(|c| c.len() == 1), "{v}");
        text.push_str(v["choices"][0]["delta"]["content"].as_str().unwrap_or_default());
    }
    ensure!(text == TEXT);
    ensure!(b.as_bytes() == openai::chat_stream("gpt-4o", false).concat().as_slice());

    let req = json!({"model": "gpt-4o", "stream": true, "stream_options": {"include_usage": true}});
    let (_, _, b) = send(client().post(&url).json(&req)).await?;
    let datas = sse_datas(&b);
    ensure!(datas.len() == TEXT_PARTS.len() + 4, "{datas:?}");
    let (done, rest) = datas.split_last().ok_or_else(|| anyhow!("empty"))?;
    let (usage_chunk, others) = rest.split_last().ok_or_else(|| anyhow!("no usage chunk"))?;
    ensure!(done == "[DONE]");
    for d in others {
        let v = parse(d)?;
        ensure!(v.get("usage") == Some(&Value::Null), "{v}");
    }
    let v = parse(usage_chunk)?;
    ensure!(v["choices"] == json!([]) && v["usage"] == openai::chat_usage(), "{v}");
    Ok(())
}

#[tokio::test]
async fn openai_other_endpoints() -> anyhow::Result<()> {
    let up = FakeUpstream::start(ProviderType::Openai, None).await?;
    let c = client();

    let (s, _, b) = send(c.post(up.url("/v1/completions")).json(&json!({"model": "m", "prompt": "x"}))).await?;
    let v = parse(&b)?;
    ensure!(s == 200 && v["usage"]["prompt_tokens"] == 23 && v["usage"]["total_tokens"] == 32, "{v}");
    let req = json!({"model": "m", "stream": true, "stream_options": {"include_usage": true}});
    let (_, _, b) = send(c.post(up.url("/v1/completions")).json(&req)).await?;
    let datas = sse_datas(&b);
    let usage = parse(&datas[datas.len() - 2])?;
    ensure!(usage["choices"] == json!([]) && usage["usage"]["completion_tokens"] == 9, "{usage}");

    let (s, _, b) = send(c.post(up.url("/v1/responses")).json(&json!({"model": "m", "input": "x"}))).await?;
    let v = parse(&b)?;
    ensure!(s == 200 && v["object"] == "response" && v["usage"] == openai::responses_usage(), "{v}");
    ensure!(v["usage"]["input_tokens"] == 41 && v["usage"]["output_tokens_details"]["reasoning_tokens"] == 4);
    let (_, _, b) =
        send(c.post(up.url("/v1/responses")).json(&json!({"model": "m", "input": "x", "stream": true}))).await?;
    let names = sse_names(&b);
    ensure!(names.first().map(String::as_str) == Some("response.created"), "{names:?}");
    ensure!(names.last().map(String::as_str) == Some("response.completed"), "{names:?}");
    ensure!(names.iter().filter(|n| *n == "response.output_text.delta").count() == TEXT_PARTS.len());
    let datas = sse_datas(&b);
    let last = parse(datas.last().ok_or_else(|| anyhow!("no events"))?)?;
    ensure!(last["response"]["usage"]["total_tokens"] == 54 && last["sequence_number"] == names.len() - 1);
    ensure!(!b.contains("[DONE]"));

    let req = json!({"model": "text-embedding-3-small", "input": ["a", "b"]});
    let (s, _, b) = send(c.post(up.url("/v1/embeddings")).json(&req)).await?;
    let v = parse(&b)?;
    ensure!(s == 200 && v["data"].as_array().map(Vec::len) == Some(2) && v["usage"]["prompt_tokens"] == 8, "{v}");

    let (s, _, b) = send(c.get(up.url("/v1/models"))).await?;
    let v = parse(&b)?;
    ensure!(s == 200 && v["data"][0]["id"] == "gpt-4o" && v["object"] == "list", "{v}");

    let (s, _, b) = send(c.post(up.url("/v1/nope")).json(&json!({}))).await?;
    ensure!(s == 404 && parse(&b)?["error"]["message"] == "Invalid URL (POST /v1/nope)", "{s} {b}");
    let (s, _, b) = send(c.post(up.url("/v1/chat/completions")).body("{not json")).await?;
    ensure!(s == 400 && parse(&b)?["error"]["type"] == "invalid_request_error", "{s} {b}");
    Ok(())
}

#[tokio::test]
async fn anthropic_checks_key_and_version_and_reports_usage() -> anyhow::Result<()> {
    let up = FakeUpstream::start(ProviderType::Anthropic, Some("sk-ant")).await?;
    ensure!(up.provider_base_url() == up.base_url);
    let url = up.url("/v1/messages");
    let body = json!({"model": "claude-x", "max_tokens": 10, "messages": []});

    let (s, _, b) = send(client().post(&url).header("x-api-key", "bad").json(&body)).await?;
    let v = parse(&b)?;
    ensure!(s == 401 && v["type"] == "error" && v["error"]["type"] == "authentication_error", "{s} {v}");

    let (s, _, b) = send(client().post(&url).header("x-api-key", "sk-ant").json(&body)).await?;
    ensure!(s == 400 && parse(&b)?["error"]["type"] == "invalid_request_error", "{s} {b}");

    let ok = |rb: reqwest::RequestBuilder| rb.header("x-api-key", "sk-ant").header("anthropic-version", "2023-06-01");
    let (s, _, b) = send(ok(client().post(&url)).json(&body)).await?;
    let v = parse(&b)?;
    ensure!(s == 200 && v["model"] == "claude-x" && v["content"][0]["text"] == TEXT, "{v}");
    let u = &v["usage"];
    ensure!(u["input_tokens"] == 31 && u["output_tokens"] == 15, "{u}");
    ensure!(u["cache_creation_input_tokens"] == 7 && u["cache_read_input_tokens"] == 11, "{u}");
    ensure!(u["cache_creation"] == json!({"ephemeral_5m_input_tokens": 4, "ephemeral_1h_input_tokens": 3}));

    let (_, _, b) = send(ok(client().post(up.url("/v1/messages/count_tokens"))).json(&body)).await?;
    ensure!(parse(&b)? == json!({"input_tokens": 33}));
    let (_, _, b) = send(ok(client().get(up.url("/v1/models")))).await?;
    let v = parse(&b)?;
    ensure!(v["data"][0]["type"] == "model" && v["has_more"] == false && v["first_id"] == v["data"][0]["id"], "{v}");
    let (s, _, b) = send(ok(client().get(up.url("/v2/other")))).await?;
    ensure!(s == 404 && parse(&b)?["error"]["type"] == "not_found_error");
    Ok(())
}

#[tokio::test]
async fn anthropic_stream_events() -> anyhow::Result<()> {
    let up = FakeUpstream::start(ProviderType::Anthropic, None).await?;
    let body = json!({"model": "claude-x", "max_tokens": 10, "messages": [], "stream": true});
    let (s, ct, b) =
        send(client().post(up.url("/v1/messages")).header("anthropic-version", "2023-06-01").json(&body)).await?;
    ensure!(s == 200 && ct.starts_with("text/event-stream"), "{s} {ct}");
    let names = sse_names(&b);
    let mut expected = vec!["message_start", "content_block_start", "ping"];
    expected.extend(std::iter::repeat_n("content_block_delta", TEXT_PARTS.len()));
    expected.extend(["content_block_stop", "message_delta", "message_stop"]);
    ensure!(names == expected, "{names:?}");
    let datas = sse_datas(&b);
    let start = parse(&datas[0])?;
    ensure!(start["message"]["usage"]["input_tokens"] == 31 && start["message"]["usage"]["output_tokens"] == 1);
    let delta = parse(&datas[datas.len() - 2])?;
    ensure!(delta["type"] == "message_delta" && delta["usage"]["output_tokens"] == 15, "{delta}");
    Ok(())
}

#[tokio::test]
async fn google_key_in_header_or_query() -> anyhow::Result<()> {
    let up = FakeUpstream::start(ProviderType::Google, Some("g-key")).await?;
    let url = up.url("/v1beta/models/gemini-2.5-flash:generateContent");
    let body = json!({"contents": [{"parts": [{"text": "hi"}]}]});

    let (s, _, b) = send(client().post(&url).json(&body)).await?;
    let v = parse(&b)?;
    ensure!(s == 401 && v["error"]["code"] == 401 && v["error"]["status"] == "UNAUTHENTICATED", "{s} {v}");

    let (s, _, _) = send(client().post(&url).header("x-goog-api-key", "g-key").json(&body)).await?;
    ensure!(s == 200);
    let (s, _, b) = send(client().post(format!("{url}?key=g-key")).json(&body)).await?;
    ensure!(s == 200, "{s} {b}");
    let v = parse(&b)?;
    ensure!(v["modelVersion"] == "gemini-2.5-flash" && v["candidates"][0]["content"]["parts"][0]["text"] == TEXT);
    let u = &v["usageMetadata"];
    ensure!(u["promptTokenCount"] == 27 && u["candidatesTokenCount"] == 14 && u["totalTokenCount"] == 47, "{u}");
    ensure!(u["cachedContentTokenCount"] == 9 && u["thoughtsTokenCount"] == 6, "{u}");
    ensure!(up.last_request().and_then(|r| r.query_param("key")).as_deref() == Some("g-key"));
    Ok(())
}

#[tokio::test]
async fn google_streams_sse_and_json_array() -> anyhow::Result<()> {
    let up = FakeUpstream::start(ProviderType::Google, None).await?;
    let body = json!({"contents": []});
    let base = up.url("/v1beta/models/gemini-2.5-pro:streamGenerateContent");

    let (s, ct, b) = send(client().post(format!("{base}?alt=sse")).json(&body)).await?;
    ensure!(s == 200 && ct.starts_with("text/event-stream") && b.contains("\r\n\r\n"), "{s} {ct}");
    let datas = sse_datas(&b);
    ensure!(datas.len() == TEXT_PARTS.len());
    let mut last_candidates = 0;
    for d in &datas {
        let c = parse(d)?["usageMetadata"]["candidatesTokenCount"].as_u64().unwrap_or_default();
        ensure!(c >= last_candidates);
        last_candidates = c;
    }
    ensure!(last_candidates == google::CANDIDATES_TOKEN_COUNT);

    let (s, ct, b) = send(client().post(&base).json(&body)).await?;
    ensure!(s == 200 && ct.starts_with("application/json"), "{s} {ct}");
    let arr = parse(&b)?;
    let arr = arr.as_array().ok_or_else(|| anyhow!("not an array: {b}"))?;
    ensure!(arr.len() == TEXT_PARTS.len());
    let last = arr.last().ok_or_else(|| anyhow!("empty array"))?;
    ensure!(last["usageMetadata"]["totalTokenCount"] == 47 && last["candidates"][0]["finishReason"] == "STOP");
    ensure!(last["modelVersion"] == "gemini-2.5-pro");

    // `/v1` works too, and the model is percent-decoded.
    let (s, _, b) = send(client().post(up.url("/v1/models/tuned%2Dx:countTokens")).json(&body)).await?;
    ensure!(s == 200 && parse(&b)?["totalTokens"] == 21, "{s} {b}");
    let (_, _, b) = send(client().post(up.url("/v1beta/models/gemini-embedding-001:embedContent")).json(&body)).await?;
    ensure!(parse(&b)?["embedding"]["values"].as_array().is_some_and(|v| !v.is_empty()));
    let (_, _, b) = send(client().get(up.url("/v1beta/models"))).await?;
    ensure!(parse(&b)?["models"][0]["name"] == "models/gemini-2.5-flash");
    let (s, _, b) = send(client().post(up.url("/v1beta/models/x:nope")).json(&body)).await?;
    ensure!(s == 404 && parse(&b)?["error"]["status"] == "NOT_FOUND");
    let (s, _, b) = send(client().post(up.url("/v1beta/models/x:generateContent")).body("[")).await?;
    ensure!(s == 400 && parse(&b)?["error"]["status"] == "INVALID_ARGUMENT");
    Ok(())
}

#[tokio::test]
async fn queued_replies_are_fifo_and_requests_recorded() -> anyhow::Result<()> {
    let up = FakeUpstream::start(ProviderType::Openai, Some("sk-up")).await?;
    up.push(Reply::json(429, &json!({"error": {"message": "slow down"}})).with_header("retry-after", "1"));
    up.push(Reply::raw(200, "text/plain", "second"));
    let c = client();
    let resp = c.post(up.url("/anything?x=1&y=a%20b")).header("x-custom", "v").body("raw body").send().await?;
    ensure!(resp.status() == 429 && resp.headers().get("retry-after").is_some_and(|v| v == "1"));
    let (s, _, b) = send(c.get(up.url("/v1/models"))).await?; // no key: the queue comes first
    ensure!(s == 200 && b == "second");
    let (s, _, _) = send(c.get(up.url("/v1/models"))).await?;
    ensure!(s == 401 && up.queued() == 0);

    let reqs = up.wait_requests(3, WAIT).await?;
    let r = &reqs[0];
    ensure!(r.method == "POST" && r.path == "/anything" && r.query.as_deref() == Some("x=1&y=a%20b"));
    ensure!(r.query_param("y").as_deref() == Some("a b") && r.header("X-Custom") == Some("v"));
    ensure!(r.body == "raw body" && r.json().is_err());
    ensure!(up.wait_requests(4, Duration::from_millis(50)).await.is_err());
    ensure!(up.wait_bodies(3, WAIT).await? == (3, 0));
    Ok(())
}

#[tokio::test]
async fn redirect_stall_and_delay() -> anyhow::Result<()> {
    let up = FakeUpstream::start(ProviderType::Anthropic, None).await?;
    let c = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    up.push(Reply::redirect(307, "http://example.invalid/x"));
    let resp = c.get(up.url("/")).send().await?;
    ensure!(resp.status() == 307 && resp.headers().get("location").is_some_and(|v| v == "http://example.invalid/x"));

    up.push(Reply::stall_headers(200));
    let mut resp = c.get(up.url("/")).send().await?;
    ensure!(resp.status() == 200);
    ensure!(tokio::time::timeout(Duration::from_millis(200), resp.chunk()).await.is_err(), "body started");
    drop(resp);
    ensure!(up.wait_bodies(2, WAIT).await? == (1, 1), "the stalled body is aborted when the client leaves");

    up.push(Reply::json(200, &json!({})).delayed(Duration::from_millis(300)));
    let t0 = Instant::now();
    let (s, _, _) = send(c.get(up.url("/"))).await?;
    ensure!(s == 200 && t0.elapsed() >= Duration::from_millis(300));
    Ok(())
}

#[tokio::test]
async fn full_bodies_have_a_content_length_and_drop_cuts_hanging_bodies() -> anyhow::Result<()> {
    let up = FakeUpstream::start(ProviderType::Openai, None).await?;
    let resp = client().get(up.url("/v1/models")).send().await?;
    let len = resp.headers().get("content-length").and_then(|v| v.to_str().ok()).map(str::to_string);
    let body = resp.bytes().await?;
    ensure!(len == Some(body.len().to_string()), "{len:?}");

    up.push(Reply::script(200, "text/event-stream", vec![Step::Send(Bytes::from_static(b"data: 1\n\n")), Step::Hang]));
    let mut resp = client().get(up.url("/")).send().await?;
    ensure!(resp.chunk().await?.is_some());
    let t0 = Instant::now();
    drop(up);
    ensure!(t0.elapsed() < Duration::from_secs(2), "drop waited for a hanging body");
    ensure!(resp.chunk().await.is_err(), "the hanging body is cut when the upstream stops");
    Ok(())
}

#[tokio::test]
async fn wait_step_holds_the_next_chunk_until_notified() -> anyhow::Result<()> {
    let up = FakeUpstream::start(ProviderType::Openai, None).await?;
    let gate = Arc::new(Notify::new());
    let steps = vec![
        Step::Send(Bytes::from_static(b"data: 1\n\n")),
        Step::Wait(Arc::clone(&gate)),
        Step::Send(Bytes::from_static(b"data: 2\n\n")),
    ];
    up.push(Reply::script(200, "text/event-stream", steps));
    let mut resp = client().post(up.url("/v1/chat/completions")).send().await?;
    ensure!(resp.chunk().await?.as_deref() == Some(&b"data: 1\n\n"[..]));
    ensure!(tokio::time::timeout(Duration::from_millis(200), resp.chunk()).await.is_err(), "second chunk early");
    gate.notify_one();
    ensure!(resp.chunk().await?.as_deref() == Some(&b"data: 2\n\n"[..]));
    ensure!(resp.chunk().await?.is_none());
    ensure!(up.wait_bodies(1, WAIT).await? == (1, 0));

    // A permit given before the body reaches the step is not lost.
    let early = Arc::new(Notify::new());
    early.notify_one();
    up.push(Reply::script(200, "text/plain", vec![Step::Wait(early), Step::Send(Bytes::from_static(b"ok"))]));
    let (_, _, b) = send(client().get(up.url("/"))).await?;
    ensure!(b == "ok");
    Ok(())
}

#[tokio::test]
async fn abort_step_cuts_the_body_and_counts_as_aborted() -> anyhow::Result<()> {
    let up = FakeUpstream::start(ProviderType::Google, None).await?;
    up.push(Reply::script(200, "text/event-stream", vec![Step::Send(Bytes::from_static(b"data: 1\n\n")), Step::Abort]));
    let mut resp = client().get(up.url("/")).send().await?;
    ensure!(resp.status() == 200);
    ensure!(resp.chunk().await?.as_deref() == Some(&b"data: 1\n\n"[..]), "the chunk before the abort arrives");
    ensure!(resp.chunk().await.is_err(), "an aborted body must not end cleanly");
    ensure!(up.wait_bodies(1, WAIT).await? == (0, 1));
    Ok(())
}

#[tokio::test]
async fn built_in_streams_honour_pace_and_count_a_dropped_client() -> anyhow::Result<()> {
    let up = FakeUpstream::start(ProviderType::Anthropic, None).await?;
    up.set_pace(Duration::from_millis(150));
    let body = json!({"model": "claude-x", "max_tokens": 10, "messages": [], "stream": true});
    let mut resp =
        client().post(up.url("/v1/messages")).header("anthropic-version", "2023-06-01").json(&body).send().await?;
    let first = resp.chunk().await?.ok_or_else(|| anyhow!("no first chunk"))?;
    let t0 = Instant::now();
    ensure!(first.starts_with(b"event: message_start"));
    let second = resp.chunk().await?.ok_or_else(|| anyhow!("no second chunk"))?;
    ensure!(second.starts_with(b"event: content_block_start") && t0.elapsed() >= Duration::from_millis(100));
    drop(resp);
    ensure!(up.wait_bodies(1, WAIT).await? == (0, 1), "a dropped client must count as aborted");
    Ok(())
}

#[test]
fn split_sse_events_keeps_bytes_exact() {
    let input = b"event: a\ndata: 1\n\ndata: 2\r\n\r\ndata: {\"x\":3}\n\n: tail";
    let events = split_sse_events(input);
    let expected: Vec<&[u8]> = vec![b"event: a\ndata: 1\n\n", b"data: 2\r\n\r\n", b"data: {\"x\":3}\n\n", b": tail"];
    assert_eq!(events.iter().map(|e| &e[..]).collect::<Vec<_>>(), expected);
    assert_eq!(events.concat(), input.to_vec());
    assert!(split_sse_events(b"").is_empty());
}

#[tokio::test]
async fn from_case_serves_fixture_files() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let sse = "data: {\"a\":1}\r\n\r\ndata: {\"a\":2}\r\n\r\n";
    std::fs::write(dir.path().join("s.sse"), sse)?;
    std::fs::write(
        dir.path().join("s.case.json"),
        json!({"status": 200, "content_type": "text/event-stream", "response": "s.sse"}).to_string(),
    )?;
    std::fs::write(dir.path().join("e.json"), "{\"error\":{}}")?;
    std::fs::write(
        dir.path().join("e.case.json"),
        json!({"status": 503, "content_type": "application/json", "response": "e.json"}).to_string(),
    )?;
    let reply = Reply::from_case(&dir.path().join("s.case.json"), Duration::from_millis(10))?;
    match &reply.body {
        ReplyBody::Script(steps) => ensure!(steps.len() == 3, "{steps:?}"), // two events, one sleep
        other => bail!("unexpected body {other:?}"),
    }
    ensure!(Reply::from_case(&dir.path().join("missing.case.json"), Duration::ZERO).is_err());

    let up = FakeUpstream::start(ProviderType::Google, None).await?;
    up.push(reply);
    up.push(Reply::from_case(&dir.path().join("e.case.json"), Duration::ZERO)?);
    let (s, ct, b) = send(client().get(up.url("/"))).await?;
    ensure!(s == 200 && ct == "text/event-stream" && b == sse, "{s} {ct} {b:?}");
    let (s, ct, b) = send(client().get(up.url("/"))).await?;
    ensure!(s == 503 && ct == "application/json" && b == "{\"error\":{}}");
    ensure!(fixtures_dir().ends_with("tests/fixtures"));
    Ok(())
}

#[test]
fn every_repo_fixture_loads_with_exact_bytes() -> anyhow::Result<()> {
    {
        for fx in crate::fixtures::all_cases()? {
            let path = fx.path.clone();
            let reply = Reply::from_case(&path, Duration::from_millis(1))?;
            let case: Value = serde_json::from_slice(&std::fs::read(&path)?)?;
            let response = case["response"].as_str().unwrap_or_default();
            let recorded = fx.file_bytes(response)?;
            for pair in case["response_headers"].as_array().into_iter().flatten() {
                let (n, v) = (pair[0].as_str().unwrap_or_default(), pair[1].as_str().unwrap_or_default());
                ensure!(reply.headers.contains(&(n.into(), v.into())), "{}: header {n}", path.display());
            }
            ensure!(u64::from(reply.status) == case["status"].as_u64().unwrap_or(200), "{}", path.display());
            ensure!(
                reply.headers.contains(&("content-type".into(), case["content_type"].as_str().unwrap_or("").into()))
            );
            let sent: Vec<u8> = match &reply.body {
                ReplyBody::Full(b) => b.to_vec(),
                ReplyBody::Script(steps) => {
                    let sends: Vec<&Bytes> =
                        steps.iter().filter_map(|s| if let Step::Send(b) = s { Some(b) } else { None }).collect();
                    ensure!(sends.len() > 1 || recorded.is_empty(), "{}: one chunk only", path.display());
                    sends.iter().flat_map(|b| b.iter().copied()).collect()
                }
                ReplyBody::Delayed { .. } => bail!("unexpected delayed body"),
            };
            ensure!(sent == recorded, "{}: bytes differ", path.display());
        }
    }
    Ok(())
}
