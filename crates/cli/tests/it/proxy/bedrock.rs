//! Bedrock through the running gateway: the AWS SDK's way in (`AWS_BEARER_TOKEN_BEDROCK` =
//! gateway token as `Authorization: Bearer`), SigV4 re-signing verified independently by the
//! fake AWS for every request, the four native paths and the OpenAI-compatible one (stream and
//! non-stream), exact usage buckets including cache reads and writes by TTL, each credential
//! mode (static keys in-process; default chain and AssumeRole through the real binary, whose
//! environment the test controls), upstream 403s passed through, guardrails and profile-only
//! models, control-plane calls (inference profiles, foundation models) on the proxy URL.

use super::*;
use crate::serve_binary::serve;
use tollgate_core::{RequestStatus, Usage};
use tollgate_testkit::upstream::bedrock::{self as fake, Verified};

const AK: &str = "AKIATOLLGATE0TEST001";
const SK: &str = "bedrock-secret-LEAKCHECK-9d1f2a";
const STATIC_USAGE: Usage = Usage {
    input: fake::INPUT_TOKENS as i64,
    output: fake::OUTPUT_TOKENS as i64,
    reasoning: 0,
    cached_input: fake::CACHE_READ_TOKENS as i64,
    cache_write_5m: fake::CACHE_WRITE_5M_TOKENS as i64,
    cache_write_1h: fake::CACHE_WRITE_1H_TOKENS as i64,
    cache_write_unknown: 0,
};

/// A gateway with a static-keys Bedrock provider `p-bedrock` in front of a fake AWS.
struct Aws {
    gw: TestGateway,
    up: FakeUpstream,
    token: String,
}

fn bedrock_body(name: &str, base_url: &str, extra: Value) -> Value {
    let mut body = json!({
        "name": name, "display_name": "Bedrock", "type": "bedrock",
        "bedrock_config": {"region": "us-east-1", "base_url": base_url,
            "static_credentials": {"access_key_id_ref": "AWS_ACCESS_KEY_ID", "secret_access_key_ref": "AWS_SECRET_ACCESS_KEY"}}
    });
    super::merge(&mut body, extra);
    body
}

impl Aws {
    async fn new(db: TestDb, extra: Value) -> Aws {
        Aws::with_overlay(db, extra, None).await
    }

    /// A gateway with a catalog overlay file (`--catalog-overlay`).
    async fn with_overlay(db: TestDb, extra: Value, overlay: Option<std::path::PathBuf>) -> Aws {
        let up = FakeUpstream::start(ProviderType::Bedrock, Some(&format!("{AK}:{SK}")))
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        let control = up.base_url.clone();
        let gw = TestGateway::start_with(Some(db), |s| {
            s.bedrock_control_endpoint = Some(control);
            s.catalog_overlay = overlay;
        })
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
        secret(&gw, "AWS_ACCESS_KEY_ID", AK).await;
        secret(&gw, "AWS_SECRET_ACCESS_KEY", SK).await;
        expect(
            admin(&gw, Method::POST, "/api/v1/llm-providers", Some(bedrock_body("p-bedrock", &up.base_url, extra)))
                .await,
            201,
        );
        let token = gw.token("invoker").await.unwrap_or_else(|e| panic!("{e:#}"));
        Aws { gw, up, token }
    }

    fn url(&self, path: &str) -> String {
        self.gw.url(&format!("/llm/v1/providers/p-bedrock{path}"))
    }

    /// What boto3 sends with `AWS_BEARER_TOKEN_BEDROCK`: the token as a bearer, JSON body.
    async fn post(&self, path: &str, body: &Value) -> Reply {
        send(
            self.gw
                .client
                .post(self.url(path))
                .bearer_auth(&self.token)
                .header("content-type", "application/json")
                .header("accept", "application/json")
                .header("user-agent", "Boto3/1.40.0 md/Botocore#1.40.0 ua/2.1 os/linux")
                .body(body.to_string()),
        )
        .await
    }
}

fn converse_body() -> Value {
    json!({"messages": [{"role": "user", "content": [{"text": "Hello"}]}], "inferenceConfig": {"maxTokens": 64}})
}

fn anthropic_body() -> Value {
    json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 64, "messages": [{"role": "user", "content": "Hello"}]})
}

/// Every upstream request was signed by `ak` (the fake verified each one) and never saw the
/// gateway token.
#[track_caller]
fn assert_signed(up: &FakeUpstream, ak: &str, n: usize, token: &str) {
    let verified: Vec<Verified> = up.aws_verified();
    assert_eq!(verified.len(), n, "verified: {verified:#?}; rejected: {:?}", up.aws_rejected());
    for v in &verified {
        assert_eq!((v.access_key_id.as_str(), v.region.as_str(), v.service.as_str()), (ak, "us-east-1", "bedrock"));
        assert!(
            v.signed_headers.iter().any(|h| h == "content-type")
                || v.path.starts_with("/guardrails")
                || v.path == "/foundation-models"
        );
    }
    for r in up.requests() {
        for (name, value) in &r.headers {
            assert!(!String::from_utf8_lossy(value.as_bytes()).contains(token), "gateway token leaked in {name}");
        }
        assert!(r.header("authorization").is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256 ")), "{:?}", r.headers);
    }
}

async fn native_paths_with_static_keys(db: TestDb) {
    let aws = Aws::new(db, json!({})).await;
    let model = "anthropic.claude-sonnet-4-5-20250929-v1:0";
    let enc = "anthropic.claude-sonnet-4-5-20250929-v1%3A0";

    let r = aws.post(&format!("/model/{enc}/converse"), &converse_body()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["usage"]["cacheWriteInputTokens"], fake::CACHE_WRITE_TOKENS);

    let r = aws.post(&format!("/model/{enc}/converse-stream"), &converse_body()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.headers.get("content-type").and_then(|v| v.to_str().ok()), Some("application/vnd.amazon.eventstream"));
    assert_eq!(
        r.body.to_vec(),
        fake::frames(&fake::converse_stream_events()).concat(),
        "frames pass through byte for byte"
    );

    let r = aws.post(&format!("/model/{enc}/invoke"), &anthropic_body()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["content"][0]["text"], tollgate_testkit::upstream::TEXT);
    assert_eq!(r.headers.get("x-amzn-bedrock-input-token-count").and_then(|v| v.to_str().ok()), Some("31"));

    let r = aws.post(&format!("/model/{enc}/invoke-with-response-stream"), &anthropic_body()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body.to_vec(), fake::frames(&fake::invoke_stream_events(model)).concat());

    // An inference-profile ARN, percent-encoded the way the SDKs send path labels.
    let arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-5-20250929-v1:0";
    let arn_enc = arn.replace(':', "%3A").replace('/', "%2F");
    let r = aws.post(&format!("/model/{arn_enc}/converse"), &converse_body()).await;
    assert_eq!(r.status, 200, "{}", r.text());

    // The OpenAI-compatible endpoint, non-stream and stream (include_usage injected, and the
    // usage-only chunk it caused removed).
    let chat = json!({"model": "openai.gpt-oss-120b-1:0", "messages": [{"role": "user", "content": "Hi"}]});
    let r = aws.post("/openai/v1/chat/completions", &chat).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let mut chat_stream = chat.clone();
    chat_stream["stream"] = json!(true);
    let r = aws.post("/openai/v1/chat/completions", &chat_stream).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(!r.text().contains("\"usage\":{"), "the injected usage chunk is removed: {}", r.text());
    let sent = aws.up.last_request().map(|q| q.json().unwrap_or_default()).unwrap_or_default();
    assert_eq!(sent["stream_options"]["include_usage"], true, "include_usage was signed and sent");

    assert_signed(&aws.up, AK, 7, &aws.token);
    let events = usage_events(&aws.gw, 7).await;
    let openai = Usage {
        input: (tollgate_testkit::upstream::openai::CHAT_PROMPT_TOKENS
            - tollgate_testkit::upstream::openai::CHAT_CACHED_TOKENS) as i64,
        cached_input: tollgate_testkit::upstream::openai::CHAT_CACHED_TOKENS as i64,
        output: (tollgate_testkit::upstream::openai::CHAT_COMPLETION_TOKENS
            - tollgate_testkit::upstream::openai::CHAT_REASONING_TOKENS) as i64,
        reasoning: tollgate_testkit::upstream::openai::CHAT_REASONING_TOKENS as i64,
        ..Usage::default()
    };
    let expected: [(&str, bool, Usage, &str); 7] = [
        (model, false, STATIC_USAGE, "/converse"),
        (model, true, STATIC_USAGE, "/converse-stream"),
        (model, false, STATIC_USAGE, "/invoke"),
        (model, true, STATIC_USAGE, "/invoke-with-response-stream"),
        (arn, false, STATIC_USAGE, "/converse"),
        ("openai.gpt-oss-120b-1:0", false, openai, "/openai/v1/chat/completions"),
        ("openai.gpt-oss-120b-1:0", true, openai, "/openai/v1/chat/completions"),
    ];
    for (e, (m, streamed, usage, suffix)) in events.iter().zip(expected) {
        assert_eq!(e.provider_type, tollgate_core::ProviderType::Bedrock);
        assert_eq!((e.model.as_deref(), e.streamed, e.status), (Some(m), streamed, RequestStatus::Success), "{e:#?}");
        assert_eq!(e.usage, usage, "{}", e.endpoint);
        assert!(e.endpoint.ends_with(suffix), "{}", e.endpoint);
        assert_eq!(e.http_status, Some(200));
    }
    // The upstream's request id is recorded.
    assert_ne!(events[0].request_id, events[0].id);
}

async fn allow_list_and_errors_in_bedrock_shape(db: TestDb) {
    let aws = Aws::new(db, json!({"provider_models": [{"name": "us.anthropic.claude-haiku-4-5-20251001-v1:0"}]})).await;
    let r = aws.post("/model/us.anthropic.claude-haiku-4-5-20251001-v1%3A0/converse", &converse_body()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = aws.post("/model/amazon.nova-pro-v1%3A0/converse", &converse_body()).await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.headers.get("x-amzn-errortype").and_then(|v| v.to_str().ok()), Some("ResourceNotFoundException"));
    assert!(r.json()["message"].as_str().unwrap_or_default().starts_with("model_not_allowed:"), "{}", r.text());
    let r = send(aws.gw.client.post(aws.url("/model/x/converse")).bearer_auth("tg_nope").body("{}")).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.headers.get("x-amzn-errortype").and_then(|v| v.to_str().ok()), Some("UnrecognizedClientException"));
    assert!(r.json()["message"].is_string(), "{}", r.text());
    assert_eq!(aws.up.requests().len(), 1, "refusals never reach the upstream");
    usage_events(&aws.gw, 1).await;
}

async fn tampered_and_expired_credentials_pass_403_through(db: TestDb) {
    let aws = Aws::new(db, json!({})).await;
    // Tampered: the gateway signs with a secret the upstream does not know.
    secret(&aws.gw, "AWS_SECRET_ACCESS_KEY", "not-the-right-secret").await;
    let r = aws.post("/model/amazon.nova-pro-v1%3A0/converse", &converse_body()).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(
        r.headers
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("InvalidSignatureException")),
        "{:?}",
        r.headers
    );
    assert!(r.json()["message"].as_str().unwrap_or_default().contains("signature"), "{}", r.text());
    // Expired: the key itself is no longer valid upstream.
    secret(&aws.gw, "AWS_SECRET_ACCESS_KEY", SK).await;
    aws.up.aws_expire_key(AK);
    let r = aws.post("/model/amazon.nova-pro-v1%3A0/converse-stream", &converse_body()).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(
        r.headers
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("ExpiredTokenException")),
        "{:?}",
        r.headers
    );
    assert_eq!(
        aws.up.aws_rejected(),
        [tollgate_testkit::upstream::sigv4::Rejection::Mismatch, tollgate_testkit::upstream::sigv4::Rejection::Expired]
    );
    let events = usage_events(&aws.gw, 2).await;
    for e in &events {
        assert_eq!(
            (e.status, e.http_status, e.usage),
            (RequestStatus::UpstreamError, Some(403), Usage::default()),
            "{e:#?}"
        );
    }
    assert!(events[1].streamed);
}

/// SigV4 signing that fails for real: the access key id secret holds a line break, so the
/// signature cannot be a header value. A gateway configuration fault: 500
/// `InternalServerException` naming the provider (never the key), counted as
/// `source="internal",reason="signing_failed"`, nothing sent, no usage event — on a model
/// call and on a control-plane call alike.
async fn signing_failure_is_an_internal_error(db: TestDb) {
    let url = db.url().to_string();
    let aws = Aws::new(db, json!({})).await;
    // The API refuses a value with a line break now; one stored before that rule (or read from
    // an env or dir backend) still reaches signing. Written by another handle on the database,
    // as an older version would have; any admin write then reloads this gateway.
    let key = std::fs::read_to_string(aws.gw.data_dir.join("master.key")).unwrap_or_default();
    let master = tollgate_store::MasterKey::from_base64(key.trim()).unwrap_or_else(|e| panic!("{e}"));
    let other = tollgate_store::Store::connect(&url, tollgate_store::Keyring::new(master))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let broken = tollgate_store::SecretValue::new("AKIATOLLGATE\nBROKEN01".to_string());
    other.put_secret("AWS_ACCESS_KEY_ID", &broken, 1).await.unwrap_or_else(|e| panic!("{e}"));
    other.close().await;
    secret(&aws.gw, "UNRELATED", "x").await;
    let r = aws.post("/model/amazon.nova-pro-v1%3A0/converse", &converse_body()).await;
    assert_eq!(r.status, 500, "{}", r.text());
    assert_eq!(r.headers.get("x-amzn-errortype").and_then(|v| v.to_str().ok()), Some("InternalServerException"));
    let message = r.json()["message"].as_str().unwrap_or_default().to_string();
    assert!(message.contains("provider \"p-bedrock\"") && message.contains("could not be signed"), "{message}");
    assert!(!message.contains("BROKEN"), "{message}");
    let r = send(aws.gw.client.get(aws.url("/inference-profiles?type=SYSTEM_DEFINED")).bearer_auth(&aws.token)).await;
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(aws.up.requests().is_empty(), "nothing reaches AWS: {:?}", aws.up.requests().len());
    usage_events(&aws.gw, 0).await;
    let metrics = send(aws.gw.client.get(aws.gw.url("/metrics"))).await.text();
    assert!(
        metrics.contains("tollgate_proxy_requests_refused_total{source=\"internal\",reason=\"signing_failed\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tollgate_proxy_requests_refused_total{source=\"downstream\",reason=\"bad_request\"} 0"),
        "{metrics}"
    );
}

async fn guardrail_is_checked_at_save_and_attached_to_invoke(db: TestDb) {
    let aws = Aws::new(db, json!({})).await;
    // Missing upstream: 400 naming the field, nothing saved.
    let body = bedrock_body("p-guarded", &aws.up.base_url, json!({"bedrock_config": {"guardrail": "gr7x2k4m9p1q:2"}}));
    let err = expect_field(
        admin(&aws.gw, Method::POST, "/api/v1/llm-providers", Some(body.clone())).await,
        "bedrock_config.guardrail",
    );
    assert!(err["error"]["message"].as_str().unwrap_or_default().contains("not found"), "{err}");
    expect(admin(&aws.gw, Method::GET, "/api/v1/llm-providers/p-guarded", None).await, 404);
    // Present: saved; PATCHing to a missing one is refused the same way.
    aws.up.add_guardrail("gr7x2k4m9p1q", "2");
    expect(admin(&aws.gw, Method::POST, "/api/v1/llm-providers", Some(body)).await, 201);
    let patch = json!({"bedrock_config": {"guardrail": "gr7x2k4m9p1q:3"}});
    expect_field(
        admin(&aws.gw, Method::PATCH, "/api/v1/llm-providers/p-guarded", Some(patch)).await,
        "bedrock_config.guardrail",
    );
    let lookups: Vec<Verified> =
        aws.up.aws_verified().into_iter().filter(|v| v.path.starts_with("/guardrails/")).collect();
    assert_eq!(lookups.len(), 3, "each save looked the guardrail up, signed with the provider's key");

    // InvokeModel carries the guardrail headers (replacing the client's); Converse does not.
    let url = aws.gw.url("/llm/v1/providers/p-guarded/model/amazon.titan-text-express-v1/invoke");
    let r = send(
        aws.gw
            .client
            .post(url)
            .bearer_auth(&aws.token)
            .header("content-type", "application/json")
            .header("x-amzn-bedrock-guardrailidentifier", "client-choice")
            .body(json!({"inputText": "Hi"}).to_string()),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let got = aws.up.last_request().unwrap_or_else(|| panic!("no request"));
    assert_eq!(got.header("x-amzn-bedrock-guardrailidentifier"), Some("gr7x2k4m9p1q"));
    assert_eq!(got.header("x-amzn-bedrock-guardrailversion"), Some("2"));
    let url = aws.gw.url("/llm/v1/providers/p-guarded/model/amazon.nova-pro-v1:0/converse");
    let r = send(aws.gw.client.post(url).bearer_auth(&aws.token).body(converse_body().to_string())).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        aws.up.last_request().and_then(|q| q.header("x-amzn-bedrock-guardrailidentifier").map(str::to_string)),
        None
    );
}

async fn connection_check_lists_foundation_models(db: TestDb) {
    let aws = Aws::new(db, json!({})).await;
    let ok = expect(
        admin(
            &aws.gw,
            Method::POST,
            "/api/v1/llm-providers/p-bedrock/check",
            Some(json!({"model": "us.anthropic.claude-haiku-4-5-20251001-v1:0"})),
        )
        .await,
        200,
    );
    assert_eq!(
        (ok["ok"].as_bool(), ok["model_found"].as_bool(), ok["probe"].as_str()),
        (Some(true), Some(true), Some("GET /foundation-models")),
        "{ok}"
    );
    secret(&aws.gw, "AWS_SECRET_ACCESS_KEY", "wrong").await;
    let bad = expect(admin(&aws.gw, Method::POST, "/api/v1/llm-providers/p-bedrock/check", None).await, 200);
    assert_eq!((bad["ok"].as_bool(), bad["upstream_status"].as_u64()), (Some(false), Some(403)), "{bad}");
}

async fn profile_only_models_need_an_inference_profile(db: TestDb) {
    let aws = Aws::new(db, json!({})).await;
    for path in
        ["/model/anthropic.claude-sonnet-4-6/converse", "/model/anthropic.claude-opus-4-7/invoke-with-response-stream"]
    {
        let r = aws.post(path, &anthropic_body()).await;
        assert_eq!(r.status, 400, "{}", r.text());
        assert_eq!(r.headers.get("x-amzn-errortype").and_then(|v| v.to_str().ok()), Some("ValidationException"));
        let msg = r.json()["message"].as_str().unwrap_or_default().to_string();
        assert!(msg.contains("with on-demand throughput isn’t supported"), "{msg}");
        let model = path.split('/').nth(2).unwrap_or_default();
        assert!(msg.contains(&format!("us.{model}")) && msg.contains(&format!("global.{model}")), "{msg}");
    }
    assert!(aws.up.requests().is_empty(), "no upstream call for a refused bare id");
    let r = aws.post("/model/us.anthropic.claude-sonnet-4-6/converse", &converse_body()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let events = usage_events(&aws.gw, 1).await;
    assert_eq!(events[0].model.as_deref(), Some("us.anthropic.claude-sonnet-4-6"));
}

/// The profile-only check reads the live catalog: an operator overlay that marks a model as
/// needing an inference profile (and names its profiles) takes effect on the proxy.
async fn overlay_marks_a_model_profile_only(db: TestDb) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let overlay = dir.path().join("overlay.json");
    let bare = "amazon.nova-pro-v1:0";
    std::fs::write(
        &overlay,
        json!({"version": "ops-profiles", "models": [
            {"provider_type": "bedrock", "name": bare, "requires_inference_profile": true}]})
        .to_string(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let aws = Aws::with_overlay(db, json!({}), Some(overlay)).await;
    let r = aws.post(&format!("/model/{bare}/converse"), &converse_body()).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.headers.get("x-amzn-errortype").and_then(|v| v.to_str().ok()), Some("ValidationException"));
    let msg = r.json()["message"].as_str().unwrap_or_default().to_string();
    assert!(msg.contains(&format!("us.{bare}")), "the catalog's profiles are named: {msg}");
    assert!(aws.up.requests().is_empty(), "no upstream call for a refused bare id");
    let r = aws.post(&format!("/model/us.{bare}/converse"), &converse_body()).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

/// The CLI creates a Bedrock provider with static keys and a guardrail (checked upstream),
/// and its connection check passes.
async fn cli_creates_and_checks_bedrock_providers(db: TestDb) {
    use crate::cli::tg;
    let aws = Aws::new(db, json!({})).await;
    aws.up.add_guardrail("grcli0001", "DRAFT");
    let base = aws.up.base_url.clone();
    let args = [
        "provider",
        "create",
        "p-cli",
        "--bedrock-config.region",
        "us-east-1",
        "--bedrock-config.base-url",
        &base,
        "--bedrock-config.static-credentials.access-key-id-ref",
        "AWS_ACCESS_KEY_ID",
        "--bedrock-config.static-credentials.secret-access-key-ref",
        "AWS_SECRET_ACCESS_KEY",
        "--bedrock-config.guardrail",
        "grcli0001",
    ];
    tg(&aws.gw, &args).ok();
    let got = tg(&aws.gw, &["-o", "json", "provider", "get", "p-cli"]).ok().json();
    assert_eq!(got["bedrock_config"]["guardrail"], "grcli0001", "{got}");
    let bad = tg(&aws.gw, &["provider", "update", "p-cli", "--bedrock-config.guardrail", "missing0001:4"]);
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("bedrock_config.guardrail"), "{}", bad.stderr);
    let check = tg(&aws.gw, &["provider", "check", "p-cli"]).ok();
    assert!(check.stdout.starts_with("PASS GET /foundation-models"), "{}", check.stdout);
}

/// The control-plane calls Bedrock clients make on the proxy URL (Claude Code lists
/// `GET /inference-profiles?type=SYSTEM_DEFINED` at start): served from the control endpoint
/// (a different fake than the runtime base here), signed, narrowed to the allow-list, never
/// metered; refusals and upstream errors in Bedrock's shape.
async fn control_plane_calls_on_the_proxy_url(db: TestDb) {
    let start = || async {
        let up = FakeUpstream::start(ProviderType::Bedrock, Some(&format!("{AK}:{SK}"))).await;
        up.unwrap_or_else(|e| panic!("{e:#}"))
    };
    let (runtime, control) = (start().await, start().await);
    let control_url = control.base_url.clone();
    let gw = TestGateway::start_with(Some(db), |s| s.bedrock_control_endpoint = Some(control_url))
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    secret(&gw, "AWS_ACCESS_KEY_ID", AK).await;
    secret(&gw, "AWS_SECRET_ACCESS_KEY", SK).await;
    // A profile by its id, and a foundation model (which lets its profiles through).
    let allow = json!({"provider_models": [{"name": "us.anthropic.claude-sonnet-4-6"},
                                           {"name": "anthropic.claude-haiku-4-5-20251001-v1:0"}]});
    expect(
        admin(&gw, Method::POST, "/api/v1/llm-providers", Some(bedrock_body("p-bedrock", &runtime.base_url, allow)))
            .await,
        201,
    );
    let token = gw.token("invoker").await.unwrap_or_else(|e| panic!("{e:#}"));
    let get = |path: &str| {
        let url = gw.url(&format!("/llm/v1/providers/p-bedrock{path}"));
        let req = gw.client.get(url).bearer_auth(&token);
        async move { send(req).await }
    };
    let ids = |r: &Reply, list: &str, field: &str| -> Vec<String> {
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()[list]
            .as_array()
            .unwrap_or_else(|| panic!("{}", r.text()))
            .iter()
            .map(|p| p[field].as_str().unwrap_or_default().to_string())
            .collect()
    };

    let r = get("/inference-profiles?type=SYSTEM_DEFINED").await;
    assert_eq!(
        ids(&r, "inferenceProfileSummaries", "inferenceProfileId"),
        [
            "us.anthropic.claude-sonnet-4-6",
            "us.anthropic.claude-haiku-4-5-20251001-v1:0",
            "global.anthropic.claude-haiku-4-5-20251001-v1:0"
        ]
    );
    assert!(r.json()["inferenceProfileSummaries"][0]["models"][0]["modelArn"].is_string(), "{}", r.text());
    // Pagination passes through: the first page of two keeps one, and says where to go on.
    let r = get("/inference-profiles?maxResults=2&type=SYSTEM_DEFINED").await;
    assert_eq!(ids(&r, "inferenceProfileSummaries", "inferenceProfileId"), ["us.anthropic.claude-sonnet-4-6"]);
    assert_eq!(r.json()["nextToken"], "2");

    let r = get("/inference-profiles/us.anthropic.claude-sonnet-4-6").await;
    assert_eq!(
        (r.status, r.json()["inferenceProfileId"].as_str()),
        (200, Some("us.anthropic.claude-sonnet-4-6")),
        "{}",
        r.text()
    );
    let r = get("/inference-profiles/global.anthropic.claude-sonnet-4-6").await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.headers.get("x-amzn-errortype").and_then(|v| v.to_str().ok()), Some("ResourceNotFoundException"));
    assert!(r.json()["message"].as_str().unwrap_or_default().starts_with("model_not_allowed:"), "{}", r.text());
    let r = get("/inference-profiles/us.nope").await;
    assert_eq!(r.status, 404, "the control plane's own 404 passes: {}", r.text());
    assert!(
        r.headers
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .starts_with("ResourceNotFoundException")
    );

    let r = get("/foundation-models").await;
    assert_eq!(ids(&r, "modelSummaries", "modelId"), ["anthropic.claude-haiku-4-5-20251001-v1:0"]);

    // The gateway token is still required.
    let r = send(gw.client.get(gw.url("/llm/v1/providers/p-bedrock/inference-profiles"))).await;
    assert_eq!(r.status, 401, "{}", r.text());

    // Every call went to the control endpoint, signed for service bedrock; none to the runtime.
    assert!(runtime.requests().is_empty(), "runtime got {:?}", runtime.requests());
    let verified = control.aws_verified();
    assert_eq!(verified.len(), 6, "{verified:#?}; rejected {:?}", control.aws_rejected());
    for v in &verified {
        assert_eq!((v.access_key_id.as_str(), v.service.as_str(), v.region.as_str()), (AK, "bedrock", "us-east-1"));
    }
    for q in control.requests() {
        for (name, value) in &q.headers {
            assert!(!String::from_utf8_lossy(value.as_bytes()).contains(&token), "gateway token leaked in {name}");
        }
    }
    // Not model calls: no usage event.
    usage_events(&gw, 0).await;

    // Without an allow-list, the lists pass whole.
    expect(
        admin(&gw, Method::PATCH, "/api/v1/llm-providers/p-bedrock", Some(json!({"provider_models": null}))).await,
        200,
    );
    let r = get("/inference-profiles").await;
    assert_eq!(ids(&r, "inferenceProfileSummaries", "inferenceProfileId").len(), fake::INFERENCE_PROFILES.len());
    usage_events(&gw, 0).await;
}

crate::both_backends!(
    cli_creates_and_checks_bedrock_providers,
    overlay_marks_a_model_profile_only,
    profile_only_models_need_an_inference_profile,
    native_paths_with_static_keys,
    allow_list_and_errors_in_bedrock_shape,
    tampered_and_expired_credentials_pass_403_through,
    signing_failure_is_an_internal_error,
    guardrail_is_checked_at_save_and_attached_to_invoke,
    connection_check_lists_foundation_models,
    control_plane_calls_on_the_proxy_url,
);

// ---------------------------------------------------------------------------------------------
// Default chain and AssumeRole: the real binary, with the AWS environment the test gives it.

/// A `tollgate serve` child whose AWS environment is exactly `aws_env` (plus a private HOME,
/// empty shared config files unless given, and instance metadata disabled unless pointed at
/// the fake), with a Bedrock provider `p-aws` whose `bedrock_config` is merged with `cfg`.
struct Child {
    served: crate::serve_binary::Served,
    data: std::path::PathBuf,
    client: reqwest::Client,
    token: String,
    _dir: tempfile::TempDir,
}

async fn child(up: &FakeUpstream, aws_env: &[(&str, &str)], cfg: Value) -> Child {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let data = dir.path().join("data");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap_or_else(|e| panic!("{e}"));
    let none = dir.path().join("no-such-file").display().to_string();
    let home_s = home.display().to_string();
    let mut envs: Vec<(&str, &str)> = vec![
        ("HOME", &home_s),
        ("AWS_CONFIG_FILE", &none),
        ("AWS_SHARED_CREDENTIALS_FILE", &none),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("TOLLGATE_AWS_STS_ENDPOINT", &up.base_url),
        ("TOLLGATE_USAGE_FLUSH_INTERVAL_MS", "50"),
    ];
    for (k, v) in aws_env {
        envs.retain(|(e, _)| e != k);
        envs.push((k, v));
    }
    let served = serve(&data, &[], &envs);
    let admin_token = std::fs::read_to_string(data.join("admin.token")).unwrap_or_default().trim().to_string();
    let client = reqwest::Client::new();
    let mut body = json!({"name": "p-aws", "display_name": "AWS", "type": "bedrock",
        "bedrock_config": {"region": "us-east-1", "base_url": up.base_url}});
    super::merge(&mut body, json!({"bedrock_config": cfg}));
    let r =
        send(client.post(format!("{}/api/v1/llm-providers", served.base_url)).bearer_auth(&admin_token).json(&body))
            .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = send(
        client
            .post(format!("{}/api/v1/tokens", served.base_url))
            .bearer_auth(&admin_token)
            .json(&json!({"name": "inv", "role": "invoker"})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let token = r.json()["token"].as_str().unwrap_or_default().to_string();
    Child { served, data, client, token, _dir: dir }
}

impl Child {
    async fn post(&self, path: &str, body: &Value) -> Reply {
        let url = format!("{}/llm/v1/providers/p-aws{path}", self.served.base_url);
        send(
            self.client
                .post(url)
                .bearer_auth(&self.token)
                .header("content-type", "application/json")
                .body(body.to_string()),
        )
        .await
    }

    async fn events(&self, n: usize) -> Vec<tollgate_store::UsageEvent> {
        let url = format!("sqlite://{}?mode=rwc", self.data.join("usage.sqlite").display());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let store = tollgate_store::UsageStore::connect(&url).await.unwrap_or_else(|e| panic!("{e}"));
            let events =
                store.list_events(&tollgate_store::UsageQuery { limit: Some(1000), ..Default::default() }).await;
            store.close().await;
            let events = events.unwrap_or_default();
            if events.len() >= n || std::time::Instant::now() > deadline {
                assert_eq!(events.len(), n, "{events:#?}");
                return events;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The child's log must never contain these values.
    fn assert_log_clean(&self, secrets: &[&str]) {
        let log = format!("{}{}", self.served.stdout(), self.served.stderr());
        for s in secrets {
            assert!(!log.contains(s), "secret {s} in the log");
        }
    }
}

async fn start_fake() -> FakeUpstream {
    FakeUpstream::start(ProviderType::Bedrock, None).await.unwrap_or_else(|e| panic!("{e:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_chain_environment_keys() {
    let up = start_fake().await;
    up.aws_add_key("AKIAENVKEYS000000001", "env-secret-LEAKCHECK");
    let c = child(
        &up,
        &[("AWS_ACCESS_KEY_ID", "AKIAENVKEYS000000001"), ("AWS_SECRET_ACCESS_KEY", "env-secret-LEAKCHECK")],
        json!({}),
    )
    .await;
    let r = c.post("/model/amazon.nova-pro-v1%3A0/converse", &converse_body()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = c.post("/model/amazon.nova-pro-v1%3A0/converse-stream", &converse_body()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_signed(&up, "AKIAENVKEYS000000001", 2, &c.token);
    let events = c.events(2).await;
    assert!(events.iter().all(|e| e.usage == STATIC_USAGE), "{events:#?}");
    c.assert_log_clean(&["env-secret-LEAKCHECK"]);
}

/// The default chain finds no credentials at all: an internal error (500 naming the provider),
/// one error line in the log naming the provider, no usage event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_chain_without_credentials_is_an_internal_error() {
    let up = start_fake().await;
    let c = child(&up, &[], json!({})).await;
    let r = c.post("/model/amazon.nova-pro-v1%3A0/converse", &converse_body()).await;
    assert_eq!(r.status, 500, "{}", r.text());
    assert_eq!(r.headers.get("x-amzn-errortype").and_then(|v| v.to_str().ok()), Some("InternalServerException"));
    assert!(r.json()["message"].as_str().unwrap_or_default().contains("provider \"p-aws\""), "{}", r.text());
    assert!(up.requests().is_empty());
    c.events(0).await;
    // Stopping the child is what flushes its log.
    let (stdout, stderr) = c.served.terminate();
    let log = format!("{stdout}{stderr}");
    assert!(
        log.lines()
            .any(|l| l.contains("ERROR") && l.contains("credential_unavailable") && l.contains("provider \"p-aws\"")),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_chain_shared_credentials_profile() {
    let up = start_fake().await;
    up.aws_add_key("AKIAPROFILE000000002", "profile-secret-LEAKCHECK");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = dir.path().join("credentials");
    std::fs::write(
        &file,
        "[default]\naws_access_key_id = AKIAWRONGDEFAULT0000\naws_secret_access_key = nope\n\n\
         [bedrock-team]\naws_access_key_id = AKIAPROFILE000000002\naws_secret_access_key = profile-secret-LEAKCHECK\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let path = file.display().to_string();
    let c = child(&up, &[("AWS_SHARED_CREDENTIALS_FILE", &path), ("AWS_PROFILE", "bedrock-team")], json!({})).await;
    let r = c.post("/model/anthropic.claude-haiku-4-5-20251001-v1%3A0/invoke", &anthropic_body()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = c
        .post("/model/anthropic.claude-haiku-4-5-20251001-v1%3A0/invoke-with-response-stream", &anthropic_body())
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_signed(&up, "AKIAPROFILE000000002", 2, &c.token);
    assert!(c.events(2).await.iter().all(|e| e.usage == STATIC_USAGE));
    c.assert_log_clean(&["profile-secret-LEAKCHECK"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_chain_container_and_instance_metadata() {
    let up = start_fake().await;
    let container = format!("{}/container-credentials", up.base_url);
    let c = child(&up, &[("AWS_CONTAINER_CREDENTIALS_FULL_URI", &container)], json!({})).await;
    for _ in 0..3 {
        let r = c.post("/model/amazon.nova-pro-v1%3A0/converse", &converse_body()).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(up.metadata_credentials_issued(), 1, "container credentials are cached");
    let ak = up.aws_verified()[0].access_key_id.clone();
    assert!(ak.starts_with("ASIAECS"), "{ak}");
    assert!(up.requests().iter().all(|r| r.header("x-amz-security-token").is_some()));
    drop(c);

    let imds = start_fake().await;
    let c = child(
        &imds,
        &[("AWS_EC2_METADATA_DISABLED", "false"), ("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds.base_url)],
        json!({}),
    )
    .await;
    let r = c.post("/model/amazon.nova-pro-v1%3A0/converse-stream", &converse_body()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(imds.metadata_credentials_issued(), 1);
    assert!(imds.aws_verified()[0].access_key_id.starts_with("ASIAIMDS"));
    assert_eq!(c.events(1).await[0].usage, STATIC_USAGE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assume_role_caches_and_passes_expiry_through() {
    let up = start_fake().await;
    up.aws_add_key("AKIABASEIDENTITY0003", "base-secret-LEAKCHECK");
    up.sts_set_lifetime(Duration::from_secs(3600));
    let role = "arn:aws:iam::123456789012:role/bedrock-invoker";
    let c = child(
        &up,
        &[("AWS_ACCESS_KEY_ID", "AKIABASEIDENTITY0003"), ("AWS_SECRET_ACCESS_KEY", "base-secret-LEAKCHECK")],
        json!({"assume_role": {"role_arn": role, "external_id": "ext-42"}}),
    )
    .await;
    // Concurrent first requests share one AssumeRole call.
    let mut tasks = Vec::new();
    for i in 0..6 {
        let (path, body) = if i % 2 == 0 {
            ("/model/amazon.nova-pro-v1%3A0/converse", converse_body())
        } else {
            ("/model/anthropic.claude-haiku-4-5-20251001-v1%3A0/invoke-with-response-stream", anthropic_body())
        };
        let (client, url, token) =
            (c.client.clone(), format!("{}/llm/v1/providers/p-aws{path}", c.served.base_url), c.token.clone());
        tasks.push(tokio::spawn(async move {
            send(client.post(url).bearer_auth(token).body(body.to_string())).await.status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap_or_default(), 200);
    }
    let calls = up.sts_calls();
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert_eq!(calls[0].action, "AssumeRole");
    assert_eq!(calls[0].role_arn.as_deref(), Some(role));
    assert_eq!(calls[0].session_name.as_deref(), Some("tollgate"));
    assert_eq!(calls[0].external_id.as_deref(), Some("ext-42"));
    assert_eq!(
        calls[0].signed_by.as_deref(),
        Some("AKIABASEIDENTITY0003"),
        "STS was called with the default chain's identity"
    );
    let first = calls[0].issued.clone();
    assert!(up.aws_verified().iter().all(|v| v.access_key_id == first));

    // When they are refreshed (within 5 minutes of expiry, or past half a short lifetime) is
    // decided by the gateway's clock: `aws::tests` moves it over the boundaries (no sleeping
    // for a real STS lifetime here, in a process whose clock the test cannot move).

    // The upstream revokes the current credentials early: its 403 is passed through and metered.
    up.aws_expire_key(&first);
    let r = c.post("/model/amazon.nova-pro-v1%3A0/converse", &converse_body()).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(
        r.headers
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("ExpiredTokenException"))
    );
    let events = c.events(7).await;
    let last = events.last().cloned().unwrap_or_else(|| panic!("no events"));
    assert_eq!((last.status, last.http_status), (RequestStatus::UpstreamError, Some(403)));
    assert!(events[..6].iter().all(|e| e.usage == STATIC_USAGE && e.status == RequestStatus::Success), "{events:#?}");
    c.assert_log_clean(&["base-secret-LEAKCHECK", "fake-secret-"]);
}
