//! Test-only building blocks: a real gateway on a free port ([`TestGateway`]), a fresh
//! database per test ([`db::TestDb`]) and fake LLM upstreams ([`upstream::FakeUpstream`]).
//! Everything talks over real sockets; nothing here short-circuits the HTTP layer. Tests wait
//! for the gateway's own work through [`TestGateway::flush_usage`] and move its
//! [`clock`](TestGateway::clock) instead of sleeping. [`fixtures`] is the one loader of the
//! recorded fixtures under `tests/fixtures/`. [`idp::TestIdp`] is a real OpenID Connect identity
//! provider, [`pki::TestPki`] a certificate authority for TLS tests.
//! recorded fixtures under `tests/fixtures/`. [`otlp::OtlpReceiver`] is a real OTLP/HTTP trace
//! receiver, decoding with the `opentelemetry-proto` types.
//!
//! Only dev-dependencies of other crates may depend on this crate.

pub mod db;
pub mod fixtures;
pub mod idp;
pub mod otlp;
pub mod pki;
pub mod upstream;

use anyhow::{Context, anyhow, bail};
use db::TestDb;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::path::PathBuf;
use tollgate_server::{Gateway, Settings};

/// A gateway running on its own thread and runtime (so a test may block freely), listening
/// on 127.0.0.1 with a free port, with a fresh data dir. Stopped gracefully on drop.
#[derive(Debug)]
pub struct TestGateway {
    /// `http://127.0.0.1:<port>` (`https://` when the settings turn TLS on)
    pub base_url: String,
    /// With `--tls-self-signed`: the CA file the gateway generated (trusted by `client`).
    pub tls_ca_file: Option<PathBuf>,
    /// The bootstrap admin token (empty for a replica that joined an existing database).
    pub admin_token: String,
    /// The data dir (master key, admin.token, SQLite unless `db` says otherwise).
    pub data_dir: PathBuf,
    pub client: reqwest::Client,
    /// The gateway's wall clock: `advance` it instead of sleeping (token expiry, credential
    /// refresh, retention, report windows).
    pub clock: tollgate_server::time::Clock,
    /// The gateway's usage meter, for [`flush_usage`](Self::flush_usage).
    meter: tollgate_server::meter::Meter,
    limits: tollgate_server::limits::Limits,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Where the gateway writes usage events.
    usage_url: String,
    _dir: tempfile::TempDir,
    _db: Option<TestDb>,
}

impl TestGateway {
    /// A gateway on SQLite in a temp dir.
    pub async fn start() -> anyhow::Result<TestGateway> {
        Self::start_with(None, |_| {}).await
    }

    /// A gateway on the given database.
    pub async fn start_on(db: TestDb) -> anyhow::Result<TestGateway> {
        Self::start_with(Some(db), |_| {}).await
    }

    /// A gateway whose settings `tweak` may adjust (secret backend, public URL, …).
    pub async fn start_with(db: Option<TestDb>, tweak: impl FnOnce(&mut Settings)) -> anyhow::Result<TestGateway> {
        let dir = tempfile::tempdir()?;
        let data_dir = dir.path().join("data");
        let mut settings = Settings::new(&data_dir);
        settings.listen = "127.0.0.1:0".parse()?;
        settings.database_url = db.as_ref().map(|d| tollgate_server::Sensitive(d.url().to_string()));
        settings.config_poll_interval = std::time::Duration::from_millis(200);
        tweak(&mut settings);
        let clock = settings.clock.clone();
        let usage_url = settings.effective_usage_database_url().unwrap_or_else(|| settings.effective_database_url());
        type Ready =
            (String, Option<String>, tollgate_server::meter::Meter, Option<PathBuf>, tollgate_server::limits::Limits);
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<anyhow::Result<Ready>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.into()));
                    return;
                }
            };
            rt.block_on(async move {
                let gw = match Gateway::start(settings).await {
                    Ok(gw) => gw,
                    Err(e) => {
                        let _ = ready_tx.send(Err(anyhow!("gateway failed to start: {e}")));
                        return;
                    }
                };
                let scheme = if gw.https() { "https" } else { "http" };
                let base = format!("{scheme}://{}", gw.local_addr());
                let meter = gw.state().meter().clone();
                let ca = gw.tls_ca_file().map(PathBuf::from);
                let limits = gw.state().limits().clone();
                let _ = ready_tx.send(Ok((base, gw.bootstrap_token().map(str::to_string), meter, ca, limits)));
                let _ = gw
                    .serve(async move {
                        let _ = stop_rx.await;
                    })
                    .await;
            });
        });
        let (base_url, token, meter, tls_ca_file, limits) = ready_rx.await.context("gateway thread died")??;
        let client = match &tls_ca_file {
            Some(ca) => reqwest::Client::builder()
                .tls_certs_only([reqwest::Certificate::from_pem(&std::fs::read(ca)?)?])
                .build()?,
            None => reqwest::Client::new(),
        };
        let admin_token = match token {
            Some(t) => t,
            None => {
                std::fs::read_to_string(data_dir.join("admin.token")).map(|s| s.trim().to_string()).unwrap_or_default()
            }
        };
        Ok(TestGateway {
            base_url,
            tls_ca_file,
            admin_token,
            data_dir,
            client,
            clock,
            meter,
            limits,
            shutdown: Some(stop_tx),
            thread: Some(thread),
            usage_url,
            _dir: dir,
            _db: db,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Sends a JSON request with an optional bearer token; returns status and JSON body
    /// (`Value::Null` for an empty body).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let bytes = resp.bytes().await?;
        let v = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .with_context(|| format!("non-JSON body: {}", String::from_utf8_lossy(&bytes)))?
        };
        Ok((status, v))
    }

    /// The same as [`call`](Self::call) with the admin token.
    pub async fn admin(&self, method: Method, path: &str, body: Option<&Value>) -> anyhow::Result<(StatusCode, Value)> {
        self.call(method, path, Some(&self.admin_token), body).await
    }

    /// Stores a secret through the API.
    pub async fn put_secret(&self, name: &str, value: &str) -> anyhow::Result<()> {
        let (s, b) = self
            .admin(Method::PUT, &format!("/api/v1/secrets/{name}"), Some(&serde_json::json!({"value": value})))
            .await?;
        if !s.is_success() {
            bail!("PUT secret {name}: {s} {b}");
        }
        Ok(())
    }

    /// Creates a gateway token with `role` and returns the token.
    pub async fn token(&self, role: &str) -> anyhow::Result<String> {
        let (s, b) = self
            .admin(
                Method::POST,
                "/api/v1/tokens",
                Some(&serde_json::json!({"name": format!("test-{role}"), "role": role})),
            )
            .await?;
        if s != StatusCode::CREATED {
            bail!("POST token: {s} {b}");
        }
        b["token"].as_str().map(str::to_string).ok_or_else(|| anyhow!("no token in {b}"))
    }

    /// Returns once every request forwarded so far has its usage event committed (see
    /// `Meter::flush`): no waiting for the writer's flush interval, no polling.
    pub async fn flush_usage(&self) {
        self.meter.flush().await;
    }

    /// Every usage event the gateway has committed so far, oldest first.
    /// Flushes budget and rate-limit spend to the database and hands idle leases back (what
    /// the background sync does every second).
    pub async fn flush_limits(&self) {
        self.limits.sync_all().await;
    }

    /// Budget and rate-limit reservations in flight on this gateway (0 when nothing leaked).
    pub fn limits_reserved(&self) -> i64 {
        self.limits.reserved_total()
    }

    pub async fn usage_events(&self) -> anyhow::Result<Vec<tollgate_store::UsageEvent>> {
        let store = tollgate_store::UsageStore::connect(&self.usage_url).await?;
        let events =
            store.list_events(&tollgate_store::UsageQuery { limit: Some(100_000), ..Default::default() }).await;
        store.close().await;
        Ok(events?)
    }

    /// Stops the gateway gracefully and waits for it.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        self.halt();
    }
}
