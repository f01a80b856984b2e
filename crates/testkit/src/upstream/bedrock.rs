//! The Bedrock flavor: a fake AWS on one port — bedrock-runtime (InvokeModel, Converse, both
//! streams as real binary event-stream frames, the OpenAI-compatible chat completions), the
//! Bedrock control plane (`GetGuardrail`, `ListFoundationModels`, `ListInferenceProfiles`,
//! `GetInferenceProfile`), STS (`AssumeRole`,
//! `AssumeRoleWithWebIdentity`), and the EC2 instance metadata and container credential
//! endpoints.
//!
//! Every runtime and control-plane request must carry a valid SigV4 signature, checked by the
//! independent verifier in [`super::sigv4`] (scripted replies too: they are served only once
//! the signature passes). A bad signature answers 403 `InvalidSignatureException`, an unknown
//! key or a wrong session token 403 `UnrecognizedClientException`, an expired temporary key
//! 403 `ExpiredTokenException` — all `{"message": …}` with `x-amzn-ErrorType`, as AWS does.
//! STS signs its answers' credentials into the same key registry, with a lifetime the test
//! controls ([`FakeUpstream::sts_set_lifetime`]), and counts its calls.
//!
//! Built-in replies carry the FIXED usage numbers below so tests can assert exact buckets.

use super::*;
use crate::upstream::sigv4::{self, Key, Rejection, Signed};
use std::collections::{HashMap, HashSet};
use std::time::SystemTime;

/// Region the fake expects in credential scopes unless [`FakeUpstream::aws_set_region`] says otherwise.
pub const DEFAULT_REGION: &str = "us-east-1";
/// Uncached input tokens (Converse `inputTokens`, Anthropic `input_tokens`, the input header).
pub const INPUT_TOKENS: u64 = 31;
/// Output tokens.
pub const OUTPUT_TOKENS: u64 = 13;
/// Cache reads.
pub const CACHE_READ_TOKENS: u64 = 200;
/// Cache writes with a 5-minute TTL.
pub const CACHE_WRITE_5M_TOKENS: u64 = 50;
/// Cache writes with a 1-hour TTL.
pub const CACHE_WRITE_1H_TOKENS: u64 = 70;
/// All cache writes.
pub const CACHE_WRITE_TOKENS: u64 = CACHE_WRITE_5M_TOKENS + CACHE_WRITE_1H_TOKENS;
/// `output_tokens` in the Anthropic `message_start` of an invoke stream (replaced later).
pub const STREAM_START_OUTPUT_TOKENS: u64 = 1;
/// Bare foundation-model ids the fake refuses on demand, as Bedrock does for Claude 4.6+.
pub const PROFILE_ONLY: [&str; 3] =
    ["anthropic.claude-sonnet-4-6", "anthropic.claude-opus-4-6-v1", "anthropic.claude-opus-4-7"];
/// Models `GET /foundation-models` lists.
pub const FOUNDATION_MODELS: [&str; 3] =
    ["anthropic.claude-sonnet-4-5-20250929-v1:0", "anthropic.claude-haiku-4-5-20251001-v1:0", "amazon.nova-pro-v1:0"];

/// System-defined inference profiles `GET /inference-profiles` lists: (profile id, the
/// foundation model it routes to).
pub const INFERENCE_PROFILES: [(&str, &str); 5] = [
    ("us.anthropic.claude-sonnet-4-6", "anthropic.claude-sonnet-4-6"),
    ("global.anthropic.claude-sonnet-4-6", "anthropic.claude-sonnet-4-6"),
    ("us.anthropic.claude-haiku-4-5-20251001-v1:0", "anthropic.claude-haiku-4-5-20251001-v1:0"),
    ("global.anthropic.claude-haiku-4-5-20251001-v1:0", "anthropic.claude-haiku-4-5-20251001-v1:0"),
    ("us.amazon.nova-pro-v1:0", "amazon.nova-pro-v1:0"),
];

/// The regions a fake inference profile routes to.
const PROFILE_REGIONS: [&str; 3] = ["us-east-1", "us-east-2", "us-west-2"];

/// One inference profile as `ListInferenceProfiles` and `GetInferenceProfile` describe it.
pub fn inference_profile(region: &str, id: &str, model: &str) -> Value {
    let models: Vec<Value> = PROFILE_REGIONS
        .iter()
        .map(|r| json!({"modelArn": format!("arn:aws:bedrock:{r}::foundation-model/{model}")}))
        .collect();
    let scope = if id.starts_with("global.") { "Global" } else { "US" };
    json!({
        "inferenceProfileName": format!("{scope} {}", model.replace(['.', ':'], " ")),
        "description": format!("Routes requests to {model} in several regions."),
        "createdAt": "2025-09-29T00:00:00Z",
        "updatedAt": "2025-09-29T00:00:00Z",
        "inferenceProfileArn": format!("arn:aws:bedrock:{region}:123456789012:inference-profile/{id}"),
        "models": models,
        "inferenceProfileId": id,
        "status": "ACTIVE",
        "type": "SYSTEM_DEFINED"
    })
}

/// `ListInferenceProfiles`: `type` (`SYSTEM_DEFINED` lists [`INFERENCE_PROFILES`],
/// `APPLICATION` nothing), `maxResults` (1–1000) and `nextToken` pagination.
fn list_inference_profiles(region: &str, req: &Received) -> Reply {
    let kind = req.query_param("type");
    if kind.as_deref().is_some_and(|t| t != "SYSTEM_DEFINED" && t != "APPLICATION") {
        return error_reply(
            400,
            "ValidationException",
            "1 validation error detected: Value at 'typeEquals' failed to satisfy constraint: Member must satisfy enum value set: [SYSTEM_DEFINED, APPLICATION]",
        );
    }
    let all: Vec<Value> = if kind.as_deref() == Some("APPLICATION") {
        Vec::new()
    } else {
        INFERENCE_PROFILES.iter().map(|(id, model)| inference_profile(region, id, model)).collect()
    };
    let max = match req.query_param("maxResults").map(|m| m.parse::<usize>()) {
        None => 1000,
        Some(Ok(m)) if (1..=1000).contains(&m) => m,
        Some(_) => {
            return error_reply(
                400,
                "ValidationException",
                "1 validation error detected: Value at 'maxResults' failed to satisfy constraint: Member must have value between 1 and 1000",
            );
        }
    };
    let start = match req.query_param("nextToken").map(|t| t.parse::<usize>()) {
        None => 0,
        Some(Ok(s)) if s <= all.len() => s,
        Some(_) => return error_reply(400, "ValidationException", "The provided pagination token is invalid."),
    };
    let end = (start + max).min(all.len());
    let mut body = json!({"inferenceProfileSummaries": all[start..end]});
    if end < all.len() {
        body["nextToken"] = json!(end.to_string());
    }
    with_request_id(Reply::json(200, &body))
}

/// One `AssumeRole` / `AssumeRoleWithWebIdentity` call the fake STS answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StsCall {
    pub action: String,
    pub role_arn: Option<String>,
    pub session_name: Option<String>,
    pub external_id: Option<String>,
    /// The access key that signed the call (`None` for web identity, which is unsigned).
    pub signed_by: Option<String>,
    /// The access key issued.
    pub issued: String,
}

/// A request whose signature the fake checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub path: String,
    pub access_key_id: String,
    pub region: String,
    pub service: String,
    pub signed_headers: Vec<String>,
}

/// The AWS side of a fake upstream.
#[derive(Debug)]
pub(super) struct AwsState {
    region: Mutex<String>,
    keys: Mutex<HashMap<String, Key>>,
    sts_lifetime: Mutex<Duration>,
    sts_calls: Mutex<Vec<StsCall>>,
    issued: AtomicUsize,
    metadata_calls: AtomicUsize,
    guardrails: Mutex<HashSet<(String, String)>>,
    verified: Mutex<Vec<Verified>>,
    rejected: Mutex<Vec<Rejection>>,
}

impl Default for AwsState {
    fn default() -> AwsState {
        AwsState {
            region: Mutex::new(DEFAULT_REGION.to_string()),
            keys: Mutex::new(HashMap::new()),
            sts_lifetime: Mutex::new(Duration::from_secs(3600)),
            sts_calls: Mutex::new(Vec::new()),
            issued: AtomicUsize::new(0),
            metadata_calls: AtomicUsize::new(0),
            guardrails: Mutex::new(HashSet::new()),
            verified: Mutex::new(Vec::new()),
            rejected: Mutex::new(Vec::new()),
        }
    }
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

impl AwsState {
    /// Issues temporary credentials valid for the STS lifetime; registers them.
    fn issue(&self, prefix: &str) -> (String, Key) {
        let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        let ak = format!("{prefix}FAKE{n:012}");
        let lifetime = *lock(&self.sts_lifetime);
        let key = Key {
            secret: format!("fake-secret-{n}-{}", uuid::Uuid::now_v7().simple()),
            session_token: Some(format!("FQoGZXIvYXdzEFAKE{n}{}", uuid::Uuid::now_v7().simple())),
            expires_at: Some(unix_now() + lifetime.as_secs() as i64),
        };
        lock(&self.keys).insert(ak.clone(), key.clone());
        (ak, key)
    }

    fn key(&self, ak: &str) -> Option<Key> {
        lock(&self.keys).get(ak).cloned()
    }
}

fn iso8601(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0).map_or_else(String::new, |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

impl FakeUpstream {
    /// Registers a long-term access key pair (static credentials).
    pub fn aws_add_key(&self, access_key_id: &str, secret: &str) {
        let key = Key { secret: secret.to_string(), session_token: None, expires_at: None };
        lock(&self.shared.aws.keys).insert(access_key_id.to_string(), key);
    }

    /// Registers temporary credentials expiring at `expires_at` (unix seconds).
    pub fn aws_add_temporary_key(&self, access_key_id: &str, secret: &str, session_token: &str, expires_at: i64) {
        let key = Key {
            secret: secret.to_string(),
            session_token: Some(session_token.to_string()),
            expires_at: Some(expires_at),
        };
        lock(&self.shared.aws.keys).insert(access_key_id.to_string(), key);
    }

    /// Makes a key expired from now on (its next use answers 403 `ExpiredTokenException`).
    pub fn aws_expire_key(&self, access_key_id: &str) {
        if let Some(k) = lock(&self.shared.aws.keys).get_mut(access_key_id) {
            k.expires_at = Some(unix_now() - 1);
        }
    }

    /// The region credential scopes must name (default [`DEFAULT_REGION`]).
    pub fn aws_set_region(&self, region: &str) {
        *lock(&self.shared.aws.region) = region.to_string();
    }

    /// Lifetime of the credentials STS and the metadata endpoints issue (default one hour).
    pub fn sts_set_lifetime(&self, lifetime: Duration) {
        *lock(&self.shared.aws.sts_lifetime) = lifetime;
    }

    /// Every STS call answered, in order.
    pub fn sts_calls(&self) -> Vec<StsCall> {
        lock(&self.shared.aws.sts_calls).clone()
    }

    /// How many times the instance-metadata or container endpoint issued credentials.
    pub fn metadata_credentials_issued(&self) -> usize {
        self.shared.aws.metadata_calls.load(Ordering::SeqCst)
    }

    /// Makes `GetGuardrail` find `(id, version)`.
    pub fn add_guardrail(&self, id: &str, version: &str) {
        lock(&self.shared.aws.guardrails).insert((id.to_string(), version.to_string()));
    }

    /// Requests whose signature verified, in order.
    pub fn aws_verified(&self) -> Vec<Verified> {
        lock(&self.shared.aws.verified).clone()
    }

    /// Requests refused for their signature or credentials, in order.
    pub fn aws_rejected(&self) -> Vec<Rejection> {
        lock(&self.shared.aws.rejected).clone()
    }
}

/// The AWS error shape: `{"message"}` plus `x-amzn-ErrorType` (with the service namespace
/// suffix AWS appends).
pub fn error_reply(status: u16, kind: &str, message: &str) -> Reply {
    Reply::json(status, &json!({"message": message}))
        .with_header("x-amzn-errortype", &format!("{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"))
        .with_header("x-amzn-requestid", &uuid::Uuid::now_v7().to_string())
}

/// STS, instance metadata and container credentials: answered before recording, unsigned
/// (STS verifies its own signature). `None` for everything else.
pub(super) fn side_service(shared: &Shared, req: &Received) -> Option<Reply> {
    let aws = &shared.aws;
    if req.path.starts_with("/latest/") {
        return Some(imds(aws, req));
    }
    if req.path == "/container-credentials" {
        aws.metadata_calls.fetch_add(1, Ordering::SeqCst);
        let (ak, key) = aws.issue("ASIAECS");
        return Some(Reply::json(200, &credentials_json(&ak, &key)));
    }
    let form = req.method == "POST"
        && req.path == "/"
        && req.header("content-type").is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    form.then(|| sts(aws, req))
}

fn credentials_json(ak: &str, key: &Key) -> Value {
    json!({
        "Code": "Success",
        "LastUpdated": iso8601(unix_now()),
        "Type": "AWS-HMAC",
        "AccessKeyId": ak,
        "SecretAccessKey": key.secret,
        "Token": key.session_token,
        "Expiration": iso8601(key.expires_at.unwrap_or(0)),
    })
}

fn imds(aws: &AwsState, req: &Received) -> Reply {
    const ROLE: &str = "tollgate-instance-role";
    if req.method == "PUT" && req.path == "/latest/api/token" {
        return Reply::raw(200, "text/plain", "fake-imds-token")
            .with_header("x-aws-ec2-metadata-token-ttl-seconds", "21600");
    }
    if req.header("x-aws-ec2-metadata-token") != Some("fake-imds-token") {
        return Reply::raw(401, "text/plain", "");
    }
    let path = req.path.trim_end_matches('/');
    for base in ["/latest/meta-data/iam/security-credentials", "/latest/meta-data/iam/security-credentials-extended"] {
        if path == base {
            return Reply::raw(200, "text/plain", ROLE);
        }
        if path.strip_prefix(base).and_then(|r| r.strip_prefix('/')) == Some(ROLE) {
            aws.metadata_calls.fetch_add(1, Ordering::SeqCst);
            let (ak, key) = aws.issue("ASIAIMDS");
            return Reply::json(200, &credentials_json(&ak, &key));
        }
    }
    Reply::raw(404, "text/plain", "")
}

fn form_param(body: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(body).replace('+', "%20");
    query_param(Some(&text), name)
}

fn sts_error(code: &str, message: &str, status: u16) -> Reply {
    let xml = format!(
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>{code}</Code>\
         <Message>{message}</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
        uuid::Uuid::now_v7()
    );
    Reply::raw(status, "text/xml", xml)
}

fn sts(aws: &AwsState, req: &Received) -> Reply {
    let action = form_param(&req.body, "Action").unwrap_or_default();
    let signed_by = match action.as_str() {
        "AssumeRole" => {
            let region = lock(&aws.region).clone();
            let signed = Signed {
                method: &req.method,
                path: &req.path,
                query: req.query.as_deref(),
                headers: &req.headers,
                body: &req.body,
            };
            // STS is global, but SDKs sign for the regional endpoint they use: accept the
            // configured region or us-east-1.
            let ok = sigv4::verify(&signed, &|ak| aws.key(ak), "sts", &region, unix_now())
                .or_else(|_| sigv4::verify(&signed, &|ak| aws.key(ak), "sts", "us-east-1", unix_now()));
            match ok {
                Ok(auth) => Some(auth.access_key_id),
                Err(r) => {
                    lock(&aws.rejected).push(r.clone());
                    let (code, message) = r.error();
                    return sts_error(code, &message, 403);
                }
            }
        }
        "AssumeRoleWithWebIdentity" => {
            if form_param(&req.body, "WebIdentityToken").is_none_or(|t| t.is_empty()) {
                return sts_error("InvalidIdentityToken", "missing web identity token", 400);
            }
            None
        }
        other => return sts_error("InvalidAction", &format!("Could not find operation {other}"), 400),
    };
    let (ak, key) = aws.issue("ASIASTS");
    let role_arn = form_param(&req.body, "RoleArn");
    let session_name = form_param(&req.body, "RoleSessionName");
    lock(&aws.sts_calls).push(StsCall {
        action: action.clone(),
        role_arn: role_arn.clone(),
        session_name: session_name.clone(),
        external_id: form_param(&req.body, "ExternalId"),
        signed_by,
        issued: ak.clone(),
    });
    let role = role_arn.as_deref().and_then(|a| a.rsplit('/').next()).unwrap_or("role");
    let session = session_name.unwrap_or_default();
    let xml = format!(
        "<{action}Response xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><{action}Result>\
         <Credentials><AccessKeyId>{ak}</AccessKeyId><SecretAccessKey>{}</SecretAccessKey>\
         <SessionToken>{}</SessionToken><Expiration>{}</Expiration></Credentials>\
         <AssumedRoleUser><AssumedRoleId>AROAFAKE:{session}</AssumedRoleId>\
         <Arn>arn:aws:sts::123456789012:assumed-role/{role}/{session}</Arn></AssumedRoleUser>\
         </{action}Result><ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></{action}Response>",
        key.secret,
        key.session_token.unwrap_or_default(),
        iso8601(key.expires_at.unwrap_or(0)),
        uuid::Uuid::now_v7()
    );
    Reply::raw(200, "text/xml", xml)
}

/// Checks the SigV4 signature of a runtime / control-plane request.
pub(super) fn check_signature(shared: &Shared, req: &Received) -> Result<(), Reply> {
    let aws = &shared.aws;
    let region = lock(&aws.region).clone();
    let signed = Signed {
        method: &req.method,
        path: &req.path,
        query: req.query.as_deref(),
        headers: &req.headers,
        body: &req.body,
    };
    match sigv4::verify(&signed, &|ak| aws.key(ak), "bedrock", &region, unix_now()) {
        Ok(auth) => {
            lock(&aws.verified).push(Verified {
                path: req.path.clone(),
                access_key_id: auth.access_key_id,
                region: auth.region,
                service: auth.service,
                signed_headers: auth.signed_headers,
            });
            Ok(())
        }
        Err(r) => {
            lock(&aws.rejected).push(r.clone());
            let (kind, message) = r.error();
            Err(error_reply(403, kind, &message))
        }
    }
}

/// The model id of `/model/{id}/{action}`, percent-decoded, and the action.
fn model_and_action(path: &str) -> Option<(String, String)> {
    let rest = path.strip_prefix("/model/")?;
    let (m, a) = rest.rsplit_once('/')?;
    Some((percent_encoding::percent_decode_str(m).decode_utf8_lossy().into_owned(), a.to_string()))
}

/// Converse `usage` with the fixed numbers.
pub fn converse_usage() -> Value {
    json!({
        "inputTokens": INPUT_TOKENS,
        "outputTokens": OUTPUT_TOKENS,
        "totalTokens": INPUT_TOKENS + OUTPUT_TOKENS + CACHE_READ_TOKENS + CACHE_WRITE_TOKENS,
        "cacheReadInputTokens": CACHE_READ_TOKENS,
        "cacheWriteInputTokens": CACHE_WRITE_TOKENS,
        "cacheDetails": [
            {"ttl": "1h", "inputTokens": CACHE_WRITE_1H_TOKENS},
            {"ttl": "5m", "inputTokens": CACHE_WRITE_5M_TOKENS}
        ]
    })
}

/// The Anthropic `usage` object an Anthropic model on InvokeModel reports.
pub fn anthropic_usage(output_tokens: u64) -> Value {
    json!({
        "input_tokens": INPUT_TOKENS,
        "cache_creation_input_tokens": CACHE_WRITE_TOKENS,
        "cache_read_input_tokens": CACHE_READ_TOKENS,
        "cache_creation": {
            "ephemeral_5m_input_tokens": CACHE_WRITE_5M_TOKENS,
            "ephemeral_1h_input_tokens": CACHE_WRITE_1H_TOKENS
        },
        "output_tokens": output_tokens
    })
}

/// `amazon-bedrock-invocationMetrics` with the fixed numbers.
pub fn invocation_metrics() -> Value {
    json!({
        "inputTokenCount": INPUT_TOKENS,
        "outputTokenCount": OUTPUT_TOKENS,
        "invocationLatency": 420,
        "firstByteLatency": 120,
        "cacheReadInputTokenCount": CACHE_READ_TOKENS,
        "cacheWriteInputTokenCount": CACHE_WRITE_TOKENS
    })
}

/// The Converse response body.
pub fn converse(_model: &str) -> Value {
    json!({
        "output": {"message": {"role": "assistant", "content": [{"text": TEXT}]}},
        "stopReason": "end_turn",
        "usage": converse_usage(),
        "metrics": {"latencyMs": 420}
    })
}

/// The ConverseStream frames, as an `.events.json` description.
pub fn converse_stream_events() -> Value {
    let mut events = vec![json!({"event": "messageStart", "payload": {"role": "assistant", "p": "abcdef"}})];
    for part in TEXT_PARTS {
        events.push(json!({"event": "contentBlockDelta", "payload": {"contentBlockIndex": 0, "delta": {"text": part}, "p": "ab"}}));
    }
    events.push(json!({"event": "contentBlockStop", "payload": {"contentBlockIndex": 0, "p": "abc"}}));
    events.push(json!({"event": "messageStop", "payload": {"stopReason": "end_turn", "p": "abcd"}}));
    events.push(
        json!({"event": "metadata", "payload": {"usage": converse_usage(), "metrics": {"latencyMs": 420}, "p": "a"}}),
    );
    Value::Array(events)
}

/// The Anthropic message an Anthropic model on InvokeModel answers.
pub fn anthropic_message(model: &str) -> Value {
    json!({
        "id": "msg_bdrk_fake",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": TEXT}],
        "stop_reason": "end_turn",
        "stop_sequence": null,
        "usage": anthropic_usage(OUTPUT_TOKENS)
    })
}

/// The InvokeModelWithResponseStream chunks of an Anthropic model, as an `.events.json`
/// description: the Messages stream, the last chunk with `amazon-bedrock-invocationMetrics`.
pub fn invoke_stream_events(model: &str) -> Value {
    let mut start = anthropic_message(model);
    start["content"] = json!([]);
    start["stop_reason"] = Value::Null;
    start["usage"] = anthropic_usage(STREAM_START_OUTPUT_TOKENS);
    let mut events = vec![
        json!({"event": "chunk", "chunk": {"type": "message_start", "message": start}}),
        json!({"event": "chunk", "chunk": {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}}),
    ];
    for part in TEXT_PARTS {
        events.push(json!({"event": "chunk", "chunk": {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": part}}}));
    }
    events.push(json!({"event": "chunk", "chunk": {"type": "content_block_stop", "index": 0}}));
    events.push(json!({"event": "chunk", "chunk": {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": OUTPUT_TOKENS}}}));
    events.push(json!({"event": "chunk", "chunk": {"type": "message_stop", "amazon-bedrock-invocationMetrics": invocation_metrics()}}));
    Value::Array(events)
}

/// Encodes an `.events.json` description into one chunk per frame.
pub fn frames(description: &Value) -> Vec<Bytes> {
    tollgate_protocol::fixture::event_stream_frames(description.to_string().as_bytes())
        .unwrap_or_default()
        .into_iter()
        .map(Bytes::from)
        .collect()
}

fn with_request_id(r: Reply) -> Reply {
    r.with_header("x-amzn-requestid", &uuid::Uuid::now_v7().to_string())
}

fn token_headers(r: Reply) -> Reply {
    r.with_header("x-amzn-bedrock-input-token-count", &INPUT_TOKENS.to_string())
        .with_header("x-amzn-bedrock-output-token-count", &OUTPUT_TOKENS.to_string())
        .with_header("x-amzn-bedrock-cache-read-input-token-count", &CACHE_READ_TOKENS.to_string())
        .with_header("x-amzn-bedrock-cache-write-input-token-count", &CACHE_WRITE_TOKENS.to_string())
        .with_header("x-amzn-bedrock-invocation-latency", "420")
}

/// The built-in runtime / control-plane behaviour (after the signature passed).
pub(super) fn serve(shared: &Shared, req: &Received, pace: Duration) -> Reply {
    let aws = &shared.aws;
    if req.method == "GET" {
        if let Some(id) = req.path.strip_prefix("/guardrails/") {
            let id = percent_encoding::percent_decode_str(id).decode_utf8_lossy().into_owned();
            let version = req.query_param("guardrailVersion").unwrap_or_else(|| "DRAFT".to_string());
            if !lock(&aws.guardrails).contains(&(id.clone(), version.clone())) {
                return error_reply(
                    404,
                    "ResourceNotFoundException",
                    &format!("Guardrail {id} version {version} not found"),
                );
            }
            let region = lock(&aws.region).clone();
            return with_request_id(Reply::json(
                200,
                &json!({
                    "guardrailId": id,
                    "guardrailArn": format!("arn:aws:bedrock:{region}:123456789012:guardrail/{id}"),
                    "name": id, "version": version, "status": "READY",
                    "blockedInputMessaging": "Blocked.", "blockedOutputsMessaging": "Blocked.",
                    "createdAt": "2025-01-01T00:00:00Z", "updatedAt": "2025-01-01T00:00:00Z"
                }),
            ));
        }
        if req.path == "/inference-profiles" {
            let region = lock(&aws.region).clone();
            return list_inference_profiles(&region, req);
        }
        if let Some(id) = req.path.strip_prefix("/inference-profiles/") {
            let id = percent_encoding::percent_decode_str(id).decode_utf8_lossy().into_owned();
            let region = lock(&aws.region).clone();
            let found = INFERENCE_PROFILES.iter().map(|(p, m)| inference_profile(&region, p, m)).find(|p| {
                p["inferenceProfileId"].as_str() == Some(id.as_str())
                    || p["inferenceProfileArn"].as_str() == Some(id.as_str())
            });
            return match found {
                Some(p) => with_request_id(Reply::json(200, &p)),
                None => error_reply(404, "ResourceNotFoundException", "The specified inference profile was not found."),
            };
        }
        if req.path == "/foundation-models" {
            let models: Vec<Value> = FOUNDATION_MODELS
                .iter()
                .map(|m| json!({"modelId": m, "modelArn": format!("arn:aws:bedrock:us-east-1::foundation-model/{m}")}))
                .collect();
            return with_request_id(Reply::json(200, &json!({"modelSummaries": models})));
        }
    }
    if let Some(rest) = req.path.strip_prefix("/openai") {
        let inner = Received { path: rest.to_string(), ..req.clone() };
        return with_request_id(openai::serve(&inner, None, pace));
    }
    let Some((model, action)) = model_and_action(&req.path).filter(|_| req.method == "POST") else {
        return error_reply(404, "UnknownOperationException", "Unknown operation");
    };
    if PROFILE_ONLY.contains(&model.as_str()) {
        return error_reply(
            400,
            "ValidationException",
            &format!(
                "Invocation of model ID {model} with on-demand throughput isn’t supported. Retry your request with the \
                 ID or ARN of an inference profile that contains this model."
            ),
        );
    }
    if let Some(g) = req.header("x-amzn-bedrock-guardrailidentifier") {
        let v = req.header("x-amzn-bedrock-guardrailversion").unwrap_or("DRAFT");
        if !lock(&aws.guardrails).contains(&(g.to_string(), v.to_string())) {
            return error_reply(
                400,
                "ValidationException",
                "The guardrail identifier or version provided in the request does not exist.",
            );
        }
    }
    let Some(body) = json_object(req) else {
        return error_reply(
            400,
            "ValidationException",
            "Malformed input request, please reformat your input and try again.",
        );
    };
    let anthropic = body.get("anthropic_version").is_some();
    match action.as_str() {
        "converse" => with_request_id(Reply::json(200, &converse(&model))),
        "converse-stream" => with_request_id(Reply::script(
            200,
            "application/vnd.amazon.eventstream",
            paced(frames(&converse_stream_events()), pace),
        )),
        "invoke" if anthropic => with_request_id(token_headers(Reply::json(200, &anthropic_message(&model)))),
        "invoke" => with_request_id(token_headers(Reply::json(
            200,
            &json!({"inputTextTokenCount": INPUT_TOKENS, "results": [{"tokenCount": OUTPUT_TOKENS, "outputText": TEXT, "completionReason": "FINISH"}]}),
        ))),
        "invoke-with-response-stream" => with_request_id(
            Reply::script(
                200,
                "application/vnd.amazon.eventstream",
                paced(frames(&invoke_stream_events(&model)), pace),
            )
            .with_header("x-amzn-bedrock-content-type", "application/json"),
        ),
        _ => error_reply(404, "UnknownOperationException", "Unknown operation"),
    }
}
