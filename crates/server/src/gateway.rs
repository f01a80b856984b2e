//! Starting and stopping one gateway process: load the master key, open the store (running
//! migrations), bind the listener (its address is one the address policy refuses as an
//! upstream) and set up its TLS (`tls.rs`: certificate files or the self-signed CA), open the usage store, load the catalog with its overlay, start the usage writer,
//! build the address policy (checking `--aws-sts-endpoint` / `--bedrock-control-endpoint`)
//! and the HTTP clients, create the bootstrap admin token on first start, load the config
//! snapshot, merge the console and admin routers and put the proxy service beside them
//! (`conn::App`: proxy paths skip the router). Then serve (with the connection limits of
//! `conn.rs`) until the shutdown signal, finish in-flight requests within the
//! shutdown grace (cutting the rest), drain the usage queue and close.
//!
//! The merged router is resolved with `with_state(())` once, before serving: each new
//! connection then costs a reference count instead of a rebuilt route table.

use crate::admin;
use crate::catalog::CatalogHandle;
use crate::error::ServerError;
use crate::keys::{load_keyring, write_private_file};
use crate::meter::UsageWriter;
use crate::metrics::Metrics;
use crate::request_span::RequestSpanLayer;
use crate::secrets::SecretSource;
use crate::settings::Settings;
use crate::state::{AppState, Parts};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tollgate_core::Role;
use tollgate_store::{Store, TokenRecord, TranscriptStore, UsageStore};
use tower::Layer as _;

/// File in the data dir that receives the bootstrap admin token (0600).
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

/// A started (bound, not yet serving) gateway.
#[derive(Debug)]
pub struct Gateway {
    listener: TcpListener,
    state: AppState,
    app: crate::conn::App,
    local_addr: SocketAddr,
    bootstrap_token: Option<String>,
    writer: UsageWriter,
    usage: UsageStore,
    transcripts: TranscriptStore,
    tls: Option<crate::tls::ServerTls>,
    /// The OTLP export task, when tracing is on.
    exporter: Option<crate::telemetry::Exporter>,
}

fn default_public_url(addr: SocketAddr, https: bool) -> String {
    let host = if addr.ip().is_unspecified() {
        "localhost".to_string()
    } else if addr.is_ipv6() {
        format!("[{}]", addr.ip())
    } else {
        addr.ip().to_string()
    };
    let scheme = if https { "https" } else { "http" };
    format!("{scheme}://{host}:{}", addr.port())
}

impl Gateway {
    /// Opens everything and binds the listener. Fails fast on a bad setting.
    pub async fn start(settings: Settings) -> Result<Gateway, ServerError> {
        crate::keys::create_private_dir(&settings.data_dir)?;
        let secrets = SecretSource::from_settings(&settings).map_err(ServerError::Settings)?;
        let keyring = load_keyring(&settings)?;
        let db_url = settings.effective_database_url();
        let store = Store::connect(&db_url, keyring).await?;
        tracing::info!(database = %crate::settings::redact_url(&db_url), "store open, migrations applied");
        let listener = TcpListener::bind(settings.listen)
            .await
            .map_err(ServerError::io(format!("listening on {}", settings.listen)))?;
        let local_addr = listener.local_addr().map_err(ServerError::io("reading the bound address"))?;
        let public_url = match &settings.public_url {
            Some(u) => {
                tollgate_core::validate::base_url(u).map_err(|m| ServerError::Settings(format!("--public-url {m}")))?
            }
            None => default_public_url(local_addr, settings.tls != crate::tls::TlsSource::Off),
        };
        let public_host = url::Url::parse(&public_url)
            .ok()
            .and_then(|u| u.host_str().map(|h| h.trim_start_matches('[').trim_end_matches(']').to_string()));
        let tls = crate::tls::server_tls(
            &settings.tls,
            settings.tls_client_ca.as_deref(),
            &settings.data_dir,
            local_addr,
            public_host.as_slice(),
        )
        .map_err(|e| ServerError::Settings(e.to_string()))?;
        if let Some(ca) = tls.as_ref().and_then(|t| t.ca_file.as_ref()) {
            tracing::info!(ca = %ca.display(), "serving HTTPS with a self-signed certificate; clients must trust this CA file");
        }
        let usage = match settings.effective_usage_database_url() {
            Some(url) => {
                let u = UsageStore::connect(&url).await?;
                tracing::info!(database = %crate::settings::redact_url(&url), "usage store open");
                u
            }
            None => {
                let u = UsageStore::sharing(&store)
                    .ok_or_else(|| ServerError::Settings("the usage store cannot share a SQLite database".into()))?;
                u.upgrade().await?;
                u
            }
        };
        let transcripts = match settings.effective_transcript_database_url() {
            Some(url) => {
                let t = TranscriptStore::connect(&url).await?;
                tracing::info!(database = %crate::settings::redact_url(&url), "transcript store open");
                t
            }
            None => TranscriptStore::sharing(&store)
                .ok_or_else(|| ServerError::Settings("the transcript store cannot share a SQLite database".into()))?,
        };
        let metrics = Arc::new(Metrics::default());
        let catalog = Arc::new(CatalogHandle::load(settings.catalog_overlay.clone(), metrics.clone())?);
        let (meter, writer) = crate::meter::channel(
            usage.clone(),
            catalog.clone(),
            metrics.clone(),
            settings.usage_queue_capacity,
            settings.usage_batch_size,
            settings.usage_flush_interval,
            Some(crate::meter::SpillConfig {
                path: settings.data_dir.join(crate::meter::SPILL_FILE),
                max_bytes: settings.usage_spill_max_bytes,
            }),
        );
        let writer = writer.with_transcripts(crate::transcript::Sink {
            store: transcripts.clone(),
            keys: store.clone(),
            metrics: metrics.clone(),
        });
        let policy = crate::address_policy::AddressPolicy::new(&settings.upstream_allow, &settings.upstream_deny)
            .map_err(ServerError::Settings)?
            .with_own(local_addr, &public_url);
        for (flag, endpoint) in [
            ("--aws-sts-endpoint", &settings.aws_sts_endpoint),
            ("--bedrock-control-endpoint", &settings.bedrock_control_endpoint),
        ] {
            if let Some(url) = endpoint {
                policy.check_url(url).map_err(|d| ServerError::Settings(format!("{flag}: {d}")))?;
            }
        }
        let policy = Arc::new(policy);
        let http = crate::upstream::build_client(&settings, &policy)?;
        let proxy_client = crate::upstream::build_proxy_client(&settings, &policy)?;
        let oidc = match &settings.oidc {
            Some(o) => {
                let oidc = Arc::new(crate::oidc::Oidc::new(o.clone(), http.clone(), settings.clock.clone()));
                match oidc.load().await {
                    Ok(()) => tracing::info!(issuer = %o.issuer, "OIDC sign-in on"),
                    Err(e) => tracing::warn!(error = %e, issuer = %o.issuer,
                        "OIDC discovery failed; JWTs are refused until it succeeds (retrying in the background)"),
                }
                Some(oidc)
            }
            None => None,
        };
        let (tracing, exporter) = match &settings.tracing {
            Some(t) => {
                let (tracing, exporter) = crate::telemetry::Tracing::start(t, http.clone(), metrics.clone())
                    .map_err(|e| ServerError::Settings(e.to_string()))?;
                tracing::info!("OpenTelemetry tracing on (OTLP/HTTP)");
                (Some(tracing), Some(exporter))
            }
            None => (None, None),
        };
        let state = AppState::new(
            store,
            settings,
            Parts {
                secrets,
                public_url,
                meter,
                metrics,
                http,
                proxy_client,
                catalog,
                usage: usage.clone(),
                transcripts: transcripts.clone(),
                policy,
                oidc,
                tracing,
            },
        );
        let bootstrap_token = bootstrap_admin(&state).await?;
        backfill_bindings(&state).await?;
        state.reload_full().await?;
        let (admin, _spec) = admin::router(state.clone());
        let mut router = crate::console::router(state.clone()).merge(admin);
        // The proxy (`conn::App`: proxy paths skip the router) gets the same outer layers.
        let proxy = crate::proxy::service(state.clone());
        let proxy: crate::conn::ProxyService = match state.oidc().cloned() {
            Some(oidc) => {
                let jwt = axum::middleware::from_fn(move |req, next| jwt_keys(oidc.clone(), req, next));
                router = router.layer(jwt.clone());
                boxed(RequestSpanLayer.layer(jwt.layer(proxy)))
            }
            None => boxed(RequestSpanLayer.layer(proxy)),
        };
        let router = router.layer(RequestSpanLayer);
        let app = crate::conn::App { router, proxy };
        Ok(Gateway { listener, state, app, local_addr, bootstrap_token, writer, usage, transcripts, tls, exporter })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The admin token created on first start (also written to `<data_dir>/admin.token`).
    pub fn bootstrap_token(&self) -> Option<&str> {
        self.bootstrap_token.as_deref()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Whether clients connect with TLS.
    pub fn https(&self) -> bool {
        self.tls.is_some()
    }

    /// With `--tls-self-signed`: the CA certificate file clients must trust.
    pub fn tls_ca_file(&self) -> Option<&std::path::Path> {
        self.tls.as_ref().and_then(|t| t.ca_file.as_deref())
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets in-flight requests (streams
    /// included) finish for up to `shutdown_grace` and cuts the rest, drains the usage queue
    /// into the store (each cut stream's event included) and closes the databases.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), ServerError> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let poller =
            tokio::spawn(self.state.clone().poll_config(self.state.settings().config_poll_interval, stop_rx.clone()));
        let listener = tokio::spawn(self.state.clone().listen_config(stop_rx.clone()));
        let catalog_watch = tokio::spawn(
            self.state.catalog_handle().clone().watch(self.state.settings().config_poll_interval, stop_rx.clone()),
        );
        let retention = tokio::spawn(crate::retention::run(
            self.usage.clone(),
            self.state.metrics().clone(),
            self.state.clock().clone(),
            self.state.settings().usage_retention_days,
            crate::retention::TranscriptLimits {
                store: self.transcripts.clone(),
                keys: self.state.store().clone(),
                days: self.state.settings().transcript_retention_days,
                max_total_bytes: self.state.settings().transcript_max_total_bytes,
            },
            std::time::Duration::from_secs(3600),
            stop_rx.clone(),
        ));
        let oidc = self.state.oidc().cloned().map(|o| tokio::spawn(o.run(stop_rx.clone())));
        let limit_sync = tokio::spawn(self.state.limits().clone().run(stop_rx.clone()));
        let reaper = tokio::spawn(self.state.proxy_client().clone().reap(stop_rx.clone()));
        let writer = tokio::spawn(self.writer.run(stop_rx));
        // The exporter stops after the writer: the writer's drain ends the last spans.
        let (export_stop, export_stop_rx) = tokio::sync::watch::channel(false);
        let exporter = self.exporter.map(|e| tokio::spawn(e.run(export_stop_rx)));
        tracing::info!(addr = %self.local_addr, public_url = %self.state.public_url(), "tollgate listening");
        let settings = self.state.settings();
        let limits = crate::conn::Limits {
            max_connections: crate::conn::fit_to_fd_limit(settings.max_connections),
            header_read_timeout: settings.header_read_timeout,
            idle_timeout: settings.idle_timeout,
            http2_max_concurrent_streams: settings.http2_max_concurrent_streams,
            http2_max_header_list_bytes: settings.http2_max_header_list_bytes,
            shutdown_grace: settings.shutdown_grace,
        };
        // Resolve the router once: given a bare `Router`, each new connection would call
        // `with_state(())`, which rebuilds the whole route table (every console and admin
        // route) — ~27 KiB and a few µs per connection. Finalised here, each connection gets a
        // reference-counted clone.
        let app = crate::conn::App { router: self.app.router.with_state::<()>(()), proxy: self.app.proxy };
        let meter = self.state.meter().clone();
        let cut = meter.clone();
        crate::conn::serve(self.listener, app, limits, self.tls, self.state.metrics().clone(), shutdown, move || {
            cut.cutting_at_shutdown()
        })
        .await;
        // Every connection is closed: requests cut at the deadline have emitted their events
        // (on drop). Wait for stragglers a moment, then let the writer drain the queue.
        if tokio::time::timeout(std::time::Duration::from_secs(5), meter.emitted()).await.is_err() {
            tracing::warn!("some requests had not emitted their usage event 5 s after the connections closed");
        }
        // Every request has settled its budget reservations: flush spend, hand leases back.
        self.state.limits().sync_all().await;
        let _ = stop_tx.send(true);
        let _ = limit_sync.await;
        let _ = reaper.await;
        let _ = poller.await;
        let _ = listener.await;
        let _ = catalog_watch.await;
        let _ = retention.await;
        if let Some(o) = oidc {
            let _ = o.await;
        }
        let _ = writer.await;
        let _ = export_stop.send(true);
        if let Some(e) = exporter
            && tokio::time::timeout(std::time::Duration::from_secs(10), e).await.is_err()
        {
            tracing::warn!("trace export did not finish within 10 s of shutdown");
        }
        self.usage.close().await;
        self.transcripts.close().await;
        self.state.store().close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Erases a layered proxy service's type (`conn::ProxyService`), its body turned back into
/// axum's.
fn boxed<S, B>(svc: S) -> crate::conn::ProxyService
where
    S: tower::Service<axum::extract::Request, Response = axum::http::Response<B>, Error = std::convert::Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    tower::util::BoxCloneSyncService::new(tower::ServiceExt::map_response(svc, |r: axum::http::Response<B>| {
        r.map(axum::body::Body::new)
    }))
}

/// With OIDC on, before any handler: a JWT in one of the places a gateway token may be
/// (`client_auth::presented_token`) whose signing key is not cached yet triggers the
/// rate-limited JWKS refresh (`Oidc::ensure_key`), so the handlers' synchronous validation
/// finds a rotated key. Any other request passes after a header look-up.
async fn jwt_keys(
    oidc: Arc<crate::oidc::Oidc>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if let Ok(token) = crate::proxy::client_auth::presented_token(req.headers(), req.uri().query(), false)
        && crate::oidc::looks_like_jwt(token)
    {
        oidc.ensure_key(token).await;
    }
    next.run(req).await
}

/// Binds each secret that providers saved before bindings existed reference (and that has no
/// binding yet) to those providers' hosts: the hosts they were already sent to.
async fn backfill_bindings(state: &AppState) -> Result<(), ServerError> {
    let mut specs = Vec::new();
    for rec in state.store().all_providers().await? {
        match serde_json::from_str::<tollgate_core::ProviderSpec>(&rec.spec_json) {
            Ok(spec) => specs.push(spec),
            Err(e) => tracing::warn!(provider = %rec.name, error = %e, "stored provider is unreadable"),
        }
    }
    let wanted = crate::binding::wanted_bindings(specs.iter());
    let count = state.store().backfill_secret_bindings(&wanted).await?;
    if count > 0 {
        tracing::info!(secrets = count, "bound secrets to the hosts their providers use");
    }
    Ok(())
}

/// On first start (no tokens at all), creates an admin token and writes it to the data dir.
async fn bootstrap_admin(state: &AppState) -> Result<Option<String>, ServerError> {
    let template = TokenRecord {
        id: "".into(),
        name: "bootstrap-admin".into(),
        hash: [0; 32],
        prefix: String::new(),
        user: None,
        agent: None,
        role: Role::Admin,
        providers: None,
        expires_at_ms: None,
        created_at_ms: state.now_ms(),
        revoked_at_ms: None,
    };
    let (token, rec) = admin::tokens::mint(template).map_err(|e| ServerError::Bootstrap(e.to_string()))?;
    if !state.store().insert_bootstrap_token(&rec).await? {
        return Ok(None);
    }
    let path = state.settings().data_dir.join(ADMIN_TOKEN_FILE);
    if let Err(e) = write_private_file(&path, &format!("{token}\n")) {
        tracing::error!(error = %e, "could not write the bootstrap admin token file");
    } else {
        tracing::info!(path = %path.display(), "wrote the bootstrap admin token");
    }
    Ok(Some(token))
}
