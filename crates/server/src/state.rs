//! Shared state of a running gateway and the in-memory config snapshot.
//!
//! Every request reads providers and gateway tokens from an immutable [`Snapshot`] behind an
//! `ArcSwap` (a lock-free load). Writes go to the database, then [`AppState::reload`] builds a
//! new snapshot; a poller reloads when another replica bumped the config version.
//!
//! The snapshot also caches the plaintext of every database secret a provider references,
//! so the proxy never reads the database per request (a secret write bumps the config
//! version like any other config write, so the cache follows it).

use crate::catalog::CatalogHandle;
use crate::meter::Meter;
use crate::metrics::Metrics;
use crate::secrets::SecretSource;
use crate::settings::Settings;
use crate::upstream::ProxyClient;
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tollgate_core::{Catalog, ProviderSpec};
use tollgate_store::{SecretValue, Store, StoreError, UsageStore};

pub use crate::snapshot::{ProviderEntry, Snapshot};

/// Cheap to clone; one per process.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    snapshot: ArcSwap<Snapshot>,
    reload_lock: tokio::sync::Mutex<()>,
    secrets: SecretSource,
    public_url: String,
    settings: Settings,
    ready: AtomicBool,
    meter: Meter,
    metrics: Arc<Metrics>,
    http: reqwest::Client,
    aws: crate::aws::AwsCredentials,
    catalog: Arc<CatalogHandle>,
    usage: UsageStore,
    proxy_client: ProxyClient,
    policy: Arc<crate::address_policy::AddressPolicy>,
    /// This process's id in `x-tollgate-hop` (loop detection), random per start; also its
    /// lease holder name for budgets and rate limits.
    hop_id: String,
    limits: crate::limits::Limits,
}

/// What [`AppState::new`] needs besides the store and settings.
#[derive(Debug)]
pub struct Parts {
    pub secrets: SecretSource,
    pub public_url: String,
    pub meter: Meter,
    pub metrics: Arc<Metrics>,
    pub http: reqwest::Client,
    pub catalog: Arc<CatalogHandle>,
    pub usage: UsageStore,
    pub proxy_client: ProxyClient,
    pub policy: Arc<crate::address_policy::AddressPolicy>,
}

/// A random id for this process: 16 hex digits (64 bits, from the system generator; the
/// time as a fallback keeps it distinct per start if the generator fails).
fn hop_id() -> String {
    let mut buf = [0u8; 8];
    if aws_lc_rs::rand::fill(&mut buf).is_err() {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        buf.copy_from_slice(&(nanos as u64).to_le_bytes());
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

impl AppState {
    pub fn new(store: Store, settings: Settings, parts: Parts) -> AppState {
        let hop_id = hop_id();
        let limits = crate::limits::Limits::new(
            store.clone(),
            parts.usage.clone(),
            hop_id.clone(),
            settings.clock.clone(),
            parts.metrics.clone(),
            settings.budget_fail_open,
        );
        AppState {
            inner: Arc::new(Inner {
                store,
                snapshot: ArcSwap::from_pointee(Snapshot::default()),
                reload_lock: tokio::sync::Mutex::new(()),
                secrets: parts.secrets,
                public_url: parts.public_url.trim_end_matches('/').to_string(),
                ready: AtomicBool::new(false),
                meter: parts.meter,
                metrics: parts.metrics,
                http: parts.http,
                aws: crate::aws::AwsCredentials::new(settings.aws_sts_endpoint.clone(), settings.clock.clone()),
                catalog: parts.catalog,
                usage: parts.usage,
                settings,
                proxy_client: parts.proxy_client,
                policy: parts.policy,
                hop_id,
                limits,
            }),
        }
    }

    pub fn meter(&self) -> &Meter {
        &self.inner.meter
    }

    /// The gateway's wall clock (see [`crate::time`]).
    pub fn clock(&self) -> &crate::time::Clock {
        &self.inner.settings.clock
    }

    /// Milliseconds since the Unix epoch, by the gateway's clock.
    pub fn now_ms(&self) -> i64 {
        self.inner.settings.clock.now_ms()
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// AWS credentials of Bedrock providers (cached per provider configuration).
    pub fn aws(&self) -> &crate::aws::AwsCredentials {
        &self.inner.aws
    }

    /// The model catalog in use now: the embedded one merged with the operator overlay
    /// (hot-reloaded when the overlay file changes). A lock-free load.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.inner.catalog.current()
    }

    /// The live catalog and its overlay status.
    pub fn catalog_handle(&self) -> &Arc<CatalogHandle> {
        &self.inner.catalog
    }

    /// The usage store (events and hourly rollups), for reports.
    pub fn usage(&self) -> &UsageStore {
        &self.inner.usage
    }

    /// The shared upstream HTTP client of the admin side (Test Connection).
    pub fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// The upstream address policy (`--upstream-allow` / `--upstream-deny`).
    pub fn address_policy(&self) -> &crate::address_policy::AddressPolicy {
        &self.inner.policy
    }

    /// This process's id in the `x-tollgate-hop` header (loop detection).
    pub fn hop_id(&self) -> &str {
        &self.inner.hop_id
    }

    /// The budget and rate-limit engine (leases, reservations).
    pub fn limits(&self) -> &crate::limits::Limits {
        &self.inner.limits
    }

    /// The shared upstream client of the proxy path.
    pub fn proxy_client(&self) -> &ProxyClient {
        &self.inner.proxy_client
    }

    /// A provider credential by secret name: from the snapshot for the database backend (no
    /// database read), from the environment or the secret directory otherwise.
    pub async fn credential(&self, snap: &Snapshot, name: &str) -> Option<SecretValue> {
        self.inner.secrets.credential(&self.inner.store, snap, name).await
    }

    /// Where [`crate::aws`] reads static key secrets: the snapshot's cache on the request path
    /// (`Some(snap)`), the secret backend itself on the admin path (`None`).
    pub fn secret_lookup<'a>(&'a self, snap: Option<&'a Snapshot>) -> crate::aws::SecretLookup<'a> {
        crate::aws::SecretLookup { source: &self.inner.secrets, store: &self.inner.store, snapshot: snap }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn secrets(&self) -> &SecretSource {
        &self.inner.secrets
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.inner.snapshot.load_full()
    }

    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Acquire)
    }

    /// The proxy URL of a provider: `<public base>/llm/v1/providers/<name>`.
    pub fn proxy_url(&self, name: &str) -> String {
        format!("{}/llm/v1/providers/{name}", self.inner.public_url)
    }

    pub fn public_url(&self) -> &str {
        &self.inner.public_url
    }

    /// Rebuilds the snapshot from the database. Reloads are serialised so a slower, older
    /// reload can never replace a newer snapshot.
    pub async fn reload(&self) -> Result<(), StoreError> {
        let _guard = self.inner.reload_lock.lock().await;
        let version = self.inner.store.config_version().await?;
        let mut providers = HashMap::new();
        let mut credentials = HashMap::new();
        for rec in self.inner.store.all_providers().await? {
            let spec: ProviderSpec = serde_json::from_str(&rec.spec_json)
                .map_err(|e| StoreError::Corrupt(format!("provider {}: {e}", rec.name)))?;
            if matches!(self.inner.secrets, SecretSource::Database) {
                for (_, secret) in spec.secret_refs() {
                    if credentials.contains_key(&secret) {
                        continue;
                    }
                    match self.inner.store.secret_value(&secret).await {
                        Ok(Some(v)) => {
                            credentials.insert(secret, v);
                        }
                        Ok(None) => {}
                        Err(e) => tracing::warn!(secret = %secret, error = %e, "cannot unseal a provider secret"),
                    }
                }
            }
            providers
                .insert(rec.name.clone(), Arc::new(ProviderEntry::new(spec, rec.created_at_ms, rec.updated_at_ms)));
        }
        let tokens = self.inner.store.all_tokens().await?.into_iter().map(|t| (t.hash, Arc::new(t))).collect();
        let signed_out = self.inner.store.signed_out_sessions(self.now_ms()).await?.into_iter().collect();
        let bindings = self.inner.store.all_secret_bindings().await?;
        let limits = crate::snapshot::Limits::load(&self.inner.store).await?;
        self.inner.snapshot.store(Arc::new(Snapshot {
            version,
            providers,
            tokens,
            credentials,
            bindings,
            signed_out,
            limits,
        }));
        self.inner.ready.store(true, Ordering::Release);
        Ok(())
    }

    /// Reloads whenever the database's config version moves (changes by other replicas).
    pub async fn poll_config(self, interval: Duration, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            match self.inner.store.config_version().await {
                Ok(v) if v != self.snapshot().version => {
                    if let Err(e) = self.reload().await {
                        tracing::warn!(error = %e, "config reload failed; serving the previous snapshot");
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "config version poll failed"),
            }
        }
    }
}
