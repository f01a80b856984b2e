//! Errors of the service layer and the one place they become HTTP responses.
//!
//! [`ApiError`] is what admin handlers return; its `IntoResponse` is the only mapping from
//! errors to status codes and the `{"error": {code, message, field}}` body. [`ServerError`]
//! is what starting the gateway can fail with.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tollgate_core::{Broken, ValidationError};
use tollgate_store::StoreError;
use utoipa::ToSchema;

/// An admin API error.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request does not have the documented shape: not JSON, a wrong JSON type, an
    /// unknown field, a query or path parameter outside its documented schema (400).
    #[error("{message}")]
    InvalidArgument { field: String, message: String },
    /// A well-formed body whose values break a rule: a format, a range, a relation between
    /// fields, a reference to a resource that does not exist, a policy (422).
    #[error("{message}")]
    Unprocessable { field: String, message: String },
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    NotFound(String),
    /// The resource existed and was retired (a revoked token): 410.
    #[error("{0}")]
    Gone(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    FailedPrecondition(String),
    /// The body is over the admin API's limit (413).
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("internal error")]
    Internal(String),
    #[error("service unavailable: {0}")]
    Unavailable(String),
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::InvalidArgument { field: field.into(), message: message.into() }
    }

    pub fn unprocessable(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::Unprocessable { field: field.into(), message: message.into() }
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        self.parts().0
    }

    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::InvalidArgument { .. } => (StatusCode::BAD_REQUEST, "invalid_argument"),
            ApiError::Unprocessable { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_argument"),
            ApiError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            ApiError::PermissionDenied(_) => (StatusCode::FORBIDDEN, "permission_denied"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Gone(_) => (StatusCode::GONE, "gone"),
            ApiError::AlreadyExists(_) => (StatusCode::CONFLICT, "already_exists"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::FailedPrecondition(_) => (StatusCode::BAD_REQUEST, "failed_precondition"),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        }
    }
}

/// The body of every admin API error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong, and where.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// invalid_argument | unauthenticated | permission_denied | not_found | gone | already_exists |
    /// conflict | failed_precondition | payload_too_large | internal | unavailable
    pub code: String,
    pub message: String,
    /// Dotted path of the offending field, for invalid_argument (400: the request's shape;
    /// 422: a rule on a value).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        let (message, field) = match &self {
            ApiError::InvalidArgument { field, message } | ApiError::Unprocessable { field, message } => {
                let f = if field.is_empty() { None } else { Some(field.clone()) };
                let m = if field.is_empty() { message.clone() } else { format!("{field}: {message}") };
                (m, f)
            }
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                ("internal error; see the gateway log".to_string(), None)
            }
            other => (other.to_string(), None),
        };
        let body = ErrorBody { error: ErrorDetail { code: code.to_string(), message, field } };
        let mut resp = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"tollgate\""));
        }
        resp
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        match e.kind {
            Broken::Shape => ApiError::InvalidArgument { field: e.field, message: e.message },
            Broken::Rule => ApiError::Unprocessable { field: e.field, message: e.message },
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { what, name } => ApiError::NotFound(format!("{what} \"{name}\" not found")),
            StoreError::AlreadyExists { what, name } => {
                ApiError::AlreadyExists(format!("{what} \"{name}\" already exists"))
            }
            StoreError::SecretNotFound { field, name } => {
                ApiError::unprocessable(field, format!("secret \"{name}\" not found"))
            }
            StoreError::SecretInUse { name, providers } => ApiError::Conflict(format!(
                "secret \"{name}\" is referenced by providers: {}; change or delete them first",
                providers.join(", ")
            )),
            StoreError::SecretBoundElsewhere { .. } => ApiError::unprocessable("api_key_ref", e.to_string()),
            StoreError::LastAdmin => ApiError::Conflict(
                "cannot revoke the last lasting admin token (unscoped, without an expiry): the gateway would keep no \
                 token that can administer everything; create another unscoped admin token without an expiry first"
                    .into(),
            ),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// Why the gateway could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error("master key: {0}")]
    MasterKey(String),
    #[error("settings: {0}")]
    Settings(String),
    #[error("bootstrap admin token: {0}")]
    Bootstrap(String),
}

impl ServerError {
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServerError {
        let context = context.into();
        move |source| ServerError::Io { context, source }
    }
}
