//! The admin API client: one `reqwest` client, bearer auth, and the mapping of error
//! bodies (`{"error": {"code", "message", "field"}}`) into [`ApiError`].
//!
//! It knows URLs and HTTP, not resources: callers pass path segments and JSON bodies.
//! It must not print anything; rendering is [`crate::output`]'s job.

use crate::opts::{ADMIN_TOKEN_ENV, GlobalArgs, IGNORED_TOKEN_ENV};
use anyhow::Context as _;
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;
use std::fmt;
use std::path::PathBuf;

/// Media type of a JSON merge patch (RFC 7396).
pub const MERGE_PATCH: &str = "application/merge-patch+json";

/// A non-2xx answer of the admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: Option<String>,
    pub message: String,
    pub field: Option<String>,
    /// Set when no token was sent: the likely cause of a 401.
    pub hint: Option<String>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    /// Builds the error from a status and the raw body (JSON error object or anything else).
    pub fn from_body(status: u16, body: &[u8]) -> ApiError {
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        let err = parsed.as_ref().and_then(|v| v.get("error"));
        let text = |k: &str| err.and_then(|e| e.get(k)).and_then(Value::as_str).map(str::to_owned);
        let message = text("message").unwrap_or_else(|| {
            let raw = String::from_utf8_lossy(body);
            let raw = raw.trim();
            let reason = StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("");
            if raw.is_empty() {
                format!("HTTP {status} {reason}")
            } else {
                let snippet: String = raw.chars().take(300).collect();
                format!("HTTP {status} {reason}: {snippet}")
            }
        });
        ApiError { status, code: text("code"), message, field: text("field").filter(|f| !f.is_empty()), hint: None }
    }
}

/// A successful answer: status and the JSON body, if there was one.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Option<Value>,
}

impl Answer {
    /// The body, or `null` for an empty answer.
    pub fn json(self) -> Value {
        self.body.unwrap_or(Value::Null)
    }
}

/// The HTTP client of the CLI: the system's CAs, plus `ca_cert` when given (`--ca-cert`).
pub fn http_client(ca_cert: Option<&std::path::Path>, timeout: std::time::Duration) -> anyhow::Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .user_agent(concat!("tollgate-cli/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(std::time::Duration::from_secs(10))
        .timeout(timeout);
    if let Some(path) = ca_cert {
        let pem = std::fs::read(path).with_context(|| format!("reading --ca-cert {}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("--ca-cert {}: not a PEM certificate file", path.display()))?;
        b = b.tls_certs_merge(certs);
    }
    b.build().context("building the HTTP client")
}

/// The admin API client.
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base.as_str())
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Where the bootstrap admin token is looked for when no `--token` is given.
pub fn default_token_file() -> PathBuf {
    let dir = std::env::var_os("TOLLGATE_DATA_DIR").map_or_else(|| PathBuf::from("./tollgate-data"), PathBuf::from);
    dir.join("admin.token")
}

impl Client {
    /// Builds the client from the global flags, resolving the token (`--token` or
    /// `TOLLGATE_ADMIN_TOKEN`, then the token file).
    pub fn new(global: &GlobalArgs) -> anyhow::Result<Client> {
        let token = match global.token.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            Some(t) => Some(t.to_owned()),
            None => {
                let path = default_token_file();
                if path.is_file() {
                    let raw = std::fs::read_to_string(&path)
                        .with_context(|| format!("reading the admin token from {}", path.display()))?;
                    Some(raw.trim().to_owned()).filter(|t| !t.is_empty())
                } else {
                    None
                }
            }
        };
        let http = http_client(global.ca_cert.as_deref(), std::time::Duration::from_secs(120))?;
        Client::build(&global.url, token, http)
    }

    /// Builds the client for `url` with an explicit token.
    fn build(url: &str, token: Option<String>, http: reqwest::Client) -> anyhow::Result<Client> {
        let base = Url::parse(url.trim()).with_context(|| format!("invalid --url `{url}`"))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            anyhow::bail!("invalid --url `{url}`: expected http://host:port or https://host:port");
        }
        Ok(Client { http, base, token })
    }

    /// The URL of `/api/v1/<segments...>` (each segment percent-encoded).
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.set_query(None);
        url.set_fragment(None);
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(["api", "v1"]).extend(segments);
        }
        url
    }

    pub async fn get(&self, segments: &[&str], query: &[(&str, String)]) -> anyhow::Result<Value> {
        Ok(self.send(Method::GET, segments, query, None).await?.json())
    }

    pub async fn post(&self, segments: &[&str], body: &Value) -> anyhow::Result<Answer> {
        self.send(Method::POST, segments, &[], Some((body, "application/json"))).await
    }

    pub async fn put(&self, segments: &[&str], body: &Value) -> anyhow::Result<Answer> {
        self.send(Method::PUT, segments, &[], Some((body, "application/json"))).await
    }

    pub async fn patch(&self, segments: &[&str], body: &Value) -> anyhow::Result<Answer> {
        self.send(Method::PATCH, segments, &[], Some((body, MERGE_PATCH))).await
    }

    pub async fn delete(&self, segments: &[&str]) -> anyhow::Result<Answer> {
        self.send(Method::DELETE, segments, &[], None).await
    }

    /// A GET whose answer is text (e.g. CSV), not JSON.
    pub async fn get_text(&self, segments: &[&str], query: &[(&str, String)]) -> anyhow::Result<String> {
        let (_, bytes, _) = self.exchange(Method::GET, segments, query, None, "text/csv, text/plain").await?;
        String::from_utf8(bytes).context("the server answered with text that is not UTF-8")
    }

    /// Sends one request; a non-2xx answer becomes an [`ApiError`], a transport failure a
    /// message naming the URL.
    pub async fn send(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<(&Value, &str)>,
    ) -> anyhow::Result<Answer> {
        let (status, bytes, url) = self.exchange(method.clone(), segments, query, body, "application/json").await?;
        let body = if bytes.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            Some(
                serde_json::from_slice(&bytes)
                    .with_context(|| format!("{method} {url} answered {status} with a body that is not JSON"))?,
            )
        };
        Ok(Answer { status: status.as_u16(), body })
    }

    /// One round trip: the status, body bytes and URL of a 2xx answer, else the mapped error.
    async fn exchange(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<(&Value, &str)>,
        accept: &str,
    ) -> anyhow::Result<(StatusCode, Vec<u8>, Url)> {
        let mut url = self.url(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        let mut req = self.http.request(method, url.clone()).header("accept", accept);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        if let Some((body, content_type)) = body {
            req = req.header("content-type", content_type).body(serde_json::to_vec(body)?);
        }
        let resp = req.send().await.map_err(|e| transport_error(&self.base, &e))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| transport_error(&self.base, &e))?;
        if !status.is_success() {
            let mut err = ApiError::from_body(status.as_u16(), &bytes);
            if status == StatusCode::UNAUTHORIZED && self.token.is_none() {
                err.hint = Some(no_token_hint(std::env::var_os(IGNORED_TOKEN_ENV).is_some_and(|v| !v.is_empty())));
            }
            return Err(err.into());
        }
        Ok((status, bytes.to_vec(), url))
    }
}

/// The hint of a 401 when no token was sent; `ignored_set` says `TOLLGATE_TOKEN` is set (and
/// so was probably meant for the CLI, which does not read it).
pub fn no_token_hint(ignored_set: bool) -> String {
    let mut hint = format!(
        "no token was sent: pass --token, set {ADMIN_TOKEN_ENV}, or keep the bootstrap token in {}",
        default_token_file().display()
    );
    if ignored_set {
        hint.push_str(&format!(
            " ({IGNORED_TOKEN_ENV} is set but the CLI ignores it: it names an application's gateway token)"
        ));
    }
    hint
}

fn transport_error(base: &Url, e: &reqwest::Error) -> anyhow::Error {
    let mut cause = String::new();
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = src {
        cause = s.to_string();
        src = s.source();
    }
    if cause.is_empty() {
        cause = e.to_string();
    }
    let base = base.as_str().trim_end_matches('/');
    if e.is_connect() {
        anyhow::anyhow!(
            "cannot connect to Tollgate at {base}: {cause} (is `tollgate serve` running? set --url or TOLLGATE_URL)"
        )
    } else if e.is_timeout() {
        anyhow::anyhow!("Tollgate at {base} did not answer in time: {cause}")
    } else {
        anyhow::anyhow!("request to Tollgate at {base} failed: {cause}")
    }
}

/// What a `list` command fetched.
#[derive(Debug)]
pub struct Listing {
    pub items: Vec<Value>,
    /// Token of the next page, when one page was fetched and more exist.
    pub next: Option<String>,
    /// What `-o json|yaml` prints: the server's page, or every item merged.
    pub document: Value,
}

/// Fetches one page, or every page with `all`; answers the items, the next page token and
/// the document to print for `-o json|yaml` (the server's page, or all items merged).
pub async fn fetch_pages(
    client: &Client,
    collection: &str,
    key: &str,
    mut query: Vec<(&'static str, String)>,
    all: bool,
) -> anyhow::Result<Listing> {
    let mut items = Vec::new();
    loop {
        let page = client.get(&[collection], &query).await?;
        items.extend(page.get(key).and_then(Value::as_array).cloned().unwrap_or_default());
        let next = page.get("next_page_token").and_then(Value::as_str).filter(|t| !t.is_empty()).map(str::to_owned);
        match next {
            Some(t) if all => {
                query.retain(|(k, _)| *k != "page_token");
                query.push(("page_token", t));
            }
            next if !all => return Ok(Listing { items, next, document: page }),
            _ => {
                let mut doc = serde_json::Map::new();
                doc.insert(key.to_owned(), Value::Array(items.clone()));
                return Ok(Listing { items, next: None, document: Value::Object(doc) });
            }
        }
    }
}
