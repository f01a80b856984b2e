//! Fault injection against the proxy's and the admin API's security rules (issue 15): path
//! traversal out of the base URL, the upstream address policy, request loops through the
//! gateway, secrets bound to hosts, and the one 401 shape for known and unknown providers.
//! Every attempt must be refused before an upstream call, and the fake "attacker" upstream
//! must receive no credential.

use super::errors::assert_native;
use super::*;
use crate::both_backends;

/// Sends `GET <path>` (raw: not normalised by any URL parser) to the gateway with `headers`
/// and returns the status and body.
async fn raw_get(gw: &TestGateway, path: &str, headers: &[(&str, &str)]) -> Reply {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = gw.base_url.trim_start_matches("http://").to_string();
    let mut head = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap_or_else(|e| panic!("connect: {e}"));
    sock.write_all(head.as_bytes()).await.unwrap_or_else(|e| panic!("write: {e}"));
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), sock.read_to_end(&mut raw))
        .await
        .unwrap_or_else(|_| panic!("no answer"))
        .unwrap_or_else(|e| panic!("read: {e}"));
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| panic!("no head"));
    let head = String::from_utf8_lossy(&raw[..end]).to_string();
    let status: u16 = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{head}"));
    let mut out = HeaderMap::new();
    for line in head.lines().skip(1) {
        if let Some((k, v)) = line.split_once(':')
            && let (Ok(k), Ok(v)) = (reqwest::header::HeaderName::from_bytes(k.trim().as_bytes()), v.trim().parse())
        {
            out.insert(k, v);
        }
    }
    let mut body = raw[end + 4..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        let mut plain = Vec::new();
        let mut p = 0;
        while let Some(eol) = body[p..].windows(2).position(|w| w == b"\r\n") {
            let size = usize::from_str_radix(String::from_utf8_lossy(&body[p..p + eol]).trim(), 16).unwrap_or(0);
            if size == 0 {
                break;
            }
            plain.extend_from_slice(&body[p + eol + 2..p + eol + 2 + size]);
            p += eol + 2 + size + 2;
        }
        body = plain;
    }
    Reply { status, headers: out, body: Bytes::from(body) }
}

/// The headers `kind`'s SDK sends its key in.
fn auth_headers(kind: &str, token: &str) -> Vec<(&'static str, String)> {
    match kind {
        "anthropic" => vec![("x-api-key", token.to_string()), ("anthropic-version", "2023-06-01".into())],
        "google" => vec![("x-goog-api-key", token.to_string())],
        _ => vec![("authorization", format!("Bearer {token}"))],
    }
}

/// Dot segments in every spelling are refused with 400 in the native shape, before any upstream
/// call, for every provider type; the stored key never travels.
async fn path_traversal(db: TestDb) {
    let mut db = Some(db);
    for kind in ["openai", "anthropic", "google", "bedrock"] {
        let gw = match db.take() {
            Some(db) => gateway(db).await,
            None => TestGateway::start().await.unwrap_or_else(|e| panic!("{e:#}")),
        };
        let rig = Rig::on(gw, kind, json!({})).await;
        for attack in [
            "/%2e%2e/%2e%2e/admin/secret",
            "/%2E%2E/admin/secret",
            "/v1/%2e%2e%2fadmin",
            "/x%2f..%2f..%2fadmin",
            "/..%5c..%5cadmin",
            "/./models",
        ] {
            let path = format!("/llm/v1/providers/{}{attack}", rig.name);
            let h = auth_headers(kind, &rig.token);
            let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let r = raw_get(&rig.gw, &path, &h).await;
            if kind == "bedrock" {
                assert_eq!(r.status, 400, "{attack}: {}", r.text());
                assert!(r.text().contains("would leave the provider's base URL"), "{}", r.text());
            } else {
                assert_native(&r, kind, 400, "would leave the provider's base URL");
            }
        }
        assert!(rig.up.requests().is_empty(), "{kind}: the upstream was called: {:?}", rig.up.requests());
    }
}

both_backends!(path_traversal);

/// A gateway on `db` whose settings `tweak` adjusts.
async fn gateway_with(db: TestDb, tweak: impl FnOnce(&mut tollgate_server::Settings)) -> TestGateway {
    TestGateway::start_with(Some(db), tweak).await.unwrap_or_else(|e| panic!("gateway did not start: {e:#}"))
}

/// Link-local, cloud metadata and the gateway's own address are refused as base URLs (create
/// and update) with an error naming `<type>_config.base_url` and the rule; `--upstream-allow`
/// lets an operator allow one; loopback and private ranges stay allowed.
async fn address_policy_at_config_time(db: TestDb) {
    let gw = gateway(db).await;
    secret(&gw, "OPENAI_API_KEY", UPSTREAM_KEY).await;
    let own = gw.base_url.clone();
    let own_port = own.rsplit(':').next().unwrap_or_default().to_string();
    for (base, rule) in [
        ("http://169.254.169.254/latest/meta-data".to_string(), "link-local"),
        ("http://[fe80::1]:80/v1".to_string(), "link-local"),
        ("http://metadata.google.internal/computeMetadata/v1".to_string(), "deny list"),
        ("http://100.100.100.200/v1".to_string(), "metadata"),
        (format!("{own}/llm/v1/providers/self"), "own address"),
        (format!("http://localhost:{own_port}/v1"), "own address"),
    ] {
        for kind in ["openai", "anthropic", "openai_compatible"] {
            let body = provider_at(kind, "attacker", &base, json!({}));
            let e = expect_field(
                admin(&gw, Method::POST, "/api/v1/llm-providers", Some(body)).await,
                &format!("{kind}_config.base_url"),
            );
            assert!(e["error"]["message"].as_str().unwrap_or_default().contains(rule), "{base}: {e}");
        }
        let body = provider_at("bedrock", "attacker", &base, json!({}));
        secret(&gw, "AWS_ACCESS_KEY_ID", AWS_KEY.0).await;
        secret(&gw, "AWS_SECRET_ACCESS_KEY", AWS_KEY.1).await;
        expect_field(admin(&gw, Method::POST, "/api/v1/llm-providers", Some(body)).await, "bedrock_config.base_url");
    }
    // Loopback (another port) and private ranges are fine; so is an update to them, not to metadata.
    let ok = provider_at("openai", "local", "http://127.0.0.1:11434/v1", json!({}));
    expect(admin(&gw, Method::POST, "/api/v1/llm-providers", Some(ok)).await, 201);
    let patch = json!({"openai_config": {"base_url": "http://169.254.169.254/v1"}});
    expect_field(admin(&gw, Method::PATCH, "/api/v1/llm-providers/local", Some(patch)).await, "openai_config.base_url");
    let patch = json!({"openai_config": {"base_url": "http://10.1.2.3:8000/v1"}});
    expect(admin(&gw, Method::PATCH, "/api/v1/llm-providers/local", Some(patch)).await, 200);
    drop(gw);

    // An operator may allow a refused address.
    let gw = TestGateway::start_with(None, |s| s.upstream_allow = vec!["169.254.169.254".into()])
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    secret(&gw, "OPENAI_API_KEY", UPSTREAM_KEY).await;
    let body = provider_at("openai", "imds-ok", "http://169.254.169.254/v1", json!({}));
    expect(admin(&gw, Method::POST, "/api/v1/llm-providers", Some(body)).await, 201);
}

/// A hostname that resolves to a refused address (DNS rebinding: accepted at save time as a
/// name) is refused by the HTTP clients' resolver at request time: the proxy answers without
/// reaching it, Test Connection reports why, and the upstream sees nothing.
async fn address_policy_at_request_time(db: TestDb) {
    let gw = gateway_with(db, |s| s.upstream_deny = vec!["127.0.0.0/8".into(), "::1".into()]).await;
    let up = FakeUpstream::start(tollgate_core::ProviderType::Openai, Some(UPSTREAM_KEY))
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    secret(&gw, "OPENAI_API_KEY", UPSTREAM_KEY).await;
    let port = up.base_url.rsplit(':').next().unwrap_or_default().to_string();
    // The literal address is refused at save time…
    let literal = provider_at("openai", "lit", &up.provider_base_url(), json!({}));
    expect_field(admin(&gw, Method::POST, "/api/v1/llm-providers", Some(literal)).await, "openai_config.base_url");
    // …a name is saved, and refused once resolved.
    let body = provider_at("openai", "named", &format!("http://localhost:{port}/v1"), json!({}));
    expect(admin(&gw, Method::POST, "/api/v1/llm-providers", Some(body)).await, 201);
    let token = gw.token("invoker").await.unwrap_or_else(|e| panic!("{e:#}"));
    let r = send(
        gw.client
            .post(gw.url("/llm/v1/providers/named/chat/completions"))
            .bearer_auth(&token)
            .json(&json!({"model": "gpt-4o-mini", "messages": []})),
    )
    .await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.text().contains("refused address"), "{}", r.text());
    let check = expect(admin(&gw, Method::POST, "/api/v1/llm-providers/named/check", None).await, 200);
    assert_eq!(check["ok"], false, "{check}");
    assert!(check["message"].as_str().unwrap_or_default().contains("refused address"), "{check}");
    assert!(up.requests().is_empty(), "the refused upstream was called: {:?}", up.requests());
}

/// Every forward carries `x-tollgate-hop` with this gateway's id; a request that comes back
/// with it (or through too many gateways) is refused with 400 before any upstream call; a
/// provider pointing at the gateway itself (allowed by an operator) ends after one hop.
async fn loop_detection(db: TestDb) {
    let rig = Rig::new(db, "openai", json!({})).await;
    let (path, body) = super::errors::generation("openai", "gpt-4o-mini");
    assert_eq!(rig.post(&path, &body).await.status, 200);
    let hop = rig.up.last_request().and_then(|r| r.header("x-tollgate-hop").map(str::to_string));
    let hop = hop.unwrap_or_else(|| panic!("no x-tollgate-hop on the forward"));
    assert!(!hop.is_empty() && !hop.contains(','), "{hop}");
    let before = rig.up.requests().len();
    let r = send(rig.request(Method::POST, &path).header("x-tollgate-hop", format!("other, {hop}")).json(&body)).await;
    assert_native(&r, "openai", 400, "request loop detected");
    let many = ["x"; 8].join(", ");
    let r = send(rig.request(Method::POST, &path).header("x-tollgate-hop", many).json(&body)).await;
    assert_native(&r, "openai", 400, "request loop detected");
    // A foreign gateway's hop passes, and ours is appended.
    assert_eq!(send(rig.request(Method::POST, &path).header("x-tollgate-hop", "aaaa").json(&body)).await.status, 200);
    assert_eq!(rig.up.requests().len(), before + 1);
    assert_eq!(
        rig.up.last_request().and_then(|r| r.header("x-tollgate-hop").map(str::to_string)),
        Some(format!("aaaa, {hop}"))
    );

    // A real loop: a provider whose base URL is the gateway's own proxy URL, its key a gateway
    // token (allowed by the operator on purpose): one forward, then the loop refusal.
    let gw = TestGateway::start_with(None, |s| s.upstream_allow = vec!["127.0.0.1".into()])
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let invoker = gw.token("invoker").await.unwrap_or_else(|e| panic!("{e:#}"));
    secret(&gw, "LOOP_KEY", &invoker).await;
    let body_p = json!({"name": "loop", "display_name": "Loop", "type": "openai_compatible",
        "openai_compatible_config": {"base_url": gw.url("/llm/v1/providers/loop"), "api_key_ref": "LOOP_KEY"}});
    expect(admin(&gw, Method::POST, "/api/v1/llm-providers", Some(body_p)).await, 201);
    let r =
        send(gw.client.post(gw.url("/llm/v1/providers/loop/chat/completions")).bearer_auth(&invoker).json(&body)).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("request loop detected"), "{}", r.text());
    gw.flush_usage().await;
    let events = gw.usage_events().await.unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(events.len(), 1, "one forward (the outer request), the inner one refused: {events:?}");
}

both_backends!(address_policy_at_config_time, address_policy_at_request_time, loop_detection);

/// Without a valid token, a known provider (of every type, passthrough or not) and an unknown
/// name get byte-identical answers: status, body and headers that matter, so a probe learns
/// nothing about which names exist. The body reads as each SDK's own 401.
async fn same_401_for_known_and_unknown(db: TestDb) {
    let gw = gateway(db).await;
    all_secrets(&gw).await;
    for kind in ["openai", "anthropic", "google", "bedrock", "openai_compatible"] {
        let mut body = provider_body(kind, &format!("p-{}", kind.replace('_', "-")));
        if kind == "openai_compatible" {
            body["openai_compatible_config"]["authorization_passthrough"] = json!(true);
        }
        expect(admin(&gw, Method::POST, "/api/v1/llm-providers", Some(body)).await, 201);
    }
    let probe = |name: &str, auth: Option<(&'static str, &'static str)>| {
        let mut req = gw.client.post(gw.url(&format!("/llm/v1/providers/{name}/v1/chat/completions"))).json(&json!({}));
        if let Some((k, v)) = auth {
            req = req.header(k, v);
        }
        send(req)
    };
    let shape = |r: &Reply| {
        let h = |n: &str| r.headers.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
        (r.status, r.text(), h("content-type"), h("x-amzn-errortype"))
    };
    for auth in [
        None,
        Some(("authorization", "Bearer sk-not-a-gateway-token")),
        Some(("x-api-key", "tg_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")),
        Some(("x-goog-api-key", "nope")),
    ] {
        let unknown = shape(&probe("no-such-provider", auth).await);
        assert_eq!(unknown.0, 401, "{unknown:?}");
        for name in ["p-openai", "p-anthropic", "p-google", "p-bedrock", "p-openai-compatible"] {
            assert_eq!(shape(&probe(name, auth).await), unknown, "{name} with {auth:?}");
        }
        // Every SDK's reading of it.
        for kind in ["openai", "anthropic", "google"] {
            let r = probe("p-openai", auth).await;
            assert_native(&r, kind, 401, "gateway token");
        }
        assert_eq!(unknown.3.as_deref(), Some("UnrecognizedClientException"));
    }
}

both_backends!(same_401_for_known_and_unknown);

/// A browser signed in to the console sends its session cookie to every URL of the gateway's
/// origin, proxy URLs included: no cookie goes upstream, and no upstream sets one on the
/// gateway's origin (a `tollgate_session` from an upstream would be session fixation).
async fn cookies_stay_at_the_gateway(db: TestDb) {
    let rig = Rig::new(db, "openai", json!({})).await;
    let mut console = crate::console::Console::new(&rig.gw);
    console.sign_in(&rig.gw.admin_token).await;
    let session = console.client.get(rig.gw.url("/providers")).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(session.status(), 200, "signed in");
    rig.up.push(tollgate_testkit::upstream::Reply {
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("set-cookie".into(), "tollgate_session=fixed-by-upstream; Path=/".into()),
            ("set-cookie".into(), "__cf_bm=upstream; Path=/".into()),
        ],
        ..tollgate_testkit::upstream::Reply::json(200, &json!({"object": "list", "data": []}))
    });
    let r = console
        .client
        .get(rig.gw.url(&format!("/llm/v1/providers/{}/models", rig.name)))
        .header("cookie", "tollgate_session=v1.a-session-id; other=1")
        .bearer_auth(&rig.token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("set-cookie").is_none(), "an upstream cookie reached the client: {:?}", r.headers());
    let got = rig.up.last_request().unwrap_or_else(|| panic!("nothing reached the upstream"));
    assert!(got.header("cookie").is_none(), "cookies went upstream: {:?}", got.headers);
    assert_credential_swapped("openai", &got, &rig.token);
    // The console's own session still works (the upstream's cookie did not replace it).
    let again = console.get("/providers").await;
    assert_eq!(again.status, 200, "{}", again.body);
}

both_backends!(cookies_stay_at_the_gateway);

/// A token scoped to some providers acts within them whatever its role: an admin scoped to
/// team A cannot mint a wider token, revoke team B's, rebind team B's key, point team A's
/// provider at it, nor read team B's budgets and rate limits; within its scope it may.
async fn scoped_tokens_stay_in_their_scope(db: TestDb) {
    let rig = Rig::new(db, "openai", json!({})).await; // p-openai: team B's, with OPENAI_API_KEY
    let gw = &rig.gw;
    let catcher =
        FakeUpstream::start(tollgate_core::ProviderType::Openai, None).await.unwrap_or_else(|e| panic!("{e:#}"));
    secret(gw, "TEAM_A_KEY", "sk-team-a-own-77").await;
    let mut team_a = provider_at("openai", "team-a", &catcher.provider_base_url(), json!({}));
    team_a["openai_config"]["api_key_ref"] = json!("TEAM_A_KEY");
    expect(admin(gw, Method::POST, "/api/v1/llm-providers", Some(team_a)).await, 201);
    let mint = |body: Value| async move {
        let v = expect(admin(gw, Method::POST, "/api/v1/tokens", Some(body)).await, 201);
        (v["token"].as_str().unwrap_or_default().to_string(), v["id"].as_str().unwrap_or_default().to_string())
    };
    let (a_admin, _) = mint(json!({"name": "a-admin", "role": "admin", "providers": ["team-a"]})).await;
    let (_, b_id) = mint(json!({"name": "b-bot", "role": "invoker", "providers": [rig.name.clone()]})).await;
    let as_a = |method: Method, path: String, body: Option<Value>| {
        let a_admin = a_admin.clone();
        async move { call(gw, method, &path, Some(&a_admin), body).await }
    };
    let denied = |got: (u16, Value), needle: &str| {
        assert_eq!(got.0, 403, "{}", got.1);
        let msg = got.1["error"]["message"].as_str().unwrap_or_default().to_string();
        assert!(msg.contains(needle), "{msg:?} lacks {needle:?}");
    };

    // Tokens: none wider than its scope, none revoked outside it.
    let t = "/api/v1/tokens".to_string();
    denied(as_a(Method::POST, t.clone(), Some(json!({"name": "esc", "role": "admin"}))).await, "every provider");
    let other = json!({"name": "esc2", "role": "writer", "providers": [rig.name.clone()]});
    denied(as_a(Method::POST, t.clone(), Some(other)).await, &rig.name);
    let (s, _) =
        as_a(Method::POST, t, Some(json!({"name": "a-bot", "role": "invoker", "providers": ["team-a"]}))).await;
    assert_eq!(s, 201, "within its scope it may");
    denied(as_a(Method::DELETE, format!("/api/v1/tokens/{b_id}"), None).await, &rig.name);
    // …and lists and reads only its own tokens.
    let (_, listed) = as_a(Method::GET, "/api/v1/tokens".into(), None).await;
    let names: Vec<&str> =
        listed["tokens"].as_array().into_iter().flatten().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(names, ["a-admin", "a-bot"], "{listed}");
    assert_eq!(as_a(Method::GET, format!("/api/v1/tokens/{b_id}"), None).await.0, 404);
    // Team B's key: not rebound, not referenced from team A's provider.
    let rebind = json!({"bound_hosts": [host_port(&rig.up), host_port(&catcher)]});
    denied(as_a(Method::PATCH, "/api/v1/secrets/OPENAI_API_KEY".into(), Some(rebind)).await, &rig.name);
    let swap = json!({"openai_config": {"api_key_ref": "OPENAI_API_KEY"}});
    denied(as_a(Method::PATCH, "/api/v1/llm-providers/team-a".into(), Some(swap)).await, &rig.name);
    let own = json!({"bound_hosts": [host_port(&catcher)]});
    let (s, b) = as_a(Method::PATCH, "/api/v1/secrets/TEAM_A_KEY".into(), Some(own)).await;
    assert_eq!(s, 200, "its own secret: {b}");
    let invoker = gw.token("invoker").await.unwrap_or_else(|e| panic!("{e:#}"));
    let (path, req) = super::errors::generation("openai", "gpt-4o-mini");
    let r =
        send(gw.client.post(gw.url(&format!("/llm/v1/providers/team-a{path}"))).bearer_auth(&invoker).json(&req)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(!leaked(&catcher, UPSTREAM_KEY), "team B's key reached team A's upstream");

    // Budgets and rate limits: only those scoped to its providers.
    for (kind, body) in [
        (
            "budgets",
            json!({"name": "b-spend", "pooling_mode": "shared", "scope": {"providers": [rig.name.clone()]}, "limit_microcents": 100}),
        ),
        ("budgets", json!({"name": "all-agents", "limit_microcents": 100})),
        (
            "budgets",
            json!({"name": "a-spend", "pooling_mode": "shared", "scope": {"providers": ["team-a"]}, "limit_microcents": 100}),
        ),
        ("rate-limits", json!({"name": "b-rl", "scope": {"provider": rig.name.clone()}, "requests_per_minute": 60})),
        ("rate-limits", json!({"name": "a-rl", "scope": {"provider": "team-a"}, "requests_per_minute": 60})),
    ] {
        expect(admin(gw, Method::POST, &format!("/api/v1/{kind}"), Some(body)).await, 201);
    }
    let (_, budgets) = as_a(Method::GET, "/api/v1/budgets".into(), None).await;
    let names: Vec<&str> =
        budgets["budgets"].as_array().into_iter().flatten().filter_map(|b| b["name"].as_str()).collect();
    assert_eq!(names, ["a-spend"], "{budgets}");
    let (_, limits) = as_a(Method::GET, "/api/v1/rate-limits".into(), None).await;
    let names: Vec<&str> =
        limits["rate_limits"].as_array().into_iter().flatten().filter_map(|b| b["name"].as_str()).collect();
    assert_eq!(names, ["a-rl"], "{limits}");
    assert_eq!(as_a(Method::GET, "/api/v1/budgets/b-spend".into(), None).await.0, 404);
    assert_eq!(as_a(Method::GET, "/api/v1/rate-limits/b-rl".into(), None).await.0, 404);
    let (_, all) = admin(gw, Method::GET, "/api/v1/budgets", None).await;
    assert_eq!(all["budgets"].as_array().map(Vec::len), Some(3), "an unscoped token sees every budget");
}

both_backends!(scoped_tokens_stay_in_their_scope);

/// A writer scoped to its own provider cannot overwrite a secret that a provider outside its
/// scope uses (it would redirect what another team's provider sends): 403 naming the
/// provider, the value unchanged (the other team's requests still carry the original key).
/// Secrets only its own providers use, and new ones, it may write.
async fn scoped_writer_cannot_overwrite_other_teams_secret(db: TestDb) {
    let rig = Rig::new(db, "openai", json!({})).await;
    let (s, b) = rig
        .gw
        .admin(
            Method::POST,
            "/api/v1/tokens",
            Some(&json!({"name": "team-b", "role": "writer", "providers": ["team-b"]})),
        )
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(s.as_u16(), 201, "{b}");
    let scoped = b["token"].as_str().unwrap_or_default().to_string();
    let put = |name: &'static str| {
        let (gw, scoped) = (&rig.gw, scoped.clone());
        async move {
            let path = format!("/api/v1/secrets/{name}");
            call(gw, Method::PUT, &path, Some(&scoped), Some(json!({"value": "sk-attacker"}))).await
        }
    };
    let (status, body) = put("OPENAI_API_KEY").await;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"]["message"].as_str().unwrap_or_default().contains(&rig.name), "{body}");
    expect(put("TEAM_B_KEY").await, 201);
    let (path, req) = super::errors::generation("openai", "gpt-4o-mini");
    assert_eq!(rig.post(&path, &req).await.status, 200, "the original key still works");
}

both_backends!(scoped_writer_cannot_overwrite_other_teams_secret);

/// `host:port` of a fake upstream, as a secret's binding writes it.
fn host_port(up: &FakeUpstream) -> String {
    up.base_url.trim_start_matches("http://").trim_end_matches('/').to_string()
}

/// Whether any request `up` received carries `needle` in a header, query or body.
fn leaked(up: &FakeUpstream, needle: &str) -> bool {
    up.requests().iter().any(|r| {
        r.headers.values().any(|v| v.to_str().unwrap_or_default().contains(needle))
            || r.query.as_deref().unwrap_or_default().contains(needle)
            || String::from_utf8_lossy(&r.body).contains(needle)
    })
}

/// Secrets are bound to hosts (issue 15 item 3): a "thief" writer cannot get another team's
/// stored key sent to an upstream it chose by any admin API sequence — not by creating a
/// provider there, nor by moving an existing provider or its own provider's ref, nor by
/// rebinding without the value; Test Connection and proxy calls after the refused changes
/// reach only the bound host. Re-entering the value may rebind (the writer knows it then);
/// an admin may rebind; and the proxy checks the binding again at injection time.
async fn secrets_are_bound_to_hosts(db: TestDb) {
    const OTHER: &str = "sk-other-team-LEAKCHECK-1b9f";
    const THIEFS: &str = "sk-thief-own-value-77";
    let gw = gateway(db).await;
    let victim =
        FakeUpstream::start(tollgate_core::ProviderType::Openai, Some(OTHER)).await.unwrap_or_else(|e| panic!("{e:#}"));
    let attacker =
        FakeUpstream::start(tollgate_core::ProviderType::Openai, None).await.unwrap_or_else(|e| panic!("{e:#}"));
    secret(&gw, "OTHER_TEAM_KEY", OTHER).await;
    let mut team_a = provider_at("openai", "team-a", &victim.provider_base_url(), json!({}));
    team_a["openai_config"]["api_key_ref"] = json!("OTHER_TEAM_KEY");
    expect(admin(&gw, Method::POST, "/api/v1/llm-providers", Some(team_a)).await, 201);
    // First use bound it to the victim's host; GET shows the binding, never the value.
    let meta = expect(admin(&gw, Method::GET, "/api/v1/secrets/OTHER_TEAM_KEY", None).await, 200);
    assert_eq!(meta["bound_hosts"], json!([host_port(&victim)]), "{meta}");
    assert!(!meta.to_string().contains(OTHER), "{meta}");

    let (s, b) = gw
        .admin(Method::POST, "/api/v1/tokens", Some(&json!({"name": "thief", "role": "writer"})))
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(s.as_u16(), 201, "{b}");
    let thief = b["token"].as_str().unwrap_or_default().to_string();
    let as_thief = |method: Method, path: &'static str, body: Option<Value>| {
        let (gw, thief) = (&gw, thief.clone());
        async move { call(gw, method, path, Some(&thief), body).await }
    };
    let refused = |got: (u16, Value)| {
        let e = expect_field(got, "openai_config.api_key_ref");
        let msg = e["error"]["message"].as_str().unwrap_or_default().to_string();
        assert!(msg.contains("is bound to") && msg.contains("OTHER_TEAM_KEY"), "{e}");
    };

    // (1) A new provider at the attacker with the other team's key: refused.
    let mut stolen = provider_at("openai", "stolen", &attacker.provider_base_url(), json!({}));
    stolen["openai_config"]["api_key_ref"] = json!("OTHER_TEAM_KEY");
    refused(as_thief(Method::POST, "/api/v1/llm-providers", Some(stolen)).await);
    // (2) Moving the other team's provider to the attacker: refused.
    let moved = json!({"openai_config": {"base_url": attacker.provider_base_url()}});
    refused(as_thief(Method::PATCH, "/api/v1/llm-providers/team-a", Some(moved)).await);
    // …and pointing the thief's own provider (at the attacker) at the other team's key.
    expect(as_thief(Method::PUT, "/api/v1/secrets/THIEF_KEY", Some(json!({"value": THIEFS}))).await, 201);
    let mut mine = provider_at("openai", "mine", &attacker.provider_base_url(), json!({}));
    mine["openai_config"]["api_key_ref"] = json!("THIEF_KEY");
    expect(as_thief(Method::POST, "/api/v1/llm-providers", Some(mine)).await, 201);
    let swap = json!({"openai_config": {"api_key_ref": "OTHER_TEAM_KEY"}});
    refused(as_thief(Method::PATCH, "/api/v1/llm-providers/mine", Some(swap.clone())).await);
    // (6) Rebinding without the value is admin-only.
    let rebind = json!({"bound_hosts": [host_port(&attacker)]});
    let (s, b) = as_thief(Method::PATCH, "/api/v1/secrets/OTHER_TEAM_KEY", Some(rebind.clone())).await;
    assert_eq!(s, 403, "{b}");

    // (3) Test Connection and proxy calls after the refused changes: only the victim is reached.
    for p in ["team-a", "mine"] {
        let path = format!("/api/v1/llm-providers/{p}/check");
        let (s, b) = call(&gw, Method::POST, &path, Some(&thief), None).await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["ok"], true, "{p}: {b}");
    }
    let invoker = gw.token("invoker").await.unwrap_or_else(|e| panic!("{e:#}"));
    let (path, req) = super::errors::generation("openai", "gpt-4o-mini");
    for p in ["team-a", "mine"] {
        let r = send(gw.client.post(gw.url(&format!("/llm/v1/providers/{p}{path}"))).bearer_auth(&invoker).json(&req))
            .await;
        assert_eq!(r.status, 200, "{p}: {}", r.text());
    }
    assert!(!leaked(&attacker, OTHER), "the attacker received the other team's key");
    assert!(leaked(&attacker, THIEFS), "the thief's own provider works with its own key");
    assert!(leaked(&victim, OTHER));

    // Defence in depth: an admin unbinds the victim's host (no provider changes); the proxy
    // and Test Connection then refuse to inject — 500 credential_not_bound, nothing sent.
    let before = victim.requests().len();
    let elsewhere = json!({"bound_hosts": ["api.example.com"]});
    let meta = expect(admin(&gw, Method::PATCH, "/api/v1/secrets/OTHER_TEAM_KEY", Some(elsewhere)).await, 200);
    assert_eq!(meta["bound_hosts"], json!(["api.example.com"]), "{meta}");
    let r =
        send(gw.client.post(gw.url(&format!("/llm/v1/providers/team-a{path}"))).bearer_auth(&invoker).json(&req)).await;
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(r.text().contains("not bound to host"), "{}", r.text());
    assert!(!r.text().contains(OTHER), "{}", r.text());
    let b = expect(admin(&gw, Method::POST, "/api/v1/llm-providers/team-a/check", None).await, 200);
    assert_eq!(b["ok"], false, "{b}");
    assert!(b["message"].as_str().unwrap_or_default().contains("not bound to host"), "{b}");
    assert_eq!(victim.requests().len(), before, "a request went to an unbound host");

    // (7) A save refused for another reason binds nothing, even an admin's: a create whose
    // name is taken (409) and an update of a provider that does not exist (404), both at the
    // attacker with the victim's key.
    let mut taken = provider_at("openai", "team-a", &attacker.provider_base_url(), json!({}));
    taken["openai_config"]["api_key_ref"] = json!("OTHER_TEAM_KEY");
    expect(admin(&gw, Method::POST, "/api/v1/llm-providers", Some(taken)).await, 409);
    let ghost = json!({"openai_config": {"base_url": attacker.provider_base_url(), "api_key_ref": "OTHER_TEAM_KEY"}});
    expect(admin(&gw, Method::PATCH, "/api/v1/llm-providers/ghost", Some(ghost)).await, 404);
    let meta = expect(admin(&gw, Method::GET, "/api/v1/secrets/OTHER_TEAM_KEY", None).await, 200);
    assert_eq!(meta["bound_hosts"], json!(["api.example.com"]), "a refused save bound a host: {meta}");

    // (5) An admin rebinds: PATCH bound_hosts, or saving a provider at a new host adds it.
    let back = json!({"bound_hosts": [host_port(&victim)]});
    expect(admin(&gw, Method::PATCH, "/api/v1/secrets/OTHER_TEAM_KEY", Some(back)).await, 200);
    let r =
        send(gw.client.post(gw.url(&format!("/llm/v1/providers/team-a{path}"))).bearer_auth(&invoker).json(&req)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let second =
        FakeUpstream::start(tollgate_core::ProviderType::Openai, Some(OTHER)).await.unwrap_or_else(|e| panic!("{e:#}"));
    let mut team_a2 = provider_at("openai", "team-a2", &second.provider_base_url(), json!({}));
    team_a2["openai_config"]["api_key_ref"] = json!("OTHER_TEAM_KEY");
    expect(admin(&gw, Method::POST, "/api/v1/llm-providers", Some(team_a2)).await, 201);
    let meta = expect(admin(&gw, Method::GET, "/api/v1/secrets/OTHER_TEAM_KEY", None).await, 200);
    let mut want = vec![host_port(&victim), host_port(&second)];
    want.sort();
    assert_eq!(meta["bound_hosts"], json!(want), "{meta}");
    // Malformed hosts are refused naming the entry.
    let bad = json!({"bound_hosts": ["http://x/y"]});
    expect_field(admin(&gw, Method::PATCH, "/api/v1/secrets/OTHER_TEAM_KEY", Some(bad)).await, "bound_hosts[0]");

    // (4) Re-entering the value may rebind (whoever writes the value knows it): the thief's
    // provider may then use it, and it carries the thief's value, never the original.
    let reenter = json!({"value": THIEFS, "bound_hosts": [host_port(&attacker)]});
    let meta = expect(as_thief(Method::PUT, "/api/v1/secrets/OTHER_TEAM_KEY", Some(reenter)).await, 200);
    assert_eq!(meta["bound_hosts"], json!([host_port(&attacker)]), "{meta}");
    expect(as_thief(Method::PATCH, "/api/v1/llm-providers/mine", Some(swap)).await, 200);
    let r =
        send(gw.client.post(gw.url(&format!("/llm/v1/providers/mine{path}"))).bearer_auth(&invoker).json(&req)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(!leaked(&attacker, OTHER), "the attacker received the original key");
}

both_backends!(secrets_are_bound_to_hosts);

/// A secret that providers reference but that has no binding (saved before bindings existed;
/// here: unbound by an admin) is refused at injection time, and bound at the next start to
/// the hosts of the providers that use it.
async fn unbound_secrets_are_bound_at_start(db: TestDb) {
    let url = db.url().to_string();
    let rig = Rig::new(db, "openai", json!({})).await;
    let (path, req) = super::errors::generation("openai", "gpt-4o-mini");
    let unbind = json!({"bound_hosts": []});
    let meta = expect(admin(&rig.gw, Method::PATCH, "/api/v1/secrets/OPENAI_API_KEY", Some(unbind)).await, 200);
    assert_eq!(meta["bound_hosts"], json!([]), "{meta}");
    let r = rig.post(&path, &req).await;
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(r.text().contains("not bound to any host"), "{}", r.text());
    assert!(rig.up.requests().is_empty(), "{:?}", rig.up.requests());
    // A replica starting on the same database binds it to the provider's host.
    let key = std::fs::read_to_string(rig.gw.data_dir.join("master.key")).unwrap_or_else(|e| panic!("{e}"));
    let b = TestGateway::start_with(None, |s| {
        s.database_url = Some(tollgate_server::Sensitive(url.clone()));
        s.master_key = Some(tollgate_server::Sensitive(key.trim().to_string()));
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
    let meta =
        expect(call(&b, Method::GET, "/api/v1/secrets/OPENAI_API_KEY", Some(&rig.gw.admin_token), None).await, 200);
    assert_eq!(meta["bound_hosts"], json!([host_port(&rig.up)]), "{meta}");
    let r =
        send(b.client.post(b.url(&format!("/llm/v1/providers/{}{path}", rig.name))).bearer_auth(&rig.token).json(&req))
            .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

both_backends!(unbound_secrets_are_bound_at_start);
