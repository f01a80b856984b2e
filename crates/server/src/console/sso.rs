//! "Sign in with <issuer>": the console's OpenID Connect sign-in, authorization code flow with
//! PKCE (S256), next to the token form.
//!
//! `GET /login/oidc` creates a random `state`, `nonce` and PKCE verifier, keeps them in the
//! short-lived cookie `tollgate_oidc` (MAC'd with the session key, HttpOnly, `SameSite=Lax`
//! because the identity provider sends the browser back cross-site, path `/login/oidc`) and
//! redirects to the authorize endpoint. `GET /login/oidc/callback` checks the cookie's MAC and
//! `state`, trades the code and verifier for an ID token at the token endpoint
//! (`Oidc::exchange_code`: signature, issuer, audience = the console client id, expiry, nonce),
//! maps its claims to a principal exactly as for an API JWT, requires `reader` or higher, and
//! starts the usual session. The session id is `session::SESSION_ID_PREFIX` + the principal (user,
//! agent, role, subject) as base64url JSON: the cookie's MAC protects it, sign-out lists it like
//! any session, and its role is the one the identity provider gave at sign-in (it lasts the
//! session, 12 hours at most). The callback answers with a page that moves on to `next` by a
//! meta refresh: a same-site navigation, so the `SameSite=Strict` session cookie is sent (a
//! redirect chain that began at the identity provider would not send it).

use super::session::{
    Principal, SESSION_COOKIE, SESSION_ID_PREFIX, SESSION_TTL_MS, cookie, login_response, random_nonce, safe_next,
    set_cookie,
};
use super::{Console, ConsoleError};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use tollgate_core::Role;

/// The cookie holding one sign-in attempt's state, nonce, verifier and target.
pub const OIDC_COOKIE: &str = "tollgate_oidc";
const COOKIE_PATH: &str = "/login/oidc";

fn redirect_uri(console: &Console) -> String {
    format!("{}/login/oidc/callback", console.state.public_url())
}

fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()).as_ref())
}

/// The `tollgate_oidc` cookie: Lax (it must come back on the identity provider's redirect).
fn attempt_cookie(console: &Console, headers: &HeaderMap, value: &str, max_age_s: i64) -> HeaderValue {
    let lax = set_cookie(console, headers, OIDC_COOKIE, value, max_age_s, COOKIE_PATH);
    let v = lax.to_str().unwrap_or_default().replace("SameSite=Strict", "SameSite=Lax");
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("invalid=1; Max-Age=0"))
}

#[derive(Debug, Deserialize)]
pub struct StartParams {
    next: Option<String>,
}

/// `GET /login/oidc`: starts a sign-in at the identity provider.
pub async fn start(
    State(console): State<Console>,
    headers: HeaderMap,
    Query(q): Query<StartParams>,
) -> Result<Response, ConsoleError> {
    let next = safe_next(q.next.as_deref()).to_string();
    let Some(oidc) = console.state.oidc() else {
        return Err(ConsoleError::NotFound("sign-in with an identity provider is not configured".into()));
    };
    let Some(endpoint) = oidc.discovery().and_then(|d| d.authorization_endpoint) else {
        let msg = "The identity provider cannot be reached yet (discovery failed); try again shortly.";
        return login_response(&console, &headers, &next, msg.into(), StatusCode::SERVICE_UNAVAILABLE);
    };
    let (state, nonce, verifier) =
        (random_nonce()?, random_nonce()?, format!("{}{}", random_nonce()?, random_nonce()?));
    let body = format!("{state}.{nonce}.{verifier}.{}", URL_SAFE_NO_PAD.encode(&next));
    let value = format!("{body}.{}", console.keys.sign("oidc", &body));
    let mut url = url::Url::parse(&endpoint)
        .map_err(|e| ConsoleError::Internal(format!("the authorization endpoint is not a URL: {e}")))?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", oidc.settings().console_client_id())
        .append_pair("redirect_uri", &redirect_uri(&console))
        .append_pair("scope", "openid email profile")
        .append_pair("state", &state)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &pkce_challenge(&verifier))
        .append_pair("code_challenge_method", "S256");
    let mut resp = Redirect::to(url.as_str()).into_response();
    resp.headers_mut().append(header::SET_COOKIE, attempt_cookie(&console, &headers, &value, 600));
    Ok(resp)
}

#[derive(Debug, Deserialize)]
pub struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// Back to the sign-in form with a message.
fn failed(why: &str) -> Response {
    let q = url::form_urlencoded::byte_serialize(why.as_bytes()).collect::<String>();
    Redirect::to(&format!("/login?error={q}")).into_response()
}

/// `GET /login/oidc/callback`: finishes the sign-in and starts a session.
pub async fn callback(
    State(console): State<Console>,
    headers: HeaderMap,
    Query(q): Query<CallbackParams>,
) -> Result<Response, ConsoleError> {
    let Some(oidc) = console.state.oidc() else {
        return Err(ConsoleError::NotFound("sign-in with an identity provider is not configured".into()));
    };
    if let Some(e) = q.error {
        return Ok(failed(&format!("The identity provider refused the sign-in ({e}).")));
    }
    let Some((body, mac)) = cookie(&headers, OIDC_COOKIE).and_then(|c| c.rsplit_once('.')) else {
        return Ok(failed("The sign-in expired or was started in another browser; start again."));
    };
    let parts: Vec<&str> = body.split('.').collect();
    let [state, nonce, verifier, next] = parts[..] else {
        return Ok(failed("The sign-in state is malformed; start again."));
    };
    if !console.keys.verify("oidc", body, mac) || q.state.as_deref() != Some(state) {
        return Ok(failed("The sign-in state does not match; start again."));
    }
    let next = URL_SAFE_NO_PAD.decode(next).ok().and_then(|b| String::from_utf8(b).ok()).unwrap_or_default();
    let next = safe_next(Some(&next)).to_string();
    let Some(code) = q.code.filter(|c| !c.is_empty()) else {
        return Ok(failed("The identity provider sent no authorization code."));
    };
    let claims = match oidc.exchange_code(&code, verifier, &redirect_uri(&console), nonce).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "console sign-in with the identity provider failed");
            return Ok(failed(&format!("Sign-in with the identity provider failed: {e}.")));
        }
    };
    let rec = oidc.principal(&claims);
    if !rec.role.allows(Role::Reader) {
        return Ok(failed(&format!(
            "Your identity provider account maps to the role `{}`, which may only call the proxy; the console needs \
             reader or higher.",
            rec.role
        )));
    }
    let principal = Principal {
        sub: rec.id.trim_start_matches("oidc:").to_string(),
        user: rec.user.as_deref().map(str::to_string),
        agent: rec.agent.as_deref().map(str::to_string),
        role: rec.role,
    };
    let json = serde_json::to_vec(&principal).map_err(|e| ConsoleError::Internal(e.to_string()))?;
    let now = console.state.now_ms();
    let expires = now + SESSION_TTL_MS;
    let value = console.keys.sign_session(&format!("{SESSION_ID_PREFIX}{}", URL_SAFE_NO_PAD.encode(json)), expires);
    tracing::info!(user = ?rec.user, role = %rec.role, "console sign-in through the identity provider");
    let escaped = next.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;");
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" \
         content=\"0;url={escaped}\"><title>Signed in · Tollgate</title></head><body><p>Signed in. \
         <a href=\"{escaped}\" id=\"continue\">Continue</a></p></body></html>"
    );
    let mut resp = (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        page,
    )
        .into_response();
    let h = resp.headers_mut();
    h.append(header::SET_COOKIE, set_cookie(&console, &headers, SESSION_COOKIE, &value, SESSION_TTL_MS / 1000, "/"));
    h.append(header::SET_COOKIE, attempt_cookie(&console, &headers, "", 0));
    Ok(resp)
}
