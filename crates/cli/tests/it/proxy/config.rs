//! Live configuration on the proxy path (changes apply to the next request, no restart),
//! every place a client may put its gateway token, end-to-end header handling, principal and
//! conversation attribution, and model discovery filtered to the allow-list.

use super::errors::generation;
use super::*;
use crate::both_backends;
use tollgate_core::RequestStatus;

/// Provider edit, disable, delete and token revocation apply to the very next request.
async fn changes_apply_without_restart(db: TestDb) {
    let rig = Rig::new(db, "openai", json!({})).await;
    let (path, body) = generation("openai", "gpt-4o");
    let provider = format!("/api/v1/llm-providers/{}", rig.name);
    assert_eq!(rig.post(&path, &body).await.status, 200);

    // Edit: an allow-list without gpt-4o.
    expect(
        admin(&rig.gw, Method::PATCH, &provider, Some(json!({"provider_models": [{"name": "gpt-4o-mini"}]}))).await,
        200,
    );
    assert_eq!(rig.post(&path, &body).await.status, 404, "model_not_allowed");
    let (_, mini) = generation("openai", "gpt-4o-mini");
    assert_eq!(rig.post(&path, &mini).await.status, 200);
    // Edit: a different upstream key is injected from the next request on.
    secret(&rig.gw, "OPENAI_API_KEY", "sk-rotated").await;
    let r = rig.post(&path, &mini).await;
    assert_eq!(r.status, 401, "the fake refuses the rotated key: {}", r.text());
    assert_eq!(
        rig.up.last_request().and_then(|q| q.header("authorization").map(str::to_string)).as_deref(),
        Some("Bearer sk-rotated")
    );
    secret(&rig.gw, "OPENAI_API_KEY", UPSTREAM_KEY).await;
    // Disable / enable.
    expect(admin(&rig.gw, Method::PATCH, &provider, Some(json!({"enabled": false}))).await, 200);
    assert_eq!(rig.post(&path, &mini).await.status, 403);
    expect(admin(&rig.gw, Method::PATCH, &provider, Some(json!({"enabled": true}))).await, 200);
    assert_eq!(rig.post(&path, &mini).await.status, 200);
    // Revoke the token.
    let (_, tokens) = admin(&rig.gw, Method::GET, "/api/v1/tokens", None).await;
    let id = tokens["tokens"]
        .as_array()
        .or_else(|| tokens["items"].as_array())
        .and_then(|a| a.iter().find(|t| t["role"] == "invoker"))
        .and_then(|t| t["id"].as_str())
        .unwrap_or_else(|| panic!("no invoker token in {tokens}"))
        .to_string();
    expect(admin(&rig.gw, Method::DELETE, &format!("/api/v1/tokens/{id}"), None).await, 200);
    assert_eq!(rig.post(&path, &mini).await.status, 401);
    // Delete the provider (a fresh token, so the 404 is about the provider).
    let token = rig.gw.token("invoker").await.unwrap_or_else(|e| panic!("{e:#}"));
    expect(admin(&rig.gw, Method::DELETE, &provider, None).await, 204);
    let r = send(rig.gw.client.post(rig.url(&path)).bearer_auth(&token).json(&mini)).await;
    assert_eq!(r.status, 404, "{}", r.text());
    // Forwarded: 1 + 1 (mini) + 1 (rotated key, upstream 401) + 1 (re-enabled) = 4 events.
    let events = rig.events(4).await;
    assert_eq!(events[2].status, RequestStatus::UpstreamError);
    assert_eq!(events[2].error_class.as_deref(), Some("upstream_4xx"));
}

/// The gateway token is accepted wherever a native SDK puts its key, and never forwarded.
async fn token_in_every_place(db: TestDb) {
    let rig = Rig::new(db, "google", json!({})).await;
    let (path, body) = generation("google", "gemini-2.5-flash");
    let url = rig.url(&path);
    let c = &rig.gw.client;
    let t = rig.token.as_str();
    let requests = [
        c.post(&url).bearer_auth(t),
        c.post(&url).header("x-api-key", t),
        c.post(&url).header("x-goog-api-key", t),
        c.post(&url).header("x-tollgate-token", t),
        c.post(format!("{url}?key={t}")),
    ];
    let n = requests.len();
    for (i, req) in requests.into_iter().enumerate() {
        let r = send(req.json(&body)).await;
        assert_eq!(r.status, 200, "variant {i}: {}", r.text());
    }
    let got = rig.up.wait_requests(n, Duration::from_secs(5)).await.unwrap_or_else(|e| panic!("{e:#}"));
    for q in &got {
        assert_credential_swapped("google", q, t);
        assert_eq!(q.query_param("key"), None, "the client's ?key= must not reach the upstream");
    }
    assert_eq!(rig.events(n).await.len(), n);
}

/// End-to-end headers are kept (anthropic-version, anthropic-beta, custom), hop-by-hop and
/// gateway headers dropped; the event carries the token's principal and the conversation id.
async fn headers_and_attribution(db: TestDb) {
    let rig = Rig::new(db, "anthropic", json!({})).await;
    let tok = expect(
        admin(
            &rig.gw,
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "agent-tok", "role": "invoker", "user": "dev@example.com", "agent": "support-bot"})),
        )
        .await,
        201,
    );
    let token = tok["token"].as_str().unwrap_or_default();
    let (path, body) = generation("anthropic", "claude-x");
    let r = send(
        rig.gw
            .client
            .post(rig.url(&path))
            .header("x-api-key", token)
            .header("anthropic-version", "2023-06-01")
            .header("anthropic-beta", "prompt-caching-2024-07-31")
            .header("x-custom-trace", "abc")
            .header("x-tollgate-conversation", "conv-42")
            .header("te", "trailers")
            .json(&body),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.headers.get("x-tollgate-request-id").is_some(), "the gateway names its request id");
    let q = rig.up.last_request().unwrap_or_else(|| panic!("no upstream request"));
    assert_eq!(q.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(q.header("anthropic-beta"), Some("prompt-caching-2024-07-31"));
    assert_eq!(q.header("x-custom-trace"), Some("abc"));
    assert_eq!(q.header("te"), None);
    assert_credential_swapped("anthropic", &q, token);
    let e = &rig.events(1).await[0];
    assert_eq!(e.user.as_deref(), Some("dev@example.com"));
    assert_eq!(e.agent.as_deref(), Some("support-bot"));
    assert_eq!(e.token_id.as_deref(), tok["id"].as_str());
    assert_eq!(e.conversation_id.as_deref(), Some("conv-42"));
    let rid = r.headers.get("x-tollgate-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert_eq!(e.id, rid);
}

/// Discovery: the models list is filtered to a non-empty allow-list (and untouched without
/// one); the admin API shows the proxy URL.
async fn discovery(db: TestDb) {
    let gw = gateway(db).await;
    let rig = Rig::on(gw, "openai", json!({"provider_models": [{"name": "gpt-4o"}, {"name": "o3-mini"}]})).await;
    for path in ["/models", "/v1/models"] {
        let r = send(rig.request(Method::GET, path)).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        let ids: Vec<String> = r.json()["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["id"].as_str().map(str::to_string))
            .collect();
        assert_eq!(ids, ["gpt-4o", "o3-mini"], "{path}");
        assert_eq!(r.json()["object"], "list");
    }
    let view = expect(admin(&rig.gw, Method::GET, &format!("/api/v1/llm-providers/{}", rig.name), None).await, 200);
    assert_eq!(view["url"], format!("{}/llm/v1/providers/{}", rig.gw.base_url, rig.name));

    // Google and Anthropic lists are filtered the same way.
    let g = Rig::on(rig.gw, "google", json!({"provider_models": [{"name": "gemini-2.5-pro"}]})).await;
    let r = send(g.request(Method::GET, "/v1beta/models")).await;
    let list = r.json();
    let names: Vec<&str> = list["models"].as_array().into_iter().flatten().filter_map(|m| m["name"].as_str()).collect();
    assert_eq!(names, ["models/gemini-2.5-pro"]);
    let a = Rig::on(g.gw, "anthropic", json!({})).await;
    let r = send(a.request(Method::GET, "/v1/models")).await;
    assert_eq!(r.json(), tollgate_testkit::upstream::anthropic::models(), "no allow-list: the list is untouched");
}

/// Test Connection: pass with latency, the model lookup, a refused key, an unreachable
/// upstream; a reader may not run it; nothing is metered.
async fn connection_check(db: TestDb) {
    let rig = Rig::new(db, "anthropic", json!({})).await;
    let path = format!("/api/v1/llm-providers/{}/check", rig.name);
    let ok = expect(admin(&rig.gw, Method::POST, &path, None).await, 200);
    assert_eq!(ok["ok"], true, "{ok}");
    assert_eq!(ok["upstream_status"], 200);
    assert_eq!(ok["probe"], "GET /v1/models");
    assert!(ok["latency_ms"].as_i64().is_some_and(|l| l >= 0), "{ok}");
    let q = rig.up.last_request().unwrap_or_else(|| panic!("no probe"));
    assert_credential_swapped("anthropic", &q, &rig.gw.admin_token);
    assert_eq!(q.header("anthropic-version"), Some("2023-06-01"));

    let found =
        expect(admin(&rig.gw, Method::POST, &path, Some(json!({"model": "claude-opus-4-1-20250805"}))).await, 200);
    assert_eq!((found["ok"].clone(), found["model_found"].clone()), (json!(true), json!(true)), "{found}");
    let missing = expect(admin(&rig.gw, Method::POST, &path, Some(json!({"model": "claude-nope"}))).await, 200);
    assert_eq!((missing["ok"].clone(), missing["model_found"].clone()), (json!(false), json!(false)), "{missing}");
    assert!(missing["message"].as_str().unwrap_or_default().contains("claude-nope"), "{missing}");
    expect_shape_field(admin(&rig.gw, Method::POST, &path, Some(json!({"modle": "x"}))).await, "modle");
    // JSON null is no body: a check without a model
    expect(admin(&rig.gw, Method::POST, &path, Some(json!(null))).await, 200);

    secret(&rig.gw, "ANTHROPIC_API_KEY", "sk-wrong").await;
    let refused = expect(admin(&rig.gw, Method::POST, &path, None).await, 200);
    assert_eq!((refused["ok"].clone(), refused["upstream_status"].clone()), (json!(false), json!(401)), "{refused}");
    assert!(!refused.to_string().contains("sk-wrong"), "the key must not be echoed: {refused}");

    rig.point_at_nothing().await;
    let down = expect(admin(&rig.gw, Method::POST, &path, None).await, 200);
    assert_eq!(down["ok"], false);
    assert!(down.get("upstream_status").is_none(), "{down}");
    assert!(down["message"].as_str().unwrap_or_default().contains("could not be reached"), "{down}");

    let reader = rig.gw.token("reader").await.unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(call(&rig.gw, Method::POST, &path, Some(&reader), None).await.0, 403);
    expect(admin(&rig.gw, Method::POST, "/api/v1/llm-providers/nope/check", None).await, 404);
    rig.gw.flush_usage().await;
    let events = rig.gw.usage_events().await.unwrap_or_else(|e| panic!("{e:#}"));
    assert!(events.is_empty(), "checks are not metered: {events:?}");
}

/// `HEAD` on the bare proxy URL (Claude Code probes it): 200, no body, for any provider name
/// and with or without a token, so it says nothing about which providers exist; no upstream
/// call and no usage event. Other methods on the bare URL stay a 404.
async fn head_on_the_proxy_base(db: TestDb) {
    let rig = Rig::new(db, "anthropic", json!({})).await;
    let known = rig.gw.url(&format!("/llm/v1/providers/{}", rig.name));
    let unknown = rig.gw.url("/llm/v1/providers/no-such-provider");
    for base in [known.clone(), format!("{known}/"), unknown.clone(), format!("{unknown}/")] {
        for token in [Some(rig.token.as_str()), None] {
            let mut req = rig.gw.client.head(&base);
            if let Some(t) = token {
                req = sdk_auth(req, "anthropic", t);
            }
            let r = send(req).await;
            assert_eq!(r.status, 200, "HEAD {base} (token: {}): {:?}", token.is_some(), r.headers);
            assert!(r.body.is_empty());
        }
    }
    let r = send(rig.request(Method::GET, "")).await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(rig.up.requests().is_empty(), "the probe never reaches the upstream: {:?}", rig.up.requests());
    rig.events(0).await;
    // A HEAD on a real upstream path is still proxied.
    send(rig.request(Method::HEAD, "/v1/models")).await;
    assert_eq!(
        rig.up.requests().iter().map(|q| (q.method.as_str(), q.path.as_str())).collect::<Vec<_>>(),
        [("HEAD", "/v1/models")]
    );
}

both_backends!(
    changes_apply_without_restart,
    token_in_every_place,
    headers_and_attribution,
    discovery,
    connection_check,
    head_on_the_proxy_base
);
