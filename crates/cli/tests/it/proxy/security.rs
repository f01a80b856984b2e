//! Fault injection against the proxy's and the admin API's security rules (issue 15): path
//! traversal out of the base URL, the upstream address policy, request loops through the
//! gateway, secrets bound to hosts, and the one 401 shape for known and unknown providers.
//! Every attempt must be refused before an upstream call, and the fake "attacker" upstream
//! must receive no credential.

use super::errors::assert_native;
use super::*;
use crate::both_backends;

/// Sends `GET <path>` (raw: not normalised by any URL parser) to the gateway with `headers`
/// and returns the status and body.
async fn raw_get(gw: &TestGateway, path: &str, headers: &[(&str, &str)]) -> Reply {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = gw.base_url.trim_start_matches("http://").to_string();
    let mut head = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap_or_else(|e| panic!("connect: {e}"));
    sock.write_all(head.as_bytes()).await.unwrap_or_else(|e| panic!("write: {e}"));
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), sock.read_to_end(&mut raw))
        .await
        .unwrap_or_else(|_| panic!("no answer"))
        .unwrap_or_else(|e| panic!("read: {e}"));
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| panic!("no head"));
    let head = String::from_utf8_lossy(&raw[..end]).to_string();
    let status: u16 = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{head}"));
    let mut out = HeaderMap::new();
    for line in head.lines().skip(1) {
        if let Some((k, v)) = line.split_once(':')
            && let (Ok(k), Ok(v)) = (reqwest::header::HeaderName::from_bytes(k.trim().as_bytes()), v.trim().parse())
        {
            out.insert(k, v);
        }
    }
    let mut body = raw[end + 4..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        let mut plain = Vec::new();
        let mut p = 0;
        while let Some(eol) = body[p..].windows(2).position(|w| w == b"\r\n") {
            let size = usize::from_str_radix(String::from_utf8_lossy(&body[p..p + eol]).trim(), 16).unwrap_or(0);
            if size == 0 {
                break;
            }
            plain.extend_from_slice(&body[p + eol + 2..p + eol + 2 + size]);
            p += eol + 2 + size + 2;
        }
        body = plain;
    }
    Reply { status, headers: out, body: Bytes::from(body) }
}

/// The headers `kind`'s SDK sends its key in.
fn auth_headers(kind: &str, token: &str) -> Vec<(&'static str, String)> {
    match kind {
        "anthropic" => vec![("x-api-key", token.to_string()), ("anthropic-version", "2023-06-01".into())],
        "google" => vec![("x-goog-api-key", token.to_string())],
        _ => vec![("authorization", format!("Bearer {token}"))],
    }
}

/// Dot segments in every spelling are refused with 400 in the native shape, before any upstream
/// call, for every provider type; the stored key never travels.
async fn path_traversal(db: TestDb) {
    let mut db = Some(db);
    for kind in ["openai", "anthropic", "google", "bedrock"] {
        let gw = match db.take() {
            Some(db) => gateway(db).await,
            None => TestGateway::start().await.unwrap_or_else(|e| panic!("{e:#}")),
        };
        let rig = Rig::on(gw, kind, json!({})).await;
        for attack in [
            "/%2e%2e/%2e%2e/admin/secret",
            "/%2E%2E/admin/secret",
            "/v1/%2e%2e%2fadmin",
            "/x%2f..%2f..%2fadmin",
            "/..%5c..%5cadmin",
            "/./models",
        ] {
            let path = format!("/llm/v1/providers/{}{attack}", rig.name);
            let h = auth_headers(kind, &rig.token);
            let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let r = raw_get(&rig.gw, &path, &h).await;
            if kind == "bedrock" {
                assert_eq!(r.status, 400, "{attack}: {}", r.text());
                assert!(r.text().contains("would leave the provider's base URL"), "{}", r.text());
            } else {
                assert_native(&r, kind, 400, "would leave the provider's base URL");
            }
        }
        assert!(rig.up.requests().is_empty(), "{kind}: the upstream was called: {:?}", rig.up.requests());
    }
}

both_backends!(path_traversal);
