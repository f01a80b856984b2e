//! CI smoke of the benchmark harness (`bench/`): the mock upstream, a real gateway in front of
//! it and the load client, for two seconds of P1 (closed loop, instant JSON) and one of P2
//! (streams with usage). Correctness only — every answer 2xx and carrying usage, and exactly
//! one usage event per answer in the store — never a timing gate: speed is `bench/run.sh`'s.

use crate::proxy::usage_events;
use crate::support::*;
use std::time::Duration;
use tollgate_bench::load::{self, LoadConfig};
use tollgate_bench::mock::{Mock, MockConfig, PROMPT_TOKENS};
use tollgate_core::RequestStatus;

const UPSTREAM_KEY: &str = "sk-bench-smoke-upstream";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p1_and_p2_through_the_gateway_meter_every_answer_once() {
    let mock = match Mock::start(
        ([127, 0, 0, 1], 0).into(),
        MockConfig { key: Some(UPSTREAM_KEY.into()), ..MockConfig::default() },
    )
    .await
    {
        Ok(m) => m,
        Err(e) => panic!("mock: {e:#}"),
    };
    let gw = gateway(TestDb::sqlite().await).await;
    secret(&gw, "MOCK_API_KEY", UPSTREAM_KEY).await;
    let provider = json!({"name": "mock", "display_name": "Bench mock", "type": "openai_compatible",
        "openai_compatible_config": {"base_url": mock.base_url(), "api_key_ref": "MOCK_API_KEY"}});
    expect(admin(&gw, Method::POST, "/api/v1/llm-providers", Some(provider)).await, 201);
    let token = gw.token("invoker").await.unwrap_or_else(|e| panic!("{e:#}"));

    let mut answers = 0;
    for (stream, secs) in [(false, 2), (true, 1)] {
        let url = gw.url("/llm/v1/providers/mock/chat/completions").parse().unwrap_or_else(|e| panic!("{e}"));
        let mut cfg = LoadConfig::new(url);
        cfg.token = Some(token.clone());
        cfg.stream = stream;
        cfg.connections = 4;
        cfg.warmup = Duration::from_millis(200);
        cfg.duration = Duration::from_secs(secs);
        cfg.watch_pid = Some(std::process::id());
        let r = load::run(cfg).await.unwrap_or_else(|e| panic!("load: {e:#}"));
        assert!(r.requests > 0, "{r:?}");
        assert_eq!(r.errors, 0, "{:?}", r.first_error);
        assert_eq!(r.missing_usage, 0, "{r:?}");
        assert_eq!(r.total_2xx, r.total_responses, "{r:?}");
        assert!(r.total_2xx >= r.requests, "{r:?}");
        assert_eq!(r.ttft_us.is_some(), stream);
        assert!(r.latency_us.p50 > 0 && r.latency_us.p50 <= r.latency_us.p99, "{r:?}");
        assert!(r.proxy.as_ref().is_some_and(|p| p.rss_peak_kib > 0), "{r:?}");
        answers += r.total_2xx as usize;
    }

    let events = usage_events(&gw, answers).await;
    let streamed = events.iter().filter(|e| e.streamed).count();
    assert!(streamed > 0 && streamed < answers, "{streamed} of {answers} streamed");
    for e in &events {
        assert_eq!((e.status, e.http_status), (RequestStatus::Success, Some(200)), "{e:?}");
        assert_eq!(e.usage.input, PROMPT_TOKENS as i64, "{e:?}");
        assert_eq!(e.usage.output, if e.streamed { 19 } else { 7 }, "{e:?}");
    }
}

/// The two settings the benchmark runs the binary with: `--worker-threads 1` serves, and
/// `--usage-recording=false` proxies without queueing or storing a single usage event (the
/// metrics still count the forwarded requests).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_with_one_worker_and_recording_off_proxies_but_stores_no_usage() {
    use crate::serve_binary::BIN;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let refused = std::process::Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--worker-threads", "0", "--data-dir"])
        .arg(dir.path().join("refused"))
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--worker-threads must be at least 1"));

    let data = dir.path().join("data");
    let (served, _mock, client, admin_token) =
        serve_with_mock(&data, &["--worker-threads", "1", "--usage-recording=false"]).await;
    let base = served.base_url.clone();
    for stream in [false, true, false] {
        let resp = client
            .post(format!("{base}/llm/v1/providers/mock/chat/completions"))
            .bearer_auth(&admin_token)
            .header("content-type", "application/json")
            .body(load::request_body(stream))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(resp.status(), 200);
        let body = resp.text().await.unwrap_or_default();
        assert!(body.contains(r#""usage":{"prompt_tokens":12"#), "{body}");
    }
    let metrics = client.get(format!("{base}/metrics")).send().await.unwrap_or_else(|e| panic!("{e}"));
    let metrics = metrics.text().await.unwrap_or_default();
    assert!(metrics.contains("tollgate_proxy_requests_forwarded_total 3"), "{metrics}");
    assert!(metrics.contains("tollgate_usage_events_queued_total 0"), "{metrics}");
    served.terminate();
    let usage = tollgate_store::UsageStore::connect(&format!("sqlite://{}", data.join("usage.sqlite").display()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(usage.count_events().await.unwrap_or(-1), 0);
}

/// The binary serving from `data` with `args`, and an `openai_compatible` provider "mock" in
/// front of a bench mock: the server, the mock (kept alive), a client and the admin token.
async fn serve_with_mock(
    data: &std::path::Path,
    args: &[&str],
) -> (crate::serve_binary::Served, Mock, reqwest::Client, String) {
    let mock =
        Mock::start(([127, 0, 0, 1], 0).into(), MockConfig { key: Some(UPSTREAM_KEY.into()), ..MockConfig::default() })
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
    let served = crate::serve_binary::serve(data, args, &[]);
    let admin_token = std::fs::read_to_string(data.join("admin.token")).unwrap_or_default().trim().to_string();
    let client = reqwest::Client::new();
    let base = served.base_url.clone();
    let put = client
        .put(format!("{base}/api/v1/secrets/MOCK_API_KEY"))
        .bearer_auth(&admin_token)
        .json(&json!({"value": UPSTREAM_KEY}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(put.status(), 201);
    let provider = json!({"name": "mock", "display_name": "Bench mock", "type": "openai_compatible",
        "openai_compatible_config": {"base_url": mock.base_url(), "api_key_ref": "MOCK_API_KEY"}});
    let created = client
        .post(format!("{base}/api/v1/llm-providers"))
        .bearer_auth(&admin_token)
        .json(&provider)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(created.status(), 201);
    (served, mock, client, admin_token)
}

/// `--usage-batch-size`: a full batch is committed at once, without waiting for the flush
/// interval (an hour here); the rest is committed by the drain at SIGTERM. Out of range is
/// refused, naming the flag and its bounds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_usage_batch_is_committed_without_waiting_for_the_interval() {
    use crate::serve_binary::BIN;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for bad in ["0", "10001"] {
        let refused = std::process::Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--usage-batch-size", bad, "--data-dir"])
            .arg(dir.path().join("refused"))
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!refused.status.success());
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains("--usage-batch-size must be between 1 and 10000"), "{stderr}");
    }

    let data = dir.path().join("data");
    let args = ["--usage-batch-size", "2", "--usage-flush-interval-ms", "3600000"];
    let (served, _mock, client, admin_token) = serve_with_mock(&data, &args).await;
    let base = served.base_url.clone();
    let call = || {
        client
            .post(format!("{base}/llm/v1/providers/mock/chat/completions"))
            .bearer_auth(&admin_token)
            .header("content-type", "application/json")
            .body(load::request_body(false))
            .send()
    };
    let written = || async {
        let text = client.get(format!("{base}/metrics")).send().await.unwrap_or_else(|e| panic!("{e}"));
        let text = text.text().await.unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix("tollgate_usage_events_written_total "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    for _ in 0..3 {
        assert_eq!(call().await.unwrap_or_else(|e| panic!("{e}")).status(), 200);
    }
    // Two events make a full batch: committed while the third waits for the hour's flush.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while written().await < 2 {
        assert!(std::time::Instant::now() < deadline, "the full batch was not committed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(written().await, 2, "only full batches are committed before the interval");
    served.terminate();
    let usage = tollgate_store::UsageStore::connect(&format!("sqlite://{}", data.join("usage.sqlite").display()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(usage.count_events().await.unwrap_or(-1), 3, "the drain at SIGTERM commits the third");
}

/// Open loop against a target slower than the rate: requests the target never got to count
/// as errors instead of being sent after the run's end, which drained the backlog for minutes
/// (a 5,000 req/s schedule against a peer that serves ~100 req/s). Had the backlog been
/// drained, nearly all 1,000 requests would be answered and none would be an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_counts_unsent_requests_and_ends_on_time() {
    let mock = match Mock::start(
        ([127, 0, 0, 1], 0).into(),
        MockConfig { latency: Duration::from_millis(50), ..MockConfig::default() },
    )
    .await
    {
        Ok(m) => m,
        Err(e) => panic!("mock: {e:#}"),
    };
    let url = format!("{}/chat/completions", mock.base_url()).parse().unwrap_or_else(|e| panic!("{e}"));
    let mut cfg = LoadConfig::new(url);
    cfg.connections = 2;
    cfg.rate = Some(1000.0);
    cfg.warmup = Duration::ZERO;
    cfg.duration = Duration::from_secs(1);
    let r = load::run(cfg).await.unwrap_or_else(|e| panic!("load: {e:#}"));
    // Two connections at 50 ms per answer serve ~40 of the 1,000 scheduled requests; draining
    // the rest would take ~25 s.
    assert!(r.total_2xx > 0 && r.total_2xx < 100, "{r:?}");
    assert!(r.errors >= 800, "the unsent requests are errors: {r:?}");
    assert!(r.first_error.as_deref().is_some_and(|e| e.contains("not started before the end")), "{r:?}");
}
