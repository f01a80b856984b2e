//! Every recorded fixture under `tests/fixtures/<family>/` replayed through the real proxy:
//! the client receives the upstream's bytes (minus only the documented include_usage chunk),
//! the upstream receives the injected credential and never the gateway token, and the stored
//! usage event holds exactly the buckets the fixture expects. Adding a case is adding files.

use super::*;
use crate::both_backends;
use std::path::{Path, PathBuf};
use tollgate_core::RequestStatus;
use tollgate_protocol::fixture::Case;
use tollgate_testkit::upstream::{Reply as UpReply, fixtures_dir};

fn cases(family: &str) -> Vec<(PathBuf, Case)> {
    let dir = fixtures_dir().join(family);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".case.json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let case: Case = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, case)
        })
        .collect()
}

fn read(dir: &Path, file: &str) -> Vec<u8> {
    let raw = std::fs::read(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    if file.ends_with(".events.json") {
        return tollgate_protocol::fixture::event_stream_frames(&raw)
            .unwrap_or_else(|e| panic!("{file}: {e}"))
            .concat();
    }
    raw
}

/// Replays every case of `family` through a provider of type `kind`.
async fn replay(db: TestDb, kind: &'static str, family: &str) {
    let rig = Rig::new(db, kind, json!({})).await;
    let cases = cases(family);
    for (i, (file, case)) in cases.iter().enumerate() {
        let label = file.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        rig.up.push(UpReply::from_case(file, Duration::from_millis(2)).unwrap_or_else(|e| panic!("{label}: {e:#}")));
        let path = match &case.query {
            Some(q) => format!("{}?{q}", case.path),
            None => case.path.clone(),
        };
        let method = Method::from_bytes(case.method.as_bytes()).unwrap_or(Method::POST);
        let mut req = rig.request(method, &path);
        if let Some(body) = &case.request {
            req = req.json(body);
        }
        let got = send(req).await;
        let dir = file.parent().unwrap_or(Path::new("."));
        let want = read(dir, case.client_response.as_deref().unwrap_or(&case.response));
        assert_eq!(got.status, case.status, "{label}: {}", got.text());
        assert_eq!(got.text(), String::from_utf8_lossy(&want), "{label}: body differs from the upstream's");
        assert_eq!(&got.body[..], &want[..], "{label}: bytes differ");

        let received = rig.up.wait_requests(i + 1, Duration::from_secs(5)).await.unwrap_or_else(|e| panic!("{e:#}"));
        let up = &received[i];
        assert_credential_swapped(kind, up, &rig.token);
        if let Some(sent) = &case.request {
            let mut upstream_body = up.json().unwrap_or_else(|e| panic!("{label}: {e:#}"));
            if case.injected {
                assert_eq!(
                    upstream_body["stream_options"]["include_usage"], true,
                    "{label}: include_usage not injected"
                );
                if sent.get("stream_options").is_none() {
                    upstream_body.as_object_mut().map(|o| o.remove("stream_options"));
                } else {
                    upstream_body["stream_options"] = sent["stream_options"].clone();
                    upstream_body["stream_options"]["include_usage"] = sent["stream_options"]["include_usage"].clone();
                    if sent["stream_options"].get("include_usage").is_none() {
                        upstream_body["stream_options"].as_object_mut().map(|o| o.remove("include_usage"));
                    }
                }
                assert_eq!(&upstream_body, sent, "{label}: the edit touched more than include_usage");
            } else {
                assert_eq!(up.body, serde_json::to_vec(sent).unwrap_or_default(), "{label}: request body changed");
            }
        }
    }
    let events = rig.events(cases.len()).await;
    for ((file, case), ev) in cases.iter().zip(&events) {
        let label = file.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        assert_eq!(ev.usage, case.usage.unwrap_or_default(), "{label}: usage buckets");
        let want_status = if (200..300).contains(&case.status) && case.stream_error.is_none() {
            RequestStatus::Success
        } else {
            RequestStatus::UpstreamError
        };
        assert_eq!(ev.status, want_status, "{label}: status ({:?})", ev.error_class);
        assert_eq!(ev.http_status, Some(i64::from(case.status)), "{label}");
        assert_eq!(ev.provider, rig.name);
        assert_eq!(ev.provider_type.as_str(), kind);
        assert_eq!(ev.endpoint, case.path, "{label}");
        assert!(ev.token_id.is_some(), "{label}: token id");
        let body_model = case.request.as_ref().and_then(|r| r["model"].as_str()).map(str::to_string);
        if let Some(m) = body_model {
            assert_eq!(ev.model.as_deref(), Some(m.as_str()), "{label}: model");
        }
        let streamed = case.content_type.contains("event-stream")
            || case.content_type.contains("eventstream")
            || case.path.contains("streamGenerate");
        assert_eq!(ev.streamed, streamed, "{label}: streamed");
        assert!(ev.latency_ms >= 0 && ev.ttft_ms.is_some_and(|t| t <= ev.latency_ms), "{label}: timings {ev:?}");
    }
}

async fn openai(db: TestDb) {
    replay(db, "openai", "openai").await;
}

async fn openai_compatible(db: TestDb) {
    replay(db, "openai_compatible", "openai").await;
}

async fn anthropic(db: TestDb) {
    replay(db, "anthropic", "anthropic").await;
}

async fn google(db: TestDb) {
    replay(db, "google", "google").await;
}

async fn bedrock(db: TestDb) {
    replay(db, "bedrock", "bedrock").await;
    // (every replayed request passed the fake's independent SigV4 check, else it got a 403)
}

both_backends!(openai, openai_compatible, anthropic, google, bedrock);
