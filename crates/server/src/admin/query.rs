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

/// The parameter serde's message names (`Failed to deserialize query string: dry_run: …`),
/// or "" when it names none (a parameter twice, a malformed string).
fn named_parameter(text: &str) -> &str {
    let rest = text.split_once("query string: ").map_or(text, |(_, r)| r);
    match rest.split_once(": ") {
        Some((name, _)) if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') => name,
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_bad_value_names_its_parameter() {
        let named = super::named_parameter(
            "Failed to deserialize query string: dry_run: provided string was not `true` or `false`",
        );
        assert_eq!(named, "dry_run");
        assert_eq!(super::named_parameter("Failed to deserialize query string: duplicate field `x`"), "");
    }
}
