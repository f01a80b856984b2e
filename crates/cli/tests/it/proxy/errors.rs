//! Every refusal and failure on the proxy path, in each provider's native error shape, in the
//! documented order (401 → 404 → 403 → 413 → 404 model), with no usage event for refusals and
//! exactly one for failures after the upstream was contacted.

use super::*;
use crate::both_backends;
use tollgate_core::RequestStatus;
use tollgate_testkit::upstream::{FakeUpstream, Reply as UpReply};

/// Asserts `r` is `status` in the native error shape of `kind` and its message contains `needle`.
#[track_caller]
pub fn assert_native(r: &Reply, kind: &str, status: u16, needle: &str) {
    assert_eq!(r.status, status, "{kind}: {}", r.text());
    let v = r.json();
    let message = match kind {
        "anthropic" => {
            assert_eq!(v["type"], "error", "{v}");
            assert!(v["error"]["type"].is_string(), "{v}");
            v["error"]["message"].as_str()
        }
        "google" => {
            assert_eq!(v["error"]["code"], status, "{v}");
            assert!(v["error"]["status"].is_string(), "{v}");
            v["error"]["message"].as_str()
        }
        _ => {
            assert!(v["error"]["type"].is_string(), "{v}");
            v["error"]["message"].as_str()
        }
    };
    let message = message.unwrap_or_else(|| panic!("no message in {v}"));
    assert!(message.contains(needle), "{kind}: message {message:?} lacks {needle:?}");
}

/// A minimal generation request of each type: (path, body).
pub fn generation(kind: &str, model: &str) -> (String, Value) {
    match kind {
        "anthropic" => (
            "/v1/messages".into(),
            json!({"model": model, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}),
        ),
        "google" => (
            format!("/v1beta/models/{model}:generateContent"),
            json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}),
        ),
        _ => ("/chat/completions".into(), json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})),
    }
}

/// Every refusal for one provider type, then one allowed request.
async fn refusals(db: TestDb, kind: &'static str) {
    {
        let rig = Rig::new(db, kind, json!({"provider_models": [{"name": "allowed-model"}]})).await;
        let (path, body) = generation(kind, "allowed-model");

        // 401: missing, malformed, unknown, revoked, expired.
        let r = send(rig.gw.client.post(rig.url(&path)).json(&body)).await;
        assert_native(&r, kind, 401, "missing gateway token");
        let r = send(sdk_auth(rig.gw.client.post(rig.url(&path)), kind, "not-a-token").json(&body)).await;
        assert_native(&r, kind, 401, "gateway token");
        let unknown = format!("tg_{}", "A".repeat(43));
        let r = send(sdk_auth(rig.gw.client.post(rig.url(&path)), kind, &unknown).json(&body)).await;
        assert_native(&r, kind, 401, "gateway token");
        let revoked = expect(
            admin(&rig.gw, Method::POST, "/api/v1/tokens", Some(json!({"name": "gone", "role": "invoker"}))).await,
            201,
        );
        let revoked_token = revoked["token"].as_str().unwrap_or_default().to_string();
        let r = send(sdk_auth(rig.gw.client.post(rig.url(&path)), kind, &revoked_token).json(&body)).await;
        assert!(r.status != 401, "a fresh token works before revocation: {}", r.text());
        let id = revoked["id"].as_str().unwrap_or_default();
        expect(admin(&rig.gw, Method::DELETE, &format!("/api/v1/tokens/{id}"), None).await, 200);
        let r = send(sdk_auth(rig.gw.client.post(rig.url(&path)), kind, &revoked_token).json(&body)).await;
        assert_native(&r, kind, 401, "gateway token");
        let soon = chrono_like_rfc3339(std::time::SystemTime::now() + Duration::from_millis(1200));
        let expiring = expect(
            admin(
                &rig.gw,
                Method::POST,
                "/api/v1/tokens",
                Some(json!({"name": "brief", "role": "invoker", "expires_at": soon})),
            )
            .await,
            201,
        );
        rig.gw.clock.advance(Duration::from_millis(1500)); // past its expiry, by the gateway's clock
        let expiring = expiring["token"].as_str().unwrap_or_default().to_string();
        let r = send(sdk_auth(rig.gw.client.post(rig.url(&path)), kind, &expiring).json(&body)).await;
        assert_native(&r, kind, 401, "expired");

        // 404: unknown provider, OpenAI shape (no type known) — even for a valid token.
        let r = send(
            sdk_auth(rig.gw.client.post(rig.gw.url(&format!("/llm/v1/providers/nope{path}"))), kind, &rig.token)
                .json(&body),
        )
        .await;
        assert_native(&r, "openai", 404, "no LLM provider named \"nope\"");
        // …and 401 comes first.
        let r = send(rig.gw.client.post(rig.gw.url(&format!("/llm/v1/providers/nope{path}"))).json(&body)).await;
        assert_eq!(r.status, 401, "{}", r.text());

        // 404: model not in the allow-list (from the body, or the path for Gemini), answered
        // as each upstream answers an unknown model (so clients say "model not found", not
        // "failed to authenticate").
        let (bad_path, bad_body) = generation(kind, "other-model");
        let r = rig.post(&bad_path, &bad_body).await;
        assert_native(&r, kind, 404, "model_not_allowed: model \"other-model\" is not enabled");
        let v = r.json();
        match kind {
            "anthropic" => assert_eq!(v["error"]["type"], "not_found_error", "{v}"),
            "google" => assert_eq!(v["error"]["status"], "NOT_FOUND", "{v}"),
            _ => {
                assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
                assert_eq!(v["error"]["code"], "model_not_found", "{v}");
            }
        }
        if kind != "google" {
            // Ambiguous model (given twice) with an allow-list: refused, naming the field.
            let raw = r#"{"model":"allowed-model","model":"other-model","messages":[]}"#;
            let r = send(rig.request(Method::POST, &path).header("content-type", "application/json").body(raw)).await;
            assert_native(&r, kind, 400, "model");
        } else {
            // Percent-encoded path model is decoded before the check.
            let r = rig.post("/v1beta/models/other%2Dmodel:generateContent", &bad_body).await;
            assert_native(&r, kind, 404, "model_not_allowed");
        }

        // 413: body over the cap (the default cap is 32 MiB; send 33 MiB).
        let big = vec![b' '; 33 * 1024 * 1024];
        let r = send(rig.request(Method::POST, &path).header("content-type", "application/json").body(big)).await;
        assert_native(&r, kind, 413, "request body");

        // 403: disabled provider, then 403 out-of-scope token.
        expect(
            admin(
                &rig.gw,
                Method::PATCH,
                &format!("/api/v1/llm-providers/{}", rig.name),
                Some(json!({"enabled": false})),
            )
            .await,
            200,
        );
        let r = rig.post(&path, &body).await;
        assert_native(&r, kind, 403, "is disabled");
        expect(
            admin(
                &rig.gw,
                Method::PATCH,
                &format!("/api/v1/llm-providers/{}", rig.name),
                Some(json!({"enabled": true})),
            )
            .await,
            200,
        );
        let scoped = expect(
            admin(
                &rig.gw,
                Method::POST,
                "/api/v1/tokens",
                Some(json!({"name": "scoped", "role": "invoker", "providers": ["elsewhere"]})),
            )
            .await,
            201,
        );
        let scoped = scoped["token"].as_str().unwrap_or_default().to_string();
        let r = send(sdk_auth(rig.gw.client.post(rig.url(&path)), kind, &scoped).json(&body)).await;
        assert_native(&r, kind, 403, "not scoped to provider");

        // Only the one request made with the not-yet-revoked token reached the upstream; the
        // allowed request goes through too; those are the only usage events.
        assert_eq!(rig.up.requests().len(), 1, "{kind}: refused requests reached the upstream");
        let r = rig.post(&path, &body).await;
        assert_eq!(r.status, 200, "{kind}: {}", r.text());
        let events = rig.events(2).await;
        assert!(events.iter().all(|e| e.status == RequestStatus::Success), "{events:#?}");

        // Refusals are counted in /metrics.
        let metrics = send(rig.gw.client.get(rig.gw.url("/metrics"))).await.text();
        let model_refusals = if kind == "google" { 2 } else { 1 };
        assert!(
            metrics.contains(&format!(
                "tollgate_proxy_requests_refused_total{{source=\"downstream\",reason=\"model_not_allowed\"}} {model_refusals}"
            )),
            "{metrics}"
        );
        assert!(metrics.contains("tollgate_proxy_requests_forwarded_total 2"), "{metrics}");
    }
}

async fn refusals_openai(db: TestDb) {
    refusals(db, "openai").await;
}

async fn refusals_anthropic(db: TestDb) {
    refusals(db, "anthropic").await;
}

async fn refusals_google(db: TestDb) {
    refusals(db, "google").await;
}

async fn refusals_openai_compatible(db: TestDb) {
    refusals(db, "openai_compatible").await;
}

both_backends!(refusals_openai, refusals_anthropic, refusals_google, refusals_openai_compatible);

/// A multipart/form-data body with these text fields and one small file part.
fn form(boundary: &str, fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = String::new();
    for (name, value) in fields {
        out.push_str(&format!("--{boundary}\r\ncontent-disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"));
    }
    out.push_str(&format!(
        "--{boundary}\r\ncontent-disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\
         content-type: audio/wav\r\n\r\nRIFF....WAVE\r\n--{boundary}--\r\n"
    ));
    out.into_bytes()
}

/// With an allow-list, a request to an endpoint that takes its model from the body must name
/// an allowed one: a missing model is refused (400, native shape) rather than left to the
/// upstream's default (OpenAI's images and audio have one), and a multipart body's `model`
/// field is checked like a JSON body's. Endpoints that name no model (models list, files)
/// pass as before, and without an allow-list nothing changes.
async fn allow_list_needs_a_named_model(db: TestDb) {
    let rig = Rig::new(db, "openai", json!({"provider_models": [{"name": "allowed-model"}]})).await;
    let missing = "model: required; provider";
    for (path, body) in [
        ("/images/generations", json!({"prompt": "a cat"})),
        ("/chat/completions", json!({"messages": [{"role": "user", "content": "hi"}]})),
        ("/v1/audio/speech", json!({"input": "hi", "voice": "alloy"})),
        ("/v1/embeddings", json!({"input": "hi"})),
    ] {
        assert_native(&rig.post(path, &body).await, "openai", 400, missing);
    }
    let multipart = |fields: &[(&str, &str)]| {
        rig.request(Method::POST, "/v1/audio/transcriptions")
            .header("content-type", "multipart/form-data; boundary=XyZ-b0undary")
            .body(form("XyZ-b0undary", fields))
    };
    assert_native(&send(multipart(&[("language", "en")])).await, "openai", 400, missing);
    let r = send(multipart(&[("model", "whisper-1")])).await;
    assert_native(&r, "openai", 404, "model_not_allowed: model \"whisper-1\" is not enabled");
    let r = send(multipart(&[("model", "allowed-model"), ("model", "whisper-1")])).await;
    assert_native(&r, "openai", 400, "model: given more than once");
    let torn = rig
        .request(Method::POST, "/v1/audio/transcriptions")
        .header("content-type", "multipart/form-data; boundary=other")
        .body(form("XyZ-b0undary", &[("model", "allowed-model")]));
    assert_native(&send(torn).await, "openai", 400, "not valid multipart/form-data");
    assert!(rig.up.requests().is_empty(), "a refused request reached the upstream: {:?}", rig.up.requests());

    // The allowed model in a form field goes through, and is the usage event's model.
    rig.up.push(UpReply::json(200, &json!({"text": "hello"})));
    let r = send(multipart(&[("model", "allowed-model"), ("language", "en")])).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let got = rig.up.last_request().unwrap_or_else(|| panic!("not forwarded"));
    assert!(String::from_utf8_lossy(&got.body).contains("RIFF....WAVE"), "the form went upstream unchanged");
    // Endpoints without a model: the models list and a file upload.
    let r = send(rig.request(Method::GET, "/v1/models")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    rig.up.push(UpReply::json(200, &json!({"id": "file-1", "object": "file"})));
    let upload = rig
        .request(Method::POST, "/v1/files")
        .header("content-type", "multipart/form-data; boundary=XyZ-b0undary")
        .body(form("XyZ-b0undary", &[("purpose", "batch")]));
    assert_eq!(send(upload).await.status, 200);
    assert_eq!(rig.up.requests().len(), 3);
    let events = rig.events(3).await;
    assert_eq!(events[0].model.as_deref(), Some("allowed-model"), "{events:#?}");

    // Without an allow-list a request without a model is forwarded, as before.
    let open = json!({"provider_models": null});
    expect(admin(&rig.gw, Method::PATCH, &format!("/api/v1/llm-providers/{}", rig.name), Some(open)).await, 200);
    rig.up.push(UpReply::json(200, &json!({"created": 1, "data": []})));
    assert_eq!(rig.post("/images/generations", &json!({"prompt": "a cat"})).await.status, 200);

    // Anthropic's messages name their model in the body too.
    let claude = Rig::on(rig.gw, "anthropic", json!({"provider_models": [{"name": "allowed-model"}]})).await;
    let r =
        claude.post("/v1/messages", &json!({"max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]})).await;
    assert_native(&r, "anthropic", 400, missing);
    assert!(claude.up.requests().is_empty());
}

both_backends!(allow_list_needs_a_named_model);

/// RFC 3339 (UTC, milliseconds) of a system time, for token expiries.
fn chrono_like_rfc3339(t: std::time::SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Upstream failures after the request left the gateway: each answers in the native shape
/// and records exactly one usage event with its class.
async fn upstream_failures(db: TestDb) {
    let gw = match TestGateway::start_with(Some(db), |s| {
        s.upstream_read_timeout = Duration::from_millis(400);
        s.upstream_connect_timeout = Duration::from_secs(2);
    })
    .await
    {
        Ok(g) => g,
        Err(e) => panic!("{e:#}"),
    };
    let rig = Rig::on(gw, "anthropic", json!({})).await;
    let (path, body) = generation("anthropic", "claude-x");

    // 3xx → 502, the redirect is not followed.
    rig.up.push(UpReply::redirect(307, "http://169.254.169.254/steal"));
    let r = rig.post(&path, &body).await;
    assert_native(&r, "anthropic", 502, "redirect");
    // The head never comes → 504.
    rig.up.push(UpReply::stall_headers(200).delayed(Duration::from_secs(5)));
    let r = rig.post(&path, &body).await;
    assert_native(&r, "anthropic", 504, "did not answer in time");
    // An upstream error passes through unchanged.
    let upstream_error = json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}});
    rig.up.push(UpReply::json(529, &upstream_error));
    let r = rig.post(&path, &body).await;
    assert_eq!(r.status, 529);
    assert_eq!(r.json(), upstream_error);

    let events = rig.events(3).await;
    let got: Vec<(RequestStatus, Option<&str>, Option<i64>)> =
        events.iter().map(|e| (e.status, e.error_class.as_deref(), e.http_status)).collect();
    assert_eq!(
        got,
        [
            (RequestStatus::UpstreamError, Some("upstream_redirect"), Some(502)),
            (RequestStatus::Timeout, Some("read_timeout"), Some(504)),
            (RequestStatus::UpstreamError, Some("upstream_5xx"), Some(529)),
        ]
    );

    // Nothing listens → 502, one event.
    rig.point_at_nothing().await;
    let r = rig.post(&path, &body).await;
    assert_native(&r, "anthropic", 502, "could not be reached");
    let events = rig.events(4).await;
    assert_eq!(events[3].status, RequestStatus::ConnectionError);
    assert_eq!(events[3].error_class.as_deref(), Some("connect_error"));
}

/// Authorization passthrough: the client's own `Authorization` goes upstream, the gateway
/// token must be in `X-Tollgate-Token` (else 400 saying so).
async fn passthrough(db: TestDb) {
    let gw = gateway(db).await;
    let token = gw.token("invoker").await.unwrap_or_else(|e| panic!("{e:#}"));
    for (i, kind) in ["anthropic", "openai", "openai_compatible"].into_iter().enumerate() {
        let cfg = format!("{kind}_config");
        let up = FakeUpstream::start(ptype(kind), None).await.unwrap_or_else(|e| panic!("{e:#}"));
        let name = format!("pt-{i}");
        let body = json!({"name": name, "display_name": "PT", "type": kind,
                          cfg.clone(): {"base_url": up.provider_base_url(), "authorization_passthrough": true}});
        expect(admin(&gw, Method::POST, "/api/v1/llm-providers", Some(body)).await, 201);
        let (path, req) = generation(kind, "m");
        let url = gw.url(&format!("/llm/v1/providers/{name}{path}"));

        let r =
            send(gw.client.post(&url).bearer_auth(&token).header("anthropic-version", "2023-06-01").json(&req)).await;
        assert_native(&r, kind, 400, "X-Tollgate-Token");
        let r = send(
            gw.client
                .post(&url)
                .bearer_auth("client-own-upstream-key")
                .header("x-tollgate-token", &token)
                .header("anthropic-version", "2023-06-01")
                .json(&req),
        )
        .await;
        assert_eq!(r.status, 200, "{kind}: {}", r.text());
        let got = up.wait_requests(1, Duration::from_secs(5)).await.unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(got[0].header("authorization"), Some("Bearer client-own-upstream-key"), "{kind}");
        assert!(got[0].header("x-tollgate-token").is_none());
        assert_eq!(usage_events(&gw, i + 1).await.len(), i + 1);
    }
}

/// An unreachable upstream: the proxy's 502 (504 for no answer), the check API and the CLI's
/// `provider check` name the cause and the host — connection refused, DNS failure, TLS error,
/// timeout — and never the URL's path or a credential.
async fn unreachable_upstream_names_cause_and_host(db: TestDb) {
    let gw = match TestGateway::start_with(Some(db), |s| {
        s.upstream_read_timeout = Duration::from_millis(400);
        s.upstream_connect_timeout = Duration::from_secs(2);
    })
    .await
    {
        Ok(g) => g,
        Err(e) => panic!("{e:#}"),
    };
    let rig = Rig::on(gw, "anthropic", json!({})).await;
    let (path, body) = generation("anthropic", "claude-x");
    let port_of =
        |url: &str| url.trim_start_matches("http://").split(['/', ':']).nth(1).unwrap_or_default().to_string();
    let (_reserved, dead) = refusing_port();
    // Accepts connections and never answers (held open until the test ends).
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
    let silent_port = silent.local_addr().map(|a| a.port()).unwrap_or(1);
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = silent.accept().await {
            held.push(sock);
        }
    });
    let fake_port = port_of(&rig.up.provider_base_url());
    let cases = [
        (format!("http://127.0.0.1:{dead}"), 502, "connection refused", format!("127.0.0.1:{dead}")),
        ("http://upstream.invalid".to_string(), 502, "DNS lookup failed", "upstream.invalid".to_string()),
        // The plain-HTTP fake addressed with https://.
        (format!("https://127.0.0.1:{fake_port}"), 502, "TLS handshake failed", format!("127.0.0.1:{fake_port}")),
        (format!("http://127.0.0.1:{silent_port}"), 504, "did not answer in time", format!("127.0.0.1:{silent_port}")),
    ];
    let check_path = format!("/api/v1/llm-providers/{}/check", rig.name);
    for (base, status, cause, host) in cases {
        let patch = json!({"anthropic_config": {"base_url": base}});
        expect(admin(&rig.gw, Method::PATCH, &format!("/api/v1/llm-providers/{}", rig.name), Some(patch)).await, 200);
        let r = rig.post(&path, &body).await;
        assert_native(&r, "anthropic", status, cause);
        assert_native(&r, "anthropic", status, &host);
        assert!(!r.text().contains("/v1/messages"), "the path stays out of the message: {}", r.text());

        // Test Connection: a timeout there is the client's read timeout.
        let check_cause = if status == 504 { "timed out" } else { cause };
        let v = expect(admin(&rig.gw, Method::POST, &check_path, None).await, 200);
        let message = v["message"].as_str().unwrap_or_default();
        assert!(message.contains(check_cause) && message.contains(&host), "{base}: {v}");
        assert!(!message.contains(UPSTREAM_KEY) && !message.contains("/v1/models"), "{v}");
        let gw = &rig.gw;
        let run = tokio::task::block_in_place(|| crate::cli::tg(gw, &["provider", "check", &rig.name]));
        assert_ne!(run.code, 0);
        let shown = format!("{}{}", run.stdout, run.stderr);
        assert!(shown.contains(check_cause) && shown.contains(&host), "{base}: {shown}");
    }
}

both_backends!(upstream_failures, passthrough, unreachable_upstream_names_cause_and_host);

/// `tollgate_proxy_requests_refused_total{source,reason}` as `/metrics` shows it.
async fn refused_metric(gw: &TestGateway, source: &str, reason: &str) -> u64 {
    let metrics = send(gw.client.get(gw.url("/metrics"))).await.text();
    let prefix = format!("tollgate_proxy_requests_refused_total{{source=\"{source}\",reason=\"{reason}\"}} ");
    let line = metrics.lines().find_map(|l| l.strip_prefix(prefix.as_str()));
    line.and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("no {prefix} in {metrics}"))
}

/// One error of each source, each answered and counted as its source says: downstream (a bad
/// gateway token: 401), internal (a provider whose credential secret is gone, or holds a value
/// that cannot be a header: 500 in the native server-error shape, naming the provider and the
/// secret but never its value, counted as `source="internal"`, not as the client's
/// `bad_request`, no usage event, nothing sent upstream), upstream (nothing listening: 502
/// and one usage event).
async fn errors_are_classified_by_source(db: TestDb) {
    let secrets = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let key_file = secrets.path().join("ANTHROPIC_API_KEY");
    std::fs::write(&key_file, format!("{UPSTREAM_KEY}\n")).unwrap_or_else(|e| panic!("{e}"));
    // A newline inside the value: stored and read back as is, never a valid header value.
    std::fs::write(secrets.path().join("OPENAI_API_KEY"), "sk-LEAKCHECK-half\nsk-other-half\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let dir = secrets.path().to_path_buf();
    let gw = TestGateway::start_with(Some(db), move |s| {
        s.secret_backend = tollgate_server::SecretBackendKind::Dir;
        s.secret_dir = Some(dir);
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
    let up = FakeUpstream::start(tollgate_core::ProviderType::Anthropic, Some(UPSTREAM_KEY))
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let base = up.provider_base_url();
    for (kind, name) in [("anthropic", "p-dir"), ("openai", "p-bad-key")] {
        let body = provider_at(kind, name, &base, json!({}));
        expect(admin(&gw, Method::POST, "/api/v1/llm-providers", Some(body)).await, 201);
    }
    let token = gw.token("invoker").await.unwrap_or_else(|e| panic!("{e:#}"));
    let (path, body) = generation("anthropic", "claude-x");
    let url = gw.url(&format!("/llm/v1/providers/p-dir{path}"));

    // Downstream: a bad gateway token.
    let r = send(sdk_auth(gw.client.post(&url), "anthropic", "tg_nope").json(&body)).await;
    assert_native(&r, "anthropic", 401, "gateway token");

    // Internal: the secret the provider references is gone.
    std::fs::remove_file(&key_file).unwrap_or_else(|e| panic!("{e}"));
    let r = send(sdk_auth(gw.client.post(&url), "anthropic", &token).json(&body)).await;
    assert_native(
        &r,
        "anthropic",
        500,
        "provider \"p-dir\" has no usable upstream credential (secret \"ANTHROPIC_API_KEY\")",
    );
    assert_eq!(r.json()["error"]["type"], "api_error", "{}", r.text());

    // Internal: the secret holds a value that cannot be sent.
    let (opath, obody) = generation("openai", "gpt-x");
    let r =
        send(gw.client.post(gw.url(&format!("/llm/v1/providers/p-bad-key{opath}"))).bearer_auth(&token).json(&obody))
            .await;
    assert_native(&r, "openai", 500, "secret \"OPENAI_API_KEY\"");
    assert_eq!(r.json()["error"]["type"], "server_error", "{}", r.text());
    assert!(!r.text().contains("LEAKCHECK"), "{}", r.text());
    assert!(up.requests().is_empty(), "internal faults never reach the upstream");

    // Upstream: the secret is back, nothing listens.
    std::fs::write(&key_file, UPSTREAM_KEY).unwrap_or_else(|e| panic!("{e}"));
    let (_reserved, dead) = refusing_port();
    let patch = json!({"anthropic_config": {"base_url": format!("http://127.0.0.1:{dead}")}});
    expect(admin(&gw, Method::PATCH, "/api/v1/llm-providers/p-dir", Some(patch)).await, 200);
    let r = send(sdk_auth(gw.client.post(&url), "anthropic", &token).json(&body)).await;
    assert_native(&r, "anthropic", 502, "could not be reached");

    // Only the upstream failure has a usage event; each source is counted as itself.
    let events = usage_events(&gw, 1).await;
    assert_eq!(
        (events[0].status, events[0].error_class.as_deref(), events[0].http_status),
        (RequestStatus::ConnectionError, Some("connect_error"), Some(502))
    );
    assert_eq!(refused_metric(&gw, "downstream", "unauthenticated").await, 1);
    assert_eq!(refused_metric(&gw, "internal", "missing_credential").await, 1);
    assert_eq!(refused_metric(&gw, "internal", "invalid_credential").await, 1);
    assert_eq!(refused_metric(&gw, "downstream", "bad_request").await, 0, "a gateway fault is not the client's");
    let metrics = send(gw.client.get(gw.url("/metrics"))).await.text();
    assert!(metrics.contains("tollgate_proxy_upstream_failures_total 1"), "{metrics}");
}

both_backends!(errors_are_classified_by_source);
