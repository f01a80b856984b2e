//! AWS Signature Version 4 for requests the gateway sends to Bedrock, as a pure function:
//! the method, URL, headers and the exact body bytes go in with the credentials, region,
//! service and time; the headers to add (`authorization`, `x-amz-date`, and
//! `x-amz-security-token` for temporary credentials) come out. Signing uses `aws-sigv4` with
//! its default settings (the ones the AWS SDKs use for Bedrock: the path is URI-encoded once
//! more, `UNSIGNED-PAYLOAD` is never used, no `x-amz-content-sha256` header).
//!
//! Every header passed in is signed (except the ones `aws-sigv4` always leaves out:
//! `authorization`, `user-agent`, `x-amzn-trace-id`, `transfer-encoding`), so the caller must
//! send exactly these headers with exactly these values, and `host` follows from the URL.

use std::fmt;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;

/// AWS credentials to sign with. `Debug` never shows the secret or the session token.
#[derive(Clone, PartialEq, Eq)]
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Present for temporary credentials (STS, instance roles, …).
    pub session_token: Option<String>,
}

impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("session_token", &self.session_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Why a request could not be signed (a malformed URL or header; never contains secrets).
#[derive(Debug, thiserror::Error)]
#[error("cannot sign the request: {0}")]
pub struct SigningError(String);

/// One request to sign.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The full URL as it will be sent (scheme, host[:port], already-encoded path, query).
    pub url: &'a str,
    /// The headers that will be sent, minus `host` and `content-length` (the HTTP client adds
    /// those; `host` is signed from the URL).
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

/// Signs `req` for `service` in `region` at `time`; returns the headers to add.
pub fn sign_request(
    req: &Request<'_>,
    creds: &AwsCredentials,
    region: &str,
    service: &str,
    time: SystemTime,
) -> Result<Vec<(&'static str, String)>, SigningError> {
    let identity: Identity = Credentials::new(
        creds.access_key_id.clone(),
        creds.secret_access_key.clone(),
        creds.session_token.clone(),
        None,
        "tollgate",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| SigningError(e.to_string()))?
        .into();
    let signable =
        SignableRequest::new(req.method, req.url, req.headers.iter().copied(), SignableBody::Bytes(req.body))
            .map_err(|e| SigningError(e.to_string()))?;
    let (instructions, _signature) = sign(signable, &params).map_err(|e| SigningError(e.to_string()))?.into_parts();
    let (headers, _params) = instructions.into_parts();
    Ok(headers.into_iter().map(|h| (h.name(), h.value().to_string())).collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn creds(token: Option<&str>) -> AwsCredentials {
        AwsCredentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: token.map(str::to_string),
        }
    }

    /// The AWS SigV4 test suite's `get-vanilla` case (2015-08-30T12:36:00Z, us-east-1,
    /// service `service`): a published, independently computed signature.
    #[test]
    fn matches_the_aws_test_suite() {
        let t = UNIX_EPOCH + Duration::from_secs(1_440_938_160);
        let req = Request { method: "GET", url: "https://example.amazonaws.com/", headers: &[], body: b"" };
        let h = sign_request(&req, &creds(None), "us-east-1", "service", t).unwrap();
        let get = |n: &str| h.iter().find(|(k, _)| *k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("x-amz-date"), Some("20150830T123600Z"));
        assert_eq!(
            get("authorization"),
            Some(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                 SignedHeaders=host;x-amz-date, \
                 Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
            )
        );
        assert_eq!(get("x-amz-security-token"), None);
    }

    #[test]
    fn signs_headers_body_and_session_token() {
        let t = UNIX_EPOCH + Duration::from_secs(1_750_000_000);
        let req = Request {
            method: "POST",
            url: "http://127.0.0.1:4566/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/invoke",
            headers: &[("content-type", "application/json"), ("accept", "application/json")],
            body: br#"{"anthropic_version":"bedrock-2023-05-31"}"#,
        };
        let h = sign_request(&req, &creds(Some("FwoGZXIvYXdzEXAMPLE")), "us-west-2", "bedrock", t).unwrap();
        let auth = h.iter().find(|(k, _)| *k == "authorization").map(|(_, v)| v.clone()).unwrap();
        assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250615/us-west-2/bedrock/aws4_request"));
        assert!(auth.contains("SignedHeaders=accept;content-type;host;x-amz-date;x-amz-security-token"), "{auth}");
        assert!(h.iter().any(|(k, v)| *k == "x-amz-security-token" && v == "FwoGZXIvYXdzEXAMPLE"));
        let other = sign_request(&Request { body: b"{}", ..req }, &creds(None), "us-west-2", "bedrock", t).unwrap();
        assert_ne!(other.iter().find(|(k, _)| *k == "authorization").map(|(_, v)| v.clone()), Some(auth));
        assert!(!format!("{:?}", creds(Some("SESSIONXYZ"))).contains("wJalr"));
        assert!(!format!("{:?}", creds(Some("SESSIONXYZ"))).contains("SESSIONXYZ"));
    }
}
