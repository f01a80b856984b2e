//! The web console: server-rendered pages at `/` for operators, served by the gateway itself.
//!
//! Pages are askama templates (`crates/server/templates/`, checked at compile time against
//! typed contexts); CSS, one small vanilla JavaScript file and the provider-type icons are
//! embedded with rust-embed (`crates/server/assets/`), so the console needs no Node toolchain
//! and no network. Charts are SVG drawn on the server ([`charts`]).
//!
//! A console request: [`server_timing`] starts a clock (and on the way out adds
//! `Server-Timing` and the security headers: a CSP allowing only the console's own assets,
//! `X-Frame-Options: DENY`, `nosniff`) → [`session::csrf_guard`] refuses a
//! state-changing request without this session's CSRF token → the handler's [`Session`]
//! extractor checks the signed cookie and re-reads the token from the snapshot (sign-in page
//! otherwise) → reads come from the snapshot, the store and the hourly spending rollups; writes
//! call the same functions as the admin API (`crate::admin::*`), so validation, secret checks,
//! guardrail checks and the config reload are identical → the page renders. What a role may
//! not do is hidden in the page and refused by the handler.
//!
//! Routes never overlap `/llm/v1/…`, `/api/…`, `/healthz`, `/readyz` or `/metrics`.

pub mod budgets;
pub mod charts;
pub mod connect;
pub mod detail;
pub mod form;
pub mod format;
pub mod home;
pub mod provider_tabs;
pub mod providers;
pub mod requests;
pub mod secrets;
pub mod session;
pub mod spend;
pub mod sso;
pub mod tokens;
pub mod usage;

use crate::error::ApiError;
use crate::state::AppState;
use askama::Template;
use axum::Router;
use axum::extract::{Path, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
pub use session::Session;
use session::SessionKeys;
use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};
use std::time::Instant;
use tollgate_core::{ProviderType, Role};

/// What console handlers share: the gateway state and the session signing key.
#[derive(Debug, Clone)]
pub struct Console {
    pub state: AppState,
    pub keys: Arc<SessionKeys>,
}

/// The console router (state applied), to merge into the gateway's.
pub fn router(state: AppState) -> Router {
    let keys = Arc::new(SessionKeys::new(&state.store().keyring().derive("console-session")));
    let console = Console { state, keys };
    Router::new()
        .route("/", get(home::page))
        .route("/login", get(session::login_form).post(session::login))
        .route("/login/oidc", get(sso::start))
        .route("/login/oidc/callback", get(sso::callback))
        .route("/logout", post(session::logout))
        .route("/providers", get(providers::list))
        .route("/providers/new", get(form::new_form).post(form::create))
        .route("/providers/{name}", get(detail::show))
        .route("/providers/{name}/edit", get(form::edit_form).post(form::update))
        .route("/providers/{name}/enable", post(detail::enable))
        .route("/providers/{name}/disable", post(detail::disable))
        .route("/providers/{name}/delete", post(detail::delete))
        .route("/providers/{name}/check", post(detail::check))
        .route("/providers/{name}/models", post(provider_tabs::toggle_model))
        .route("/providers/{name}/settings", post(provider_tabs::save_settings))
        .route("/ui/resource-id", get(form::resource_id_check))
        .route("/ui/catalog", get(form::catalog_json))
        .route("/usage", get(usage::page))
        .route("/usage/export.csv", get(usage::csv))
        .route("/requests", get(requests::list))
        .route("/requests/{id}", get(requests::show))
        .route("/transcripts", get(requests::conversations_page))
        .route("/transcripts/{id}", get(requests::conversation))
        .route("/budgets", get(budgets::page).post(budgets::create))
        .route("/budgets/{name}/delete", post(budgets::delete))
        .route("/secrets", get(secrets::page).post(secrets::create))
        .route("/secrets/{name}/delete", post(secrets::delete))
        .route("/secrets/{name}/rotate", post(secrets::rotate))
        .route("/tokens", get(tokens::page).post(tokens::create))
        .route("/tokens/{id}/revoke", post(tokens::revoke))
        .route("/assets/{*path}", get(asset))
        .layer(from_fn_with_state(console.clone(), session::csrf_guard))
        // after the CSRF guard: an unknown path is a 404 whatever its method and body
        .fallback(unknown_path)
        .layer(from_fn_with_state(console.clone(), error_layout))
        .layer(from_fn(server_timing))
        .with_state(console)
}

/// Any path no router of the gateway serves (this is the merged router's one fallback): a
/// browser's GET for a page gets the console's 404, framed for a signed-in user by
/// [`error_layout`]; the admin API's and the proxy's paths, other methods and clients that do
/// not ask for HTML get the admin API's JSON 404.
async fn unknown_path(req: Request) -> Response {
    let path = req.uri().path();
    let wants_page = req.method() == axum::http::Method::GET
        && !path.starts_with("/api/")
        && !path.starts_with("/llm/")
        && req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/html"));
    if wants_page {
        ConsoleError::NotFound(format!("There is no page at {path}.")).into_response()
    } else {
        ApiError::NotFound(format!("no route for {path}")).into_response()
    }
}

/// Adds `Server-Timing: app;dur=<ms>` (time to produce the response) and the console's
/// security headers.
async fn server_timing(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let mut resp = next.run(req).await;
    let micros = started.elapsed().as_micros();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("app;dur={}.{:03}", micros / 1000, micros % 1000)) {
        h.insert("server-timing", v);
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
             connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    resp
}

/// Error pages keep the console's frame: a [`ConsoleError`] renders a bare page (it has no
/// request to read a session from) and marks the response with [`ErrorInfo`]; for a signed-in
/// browser this layer renders it again inside the sidebar layout, so a 403 or 404 leaves the
/// navigation in place.
async fn error_layout(
    axum::extract::State(console): axum::extract::State<Console>,
    req: Request,
    next: Next,
) -> Response {
    let session = session::session_of(&console, req.headers());
    let resp = next.run(req).await;
    let (Some(session), Some(info)) = (session, resp.extensions().get::<ErrorInfo>().cloned()) else {
        return resp;
    };
    let page = FramedErrorPage {
        layout: Layout::of(&session, format!("{}", info.status.as_u16()), ""),
        status: info.status.as_u16(),
        message: info.message,
    };
    html_page(info.status, &page).unwrap_or(resp)
}

/// What an error page said, for [`error_layout`] to render it again in the frame.
#[derive(Debug, Clone)]
struct ErrorInfo {
    status: StatusCode,
    message: String,
}

#[derive(Template)]
#[template(path = "error_framed.html")]
struct FramedErrorPage {
    layout: Layout,
    status: u16,
    message: String,
}

/// The embedded static files.
#[derive(rust_embed::RustEmbed)]
#[folder = "assets/"]
struct Assets;

/// Short content hashes of the assets, for cache-busting URLs.
static ASSET_VERSIONS: LazyLock<BTreeMap<String, String>> = LazyLock::new(|| {
    Assets::iter()
        .filter_map(|p| {
            let f = Assets::get(&p)?;
            let hash: String = f.metadata.sha256_hash()[..6].iter().map(|b| format!("{b:02x}")).collect();
            Some((p.into_owned(), hash))
        })
        .collect()
});

/// The URL of an asset, versioned by its content hash (served with a one-year cache).
pub fn asset_url(path: &str) -> String {
    match ASSET_VERSIONS.get(path) {
        Some(v) => format!("/assets/{path}?v={v}"),
        None => format!("/assets/{path}"),
    }
}

/// `GET /assets/{path}`: embedded files with an ETag; versioned URLs are cached for a year.
async fn asset(Path(path): Path<String>, headers: HeaderMap, uri: axum::http::Uri) -> Response {
    let Some(file) = Assets::get(&path) else {
        return ConsoleError::NotFound(format!("no asset {path}")).into_response();
    };
    let etag = format!("\"{}\"", ASSET_VERSIONS.get(&path).map_or("", String::as_str));
    let versioned = uri.query().is_some_and(|q| q.starts_with("v="));
    let cache = if versioned { "public, max-age=31536000, immutable" } else { "public, max-age=300" };
    if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag), (header::CACHE_CONTROL, cache.to_string())])
            .into_response();
    }
    let mime = file.metadata.mimetype().to_string();
    (
        [(header::CONTENT_TYPE, mime), (header::ETAG, etag), (header::CACHE_CONTROL, cache.to_string())],
        file.data.into_owned(),
    )
        .into_response()
}

/// A one-line message shown at the top of a page after an action.
#[derive(Debug, Clone, Default)]
pub struct Notice {
    /// `ok` or `error`.
    pub kind: &'static str,
    pub text: String,
}

impl Notice {
    pub fn ok(text: impl Into<String>) -> Option<Notice> {
        Some(Notice { kind: "ok", text: text.into() })
    }

    pub fn error(text: impl Into<String>) -> Option<Notice> {
        Some(Notice { kind: "error", text: text.into() })
    }
}

/// What every page's frame needs: title, navigation, the signed-in user and their powers.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    pub title: String,
    /// The navigation entry shown as current: `home`, `providers`, `usage`, `requests`, … (`""`
    /// for none).
    pub nav: &'static str,
    pub signed_in: bool,
    pub who: String,
    pub role: String,
    pub csrf: String,
    pub can_write: bool,
    pub is_admin: bool,
    pub notice: Option<Notice>,
    pub css: String,
    pub js: String,
}

impl Layout {
    pub fn anonymous(title: &str) -> Layout {
        Layout { title: title.to_string(), css: asset_url("app.css"), js: asset_url("app.js"), ..Layout::default() }
    }

    pub fn of(session: &Session, title: impl Into<String>, nav: &'static str) -> Layout {
        Layout {
            title: title.into(),
            nav,
            signed_in: true,
            who: session.who(),
            role: session.role().to_string(),
            csrf: session.csrf.clone(),
            can_write: session.can(Role::Writer),
            is_admin: session.can(Role::Admin),
            notice: None,
            css: asset_url("app.css"),
            js: asset_url("app.js"),
        }
    }

    pub fn with_notice(mut self, notice: Option<Notice>) -> Layout {
        self.notice = notice;
        self
    }
}

/// Renders a page as an HTML response that is never cached (pages show live data and tokens).
pub fn html_page<T: Template>(status: StatusCode, page: &T) -> Result<Response, ConsoleError> {
    let body = page.render().map_err(|e| ConsoleError::Internal(format!("template: {e}")))?;
    Ok((
        status,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response())
}

/// Why a console request failed; rendered as an HTML error page.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("the form expired or came from another site (CSRF check failed); reload the page and try again")]
    Csrf,
    #[error("the request body is too large")]
    TooLarge,
    #[error("{0}")]
    BadRequest(String),
    #[error("internal error; see the gateway log")]
    Internal(String),
    #[error("{0}")]
    Api(#[from] ApiError),
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    layout: Layout,
    status: u16,
    message: String,
}

impl ConsoleError {
    fn status(&self) -> StatusCode {
        match self {
            ConsoleError::Forbidden(_) | ConsoleError::Csrf => StatusCode::FORBIDDEN,
            ConsoleError::NotFound(_) => StatusCode::NOT_FOUND,
            ConsoleError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ConsoleError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ConsoleError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ConsoleError::Api(e) => e.status(),
        }
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            ConsoleError::Internal(detail) => {
                tracing::error!(error = %detail, "console internal error");
                self.to_string()
            }
            ConsoleError::Api(ApiError::Internal(detail)) => {
                tracing::error!(error = %detail, "console internal error");
                "internal error; see the gateway log".to_string()
            }
            other => other.to_string(),
        };
        let page = ErrorPage { layout: Layout::anonymous("Error"), status: status.as_u16(), message: message.clone() };
        let mut resp = match html_page(status, &page) {
            Ok(r) => r,
            Err(_) => (status, "error").into_response(),
        };
        resp.extensions_mut().insert(ErrorInfo { status, message });
        resp
    }
}

/// A urlencoded form body, keeping repeated fields in order.
#[derive(Debug, Default)]
pub struct Form {
    pairs: Vec<(String, String)>,
}

impl Form {
    pub fn parse(body: &[u8]) -> Form {
        Form { pairs: url::form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect() }
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The first value of `key`, trimmed, or `""`.
    pub fn text(&self, key: &str) -> String {
        self.get(key).unwrap_or_default().trim().to_string()
    }

    /// Whether a checkbox `key` was ticked.
    pub fn checked(&self, key: &str) -> bool {
        self.get(key).is_some_and(|v| v == "on" || v == "true" || v == "1")
    }

    /// Every value of `key`, in order.
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs.iter().filter(move |(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }
}

/// The icon of a provider type.
pub fn type_icon(t: ProviderType) -> String {
    asset_url(&format!("icons/{}.svg", t.descriptor().icon))
}

/// `?notice=` codes the pages understand, so a redirect can say what happened.
pub fn notice_from(code: Option<&str>, name: Option<&str>) -> Option<Notice> {
    let n = name.unwrap_or_default();
    match code? {
        "created" => Notice::ok(format!("Provider \"{n}\" created.")),
        "updated" => Notice::ok(format!("Provider \"{n}\" saved.")),
        "enabled" => Notice::ok(format!("Provider \"{n}\" enabled: its proxy URL accepts requests again.")),
        "disabled" => Notice::ok(format!("Provider \"{n}\" disabled: its proxy URL refuses requests (403).")),
        "deleted" => Notice::ok(format!("Provider \"{n}\" deleted. Its usage stays in Cost & Usage.")),
        "model-enabled" => Notice::ok(format!("Model {n} enabled: it is on the allow-list.")),
        "model-disabled" => Notice::ok(format!("Model {n} disabled: requests for it are refused.")),
        "secret-created" => Notice::ok(format!("Secret {n} stored.")),
        "secret-rotated" => {
            Notice::ok(format!("Secret {n} rotated: every provider that references it uses the new value from now on."))
        }
        "secret-deleted" => Notice::ok(format!("Secret {n} deleted.")),
        "revoked" => Notice::ok("Token revoked: it stops working with the next request.".to_string()),
        _ => None,
    }
}
