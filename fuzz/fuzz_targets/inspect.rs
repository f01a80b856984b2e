//! The request inspectors (`inspect`) and the one body edit (`prepare_body`) of every family.
//!
//! Input: `[family, method] ++ path ++ "\n" ++ query ++ "\n" ++ body` (an empty query is
//! none). Checks:
//! - no panic;
//! - the model comes from the request: for families that read the body (OpenAI, Anthropic,
//!   Bedrock's `/openai/` path) it equals the body's `model` as `serde_json` reads it, and a
//!   valid JSON object with a string `model` and no body error always yields it; a body that
//!   does not start with `{` yields neither a model nor an error. For path families (Gemini,
//!   Bedrock) it is a substring of the percent-decoded path and the body is never read;
//! - `prepare_body` returns the body unchanged unless it injects, and only for a streamed
//!   chat/completions request; the injected body is JSON equal to the request's with
//!   `stream_options.include_usage` set to `true`, nothing else changed.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use percent_encoding::percent_decode;
use serde_json::{Value, json};
use tollgate_fuzz::{Lenient, control, lenient};
use tollgate_protocol::{Endpoint, WireFamilyId, inspect, prepare_body};

const METHODS: [&str; 5] = ["POST", "GET", "post", "PUT", "DELETE"];

fuzz_target!(|data: &[u8]| {
    let ([f, m], rest) = control::<2>(data);
    let family = WireFamilyId::ALL[usize::from(f) % WireFamilyId::ALL.len()];
    let method = METHODS[usize::from(m) % METHODS.len()];
    let mut parts = rest.splitn(3, |&b| b == b'\n');
    let (Ok(path), query, body) = (
        std::str::from_utf8(parts.next().unwrap_or_default()),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    ) else {
        return;
    };
    let Ok(query) = std::str::from_utf8(query) else { return };
    let query = (!query.is_empty()).then_some(query);

    let info = inspect(family, method, path, query, body);
    // Azure names the model by the deployment in the path, or (on `/openai/v1/`) in the body.
    let deployment_path = family == WireFamilyId::AzureOpenAi && path.starts_with("/openai/deployments/");
    let reads_body = match family {
        WireFamilyId::OpenAi | WireFamilyId::Anthropic => true,
        WireFamilyId::AzureOpenAi => !deployment_path,
        WireFamilyId::Bedrock => path.starts_with("/openai/"),
        WireFamilyId::Google => false,
    };
    if deployment_path {
        if let Some(model) = &info.model {
            let decoded = percent_decode(path.as_bytes()).decode_utf8_lossy();
            let body_model = match lenient(body) {
                Lenient::Value(v) => v.get("model").and_then(Value::as_str).map(str::to_string),
                Lenient::Invalid | Lenient::Unrepresentable => None,
            };
            assert!(
                decoded.contains(model.as_str()) || body_model.as_deref() == Some(model.as_str()),
                "model {model:?} is neither the deployment in {decoded:?} nor the body's"
            );
        }
    } else if reads_body {
        let parsed = match lenient(body) {
            Lenient::Value(v) => Some(v),
            Lenient::Invalid => None,
            Lenient::Unrepresentable => return,
        };
        let body_model = parsed.as_ref().and_then(|v| v.get("model")).and_then(Value::as_str);
        if let Some(model) = &info.model {
            assert_eq!(Some(model.as_str()), body_model, "the model is not the body's");
            assert!(info.body_error.is_none(), "a model and a body error");
        }
        if let (Some(Value::Object(_)), Some(want), None) = (&parsed, body_model, &info.body_error) {
            assert_eq!(info.model.as_deref(), Some(want), "the body's model was not read");
        }
        if !body.trim_ascii_start().starts_with(b"{") {
            assert_eq!((&info.model, &info.body_error), (&None, &None), "a body that is not an object was read");
        }
    } else {
        assert!(info.body_error.is_none(), "a path family read the body");
        if let Some(model) = &info.model {
            let decoded = percent_decode(path.as_bytes()).decode_utf8_lossy();
            assert!(decoded.contains(model.as_str()), "model {model:?} is not in the path {decoded:?}");
        }
    }

    let (sent, injected) = prepare_body(family, &info, Bytes::copy_from_slice(body));
    if !injected {
        assert!(sent == body, "the body changed without the edit");
        return;
    }
    assert!(
        matches!(info.endpoint, Endpoint::ChatCompletions | Endpoint::Completions) && info.stream,
        "edited a request that is not a streamed chat/completions: {info:?}"
    );
    let mut want = match lenient(body) {
        Lenient::Value(v) => v,
        Lenient::Unrepresentable => return,
        Lenient::Invalid => panic!("edited an invalid body"),
    };
    match want.get_mut("stream_options") {
        Some(Value::Object(o)) => {
            o.insert("include_usage".into(), Value::Bool(true));
        }
        _ => want["stream_options"] = json!({"include_usage": true}),
    }
    let got: Value = serde_json::from_str(&String::from_utf8_lossy(&sent))
        .unwrap_or_else(|e| panic!("the edited body is not JSON ({e}): {}", String::from_utf8_lossy(&sent)));
    assert_eq!(want, got, "the edit changed more than stream_options.include_usage");
});
