//! The model catalog and spending APIs around the pricing: `GET /api/v1/models` (filters,
//! paging, Bedrock profiles, lookups), the `--catalog-overlay` file reloaded while the gateway
//! runs (and the events priced with it), and the spending endpoints' parameters and roles.

use crate::proxy::{provider_at, sdk_auth, send, usage_events};
use crate::support::*;
use std::time::Duration;
use tollgate_core::{Cost, ProviderType, RequestStatus, Usage};
use tollgate_store::UsageEvent;
use tollgate_testkit::upstream::{FakeUpstream, Reply, openai};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_api_lists_filters_pages_and_gets() {
    let gw = gateway(TestDb::sqlite().await).await;
    let invoker = gw.token("invoker").await.unwrap_or_else(|e| panic!("{e:#}"));
    // any valid token may read the catalog; no token may not
    let list =
        expect(call(&gw, Method::GET, "/api/v1/models?provider_type=anthropic", Some(&invoker), None).await, 200);
    assert_eq!(list["version"], "2026-11-24.1");
    assert_eq!(list["effective_date"], "2026-11-24");
    assert!(list.get("overlay").is_none());
    let models = list["models"].as_array().cloned().unwrap_or_default();
    assert!(models.iter().all(|m| m["provider_type"] == "anthropic"));
    let sonnet = models.iter().find(|m| m["name"] == "claude-sonnet-4-6").cloned().unwrap_or_default();
    assert_eq!(sonnet["pricing"]["cache_creation_1h_per_million"], 600_000_000);
    assert_eq!(sonnet["label"], "Claude Sonnet 4.6");
    assert_eq!(sonnet["source"], "litellm-1.106.2:claude-sonnet-4-6");
    assert_eq!(call(&gw, Method::GET, "/api/v1/models", None, None).await.0, 401);

    // paging walks every entry exactly once
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let path = match &token {
            Some(t) => format!("/api/v1/models?provider_type=google&page_size=7&page_token={t}"),
            None => "/api/v1/models?provider_type=google&page_size=7".to_string(),
        };
        let page = expect(admin(&gw, Method::GET, &path, None).await, 200);
        for m in page["models"].as_array().into_iter().flatten() {
            seen.push(m["name"].as_str().unwrap_or_default().to_string());
        }
        match page["next_page_token"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(seen, sorted, "pages are ordered and do not overlap");
    assert!(seen.len() > 20 && seen.contains(&"gemini-2.5-pro".to_string()));

    let found = expect(admin(&gw, Method::GET, "/api/v1/models?name_contains=SONNET-4-6", None).await, 200);
    let names: Vec<&str> =
        found["models"].as_array().into_iter().flatten().filter_map(|m| m["name"].as_str()).collect();
    assert!(names.contains(&"claude-sonnet-4-6") && names.contains(&"us.anthropic.claude-sonnet-4-6"), "{names:?}");

    // Bedrock foundation ids list their inference profiles
    let bare = expect(admin(&gw, Method::GET, "/api/v1/models/anthropic.claude-sonnet-4-6", None).await, 200);
    assert_eq!(bare["version"], "2026-11-24.1");
    assert_eq!(bare["model"]["requires_inference_profile"], true);
    assert_eq!(bare["model"]["inference_profiles"].as_array().map_or(0, Vec::len), 6);
    let geo = expect(
        admin(&gw, Method::GET, "/api/v1/models/eu.anthropic.claude-sonnet-4-6?provider_type=bedrock", None).await,
        200,
    );
    assert_eq!(geo["model"]["pricing"]["input_per_million"], 330_000_000);
    expect(admin(&gw, Method::GET, "/api/v1/models/no-such-model", None).await, 404);
    expect_shape_field(admin(&gw, Method::GET, "/api/v1/models?provider_type=azure", None).await, "provider_type");
    expect_shape_field(admin(&gw, Method::GET, "/api/v1/models?page_token=zz", None).await, "page_token");
    // Azure OpenAI reads OpenAI's catalog: the same entry, not an ambiguity
    expect(admin(&gw, Method::GET, "/api/v1/models/chat-latest", None).await, 200);
}

fn write(path: &std::path::Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{e}"));
}

/// The overlay is re-read while the gateway runs: new prices apply to the next events (which
/// record the new catalog version), a broken edit is reported and the last good one stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_overlay_hot_reload_prices_new_events() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let overlay = dir.path().join("overlay.json");
    let v1 = r#"{"version": "ops-1", "effective_date": "2026-12-01", "models": [
        {"provider_type": "openai_compatible", "name": "llama-local", "label": "Llama (local)",
         "pricing": {"input_per_million": 10000000, "output_per_million": 20000000, "cached_input_per_million": 5000000}}]}"#;
    write(&overlay, v1);
    let path = overlay.clone();
    let gw = TestGateway::start_with(None, move |s| s.catalog_overlay = Some(path))
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let list = expect(admin(&gw, Method::GET, "/api/v1/models?provider_type=openai_compatible", None).await, 200);
    assert_eq!(list["version"], "2026-11-24.1+ops-1");
    assert_eq!(list["overlay"]["version"], "ops-1");
    assert_eq!(list["models"][0]["name"], "llama-local");
    assert_eq!(list["models"][0]["source"], "overlay:ops-1");

    let up = FakeUpstream::start(ProviderType::Openai, None).await.unwrap_or_else(|e| panic!("{e:#}"));
    expect(
        admin(
            &gw,
            Method::POST,
            "/api/v1/llm-providers",
            Some(provider_at("openai_compatible", "local", &up.provider_base_url(), json!({}))),
        )
        .await,
        201,
    );
    let token = gw.token("invoker").await.unwrap_or_else(|e| panic!("{e:#}"));
    let call_model = || async {
        // openai::chat_completion answers with a fixed usage: read it back from the event
        up.push(Reply::json(200, &openai::chat_completion("llama-local")));
        let req = sdk_auth(gw.client.post(gw.url("/llm/v1/providers/local/chat/completions")), "openai", &token)
            .json(&json!({"model": "llama-local", "messages": [{"role": "user", "content": "hi"}]}));
        assert_eq!(send(req).await.status, 200);
    };
    call_model().await;
    let first = usage_events(&gw, 1).await;
    let u = first[0].usage;
    assert!(u.input > 0 && u.output > 0 && u.cached_input > 0 && u.reasoning > 0, "{u:?}");
    assert_eq!(first[0].catalog_version.as_deref(), Some("2026-11-24.1+ops-1"));
    // input at $0.10/M, output and reasoning at $0.20/M, cache reads at $0.05/M
    assert_eq!(first[0].cost.input, (u.input * 10_000_000 + 500_000) / 1_000_000);
    assert_eq!(first[0].cost.output, (u.output * 20_000_000 + 500_000) / 1_000_000);
    assert_eq!(first[0].cost.reasoning, (u.reasoning * 20_000_000 + 500_000) / 1_000_000);
    assert_eq!(first[0].cost.cached_input, (u.cached_input * 5_000_000 + 500_000) / 1_000_000);
    assert!(!first[0].unpriced);

    // a price correction: picked up within the poll interval, no restart
    write(&overlay, &v1.replace("ops-1", "ops-2").replace("10000000", "40000000"));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let list = expect(admin(&gw, Method::GET, "/api/v1/models?provider_type=openai_compatible", None).await, 200);
        if list["version"] == "2026-11-24.1+ops-2" {
            assert_eq!(list["models"][0]["pricing"]["input_per_million"], 40_000_000);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "overlay not reloaded: {list}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    call_model().await;
    let second = usage_events(&gw, 2).await;
    assert_eq!(second[1].catalog_version.as_deref(), Some("2026-11-24.1+ops-2"));
    assert_eq!(second[1].cost.input, (second[1].usage.input * 40_000_000 + 500_000) / 1_000_000);
    assert_eq!(second[0].cost, first[0].cost, "stored events are never re-priced");

    // a broken edit is loud and changes nothing
    write(&overlay, r#"{"version": "ops-3", "models": [{"provider_type": "openai_compatible", "name": "x"}]}"#);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let list = expect(admin(&gw, Method::GET, "/api/v1/models?provider_type=openai_compatible", None).await, 200);
        if let Some(err) = list["overlay"]["error"].as_str() {
            assert!(err.contains("models[0].effective_date"), "{err}");
            assert_eq!(list["version"], "2026-11-24.1+ops-2");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "overlay error not reported: {list}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = gw.client.get(gw.url("/metrics")).send().await.unwrap_or_else(|e| panic!("{e}"));
    let metrics = metrics.text().await.unwrap_or_default();
    assert!(metrics.contains("tollgate_catalog_overlay_errors_total 1"), "{metrics}");
    assert!(metrics.contains("tollgate_catalog_overlay_reloads_total 1"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_overlay_stops_startup() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let overlay = dir.path().join("overlay.json");
    write(
        &overlay,
        r#"{"version": "bad", "effective_date": "2026-12-01",
        "models": [{"provider_type": "openai", "name": "m", "pricing": {"input_per_million": -5}}]}"#,
    );
    let msg = match TestGateway::start_with(None, move |s| s.catalog_overlay = Some(overlay)).await {
        Ok(_) => panic!("the gateway started with a broken overlay"),
        Err(e) => format!("{e:#}"),
    };
    assert!(msg.contains("--catalog-overlay") && msg.contains("input_per_million"), "{msg}");
}

fn event(id: &str, ts_ms: i64, provider: &str, model: &str, cost_total: i64, status: RequestStatus) -> UsageEvent {
    UsageEvent {
        id: id.into(),
        ts_ms,
        provider: provider.into(),
        provider_type: ProviderType::Anthropic,
        model: Some(model.into()),
        endpoint: "/v1/messages".into(),
        user: Some("bob@example.com".into()),
        agent: Some("etl".into()),
        token_id: None,
        status,
        http_status: Some(200),
        error_class: None,
        streamed: false,
        latency_ms: 5,
        ttft_ms: None,
        usage: Usage { input: 100, output: 10, ..Usage::default() },
        cost: Cost { input: cost_total - 1, output: 1, total: cost_total, ..Cost::default() },
        catalog_version: Some("2026-11-24.1".into()),
        priced_by_override: false,
        unpriced: false,
        request_id: id.into(),
        conversation_id: None,
        transcript: None,
    }
}

/// Spending parameters: the effective window is widened to whole hours, day buckets are
/// zero-filled, the previous period is compared, bad parameters name the field, readers may
/// read, invokers may not, and a scoped token reads only its providers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spending_api_windows_parameters_and_roles() {
    let gw = gateway(TestDb::sqlite().await).await;
    let t0 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
    let h = 3_600_000;
    let usage = tollgate_store::UsageStore::connect(&format!(
        "sqlite://{}?mode=rwc",
        gw.data_dir.join("usage.sqlite").display()
    ))
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let events = vec![
        event("a", t0 + 30 * 60_000, "p1", "claude-sonnet-4-6", 1000, RequestStatus::Success),
        event("b", t0 + 2 * 24 * h + 5, "p1", "claude-sonnet-4-6", 3000, RequestStatus::UpstreamError),
        event("c", t0 - 24 * h, "p2", "claude-haiku-5-5", 500, RequestStatus::Success), // previous period
        event("d", t0 + 3 * h, "p1", "claude-haiku-5-5", 200, RequestStatus::Success),
    ];
    usage.insert_events(&events).await.unwrap_or_else(|e| panic!("{e}"));
    usage.close().await;

    // 00:30 .. 3 days later 00:10 → 00:00 .. 3 days later 01:00
    let window = "start=2026-01-01T00:30:00Z&end=2026-01-04T00:10:00Z";
    let s = expect(admin(&gw, Method::GET, &format!("/api/v1/spending/summary?{window}"), None).await, 200);
    assert_eq!(s["start"], "2026-01-01T00:00:00.000Z");
    assert_eq!(s["end"], "2026-01-04T01:00:00.000Z");
    assert_eq!(s["stats"]["total_cost_microcents"], 4200);
    assert_eq!(s["stats"]["total_requests"], 3);
    assert_eq!(s["stats"]["failed_requests"], 1);
    assert_eq!(s["stats"]["total_tokens"], 330);
    assert_eq!(s["stats"]["buckets"]["output"]["cost_microcents"], 3);
    assert_eq!(s["stats"]["buckets"]["input"]["cost_microcents"], 4197);
    assert_eq!(s["previous"]["total_cost_microcents"], 500);
    assert_eq!(s["previous_end"], "2026-01-01T00:00:00.000Z");

    let ts =
        expect(admin(&gw, Method::GET, &format!("/api/v1/spending/timeseries?{window}&bucket=day"), None).await, 200);
    assert_eq!(ts["bucket"], "day");
    let series = ts["series"].as_array().cloned().unwrap_or_default();
    assert_eq!(series.len(), 1);
    assert_eq!(series[0]["key"], "all");
    let costs: Vec<i64> = series[0]["points"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| p["stats"]["total_cost_microcents"].as_i64().unwrap_or(-1))
        .collect();
    assert_eq!(costs, vec![1200, 0, 3000, 0], "zero-filled days 1..4");
    assert_eq!(series[0]["points"][1]["start"], "2026-01-02T00:00:00.000Z");
    assert_eq!(ts["series"][0]["points"].as_array().map_or(0, Vec::len), 4);
    let daily = expect(admin(&gw, Method::GET, &format!("/api/v1/spending/timeseries?{window}"), None).await, 200);
    assert_eq!(daily["bucket"], "day", "over 2 days: daily by default");
    let two_days = "start=2026-01-01T00:30:00Z&end=2026-01-03T00:00:00Z";
    let hourly = expect(admin(&gw, Method::GET, &format!("/api/v1/spending/timeseries?{two_days}"), None).await, 200);
    assert_eq!(hourly["bucket"], "hour", "up to 2 days: hourly by default");
    // beyond 2 days daily, as the console's Cost & Usage page buckets the same window
    let three_days = "start=2026-01-01T00:00:00Z&end=2026-01-04T00:00:00Z";
    let d3 = expect(admin(&gw, Method::GET, &format!("/api/v1/spending/timeseries?{three_days}"), None).await, 200);
    assert_eq!(d3["bucket"], "day", "3 days: daily by default");
    assert_eq!(hourly["series"][0]["points"].as_array().map_or(0, Vec::len), 48);
    assert_eq!(hourly["series"][0]["points"][0]["stats"]["total_cost_microcents"], 1000);

    let top = expect(
        admin(
            &gw,
            Method::GET,
            &format!("/api/v1/spending/timeseries?{window}&bucket=day&group_by=model&limit=1"),
            None,
        )
        .await,
        200,
    );
    assert_eq!(top["truncated_key_count"], 1);
    let keys: Vec<&str> = top["series"].as_array().into_iter().flatten().filter_map(|s| s["key"].as_str()).collect();
    assert_eq!(keys, vec!["claude-sonnet-4-6", "(other)"]);
    assert_eq!(top["series"][1]["label"], "Other (1 more)");
    assert_eq!(top["series"][1]["points"][0]["stats"]["total_cost_microcents"], 200);
    expect_shape_field(
        admin(&gw, Method::GET, &format!("/api/v1/spending/timeseries?{window}&group_by=model&limit=0"), None).await,
        "limit",
    );
    let by_model = expect(
        admin(&gw, Method::GET, &format!("/api/v1/spending/breakdown?{window}&dimension=model"), None).await,
        200,
    );
    assert_eq!(by_model["entries"][0]["key"], "claude-sonnet-4-6");
    assert_eq!(by_model["entries"][0]["label"], "Claude Sonnet 4.6");
    let by_agent = expect(
        admin(&gw, Method::GET, &format!("/api/v1/spending/breakdown?{window}&dimension=agent&provider=p1"), None)
            .await,
        200,
    );
    assert_eq!(by_agent["entries"][0]["key"], "etl");
    // p1 was never created here: its history is reported as a deleted provider
    let by_provider = expect(
        admin(&gw, Method::GET, &format!("/api/v1/spending/breakdown?{window}&dimension=provider"), None).await,
        200,
    );
    assert_eq!(by_provider["entries"][0]["deleted"], true);

    for (query, field) in [
        ("start=yesterday", "start"),
        ("start=", "start"),
        ("provider_type=azure", "provider_type"),
        ("token_type=cached", "token_type"),
        ("token_type=", "token_type"),
    ] {
        expect_shape_field(admin(&gw, Method::GET, &format!("/api/v1/spending/summary?{query}"), None).await, field);
    }
    // start at or after end: the empty window at end's hour, not an error
    let empty = expect(
        admin(&gw, Method::GET, "/api/v1/spending/summary?start=2026-01-02T00:30:00Z&end=2026-01-01T00:30:00Z", None)
            .await,
        200,
    );
    assert_eq!(
        (empty["start"].clone(), empty["end"].clone()),
        (json!("2026-01-01T00:00:00.000Z"), json!("2026-01-01T00:00:00.000Z"))
    );
    assert_eq!(empty["stats"]["total_requests"], 0);
    // a time series longer than 10,000 buckets keeps its most recent 10,000
    let long = expect(
        admin(
            &gw,
            Method::GET,
            "/api/v1/spending/timeseries?start=2020-01-01T00:00:00Z&end=2026-01-01T00:00:00Z&bucket=hour",
            None,
        )
        .await,
        200,
    );
    assert_eq!(long["series"][0]["points"].as_array().map(Vec::len), Some(10_000));
    assert_eq!(long["end"], "2026-01-01T00:00:00.000Z");
    assert_eq!(long["start"], "2024-11-10T08:00:00.000Z");
    expect_shape_field(admin(&gw, Method::GET, "/api/v1/spending/breakdown", None).await, "dimension");
    expect_shape_field(admin(&gw, Method::GET, "/api/v1/spending/breakdown?dimension=colour", None).await, "dimension");
    expect_shape_field(admin(&gw, Method::GET, "/api/v1/spending/timeseries?bucket=week", None).await, "bucket");
    // a duplicated parameter is answered as JSON naming the problem, like every admin error
    let dup = expect(admin(&gw, Method::GET, "/api/v1/spending/timeseries?bucket=day&bucket=hour", None).await, 400);
    assert!(dup["error"]["message"].as_str().is_some_and(|m| m.contains("duplicate field")), "{dup}");

    let reader = gw.token("reader").await.unwrap_or_else(|e| panic!("{e:#}"));
    let invoker = gw.token("invoker").await.unwrap_or_else(|e| panic!("{e:#}"));
    expect(call(&gw, Method::GET, &format!("/api/v1/spending/summary?{window}"), Some(&reader), None).await, 200);
    expect(call(&gw, Method::GET, "/api/v1/spending/summary", Some(&invoker), None).await, 403);
    expect(call(&gw, Method::GET, "/api/v1/spending/summary", None, None).await, 401);
    let scoped = expect(
        admin(&gw, Method::POST, "/api/v1/tokens", Some(json!({"name": "s", "role": "reader", "providers": ["p2"]})))
            .await,
        201,
    )["token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    expect(call(&gw, Method::GET, "/api/v1/spending/summary?provider=p1", Some(&scoped), None).await, 403);
    // without `provider` a scoped token reads its scope's providers only (as the console does)
    let wide = "start=2025-12-31T00:00:00Z&end=2026-01-05T00:00:00Z";
    let scope_only = expect(
        call(&gw, Method::GET, &format!("/api/v1/spending/breakdown?{wide}&dimension=provider"), Some(&scoped), None)
            .await,
        200,
    );
    let keys: Vec<&str> =
        scope_only["entries"].as_array().into_iter().flatten().filter_map(|e| e["key"].as_str()).collect();
    assert_eq!(keys, vec!["p2"], "{scope_only}");
    let all =
        expect(call(&gw, Method::GET, &format!("/api/v1/spending/summary?{wide}"), Some(&scoped), None).await, 200);
    assert_eq!(all["stats"]["total_cost_microcents"], 500);
    let own = expect(
        call(
            &gw,
            Method::GET,
            "/api/v1/spending/summary?provider=p2&start=2025-12-31T00:00:00Z&end=2026-01-01T00:00:00Z",
            Some(&scoped),
            None,
        )
        .await,
        200,
    );
    assert_eq!(own["stats"]["total_cost_microcents"], 500);
}
