//! An independent AWS Signature Version 4 verifier for the fake AWS endpoints. It recomputes
//! the signature from the bytes actually received (method, raw path, query, the headers the
//! client says it signed, the body) with its own canonicalisation and HMAC-SHA256 chain, so a
//! signing bug in the gateway cannot hide behind the same library on both sides.
//!
//! Canonical request (non-S3 services): the path URI-encoded once more segment by segment
//! (`%3A` is signed as `%253A`), the query pairs decoded, strictly re-encoded and sorted, the
//! signed headers lower-cased with values trimmed and inner whitespace collapsed, and the
//! SHA-256 of the body (or `x-amz-content-sha256` when sent).

use aws_lc_rs::{digest, hmac};
use chrono::{NaiveDateTime, TimeZone, Utc};
use http::HeaderMap;

/// The parsed `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub access_key_id: String,
    /// `YYYYMMDD`
    pub date: String,
    pub region: String,
    pub service: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

/// Parses an `AWS4-HMAC-SHA256` authorization header; `None` when it is not one.
pub fn parse_authorization(value: &str) -> Option<Authorization> {
    let rest = value.strip_prefix("AWS4-HMAC-SHA256 ")?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed = Some(v),
            "Signature" => signature = Some(v),
            _ => {}
        }
    }
    let mut scope = credential?.split('/');
    let (ak, date, region, service, term) = (scope.next()?, scope.next()?, scope.next()?, scope.next()?, scope.next()?);
    if term != "aws4_request" || scope.next().is_some() {
        return None;
    }
    Some(Authorization {
        access_key_id: ak.to_string(),
        date: date.to_string(),
        region: region.to_string(),
        service: service.to_string(),
        signed_headers: signed?.split(';').map(str::to_string).collect(),
        signature: signature?.to_string(),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(data: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, data).as_ref())
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data).as_ref().to_vec()
}

/// RFC 3986 strict encoding: unreserved characters stay, every other byte is `%XX`.
fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// The canonical query string of a raw query.
fn canonical_query(query: Option<&str>) -> String {
    let mut pairs: Vec<(String, String)> = query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (uri_encode(&decode(k), false), uri_encode(&decode(v), false))
        })
        .collect();
    pairs.sort();
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

/// Everything the verifier needs from a received request.
#[derive(Debug)]
pub struct Signed<'a> {
    pub method: &'a str,
    /// Raw path as received (still percent-encoded).
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// The canonical request the client should have signed.
pub fn canonical_request(req: &Signed<'_>, auth: &Authorization) -> String {
    let path = if req.path.is_empty() { "/" } else { req.path };
    let uri = uri_encode(path, true);
    let mut names = auth.signed_headers.clone();
    names.sort();
    let mut canonical_headers = String::new();
    for name in &names {
        let values: Vec<String> = req
            .headers
            .get_all(name.as_str())
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        canonical_headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    let payload = req
        .headers
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok())
        .map_or_else(|| sha256_hex(req.body), str::to_string);
    format!(
        "{}\n{uri}\n{}\n{canonical_headers}\n{}\n{payload}",
        req.method,
        canonical_query(req.query),
        names.join(";")
    )
}

/// Why a request was refused, in the shape AWS answers (status 403 for all of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// No SigV4 `Authorization` header.
    Missing,
    /// The access key is not known.
    UnknownKey,
    /// The key needs a session token and a different (or no) one was sent.
    BadSessionToken,
    /// The temporary credentials have expired.
    Expired,
    /// `x-amz-date` is missing or more than 15 minutes away.
    StaleDate,
    /// The credential scope names another region or service.
    WrongScope(String),
    /// The signature does not match.
    Mismatch,
}

impl Rejection {
    /// `(x-amzn-ErrorType, message)`.
    pub fn error(&self) -> (&'static str, String) {
        match self {
            Rejection::Missing => ("MissingAuthenticationTokenException", "Missing Authentication Token".into()),
            Rejection::UnknownKey | Rejection::BadSessionToken => {
                ("UnrecognizedClientException", "The security token included in the request is invalid.".into())
            }
            Rejection::Expired => {
                ("ExpiredTokenException", "The security token included in the request is expired".into())
            }
            Rejection::StaleDate => {
                ("InvalidSignatureException", "Signature expired: the request time is too skewed".into())
            }
            Rejection::WrongScope(m) => ("InvalidSignatureException", m.clone()),
            Rejection::Mismatch => (
                "InvalidSignatureException",
                "The request signature we calculated does not match the signature you provided. Check your AWS \
                 Secret Access Key and signing method. Consult the service documentation for details."
                    .into(),
            ),
        }
    }
}

/// A key the fake accepts.
#[derive(Debug, Clone)]
pub struct Key {
    pub secret: String,
    pub session_token: Option<String>,
    /// Unix seconds after which the key is expired.
    pub expires_at: Option<i64>,
}

/// Verifies `req` against the known keys, for `service` in `region`, at `now` (unix seconds).
/// On success returns the parsed authorization.
pub fn verify(
    req: &Signed<'_>,
    keys: &dyn Fn(&str) -> Option<Key>,
    service: &str,
    region: &str,
    now: i64,
) -> Result<Authorization, Rejection> {
    let auth = req
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_authorization)
        .ok_or(Rejection::Missing)?;
    let key = keys(&auth.access_key_id).ok_or(Rejection::UnknownKey)?;
    let sent_token = req.headers.get("x-amz-security-token").and_then(|v| v.to_str().ok());
    if key.session_token.as_deref() != sent_token {
        return Err(Rejection::BadSessionToken);
    }
    if key.expires_at.is_some_and(|e| now >= e) {
        return Err(Rejection::Expired);
    }
    if auth.service != service {
        return Err(Rejection::WrongScope(format!("Credential should be scoped to correct service: '{service}'.")));
    }
    if auth.region != region {
        return Err(Rejection::WrongScope(format!(
            "Credential should be scoped to a valid region, not '{}'.",
            auth.region
        )));
    }
    if !auth.signed_headers.iter().any(|h| h == "host") || !auth.signed_headers.iter().any(|h| h == "x-amz-date") {
        return Err(Rejection::Mismatch);
    }
    let amz_date = req.headers.get("x-amz-date").and_then(|v| v.to_str().ok()).ok_or(Rejection::StaleDate)?;
    let at = NaiveDateTime::parse_from_str(amz_date, "%Y%m%dT%H%M%SZ").map_err(|_| Rejection::StaleDate)?;
    let at = Utc.from_utc_datetime(&at).timestamp();
    if (now - at).abs() > 15 * 60 || !amz_date.starts_with(&auth.date) {
        return Err(Rejection::StaleDate);
    }
    let creq = canonical_request(req, &auth);
    let scope = format!("{}/{}/{}/aws4_request", auth.date, auth.region, auth.service);
    let string_to_sign = format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}", sha256_hex(creq.as_bytes()));
    let mut k = hmac_sha256(format!("AWS4{}", key.secret).as_bytes(), auth.date.as_bytes());
    for part in [auth.region.as_str(), auth.service.as_str(), "aws4_request"] {
        k = hmac_sha256(&k, part.as_bytes());
    }
    let expected = hex(&hmac_sha256(&k, string_to_sign.as_bytes()));
    if expected != auth.signature {
        return Err(Rejection::Mismatch);
    }
    Ok(auth)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use http::HeaderValue;

    /// The AWS SigV4 test suite's `get-vanilla-query-order-key-case` request, signed with the
    /// suite's example credentials (2015-08-30T12:36:00Z).
    #[test]
    fn verifies_the_aws_test_suite_example() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("example.amazonaws.com"));
        headers.insert("x-amz-date", HeaderValue::from_static("20150830T123600Z"));
        headers.insert(
            "authorization",
            HeaderValue::from_static(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                 SignedHeaders=host;x-amz-date, Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
            ),
        );
        let req = Signed {
            method: "GET",
            path: "/",
            query: Some("Param2=value2&Param1=value1"),
            headers: &headers,
            body: b"",
        };
        let key = |ak: &str| {
            (ak == "AKIDEXAMPLE").then(|| Key {
                secret: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
                session_token: None,
                expires_at: None,
            })
        };
        let now = 1_440_938_160;
        let auth = verify(&req, &key, "service", "us-east-1", now).unwrap();
        assert_eq!(auth.signed_headers, ["host", "x-amz-date"]);
        let tampered = Signed { query: Some("Param2=value2&Param1=value2"), ..req };
        assert_eq!(verify(&tampered, &key, "service", "us-east-1", now), Err(Rejection::Mismatch));
        assert_eq!(verify(&req, &key, "service", "us-east-1", now + 3600), Err(Rejection::StaleDate));
        assert!(matches!(verify(&req, &key, "bedrock", "us-east-1", now), Err(Rejection::WrongScope(_))));
        assert_eq!(verify(&req, &|_| None, "service", "us-east-1", now), Err(Rejection::UnknownKey));
    }

    #[test]
    fn path_is_encoded_once_more() {
        let auth = parse_authorization(
            "AWS4-HMAC-SHA256 Credential=AK/20250101/us-east-1/bedrock/aws4_request, SignedHeaders=host, Signature=00",
        )
        .unwrap();
        let headers = HeaderMap::new();
        let req =
            Signed { method: "POST", path: "/model/a.b-v1%3A0/invoke", query: None, headers: &headers, body: b"" };
        assert!(canonical_request(&req, &auth).starts_with("POST\n/model/a.b-v1%253A0/invoke\n\n"));
    }
}
