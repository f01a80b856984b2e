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
            Err(rejection) => Err(ApiError::invalid("", format!("query string: {}", rejection.body_text()))),
        }
    }
}
