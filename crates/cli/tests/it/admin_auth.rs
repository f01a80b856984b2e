//! 401 versus 403 for every admin endpoint × every kind of caller: no token, malformed,
//! unknown, revoked, expired, and each role. Public endpoints need no token.

use crate::both_backends;
use crate::support::*;

both_backends!(every_endpoint_by_every_caller, public_endpoints_need_no_token, scoped_tokens);

/// One endpoint: method, path, body and the least role that may call it. `{role}` in the
/// path or body is replaced by the caller's name so each allowed call acts on its own object.
struct Endpoint {
    method: Method,
    path: &'static str,
    body: Option<Value>,
    needs: &'static str,
}

fn endpoints() -> Vec<Endpoint> {
    let e = |method: Method, path: &'static str, body: Option<Value>, needs: &'static str| Endpoint {
        method,
        path,
        body,
        needs,
    };
    vec![
        e(Method::GET, "/api/v1/llm-providers", None, "reader"),
        e(Method::POST, "/api/v1/llm-providers", Some(provider_body("openai", "new-{role}")), "writer"),
        e(Method::GET, "/api/v1/llm-providers/fixture", None, "reader"),
        e(Method::PATCH, "/api/v1/llm-providers/fixture", Some(json!({"display_name": "by {role}"})), "writer"),
        e(Method::DELETE, "/api/v1/llm-providers/del-{role}", None, "writer"),
        e(Method::GET, "/api/v1/secrets", None, "reader"),
        e(Method::GET, "/api/v1/secrets/OPENAI_API_KEY", None, "reader"),
        e(Method::PUT, "/api/v1/secrets/PUT_{ROLE}", Some(json!({"value": "v-{role}"})), "writer"),
        e(Method::DELETE, "/api/v1/secrets/DEL_{ROLE}", None, "writer"),
        e(Method::PATCH, "/api/v1/secrets/OPENAI_API_KEY", Some(json!({"bound_hosts": ["api.openai.com"]})), "admin"),
        e(Method::GET, "/api/v1/tokens", None, "admin"),
        e(Method::POST, "/api/v1/tokens", Some(json!({"name": "made by {role}", "role": "invoker"})), "admin"),
        e(Method::GET, "/api/v1/tokens/{victim}", None, "admin"),
        e(Method::DELETE, "/api/v1/tokens/{victim-{role}}", None, "admin"),
    ]
}

const ORDER: [&str; 4] = ["invoker", "reader", "writer", "admin"];

fn rank(role: &str) -> usize {
    ORDER.iter().position(|r| *r == role).unwrap_or(usize::MAX)
}

async fn create_token(gw: &TestGateway, body: Value) -> (String, String) {
    let t = expect(admin(gw, Method::POST, "/api/v1/tokens", Some(body)).await, 201);
    (t["token"].as_str().unwrap_or_default().to_string(), t["id"].as_str().unwrap_or_default().to_string())
}

async fn every_endpoint_by_every_caller(db: TestDb) {
    let gw = gateway(db).await;
    all_secrets(&gw).await;
    expect(admin(&gw, Method::POST, "/api/v1/llm-providers", Some(provider_body("openai", "fixture"))).await, 201);
    let (_, victim) = create_token(&gw, json!({"name": "victim", "role": "invoker"})).await;

    let mut role_tokens = Vec::new();
    for role in ORDER {
        let (tok, _) =
            create_token(&gw, json!({"name": role, "role": role, "user": format!("{role}@example.com")})).await;
        role_tokens.push((role, tok));
        // per-role objects for the calls that consume them
        expect(
            admin(&gw, Method::POST, "/api/v1/llm-providers", Some(provider_body("openai", &format!("del-{role}"))))
                .await,
            201,
        );
        secret(&gw, &format!("DEL_{}", role.to_uppercase()), "x").await;
    }
    let mut victims = std::collections::HashMap::new();
    for role in ORDER {
        let (_, id) = create_token(&gw, json!({"name": format!("victim-{role}"), "role": "invoker"})).await;
        victims.insert(role, id);
    }
    let (revoked, revoked_id) = create_token(&gw, json!({"name": "revoked", "role": "admin"})).await;
    expect(admin(&gw, Method::DELETE, &format!("/api/v1/tokens/{revoked_id}"), None).await, 200);
    let soon = chrono_like_in(1_500);
    let (expired, _) = create_token(&gw, json!({"name": "expiring", "role": "admin", "expires_at": soon})).await;
    gw.clock.advance(std::time::Duration::from_millis(1_700)); // past its expiry, by the gateway's clock

    let unknown = format!("tg_{}", "A".repeat(43));
    let bad_callers: Vec<(&str, Option<String>)> = vec![
        ("no token", None),
        ("malformed", Some("not-a-token".into())),
        ("unknown", Some(unknown)),
        ("revoked", Some(revoked)),
        ("expired", Some(expired)),
    ];

    for ep in endpoints() {
        for (label, tok) in &bad_callers {
            let path = ep
                .path
                .replace("{role}", "x")
                .replace("{ROLE}", "X")
                .replace("{victim}", &victim)
                .replace("{victim-x}", &victim);
            let body = ep
                .body
                .as_ref()
                .map(|b| serde_json::from_str(&b.to_string().replace("{role}", "x")).unwrap_or(Value::Null));
            let got = call(&gw, ep.method.clone(), &path, tok.as_deref(), body).await;
            assert_eq!(got.0, 401, "{} {path} by {label}: {}", ep.method, got.1);
            assert_eq!(got.1["error"]["code"], "unauthenticated", "{} {path} by {label}", ep.method);
        }
        for (role, tok) in &role_tokens {
            let path = ep
                .path
                .replace("{victim-{role}}", victims.get(role).map_or("", |s| s.as_str()))
                .replace("{victim}", &victim)
                .replace("{role}", role)
                .replace("{ROLE}", &role.to_uppercase());
            let body = ep
                .body
                .as_ref()
                .map(|b| serde_json::from_str(&b.to_string().replace("{role}", role)).unwrap_or(Value::Null));
            let got = call(&gw, ep.method.clone(), &path, Some(tok), body).await;
            if rank(role) < rank(ep.needs) {
                assert_eq!(got.0, 403, "{} {path} by {role} (needs {}): {}", ep.method, ep.needs, got.1);
                assert_eq!(got.1["error"]["code"], "permission_denied");
            } else {
                assert!((200..300).contains(&got.0), "{} {path} by {role}: {} {}", ep.method, got.0, got.1);
            }
        }
    }
    // a 401 carries a Bearer challenge
    let r = gw
        .client
        .get(gw.url("/api/v1/llm-providers"))
        .send()
        .await
        .map(|r| r.headers().get("www-authenticate").cloned());
    assert_eq!(
        r.ok().flatten().and_then(|v| v.to_str().ok().map(str::to_string)).as_deref(),
        Some("Bearer realm=\"tollgate\"")
    );
    // a Basic credential is not a bearer token
    let basic = gw.client.get(gw.url("/api/v1/llm-providers")).basic_auth("admin", Some(&gw.admin_token)).send().await;
    assert_eq!(basic.map(|r| r.status().as_u16()).unwrap_or(0), 401);
}

/// RFC 3339 for now + `ms` (UTC).
fn chrono_like_in(ms: i64) -> String {
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    tollgate_server::time::rfc3339(now + ms)
}

async fn public_endpoints_need_no_token(db: TestDb) {
    let gw = gateway(db).await;
    for path in ["/healthz", "/readyz", "/api/openapi.json"] {
        let got = call(&gw, Method::GET, path, None, None).await;
        assert_eq!(got.0, 200, "{path}: {}", got.1);
    }
    assert_eq!(call(&gw, Method::GET, "/readyz", None, None).await.1["status"], "ready");
    let missing = call(&gw, Method::GET, "/api/v1/nothing-here", None, None).await;
    assert_eq!(missing.0, 404);
    assert_eq!(missing.1["error"]["code"], "not_found");
}

async fn scoped_tokens(db: TestDb) {
    let gw = gateway(db).await;
    all_secrets(&gw).await;
    for n in ["team-a", "team-b", "team-c"] {
        expect(admin(&gw, Method::POST, "/api/v1/llm-providers", Some(provider_body("openai", n))).await, 201);
    }
    let (tok, _) = create_token(&gw, json!({"name": "scoped", "role": "writer", "providers": ["team-b"]})).await;
    let list = expect(call(&gw, Method::GET, "/api/v1/llm-providers?page_size=1", Some(&tok), None).await, 200);
    let names: Vec<&str> = list["llm_providers"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["team-b"], "a scoped token lists only its providers");
    assert!(list.get("next_page_token").is_none(), "{list}");
    expect(call(&gw, Method::GET, "/api/v1/llm-providers/team-b", Some(&tok), None).await, 200);
    expect(call(&gw, Method::GET, "/api/v1/llm-providers/team-a", Some(&tok), None).await, 403);
    expect(
        call(&gw, Method::PATCH, "/api/v1/llm-providers/team-c", Some(&tok), Some(json!({"enabled": false}))).await,
        403,
    );
    expect(call(&gw, Method::DELETE, "/api/v1/llm-providers/team-a", Some(&tok), None).await, 403);
    expect(
        call(&gw, Method::POST, "/api/v1/llm-providers", Some(&tok), Some(provider_body("openai", "team-d"))).await,
        403,
    );
    expect(
        call(&gw, Method::PATCH, "/api/v1/llm-providers/team-b", Some(&tok), Some(json!({"enabled": false}))).await,
        200,
    );
}
