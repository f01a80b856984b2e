//! Every recorded fixture under `tests/fixtures/<family>/` replayed through the real proxy:
//! the client receives the upstream's bytes (minus only the documented include_usage chunk),
//! the upstream receives the injected credential and never the gateway token, and the stored
//! usage event holds exactly the buckets the fixture expects. Adding a case is adding files.

use super::*;
use crate::both_backends;
use tollgate_core::RequestStatus;
use tollgate_testkit::fixtures;
use tollgate_testkit::upstream::Reply as UpReply;

/// Replays every case of `family` through a provider of type `kind`.
async fn replay(db: TestDb, kind: &'static str, family: &str) {
    let rig = Rig::new(db, kind, json!({})).await;
    let cases = fixtures::cases(family).unwrap_or_else(|e| panic!("{e:#}"));
    // Each case's event, by the request id the gateway answered with (events read back are
    // ordered by arrival and then id: two cases in the same millisecond may come back either way).
    let mut ids = Vec::with_capacity(cases.len());
    for (i, fx) in cases.iter().enumerate() {
        let (file, case) = (&fx.path, &fx.case);
        let label = format!("{}.case.json", fx.name);
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
        let id = got.headers.get("x-tollgate-request-id").and_then(|v| v.to_str().ok());
        ids.push(id.unwrap_or_else(|| panic!("{label}: no x-tollgate-request-id")).to_string());
        let want = fx
            .file_bytes(case.client_response.as_deref().unwrap_or(&case.response))
            .unwrap_or_else(|e| panic!("{label}: {e:#}"));
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
    let events: Vec<&UsageEvent> = ids
        .iter()
        .map(|id| events.iter().find(|e| e.id == *id).unwrap_or_else(|| panic!("no usage event {id}")))
        .collect();
    for (fx, ev) in cases.iter().zip(events) {
        let (case, label) = (&fx.case, format!("{}.case.json", fx.name));
        assert_eq!(ev.usage, case.usage.unwrap_or_default(), "{label}: usage buckets");
        let want_status = if (200..300).contains(&case.status) && case.stream_error.is_none() {
            RequestStatus::Success
        } else {
            RequestStatus::UpstreamError
        };
        assert_eq!(ev.status, want_status, "{label}: status ({:?})", ev.error_class);
        assert_eq!(ev.http_status, Some(i64::from(case.status)), "{label}");
        assert_eq!(&*ev.provider, &*rig.name);
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
