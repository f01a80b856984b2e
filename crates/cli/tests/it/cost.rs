//! The cost conformance suite: every case under `tests/fixtures/cost/` goes through the real
//! proxy to a real fake upstream replying with the case's recorded body, then the stored usage
//! event must carry exactly the case's buckets, cost per bucket (worked out by hand in the
//! case's `why`), catalog version and flags, and the spending API must add them up.
//!
//! A case is one JSON file: the provider type, the provider's `custom_pricing` for the model
//! (or null), the request, the upstream reply (`response` JSON or `response_text` raw/SSE) and
//! `expected`. Bedrock cases go to a fake AWS that verifies every request's SigV4 signature;
//! their event-stream replies are `response_events` (the `.events.json` frame description,
//! encoded into real frames) and InvokeModel's token-count headers are `response_headers`.
//! Adding a case is adding a file. Each case gets its own provider, so overrides and
//! per-provider totals stay separate.

use crate::both_backends;
use crate::proxy::{AWS_KEY, UPSTREAM_KEY, key_ref, provider_at, ptype, sdk_auth, send, usage_events};
use crate::support::*;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};

use std::time::Duration;
use tollgate_core::{Bucket, Cost, Usage};
use tollgate_store::UsageEvent;
use tollgate_testkit::upstream::{FakeUpstream, Reply, Step, split_sse_events};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CostCase {
    description: String,
    /// The incumbent mistake (ARCHITECTURE.md, Decisions: Mistakes the incumbents made) this case guards against, if it is a named regression case.
    #[serde(default)]
    regression: Option<String>,
    provider_type: String,
    custom_pricing: Option<Value>,
    method: String,
    path: String,
    #[serde(default)]
    query: Option<String>,
    request: Value,
    status: u16,
    content_type: String,
    #[serde(default)]
    response: Option<Value>,
    #[serde(default)]
    response_text: Option<String>,
    /// An AWS event stream, described frame by frame (see `tollgate_protocol::fixture`).
    #[serde(default)]
    response_events: Option<Value>,
    /// Upstream response headers besides the content type (Bedrock's token counts).
    #[serde(default)]
    response_headers: Vec<(String, String)>,
    expected: Expected,
    why: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    model: String,
    usage: Usage,
    cost: Cost,
    unpriced: bool,
    priced_by_override: bool,
}

fn cases() -> Vec<(String, CostCase)> {
    tollgate_testkit::fixtures::documents("cost").unwrap_or_else(|e| panic!("{e:#}"))
}

/// The fixture set itself is sound: buckets add up, the named regressions (ARCHITECTURE.md,
/// Decisions: Mistakes the incumbents made) are present, every provider type and the stream /
/// non-stream split are covered.
#[test]
fn the_cost_fixtures_are_consistent() {
    let all = cases();
    assert!(all.len() >= 60, "only {} cost cases", all.len());
    for (name, c) in &all {
        let e = &c.expected;
        let sum: i64 = Bucket::ALL.iter().map(|b| e.cost.get(*b)).sum();
        assert_eq!(sum, e.cost.total, "{name}: buckets do not add up to the total");
        assert!(!c.why.is_empty() && !c.description.is_empty(), "{name}: explain the arithmetic");
        let bodies = [c.response.is_some(), c.response_text.is_some(), c.response_events.is_some()];
        assert_eq!(
            bodies.iter().filter(|b| **b).count(),
            1,
            "{name}: exactly one of response, response_text, response_events"
        );
        assert_eq!(
            c.response_events.is_some(),
            c.content_type == "application/vnd.amazon.eventstream",
            "{name}: response_events is for AWS event streams"
        );
        assert_eq!(c.method, "POST", "{name}");
        if e.unpriced {
            assert_eq!(e.cost.total, 0, "{name}: an unpriced case costs 0");
        }
    }
    for regression in [
        "cache writes charged twice or reads billed as input",
        "1-hour cache writes priced at the 5-minute rate",
        "streams losing usage or cache counts",
        "Gemini thinking tokens left out of output cost",
        "stream usage missing unless the client asked for it",
        "a silent fallback to a stale price file",
    ] {
        assert!(
            all.iter().any(|(_, c)| c.regression.as_deref().is_some_and(|r| r.contains(regression))),
            "no named case for the incumbent mistake: {regression}"
        );
    }
    for kind in ["openai", "anthropic", "google", "openai_compatible", "bedrock", "azure_openai"] {
        for stream in [false, true] {
            assert!(
                all.iter().any(|(_, c)| c.provider_type == kind && is_stream(c) == stream),
                "no {kind} case with stream={stream}"
            );
        }
    }
}

fn is_stream(c: &CostCase) -> bool {
    c.content_type.contains("event-stream") || c.content_type.contains("eventstream")
}

/// The Bedrock cases cover all four native endpoints, streamed and not, at the headline rate,
/// a geographic profile's own rate, headline × 1.10 for a profile the catalog lacks, `global.`,
/// overrides and override 0.
#[test]
fn the_bedrock_cost_fixtures_cover_the_matrix() {
    let all = cases();
    let bedrock: Vec<&(String, CostCase)> = all.iter().filter(|(_, c)| c.provider_type == "bedrock").collect();
    for action in ["/converse", "/converse-stream", "/invoke", "/invoke-with-response-stream"] {
        let at: Vec<&str> = bedrock.iter().filter(|(_, c)| c.path.ends_with(action)).map(|(n, _)| n.as_str()).collect();
        for variant in [
            "no-cache",
            "cache-read",
            "cache-write-5m",
            "cache-write-1h",
            "geo-profile",
            "geo-profile-not-in-catalog",
            "global-profile",
            "override",
            "override-0",
            "long-context",
        ] {
            let action_name = action.trim_start_matches('/').replace("-with-response", "");
            let want = format!("bedrock-{action_name}-{variant}");
            assert!(at.contains(&want.as_str()), "no {want} case for {action}: {at:?}");
        }
    }
    assert!(bedrock.iter().any(|(_, c)| c.expected.usage.reasoning > 0 && is_stream(c)));
    assert!(bedrock.iter().any(|(_, c)| c.expected.usage.reasoning > 0 && !is_stream(c)));
    assert!(bedrock.iter().any(|(_, c)| c.expected.usage.cache_write_unknown > 0));
    assert!(bedrock.iter().any(|(_, c)| c.expected.model.starts_with("arn:aws:bedrock:")));
}

/// The secret a provider type references (keyless OpenAI-compatible: none).
/// The frames of a case's AWS event stream.
fn event_frames(description: &Value) -> Vec<bytes::Bytes> {
    tollgate_protocol::fixture::event_stream_frames(description.to_string().as_bytes())
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(bytes::Bytes::from)
        .collect()
}

fn reply(c: &CostCase) -> Reply {
    let mut reply = body_reply(c);
    for (name, value) in &c.response_headers {
        reply = reply.with_header(name, value);
    }
    reply
}

fn body_reply(c: &CostCase) -> Reply {
    if let Some(events) = &c.response_events {
        let mut steps = Vec::new();
        for (i, frame) in event_frames(events).into_iter().enumerate() {
            if i > 0 {
                steps.push(Step::Sleep(Duration::from_millis(1)));
            }
            steps.push(Step::Send(frame));
        }
        return Reply::script(c.status, &c.content_type, steps);
    }
    match (&c.response, &c.response_text) {
        (Some(v), _) => Reply::raw(c.status, &c.content_type, v.to_string()),
        (None, Some(text)) if c.content_type.contains("event-stream") => {
            let mut steps = Vec::new();
            for (i, ev) in split_sse_events(text.as_bytes()).into_iter().enumerate() {
                if i > 0 {
                    steps.push(Step::Sleep(Duration::from_millis(1)));
                }
                steps.push(Step::Send(ev));
            }
            Reply::script(c.status, &c.content_type, steps)
        }
        (None, Some(text)) => Reply::raw(c.status, &c.content_type, text.clone()),
        (None, None) => panic!("case without a response"),
    }
}

fn sum_of<'a>(cases: impl Iterator<Item = &'a CostCase>) -> (Usage, Cost) {
    let (mut u, mut c) = (Usage::default(), Cost::default());
    for case in cases {
        let (x, y) = (&case.expected.usage, &case.expected.cost);
        u.input += x.input;
        u.output += x.output;
        u.reasoning += x.reasoning;
        u.cached_input += x.cached_input;
        u.cache_write_5m += x.cache_write_5m;
        u.cache_write_1h += x.cache_write_1h;
        u.cache_write_unknown += x.cache_write_unknown;
        c.input += y.input;
        c.output += y.output;
        c.reasoning += y.reasoning;
        c.cached_input += y.cached_input;
        c.cache_write_5m += y.cache_write_5m;
        c.cache_write_1h += y.cache_write_1h;
        c.cache_write_unknown += y.cache_write_unknown;
        c.total += y.total;
    }
    (u, c)
}

fn i(v: &Value) -> i64 {
    v.as_i64().unwrap_or_else(|| panic!("not an integer: {v}"))
}

/// Runs every case through the proxy, then checks the stored events and the spending API.
async fn conformance(db: TestDb) {
    let cases = cases();
    let gw = gateway(db).await;
    let mut ups: HashMap<&str, FakeUpstream> = HashMap::new();
    let aws_key = format!("{}:{}", AWS_KEY.0, AWS_KEY.1);
    for kind in ["openai", "anthropic", "google", "openai_compatible", "bedrock", "azure_openai"] {
        let credential = if kind == "bedrock" { Some(aws_key.as_str()) } else { key_ref(kind).map(|_| UPSTREAM_KEY) };
        let up = FakeUpstream::start(ptype(kind), credential).await.unwrap_or_else(|e| panic!("{e:#}"));
        if let Some(r) = key_ref(kind) {
            secret(&gw, r, UPSTREAM_KEY).await;
        }
        ups.insert(kind, up);
    }
    secret(&gw, "AWS_ACCESS_KEY_ID", AWS_KEY.0).await;
    secret(&gw, "AWS_SECRET_ACCESS_KEY", AWS_KEY.1).await;
    let created = expect(
        admin(
            &gw,
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "cost", "role": "invoker", "user": "alice@example.com", "agent": "pricing-bot"})),
        )
        .await,
        201,
    );
    let token = created["token"].as_str().unwrap_or_default().to_string();
    let catalog_version = expect(admin(&gw, Method::GET, "/api/v1/models?page_size=1", None).await, 200)["version"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!catalog_version.is_empty());
    let started = tollgate_server::time::system_now_ms();

    // One provider per case, so its override applies to it alone.
    let mut provider_of: BTreeMap<String, &CostCase> = BTreeMap::new();
    let mut names = Vec::new();
    for (n, (file, c)) in cases.iter().enumerate() {
        let kind = c.provider_type.as_str();
        let up = ups.get(kind).unwrap_or_else(|| panic!("{file}: unknown provider_type {kind}"));
        let name = format!("c{n:02}-{}", kind.replace('_', "-"));
        let extra = match &c.custom_pricing {
            Some(p) => json!({"provider_models": [{"name": c.expected.model, "custom_pricing": p}]}),
            None => json!({}),
        };
        let kind_static: &'static str = ptype(kind).as_str();
        expect(
            admin(
                &gw,
                Method::POST,
                "/api/v1/llm-providers",
                Some(provider_at(kind_static, &name, &up.provider_base_url(), extra)),
            )
            .await,
            201,
        );
        provider_of.insert(name.clone(), c);
        names.push((name, kind_static));
    }

    for ((file, c), (name, kind)) in cases.iter().zip(&names) {
        ups[c.provider_type.as_str()].push(reply(c));
        let path = match &c.query {
            Some(q) => format!("{}?{q}", c.path),
            None => c.path.clone(),
        };
        let url = gw.url(&format!("/llm/v1/providers/{name}{path}"));
        let req = sdk_auth(gw.client.request(Method::POST, url), kind, &token).json(&c.request);
        let got = send(req).await;
        assert_eq!(got.status, c.status, "{file}: {}", got.text());
        assert!(!got.body.is_empty(), "{file}: empty body");
        if let Some(v) = &c.response {
            assert_eq!(got.json(), *v, "{file}: the client must receive the upstream's answer");
        }
        if let Some(events) = &c.response_events {
            assert_eq!(got.body.to_vec(), event_frames(events).concat(), "{file}: frames pass through byte for byte");
        }
    }
    // Every Bedrock request was re-signed with the provider's keys and verified by the fake.
    let bedrock_cases = cases.iter().filter(|(_, c)| c.provider_type == "bedrock").count();
    let verified = ups["bedrock"].aws_verified();
    assert_eq!(verified.len(), bedrock_cases, "rejected: {:?}", ups["bedrock"].aws_rejected());
    assert!(verified.iter().all(|v| v.access_key_id == AWS_KEY.0));

    // Stored events: one per case, priced exactly as worked out by hand.
    let events = usage_events(&gw, cases.len()).await;
    let by_provider: HashMap<&str, &UsageEvent> = events.iter().map(|e| (&*e.provider, e)).collect();
    for ((file, c), (name, _)) in cases.iter().zip(&names) {
        let ev = by_provider.get(name.as_str()).unwrap_or_else(|| panic!("{file}: no usage event for {name}"));
        let e = &c.expected;
        let why = c.why.join("\n  ");
        assert_eq!(ev.model.as_deref(), Some(e.model.as_str()), "{file}: model");
        assert_eq!(ev.usage, e.usage, "{file}: usage buckets");
        assert_eq!(ev.cost, e.cost, "{file}: cost per bucket; expected by hand:\n  {why}");
        assert_eq!(ev.unpriced, e.unpriced, "{file}: unpriced");
        assert_eq!(ev.priced_by_override, e.priced_by_override, "{file}: priced_by_override");
        assert_eq!(ev.catalog_version.as_deref(), Some(catalog_version.as_str()), "{file}: catalog version");
        assert_eq!(ev.user.as_deref(), Some("alice@example.com"), "{file}");
        assert_eq!(ev.agent.as_deref(), Some("pricing-bot"), "{file}");
    }

    // The spending API adds them up (from the hourly rollups).
    let (usage, cost) = sum_of(cases.iter().map(|(_, c)| c));
    let unpriced = cases.iter().filter(|(_, c)| c.expected.unpriced).count() as i64;
    let start = tollgate_server::time::rfc3339(started - 3_600_000);
    let end = tollgate_server::time::rfc3339(tollgate_server::time::system_now_ms() + 3_600_000);
    let window = format!("start={start}&end={end}");
    let summary = expect(admin(&gw, Method::GET, &format!("/api/v1/spending/summary?{window}"), None).await, 200);
    let stats = &summary["stats"];
    assert_eq!(i(&stats["total_cost_microcents"]), cost.total, "{summary}");
    assert_eq!(i(&stats["total_requests"]), cases.len() as i64);
    assert_eq!(i(&stats["failed_requests"]), 0);
    assert_eq!(i(&stats["unpriced_requests"]), unpriced);
    assert_eq!(i(&stats["total_tokens"]), usage.total_tokens());
    for b in Bucket::ALL {
        assert_eq!(i(&stats["buckets"][b.as_str()]["tokens"]), usage.get(b), "{} tokens", b.as_str());
        assert_eq!(i(&stats["buckets"][b.as_str()]["cost_microcents"]), cost.get(b), "{} cost", b.as_str());
    }
    assert_eq!(i(&summary["previous"]["total_requests"]), 0, "nothing before the window");

    let breakdown = expect(
        admin(&gw, Method::GET, &format!("/api/v1/spending/breakdown?{window}&dimension=provider"), None).await,
        200,
    );
    let entries = breakdown["entries"].as_array().cloned().unwrap_or_default();
    assert_eq!(entries.len(), cases.len());
    for entry in &entries {
        let key = entry["key"].as_str().unwrap_or_default();
        let c = provider_of.get(key).unwrap_or_else(|| panic!("unknown provider {key}"));
        assert_eq!(i(&entry["stats"]["total_cost_microcents"]), c.expected.cost.total, "{key}");
        assert_eq!(entry["deleted"], false);
        assert_eq!(entry["label"], format!("Test {key}"));
    }
    let by_token = expect(
        admin(&gw, Method::GET, &format!("/api/v1/spending/breakdown?{window}&dimension=token_type"), None).await,
        200,
    );
    for entry in by_token["entries"].as_array().into_iter().flatten() {
        let b = Bucket::parse(entry["key"].as_str().unwrap_or_default()).unwrap_or_else(|| panic!("{entry}"));
        assert_eq!(i(&entry["stats"]["total_cost_microcents"]), cost.get(b), "{}", b.as_str());
        assert_eq!(i(&entry["stats"]["total_tokens"]), usage.get(b), "{}", b.as_str());
    }
    let reasoning_only = expect(
        admin(&gw, Method::GET, &format!("/api/v1/spending/summary?{window}&token_type=reasoning"), None).await,
        200,
    );
    assert_eq!(i(&reasoning_only["stats"]["total_cost_microcents"]), cost.reasoning);
    let by_user = expect(
        admin(&gw, Method::GET, &format!("/api/v1/spending/breakdown?{window}&dimension=user"), None).await,
        200,
    );
    assert_eq!(by_user["entries"][0]["key"], "alice@example.com");
    assert_eq!(i(&by_user["entries"][0]["stats"]["total_cost_microcents"]), cost.total);

    let series = expect(
        admin(
            &gw,
            Method::GET,
            &format!("/api/v1/spending/timeseries?{window}&bucket=hour&group_by=provider_type"),
            None,
        )
        .await,
        200,
    );
    let mut per_type: BTreeMap<String, i64> = BTreeMap::new();
    for (_, c) in &cases {
        *per_type.entry(c.provider_type.clone()).or_default() += c.expected.cost.total;
    }
    let all_series = series["series"].as_array().cloned().unwrap_or_default();
    assert_eq!(all_series.len(), per_type.len(), "{series}");
    let points = all_series[0]["points"].as_array().map_or(0, Vec::len);
    assert!(points >= 2, "zero-filled hourly points over a window of at least two hours");
    for s in &all_series {
        let key = s["key"].as_str().unwrap_or_default();
        let pts = s["points"].as_array().cloned().unwrap_or_default();
        assert_eq!(pts.len(), points, "every series has every bucket");
        let total: i64 = pts.iter().map(|p| i(&p["stats"]["total_cost_microcents"])).sum();
        assert_eq!(Some(&total), per_type.get(key), "series {key}");
    }

    let csv = gw
        .client
        .get(gw.url(&format!("/api/v1/spending/export.csv?{window}&bucket=total&group_by=provider")))
        .bearer_auth(&gw.admin_token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(csv.status().as_u16(), 200);
    assert!(csv.headers()["content-type"].to_str().unwrap_or_default().starts_with("text/csv"));
    let csv = csv.text().await.unwrap_or_default();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("bucket_start,dimension,key,label,deleted,requests"), "{}", lines[0]);
    assert_eq!(lines.len(), cases.len() + 1, "{csv}");
    let csv_total: i64 =
        lines[1..].iter().map(|l| l.split(',').nth(9).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0)).sum();
    assert_eq!(csv_total, cost.total);

    // A deleted provider keeps its history, labelled as deleted.
    let (gone, gone_case) =
        provider_of.iter().next().map(|(k, v)| (k.clone(), *v)).unwrap_or_else(|| panic!("no cases"));
    expect(admin(&gw, Method::DELETE, &format!("/api/v1/llm-providers/{gone}"), None).await, 204);
    let after = expect(
        admin(&gw, Method::GET, &format!("/api/v1/spending/breakdown?{window}&dimension=provider"), None).await,
        200,
    );
    let entry = after["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["key"] == gone.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("deleted provider {gone} vanished from reports"));
    assert_eq!(entry["deleted"], true);
    assert_eq!(entry["label"], gone.as_str());
    assert_eq!(i(&entry["stats"]["total_cost_microcents"]), gone_case.expected.cost.total);

    // Unpriced events are counted for operators.
    let metrics = gw.client.get(gw.url("/metrics")).send().await.unwrap_or_else(|e| panic!("{e}"));
    let metrics = metrics.text().await.unwrap_or_default();
    assert!(metrics.contains(&format!("tollgate_usage_events_unpriced_total {unpriced}")), "{metrics}");
}

both_backends!(conformance);
