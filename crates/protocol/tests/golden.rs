//! Golden tests over the recorded wire fixtures in `tests/fixtures/<family>/`: every
//! `*.case.json` is run through `inspect` → `prepare_body` → `Tap`, with the response fed in
//! one chunk, byte by byte, and in odd splits. Adding a case is adding files.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use bytes::Bytes;
use tollgate_protocol::{Case, Endpoint, Tap, WireFamilyId, inspect, prepare_body};

/// The cases of a family, from the shared fixture loader (`tollgate_testkit::fixtures`).
fn cases(family: WireFamilyId) -> Vec<(String, Case, PathBuf)> {
    let all = tollgate_testkit::fixtures::cases(family.as_str()).unwrap_or_else(|e| panic!("{e:#}"));
    all.into_iter().map(|f| (f.name.clone(), f.case.clone(), f.dir().to_path_buf())).collect()
}

/// A fixture body's bytes (`.events.json` descriptions encoded into event-stream frames).
fn body_bytes(dir: &Path, file: &str) -> Vec<u8> {
    tollgate_testkit::fixtures::body_bytes(&dir.join(file)).unwrap_or_else(|e| panic!("{e:#}"))
}

/// Feeds `body` to a fresh tap in pieces of the given sizes (cycled); returns what the client
/// receives, the usage and the stream error.
fn run(
    family: WireFamilyId,
    case: &Case,
    injected: bool,
    body: &[u8],
    sizes: &[usize],
) -> (Vec<u8>, Option<tollgate_protocol::Usage>, Option<String>) {
    let info = inspect(family, &case.method, &case.path, case.query.as_deref(), &case.request_body());
    let mut tap = Tap::new(family, &info, case.status, Some(&case.content_type), injected);
    for (name, value) in &case.response_headers {
        tap.observe_header(name, value);
    }
    let mut out = Vec::new();
    let mut at = 0;
    let mut i = 0;
    while at < body.len() {
        let n = sizes[i % sizes.len()].min(body.len() - at);
        out.extend_from_slice(&tap.feed(Bytes::copy_from_slice(&body[at..at + n])));
        at += n;
        i += 1;
    }
    out.extend_from_slice(&tap.finish());
    assert!(tap.finish().is_empty(), "finish twice");
    (out, tap.usage(), tap.stream_error().map(str::to_string))
}

#[test]
fn every_fixture_case() {
    let mut count = 0;
    for family in WireFamilyId::ALL {
        let all = cases(family);
        assert!(!all.is_empty(), "no cases for {family:?}");
        for (name, case, dir) in all {
            let ctx = format!("{}/{name}", family.as_str());
            count += 1;

            let body = case.request_body();
            let info = inspect(family, &case.method, &case.path, case.query.as_deref(), &body);
            assert_eq!(info.body_error, None, "{ctx}");
            assert_ne!(info.endpoint, Endpoint::Other, "{ctx}: every fixture names a known endpoint");
            let body_model = case.request.as_ref().and_then(|r| r.get("model")).and_then(|m| m.as_str());
            match (family, body_model) {
                (WireFamilyId::Google, _) | (WireFamilyId::Bedrock, None) => {
                    assert_eq!(
                        info.model.is_some(),
                        info.endpoint != Endpoint::ListModels,
                        "{ctx}: model from the path"
                    )
                }
                (_, model) => assert_eq!(info.model.as_deref(), model, "{ctx}"),
            }

            let (sent, injected) = prepare_body(family, &info, Bytes::from(body.clone()));
            assert_eq!(injected, case.injected, "{ctx}: injected");
            if injected {
                let mut expected: serde_json::Value = serde_json::from_slice(&body).unwrap();
                expected["stream_options"] = serde_json::json!({"include_usage": true});
                let got: serde_json::Value = serde_json::from_slice(&sent).unwrap();
                assert_eq!(got, expected, "{ctx}: only stream_options changes");
            } else {
                assert_eq!(sent, body, "{ctx}: body unchanged");
            }

            let response = body_bytes(&dir, &case.response);
            let client = body_bytes(&dir, case.client_file());
            assert_eq!(case.client_response.is_some(), injected, "{ctx}: a client file exactly when injected");
            let splits: [&[usize]; 5] = [&[usize::MAX], &[1], &[7, 3, 64], &[13, 1, 250], &[2, 5, 11, 17, 1024]];
            for sizes in splits {
                let (out, usage, error) = run(family, &case, injected, &response, sizes);
                assert_eq!(
                    String::from_utf8_lossy(&out),
                    String::from_utf8_lossy(&client),
                    "{ctx}: client bytes with chunk sizes {sizes:?}"
                );
                assert_eq!(usage, case.usage, "{ctx}: usage with chunk sizes {sizes:?}");
                assert_eq!(error, case.stream_error, "{ctx}: stream error with chunk sizes {sizes:?}");
            }
        }
    }
    assert!(count >= 30, "only {count} cases");
}

#[test]
fn injected_cases_actually_drop_bytes() {
    for family in WireFamilyId::ALL {
        for (name, case, dir) in cases(family) {
            if let Some(client) = &case.client_response {
                let upstream = std::fs::read(dir.join(&case.response)).unwrap();
                let client = std::fs::read(dir.join(client)).unwrap();
                assert!(client.len() < upstream.len(), "{name}: the client file is the upstream minus the usage chunk");
            }
        }
    }
}
