//! Budgets and rate limits through the real proxy (ARCHITECTURE.md, Decisions: Budgets and
//! rate limits): the admin resources, a per-agent default and an override on every provider
//! type with the native 429 and the warning header, 200 concurrent calls against a small
//! budget, and streams that end badly leaving nothing reserved.

use super::*;
use crate::both_backends;
use tollgate_testkit::upstream::{Reply as UpReply, Step};

/// The model every budget test calls, priced by the provider's override.
const MODEL: &str = "budget-model";
/// $10 per 1M input tokens, $30 per 1M output tokens (microcents per 1M tokens).
const INPUT_RATE: i64 = 1_000_000_000;
const OUTPUT_RATE: i64 = 3_000_000_000;
const MAX_OUTPUT: i64 = 50;

/// The model called on `kind` (the Azure fake serves fixed deployments; `tuned` is one the
/// catalog cannot price, so the override prices it like the others).
fn model_of(kind: &str) -> &'static str {
    if kind == "azure_openai" { "tuned" } else { MODEL }
}

/// The provider's extra config: the model allowed and priced by override.
fn priced(kind: &str) -> Value {
    json!({"provider_models": [{"name": model_of(kind), "custom_pricing":
        {"input_per_million": INPUT_RATE, "output_per_million": OUTPUT_RATE}}]})
}

/// A 429 in `kind`'s native shape whose message contains `needle`.
#[track_caller]
fn assert_429(r: &Reply, kind: &str, needle: &str) {
    if kind == "bedrock" {
        assert_eq!(r.status, 429, "{}", r.text());
        let v = r.json();
        let m = v["message"].as_str().unwrap_or_default();
        assert!(m.contains(needle), "bedrock: {m:?} lacks {needle:?}");
    } else {
        super::errors::assert_native(r, kind, 429, needle);
    }
}

/// A generation request of each family that sets its output limit to [`MAX_OUTPUT`]:
/// (path, body).
pub fn limited_call(kind: &str) -> (String, Value) {
    let messages = json!([{"role": "user", "content": "hi"}]);
    let model = model_of(kind);
    match kind {
        "anthropic" => ("/v1/messages".into(), json!({"model": MODEL, "max_tokens": MAX_OUTPUT, "messages": messages})),
        "google" => (
            format!("/v1beta/models/{MODEL}:generateContent"),
            json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
                   "generationConfig": {"maxOutputTokens": MAX_OUTPUT}}),
        ),
        "bedrock" => (
            format!("/model/{MODEL}/converse"),
            json!({"messages": [{"role": "user", "content": [{"text": "hi"}]}],
                   "inferenceConfig": {"maxTokens": MAX_OUTPUT}}),
        ),
        "azure_openai" => (
            format!("/openai/deployments/{model}/chat/completions?api-version=2024-10-21"),
            json!({"max_tokens": MAX_OUTPUT, "messages": messages}),
        ),
        _ => ("/chat/completions".into(), json!({"model": MODEL, "max_tokens": MAX_OUTPUT, "messages": messages})),
    }
}

/// The upper bound the gateway reserves for [`limited_call`]: body bytes at the input rate plus
/// the output limit at the output rate.
fn estimate_of(body: &Value) -> i64 {
    let bytes = body.to_string().len() as i64;
    tollgate_core::pricing::bucket_cost(bytes, INPUT_RATE)
        + tollgate_core::pricing::bucket_cost(MAX_OUTPUT, OUTPUT_RATE)
}

/// A token for `agent` (invoker).
async fn agent_token(gw: &TestGateway, agent: &str) -> String {
    let body = json!({"name": format!("agent-{agent}"), "role": "invoker", "agent": agent});
    let v = expect(admin(gw, Method::POST, "/api/v1/tokens", Some(body)).await, 201);
    v["token"].as_str().unwrap_or_default().to_string()
}

async fn budget(gw: &TestGateway, name: &str) -> Value {
    expect(admin(gw, Method::GET, &format!("/api/v1/budgets/{name}"), None).await, 200)
}

/// The admin resources: validation names the field, one override per agent, PATCH keeps the
/// name, readers read, scoped writers may not write, delete is final.
async fn budget_and_rate_limit_api(db: TestDb) {
    let gw = gateway(db).await;
    let b = "/api/v1/budgets";
    expect_field(
        admin(&gw, Method::POST, b, Some(json!({"name": "x", "limit_microcents": 0}))).await,
        "limit_microcents",
    );
    expect_field(
        admin(&gw, Method::POST, b, Some(json!({"name": "x", "limit_microcents": 5, "warn_at_microcents": 6}))).await,
        "warn_at_microcents",
    );
    expect_field(
        admin(&gw, Method::POST, b, Some(json!({"name": "x", "limit_microcents": 5, "period": "hourly"}))).await,
        "period",
    );
    expect_field(admin(&gw, Method::POST, b, Some(json!({"name": "X", "limit_microcents": 5}))).await, "name");
    let created = expect(
        admin(
            &gw,
            Method::POST,
            b,
            Some(json!({"name": "agents-monthly", "display_name": "Per agent, monthly", "limit_microcents": 5_000_000_000i64,
                        "warn_at_microcents": 4_000_000_000i64})),
        )
        .await,
        201,
    );
    assert_eq!(created["pooling_mode"], "per_agent");
    assert_eq!(created["period"], "monthly");
    assert_eq!(created["current_spend_microcents"], 0);
    assert_eq!(created["reserved_microcents"], 0);
    assert!(created["period_resets_at"].as_str().is_some_and(|s| s.ends_with("T00:00:00.000Z")), "{created}");
    expect(admin(&gw, Method::POST, b, Some(json!({"name": "agents-monthly", "limit_microcents": 1}))).await, 409);
    expect(
        admin(&gw, Method::POST, b, Some(json!({"name": "bot-a", "limit_microcents": 9, "scope": {"agent": "bot"}})))
            .await,
        201,
    );
    let dup =
        admin(&gw, Method::POST, b, Some(json!({"name": "bot-b", "limit_microcents": 9, "scope": {"agent": "bot"}})));
    let dup = expect_field(dup.await, "scope.agent");
    assert!(dup["error"]["message"].as_str().is_some_and(|m| m.contains("bot-a")), "{dup}");
    // PATCH: merge patch, name immutable, validation again.
    let patched = expect(
        admin(&gw, Method::PATCH, &format!("{b}/bot-a"), Some(json!({"limit_microcents": 20, "period": "weekly"})))
            .await,
        200,
    );
    assert_eq!((patched["limit_microcents"].as_i64(), patched["period"].as_str()), (Some(20), Some("weekly")));
    expect_field(admin(&gw, Method::PATCH, &format!("{b}/bot-a"), Some(json!({"name": "other"}))).await, "name");
    expect_field(
        admin(&gw, Method::PATCH, &format!("{b}/bot-a"), Some(json!({"warn_at_microcents": 21}))).await,
        "warn_at_microcents",
    );
    let list = expect(admin(&gw, Method::GET, b, None).await, 200);
    let names: Vec<&str> =
        list["budgets"].as_array().into_iter().flatten().filter_map(|v| v["name"].as_str()).collect();
    assert_eq!(names, ["agents-monthly", "bot-a"]);
    // Readers read; writers scoped to a provider may not write.
    let reader = gw.token("reader").await.unwrap_or_else(|e| panic!("{e:#}"));
    expect(call(&gw, Method::GET, b, Some(&reader), None).await, 200);
    expect(call(&gw, Method::POST, b, Some(&reader), Some(json!({"name": "r", "limit_microcents": 1}))).await, 403);
    let scoped = expect(
        admin(&gw, Method::POST, "/api/v1/tokens", Some(json!({"name": "w", "role": "writer", "providers": ["p"]})))
            .await,
        201,
    );
    let scoped = scoped["token"].as_str().unwrap_or_default().to_string();
    expect(call(&gw, Method::POST, b, Some(&scoped), Some(json!({"name": "s", "limit_microcents": 1}))).await, 403);
    expect(admin(&gw, Method::DELETE, &format!("{b}/bot-a"), None).await, 204);
    expect(admin(&gw, Method::GET, &format!("{b}/bot-a"), None).await, 404);
    expect(admin(&gw, Method::DELETE, &format!("{b}/bot-a"), None).await, 404);

    let r = "/api/v1/rate-limits";
    expect_field(admin(&gw, Method::POST, r, Some(json!({"name": "rl"}))).await, "requests_per_minute");
    expect_field(
        admin(&gw, Method::POST, r, Some(json!({"name": "rl", "tokens_per_minute": 0}))).await,
        "tokens_per_minute",
    );
    let rl = expect(
        admin(&gw, Method::POST, r, Some(json!({"name": "rl", "scope": {"agent": "bot"}, "requests_per_minute": 60})))
            .await,
        201,
    );
    assert_eq!(rl["scope"]["agent"], "bot");
    let rl = expect(admin(&gw, Method::PATCH, &format!("{r}/rl"), Some(json!({"tokens_per_minute": 1000}))).await, 200);
    assert_eq!((rl["requests_per_minute"].as_i64(), rl["tokens_per_minute"].as_i64()), (Some(60), Some(1000)));
    let list = expect(admin(&gw, Method::GET, r, None).await, 200);
    assert_eq!(list["rate_limits"].as_array().map(Vec::len), Some(1));
    expect(admin(&gw, Method::DELETE, &format!("{r}/rl"), None).await, 204);
    expect(admin(&gw, Method::GET, &format!("{r}/rl"), None).await, 404);
}

/// On one provider type: an agent that spent its per-agent default is refused with the
/// family's native 429 (budget, spend, limit, reset, `Retry-After`), another agent is not, an
/// override created mid-period starts from what the agent spent and raises its cap, the
/// warning header appears past `warn_at`, and refusals make no usage event.
async fn default_override_and_warning(db: TestDb, kind: &'static str) {
    let rig = Rig::new(db, kind, priced(kind)).await;
    let gw = &rig.gw;
    let (path, body) = limited_call(kind);
    let estimate = estimate_of(&body);
    let a1 = agent_token(gw, "a1").await;
    let a2 = agent_token(gw, "a2").await;
    let post = |token: &str| send(sdk_auth(rig.gw.client.post(rig.url(&path)), kind, token).json(&body));
    expect(
        admin(
            gw,
            Method::POST,
            "/api/v1/budgets",
            Some(json!({"name": "agents", "limit_microcents": 1_000_000_000_000i64})),
        )
        .await,
        201,
    );

    // One call settles at its real cost (the usage event's), well under the estimate.
    let first = post(&a1).await;
    assert_eq!(first.status, 200, "{kind}: {}", first.text());
    let events = rig.events(1).await;
    let real = events[0].cost.total;
    assert!(real > 0 && real <= estimate, "{kind}: real {real}, estimate {estimate}");
    rig.gw.flush_limits().await;
    let b = budget(gw, "agents").await;
    assert_eq!(b["current_spend_microcents"].as_i64(), Some(real), "{kind}: settled at the real cost: {b}");
    assert_eq!(b["top_key"], "a1");
    assert_eq!(b["reserved_microcents"], 0);

    // Lower the cap below spend + one estimate: a1 is refused, the spend is kept.
    let limit = real + estimate - 1;
    let patched = admin(gw, Method::PATCH, "/api/v1/budgets/agents", Some(json!({"limit_microcents": limit})));
    assert_eq!(expect(patched.await, 200)["current_spend_microcents"].as_i64(), Some(real), "editing keeps the spend");
    let refused = post(&a1).await;
    assert_429(&refused, kind, "budget \"agents\" for agent \"a1\"");
    let text = refused.text();
    let usd = |v: i64| tollgate_core::Microcents(v).to_usd_string();
    assert!(
        text.contains(&format!("spent ${}", usd(real))) && text.contains(&format!("${} limit", usd(limit))),
        "{text}"
    );
    assert!(text.contains("resets at "), "{text}");
    let retry: i64 =
        refused.headers.get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap_or(0);
    assert!(retry > 0 && retry <= 31 * 86_400, "{kind}: Retry-After {retry}");
    let v = refused.json();
    match kind {
        "anthropic" => assert_eq!(v["error"]["type"], "rate_limit_error"),
        "google" => assert_eq!(v["error"]["status"], "RESOURCE_EXHAUSTED"),
        "bedrock" => assert_eq!(
            refused.headers.get("x-amzn-errortype").and_then(|v| v.to_str().ok()),
            Some("ThrottlingException")
        ),
        _ => assert_eq!(
            (v["error"]["type"].as_str(), v["error"]["code"].as_str()),
            (Some("insufficient_quota"), Some("budget_exceeded"))
        ),
    }
    // Another agent has its own pool.
    let other = post(&a2).await;
    assert_eq!(other.status, 200, "{kind}: a2 is not capped by a1's spend: {}", other.text());
    rig.events(2).await; // the refusal made no event

    // An override created mid-period starts from a1's spend (read from the usage rollups) and
    // raises its cap; its warning mark is already passed.
    let o = json!({"name": "a1-more", "scope": {"agent": "a1"}, "limit_microcents": 2 * real + estimate - 1, "warn_at_microcents": real});
    let created = expect(admin(gw, Method::POST, "/api/v1/budgets", Some(o)).await, 201);
    assert_eq!(created["reserved_microcents"], 0);
    let allowed = post(&a1).await;
    assert_eq!(allowed.status, 200, "{kind}: the override raised a1's cap: {}", allowed.text());
    let warning =
        allowed.headers.get("spendlimit-warning").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    assert!(warning.starts_with("budget=\"a1-more\"; spent=") && warning.contains("; resets="), "{kind}: {warning:?}");
    assert!(
        warning.contains(&format!("spent={};", usd(real))),
        "{kind}: the override started from a1's spend: {warning}"
    );
    rig.events(3).await;
    rig.gw.flush_limits().await;
    let o = budget(gw, "a1-more").await;
    assert_eq!(o["current_spend_microcents"].as_i64(), Some(2 * real), "{kind}: {o}");
    // A call the override cannot cover any more is refused naming the override.
    let refused = post(&a1).await;
    assert_429(&refused, kind, "budget \"a1-more\"");
    let metrics = send(gw.client.get(gw.url("/metrics"))).await.text();
    assert!(
        metrics.contains("tollgate_proxy_requests_refused_total{source=\"downstream\",reason=\"budget_exceeded\"} 2"),
        "{metrics}"
    );
    assert_eq!(rig.gw.limits_reserved(), 0);
}

async fn budgets_openai(db: TestDb) {
    default_override_and_warning(db, "openai").await;
}
async fn budgets_anthropic(db: TestDb) {
    default_override_and_warning(db, "anthropic").await;
}
async fn budgets_google(db: TestDb) {
    default_override_and_warning(db, "google").await;
}
async fn budgets_bedrock(db: TestDb) {
    default_override_and_warning(db, "bedrock").await;
}
async fn budgets_azure_openai(db: TestDb) {
    default_override_and_warning(db, "azure_openai").await;
}
async fn budgets_openai_compatible(db: TestDb) {
    default_override_and_warning(db, "openai_compatible").await;
}

/// 200 concurrent calls against a budget with room for 20 estimates: settled spend stays
/// within the limit and at least ⌊limit ÷ estimate⌋ calls are admitted.
async fn concurrent_calls_never_pass_the_limit(db: TestDb) {
    let rig = Rig::new(db, "openai", priced("openai")).await;
    let (path, body) = limited_call("openai");
    let estimate = estimate_of(&body);
    let limit = 20 * estimate;
    let token = agent_token(&rig.gw, "busy").await;
    expect(
        admin(&rig.gw, Method::POST, "/api/v1/budgets", Some(json!({"name": "small", "limit_microcents": limit})))
            .await,
        201,
    );
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let req = sdk_auth(rig.gw.client.post(rig.url(&path)), "openai", &token).json(&body);
        tasks.spawn(async move { send(req).await.status });
    }
    let (mut admitted, mut refused) = (0usize, 0usize);
    while let Some(status) = tasks.join_next().await {
        match status.unwrap_or_else(|e| panic!("{e}")) {
            200 => admitted += 1,
            429 => refused += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(admitted + refused, 200);
    assert!(admitted >= 20, "admitted {admitted}: at least limit / estimate");
    let events = rig.events(admitted).await;
    let settled: i64 = events.iter().map(|e| e.cost.total).sum();
    assert!(settled <= limit, "settled {settled} > limit {limit}");
    rig.gw.flush_limits().await;
    let b = budget(&rig.gw, "small").await;
    assert_eq!(b["current_spend_microcents"].as_i64(), Some(settled), "{b}");
    assert_eq!(b["reserved_microcents"], 0);
}

/// Streams that end badly — the client cancels, the upstream resets, the upstream times out —
/// and a request cut before its response head: each settles, nothing stays reserved.
async fn broken_streams_leave_nothing_reserved(db: TestDb) {
    let gw = TestGateway::start_with(Some(db), |s| s.upstream_read_timeout = Duration::from_millis(400))
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let rig = Rig::on(gw, "anthropic", priced("anthropic")).await;
    let token = agent_token(&rig.gw, "streamer").await;
    expect(
        admin(
            &rig.gw,
            Method::POST,
            "/api/v1/budgets",
            Some(json!({"name": "s", "limit_microcents": 1_000_000_000_000i64})),
        )
        .await,
        201,
    );
    let body = json!({"model": MODEL, "max_tokens": MAX_OUTPUT, "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let start = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m1\",\"model\":\"budget-model\",\"usage\":{\"input_tokens\":11,\"output_tokens\":1}}}\n\n";
    let post = || sdk_auth(rig.gw.client.post(rig.url("/v1/messages")), "anthropic", &token).json(&body);

    // 1. The client cancels mid-stream.
    rig.up.push(UpReply::script(
        200,
        "text/event-stream",
        vec![Step::Send(Bytes::from_static(start.as_bytes())), Step::Hang],
    ));
    let mut resp = post().send().await.unwrap_or_else(|e| panic!("{e:#}"));
    let first = resp.chunk().await.ok().flatten().unwrap_or_default();
    assert!(String::from_utf8_lossy(&first).contains("message_start"));
    assert!(rig.gw.limits_reserved() > 0, "the stream holds its reservation while it runs");
    drop(resp);
    // 2. The upstream resets mid-stream.
    rig.up.push(UpReply::script(
        200,
        "text/event-stream",
        vec![Step::Send(Bytes::from_static(start.as_bytes())), Step::Abort],
    ));
    let resp = post().send().await.unwrap_or_else(|e| panic!("{e:#}"));
    assert!(resp.bytes().await.is_err());
    // 3. The upstream stalls past the read timeout mid-stream.
    rig.up.push(UpReply::script(
        200,
        "text/event-stream",
        vec![Step::Send(Bytes::from_static(start.as_bytes())), Step::Sleep(Duration::from_secs(3))],
    ));
    let resp = post().send().await.unwrap_or_else(|e| panic!("{e:#}"));
    assert!(resp.bytes().await.is_err());
    // 4. The client gives up before the response head.
    rig.up.push(UpReply::stall_headers(200).delayed(Duration::from_secs(30)));
    let gave_up = post().timeout(Duration::from_millis(300)).send().await;
    assert!(gave_up.is_err());

    let events = rig.events(4).await;
    assert_eq!(rig.gw.limits_reserved(), 0, "every reservation was settled");
    rig.gw.flush_limits().await;
    let b = budget(&rig.gw, "s").await;
    assert_eq!(b["reserved_microcents"], 0, "{b}");
    let settled: i64 = events.iter().map(|e| e.cost.total).sum();
    assert!(settled > 0, "the input seen before each break is charged");
    assert_eq!(b["current_spend_microcents"].as_i64(), Some(settled), "settled at the events' cost: {b}");
}

/// A requests-per-minute limit: the `x-ratelimit-*` headers count down, the call past the
/// limit is refused with the native 429 and `Retry-After`, and the next minute admits again.
async fn requests_per_minute(db: TestDb) {
    let rig = Rig::new(db, "openai", priced("openai")).await;
    let (path, body) = limited_call("openai");
    let rl = json!({"name": "three", "scope": {"provider": rig.name}, "requests_per_minute": 3, "tokens_per_minute": 100_000});
    expect(admin(&rig.gw, Method::POST, "/api/v1/rate-limits", Some(rl)).await, 201);
    // Start at the beginning of a minute so all four calls fall in one window.
    let now = rig.gw.clock.now_ms();
    rig.gw.clock.set_now_ms((now / 60_000 + 1) * 60_000 + 1_000);
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let r = rig.post(&path, &body).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.headers.get("x-ratelimit-limit-requests").and_then(|v| v.to_str().ok()), Some("3"));
        assert!(r.headers.get("x-ratelimit-limit-tokens").is_some());
        let left = r.headers.get("x-ratelimit-remaining-requests").and_then(|v| v.to_str().ok()).unwrap_or_default();
        remaining.push(left.to_string());
    }
    assert_eq!(remaining, ["2", "1", "0"]);
    let refused = rig.post(&path, &body).await;
    super::errors::assert_native(&refused, "openai", 429, "rate limit \"three\" allows 3 requests per minute");
    assert_eq!(refused.json()["error"]["code"], "rate_limit_exceeded");
    assert_eq!(refused.headers.get("x-ratelimit-remaining-requests").and_then(|v| v.to_str().ok()), Some("0"));
    let retry: i64 =
        refused.headers.get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap_or(0);
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    rig.events(3).await;
    rig.gw.clock.advance(Duration::from_secs(60));
    assert_eq!(rig.post(&path, &body).await.status, 200, "a new minute admits again");
}

/// Two gateways (separate runtimes, pools, caches and lease holders) on one PostgreSQL
/// database, loaded at once: a shared budget is enforced once — combined settled spend within
/// the limit (the documented overshoot bound is 0 when every call's real cost is within its
/// estimate, as here) — and a 60-requests-per-minute limit admits 60 ± 3 per minute in total.
/// Their clocks are set to the same minute so the test needs no wall-clock minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_gateways_on_one_postgres() {
    let Some(db) = TestDb::postgres().await else { return };
    let url = db.url().to_string();
    let key = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
    let gw1 = TestGateway::start_with(Some(db), |s| s.master_key = Some(tollgate_server::Sensitive(key.into())))
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let rig = Rig::on(gw1, "openai_compatible", priced("openai_compatible")).await;
    let (path, body) = limited_call("openai_compatible");
    let estimate = estimate_of(&body);
    let limit = 30 * estimate;
    let token = agent_token(&rig.gw, "fleet").await;
    let pool = json!({"name": "pool", "pooling_mode": "shared", "limit_microcents": limit});
    expect(admin(&rig.gw, Method::POST, "/api/v1/budgets", Some(pool)).await, 201);
    let gw2 = TestGateway::start_with(None, |s| {
        s.database_url = Some(tollgate_server::Sensitive(url.clone()));
        s.master_key = Some(tollgate_server::Sensitive(key.into()));
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
    let gateways = [&rig.gw, &gw2];
    let fire = |n: usize| {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..n {
            let gw = gateways[i % 2];
            let req = gw
                .client
                .post(gw.url(&format!("/llm/v1/providers/{}{path}", rig.name)))
                .bearer_auth(&token)
                .json(&body);
            tasks.spawn(async move { send(req).await.status });
        }
        async move {
            let mut admitted = 0usize;
            while let Some(status) = tasks.join_next().await {
                match status.unwrap_or_else(|e| panic!("{e}")) {
                    200 => admitted += 1,
                    429 => {}
                    other => panic!("unexpected status {other}"),
                }
            }
            admitted
        }
    };

    // The budget: 300 calls, half on each gateway.
    let admitted = fire(300).await;
    for gw in gateways {
        gw.flush_usage().await;
        gw.flush_limits().await;
    }
    let events = usage_events(&rig.gw, admitted).await;
    let settled: i64 = events.iter().map(|e| e.cost.total).sum();
    assert!(settled <= limit, "combined spend {settled} passed the limit {limit} ({admitted} admitted)");
    assert!(admitted >= 20, "admitted {admitted}: most of the budget is usable across replicas");
    let b = budget(&rig.gw, "pool").await;
    assert_eq!(b["current_spend_microcents"].as_i64(), Some(settled), "{b}");

    // 60 requests per minute over both gateways, in one minute and then the next.
    expect(admin(&rig.gw, Method::DELETE, "/api/v1/budgets/pool", None).await, 204);
    let rl = json!({"name": "sixty", "scope": {"provider": rig.name}, "requests_per_minute": 60});
    expect(admin(&rig.gw, Method::POST, "/api/v1/rate-limits", Some(rl)).await, 201);
    // Until gw2's snapshot has the limit (its config poller): a call through it carries the
    // limit's headers. These calls fall in the current minute, before the measured ones.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let req =
            gw2.client.post(gw2.url(&format!("/llm/v1/providers/{}{path}", rig.name))).bearer_auth(&token).json(&body);
        if send(req).await.headers.contains_key("x-ratelimit-limit-requests") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the second gateway never loaded the rate limit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let minute = (rig.gw.clock.now_ms() / 60_000 + 1) * 60_000 + 1_000;
    for round in 0..2 {
        for gw in gateways {
            gw.clock.set_now_ms(minute + round * 60_000);
        }
        let admitted = fire(160).await;
        assert!(
            (57..=63).contains(&admitted),
            "round {round}: {admitted} admitted by a 60 rpm limit over two gateways"
        );
    }
}

both_backends!(
    budget_and_rate_limit_api,
    budgets_openai,
    budgets_anthropic,
    budgets_google,
    budgets_bedrock,
    budgets_azure_openai,
    budgets_openai_compatible,
    concurrent_calls_never_pass_the_limit,
    broken_streams_leave_nothing_reserved,
    requests_per_minute,
);
