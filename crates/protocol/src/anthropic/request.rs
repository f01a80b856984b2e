//! Anthropic requests: `POST /v1/messages` (Messages), `POST /v1/messages/count_tokens`
//! (CountTokens), `GET /v1/models` (ListModels), matched by suffix; `model` and `stream` from
//! the JSON body; models-list filtering on `data[].id`.

use crate::json_scan;
use crate::wire::{Endpoint, RequestInfo, filter_list};

pub(crate) fn inspect(method: &str, path: &str, _query: Option<&str>, body: &[u8]) -> RequestInfo {
    let p = path.trim_end_matches('/');
    let endpoint = if method.eq_ignore_ascii_case("POST") {
        if p.ends_with("/messages/count_tokens") {
            Endpoint::CountTokens
        } else if p.ends_with("/messages") {
            Endpoint::Messages
        } else {
            Endpoint::Other
        }
    } else if method.eq_ignore_ascii_case("GET") && p.ends_with("/models") {
        Endpoint::ListModels
    } else {
        Endpoint::Other
    };
    let peek = json_scan::peek_body(body);
    let mut info = RequestInfo::peeked(endpoint, peek);
    // Messages, token counts and the legacy text completions name their model in the body.
    info.body_names_model = method.eq_ignore_ascii_case("POST")
        && (matches!(endpoint, Endpoint::Messages | Endpoint::CountTokens) || p.ends_with("/v1/complete"));
    info
}

pub(crate) fn filter_model_list(body: &[u8], allowed: &dyn Fn(&str) -> bool) -> Option<Vec<u8>> {
    filter_list(body, "data", "id", allowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_paths() {
        let e = |m: &str, p: &str| inspect(m, p, None, b"").endpoint;
        assert_eq!(e("POST", "/v1/messages"), Endpoint::Messages);
        assert_eq!(e("POST", "/v1/messages/count_tokens"), Endpoint::CountTokens);
        assert_eq!(e("GET", "/v1/models"), Endpoint::ListModels);
        assert_eq!(e("GET", "/v1/models/claude-sonnet-4-5"), Endpoint::Other);
        assert_eq!(e("POST", "/v1/messages/batches"), Endpoint::Other);
        let i = inspect("POST", "/v1/messages", None, br#"{"model":"claude-sonnet-4-5","stream":true,"max_tokens":5}"#);
        assert_eq!((i.model.as_deref(), i.stream, i.body_error), (Some("claude-sonnet-4-5"), true, None));
    }
}
