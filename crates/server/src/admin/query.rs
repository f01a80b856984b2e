//! The admin API's query-string extractor: axum's `Query`, with its rejection (a duplicate
//! or mistyped parameter) answered like every other admin error, as JSON naming the problem,
//! instead of axum's plain-text 400.

use crate::error::ApiError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

/// `Query<T>` for admin handlers.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(rejection) => {
                let text = rejection.body_text();
                Err(ApiError::invalid(named_parameter(&text), format!("query string: {text}")))
            }
        }
    }
}

/// The parameter serde's message names (`Failed to deserialize query string: dry_run: …`, or
/// `… duplicate field \`dry_run\``), or "" when it names none (a malformed string).
fn named_parameter(text: &str) -> &str {
    let rest = text.split_once("query string: ").map_or(text, |(_, r)| r);
    let name = match rest.strip_prefix("duplicate field `") {
        Some(d) => d.split('`').next().unwrap_or_default(),
        None => rest.split_once(": ").map_or("", |(name, _)| name),
    };
    if name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') { name } else { "" }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_bad_value_names_its_parameter() {
        let named = super::named_parameter(
            "Failed to deserialize query string: dry_run: provided string was not `true` or `false`",
        );
        assert_eq!(named, "dry_run");
        assert_eq!(super::named_parameter("Failed to deserialize query string: duplicate field `x`"), "x");
        assert_eq!(super::named_parameter("Failed to deserialize query string: expected `,` or `}`"), "");
    }
}
