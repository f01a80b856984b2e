//! Where the gateway token is on a proxied request: wherever the client's native SDK puts
//! its API key (`Authorization: Bearer` for OpenAI and recent Anthropic SDKs, the header of a
//! type's `CredentialScheme::Header` — `x-api-key` for Anthropic, `x-goog-api-key` for
//! Google, `api-key` for Azure OpenAI — or `?key=` for Google), or `X-Tollgate-Token`.
//!
//! With authorization passthrough the client's `Authorization` belongs to the upstream, so
//! the gateway token must come in `X-Tollgate-Token`.

use axum::http::{HeaderMap, HeaderName};

/// A `HeaderName`, not a `&str`: looked up on every proxied request, and a lookup by string
/// parses the name first.
pub static TOLLGATE_TOKEN: HeaderName = HeaderName::from_static("x-tollgate-token");

/// Why no token could be taken from a request.
#[derive(Debug, PartialEq, Eq)]
pub enum TokenProblem {
    /// No credential anywhere.
    Missing,
    /// The provider forwards `Authorization` and `X-Tollgate-Token` is absent.
    PassthroughNeedsHeader,
}

fn header(headers: &HeaderMap, name: impl axum::http::header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

/// The `key` parameter of a query string (Google's REST examples authenticate with it).
pub fn query_key(query: Option<&str>) -> Option<&str> {
    query?.split('&').find_map(|pair| pair.strip_prefix("key=")).filter(|v| !v.is_empty())
}

/// The presented gateway token, in order of precedence: `X-Tollgate-Token`, then (unless
/// `passthrough`) `Authorization: Bearer`, the provider types' key headers
/// ([`tollgate_core::provider::client_key_headers`]), `?key=`.
pub fn presented_token<'a>(
    headers: &'a HeaderMap,
    query: Option<&'a str>,
    passthrough: bool,
) -> Result<&'a str, TokenProblem> {
    if let Some(t) = header(headers, &TOLLGATE_TOKEN) {
        return Ok(t);
    }
    if passthrough {
        return Err(TokenProblem::PassthroughNeedsHeader);
    }
    if let Some(t) = crate::auth::bearer(headers).filter(|t| !t.is_empty()) {
        return Ok(t);
    }
    tollgate_core::provider::client_key_headers()
        .find_map(|name| header(headers, name))
        .or_else(|| query_key(query))
        .ok_or(TokenProblem::Missing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap_or(HeaderValue::from_static("")));
        }
        h
    }

    #[test]
    fn precedence_and_sources() {
        let h = headers(&[("authorization", "Bearer tg_a"), ("x-tollgate-token", "tg_b")]);
        assert_eq!(presented_token(&h, None, false), Ok("tg_b"));
        assert_eq!(presented_token(&headers(&[("authorization", "Bearer tg_a")]), None, false), Ok("tg_a"));
        assert_eq!(presented_token(&headers(&[("x-api-key", "tg_c")]), None, false), Ok("tg_c"));
        assert_eq!(presented_token(&headers(&[("x-goog-api-key", "tg_d")]), None, false), Ok("tg_d"));
        assert_eq!(presented_token(&HeaderMap::new(), Some("alt=sse&key=tg_e"), false), Ok("tg_e"));
        assert_eq!(presented_token(&HeaderMap::new(), Some("alt=sse"), false), Err(TokenProblem::Missing));
    }

    #[test]
    fn passthrough_requires_the_tollgate_header() {
        let h = headers(&[("authorization", "Bearer sk-upstream")]);
        assert_eq!(presented_token(&h, None, true), Err(TokenProblem::PassthroughNeedsHeader));
        let h = headers(&[("authorization", "Bearer sk-upstream"), ("x-tollgate-token", "tg_x")]);
        assert_eq!(presented_token(&h, None, true), Ok("tg_x"));
    }
}
