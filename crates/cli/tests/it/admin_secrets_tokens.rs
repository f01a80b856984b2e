//! Secrets (write-only values, names listed, sealed at rest, read-only backends) and gateway
//! tokens (shown once, stored hashed, revocation effective immediately, last-admin guard),
//! plus config propagation between two replicas sharing one database.

use crate::both_backends;
use crate::support::*;

both_backends!(
    secrets_api,
    secrets_sealed_at_rest,
    token_lifecycle,
    token_validation,
    replicas_share_config,
    duplicate_keys_refused
);

async fn secrets_api(db: TestDb) {
    let gw = gateway(db).await;
    let value = "sk-LEAKCHECK-secret-api-1234";
    let created = admin(&gw, Method::PUT, "/api/v1/secrets/OPENAI_API_KEY", Some(json!({"value": value}))).await;
    let created = expect(created, 201);
    assert_eq!(created["name"], "OPENAI_API_KEY");
    assert!(!created.to_string().contains(value));
    let replaced = expect(
        admin(&gw, Method::PUT, "/api/v1/secrets/OPENAI_API_KEY", Some(json!({"value": "sk-LEAKCHECK-2"}))).await,
        200,
    );
    assert_eq!(replaced["created_at"], created["created_at"]);
    for i in 0..5 {
        secret(&gw, &format!("KEY_{i}"), &format!("value-LEAKCHECK-{i}")).await;
    }
    let page1 = expect(admin(&gw, Method::GET, "/api/v1/secrets?page_size=4", None).await, 200);
    let names = |v: &Value| -> Vec<String> {
        v["secrets"]
            .as_array()
            .map(|a| a.iter().filter_map(|s| s["name"].as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    };
    assert_eq!(names(&page1), ["KEY_0", "KEY_1", "KEY_2", "KEY_3"]);
    let t = page1["next_page_token"].as_str().unwrap_or_default().to_string();
    let page2 =
        expect(admin(&gw, Method::GET, &format!("/api/v1/secrets?page_size=4&page_token={t}"), None).await, 200);
    assert_eq!(names(&page2), ["KEY_4", "OPENAI_API_KEY"]);
    for body in [&page1, &page2] {
        assert!(!body.to_string().contains("LEAKCHECK"), "values never listed: {body}");
        for s in body["secrets"].as_array().into_iter().flatten() {
            let keys: Vec<&String> = s.as_object().map(|o| o.keys().collect()).unwrap_or_default();
            let mut keys = keys;
            keys.sort();
            assert_eq!(keys, ["bound_hosts", "created_at", "name", "updated_at"], "{s}");
        }
    }
    let one = expect(admin(&gw, Method::GET, "/api/v1/secrets/KEY_2", None).await, 200);
    assert!(one.get("value").is_none());
    // validation: the name rule, a value that is present, a string and not empty; no other fields
    expect_shape_field(
        admin(&gw, Method::PUT, "/api/v1/secrets/lower_case", Some(json!({"value": "x"}))).await,
        "name",
    );
    expect_shape_field(admin(&gw, Method::PUT, "/api/v1/secrets/OK_NAME", Some(json!({}))).await, "value");
    expect_field(admin(&gw, Method::PUT, "/api/v1/secrets/OK_NAME", Some(json!({"value": ""}))).await, "value");
    // a value no header can carry is refused at write time, not by every later call
    let broken = expect_field(
        admin(&gw, Method::PUT, "/api/v1/secrets/OK_NAME", Some(json!({"value": "sk-abc\ndef"}))).await,
        "value",
    );
    assert!(broken["error"]["message"].as_str().is_some_and(|m| m.contains("character 7")), "{broken}");
    expect(admin(&gw, Method::GET, "/api/v1/secrets/OK_NAME", None).await, 404);
    expect_shape_field(admin(&gw, Method::PUT, "/api/v1/secrets/OK_NAME", Some(json!({"value": 42}))).await, "value");
    expect_shape_field(
        admin(&gw, Method::PUT, "/api/v1/secrets/OK_NAME", Some(json!({"value": "x", "note": "y"}))).await,
        "note",
    );
    expect(admin(&gw, Method::GET, "/api/v1/secrets/OK_NAME", None).await, 404);
    expect(admin(&gw, Method::DELETE, "/api/v1/secrets/NEVER_WAS", None).await, 404);
    // a malformed body never echoes its content
    let raw = gw
        .client
        .put(gw.url("/api/v1/secrets/OK_NAME"))
        .bearer_auth(&gw.admin_token)
        .body("{\"value\": \"LEAKCHECK-broken")
        .send()
        .await;
    let text = match raw {
        Ok(r) => {
            assert_eq!(r.status().as_u16(), 400);
            r.text().await.unwrap_or_default()
        }
        Err(e) => panic!("{e}"),
    };
    assert!(!text.contains("LEAKCHECK"), "{text}");
}

async fn secrets_sealed_at_rest(db: TestDb) {
    let gw = gateway(db).await;
    let value = "sk-LEAKCHECK-at-rest-98765";
    secret(&gw, "AT_REST", value).await;
    // read the raw database file / rows: the value must not appear anywhere
    let db_url = gw.data_dir.join("tollgate.sqlite");
    if db_url.exists() {
        let bytes = std::fs::read(&db_url).unwrap_or_default();
        let wal = std::fs::read(gw.data_dir.join("tollgate.sqlite-wal")).unwrap_or_default();
        let hay = [bytes, wal].concat();
        assert!(
            !hay.windows(value.len()).any(|w| w == value.as_bytes()),
            "plaintext secret found in the database files"
        );
    }
    let key = std::fs::metadata(gw.data_dir.join("master.key"));
    let mode = key.map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777).unwrap_or(0);
    assert_eq!(mode, 0o600, "master key file is private");
}

async fn token_lifecycle(db: TestDb) {
    let gw = gateway(db).await;
    let created = expect(admin(&gw, Method::POST, "/api/v1/tokens", Some(json!({"name": "ci bot", "role": "reader",
        "user": "ana@example.com", "agent": "ci-bot", "providers": ["prod-openai", "prod-openai"], "expires_at": "2099-01-01T00:00:00Z"}))).await, 201);
    let token = created["token"].as_str().unwrap_or_default().to_string();
    assert!(token.starts_with("tg_") && token.len() == 46, "{token}");
    assert_eq!(created["prefix"], &token[..9]);
    assert_eq!(created["role"], "reader");
    assert_eq!(created["user"], "ana@example.com");
    assert_eq!(created["agent"], "ci-bot");
    assert_eq!(created["providers"], json!(["prod-openai"]), "deduplicated scope");
    assert_eq!(created["expires_at"], "2099-01-01T00:00:00.000Z");
    assert_eq!(created["status"], "active");
    let id = created["id"].as_str().unwrap_or_default().to_string();
    // the token works, and is never shown again
    expect(call(&gw, Method::GET, "/api/v1/llm-providers", Some(&token), None).await, 200);
    let listed = expect(admin(&gw, Method::GET, "/api/v1/tokens", None).await, 200);
    assert!(!listed.to_string().contains(&token), "list never shows a token");
    assert_eq!(listed["tokens"].as_array().map(Vec::len), Some(2), "bootstrap admin + ci bot: {listed}");
    let one = expect(admin(&gw, Method::GET, &format!("/api/v1/tokens/{id}"), None).await, 200);
    assert!(one.get("token").is_none());
    assert_eq!(one["name"], "ci bot");
    // revoke: effective for the very next request; revoking twice is harmless
    let revoked = expect(admin(&gw, Method::DELETE, &format!("/api/v1/tokens/{id}"), None).await, 200);
    assert_eq!(revoked["status"], "revoked");
    assert!(revoked["revoked_at"].is_string());
    expect(call(&gw, Method::GET, "/api/v1/llm-providers", Some(&token), None).await, 401);
    expect(admin(&gw, Method::DELETE, &format!("/api/v1/tokens/{id}"), None).await, 200);
    expect(admin(&gw, Method::DELETE, "/api/v1/tokens/0190f000-0000-7000-8000-000000000000", None).await, 404);
    // the last active admin token cannot be revoked; with a second admin it can
    let boot = listed["tokens"]
        .as_array()
        .and_then(|a| a.iter().find(|t| t["name"] == "bootstrap-admin"))
        .map(|t| t["id"].clone());
    let boot_id = boot.and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
    let last = expect(admin(&gw, Method::DELETE, &format!("/api/v1/tokens/{boot_id}"), None).await, 409);
    assert!(last["error"]["message"].as_str().is_some_and(|m| m.contains("last lasting admin")), "{last}");
    // an admin that expires cannot stand in for it (the gateway would lock itself out)
    let soon =
        chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now() + std::time::Duration::from_secs(3600))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let brief = token_of(&gw, json!({"name": "brief admin", "role": "admin", "expires_at": soon})).await;
    expect(call(&gw, Method::DELETE, &format!("/api/v1/tokens/{boot_id}"), Some(&brief), None).await, 409);
    let second = token_of(&gw, json!({"name": "second admin", "role": "admin"})).await;
    expect(call(&gw, Method::DELETE, &format!("/api/v1/tokens/{boot_id}"), Some(&second), None).await, 200);
    expect(admin(&gw, Method::GET, "/api/v1/tokens", None).await, 401);
}

async fn token_of(gw: &TestGateway, body: Value) -> String {
    let t = expect(admin(gw, Method::POST, "/api/v1/tokens", Some(body)).await, 201);
    t["token"].as_str().unwrap_or_default().to_string()
}

async fn token_validation(db: TestDb) {
    let gw = gateway(db).await;
    // 400: the shape (an unknown field, a value outside the role enum); 422: a rule on a value
    let cases = [
        (json!({"role": "reader"}), "name", 422),
        (json!({"name": " ", "role": "reader"}), "name", 422),
        (json!({"name": "n"}), "role", 422),
        (json!({"name": "n", "role": "root"}), "role", 400),
        (json!({"name": "n", "role": "reader", "user": "not-an-email"}), "user", 422),
        (json!({"name": "n", "role": "reader", "agent": "Bad Agent"}), "agent", 422),
        (json!({"name": "n", "role": "reader", "providers": []}), "providers", 422),
        (json!({"name": "n", "role": "reader", "providers": ["ok", "Not OK"]}), "providers[1]", 422),
        (json!({"name": "n", "role": "reader", "expires_at": "tomorrow"}), "expires_at", 422),
        (json!({"name": "n", "role": "reader", "expires_at": "2001-01-01T00:00:00Z"}), "expires_at", 422),
        (json!({"name": "n", "role": "reader", "scopes": ["x"]}), "scopes", 400),
    ];
    for (body, field, status) in cases {
        let got = admin(&gw, Method::POST, "/api/v1/tokens", Some(body.clone())).await;
        assert_eq!(got.0, status, "{body}: {}", got.1);
        assert_eq!(got.1["error"]["field"], field, "{body}: {}", got.1);
    }
    let listed = expect(admin(&gw, Method::GET, "/api/v1/tokens", None).await, 200);
    assert_eq!(listed["tokens"].as_array().map(Vec::len), Some(1), "nothing half-written");
}

async fn replicas_share_config(db: TestDb) {
    // Two gateways on one database: a change through one is seen by the other without restart.
    let url = db.url().to_string();
    let a = gateway(db).await;
    let b =
        match TestGateway::start_with(None, |s| s.database_url = Some(tollgate_server::Sensitive(url.clone()))).await {
            Ok(g) => g,
            Err(e) => panic!("{e:#}"),
        };
    // b did not bootstrap (tokens existed); a's admin token works on b after a poll
    let token = token_of(&a, json!({"name": "shared", "role": "reader"})).await;
    let mut ok = false;
    for _ in 0..50 {
        if call(&b, Method::GET, "/api/v1/llm-providers", Some(&token), None).await.0 == 200 {
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ok, "a token created on replica A never became valid on replica B");
    let id = expect(admin(&a, Method::GET, "/api/v1/tokens", None).await, 200)["tokens"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["name"] == "shared"))
        .map(|t| t["id"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default();
    expect(admin(&a, Method::DELETE, &format!("/api/v1/tokens/{id}"), None).await, 200);
    let mut revoked = false;
    for _ in 0..50 {
        if call(&b, Method::GET, "/api/v1/llm-providers", Some(&token), None).await.0 == 401 {
            revoked = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(revoked, "a revocation on replica A never reached replica B");
    drop(b);
}

/// A JSON body with a key twice in one object is refused with 400 naming the key, at any depth,
/// on every admin write (serde_json alone keeps the last value: an "invoker" token would be
/// created as admin).
async fn duplicate_keys_refused(db: TestDb) {
    let gw = gateway(db).await;
    all_secrets(&gw).await;
    async fn raw(gw: &TestGateway, method: Method, path: &str, body: &str) -> (u16, Value) {
        let sent = gw
            .client
            .request(method, gw.url(path))
            .bearer_auth(&gw.admin_token)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await;
        match sent {
            Ok(r) => (r.status().as_u16(), r.json().await.unwrap_or_default()),
            Err(e) => panic!("{path}: {e}"),
        }
    }
    let body = expect_shape_field(
        raw(&gw, Method::POST, "/api/v1/tokens", r#"{"name":"dup","role":"invoker","role":"admin"}"#).await,
        "role",
    );
    assert!(body["error"]["message"].as_str().unwrap_or_default().contains("duplicate key"), "{body}");
    let tokens = expect(admin(&gw, Method::GET, "/api/v1/tokens", None).await, 200);
    assert!(!tokens.to_string().contains("\"dup\""), "no token was created: {tokens}");
    expect_shape_field(
        raw(
            &gw,
            Method::POST,
            "/api/v1/llm-providers",
            r#"{"name":"dup","display_name":"D","type":"openai","openai_config":{"api_key_ref":"OPENAI_API_KEY","api_key_ref":"X"}}"#,
        )
        .await,
        "openai_config.api_key_ref",
    );
    expect(admin(&gw, Method::POST, "/api/v1/llm-providers", Some(provider_body("openai", "one"))).await, 201);
    expect_shape_field(
        raw(&gw, Method::PATCH, "/api/v1/llm-providers/one", r#"{"display_name":"a","display_name":"b"}"#).await,
        "display_name",
    );
    let body = expect_shape_field(
        raw(&gw, Method::PUT, "/api/v1/secrets/DUP", r#"{"value":"LEAKCHECK-a","value":"LEAKCHECK-b"}"#).await,
        "value",
    );
    assert!(!body.to_string().contains("LEAKCHECK"), "{body}");
    expect(admin(&gw, Method::GET, "/api/v1/secrets/DUP", None).await, 404);
}
