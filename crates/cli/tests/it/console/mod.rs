//! The web console: HTTP-level tests (a cookie-keeping client, no browser) on both stores, and
//! end-to-end tests that drive headless Chromium through the real pages.

mod browser;
mod http;
mod reports;

use crate::support::*;

/// A browser-like HTTP client: keeps cookies, does not follow redirects, remembers the last
/// CSRF token it saw in a page.
pub struct Console {
    pub base: String,
    pub client: reqwest::Client,
    pub csrf: String,
}

/// A console response.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Page {
        assert_eq!(self.status, status, "body: {}", self.body);
        self
    }

    /// The `Set-Cookie` header that sets `name`.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .map(str::to_string)
    }
}

/// The value of the first `name="_csrf"` hidden input in a page.
pub fn csrf_of(html: &str) -> Option<String> {
    let at = html.find(r#"name="_csrf" value=""#)?;
    let rest = &html[at + r#"name="_csrf" value=""#.len()..];
    rest.split('"').next().map(str::to_string)
}

/// The HTML from `marker` to the next occurrence of `until` (or 4000 characters).
pub fn section<'a>(html: &'a str, marker: &str, until: &str) -> &'a str {
    let Some(start) = html.find(marker) else { panic!("no {marker} in the page:\n{html}") };
    let rest = &html[start..];
    let end = rest[marker.len()..].find(until).map_or(rest.len().min(4000), |e| e + marker.len());
    &rest[..end]
}

impl Console {
    pub fn new(gw: &TestGateway) -> Console {
        let mut builder = reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none());
        if let Some(ca) = &gw.tls_ca_file {
            let pem = std::fs::read(ca).unwrap_or_else(|e| panic!("{}: {e}", ca.display()));
            builder = builder.tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap_or_else(|e| panic!("{e}"))]);
        }
        let client = builder.build().unwrap_or_else(|e| panic!("{e}"));
        Console { base: gw.base_url.clone(), client, csrf: String::new() }
    }

    async fn page(&mut self, resp: reqwest::Result<reqwest::Response>) -> Page {
        let resp = resp.unwrap_or_else(|e| panic!("console request failed: {e:#}"));
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let location = headers.get("location").and_then(|v| v.to_str().ok()).map(str::to_string);
        let body = resp.text().await.unwrap_or_default();
        if let Some(c) = csrf_of(&body) {
            self.csrf = c;
        }
        Page { status, location, headers, body }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let r = self.client.get(format!("{}{path}", self.base)).send().await;
        self.page(r).await
    }

    /// GET of a full URL (another server, e.g. an identity provider), with the same cookies.
    pub async fn get_absolute(&mut self, url: &str) -> Page {
        let r = self.client.get(url).send().await;
        self.page(r).await
    }

    /// Posts a form with the current CSRF token added.
    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let mut all: Vec<(&str, &str)> = fields.to_vec();
        let csrf = self.csrf.clone();
        all.push(("_csrf", &csrf));
        self.post_raw(path, &all).await
    }

    /// Posts exactly these fields.
    pub async fn post_raw(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await;
        self.page(r).await
    }

    /// Posts JSON the way the page's script does (`X-CSRF-Token`).
    pub async fn post_json(&mut self, path: &str, body: &Value) -> Page {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .header("x-csrf-token", self.csrf.clone())
            .header("accept", "application/json")
            .json(body)
            .send()
            .await;
        self.page(r).await
    }

    /// Signs in with `token`; panics unless it worked.
    pub async fn sign_in(&mut self, token: &str) {
        self.get("/login").await.expect(200);
        let p = self.post("/login", &[("token", token), ("next", "/providers")]).await;
        assert_eq!(p.status, 303, "sign-in failed: {}", p.body);
        self.get("/providers").await.expect(200);
    }
}

/// A gateway token of `role` (created through the API with the bootstrap admin token).
pub async fn token_of(gw: &TestGateway, role: &str) -> String {
    gw.token(role).await.unwrap_or_else(|e| panic!("{e:#}"))
}
