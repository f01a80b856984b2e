//! Config that converges across replicas, and config writes whose cost does not grow with
//! the configuration.
//!
//! `two_replica_processes_converge_within_a_second` runs two real `tollgate serve` processes on
//! one PostgreSQL database with the config poll set to a minute, so only the `LISTEN/NOTIFY`
//! path can make a change on one honoured by the other within the second it asserts (also
//! after the listener's connection was cut); usage from both is stored exactly once and both
//! answer the same spending reports. On SQLite it is skipped (replicas need PostgreSQL), saying
//! so, and it fails under `CI=true` when PostgreSQL is missing. The constant-time test counts
//! what a provider create makes the snapshot reload read (`tollgate_config_rows_read_total`),
//! with one provider stored and with a thousand more: the same rows either way.

use crate::proxy::UPSTREAM_KEY;
use crate::serve_binary::{Served, serve};
use crate::support::*;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};
use tollgate_core::ProviderType;
use tollgate_store::{Keyring, MasterKey, ProviderRecord, SecretValue, Store};
use tollgate_testkit::upstream::FakeUpstream;

crate::both_backends!(provider_create_reads_the_same_rows_with_1_or_1000_providers);

/// Every `tollgate_config_*` sample of `/metrics`, labels included in the key.
async fn config_metrics(client: &reqwest::Client, base: &str) -> BTreeMap<String, u64> {
    let text = match client.get(format!("{base}/metrics")).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(e) => panic!("GET /metrics: {e}"),
    };
    text.lines()
        .filter(|l| l.starts_with("tollgate_config_"))
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(k, v)| v.trim().parse().ok().map(|v| (k.to_string(), v)))
        .collect()
}

fn delta(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after.iter().map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0))).collect()
}

/// A secret of its own and an OpenAI provider using it, through the admin API; returns what
/// the two writes made this replica's snapshot reloads read.
async fn create_one(gw: &TestGateway, name: &str) -> BTreeMap<String, u64> {
    let before = config_metrics(&gw.client, &gw.base_url).await;
    let secret_name = format!("KEY_{}", name.replace('-', "_").to_uppercase());
    secret(gw, &secret_name, "sk-test-value").await;
    let body = json!({"name": name, "display_name": name, "type": "openai",
        "openai_config": {"api_key_ref": secret_name}});
    expect(admin(gw, Method::POST, "/api/v1/llm-providers", Some(body)).await, 201);
    delta(&before, &config_metrics(&gw.client, &gw.base_url).await)
}

/// Creating a provider re-reads only what changed: the rows its reload reads (providers,
/// secrets unsealed, tokens) are the same with 1 provider stored as with 1,001, and no full
/// reload happens. Before the change log every write re-read and unsealed everything.
async fn provider_create_reads_the_same_rows_with_1_or_1000_providers(db: TestDb) {
    let url = db.url().to_string();
    let gw = gateway(db).await;
    create_one(&gw, "warm-up").await;
    let small = create_one(&gw, "with-one").await;
    assert_eq!(small.get("tollgate_config_reloads_total{mode=\"full\"}"), Some(&0), "{small:?}");
    assert!(small.get("tollgate_config_rows_read_total{resource=\"provider\"}").is_some_and(|&n| n >= 1), "{small:?}");

    // A thousand more providers, each with a secret of its own, written by another handle on
    // the same database (as another replica would); this gateway picks them up.
    let key = std::fs::read_to_string(gw.data_dir.join("master.key")).unwrap_or_default();
    let keyring = Keyring::new(MasterKey::from_base64(key.trim()).unwrap_or_else(|e| panic!("{e}")));
    let other = Store::connect(&url, keyring).await.unwrap_or_else(|e| panic!("{e}"));
    for i in 0..1000 {
        let (name, secret) = (format!("bulk-{i:04}"), format!("BULK_{i:04}"));
        other.put_secret(&secret, &SecretValue::new(format!("sk-bulk-{i}")), 1).await.unwrap_or_else(|e| panic!("{e}"));
        let spec = json!({"name": name, "display_name": name, "type": "openai",
            "openai_config": {"api_key_ref": secret}});
        let rec = ProviderRecord {
            name: name.clone(),
            provider_type: ProviderType::Openai,
            display_name: name.clone(),
            enabled: true,
            spec_json: spec.to_string(),
            secret_refs: vec![("openai_config.api_key_ref".to_string(), secret)],
            created_at_ms: 1,
            updated_at_ms: 1,
        };
        other.insert_provider(&rec, true, None).await.unwrap_or_else(|e| panic!("{e}"));
    }
    other.close().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _) =
            call(&gw, Method::POST, "/llm/v1/providers/bulk-0999/chat/completions", Some(&gw.admin_token), None).await;
        if status != 404 {
            break;
        }
        assert!(Instant::now() < deadline, "the gateway never picked up the bulk providers");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let large = create_one(&gw, "with-many").await;
    assert_eq!(large.get("tollgate_config_reloads_total{mode=\"full\"}"), Some(&0), "{large:?}");
    // How many reloads the writes took may vary (on PostgreSQL the notification may start one
    // between the two writes); the rows they read may not.
    let rows = |d: &BTreeMap<String, u64>| -> BTreeMap<String, u64> {
        d.iter()
            .filter(|(k, _)| k.starts_with("tollgate_config_rows_read_total"))
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    };
    assert_eq!(rows(&large), rows(&small), "a create with 1,001 providers read other rows than with one");
}

/// Evaluates the async condition `$probe` until it holds, for at most `$within`; evaluates
/// to how long it took.
macro_rules! within {
    ($within:expr, $what:expr, $probe:expr) => {{
        let start = Instant::now();
        loop {
            if $probe {
                break start.elapsed();
            }
            assert!(start.elapsed() < $within, "{}: not honoured within {:?}", $what, $within);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }};
}

struct Replica {
    served: Served,
    base: String,
}

async fn status(req: reqwest::RequestBuilder) -> u16 {
    match req.send().await {
        Ok(r) => r.status().as_u16(),
        Err(e) => panic!("{e}"),
    }
}

/// The listener connections the replicas hold on PostgreSQL.
async fn listeners(pg: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = $1")
        .bind(tollgate_store::LISTENER_APPLICATION_NAME)
        .fetch_one(pg)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replica_processes_converge_within_a_second() {
    let Some(db) = TestDb::postgres().await else { return };
    let up = FakeUpstream::start(ProviderType::Openai, Some(UPSTREAM_KEY)).await.unwrap_or_else(|e| panic!("{e:#}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let key = MasterKey::generate().unwrap_or_else(|e| panic!("{e}")).to_base64();
    // A minute between polls: only the notification can carry a change within the second.
    let args = ["--database-url", db.url(), "--config-poll-seconds", "60", "--usage-flush-interval-ms", "50"];
    let env = [("TOLLGATE_MASTER_KEY", key.as_str())];
    let a_data = dir.path().join("a");
    let a = serve(&a_data, &args, &env);
    let b = serve(&dir.path().join("b"), &args, &env);
    let admin = std::fs::read_to_string(a_data.join("admin.token")).unwrap_or_default().trim().to_string();
    assert!(admin.starts_with("tg_"), "replica A bootstrapped the admin token");
    let (a, b) = (Replica { base: a.base_url.clone(), served: a }, Replica { base: b.base_url.clone(), served: b });
    let client = reqwest::Client::new();
    let pg = sqlx::PgPool::connect(db.url()).await.unwrap_or_else(|e| panic!("{e}"));
    within!(Duration::from_secs(10), "both listeners connected", listeners(&pg).await == 2);

    let chat = json!({"model": "gpt-5.4", "messages": [{"role": "user", "content": "hi"}]});
    let proxy = |r: &Replica, token: &str, conversation: &str| {
        client
            .post(format!("{}/llm/v1/providers/oa/chat/completions", r.base))
            .bearer_auth(token)
            .header("x-tollgate-conversation", conversation)
            .json(&chat)
    };
    let api = |r: &Replica, method: Method, path: &str, body: Option<Value>| {
        let req = client.request(method, format!("{}{path}", r.base)).bearer_auth(&admin);
        match body {
            Some(b) => req.json(&b),
            None => req,
        }
    };

    // Created on A: the secret, the provider and an invoker token; honoured by B.
    assert_eq!(
        status(api(&a, Method::PUT, "/api/v1/secrets/OPENAI_API_KEY", Some(json!({"value": UPSTREAM_KEY})))).await,
        201
    );
    let provider = json!({"name": "oa", "display_name": "OA", "type": "openai",
        "openai_config": {"api_key_ref": "OPENAI_API_KEY", "base_url": up.provider_base_url()}});
    assert_eq!(status(api(&a, Method::POST, "/api/v1/llm-providers", Some(provider))).await, 201);
    let created = api(&a, Method::POST, "/api/v1/tokens", Some(json!({"name": "app", "role": "invoker"})));
    let created: Value = created.send().await.unwrap_or_else(|e| panic!("{e}")).json().await.unwrap_or(Value::Null);
    let (token, token_id) = (
        created["token"].as_str().unwrap_or_default().to_string(),
        created["id"].as_str().unwrap_or_default().to_string(),
    );
    let took = within!(
        Duration::from_secs(1),
        "provider and token created on A, used on B",
        status(proxy(&b, &token, "probe")).await == 200
    );
    #[allow(clippy::print_stderr)]
    {
        eprintln!("created on A, served by B after {took:?}");
    }

    // Disabled on A: refused by B.
    let disable = api(&a, Method::PATCH, "/api/v1/llm-providers/oa", Some(json!({"enabled": false})));
    assert_eq!(status(disable).await, 200);
    within!(Duration::from_secs(1), "provider disabled on A", status(proxy(&b, &token, "probe")).await == 403);
    let enable = api(&a, Method::PATCH, "/api/v1/llm-providers/oa", Some(json!({"enabled": true})));
    assert_eq!(status(enable).await, 200);
    within!(Duration::from_secs(1), "provider enabled again on A", status(proxy(&b, &token, "probe")).await == 200);

    // The listener's connection is cut: each replica reconnects, and changes keep arriving.
    let cut: Vec<bool> =
        sqlx::query_scalar("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1")
            .bind(tollgate_store::LISTENER_APPLICATION_NAME)
            .fetch_all(&pg)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cut, vec![true, true], "both listener connections cut");
    within!(Duration::from_secs(10), "both listeners reconnected", listeners(&pg).await == 2);
    let disable = api(&b, Method::PATCH, "/api/v1/llm-providers/oa", Some(json!({"enabled": false})));
    assert_eq!(status(disable).await, 200);
    within!(
        Duration::from_secs(1),
        "provider disabled on B after the reconnect, seen by A",
        status(proxy(&a, &token, "probe")).await == 403
    );
    let enable = api(&b, Method::PATCH, "/api/v1/llm-providers/oa", Some(json!({"enabled": true})));
    assert_eq!(status(enable).await, 200);
    for r in [&a, &b] {
        within!(Duration::from_secs(1), "provider enabled again on B", status(proxy(r, &token, "probe")).await == 200);
    }

    // Usage from both replicas: every request stored exactly once.
    let per_replica = 20;
    for i in 0..per_replica {
        for (r, tag) in [(&a, "a"), (&b, "b")] {
            let resp = proxy(r, &token, &format!("{tag}-{i}")).send().await.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(resp.status(), 200);
            let _ = resp.bytes().await;
        }
    }
    let usage = tollgate_store::UsageStore::connect(db.url()).await.unwrap_or_else(|e| panic!("{e}"));
    let q = tollgate_store::UsageQuery { limit: Some(100_000), ..Default::default() };
    let mut by_conversation: HashMap<String, usize> = HashMap::new();
    within!(Duration::from_secs(10), "usage of both replicas written", {
        let events = usage.list_events(&q).await.unwrap_or_else(|e| panic!("{e}"));
        by_conversation.clear();
        for e in events.into_iter().filter_map(|e| e.conversation_id).filter(|c| c != "probe") {
            *by_conversation.entry(e).or_default() += 1;
        }
        by_conversation.len() == 2 * per_replica
    });
    assert!(by_conversation.values().all(|&n| n == 1), "each request stored exactly once: {by_conversation:?}");
    usage.close().await;

    // Both replicas answer the same spending reports.
    let window = "start=2020-01-01T00:00:00Z&end=2100-01-01T00:00:00Z";
    for path in [
        format!("/api/v1/spending/summary?{window}"),
        format!("/api/v1/spending/breakdown?{window}&dimension=provider"),
        format!("/api/v1/spending/export.csv?{window}&bucket=total&group_by=provider"),
    ] {
        let read = |r: &Replica| api(r, Method::GET, &path, None).send();
        let (ra, rb) =
            (read(&a).await.unwrap_or_else(|e| panic!("{e}")), read(&b).await.unwrap_or_else(|e| panic!("{e}")));
        assert_eq!((ra.status().as_u16(), rb.status().as_u16()), (200, 200), "{path}");
        let (ta, tb) = (ra.text().await.unwrap_or_default(), rb.text().await.unwrap_or_default());
        assert_eq!(ta, tb, "{path}: the replicas disagree");
        let total = serde_json::from_str::<Value>(&ta).ok().and_then(|v| v["stats"]["total_requests"].as_u64());
        assert!(total.map_or(ta.contains("oa"), |n| n >= 2 * per_replica as u64), "{path}: {ta}");
    }

    // Deleted on A: unknown on B. The token revoked on A: refused by B.
    assert_eq!(status(api(&a, Method::DELETE, "/api/v1/llm-providers/oa", None)).await, 204);
    within!(Duration::from_secs(1), "provider deleted on A", status(proxy(&b, &token, "probe")).await == 404);
    assert_eq!(status(api(&a, Method::DELETE, &format!("/api/v1/tokens/{token_id}"), None)).await, 200);
    within!(Duration::from_secs(1), "token revoked on A", status(proxy(&b, &token, "probe")).await == 401);

    // B learned all of it by notification and incremental reloads, never a full one after start.
    let m = config_metrics(&client, &b.base).await;
    assert!(m.get("tollgate_config_notifications_total").is_some_and(|&n| n > 0), "{m:?}");
    assert_eq!(m.get("tollgate_config_reloads_total{mode=\"full\"}"), Some(&1), "{m:?}");
    assert!(m.get("tollgate_config_listener_connects_total").is_some_and(|&n| n >= 2), "{m:?}");
    pg.close().await;
    let _ = a.served.terminate();
    let _ = b.served.terminate();
    // After both drained at shutdown: still exactly one event per request.
    let usage = tollgate_store::UsageStore::connect(db.url()).await.unwrap_or_else(|e| panic!("{e}"));
    let stored = usage.list_events(&q).await.unwrap_or_else(|e| panic!("{e}"));
    let mine = stored.iter().filter(|e| e.conversation_id.as_deref().is_some_and(|c| c != "probe")).count();
    assert_eq!(mine, 2 * per_replica, "one event per request, none written twice");
    usage.close().await;
}
