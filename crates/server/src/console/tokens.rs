//! The gateway tokens page (`/tokens`, admin only, like the tokens API): the tokens with role,
//! principal, scope and status; create and revoke. Writes go through the admin API's functions.
//!
//! Every successful POST answers `303` (Post/Redirect/Get), so reloading a page never repeats a
//! write. The new token still has to be shown once after the redirect: the create seals it
//! (AES-256-GCM under the master keyring, bound to the session cookie as associated data, valid
//! for [`NEW_TOKEN_TTL_MS`]) into the HttpOnly cookie [`NEW_TOKEN_COOKIE`], which the next
//! `GET /tokens` opens, shows and clears. The token is never in a URL; a reload, another
//! session or another browser shows nothing.

use super::session::{SESSION_COOKIE, cookie, set_cookie};
use super::{Console, ConsoleError, Form, Layout, Notice, Session, format, html_page, notice_from};
use crate::admin;
use crate::admin::tokens::{CreateTokenRequest, TokenView};
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use tollgate_core::Role;
use tollgate_store::PageQuery;

/// The cookie that carries a just-created token, sealed, from the create to the page after it.
pub const NEW_TOKEN_COOKIE: &str = "tollgate_new_token";
/// How long the sealed token waits to be shown.
pub const NEW_TOKEN_TTL_MS: i64 = 120_000;
/// The role the create form starts with: the least privilege.
pub const DEFAULT_ROLE: &str = "invoker";

/// A token just created, shown once.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct CreatedToken {
    pub name: String,
    pub token: String,
    /// Epoch ms after which it is no longer shown.
    pub exp: i64,
}

/// The associated data that binds a sealed new token to one session.
fn new_token_aad(session_cookie: &str) -> Vec<u8> {
    format!("console-new-token\0{session_cookie}").into_bytes()
}

/// The sealed new token of this session, if the cookie holds a genuine, unexpired one.
fn open_created(console: &Console, headers: &HeaderMap) -> Option<CreatedToken> {
    let sealed = cookie(headers, NEW_TOKEN_COOKIE).filter(|v| !v.is_empty())?;
    let session = cookie(headers, SESSION_COOKIE)?;
    let plain = console.state.store().keyring().open(&new_token_aad(session), sealed).ok()?;
    let created: CreatedToken = serde_json::from_slice(&plain).ok()?;
    (created.exp > console.state.now_ms()).then_some(created)
}

#[derive(Debug, Default, Deserialize)]
pub struct TokenParams {
    pub after: Option<String>,
    pub notice: Option<String>,
    /// Prefill of the create form.
    pub name: Option<String>,
    pub role: Option<String>,
    pub providers: Option<String>,
}

/// One token row.
#[derive(Debug)]
pub struct TokenRow {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub role: String,
    pub principal: String,
    pub scope: String,
    pub expires: String,
    pub created: String,
    pub status: String,
    pub is_self: bool,
    /// "3 minutes ago", or empty when never used; `last_used_at` the exact time.
    pub last_used: String,
    pub last_used_at: String,
    pub spend_7d: String,
    pub requests_7d: i64,
}

/// The create form's values and errors.
#[derive(Debug, Default)]
pub struct TokenForm {
    pub name: String,
    pub role: String,
    pub user: String,
    pub agent: String,
    pub providers: Vec<String>,
    pub expires_at: String,
    pub error_field: String,
    pub error: String,
}

#[derive(Template)]
#[template(path = "tokens.html")]
struct TokensPage {
    layout: Layout,
    rows: Vec<TokenRow>,
    next_url: String,
    form: TokenForm,
    roles: Vec<&'static str>,
    provider_names: Vec<String>,
    created: Option<CreatedToken>,
}

impl TokenForm {
    /// An empty create form, on the least privileged role.
    pub fn fresh() -> TokenForm {
        TokenForm { role: DEFAULT_ROLE.into(), ..TokenForm::default() }
    }
}

impl TokensPage {
    fn err(&self, field: &str) -> &str {
        if self.form.error_field == field { &self.form.error } else { "" }
    }
}

async fn render(
    console: &Console,
    session: &Session,
    after: Option<String>,
    notice: Option<Notice>,
    mut form: TokenForm,
    created: Option<CreatedToken>,
    status: StatusCode,
) -> Result<Response, ConsoleError> {
    // a role the form does not know falls back to the least privilege, never to the first option
    if form.role.parse::<Role>().is_err() {
        form.role = DEFAULT_ROLE.into();
    }
    let res =
        console.state.store().list_tokens(&PageQuery { after, limit: 200 }).await.map_err(crate::ApiError::from)?;
    let usage = admin::tokens::usage_by_token(&console.state).await?;
    let now = console.state.now_ms();
    let rows = res
        .items
        .iter()
        .filter(|t| admin::tokens::visible_to(&session.token, t))
        .map(|t| {
            let u = usage.get(&*t.id).copied().unwrap_or_default();
            let v = TokenView::of(t, now);
            TokenRow {
                last_used: u.last_used_ms.map(|at| format::ago(at, now)).unwrap_or_default(),
                last_used_at: u.last_used_ms.map(format::date_time).unwrap_or_default(),
                spend_7d: format::usd(u.recent_cost),
                requests_7d: u.recent_requests,
                is_self: t.id == session.token.id,
                id: v.id,
                name: v.name,
                prefix: v.prefix,
                role: v.role.to_string(),
                principal: [v.user.clone(), v.agent.clone().map(|a| format!("agent {a}"))]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" · "),
                scope: v.providers.map_or_else(|| "all providers".to_string(), |p| p.join(", ")),
                expires: t.expires_at_ms.map_or_else(|| "never".to_string(), format::date_time),
                created: format::date(t.created_at_ms),
                status: v.status,
            }
        })
        .collect();
    let mut provider_names: Vec<String> = console.state.snapshot().providers.keys().cloned().collect();
    provider_names.sort();
    let page = TokensPage {
        layout: Layout::of(session, "Gateway tokens", "tokens").with_notice(notice),
        rows,
        next_url: res.next_after.map(|n| format!("/tokens?after={n}")).unwrap_or_default(),
        form,
        // least privilege first: what the browser shows when nothing is selected
        roles: Role::ALL.iter().map(|r| r.as_str()).collect(),
        provider_names,
        created,
    };
    let mut resp = html_page(status, &page)?;
    resp.headers_mut().insert(axum::http::header::PRAGMA, axum::http::HeaderValue::from_static("no-cache"));
    Ok(resp)
}

/// `GET /tokens`; right after a create, shows the new token once (and clears its cookie).
pub async fn page(
    State(console): State<Console>,
    session: Session,
    headers: HeaderMap,
    Query(p): Query<TokenParams>,
) -> Result<Response, ConsoleError> {
    session.require(Role::Admin)?;
    let form = TokenForm {
        name: p.name.clone().unwrap_or_default(),
        role: p.role.clone().unwrap_or_else(|| DEFAULT_ROLE.into()),
        providers: p.providers.clone().map(|s| vec![s]).unwrap_or_default(),
        ..TokenForm::default()
    };
    let created = open_created(&console, &headers);
    let notice = match (&created, p.notice.as_deref()) {
        (Some(c), _) => Notice::ok(format!("Token \"{}\" created. Copy it now: it is not shown again.", c.name)),
        (None, Some("token-created")) => Notice::ok(
            "The new token was shown once and is not shown again; revoke it and create another if it was lost.",
        ),
        (None, code) => notice_from(code, None),
    };
    let mut resp = render(&console, &session, p.after, notice, form, created, StatusCode::OK).await?;
    if cookie(&headers, NEW_TOKEN_COOKIE).is_some() {
        resp.headers_mut()
            .append(header::SET_COOKIE, set_cookie(&console, &headers, NEW_TOKEN_COOKIE, "", 0, "/tokens"));
    }
    Ok(resp)
}

/// `POST /tokens`: creates a token and redirects to `GET /tokens`, which shows it once.
pub async fn create(
    State(console): State<Console>,
    session: Session,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    session.require(Role::Admin)?;
    let f = Form::parse(&body);
    let mut form = TokenForm {
        name: f.text("name"),
        role: f.text("role"),
        user: f.text("user"),
        agent: f.text("agent"),
        providers: f.all("providers").filter(|p| !p.is_empty()).map(str::to_string).collect(),
        expires_at: f.text("expires_at"),
        ..TokenForm::default()
    };
    let role = match form.role.parse::<Role>() {
        Ok(r) => Some(r),
        Err(m) => {
            form.error_field = "role".into();
            form.error = m;
            None
        }
    };
    // `<input type=datetime-local>` has no zone: the form says UTC
    let expires_at = (!form.expires_at.is_empty()).then(|| {
        let s = &form.expires_at;
        if s.len() == 16 { format!("{s}:00Z") } else { s.clone() }
    });
    let req = CreateTokenRequest {
        name: Some(form.name.clone()),
        role,
        user: (!form.user.is_empty()).then(|| form.user.clone()),
        agent: (!form.agent.is_empty()).then(|| form.agent.clone()),
        providers: (!form.providers.is_empty()).then(|| form.providers.clone()),
        expires_at,
    };
    if role.is_some() {
        match admin::tokens::create_from(&console.state, &session.token, req).await {
            Ok(view) => return redirect_created(&console, &headers, view),
            Err(
                crate::ApiError::InvalidArgument { field, message } | crate::ApiError::Unprocessable { field, message },
            ) => {
                form.error_field = field.split('[').next().unwrap_or_default().to_string();
                form.error = message;
            }
            Err(e) => return Err(e.into()),
        }
    }
    let notice = Notice::error("The token was not created.");
    render(&console, &session, None, notice, form, None, StatusCode::BAD_REQUEST).await
}

/// The answer to a successful create: `303` to the tokens page, the token sealed in a cookie
/// bound to this session.
fn redirect_created(console: &Console, headers: &HeaderMap, view: TokenView) -> Result<Response, ConsoleError> {
    let session = cookie(headers, SESSION_COOKIE).unwrap_or_default();
    let created = CreatedToken {
        name: view.name,
        token: view.token.unwrap_or_default(),
        exp: console.state.now_ms() + NEW_TOKEN_TTL_MS,
    };
    let plain = serde_json::to_vec(&created).map_err(|e| ConsoleError::Internal(e.to_string()))?;
    let sealed = console
        .state
        .store()
        .keyring()
        .seal(&new_token_aad(session), &plain)
        .map_err(|e| ConsoleError::Internal(format!("sealing the new token: {e}")))?;
    let mut resp = Redirect::to("/tokens?notice=token-created").into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(console, headers, NEW_TOKEN_COOKIE, &sealed, NEW_TOKEN_TTL_MS / 1000, "/tokens"),
    );
    Ok(resp)
}

/// `POST /tokens/{id}/revoke`.
pub async fn revoke(
    State(console): State<Console>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, ConsoleError> {
    session.require(Role::Admin)?;
    match admin::tokens::revoke_id(&console.state, &session.token, &id).await {
        Ok(_) if *id == *session.token.id => Ok(Redirect::to("/login").into_response()),
        Ok(_) => Ok(Redirect::to("/tokens?notice=revoked").into_response()),
        Err(e @ crate::ApiError::Conflict(_)) => {
            let status = e.status();
            render(&console, &session, None, Notice::error(e.to_string()), TokenForm::fresh(), None, status).await
        }
        Err(e) => Err(e.into()),
    }
}
