//! Errors the gateway produces on the proxy path, rendered in each upstream's own error JSON
//! (ARCHITECTURE.md, Decisions: The proxy path) so official SDKs raise their usual exception
//! types. The shape is the provider type descriptor's [`ErrorShape`] (an unknown provider gets
//! OpenAI's): OpenAI `{"error":{"message","type","code"}}` (also Azure OpenAI's),
//! Anthropic `{"type":"error","error":{"type","message"}}`,
//! Google `{"error":{"code","message","status"}}`, Bedrock `{"message"}` + `x-amzn-ErrorType`.
//!
//! The 401 is the exception: the token is checked before the provider is known, so
//! [`render_unauthenticated`] answers in one body carrying every family's fields, which each
//! official SDK reads as its own authentication error.

use serde_json::json;
use tollgate_core::{ErrorShape, ProviderType};

/// Why the gateway refused or failed a proxied request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayErrorKind {
    /// 400: the request is malformed (or lacks the gateway token under passthrough).
    BadRequest,
    /// 401: missing, unknown, revoked or expired gateway token.
    Unauthenticated,
    /// 403: the token may not use this provider, or the provider is disabled.
    PermissionDenied,
    /// 404: the model is not in the provider's allow-list. Answered the way each upstream
    /// answers an unknown model, so SDKs and tools (Claude Code) report "model not found"
    /// rather than an authentication or permission failure.
    ModelNotAllowed,
    /// 404: no such provider.
    NotFound,
    /// 413: the request body is over the configured cap.
    PayloadTooLarge,
    /// 429: a budget is exhausted.
    BudgetExceeded,
    /// 429: a requests-per-minute limit is reached.
    RateLimited,
    /// 429: a tokens-per-minute limit is reached (OpenAI's error `type` names the unit).
    TokenRateLimited,
    /// 503: the gateway cannot decide (budget state unreadable under
    /// `--budget-failure-mode closed`).
    Unavailable,
    /// 500: the gateway's own configuration or state failed (a provider's credential secret
    /// is missing or unusable, signing failed): not the client's fault, not the upstream's.
    Internal,
    /// 502: the upstream could not be reached or answered badly.
    BadGateway,
    /// 504: the upstream did not answer in time.
    GatewayTimeout,
}

impl GatewayErrorKind {
    pub fn status(self) -> u16 {
        match self {
            GatewayErrorKind::BadRequest => 400,
            GatewayErrorKind::Unauthenticated => 401,
            GatewayErrorKind::PermissionDenied => 403,
            GatewayErrorKind::NotFound | GatewayErrorKind::ModelNotAllowed => 404,
            GatewayErrorKind::PayloadTooLarge => 413,
            GatewayErrorKind::BudgetExceeded | GatewayErrorKind::RateLimited | GatewayErrorKind::TokenRateLimited => {
                429
            }
            GatewayErrorKind::Unavailable => 503,
            GatewayErrorKind::Internal => 500,
            GatewayErrorKind::BadGateway => 502,
            GatewayErrorKind::GatewayTimeout => 504,
        }
    }

    fn openai(self) -> (&'static str, &'static str) {
        match self {
            GatewayErrorKind::BadRequest => ("invalid_request_error", "invalid_request"),
            GatewayErrorKind::Unauthenticated => ("invalid_request_error", "invalid_api_key"),
            GatewayErrorKind::PermissionDenied => ("permission_error", "permission_denied"),
            GatewayErrorKind::ModelNotAllowed => ("invalid_request_error", "model_not_found"),
            GatewayErrorKind::NotFound => ("invalid_request_error", "not_found"),
            GatewayErrorKind::PayloadTooLarge => ("invalid_request_error", "request_too_large"),
            GatewayErrorKind::BudgetExceeded => ("insufficient_quota", "budget_exceeded"),
            GatewayErrorKind::RateLimited => ("requests", "rate_limit_exceeded"),
            GatewayErrorKind::TokenRateLimited => ("tokens", "rate_limit_exceeded"),
            GatewayErrorKind::Unavailable => ("api_error", "service_unavailable"),
            GatewayErrorKind::Internal => ("server_error", "internal_error"),
            GatewayErrorKind::BadGateway => ("api_error", "bad_gateway"),
            GatewayErrorKind::GatewayTimeout => ("api_error", "timeout"),
        }
    }

    fn anthropic(self) -> &'static str {
        match self {
            GatewayErrorKind::BadRequest => "invalid_request_error",
            GatewayErrorKind::Unauthenticated => "authentication_error",
            GatewayErrorKind::PermissionDenied => "permission_error",
            GatewayErrorKind::NotFound | GatewayErrorKind::ModelNotAllowed => "not_found_error",
            GatewayErrorKind::PayloadTooLarge => "request_too_large",
            GatewayErrorKind::BudgetExceeded | GatewayErrorKind::RateLimited | GatewayErrorKind::TokenRateLimited => {
                "rate_limit_error"
            }
            GatewayErrorKind::Internal
            | GatewayErrorKind::BadGateway
            | GatewayErrorKind::GatewayTimeout
            | GatewayErrorKind::Unavailable => "api_error",
        }
    }

    fn google(self) -> &'static str {
        match self {
            GatewayErrorKind::BadRequest | GatewayErrorKind::PayloadTooLarge => "INVALID_ARGUMENT",
            GatewayErrorKind::Unauthenticated => "UNAUTHENTICATED",
            GatewayErrorKind::PermissionDenied => "PERMISSION_DENIED",
            GatewayErrorKind::NotFound | GatewayErrorKind::ModelNotAllowed => "NOT_FOUND",
            GatewayErrorKind::BudgetExceeded | GatewayErrorKind::RateLimited | GatewayErrorKind::TokenRateLimited => {
                "RESOURCE_EXHAUSTED"
            }
            GatewayErrorKind::Internal => "INTERNAL",
            GatewayErrorKind::BadGateway | GatewayErrorKind::Unavailable => "UNAVAILABLE",
            GatewayErrorKind::GatewayTimeout => "DEADLINE_EXCEEDED",
        }
    }

    fn bedrock(self) -> &'static str {
        match self {
            GatewayErrorKind::BadRequest | GatewayErrorKind::PayloadTooLarge => "ValidationException",
            GatewayErrorKind::Unauthenticated => "UnrecognizedClientException",
            GatewayErrorKind::PermissionDenied => "AccessDeniedException",
            GatewayErrorKind::NotFound | GatewayErrorKind::ModelNotAllowed => "ResourceNotFoundException",
            GatewayErrorKind::BudgetExceeded | GatewayErrorKind::RateLimited | GatewayErrorKind::TokenRateLimited => {
                "ThrottlingException"
            }
            GatewayErrorKind::Internal => "InternalServerException",
            GatewayErrorKind::BadGateway | GatewayErrorKind::Unavailable => "ServiceUnavailableException",
            GatewayErrorKind::GatewayTimeout => "ModelTimeoutException",
        }
    }
}

/// A rendered native error: status, extra headers and the JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeError {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// Renders a gateway error in the native shape of `provider` (its descriptor's
/// [`ErrorShape`]; `None`: the provider is unknown, so the OpenAI shape). A refused model's
/// message always starts with `model_not_allowed:`.
pub fn render(provider: Option<ProviderType>, kind: GatewayErrorKind, message: &str) -> NativeError {
    render_shape(provider.map_or(ErrorShape::OpenAi, |t| t.descriptor().error_shape), kind, message)
}

/// Renders a gateway error in `shape`.
pub fn render_shape(shape: ErrorShape, kind: GatewayErrorKind, message: &str) -> NativeError {
    let message = if kind == GatewayErrorKind::ModelNotAllowed && !message.starts_with("model_not_allowed:") {
        format!("model_not_allowed: {message}")
    } else {
        message.to_string()
    };
    let status = kind.status();
    let mut headers = vec![("content-type", "application/json".to_string())];
    let body = match shape {
        ErrorShape::OpenAi => {
            let (t, code) = kind.openai();
            json!({"error": {"message": message, "type": t, "param": null, "code": code}})
        }
        ErrorShape::Anthropic => {
            json!({"type": "error", "error": {"type": kind.anthropic(), "message": message}})
        }
        ErrorShape::Google => {
            json!({"error": {"code": status, "message": message, "status": kind.google()}})
        }
        ErrorShape::Bedrock => {
            headers.push(("x-amzn-errortype", kind.bedrock().to_string()));
            json!({"message": message})
        }
    };
    NativeError { status, headers, body: body.to_string().into_bytes() }
}

/// The answer to an unauthenticated proxy request, the same whichever provider the URL names
/// (or whether it exists), so a request without a valid token learns nothing about provider
/// names. One body that every native SDK reads as its own 401: OpenAI and Anthropic read
/// `error.message` / `error.type` (and `type: "error"`), Gemini `error.code` / `error.message`
/// / `error.status`, Bedrock `message` and `x-amzn-errortype`.
pub fn render_unauthenticated(message: &str) -> NativeError {
    let kind = GatewayErrorKind::Unauthenticated;
    let status = kind.status();
    let body = json!({
        "type": "error",
        "error": {"message": message, "type": kind.anthropic(), "code": status, "status": kind.google(), "param": null},
        "message": message,
    });
    NativeError {
        status,
        headers: vec![
            ("content-type", "application/json".to_string()),
            ("x-amzn-errortype", kind.bedrock().to_string()),
        ],
        body: body.to_string().into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn the_unauthenticated_answer_reads_as_every_native_shape() {
        let e = render_unauthenticated("invalid gateway token");
        let v = body(&e);
        assert_eq!(e.status, 401);
        assert_eq!((v["type"].as_str(), v["error"]["type"].as_str()), (Some("error"), Some("authentication_error")));
        assert_eq!((v["error"]["code"].as_u64(), v["error"]["status"].as_str()), (Some(401), Some("UNAUTHENTICATED")));
        assert_eq!(v["error"]["message"], "invalid gateway token");
        assert_eq!(v["message"], "invalid gateway token");
        assert!(e.headers.iter().any(|(k, v)| *k == "x-amzn-errortype" && v == "UnrecognizedClientException"));
    }

    fn body(e: &NativeError) -> Value {
        serde_json::from_slice(&e.body).unwrap_or(Value::Null)
    }

    #[test]
    fn each_provider_shape() {
        let o = render(Some(ProviderType::Openai), GatewayErrorKind::Unauthenticated, "bad token");
        assert_eq!(o.status, 401);
        assert_eq!(
            body(&o),
            json!({"error": {"message": "bad token", "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}})
        );
        let a = render(Some(ProviderType::Anthropic), GatewayErrorKind::NotFound, "no such provider");
        assert_eq!(
            body(&a),
            json!({"type": "error", "error": {"type": "not_found_error", "message": "no such provider"}})
        );
        let g = render(Some(ProviderType::Google), GatewayErrorKind::PermissionDenied, "disabled");
        assert_eq!(body(&g), json!({"error": {"code": 403, "message": "disabled", "status": "PERMISSION_DENIED"}}));
        let b = render(Some(ProviderType::Bedrock), GatewayErrorKind::BudgetExceeded, "over budget");
        assert_eq!(b.status, 429);
        assert_eq!(body(&b), json!({"message": "over budget"}));
        assert!(b.headers.contains(&("x-amzn-errortype", "ThrottlingException".to_string())));
        // A gateway fault: 500 in each family's own server-error shape.
        let o = render(Some(ProviderType::Openai), GatewayErrorKind::Internal, "no credential");
        assert_eq!(o.status, 500);
        assert_eq!(body(&o)["error"]["type"], "server_error");
        let a = render(Some(ProviderType::Anthropic), GatewayErrorKind::Internal, "x");
        assert_eq!(body(&a)["error"]["type"], "api_error");
        let g = render(Some(ProviderType::Google), GatewayErrorKind::Internal, "x");
        assert_eq!(body(&g), json!({"error": {"code": 500, "message": "x", "status": "INTERNAL"}}));
        let b = render(Some(ProviderType::Bedrock), GatewayErrorKind::Internal, "x");
        assert!(b.headers.contains(&("x-amzn-errortype", "InternalServerException".to_string())));
        let unknown = render(None, GatewayErrorKind::NotFound, "x");
        assert_eq!(body(&unknown)["error"]["code"], "not_found");
    }

    #[test]
    fn budget_and_rate_limit_refusals_are_each_familys_429() {
        let b = |p| render(Some(p), GatewayErrorKind::BudgetExceeded, "budget \"x\" exceeded");
        let o = body(&b(ProviderType::Openai));
        assert_eq!(
            (o["error"]["type"].as_str(), o["error"]["code"].as_str()),
            (Some("insufficient_quota"), Some("budget_exceeded"))
        );
        assert_eq!(body(&b(ProviderType::Anthropic))["error"]["type"], "rate_limit_error");
        assert_eq!(body(&b(ProviderType::Google))["error"]["status"], "RESOURCE_EXHAUSTED");
        assert_eq!(body(&b(ProviderType::Google))["error"]["code"], 429);
        for p in ProviderType::ALL {
            assert_eq!(b(p).status, 429, "{p}");
            assert_eq!(render(Some(p), GatewayErrorKind::RateLimited, "r").status, 429, "{p}");
            assert_eq!(render(Some(p), GatewayErrorKind::Unavailable, "r").status, 503, "{p}");
        }
        let r = render(Some(ProviderType::Bedrock), GatewayErrorKind::RateLimited, "r");
        assert!(r.headers.contains(&("x-amzn-errortype", "ThrottlingException".to_string())));
        // OpenAI's `type` names the limit's unit, as its own 429s do.
        for (kind, unit) in
            [(GatewayErrorKind::RateLimited, "requests"), (GatewayErrorKind::TokenRateLimited, "tokens")]
        {
            let o = body(&render(Some(ProviderType::Openai), kind, "r"));
            assert_eq!(
                (o["error"]["type"].as_str(), o["error"]["code"].as_str()),
                (Some(unit), Some("rate_limit_exceeded"))
            );
            assert_eq!(render(Some(ProviderType::Anthropic), kind, "r").status, 429);
        }
    }

    #[test]
    fn model_not_allowed_prefix_in_every_shape() {
        for p in ProviderType::ALL {
            let e = render(Some(p), GatewayErrorKind::ModelNotAllowed, "gpt-4o is not enabled on prod");
            assert_eq!(e.status, 404, "{p}: the unknown-model answer, not an auth failure");
            let text = String::from_utf8_lossy(&e.body).to_string();
            assert!(text.contains("model_not_allowed: gpt-4o is not enabled on prod"), "{p}: {text}");
        }
        let body_of = |p| body(&render(Some(p), GatewayErrorKind::ModelNotAllowed, "m"));
        assert_eq!(body_of(ProviderType::Openai)["error"]["code"], "model_not_found");
        assert_eq!(body_of(ProviderType::Openai)["error"]["type"], "invalid_request_error");
        assert_eq!(body_of(ProviderType::Anthropic)["error"]["type"], "not_found_error");
        assert_eq!(body_of(ProviderType::Google)["error"]["status"], "NOT_FOUND");
        let b = render(Some(ProviderType::Bedrock), GatewayErrorKind::ModelNotAllowed, "m");
        assert!(b.headers.contains(&("x-amzn-errortype", "ResourceNotFoundException".to_string())));
        let twice = render(None, GatewayErrorKind::ModelNotAllowed, "model_not_allowed: x");
        assert!(!String::from_utf8_lossy(&twice.body).contains("model_not_allowed: model_not_allowed"));
    }
}
