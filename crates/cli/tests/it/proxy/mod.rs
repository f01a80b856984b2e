//! The native proxy, end to end: a real gateway in front of real fake upstreams (HTTP servers
//! speaking each provider's wire format), driven over HTTP the way each SDK calls it.

mod azure_openai;
mod bedrock;
mod budgets;
mod config;
mod errors;
mod fixtures;
mod security;
mod streaming;

use crate::support::*;
use bytes::Bytes;
use reqwest::header::HeaderMap;
use std::time::Duration;
use tollgate_core::ProviderType;
use tollgate_store::UsageEvent;
use tollgate_testkit::upstream::FakeUpstream;

/// The upstream key each fake expects; the gateway must inject it.
pub const UPSTREAM_KEY: &str = "sk-upstream-LEAKCHECK-1c4e";

/// One provider type wired to one fake upstream, plus an invoker token.
pub struct Rig {
    pub gw: TestGateway,
    pub up: FakeUpstream,
    pub name: String,
    pub kind: &'static str,
    pub token: String,
}

/// The provider type named `kind` (a test naming an unknown one is a bug in the test).
#[track_caller]
pub fn ptype(kind: &str) -> ProviderType {
    kind.parse().unwrap_or_else(|e| panic!("{e}"))
}

/// The secret the provider of `kind` references (keyless OpenAI-compatible, and Bedrock,
/// which signs with [`AWS_KEY`]: none).
pub fn key_ref(kind: &str) -> Option<&'static str> {
    match ptype(kind) {
        ProviderType::Openai => Some("OPENAI_API_KEY"),
        ProviderType::Anthropic => Some("ANTHROPIC_API_KEY"),
        ProviderType::Google => Some("GOOGLE_AI_API_KEY"),
        ProviderType::AzureOpenai => Some("AZURE_OPENAI_API_KEY"),
        ProviderType::Bedrock | ProviderType::OpenaiCompatible => None,
    }
}

/// The AWS key pair a Bedrock rig signs with (stored as two secrets, known to the fake).
pub const AWS_KEY: (&str, &str) = ("AKIARIGTEST000000001", "aws-secret-LEAKCHECK-rig-7c2e");

/// A provider body of `kind` pointing at `base_url`, merged with `extra`.
pub fn provider_at(kind: &str, name: &str, base_url: &str, extra: Value) -> Value {
    let cfg_key = format!("{kind}_config");
    let url_field = match ptype(kind) {
        ProviderType::AzureOpenai => "endpoint",
        ProviderType::Openai
        | ProviderType::Anthropic
        | ProviderType::Google
        | ProviderType::Bedrock
        | ProviderType::OpenaiCompatible => "base_url",
    };
    let mut cfg = json!({url_field: base_url});
    if let Some(r) = key_ref(kind) {
        cfg["api_key_ref"] = json!(r);
    }
    if kind == "bedrock" {
        cfg["region"] = json!("us-east-1");
        cfg["static_credentials"] =
            json!({"access_key_id_ref": "AWS_ACCESS_KEY_ID", "secret_access_key_ref": "AWS_SECRET_ACCESS_KEY"});
    }
    let mut body = json!({"name": name, "display_name": format!("Test {name}"), "type": kind, cfg_key: cfg});
    merge(&mut body, extra);
    body
}

pub fn merge(into: &mut Value, patch: Value) {
    match (into, patch) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

impl Rig {
    /// A gateway on `db` with one provider `kind` (merged with `extra`) in front of a fake.
    pub async fn new(db: TestDb, kind: &'static str, extra: Value) -> Rig {
        let gw = gateway(db).await;
        Rig::on(gw, kind, extra).await
    }

    /// Adds a provider `kind` and its fake upstream to a running gateway.
    pub async fn on(gw: TestGateway, kind: &'static str, extra: Value) -> Rig {
        let aws_key = format!("{}:{}", AWS_KEY.0, AWS_KEY.1);
        let credential = if kind == "bedrock" { Some(aws_key.as_str()) } else { key_ref(kind).map(|_| UPSTREAM_KEY) };
        let up = match FakeUpstream::start(ptype(kind), credential).await {
            Ok(u) => u,
            Err(e) => panic!("fake upstream: {e:#}"),
        };
        if let Some(r) = key_ref(kind) {
            secret(&gw, r, UPSTREAM_KEY).await;
        }
        if kind == "bedrock" {
            secret(&gw, "AWS_ACCESS_KEY_ID", AWS_KEY.0).await;
            secret(&gw, "AWS_SECRET_ACCESS_KEY", AWS_KEY.1).await;
        }
        let name = format!("p-{}", kind.replace('_', "-"));
        expect(
            admin(
                &gw,
                Method::POST,
                "/api/v1/llm-providers",
                Some(provider_at(kind, &name, &up.provider_base_url(), extra)),
            )
            .await,
            201,
        );
        let token = match gw.token("invoker").await {
            Ok(t) => t,
            Err(e) => panic!("{e:#}"),
        };
        Rig { gw, up, name, kind, token }
    }

    /// The proxy URL of the provider plus `path` (and `?query`).
    pub fn url(&self, path: &str) -> String {
        self.gw.url(&format!("/llm/v1/providers/{}{path}", self.name))
    }

    /// A request carrying the gateway token where this type's SDK puts its key.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let req = self.gw.client.request(method, self.url(path));
        sdk_auth(req, self.kind, &self.token)
    }

    /// POSTs JSON and returns status, headers and the raw body.
    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        send(self.request(Method::POST, path).json(body)).await
    }

    /// Repoints the provider's base URL at a local port where nothing listens.
    pub async fn point_at_nothing(&self) {
        // reserved for the rest of the test process: the provider keeps pointing at it
        let (reserved, dead) = refusing_port();
        std::mem::forget(reserved);
        let patch = json!({format!("{}_config", self.kind): {"base_url": format!("http://127.0.0.1:{dead}")}});
        expect(admin(&self.gw, Method::PATCH, &format!("/api/v1/llm-providers/{}", self.name), Some(patch)).await, 200);
    }

    /// Waits for exactly `n` usage events (failing if more or fewer arrive).
    pub async fn events(&self, n: usize) -> Vec<UsageEvent> {
        usage_events(&self.gw, n).await
    }
}

/// Puts the token where `kind`'s native SDK puts its API key.
pub fn sdk_auth(req: reqwest::RequestBuilder, kind: &str, token: &str) -> reqwest::RequestBuilder {
    match kind {
        "anthropic" => req.header("x-api-key", token).header("anthropic-version", "2023-06-01"),
        "google" => req.header("x-goog-api-key", token),
        "azure_openai" => req.header("api-key", token),
        _ => req.bearer_auth(token),
    }
}

/// A response as the client saw it.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("non-JSON body ({e}): {}", self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub async fn send(req: reqwest::RequestBuilder) -> Reply {
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => panic!("request failed: {e:#}"),
    };
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = match resp.bytes().await {
        Ok(b) => b,
        Err(e) => panic!("reading the body: {e:#}"),
    };
    Reply { status, headers, body }
}

/// Returns the gateway's usage events (oldest first) once it has stored `n`, and asserts there
/// are exactly `n`. `flush_usage` returns only when every request forwarded so far has emitted
/// its one event and the writer has committed it, so the count is final when it returns; the
/// loop only covers requests whose end the gateway has not seen yet (a client that hung up is
/// noticed asynchronously).
pub async fn usage_events(gw: &TestGateway, n: usize) -> Vec<UsageEvent> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        gw.flush_usage().await;
        let events = match gw.usage_events().await {
            Ok(e) => e,
            Err(e) => panic!("reading usage events: {e:#}"),
        };
        if events.len() >= n || std::time::Instant::now() > deadline {
            assert_eq!(events.len(), n, "usage events: {events:#?}");
            return events;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asserts the upstream saw the injected credential and never the gateway token.
#[track_caller]
pub fn assert_credential_swapped(kind: &str, got: &tollgate_testkit::upstream::Received, gateway_token: &str) {
    let expected = match kind {
        "anthropic" => Some(("x-api-key", UPSTREAM_KEY.to_string())),
        "google" => Some(("x-goog-api-key", UPSTREAM_KEY.to_string())),
        "openai" => Some(("authorization", format!("Bearer {UPSTREAM_KEY}"))),
        "azure_openai" => Some(("api-key", UPSTREAM_KEY.to_string())),
        _ => None,
    };
    match expected {
        _ if kind == "bedrock" => {
            let auth = got.header("authorization").unwrap_or_default();
            let scope = format!("AWS4-HMAC-SHA256 Credential={}/", AWS_KEY.0);
            assert!(auth.starts_with(&scope), "bedrock: a SigV4 signature, not {auth}");
        }
        Some((h, v)) => assert_eq!(got.header(h), Some(v.as_str()), "{kind}: upstream headers {:?}", got.headers),
        None => assert!(got.header("authorization").is_none(), "keyless upstream got {:?}", got.headers),
    }
    // One `Host`, the upstream's own authority (the fake upstreams listen on 127.0.0.1).
    let hosts: Vec<_> = got.headers.get_all("host").iter().filter_map(|v| v.to_str().ok()).collect();
    assert!(
        matches!(&hosts[..], [h] if h.strip_prefix("127.0.0.1:").is_some_and(|p| p.parse::<u16>().is_ok())),
        "{kind}: the upstream's Host, once, not {hosts:?}"
    );
    for (name, value) in &got.headers {
        let v = String::from_utf8_lossy(value.as_bytes());
        assert!(!v.contains(gateway_token), "gateway token leaked upstream in header {name}");
        // The one gateway header sent upstream on purpose: loop detection's hop list.
        assert!(
            !name.as_str().starts_with("x-tollgate") || name.as_str() == "x-tollgate-hop",
            "gateway header {name} leaked upstream"
        );
    }
    assert!(!String::from_utf8_lossy(&got.body).contains(gateway_token), "gateway token leaked in the body");
    assert!(!got.query.clone().unwrap_or_default().contains(gateway_token), "gateway token leaked in the query");
}
