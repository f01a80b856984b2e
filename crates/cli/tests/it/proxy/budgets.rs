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
    // a value outside an enum is the body's shape (400); a rule on a value is 422
    expect_shape_field(
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

    // A scope reference that names nothing is kept (a manifest may create the provider after
    // the limit), with a warning naming the field on every answer until it exists.
    let fields = |v: &Value| -> Vec<String> {
        v["warnings"].as_array().into_iter().flatten().filter_map(|w| w["field"].as_str().map(str::to_string)).collect()
    };
    let ghostly = json!({"name": "ghostly", "limit_microcents": 5, "pooling_mode": "shared",
                         "scope": {"providers": ["ghost"]}});
    let ghostly = expect(admin(&gw, Method::POST, b, Some(ghostly)).await, 201);
    assert_eq!(fields(&ghostly), ["scope.providers[0]"]);
    assert!(
        ghostly["warnings"][0]["message"].as_str().is_some_and(|m| m.contains("provider \"ghost\" does not exist"))
    );
    let haunted =
        json!({"name": "haunted", "scope": {"provider": "ghost", "token": "nobody"}, "requests_per_minute": 1});
    assert_eq!(
        fields(&expect(admin(&gw, Method::POST, r, Some(haunted)).await, 201)),
        ["scope.provider", "scope.token"]
    );
    let by_name = json!({"name": "by-name", "scope": {"token": "w"}, "requests_per_minute": 1});
    assert_eq!(
        fields(&expect(admin(&gw, Method::POST, r, Some(by_name)).await, 201)),
        Vec::<String>::new(),
        "token w exists"
    );
    let t = json!({"name": "t", "role": "invoker", "providers": ["ghost", "nowhere"]});
    let t = expect(admin(&gw, Method::POST, "/api/v1/tokens", Some(t)).await, 201);
    assert_eq!(fields(&t), ["providers[0]", "providers[1]"]);
    let t_path = format!("/api/v1/tokens/{}", t["id"].as_str().unwrap_or_default());
    secret(&gw, "OPENAI_API_KEY", "sk-x").await;
    expect(admin(&gw, Method::POST, "/api/v1/llm-providers", Some(provider_body("openai", "ghost"))).await, 201);
    let got = expect(admin(&gw, Method::GET, &format!("{b}/ghostly"), None).await, 200);
    assert!(got.get("warnings").is_none(), "the provider exists now: {got}");
    assert_eq!(fields(&expect(admin(&gw, Method::GET, &format!("{r}/haunted"), None).await, 200)), ["scope.token"]);
    assert_eq!(fields(&expect(admin(&gw, Method::GET, &t_path, None).await, 200)), ["providers[1]"], "GET too");
    // what GET answers (its warnings included) is accepted back as a body
    let back = expect(admin(&gw, Method::GET, &format!("{r}/haunted"), None).await, 200);
    expect(admin(&gw, Method::PATCH, &format!("{r}/haunted"), Some(back)).await, 200);
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
    let events = rig.events(2).await; // the refusal made no event
    // A budget made now shows the period's spend before any call of its own (the usage
    // rollups its windows will start from), not $0: shared, the whole scope's.
    let everyone = json!({"name": "everyone", "pooling_mode": "shared", "limit_microcents": 1_000_000_000_000i64});
    let created = expect(admin(gw, Method::POST, "/api/v1/budgets", Some(everyone)).await, 201);
    let total: i64 = events.iter().map(|e| e.cost.total).sum();
    assert_eq!(created["current_spend_microcents"].as_i64(), Some(total), "{kind}: {created}");
    expect(admin(gw, Method::DELETE, "/api/v1/budgets/everyone", None).await, 204);

    // An override created mid-period starts from a1's spend (read from the usage rollups) and
    // raises its cap; its warning mark is already passed.
    let o = json!({"name": "a1-more", "scope": {"agent": "a1"}, "limit_microcents": 2 * real + estimate - 1, "warn_at_microcents": real});
    let created = expect(admin(gw, Method::POST, "/api/v1/budgets", Some(o)).await, 201);
    assert_eq!(created["reserved_microcents"], 0);
    assert_eq!(created["current_spend_microcents"].as_i64(), Some(real), "{kind}: a1's spend at once: {created}");
    assert_eq!(created["top_key"], "a1", "{kind}: {created}");
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
    assert_eq!(refused.json()["error"]["type"], "requests", "OpenAI's type names the limit's unit");
    assert_eq!(refused.headers.get("x-ratelimit-remaining-requests").and_then(|v| v.to_str().ok()), Some("0"));
    let retry: i64 =
        refused.headers.get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap_or(0);
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    rig.events(3).await;
    rig.gw.clock.advance(Duration::from_secs(60));
    assert_eq!(rig.post(&path, &body).await.status, 200, "a new minute admits again");
    // A call that alone reserves more tokens than the limit allows in a minute is told so,
    // not sent to wait for a reset that cannot help.
    let tight = json!({"name": "tight", "scope": {"provider": rig.name}, "tokens_per_minute": 10});
    expect(admin(&rig.gw, Method::POST, "/api/v1/rate-limits", Some(tight)).await, 201);
    let refused = rig.post(&path, &body).await;
    super::errors::assert_native(&refused, "openai", 429, "allows 10 tokens per minute, and this call reserves");
    assert!(refused.text().contains("so it can never pass"), "{}", refused.text());
    assert_eq!(refused.json()["error"]["type"], "tokens", "a tokens-per-minute refusal");
    // waiting cannot help: no Retry-After, and the SDKs' own "do not retry" header
    assert!(refused.headers.get("retry-after").is_none(), "{:?}", refused.headers);
    assert_eq!(refused.headers.get("x-should-retry").and_then(|v| v.to_str().ok()), Some("false"));
}

/// Two `tollgate serve` processes (the real binary, as replicas run) on one PostgreSQL
/// database, loaded at once through both:
/// - a shared budget is enforced once: combined settled spend ≤ the limit plus the overshoot
///   bound of ARCHITECTURE.md (Worst-case overshoot), computed from the stored events as
///   Σ max(0, real cost − estimate) (no replica is killed and the database stays up, so its
///   other terms are 0), and most of the budget is usable;
/// - a 60-requests-per-minute limit admits 60 ± 3 per minute in total, in two consecutive
///   minutes. The processes' clocks are put at the start of a minute by the hidden
///   `--test-clock-offset-ms` of test builds (the `test-clock` feature, never in a release
///   binary), the same offset for both, so no test waits for a wall-clock minute; each minute
///   is served by a fresh pair of processes started with that minute's offset (they load the
///   rate limit with their snapshot at start, and the windows live in the database).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_gateway_processes_on_one_postgres() {
    use crate::serve_binary::serve;
    let Some(db) = TestDb::postgres().await else { return };
    let kind = "openai_compatible";
    let up = FakeUpstream::start(ptype(kind), None).await.unwrap_or_else(|e| panic!("{e:#}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let key = tollgate_store::MasterKey::generate().unwrap_or_else(|e| panic!("{e}")).to_base64();
    let env = [("TOLLGATE_MASTER_KEY", key.as_str())];
    let start = |name: &str, clock_offset_ms: i64| {
        let offset = clock_offset_ms.max(0).to_string();
        let args =
            ["--database-url", db.url(), "--usage-flush-interval-ms", "50", "--test-clock-offset-ms", offset.as_str()];
        serve(&dir.path().join(name), &args, &env)
    };
    let a = start("a", 0);
    let admin_token = std::fs::read_to_string(dir.path().join("a").join("admin.token")).unwrap_or_default();
    let admin_token = admin_token.trim().to_string();
    let client = reqwest::Client::new();
    let api = |base: &str, method: Method, path: &str, body: Option<Value>| {
        let req = client.request(method, format!("{base}{path}")).bearer_auth(&admin_token);
        let req = match body {
            Some(b) => req.json(&b),
            None => req,
        };
        async move {
            let r = send(req).await;
            (r.status, serde_json::from_slice::<Value>(&r.body).unwrap_or(Value::Null))
        }
    };
    // Everything is configured through the first process before the second starts (which
    // then loads it with its snapshot).
    let name = "p-shared";
    let provider = provider_at(kind, name, &up.provider_base_url(), priced(kind));
    assert_eq!(api(&a.base_url, Method::POST, "/api/v1/llm-providers", Some(provider)).await.0, 201);
    let (status, created) = api(
        &a.base_url,
        Method::POST,
        "/api/v1/tokens",
        Some(json!({"name": "agent-fleet", "role": "invoker", "agent": "fleet"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let token = created["token"].as_str().unwrap_or_default().to_string();
    let (path, body) = limited_call(kind);
    let estimate = estimate_of(&body);
    let limit = 30 * estimate;
    let pool = json!({"name": "pool", "pooling_mode": "shared", "limit_microcents": limit});
    assert_eq!(api(&a.base_url, Method::POST, "/api/v1/budgets", Some(pool)).await.0, 201);
    let b = start("b", 0);
    let fire = |bases: [String; 2], n: usize| {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..n {
            let url = format!("{}/llm/v1/providers/{name}{path}", bases[i % 2]);
            let req = client.post(url).bearer_auth(&token).json(&body);
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

    // The budget: 300 concurrent calls, half through each process.
    let admitted = fire([a.base_url.clone(), b.base_url.clone()], 300).await;
    let usage = tollgate_store::UsageStore::connect(db.url()).await.unwrap_or_else(|e| panic!("{e}"));
    let q = tollgate_store::UsageQuery { limit: Some(100_000), ..Default::default() };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let events = loop {
        let events = usage.list_events(&q).await.unwrap_or_else(|e| panic!("{e}"));
        if events.len() >= admitted {
            break events;
        }
        assert!(std::time::Instant::now() < deadline, "{} of {admitted} usage events written", events.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(events.len(), admitted, "one usage event per admitted call");
    let settled: i64 = events.iter().map(|e| e.cost.total).sum();
    let overshoot_bound: i64 = events.iter().map(|e| (e.cost.total - estimate).max(0)).sum();
    assert!(
        settled <= limit + overshoot_bound,
        "combined spend {settled} passed the limit {limit} + the overshoot bound {overshoot_bound} \
         ({admitted} admitted)"
    );
    assert!(admitted >= 20, "admitted {admitted}: most of the budget is usable across replicas");
    // Both processes flush what they consumed (every second): the budget then shows it all,
    // with nothing reserved.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, b) = api(&a.base_url, Method::GET, "/api/v1/budgets/pool", None).await;
        assert_eq!(status, 200, "{b}");
        if b["current_spend_microcents"].as_i64() == Some(settled) && b["reserved_microcents"].as_i64() == Some(0) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "budget never settled at {settled}: {b}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    usage.close().await;

    // 60 requests per minute over both processes, in one minute and then the next.
    assert_eq!(api(&a.base_url, Method::DELETE, "/api/v1/budgets/pool", None).await.0, 204);
    let rl = json!({"name": "sixty", "scope": {"provider": name}, "requests_per_minute": 60});
    assert_eq!(api(&a.base_url, Method::POST, "/api/v1/rate-limits", Some(rl)).await.0, 201);
    let _ = a.terminate();
    let _ = b.terminate();
    // A minute no earlier call fell in; each round's processes read it 1 s after it began.
    let minute = (tollgate_server::time::system_now_ms() / 60_000 + 5) * 60_000;
    for round in 0..2 {
        let offset = minute + round * 60_000 + 1_000 - tollgate_server::time::system_now_ms();
        let (a, b) = (start("a", offset), start("b", offset));
        let admitted = fire([a.base_url.clone(), b.base_url.clone()], 160).await;
        let (_, limits) = api(&a.base_url, Method::GET, "/api/v1/rate-limits/sixty", None).await;
        let _ = a.terminate();
        let _ = b.terminate();
        assert!(
            (57..=63).contains(&admitted),
            "round {round}: {admitted} admitted by a 60 rpm limit over two processes ({limits})"
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

/// One call through a family's official Python SDK (argv: family, proxy URL, gateway token,
/// `call` or `stream`): prints one JSON line, `{"kind": "ok", "warning": <SpendLimit-Warning or
/// null>}` or `{"kind": "rate_limited", "error": <the SDK's message>}` when the SDK raised its
/// own rate-limit error type. Retries are off, so a 429 surfaces at once. boto3 signs with a
/// throwaway key (the gateway re-signs) and carries the gateway token in `X-Tollgate-Token`,
/// since it sends bearer tokens over HTTPS only.
const SDK_SCRIPT: &str = r#"
import json, sys
family, base, token, mode, model = sys.argv[1:6]
msgs = [{"role": "user", "content": "hi"}]
def out(kind, **kw):
    print(json.dumps({"kind": kind, **kw}), flush=True)
if family == "openai":
    import openai
    c = openai.OpenAI(base_url=base, api_key=token, max_retries=0)
    try:
        if mode == "stream":
            for _ in c.chat.completions.create(model=model, max_tokens=50, messages=msgs, stream=True):
                pass
            out("ok", warning=None)
        else:
            r = c.chat.completions.with_raw_response.create(model=model, max_tokens=50, messages=msgs)
            r.parse()
            out("ok", warning=r.headers.get("spendlimit-warning"))
    except openai.RateLimitError as e:
        out("rate_limited", error=str(e), status=e.status_code)
elif family == "anthropic":
    import anthropic
    c = anthropic.Anthropic(base_url=base, api_key=token, max_retries=0)
    try:
        if mode == "stream":
            for _ in c.messages.create(model=model, max_tokens=50, messages=msgs, stream=True):
                pass
            out("ok", warning=None)
        else:
            r = c.messages.with_raw_response.create(model=model, max_tokens=50, messages=msgs)
            r.parse()
            out("ok", warning=r.headers.get("spendlimit-warning"))
    except anthropic.RateLimitError as e:
        out("rate_limited", error=str(e), status=e.status_code)
elif family == "google":
    from google import genai
    from google.genai import errors, types
    c = genai.Client(api_key=token, http_options=types.HttpOptions(base_url=base))
    cfg = types.GenerateContentConfig(max_output_tokens=50)
    try:
        if mode == "stream":
            for _ in c.models.generate_content_stream(model=model, contents="hi", config=cfg):
                pass
            out("ok", warning=None)
        else:
            r = c.models.generate_content(model=model, contents="hi", config=cfg)
            headers = (r.sdk_http_response.headers or {}) if r.sdk_http_response else {}
            out("ok", warning={k.lower(): v for k, v in headers.items()}.get("spendlimit-warning"))
    except errors.ClientError as e:
        if e.code == 429 and e.status == "RESOURCE_EXHAUSTED":
            out("rate_limited", error=str(e), status=e.code)
        else:
            raise
elif family == "bedrock":
    import boto3, botocore
    from botocore.config import Config
    brt = boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url=base,
                       aws_access_key_id="AKIDEXAMPLETHROWAWAY", aws_secret_access_key="throwaway",
                       config=Config(retries={"max_attempts": 1, "mode": "standard"}))
    def add_token(request, **kwargs):
        request.headers["X-Tollgate-Token"] = token
    brt.meta.events.register("before-send.bedrock-runtime.*", add_token)
    bmsgs = [{"role": "user", "content": [{"text": "hi"}]}]
    try:
        if mode == "stream":
            r = brt.converse_stream(modelId=model, messages=bmsgs, inferenceConfig={"maxTokens": 50})
            for _ in r["stream"]:
                pass
            out("ok", warning=None)
        else:
            r = brt.converse(modelId=model, messages=bmsgs, inferenceConfig={"maxTokens": 50})
            out("ok", warning=r["ResponseMetadata"]["HTTPHeaders"].get("spendlimit-warning"))
    except botocore.exceptions.ClientError as e:
        if e.response["Error"]["Code"] == "ThrottlingException":
            out("rate_limited", error=str(e), status=e.response["ResponseMetadata"]["HTTPStatusCode"])
        else:
            raise
"#;

/// Runs [`SDK_SCRIPT`] and returns its JSON line.
async fn sdk_call(python: &std::path::Path, script: &std::path::Path, rig: &Rig, token: &str, mode: &str) -> Value {
    let out = tokio::process::Command::new(python)
        .arg(script)
        .args([rig.kind, &rig.gw.url(&format!("/llm/v1/providers/{}", rig.name)), token, mode, model_of(rig.kind)])
        .env_clear()
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("HOME", std::env::temp_dir())
        .output()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{} {mode}: {stdout}\n{}", rig.kind, String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// The upper bound a refusal's message names ("may cost up to $X"), in microcents.
fn estimate_in(message: &str) -> i64 {
    let usd = message.split("may cost up to $").nth(1).and_then(|r| r.split(')').next()).unwrap_or_default();
    tollgate_core::Microcents::parse_usd(usd).unwrap_or_else(|e| panic!("{e}: {message}")).0
}

/// Through each family's official SDK: once an agent spent its per-agent default, its next
/// call raises the SDK's own rate-limit error; another agent's does not; an override raises
/// the agent's cap and its warning header reaches the SDK; a streamed call settles at its real
/// cost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_sdks_meet_budgets() {
    let Some(python) = crate::connect_snippets::sdk_python("the budget SDK test") else { return };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let script = dir.path().join("budget.py");
    std::fs::write(&script, SDK_SCRIPT).unwrap_or_else(|e| panic!("{e}"));
    for kind in ["openai", "anthropic", "google", "bedrock"] {
        let rig = Rig::new(TestDb::sqlite().await, kind, priced(kind)).await;
        let gw = &rig.gw;
        let (a1, a2) = (agent_token(gw, "a1").await, agent_token(gw, "a2").await);
        let huge = json!({"name": "agents", "limit_microcents": 1_000_000_000_000i64});
        expect(admin(gw, Method::POST, "/api/v1/budgets", Some(huge)).await, 201);
        let ok = sdk_call(&python, &script, &rig, &a1, "call").await;
        assert_eq!(ok["kind"], "ok", "{kind}: {ok}");
        let real = rig.events(1).await[0].cost.total;
        assert!(real > 0, "{kind}");
        rig.gw.flush_limits().await;

        // Cap a1 just above its spend: the SDK raises its own rate-limit error, naming the
        // budget; the message tells the call's estimate.
        let cap =
            |limit: i64| admin(gw, Method::PATCH, "/api/v1/budgets/agents", Some(json!({"limit_microcents": limit})));
        expect(cap(real + 1).await, 200);
        let refused = sdk_call(&python, &script, &rig, &a1, "call").await;
        assert_eq!(
            (refused["kind"].as_str(), refused["status"].as_i64()),
            (Some("rate_limited"), Some(429)),
            "{kind}: {refused}"
        );
        let message = refused["error"].as_str().unwrap_or_default();
        assert!(message.contains("budget \"agents\" for agent \"a1\""), "{kind}: {message}");
        let estimate = estimate_in(message);
        // Room for one more estimate, but not on top of a1's spend: a2 passes, a1 does not.
        expect(cap(real + estimate - 1).await, 200);
        assert_eq!(sdk_call(&python, &script, &rig, &a1, "call").await["kind"], "rate_limited", "{kind}");
        assert_eq!(sdk_call(&python, &script, &rig, &a2, "call").await["kind"], "ok", "{kind}: another agent's pool");

        // An override raises a1's cap; past its warning mark the header reaches the SDK.
        let o = json!({"name": "a1-more", "scope": {"agent": "a1"}, "limit_microcents": real + 10 * estimate, "warn_at_microcents": real});
        expect(admin(gw, Method::POST, "/api/v1/budgets", Some(o)).await, 201);
        let warned = sdk_call(&python, &script, &rig, &a1, "call").await;
        assert_eq!(warned["kind"], "ok", "{kind}: {warned}");
        let warning = warned["warning"].as_str().unwrap_or_default();
        assert!(warning.starts_with("budget=\"a1-more\"; spent="), "{kind}: {warned}");

        // A streamed call settles at its real cost: the override's spend is the sum of a1's events.
        assert_eq!(sdk_call(&python, &script, &rig, &a1, "stream").await["kind"], "ok", "{kind}");
        let events = rig.events(4).await;
        let a1_cost: i64 = events.iter().filter(|e| e.agent.as_deref() == Some("a1")).map(|e| e.cost.total).sum();
        let streamed = events.iter().find(|e| e.streamed).unwrap_or_else(|| panic!("{kind}: no streamed event"));
        assert!(streamed.cost.total > 0, "{kind}: the stream's usage was read: {streamed:?}");
        rig.gw.flush_limits().await;
        let o = budget(gw, "a1-more").await;
        assert_eq!(o["current_spend_microcents"].as_i64(), Some(a1_cost), "{kind}: {o}");
        assert_eq!(o["reserved_microcents"], 0, "{kind}");
    }
}

/// When the budget state cannot be read (here: its table is gone), `--budget-failure-mode open`
/// admits the call and counts it; `closed` refuses it with 503 in the native shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_mode_open_and_closed() {
    use sqlx::Connection as _;
    for open in [true, false] {
        let db = TestDb::sqlite().await;
        let url = db.url().to_string();
        let gw =
            TestGateway::start_with(Some(db), |s| s.budget_fail_open = open).await.unwrap_or_else(|e| panic!("{e:#}"));
        let rig = Rig::on(gw, "openai", priced("openai")).await;
        let token = agent_token(&rig.gw, "a1").await;
        expect(
            admin(
                &rig.gw,
                Method::POST,
                "/api/v1/budgets",
                Some(json!({"name": "b", "limit_microcents": 1_000_000_000i64})),
            )
            .await,
            201,
        );
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap_or_else(|e| panic!("{e}"));
        sqlx::query("ALTER TABLE limit_leases RENAME TO limit_leases_gone")
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let (path, body) = limited_call("openai");
        let r = send(sdk_auth(rig.gw.client.post(rig.url(&path)), "openai", &token).json(&body)).await;
        let metrics = send(rig.gw.client.get(rig.gw.url("/metrics"))).await.text();
        assert!(metrics.contains("tollgate_limit_state_failures_total 1"), "{metrics}");
        if open {
            assert_eq!(r.status, 200, "fail-open admits: {}", r.text());
        } else {
            super::errors::assert_native(&r, "openai", 503, "budget and rate-limit state cannot be read");
            assert!(
                metrics.contains(
                    "tollgate_proxy_requests_refused_total{source=\"internal\",reason=\"limits_unavailable\"} 1"
                ),
                "{metrics}"
            );
        }
    }
}
