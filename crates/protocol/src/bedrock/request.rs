//! Bedrock runtime requests. The model is in the path, not the body:
//! `/model/{modelId}/invoke`, `/invoke-with-response-stream`, `/converse`, `/converse-stream`
//! (other actions such as `/count-tokens` pass through unmetered, model still checked). The
//! model id is percent-decoded, so `arn%3Aaws%3Abedrock%3A...%2Fus.anthropic...` names the
//! ARN and `us.anthropic.claude-sonnet-4-6` a cross-region inference profile. An id with a
//! raw `/` (an ARN sent unencoded) is everything up to the last segment. The OpenAI-compatible
//! `/openai/v1/chat/completions` is inspected by the OpenAI family (model from the body).

use percent_encoding::percent_decode_str;

use crate::openai;
use crate::wire::{Endpoint, OutputLimit, RequestInfo};

pub(crate) fn inspect(method: &str, path: &str, query: Option<&str>, body: &[u8]) -> RequestInfo {
    if path.starts_with("/openai/") {
        return openai::request::inspect(method, path, query, body);
    }
    let Some((model, action)) = model_and_action(path) else {
        return RequestInfo {
            endpoint: Endpoint::Other,
            model: None,
            stream: false,
            body_error: None,
            output_limit: OutputLimit::Unread,
            body_names_model: false,
        };
    };
    let post = method.eq_ignore_ascii_case("POST");
    let endpoint = match action {
        Some("invoke") if post => Endpoint::Invoke,
        Some("invoke-with-response-stream") if post => Endpoint::InvokeStream,
        Some("converse") if post => Endpoint::Converse,
        Some("converse-stream") if post => Endpoint::ConverseStream,
        _ => Endpoint::Other,
    };
    let stream = matches!(endpoint, Endpoint::InvokeStream | Endpoint::ConverseStream);
    RequestInfo {
        endpoint,
        model,
        stream,
        body_error: None,
        output_limit: OutputLimit::Unread,
        body_names_model: false,
    }
}

/// The decoded model id of `/model/{id}/{action}` and the action (`None` without one).
fn model_and_action(path: &str) -> Option<(Option<String>, Option<&str>)> {
    let rest = path.strip_prefix("/model/")?;
    let (raw, action) = match rest.rsplit_once('/') {
        Some((m, a)) => (m, Some(a)),
        None => (rest, None),
    };
    let model = percent_decode_str(raw).decode_utf8_lossy();
    Some(((!model.is_empty()).then(|| model.into_owned()), action))
}

/// Whether a model id names an inference profile or an ARN rather than a bare
/// foundation-model id (`anthropic.claude-...`): geo / global prefixes and ARNs.
pub fn is_profile_or_arn(model: &str) -> bool {
    model.starts_with("arn:")
        || ["us.", "eu.", "apac.", "au.", "jp.", "ca.", "us-gov.", "global."].iter().any(|p| model.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(method: &str, path: &str) -> (Endpoint, Option<String>, bool) {
        let i = inspect(method, path, None, b"{not json");
        assert_eq!(i.body_error, None);
        (i.endpoint, i.model, i.stream)
    }

    #[test]
    fn endpoints_and_models_from_the_path() {
        let m = |s: &str| Some(s.to_string());
        assert_eq!(
            info("POST", "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/invoke"),
            (Endpoint::Invoke, m("anthropic.claude-3-5-haiku-20241022-v1:0"), false)
        );
        assert_eq!(
            info("POST", "/model/us.anthropic.claude-sonnet-4-6/invoke-with-response-stream"),
            (Endpoint::InvokeStream, m("us.anthropic.claude-sonnet-4-6"), true)
        );
        assert_eq!(
            info("POST", "/model/amazon.nova-pro-v1:0/converse"),
            (Endpoint::Converse, m("amazon.nova-pro-v1:0"), false)
        );
        let arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-6";
        assert_eq!(
            info(
                "POST",
                "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-sonnet-4-6/converse-stream"
            ),
            (Endpoint::ConverseStream, m(arn), true)
        );
        assert_eq!(info("POST", &format!("/model/{arn}/converse")), (Endpoint::Converse, m(arn), false));
        assert_eq!(info("POST", "/model/m/count-tokens"), (Endpoint::Other, m("m"), false));
        assert_eq!(info("GET", "/model/m/invoke"), (Endpoint::Other, m("m"), false));
        assert_eq!(info("POST", "/guardrail/g/version/1/apply"), (Endpoint::Other, None, false));
        assert_eq!(info("POST", "/model//invoke"), (Endpoint::Invoke, None, false));
    }

    #[test]
    fn openai_compatible_path_reads_the_body() {
        let i = inspect(
            "POST",
            "/openai/v1/chat/completions",
            None,
            br#"{"model":"openai.gpt-oss-20b-1:0","stream":true}"#,
        );
        assert_eq!(
            (i.endpoint, i.model.as_deref(), i.stream),
            (Endpoint::ChatCompletions, Some("openai.gpt-oss-20b-1:0"), true)
        );
    }

    #[test]
    fn profiles_and_arns() {
        assert!(is_profile_or_arn("us.anthropic.claude-sonnet-4-6"));
        assert!(is_profile_or_arn("global.anthropic.claude-opus-4-7"));
        assert!(is_profile_or_arn("arn:aws:bedrock:us-east-1:1:inference-profile/x"));
        assert!(!is_profile_or_arn("anthropic.claude-sonnet-4-6"));
    }
}
