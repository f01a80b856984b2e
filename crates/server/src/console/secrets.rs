//! The Secrets Store page (`/secrets`): secret names with the providers that reference them,
//! a form to store a new value, and delete (refused while a provider references the secret).
//! Values are write-only here as everywhere: the page never shows one. Writes go through the
//! admin API's functions.
//!
//! Rotate (`POST /secrets/{name}/rotate`) stores a new value under an existing name, like the
//! API's `PUT /api/v1/secrets/{name}` and `tollgate secrets set`: providers reference secrets
//! by name, so every provider using it sends the new value from the next request on (the
//! write reloads the snapshot). `?rotate=NAME` opens that row's form (the provider Settings
//! tab links there).

use super::{Console, ConsoleError, Form, Layout, Notice, Session, format, html_page, notice_from};
use crate::admin;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use tollgate_core::Role;

#[derive(Debug, Default, Deserialize)]
pub struct SecretParams {
    pub after: Option<String>,
    pub notice: Option<String>,
    pub name: Option<String>,
    /// The secret whose rotate form starts open.
    pub rotate: Option<String>,
}

/// One secret row.
#[derive(Debug)]
pub struct SecretRow {
    pub name: String,
    pub used_by: Vec<String>,
    /// The hosts the secret may be sent to (empty: not bound yet).
    pub bound_hosts: Vec<String>,
    /// Used only to sign requests (Bedrock's SigV4 keys): the value itself is never sent, so
    /// it needs no binding.
    pub signing_only: bool,
    pub updated: String,
    pub updated_full: String,
}

#[derive(Template)]
#[template(path = "secrets.html")]
struct SecretsPage {
    layout: Layout,
    rows: Vec<SecretRow>,
    next_url: String,
    writable: bool,
    backend: &'static str,
    new_name: String,
    name_error: String,
    value_error: String,
    rotate: String,
}

#[allow(clippy::too_many_arguments)]
async fn render(
    console: &Console,
    session: &Session,
    rotate: String,
    after: Option<String>,
    notice: Option<Notice>,
    form: (String, String, String),
    status: StatusCode,
) -> Result<Response, ConsoleError> {
    let page = admin::paging::PageRequest { after, limit: 200 };
    let (items, next) = admin::secrets::list_meta(&console.state, page).await?;
    let snap = console.state.snapshot();
    let now = console.state.now_ms();
    let rows = items
        .into_iter()
        .map(|m| {
            let mut used_by: Vec<String> = snap
                .providers
                .values()
                .filter(|p| p.spec.secret_refs().iter().any(|(_, s)| *s == m.name))
                .map(|p| p.spec.name.clone())
                .collect();
            used_by.sort();
            let sent_as_key = snap.providers.values().any(|p| p.spec.api_key_ref() == Some(m.name.as_str()));
            SecretRow {
                signing_only: !used_by.is_empty() && !sent_as_key,
                used_by,
                bound_hosts: snap.bindings.get(&m.name).map(|h| h.iter().cloned().collect()).unwrap_or_default(),
                updated: if m.updated_at_ms > 0 { format::ago(m.updated_at_ms, now) } else { "—".into() },
                updated_full: if m.updated_at_ms > 0 { format::date_time(m.updated_at_ms) } else { String::new() },
                name: m.name,
            }
        })
        .collect();
    let (new_name, name_error, value_error) = form;
    let p = SecretsPage {
        layout: Layout::of(session, "Secrets Store", "secrets").with_notice(notice),
        rows,
        next_url: next.map(|n| format!("/secrets?after={n}")).unwrap_or_default(),
        writable: console.state.secrets().is_writable(),
        backend: console.state.secrets().kind().as_str(),
        new_name,
        name_error,
        value_error,
        rotate,
    };
    html_page(status, &p)
}

/// `GET /secrets`.
pub async fn page(
    State(console): State<Console>,
    session: Session,
    Query(p): Query<SecretParams>,
) -> Result<Response, ConsoleError> {
    let notice = notice_from(p.notice.as_deref(), p.name.as_deref());
    render(&console, &session, p.rotate.unwrap_or_default(), p.after, notice, Default::default(), StatusCode::OK).await
}

/// `POST /secrets`: store a new secret (or a new value of an existing one).
pub async fn create(State(console): State<Console>, session: Session, body: Bytes) -> Result<Response, ConsoleError> {
    session.require(Role::Writer)?;
    let form = Form::parse(&body);
    let name = form.text("name");
    let value = form.get("value").unwrap_or_default().to_string();
    match admin::secrets::store_value(&console.state, &session.token, &name, &value).await {
        Ok(_) => Ok(Redirect::to(&format!("/secrets?notice=secret-created&name={name}")).into_response()),
        Err(
            crate::ApiError::InvalidArgument { field, message } | crate::ApiError::Unprocessable { field, message },
        ) => {
            let (ne, ve) = if field == "value" { (String::new(), message) } else { (message, String::new()) };
            let notice = Notice::error("The secret was not stored.");
            render(&console, &session, String::new(), None, notice, (name, ne, ve), StatusCode::BAD_REQUEST).await
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /secrets/{name}/delete`.
pub async fn delete(
    State(console): State<Console>,
    session: Session,
    Path(name): Path<String>,
) -> Result<Response, ConsoleError> {
    session.require(Role::Writer)?;
    match admin::secrets::remove(&console.state, &name).await {
        Ok(()) => Ok(Redirect::to(&format!("/secrets?notice=secret-deleted&name={name}")).into_response()),
        Err(e @ (crate::ApiError::Conflict(_) | crate::ApiError::NotFound(_))) => {
            let status = e.status();
            render(&console, &session, String::new(), None, Notice::error(e.to_string()), Default::default(), status)
                .await
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /secrets/{name}/rotate`: a new value for an existing secret.
pub async fn rotate(
    State(console): State<Console>,
    session: Session,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    session.require(Role::Writer)?;
    if console.state.secrets().is_writable()
        && console.state.store().get_secret_meta(&name).await.map_err(crate::ApiError::from)?.is_none()
    {
        return Err(ConsoleError::NotFound(format!("secret \"{name}\" not found")));
    }
    let form = Form::parse(&body);
    let value = form.get("value").unwrap_or_default().to_string();
    match admin::secrets::store_value(&console.state, &session.token, &name, &value).await {
        Ok(_) => Ok(Redirect::to(&format!("/secrets?notice=secret-rotated&name={name}")).into_response()),
        Err(crate::ApiError::InvalidArgument { message, .. } | crate::ApiError::Unprocessable { message, .. }) => {
            let notice = Notice::error(format!("Secret {name} was not rotated: the new value {message}."));
            render(&console, &session, name.clone(), None, notice, Default::default(), StatusCode::BAD_REQUEST).await
        }
        Err(e) => Err(e.into()),
    }
}
