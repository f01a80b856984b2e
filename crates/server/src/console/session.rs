//! Console sign-in: a stateless signed session cookie, CSRF tokens, and the sign-in and
//! sign-out handlers.
//!
//! The cookie `tollgate_session` is `v1.<token id>.<expiry ms>.<HMAC-SHA256>`; the key is
//! derived from the master key (so every replica accepts it), the plain gateway token is never
//! in it. Every request looks the token id up in the in-memory snapshot: a revoked or expired
//! token signs its sessions out at once. Sign-out ends the session on the server too: the
//! cookie's MAC is stored (`console_signouts`, until the cookie would have expired) and the
//! snapshot of every replica refuses it, so a copy of the cookie is worthless after sign-out. A session lasts 12 hours (less when the token expires
//! sooner). The CSRF token of a session is an HMAC of its cookie; before sign-in, the sign-in
//! form uses a random nonce cookie instead. [`csrf_guard`] refuses every state-changing request
//! without a valid one.

use super::{Console, ConsoleError, Layout, html_page};

use askama::Template;
use aws_lc_rs::{constant_time, hmac};
use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tollgate_core::Role;
use tollgate_store::TokenRecord;

pub const SESSION_COOKIE: &str = "tollgate_session";
pub const LOGIN_COOKIE: &str = "tollgate_login";
/// How long a session lasts.
pub const SESSION_TTL_MS: i64 = 12 * 3600 * 1000;
/// The form field and the header that carry the CSRF token.
pub const CSRF_FIELD: &str = "_csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Largest console form body (a provider with many models and overrides fits easily).
pub const MAX_FORM_BYTES: usize = 1024 * 1024;

/// Session ids of identity-provider sign-ins start with this (gateway token ids are UUIDs).
pub const SESSION_ID_PREFIX: &str = "oidc~";

/// Who signed in through the identity provider, as kept in the session id.
#[derive(Debug, Serialize, Deserialize)]
pub struct Principal {
    #[serde(rename = "s")]
    pub sub: String,
    #[serde(rename = "u", skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(rename = "a", skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(rename = "r")]
    pub role: Role,
}

/// The token record a session id's principal part stands for.
pub fn principal_of(encoded: &str) -> Option<TokenRecord> {
    let p: Principal = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(encoded).ok()?).ok()?;
    Some(TokenRecord {
        id: format!("oidc:{}", p.sub).into(),
        name: format!("OIDC {}", p.sub),
        hash: [0; 32],
        prefix: "jwt".into(),
        user: p.user.map(Into::into),
        agent: p.agent.map(Into::into),
        role: p.role,
        providers: None,
        expires_at_ms: None,
        created_at_ms: 0,
        revoked_at_ms: None,
    })
}

/// The console's signing key. `Debug` does not show it.
pub struct SessionKeys {
    key: hmac::Key,
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKeys(<redacted>)")
    }
}

impl SessionKeys {
    pub fn new(secret: &[u8; 32]) -> SessionKeys {
        SessionKeys { key: hmac::Key::new(hmac::HMAC_SHA256, secret) }
    }

    fn mac(&self, purpose: &str, data: &str) -> String {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(purpose.as_bytes());
        ctx.update(&[0]);
        ctx.update(data.as_bytes());
        URL_SAFE_NO_PAD.encode(ctx.sign().as_ref())
    }

    /// The cookie value of a session of `token_id` ending at `expires_ms`.
    pub fn sign_session(&self, token_id: &str, expires_ms: i64) -> String {
        let body = format!("v1.{token_id}.{expires_ms}");
        let mac = self.mac("session", &body);
        format!("{body}.{mac}")
    }

    /// The token id and expiry of a genuine, unexpired session cookie.
    pub fn verify_session(&self, cookie: &str, now_ms: i64) -> Option<(String, i64)> {
        self.verify_session_mac(cookie, now_ms).map(|(id, exp, _)| (id, exp))
    }

    /// [`Self::verify_session`] plus the cookie's MAC, which names the session (sign-out
    /// lists it).
    fn verify_session_mac<'c>(&self, cookie: &'c str, now_ms: i64) -> Option<(String, i64, &'c str)> {
        let (body, mac) = cookie.rsplit_once('.')?;
        if !equal(&self.mac("session", body), mac) {
            return None;
        }
        let mut parts = body.splitn(3, '.');
        let (Some("v1"), Some(id), Some(exp)) = (parts.next(), parts.next(), parts.next()) else {
            return None;
        };
        let exp: i64 = exp.parse().ok()?;
        (exp > now_ms && !id.is_empty()).then(|| (id.to_string(), exp, mac))
    }

    /// A MAC of `data` for `purpose` (the OIDC sign-in state cookie, `sso.rs`).
    pub fn sign(&self, purpose: &str, data: &str) -> String {
        self.mac(purpose, data)
    }

    /// Whether `mac` is the MAC of `data` for `purpose`.
    pub fn verify(&self, purpose: &str, data: &str, mac: &str) -> bool {
        equal(&self.mac(purpose, data), mac)
    }

    /// The CSRF token bound to `base` (a session cookie, or `login:<nonce>` before sign-in).
    pub fn csrf_for(&self, base: &str) -> String {
        self.mac("csrf", base)
    }

    pub fn verify_csrf(&self, base: &str, presented: &str) -> bool {
        !base.is_empty() && equal(&self.csrf_for(base), presented)
    }
}

fn equal(a: &str, b: &str) -> bool {
    constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

/// The value of cookie `name` in the request headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether the browser reached us over HTTPS (directly or through a proxy that says so).
fn over_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').next().is_some_and(|p| p.trim().eq_ignore_ascii_case("https")))
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, `Secure` over HTTPS (the gateway serving
/// TLS itself, an https public URL, or a proxy's `X-Forwarded-Proto: https`), on `path`.
pub fn set_cookie(
    console: &Console,
    headers: &HeaderMap,
    name: &str,
    value: &str,
    max_age_s: i64,
    path: &str,
) -> HeaderValue {
    let https = over_https(headers)
        || console.state.settings().tls != crate::settings::TlsSource::Off
        || console.state.public_url().starts_with("https://");
    let secure = if https { "; Secure" } else { "" };
    let v = format!("{name}={value}; Path={path}; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}");
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("invalid=1; Max-Age=0"))
}

/// A signed-in console user: the gateway token they signed in with, re-read from the snapshot.
#[derive(Debug, Clone)]
pub struct Session {
    pub token: Arc<TokenRecord>,
    /// The CSRF token to put in forms and fetches.
    pub csrf: String,
}

impl Session {
    pub fn role(&self) -> Role {
        self.token.role
    }

    pub fn can(&self, role: Role) -> bool {
        self.token.role.allows(role)
    }

    /// Refuses (403) a user whose role is below `role`.
    pub fn require(&self, role: Role) -> Result<(), ConsoleError> {
        if self.can(role) {
            Ok(())
        } else {
            Err(ConsoleError::Forbidden(format!(
                "your token's role `{}` may not do this; it needs `{role}` or higher",
                self.token.role
            )))
        }
    }

    /// Refuses (403) a provider outside the token's scope.
    pub fn require_scope(&self, provider: &str) -> Result<(), ConsoleError> {
        if crate::auth::in_scope(&self.token, provider) {
            Ok(())
        } else {
            Err(ConsoleError::Forbidden(format!("your token is not scoped to provider \"{provider}\"")))
        }
    }

    pub fn in_scope(&self, provider: &str) -> bool {
        crate::auth::in_scope(&self.token, provider)
    }

    /// Who is signed in, for the header.
    pub fn who(&self) -> String {
        match (&self.token.user, &self.token.agent) {
            (Some(u), _) => u.to_string(),
            (None, Some(a)) => format!("agent {a}"),
            (None, None) => self.token.name.clone(),
        }
    }
}

/// Resolves the session of a request: a genuine cookie whose token is still active with a role
/// of reader or higher.
pub fn session_of(console: &Console, headers: &HeaderMap) -> Option<Session> {
    let raw = cookie(headers, SESSION_COOKIE)?;
    let now = console.state.now_ms();
    let (id, _, mac) = console.keys.verify_session_mac(raw, now)?;
    let snap = console.state.snapshot();
    if snap.signed_out.contains(mac) {
        return None;
    }
    let token = match id.strip_prefix(SESSION_ID_PREFIX) {
        // Signed in through the identity provider: the principal is in the (MAC'd) cookie.
        Some(principal) if console.state.oidc().is_some() => Arc::new(principal_of(principal)?),
        Some(_) => return None,
        None => snap.tokens.values().find(|t| *t.id == *id)?.clone(),
    };
    if token.expires_at_ms.is_some_and(|e| e <= now) || !token.role.allows(Role::Reader) {
        return None;
    }
    Some(Session { token, csrf: console.keys.csrf_for(raw) })
}

/// Why a request has no session: pages redirect to sign-in, fetches get 401.
#[derive(Debug)]
pub struct SignInFirst {
    next: String,
    json: bool,
}

impl IntoResponse for SignInFirst {
    fn into_response(self) -> Response {
        if self.json {
            let body = serde_json::json!({"error": {"code": "unauthenticated", "message": "sign in again"}});
            return (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
        }
        let target = if self.next == "/" || self.next.is_empty() {
            "/login".to_string()
        } else {
            format!("/login?next={}", url::form_urlencoded::byte_serialize(self.next.as_bytes()).collect::<String>())
        };
        Redirect::to(&target).into_response()
    }
}

impl FromRequestParts<Console> for Session {
    type Rejection = SignInFirst;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Session, SignInFirst> {
        session_of(console, &parts.headers).ok_or_else(|| {
            let json = parts.headers.contains_key(CSRF_HEADER)
                || parts
                    .headers
                    .get(header::ACCEPT)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|a| a.starts_with("application/json"));
            let next = if parts.method == Method::GET {
                parts.uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_default()
            } else {
                String::new()
            };
            SignInFirst { next, json }
        })
    }
}

/// Only a local path may be a redirect target after sign-in (no `//host`, no scheme); without
/// one, Home (`/`, where the README sends a new user: a signed-out `/` redirects to `/login`
/// with no `next`).
pub(super) fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') && !n.starts_with("/login") => n,
        _ => "/",
    }
}

/// Refuses every state-changing console request that lacks this session's CSRF token, in the
/// `X-CSRF-Token` header or the `_csrf` field of a urlencoded form (403). The body is buffered
/// (at most [`MAX_FORM_BYTES`]) and handed on unchanged.
pub async fn csrf_guard(State(console): State<Console>, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
        return ConsoleError::TooLarge.into_response();
    };
    let base = if parts.uri.path() == "/login" {
        cookie(&parts.headers, LOGIN_COOKIE).map(|n| format!("login:{n}"))
    } else {
        cookie(&parts.headers, SESSION_COOKIE).map(str::to_string)
    };
    let presented = match parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()) {
        Some(h) => Some(h.to_string()),
        None => url::form_urlencoded::parse(&bytes).find(|(k, _)| k == CSRF_FIELD).map(|(_, v)| v.into_owned()),
    };
    let ok = match (base, presented) {
        (Some(b), Some(p)) => console.keys.verify_csrf(&b, &p),
        _ => false,
    };
    if !ok {
        return ConsoleError::Csrf.into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    layout: Layout,
    next: String,
    error: String,
    /// "Sign in with <issuer>" when OIDC is on: the issuer's host.
    sso: Option<String>,
    /// The `next` parameter, URL-encoded for the SSO link.
    next_q: String,
}

#[derive(Debug, Deserialize)]
pub struct NextParam {
    next: Option<String>,
    /// Why an identity-provider sign-in failed (shown on the form).
    error: Option<String>,
}

pub(super) fn random_nonce() -> Result<String, ConsoleError> {
    let mut b = [0u8; 18];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| ConsoleError::Internal("the system random generator failed".into()))?;
    Ok(URL_SAFE_NO_PAD.encode(b))
}

pub(super) fn login_response(
    console: &Console,
    headers: &HeaderMap,
    next: &str,
    error: String,
    status: StatusCode,
) -> Result<Response, ConsoleError> {
    let nonce = random_nonce()?;
    let mut layout = Layout::anonymous("Sign in");
    layout.csrf = console.keys.csrf_for(&format!("login:{nonce}"));
    let sso = console.state.oidc().map(|o| {
        let issuer = &o.settings().issuer;
        url::Url::parse(issuer).ok().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_else(|| issuer.clone())
    });
    let next_q = url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
    let page = LoginPage { layout, next: next.to_string(), error, sso, next_q };
    let mut resp = html_page(status, &page)?;
    resp.headers_mut().append(header::SET_COOKIE, set_cookie(console, headers, LOGIN_COOKIE, &nonce, 3600, "/"));
    Ok(resp)
}

/// `GET /login`: the sign-in form (or straight on when already signed in).
pub async fn login_form(
    State(console): State<Console>,
    headers: HeaderMap,
    Query(q): Query<NextParam>,
) -> Result<Response, ConsoleError> {
    let next = safe_next(q.next.as_deref());
    if let Some(e) = q.error.as_deref().filter(|e| !e.is_empty()) {
        return login_response(&console, &headers, next, e.to_string(), StatusCode::UNAUTHORIZED);
    }
    if session_of(&console, &headers).is_some() {
        return Ok(Redirect::to(next).into_response());
    }
    login_response(&console, &headers, next, String::new(), StatusCode::OK)
}

/// `POST /login`: checks the gateway token and starts a session.
pub async fn login(State(console): State<Console>, headers: HeaderMap, body: Bytes) -> Result<Response, ConsoleError> {
    let form = super::Form::parse(&body);
    let next = safe_next(form.get("next")).to_string();
    let token = form.get("token").unwrap_or_default().trim();
    let now = console.state.now_ms();
    let rec = match crate::auth::lookup(&console.state, token, now) {
        Ok(rec) => rec,
        Err(_) if token.is_empty() => {
            let msg = "Paste a gateway token (tg_…) of role reader or higher.".to_string();
            return login_response(&console, &headers, &next, msg, StatusCode::BAD_REQUEST);
        }
        Err(e) => return login_response(&console, &headers, &next, format!("{e}."), StatusCode::UNAUTHORIZED),
    };
    if !rec.role.allows(Role::Reader) {
        let msg = format!(
            "This token's role `{}` may only call the proxy; sign in with a reader, writer or admin token.",
            rec.role
        );
        return login_response(&console, &headers, &next, msg, StatusCode::FORBIDDEN);
    }
    let expires = rec.expires_at_ms.map_or(now + SESSION_TTL_MS, |e| e.min(now + SESSION_TTL_MS));
    let value = console.keys.sign_session(&rec.id, expires);
    tracing::info!(token_id = %rec.id, role = %rec.role, "console sign-in");
    let mut resp = Redirect::to(&next).into_response();
    let h = resp.headers_mut();
    h.append(header::SET_COOKIE, set_cookie(&console, &headers, SESSION_COOKIE, &value, (expires - now) / 1000, "/"));
    h.append(header::SET_COOKIE, set_cookie(&console, &headers, LOGIN_COOKIE, "", 0, "/"));
    Ok(resp)
}

/// `POST /logout`: ends the session: the cookie is cleared, and the session is recorded as
/// signed out so the same cookie is refused from now on, by every replica (the token stays
/// valid).
pub async fn logout(State(console): State<Console>, headers: HeaderMap) -> Result<Response, ConsoleError> {
    let now = console.state.now_ms();
    if let Some((id, expires, mac)) =
        cookie(&headers, SESSION_COOKIE).and_then(|c| console.keys.verify_session_mac(c, now))
    {
        console
            .state
            .store()
            .sign_out_session(mac, expires, now)
            .await
            .map_err(|e| ConsoleError::Internal(format!("the sign-out could not be recorded: {e}")))?;
        crate::admin::reload_after_write(&console.state).await;
        tracing::info!(token_id = %id, "console sign-out");
    }
    let mut resp = Redirect::to("/login").into_response();
    resp.headers_mut().append(header::SET_COOKIE, set_cookie(&console, &headers, SESSION_COOKIE, "", 0, "/"));
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_cookies_verify_only_when_genuine_and_unexpired() {
        let keys = SessionKeys::new(&[1u8; 32]);
        let c = keys.sign_session("0190-abc", 2_000);
        assert_eq!(keys.verify_session(&c, 1_000), Some(("0190-abc".to_string(), 2_000)));
        assert_eq!(keys.verify_session(&c, 2_000), None, "expired");
        let tampered = c.replace("0190-abc", "0190-abd");
        assert_eq!(keys.verify_session(&tampered, 1_000), None);
        let longer = c.replace(".2000.", ".9000.");
        assert_eq!(keys.verify_session(&longer, 1_000), None);
        assert_eq!(SessionKeys::new(&[2u8; 32]).verify_session(&c, 1_000), None, "other key");
        assert_eq!(keys.verify_session("garbage", 1_000), None);
        assert!(!c.contains("tg_"));
    }

    #[test]
    fn csrf_tokens_bind_to_their_base() {
        let keys = SessionKeys::new(&[1u8; 32]);
        let t = keys.csrf_for("cookie-a");
        assert!(keys.verify_csrf("cookie-a", &t));
        assert!(!keys.verify_csrf("cookie-b", &t));
        assert!(!keys.verify_csrf("", &keys.csrf_for("")));
        assert!(!keys.verify_csrf("cookie-a", ""));
    }

    #[test]
    fn only_local_paths_are_redirect_targets() {
        assert_eq!(safe_next(Some("/providers/x?tab=connect")), "/providers/x?tab=connect");
        for bad in ["https://evil.example", "//evil.example", "/\\evil", "javascript:alert(1)", "/login?next=/x"] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn cookies_are_read_by_name() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1; tollgate_session=v1.x.2.m"));
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("v1.x.2.m"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
