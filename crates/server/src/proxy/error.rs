//! [`ProxyError`]: every error the proxy answers itself, classified by where the fault lies,
//! and [`Fault::row`], the one table that decides, per fault, the HTTP status and native error
//! kind, the metric label, and (for upstream faults) the usage event's status and error class.
//! [`ProxyError::respond`] is the only place a proxy error becomes a response.
//!
//! Three sources:
//! - **downstream** — the client's request is refused (token, provider, scope, body, model):
//!   4xx, counted in `tollgate_proxy_requests_refused_total{source="downstream"}`, no usage
//!   event (the upstream was never contacted);
//! - **internal** — the gateway's own configuration or state failed before the upstream was
//!   contacted (a credential secret missing or unusable, AWS credentials unavailable, SigV4
//!   signing failed): 500 (the gateway is at fault — neither the client, whose request may be
//!   fine, nor the upstream, which never saw it, so not 502), a message naming the provider,
//!   an error log line, `tollgate_proxy_requests_refused_total{source="internal"}`, no usage
//!   event;
//! - **upstream** — the request left the gateway and the upstream failed (unreachable, no
//!   answer in time, a redirect, an unreadable body): 502/504 and exactly one usage event
//!   with the row's status and error class, counted with it by the [`Recorder`].
//!
//! Upstream answers that arrive (any status, including 4xx/5xx) are not `ProxyError`s: they
//! pass through unchanged. Invariant: messages never contain a secret value, a URL path or
//! query; they may name secrets, providers and hosts.

use super::body::{Outcome, Recorder};
use crate::aws::AwsError;
use crate::metrics::Metrics;
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use tollgate_core::{ProviderType, RequestStatus};
use tollgate_protocol::errors::{GatewayErrorKind, render};

/// Where a proxy error's fault lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The client's request.
    Downstream,
    /// The upstream, after the request left the gateway.
    Upstream,
    /// The gateway itself (its configuration: credentials, signing).
    Internal,
}

impl Source {
    /// The `source` label in `/metrics`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Downstream => "downstream",
            Source::Upstream => "upstream",
            Source::Internal => "internal",
        }
    }
}

/// What went wrong; each variant is one row of [`Fault::row`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Missing, unknown, revoked or expired gateway token.
    Unauthenticated,
    /// No such route or provider.
    NotFound,
    /// The token may not use this provider, or the provider is disabled.
    PermissionDenied,
    /// The model (or Bedrock inference profile) is not in the allow-list.
    ModelNotAllowed,
    /// A malformed request (unreadable body, ambiguous model, path that makes no URL, …).
    BadRequest,
    /// The body is over `--max-request-body-bytes`.
    PayloadTooLarge,
    /// A `.`/`..` path segment (in any encoding) that would leave the base URL's prefix.
    PathTraversal,
    /// The request already passed through this gateway (its `x-tollgate-hop` header carries
    /// this gateway's id): a provider whose base URL leads back to the gateway.
    LoopDetected,
    /// A credential secret the provider references does not exist (or is empty).
    MissingCredential,
    /// A credential secret holds a value that cannot be sent (not a valid header value).
    InvalidCredential,
    /// Dynamic AWS credentials (default chain, AssumeRole) could not be obtained.
    CredentialUnavailable,
    /// SigV4 signing failed.
    SigningFailed,
    /// The upstream's address is refused by the address policy (`--upstream-allow` /
    /// `--upstream-deny`: link-local, cloud metadata, the gateway's own address).
    UpstreamAddressDenied,
    /// The credential secret is not bound to the host the request goes to.
    CredentialNotBound,
    /// The upstream could not be connected to.
    Unreachable,
    /// No response head within the read timeout.
    Timeout,
    /// Sending or reading the response head failed after connecting.
    Failed,
    /// The upstream answered 3xx (never followed).
    Redirect,
    /// A body the gateway reads whole (a models list to filter, a control-plane answer) was
    /// unreadable or too large.
    BodyUnreadable,
    /// A budget the call counts against has no room for its estimated cost.
    BudgetExceeded,
    /// A requests-per-minute limit has no room for the call.
    RateLimited,
    /// A tokens-per-minute limit has no room for the call.
    TokenRateLimited,
    /// Budget / rate-limit state could not be read under `--budget-failure-mode closed`.
    LimitsUnavailable,
}

/// One row of the table: everything a fault decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    pub source: Source,
    /// The HTTP status and native error type (see `tollgate_protocol::errors`).
    pub kind: GatewayErrorKind,
    /// The `reason` label in `/metrics` (downstream, internal) and the usage event's error
    /// class (upstream).
    pub reason: &'static str,
    /// The usage event's status (upstream faults only: the others record no event).
    pub usage: Option<RequestStatus>,
}

impl Fault {
    /// Every fault, for the metric labels and the table's tests.
    pub const ALL: [Fault; 23] = [
        Fault::Unauthenticated,
        Fault::NotFound,
        Fault::PermissionDenied,
        Fault::ModelNotAllowed,
        Fault::BadRequest,
        Fault::PayloadTooLarge,
        Fault::PathTraversal,
        Fault::LoopDetected,
        Fault::MissingCredential,
        Fault::InvalidCredential,
        Fault::CredentialUnavailable,
        Fault::SigningFailed,
        Fault::UpstreamAddressDenied,
        Fault::CredentialNotBound,
        Fault::Unreachable,
        Fault::Timeout,
        Fault::Failed,
        Fault::Redirect,
        Fault::BodyUnreadable,
        Fault::BudgetExceeded,
        Fault::RateLimited,
        Fault::TokenRateLimited,
        Fault::LimitsUnavailable,
    ];

    /// The table.
    pub const fn row(self) -> Row {
        use GatewayErrorKind as K;
        use Source::{Downstream, Internal, Upstream};
        let (source, kind, reason, usage) = match self {
            Fault::Unauthenticated => (Downstream, K::Unauthenticated, "unauthenticated", None),
            Fault::NotFound => (Downstream, K::NotFound, "not_found", None),
            Fault::PermissionDenied => (Downstream, K::PermissionDenied, "permission_denied", None),
            Fault::ModelNotAllowed => (Downstream, K::ModelNotAllowed, "model_not_allowed", None),
            Fault::BadRequest => (Downstream, K::BadRequest, "bad_request", None),
            Fault::PayloadTooLarge => (Downstream, K::PayloadTooLarge, "payload_too_large", None),
            Fault::PathTraversal => (Downstream, K::BadRequest, "path_traversal", None),
            Fault::LoopDetected => (Downstream, K::BadRequest, "loop_detected", None),
            Fault::MissingCredential => (Internal, K::Internal, "missing_credential", None),
            Fault::InvalidCredential => (Internal, K::Internal, "invalid_credential", None),
            Fault::CredentialUnavailable => (Internal, K::Internal, "credential_unavailable", None),
            Fault::SigningFailed => (Internal, K::Internal, "signing_failed", None),
            Fault::UpstreamAddressDenied => (Internal, K::Internal, "upstream_address_denied", None),
            Fault::CredentialNotBound => (Internal, K::Internal, "credential_not_bound", None),
            Fault::Unreachable => (Upstream, K::BadGateway, "connect_error", Some(RequestStatus::ConnectionError)),
            Fault::Timeout => (Upstream, K::GatewayTimeout, "read_timeout", Some(RequestStatus::Timeout)),
            Fault::Failed => (Upstream, K::BadGateway, "upstream_error", Some(RequestStatus::ConnectionError)),
            Fault::Redirect => (Upstream, K::BadGateway, "upstream_redirect", Some(RequestStatus::UpstreamError)),
            Fault::BodyUnreadable => {
                (Upstream, K::BadGateway, "upstream_body_error", Some(RequestStatus::ConnectionError))
            }
            Fault::BudgetExceeded => (Downstream, K::BudgetExceeded, "budget_exceeded", None),
            Fault::RateLimited => (Downstream, K::RateLimited, "rate_limited", None),
            Fault::TokenRateLimited => (Downstream, K::TokenRateLimited, "rate_limited", None),
            Fault::LimitsUnavailable => (Internal, K::Unavailable, "limits_unavailable", None),
        };
        Row { source, kind, reason, usage }
    }
}

/// An error the proxy answers itself, in the provider's native error shape.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ProxyError {
    pub fault: Fault,
    /// Whose native error shape the answer takes (`None`: no provider known, OpenAI shape).
    pub ptype: Option<ProviderType>,
    /// For the client (and the log): names the provider and the cause, never a secret.
    pub message: String,
}

impl ProxyError {
    pub fn new(fault: Fault, ptype: Option<ProviderType>, message: impl Into<String>) -> ProxyError {
        ProxyError { fault, ptype, message: message.into() }
    }

    pub fn source(&self) -> Source {
        self.fault.row().source
    }

    /// A Bedrock credential or signing failure (all internal: the gateway's configuration).
    pub fn from_aws(e: &AwsError) -> ProxyError {
        let fault = match e {
            AwsError::MissingSecret { .. } => Fault::MissingCredential,
            AwsError::NotBedrock { .. } | AwsError::Provider { .. } => Fault::CredentialUnavailable,
            AwsError::Signing { .. } => Fault::SigningFailed,
        };
        ProxyError::new(fault, Some(ProviderType::Bedrock), e.to_string())
    }

    /// The response, with its side effects as the table says: downstream and internal faults
    /// are counted (internal ones also logged as errors); an upstream fault is recorded on
    /// `recorder` (its one usage event, which also counts it). `recorder` is `None` where
    /// nothing is metered (control-plane calls) or before the upstream was contacted.
    pub fn respond(self, metrics: &Metrics, recorder: Option<&mut Recorder>) -> Response {
        let row = self.fault.row();
        // 401 has one shape for every provider, known or not (it must not reveal which names exist).
        let resp = if self.fault == Fault::Unauthenticated {
            into_response(tollgate_protocol::errors::render_unauthenticated(&self.message))
        } else {
            native(self.ptype, row.kind, &self.message)
        };
        match row.source {
            Source::Downstream => metrics.refused(row.source.as_str(), row.reason),
            Source::Internal => {
                metrics.refused(row.source.as_str(), row.reason);
                tracing::error!(source = row.source.as_str(), reason = row.reason, "proxy: {}", self.message);
            }
            Source::Upstream => {
                if let (Some(rec), Some(status)) = (recorder, row.usage) {
                    rec.emit(Outcome {
                        status,
                        http_status: Some(resp.status().as_u16()),
                        error_class: Some(row.reason),
                        usage: None,
                        ttft: None,
                    });
                }
            }
        }
        resp
    }
}

/// A gateway error in the native shape of `ptype`.
fn native(ptype: Option<ProviderType>, kind: GatewayErrorKind, message: &str) -> Response {
    into_response(render(ptype, kind, message))
}

fn into_response(e: tollgate_protocol::errors::NativeError) -> Response {
    let mut resp = Response::new(Body::from(e.body));
    *resp.status_mut() = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in e.headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            resp.headers_mut().insert(name, v);
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_has_a_metric_and_every_upstream_fault_a_usage_status() {
        for f in Fault::ALL {
            let row = f.row();
            match row.source {
                Source::Downstream | Source::Internal => {
                    assert!(row.usage.is_none(), "{f:?}: refusals record no usage event");
                    assert!(
                        crate::metrics::REFUSED.contains(&(row.source.as_str(), row.reason)),
                        "{f:?}: {} / {} is not exported",
                        row.source.as_str(),
                        row.reason
                    );
                }
                Source::Upstream => assert!(row.usage.is_some(), "{f:?}"),
            }
            let status = row.kind.status();
            match row.source {
                Source::Downstream => assert!((400..500).contains(&status), "{f:?}"),
                Source::Internal if f == Fault::LimitsUnavailable => assert_eq!(status, 503, "{f:?}"),
                Source::Internal => assert_eq!(status, 500, "{f:?}"),
                Source::Upstream => assert!(status == 502 || status == 504, "{f:?}"),
            }
        }
    }

    #[test]
    fn aws_failures_are_internal() {
        let missing = AwsError::MissingSecret { provider: "p".into(), secret: "S".into() };
        let signing = AwsError::Signing { provider: "p".into(), reason: "bad".into() };
        for e in [missing, signing] {
            let p = ProxyError::from_aws(&e);
            assert_eq!(p.source(), Source::Internal, "{e}");
            assert!(p.message.contains("provider \"p\""), "{}", p.message);
        }
    }
}
