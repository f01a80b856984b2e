//! The gateway tokens page (`/tokens`, admin only, like the tokens API): the tokens with role,
//! principal, scope and status; create (the new token is shown once, in the response to the
//! create, and never again) and revoke. Writes go through the admin API's functions.

use super::{Console, ConsoleError, Form, Layout, Notice, Session, format, html_page, notice_from};
use crate::admin;
use crate::admin::tokens::{CreateTokenRequest, TokenView};
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use tollgate_core::Role;
use tollgate_store::PageQuery;

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
    created: Option<TokenView>,
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
    form: TokenForm,
    created: Option<TokenView>,
    status: StatusCode,
) -> Result<Response, ConsoleError> {
    let res =
        console.state.store().list_tokens(&PageQuery { after, limit: 200 }).await.map_err(crate::ApiError::from)?;
    let now = console.state.now_ms();
    let rows = res
        .items
        .iter()
        .map(|t| {
            let v = TokenView::of(t, now);
            TokenRow {
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
        roles: Role::ALL.iter().rev().map(|r| r.as_str()).collect(),
        provider_names,
        created,
    };
    let mut resp = html_page(status, &page)?;
    resp.headers_mut().insert(axum::http::header::PRAGMA, axum::http::HeaderValue::from_static("no-cache"));
    Ok(resp)
}

/// `GET /tokens`.
pub async fn page(
    State(console): State<Console>,
    session: Session,
    Query(p): Query<TokenParams>,
) -> Result<Response, ConsoleError> {
    session.require(Role::Admin)?;
    let form = TokenForm {
        name: p.name.clone().unwrap_or_default(),
        role: p.role.clone().unwrap_or_else(|| "invoker".into()),
        providers: p.providers.clone().map(|s| vec![s]).unwrap_or_default(),
        ..TokenForm::default()
    };
    let notice = notice_from(p.notice.as_deref(), None);
    render(&console, &session, p.after, notice, form, None, StatusCode::OK).await
}

/// `POST /tokens`: creates a token and shows it once.
pub async fn create(State(console): State<Console>, session: Session, body: Bytes) -> Result<Response, ConsoleError> {
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
        match admin::tokens::create_from(&console.state, req).await {
            Ok(view) => {
                let notice =
                    Notice::ok(format!("Token \"{}\" created. Copy it now: it is not shown again.", view.name));
                return render(&console, &session, None, notice, TokenForm::default(), Some(view), StatusCode::CREATED)
                    .await;
            }
            Err(crate::ApiError::InvalidArgument { field, message }) => {
                form.error_field = field.split('[').next().unwrap_or_default().to_string();
                form.error = message;
            }
            Err(e) => return Err(e.into()),
        }
    }
    let notice = Notice::error("The token was not created.");
    render(&console, &session, None, notice, form, None, StatusCode::BAD_REQUEST).await
}

/// `POST /tokens/{id}/revoke`.
pub async fn revoke(
    State(console): State<Console>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, ConsoleError> {
    session.require(Role::Admin)?;
    match admin::tokens::revoke_id(&console.state, &id).await {
        Ok(_) if id == session.token.id => Ok(Redirect::to("/login").into_response()),
        Ok(_) => Ok(Redirect::to("/tokens?notice=revoked").into_response()),
        Err(e @ crate::ApiError::Conflict(_)) => {
            let status = e.status();
            render(&console, &session, None, Notice::error(e.to_string()), TokenForm::default(), None, status).await
        }
        Err(e) => Err(e.into()),
    }
}
