//! Stage 2, **prepare**: builds the exact upstream request — headers, credential, body, URL,
//! signature — without sending anything.
//!
//! 1. Headers: [`headers::upstream_request_headers`] drops client credentials, hop-by-hop and
//!    `x-tollgate-*` headers and `accept-encoding` (the client's `Authorization` stays only
//!    under passthrough). Bedrock: a client's own SigV4 leftovers are removed and the
//!    provider's guardrail is added on InvokeModel.
//! 2. Credential (not Bedrock, not passthrough): [`add_credential`] injects the stored key.
//! 3. Body: `prepare_body` may add `stream_options.include_usage` (the one documented edit).
//! 4. URL: base + path (a repeated `/v1` folded) + query without `key=`.
//! 5. Bedrock: the final method, URL, headers and body bytes are SigV4-signed ([`crate::aws`]).
//!
//! With tracing on, the request's span context replaces the client's `traceparent` in step 1
//! (W3C trace context; the client's `tracestate` is kept), so it is signed like the rest.
//!
//! Invariants: signing comes last, over exactly what [`super::forward`] sends; a credential or
//! signing failure is an internal [`ProxyError`] (a 500 naming the provider and the secret,
//! never its value), since the upstream was never contacted and the client is not at fault.

use super::admit::{Admitted, Inbound};
use super::error::{Fault, ProxyError};
use super::headers;
use crate::aws::Outgoing;
use crate::snapshot::ProviderEntry;
use crate::state::{AppState, Snapshot};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Uri};
use bytes::Bytes;
use tollgate_core::ProviderType;

/// The upstream request, ready to send.
pub(super) struct Prepared {
    /// The URL as sent (for the host in error messages).
    pub url: String,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The `include_usage` edit was made (the tap drops the extra chunk; length may change).
    pub injected: bool,
}

/// Why the stored upstream credential could not be injected. Names the secret, never its value.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("provider \"{provider}\" has no usable upstream credential (secret \"{secret}\")")]
    Missing { provider: String, secret: String },
    #[error("provider \"{provider}\": the upstream credential in secret \"{secret}\" {reason}")]
    Invalid { provider: String, secret: String, reason: String },
    #[error("provider \"{provider}\": {reason}")]
    NotBound { provider: String, reason: String },
}

impl CredentialError {
    fn into_proxy(self, ptype: ProviderType) -> ProxyError {
        let fault = match &self {
            CredentialError::Missing { .. } => Fault::MissingCredential,
            CredentialError::Invalid { .. } => Fault::InvalidCredential,
            CredentialError::NotBound { .. } => Fault::CredentialNotBound,
        };
        ProxyError::new(fault, Some(ptype), self.to_string())
    }
}

/// Builds the upstream request for an admitted one. `span` (tracing on) is propagated as the
/// upstream request's `traceparent`, before signing. `answer_extra`: headers the gateway adds
/// to the answer (`headers::upstream_request_headers`).
#[allow(clippy::too_many_arguments)]
pub(super) async fn prepare(
    state: &AppState,
    snap: &Snapshot,
    a: &Admitted,
    name: &str,
    parts: &Parts,
    path: &str,
    inbound: &mut Inbound,
    span: Option<&crate::telemetry::RequestSpan>,
    answer_extra: usize,
) -> Result<Prepared, ProxyError> {
    let spec = &a.entry.spec;
    let passthrough = spec.authorization_passthrough();
    let mut headers = headers::upstream_request_headers(&parts.headers, passthrough, answer_extra);
    let bedrock = a.ptype == ProviderType::Bedrock;
    headers::add_hop(&mut headers, &parts.headers, state.hop_id(), state.hop_value());
    if let Some(span) = span {
        span.inject(&mut headers);
    }
    if bedrock {
        headers::strip_aws_signing(&mut headers);
        if let Some(cfg) = spec.bedrock_config.as_ref() {
            headers::bedrock_guardrail(&mut headers, &inbound.info, cfg);
        }
    } else if !passthrough {
        add_credential(state, snap, &a.entry, a.ptype, &mut headers).await.map_err(|e| e.into_proxy(a.ptype))?;
    }
    let (body, injected) = tollgate_protocol::prepare_body(a.family, &inbound.info, std::mem::take(&mut inbound.body));
    let stripped_query = parts.uri.query().map(headers::strip_query_key);
    let base = spec.upstream_base_url();
    let url = upstream_url(&base, path, stripped_query.as_deref());
    let denied = |d| ProxyError::new(Fault::UpstreamAddressDenied, Some(a.ptype), format!("provider \"{name}\": {d}"));
    let url = match a.entry.base_url.as_ref() {
        // The usual request: a plain path and query the URL parser would leave as they are,
        // under the base. The address policy on the base's origin, which is the URL's.
        Some(base) if plain_under_base(base, &url) => {
            state.address_policy().check_parsed(base).map_err(denied)?;
            url
        }
        _ => {
            // Normalised as a URL (what is signed and sent).
            let Ok(parsed) = parse_upstream(a.entry.base_url.as_ref(), &url) else {
                return Err(ProxyError::new(
                    Fault::BadRequest,
                    Some(a.ptype),
                    "the request path is not a valid URL path",
                ));
            };
            // Second line behind `admit::check_path`: whatever the URL parser normalised, the
            // path sent stays under the base URL's path prefix.
            // Against the base as parsed once per snapshot (`spec.upstream_base_url()` depends
            // on the spec only); a base that does not parse has nothing under it.
            if !a.entry.base_url.as_ref().is_some_and(|b| under_parsed_base(b, &parsed)) {
                return Err(ProxyError::new(
                    Fault::PathTraversal,
                    Some(a.ptype),
                    "request path: it would leave the provider's base URL; such paths are refused",
                ));
            }
            // The address policy on the URL as sent (the resolver checks what a name resolves to).
            state.address_policy().check_parsed(&parsed).map_err(denied)?;
            String::from(parsed)
        }
    };
    // Then as the HTTP client's URI.
    let Some((url, uri)) = url.parse::<Uri>().ok().map(|uri| (url, uri)) else {
        return Err(ProxyError::new(Fault::BadRequest, Some(a.ptype), "the request path is not a valid URL path"));
    };
    if bedrock {
        // Sign the final bytes: the URL as it will be sent, these headers, this body.
        // Boxed: credential loading (STS, metadata endpoints) makes this a large future, and
        // inlined it would grow the future of every request, Bedrock or not.
        Box::pin(state.aws().sign(
            state.secret_lookup(Some(snap)),
            spec,
            Outgoing { method: parts.method.as_str(), url: &url, body: &body },
            &mut headers,
        ))
        .await
        .map_err(|e| ProxyError::from_aws(&e))?;
    }
    Ok(Prepared { url, uri, headers, body, injected })
}

/// Injects the provider's stored upstream key (if it has one) into `headers`.
pub(crate) async fn add_credential(
    state: &AppState,
    snap: &Snapshot,
    entry: &ProviderEntry,
    ptype: ProviderType,
    headers: &mut HeaderMap,
) -> Result<(), CredentialError> {
    let (name, spec) = (entry.spec.name.as_str(), &entry.spec);
    let Some(secret_name) = spec.api_key_ref() else {
        return Ok(());
    };
    // The secret goes only to a host it is bound to; the request URL's origin is the base
    // URL's (`under_base` in prepare; the probe URL in Test Connection is built on it).
    crate::binding::check_injection(snap.bindings.get(secret_name), secret_name, entry.base_host.as_deref())
        .map_err(|reason| CredentialError::NotBound { provider: name.to_string(), reason })?;
    let Some(secret) = state.credential(snap, secret_name).await else {
        return Err(CredentialError::Missing { provider: name.to_string(), secret: secret_name.to_string() });
    };
    headers::inject_credential(headers, ptype, &secret).map_err(|reason| CredentialError::Invalid {
        provider: name.to_string(),
        secret: secret_name.to_string(),
        reason,
    })
}

/// Parses the upstream URL. When it starts with the parsed base URL's origin (the usual case),
/// only the rest (path and query) is parsed, relative to the base: the origin is not parsed
/// again, and parsing the host (IDNA processing) was most of a whole parse's cost. The result
/// is the same URL; a rest that could read as another authority (`//`, `/\`, a control
/// character after the slash) is parsed whole instead. `under_parsed_base` checks the origin
/// afterwards either way.
pub(crate) fn parse_upstream(base: Option<&reqwest::Url>, url: &str) -> Result<reqwest::Url, url::ParseError> {
    if let Some(base) = base
        && let Some(rest) = url.strip_prefix(&base[..url::Position::BeforePath])
        && rest.starts_with('/')
        && rest.as_bytes().get(1).is_none_or(|b| !matches!(b, b'/' | b'\\') && !b.is_ascii_control())
    {
        return reqwest::Url::options().base_url(Some(base)).parse(rest);
    }
    reqwest::Url::parse(url)
}

/// Whether `url` is the parsed base's origin followed by a path and query that parsing would
/// leave exactly as they are, the path under the base's path: only unreserved characters,
/// sub-delimiters, `:`, `@` and `/` (no `%`, so no encoded dot either, no `\`, nothing the
/// parser percent-encodes), no `.` or `..` segment, not starting with `//`; the query the
/// same plus `?` and `%` (less `'`, which a special scheme's query encodes). Such a URL is its
/// own normalised form (`parse_upstream` would return it unchanged: unit test), so the proxy
/// skips the parse; anything else takes it.
pub(crate) fn plain_under_base(base: &reqwest::Url, url: &str) -> bool {
    /// Per byte: 1 plain in a path, 2 plain in a query, 3 both.
    static PLAIN: [u8; 256] = {
        let mut t = [0u8; 256];
        let mut b = 0;
        while b < 256 {
            let c = b as u8;
            if c.is_ascii_alphanumeric() {
                t[b] = 3;
            }
            b += 1;
        }
        let both = b"-._~!$&()*+,;=:@/";
        let mut i = 0;
        while i < both.len() {
            t[both[i] as usize] = 3;
            i += 1;
        }
        t[b'\'' as usize] = 1;
        t[b'?' as usize] = 2;
        t[b'%' as usize] = 2;
        t
    };
    let Some(rest) = url.strip_prefix(&base[..url::Position::BeforePath]) else {
        return false;
    };
    let bytes = rest.as_bytes();
    if bytes.first() != Some(&b'/') || bytes.get(1) == Some(&b'/') {
        return false;
    }
    // The path up to the first `?`: plain bytes, no `.` or `..` segment.
    let mut segment = 1;
    let mut end = bytes.len();
    for (i, &b) in bytes.iter().enumerate().skip(1) {
        if b == b'/' || b == b'?' {
            if super::admit::dot_segment(&bytes[segment..i]) {
                return false;
            }
            if b == b'?' {
                end = i;
                break;
            }
            segment = i + 1;
        } else if PLAIN[usize::from(b)] & 1 == 0 {
            return false;
        }
    }
    if end == bytes.len() && super::admit::dot_segment(&bytes[segment..]) {
        return false;
    }
    bytes[end..].iter().skip(1).all(|&b| PLAIN[usize::from(b)] & 2 != 0) && path_under(base.path(), &rest[..end])
}

/// Whether `path` is `base_path` (less a trailing `/`) or below it.
fn path_under(base_path: &str, path: &str) -> bool {
    path.strip_prefix(base_path.trim_end_matches('/')).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Whether `url` is on the base URL's origin and its path under the base URL's path.
pub(crate) fn under_base(base: &str, url: &reqwest::Url) -> bool {
    reqwest::Url::parse(base).is_ok_and(|base| under_parsed_base(&base, url))
}

/// [`under_base`] with the base already parsed.
pub(crate) fn under_parsed_base(base: &reqwest::Url, url: &reqwest::Url) -> bool {
    base.origin() == url.origin() && path_under(base.path(), url.path())
}

/// The upstream URL: base + path + query. When the base already ends in `/v1` and the
/// client's path repeats it (`/v1/chat/completions` with base `https://api.openai.com/v1`),
/// the duplicate segment is dropped, so SDKs configured with or without `/v1` both work.
pub(crate) fn upstream_url(base: &str, path: &str, query: Option<&str>) -> String {
    let base = base.trim_end_matches('/');
    let path = match path.strip_prefix("/v1") {
        Some(rest) if base.ends_with("/v1") && (rest.is_empty() || rest.starts_with('/')) => rest,
        _ => path,
    };
    let mut url = String::with_capacity(base.len() + path.len() + query.map_or(0, str::len) + 1);
    url.push_str(base);
    url.push_str(path);
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        url.push('?');
        url.push_str(q);
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing_after_the_base_origin_gives_the_whole_parse() {
        let base = reqwest::Url::parse("https://api.example.com:8443/v1").unwrap_or_else(|e| panic!("{e}"));
        for rest in [
            "/v1/chat/completions",
            "/v1/a/../b/./c?x=1&y=%20z",
            "/v1/models/x%2Fy:generateContent?alt=sse",
            "/v1/caf\u{e9}/\u{1f600}",
            "/",
            "//evil.example/x",
            "/\\evil.example/x",
            "/v1\\..\\x",
        ] {
            let url = format!("https://api.example.com:8443{rest}");
            assert_eq!(
                parse_upstream(Some(&base), &url).map(String::from),
                reqwest::Url::parse(&url).map(String::from),
                "{rest}"
            );
        }
        // Another origin, or no parsed base: parsed whole.
        let other = "http://127.0.0.1:9/v1/x";
        assert_eq!(parse_upstream(Some(&base), other).unwrap_or_else(|e| panic!("{e}")).as_str(), other);
        assert_eq!(parse_upstream(None, other).unwrap_or_else(|e| panic!("{e}")).as_str(), other);
    }

    #[test]
    fn a_plain_url_is_its_own_normalised_form() {
        // Every URL the fast path takes parses to itself, under the base; over generated
        // paths and queries from an alphabet of every kind of character the parser treats
        // specially (a fixed LCG: the same cases every run).
        let alphabet: Vec<&str> =
            "a b / . .. %2e %2E %2e%2e % 2 ? & = : @ ! $ ' ( ) * + , ; ~ - _ \\ # < > \" ` { } ^ | [ ] \u{e9} \t"
                .split(' ')
                .chain([" "])
                .collect();
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |n: usize| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as usize % n
        };
        let (mut taken, mut left) = (0, 0);
        for base in ["https://api.example.com:8443/v1", "http://127.0.0.1:9", "https://h.example/openai/v1/"] {
            let parsed = reqwest::Url::parse(base).unwrap_or_else(|e| panic!("{e}"));
            for _ in 0..20_000 {
                let len = 1 + next(14);
                let tail: String = (0..len).map(|_| alphabet[next(alphabet.len())]).collect();
                let url = upstream_url(base, &format!("/v1/{tail}"), None);
                if plain_under_base(&parsed, &url) {
                    taken += 1;
                    let whole = reqwest::Url::parse(&url).unwrap_or_else(|e| panic!("{url}: {e}"));
                    assert_eq!(whole.as_str(), url, "{url} is not its own normalised form");
                    assert!(under_parsed_base(&parsed, &whole), "{url}");
                } else {
                    left += 1;
                }
            }
        }
        assert!(taken > 1_000 && left > 1_000, "{taken} taken, {left} left");
        let base = reqwest::Url::parse("http://h:1/openai/v1").unwrap_or_else(|e| panic!("{e}"));
        assert!(plain_under_base(&base, "http://h:1/openai/v1/chat/completions?x=1&y=%20"));
        assert!(plain_under_base(&base, "http://h:1/openai/v1/model/us.anthropic.claude:0/invoke"));
        for refused in [
            "http://h:1/openai/v1/../x",
            "http://h:1/openai/v1/./x",
            "http://h:1/openai/v1/%2e%2e/x",
            "http://h:1/openai/v2/x",
            "http://h:1/openai/v1x",
            "http://h:2/openai/v1/x",
            "http://h:1//openai/v1/x",
            "http://h:1/openai/v1/a b",
            "http://h:1/openai/v1/x?q='",
        ] {
            assert!(!plain_under_base(&base, refused), "{refused}");
        }
    }

    #[test]
    fn joins_base_path_and_query() {
        assert_eq!(
            upstream_url("https://api.openai.com/v1", "/chat/completions", None),
            "https://api.openai.com/v1/chat/completions"
        );
        assert_eq!(upstream_url("https://api.openai.com/v1/", "/v1/models", None), "https://api.openai.com/v1/models");
        assert_eq!(
            upstream_url("https://api.anthropic.com", "/v1/messages", Some("beta=true")),
            "https://api.anthropic.com/v1/messages?beta=true"
        );
        assert_eq!(upstream_url("http://h/v1", "/v1beta/x", Some("")), "http://h/v1/v1beta/x");
    }

    #[test]
    fn normalised_paths_stay_under_the_base() {
        let under = |base: &str, path: &str| {
            let url = reqwest::Url::parse(&upstream_url(base, path, None)).unwrap_or_else(|e| panic!("{e}"));
            under_base(base, &url)
        };
        assert!(under("http://h:1/openai/v1", "/chat/completions"));
        assert!(under("http://h:1", "/v1/messages"));
        assert!(!under("http://h:1/openai/v1", "/%2e%2e/%2e%2e/admin/secret"));
        assert!(!under("http://h:1/openai/v1", "/../x"));
        assert!(!under("http://h:1/openai/v1", "/%2E%2E"));
    }
}
