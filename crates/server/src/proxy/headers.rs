//! Header hygiene on the proxy path: what the client sent that must not reach the upstream
//! (every client credential, cookies included, hop-by-hop headers, the gateway's own
//! `x-tollgate-*` headers), what the upstream sent that must not reach the client (hop-by-hop,
//! `Set-Cookie`), and the upstream credential the gateway injects instead.

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use tollgate_core::provider::BedrockConfig;
use tollgate_core::{CredentialScheme, ProviderType};
use tollgate_protocol::{Endpoint, RequestInfo};
use tollgate_store::SecretValue;

/// Hop-by-hop headers (RFC 9110 §7.6.1) plus those the HTTP client recomputes.
const HOP_BY_HOP: &[HeaderName] = &[
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
    header::PROXY_AUTHENTICATE,
];

fn is_hop_by_hop(name: &HeaderName, connection_listed: &[String]) -> bool {
    HOP_BY_HOP.contains(name)
        || name.as_str() == "keep-alive"
        || name.as_str() == "proxy-connection"
        || connection_listed.iter().any(|c| c == name.as_str())
}

/// Header names listed in `Connection` (they are hop-by-hop too).
fn connection_listed(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The headers to send upstream: the client's end-to-end headers (`anthropic-version`,
/// `anthropic-beta`, `OpenAI-Organization`, `content-type`, …) minus every credential and
/// hop-by-hop header; the client's `Authorization` is kept only under passthrough. `Cookie`
/// is a credential here too: a browser sends the console's session cookie to every URL of the
/// gateway's origin, proxy URLs included, and no LLM API reads cookies.
/// The client's `accept-encoding` is replaced by `identity` so the upstream answers
/// uncompressed and the usage tap can read the body (one that compresses anyway is decoded by
/// the body stream); `host` and `content-length` are set by the HTTP client.
/// Copied, not cleaned in place like the response head: for the benchmark's client (host,
/// authorization, content-type, content-length: most of them dropped) removing in place cost
/// ~650 instructions more than this copy (each `HeaderMap::remove` is a hashed lookup), measured
/// with callgrind. SDKs that send a dozen `x-stainless-*` headers might favour the other way.
///
/// `answer_extra`: headers the gateway will add to the answer (budget and rate-limit headers).
/// hyper parses the answer into the map of the request it last sent on that connection
/// (cleared, capacity kept), so sizing this map for an answer's usual headers plus those
/// keeps the answer's map from growing (a reallocation and a rehash of every header) when
/// they are added; without extras it is sized for the client's headers, as before.
pub fn upstream_request_headers(client: &HeaderMap, passthrough: bool, answer_extra: usize) -> HeaderMap {
    let listed = connection_listed(client);
    let capacity = if answer_extra == 0 { client.len() } else { client.len().max(ANSWER_HEADERS) + answer_extra };
    let mut out = HeaderMap::with_capacity(capacity);
    for (name, value) in client {
        let n = name.as_str();
        let drop = is_hop_by_hop(name, &listed)
            || name == header::HOST
            || name == header::CONTENT_LENGTH
            || name == header::ACCEPT_ENCODING
            || (name == header::AUTHORIZATION && !passthrough)
            || name == header::COOKIE
            || tollgate_core::provider::client_key_headers().any(|h| h == n)
            || n.starts_with("x-tollgate-");
        if !drop {
            out.append(name.clone(), value.clone());
        }
    }
    out.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("identity"));
    out
}

/// Headers an upstream's answer usually carries (content type and length, date, server, request
/// id, …): room the upstream request's map keeps for the answer when the gateway adds headers
/// to it (see [`upstream_request_headers`]).
const ANSWER_HEADERS: usize = 8;

/// The loop-detection header: every forward carries the ids of the gateways it passed
/// through, this one's last (`x-tollgate-hop: a1b2…, c3d4…`).
/// A `HeaderName`, not a `&str`: a lookup by string parses the name first (~500 instructions).
pub static HOP: HeaderName = HeaderName::from_static("x-tollgate-hop");

/// Most gateways one request may pass through (a chain longer than this is a loop between
/// gateways that do not know each other's ids).
pub const MAX_HOPS: usize = 8;

/// The hop ids a request arrived with.
pub fn hops(client: &HeaderMap) -> impl Iterator<Item = &str> {
    client
        .get_all(&HOP)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// Adds `x-tollgate-hop` to the upstream request: the client's hops plus `own` (`own_value`:
/// the same as a header value, sent as it is when the client came with no hops).
pub fn add_hop(out: &mut HeaderMap, client: &HeaderMap, own: &str, own_value: Option<&HeaderValue>) {
    let mut arrived = hops(client).peekable();
    if let (None, Some(v)) = (arrived.peek(), own_value) {
        out.insert(HOP.clone(), v.clone());
        return;
    }
    let mut all: Vec<&str> = arrived.collect();
    all.push(own);
    if let Ok(v) = HeaderValue::from_str(&all.join(", ")) {
        out.insert(HOP.clone(), v);
    }
}

/// Adds the provider's credential the way its descriptor says (`credential`). Errors if the
/// secret holds bytes that are not a valid header value (never echoing them), or if the type
/// signs its requests instead (SigV4).
pub fn inject_credential(headers: &mut HeaderMap, ptype: ProviderType, secret: &SecretValue) -> Result<(), String> {
    let (name, prefix): (HeaderName, &[u8]) = match ptype.descriptor().credential {
        CredentialScheme::Bearer => (header::AUTHORIZATION, b"Bearer "),
        CredentialScheme::Header(name) => (HeaderName::from_static(name), b""),
        CredentialScheme::SigV4 => {
            return Err(format!("{} requests are signed (SigV4), not given a key", ptype.label()));
        }
    };
    // Built in the buffer the header value keeps (one allocation, no formatting).
    let key = secret.expose().as_bytes();
    let mut buf = bytes::BytesMut::with_capacity(prefix.len() + key.len());
    buf.extend_from_slice(prefix);
    buf.extend_from_slice(key);
    let mut value = HeaderValue::from_maybe_shared(buf.freeze())
        .map_err(|_| "the API key contains characters not allowed in a header".to_string())?;
    value.set_sensitive(true);
    headers.insert(name, value);
    Ok(())
}

/// Removes what a client's own SigV4 signing left behind (the gateway signs anew; a stale
/// `x-amz-date` or session token would break or confuse the new signature).
pub fn strip_aws_signing(headers: &mut HeaderMap) {
    for h in ["x-amz-date", "x-amz-security-token", "x-amz-content-sha256"] {
        headers.remove(h);
    }
}

/// The provider's guardrail on InvokeModel requests (`X-Amzn-Bedrock-GuardrailIdentifier` /
/// `-GuardrailVersion`), replacing any the client sent: the operator's guardrail applies to
/// every call. Converse takes a guardrail only in its body (`guardrailConfig`), which the
/// gateway does not edit.
pub fn bedrock_guardrail(headers: &mut HeaderMap, info: &RequestInfo, cfg: &BedrockConfig) {
    let Some((id, version)) = cfg.guardrail_parts() else { return };
    if !matches!(info.endpoint, Endpoint::Invoke | Endpoint::InvokeStream) {
        return;
    }
    if let (Ok(id), Ok(version)) = (HeaderValue::from_str(id), HeaderValue::from_str(version)) {
        headers.insert("x-amzn-bedrock-guardrailidentifier", id);
        headers.insert("x-amzn-bedrock-guardrailversion", version);
    }
}

/// Makes the upstream's response headers the client's, in place: hop-by-hop ones removed,
/// `Set-Cookie` too (an upstream must not set cookies on the gateway's origin, where the
/// console's session cookie lives; the gateway sends no cookie upstream anyway), and
/// `content-length` when the gateway may change the body length; `room` more (the headers
/// the gateway adds: its request id, budget and rate-limit headers) reserved, so adding them
/// does not grow the map again. Not copied: a copy hashes every name again (~1k instructions
/// per response, measured), and an upstream sends few hop-by-hop headers to remove. Where one
/// is removed, the last name takes its place: the order of distinct names carries no meaning
/// (RFC 9110 §5.3); a repeated name's values keep theirs.
pub fn to_client_response(headers: &mut HeaderMap, body_may_change: bool, room: usize) {
    let listed = connection_listed(headers);
    let gone: smallvec::SmallVec<[HeaderName; 4]> = headers
        .keys()
        .filter(|name| {
            is_hop_by_hop(name, &listed)
                || *name == header::SET_COOKIE
                || (body_may_change && *name == header::CONTENT_LENGTH)
        })
        .cloned()
        .collect();
    for name in gone {
        headers.remove(name);
    }
    headers.reserve(room);
}

/// Removes `key=` from a query string (a client credential for Google), keeping the rest as sent.
pub fn strip_query_key(query: &str) -> String {
    query.split('&').filter(|p| !p.starts_with("key=") && !p.is_empty()).collect::<Vec<_>>().join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_credentials_and_hop_by_hop() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("authorization", "Bearer tg_x"),
            ("x-api-key", "tg_x"),
            ("x-goog-api-key", "tg_x"),
            ("x-tollgate-token", "tg_x"),
            ("x-tollgate-conversation", "c1"),
            ("connection", "keep-alive, x-custom-hop"),
            ("x-custom-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("accept-encoding", "gzip"),
            ("host", "gw"),
            ("content-length", "12"),
            ("anthropic-version", "2023-06-01"),
            ("anthropic-beta", "prompt-caching-2024-07-31"),
            ("openai-organization", "org-1"),
            ("content-type", "application/json"),
            ("cookie", "tollgate_session=v1.abc; other=1"),
        ] {
            h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        let out = upstream_request_headers(&h, false, 0);
        let names: Vec<&str> = out.keys().map(HeaderName::as_str).collect();
        assert_eq!(
            names,
            ["anthropic-version", "anthropic-beta", "openai-organization", "content-type", "accept-encoding"]
        );
        assert_eq!(out.get("accept-encoding").and_then(|v| v.to_str().ok()), Some("identity"));
        let out = upstream_request_headers(&h, true, 0);
        assert_eq!(out.get("authorization").and_then(|v| v.to_str().ok()), Some("Bearer tg_x"));
        assert!(out.get("x-tollgate-token").is_none());
        assert!(out.get("cookie").is_none(), "the console's session cookie went upstream");
    }

    #[test]
    fn response_headers_lose_hop_by_hop_ones_in_place() {
        let upstream = || {
            let mut h = HeaderMap::new();
            for (k, v) in [
                ("content-type", "application/json"),
                ("connection", "keep-alive, x-custom-hop"),
                ("x-custom-hop", "1"),
                ("vary", "a"),
                ("set-cookie", "tollgate_session=fixed; Path=/"),
                ("keep-alive", "timeout=5"),
                ("transfer-encoding", "chunked"),
                ("vary", "b"),
                ("set-cookie", "__cf_bm=x"),
                ("content-length", "12"),
                ("x-request-id", "req_1"),
                ("proxy-connection", "keep-alive"),
                ("upgrade", "h2c"),
            ] {
                h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
            }
            h
        };
        let names = |h: &HeaderMap| {
            let mut n: Vec<String> = h.keys().map(|k| k.as_str().to_string()).collect();
            n.sort_unstable();
            n
        };
        let mut same_length = upstream();
        to_client_response(&mut same_length, false, 7);
        // No cookie from the upstream reaches the gateway's origin.
        assert_eq!(names(&same_length), ["content-length", "content-type", "vary", "x-request-id"]);
        // Both values of a repeated header stay, in their order.
        let vary: Vec<_> = same_length.get_all("vary").iter().filter_map(|v| v.to_str().ok()).collect();
        assert_eq!(vary, ["a", "b"]);
        assert!(same_length.capacity() >= same_length.len() + 7, "room reserved for the gateway's headers");
        let mut changed = upstream();
        to_client_response(&mut changed, true, 0);
        assert_eq!(names(&changed), ["content-type", "vary", "x-request-id"]);
    }

    #[test]
    fn injects_native_credential_headers() {
        let secret = SecretValue::new("sk-up".into());
        for (t, name, value) in [
            (ProviderType::Openai, "authorization", "Bearer sk-up"),
            (ProviderType::OpenaiCompatible, "authorization", "Bearer sk-up"),
            (ProviderType::Anthropic, "x-api-key", "sk-up"),
            (ProviderType::Google, "x-goog-api-key", "sk-up"),
        ] {
            let mut h = HeaderMap::new();
            assert!(inject_credential(&mut h, t, &secret).is_ok());
            assert_eq!(h.get(name).and_then(|v| v.to_str().ok()), Some(value), "{t}");
            assert!(h.get(name).is_some_and(HeaderValue::is_sensitive));
        }
        let bad = SecretValue::new("line\nbreak".into());
        let err = inject_credential(&mut HeaderMap::new(), ProviderType::Openai, &bad).err().unwrap_or_default();
        assert!(!err.contains("line"), "{err}");
    }

    #[test]
    fn query_key_is_removed() {
        assert_eq!(strip_query_key("alt=sse&key=tg_x"), "alt=sse");
        assert_eq!(strip_query_key("key=tg_x"), "");
        assert_eq!(strip_query_key("a=1&b=2"), "a=1&b=2");
    }
}
