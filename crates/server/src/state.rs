//! Shared state of a running gateway and the in-memory config snapshot.
//!
//! Every request reads providers and gateway tokens from an immutable [`Snapshot`] behind an
//! `ArcSwap` (a lock-free load). Writes go to the database, then [`AppState::reload`] builds a
//! new snapshot: from the change log (`tollgate_store::Store::changes_between`) it re-reads only
//! the resources changed since the snapshot's version and copies the rest, or rebuilds it
//! whole when the log cannot say. Changes by other replicas arrive by PostgreSQL notification
//! ([`AppState::listen_config`]) and, as the fallback (and on SQLite), by polling the config
//! version ([`AppState::poll_config`]); both end in the same `reload`.
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
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tollgate_core::{Catalog, ProviderSpec};
use tollgate_store::{
    Change, ConfigKind, Notice, ProviderRecord, SecretValue, Store, StoreError, TranscriptStore, UsageStore,
};

pub use crate::snapshot::{ProviderEntry, SharedMap, Snapshot};

/// The spec of a stored provider.
fn provider_spec(rec: &ProviderRecord) -> Result<ProviderSpec, StoreError> {
    serde_json::from_str(&rec.spec_json).map_err(|e| StoreError::Corrupt(format!("provider {}: {e}", rec.name)))
}

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
    transcripts: TranscriptStore,
    proxy_client: ProxyClient,
    policy: Arc<crate::address_policy::AddressPolicy>,
    oidc: Option<Arc<crate::oidc::Oidc>>,
    /// This process's id in `x-tollgate-hop` (loop detection), random per start; also its
    /// lease holder name for budgets and rate limits.
    hop_id: String,
    /// `hop_id` as the header value of a request that arrived without hops (the usual case:
    /// shared, not formatted per request). `None` only if the id were not a valid header value
    /// (it is hex): then each request formats it, as with hops.
    hop_value: Option<axum::http::HeaderValue>,
    limits: crate::limits::Limits,
    /// OpenTelemetry tracing, when an OTLP endpoint is configured.
    tracing: Option<crate::telemetry::Tracing>,
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
    pub transcripts: TranscriptStore,
    pub proxy_client: ProxyClient,
    pub policy: Arc<crate::address_policy::AddressPolicy>,
    /// The identity provider whose JWTs are accepted (`--oidc-issuer`), if any.
    pub oidc: Option<Arc<crate::oidc::Oidc>>,
    pub tracing: Option<crate::telemetry::Tracing>,
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
                transcripts: parts.transcripts,
                settings,
                proxy_client: parts.proxy_client,
                policy: parts.policy,
                oidc: parts.oidc,
                hop_value: axum::http::HeaderValue::from_str(&hop_id).ok(),
                hop_id,
                limits,
                tracing: parts.tracing,
            }),
        }
    }

    pub fn meter(&self) -> &Meter {
        &self.inner.meter
    }

    /// The tracer, when tracing is on (`--otlp-endpoint` or the `OTEL_EXPORTER_OTLP_*` variables).
    pub fn tracing(&self) -> Option<&crate::telemetry::Tracing> {
        self.inner.tracing.as_ref()
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
    /// The transcript store (sealed request/response bodies).
    pub fn transcripts(&self) -> &TranscriptStore {
        &self.inner.transcripts
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// The identity provider whose JWTs are accepted, when `--oidc-issuer` is set.
    pub fn oidc(&self) -> Option<&Arc<crate::oidc::Oidc>> {
        self.inner.oidc.as_ref()
    }

    /// The upstream address policy (`--upstream-allow` / `--upstream-deny`).
    pub fn address_policy(&self) -> &crate::address_policy::AddressPolicy {
        &self.inner.policy
    }

    /// This process's id in the `x-tollgate-hop` header (loop detection).
    pub fn hop_id(&self) -> &str {
        &self.inner.hop_id
    }

    /// [`AppState::hop_id`] as a header value.
    pub fn hop_value(&self) -> Option<&axum::http::HeaderValue> {
        self.inner.hop_value.as_ref()
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
    pub async fn credential<'s>(&self, snap: &'s Snapshot, name: &str) -> Option<std::borrow::Cow<'s, SecretValue>> {
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

    /// Brings the snapshot up to the database's config version. Reloads are serialised so a
    /// slower, older reload can never replace a newer snapshot. When the change log covers
    /// every version since the current snapshot, only the changed resources are re-read
    /// ([`AppState::apply_changes`]: constant work per change, whatever the number of
    /// providers or tokens); otherwise (first load, a replica far behind, a change of a kind
    /// without an incremental update) the whole snapshot is rebuilt.
    pub async fn reload(&self) -> Result<(), StoreError> {
        let _guard = self.inner.reload_lock.lock().await;
        if self.is_ready() {
            let current = self.snapshot();
            let target = self.inner.store.config_version().await?;
            if target == current.version {
                return Ok(());
            }
            if let Some(changes) = self.inner.store.changes_between(current.version, target).await?
                && let Some(next) = self.apply_changes(&current, target, &changes).await?
            {
                self.inner.snapshot.store(Arc::new(next));
                Metrics::inc(&self.inner.metrics.config_reloads_incremental);
                return Ok(());
            }
        }
        self.reload_full_locked().await
    }

    /// Rebuilds the whole snapshot from the database (at start, and when the change log
    /// cannot say what changed).
    pub async fn reload_full(&self) -> Result<(), StoreError> {
        let _guard = self.inner.reload_lock.lock().await;
        self.reload_full_locked().await
    }

    async fn reload_full_locked(&self) -> Result<(), StoreError> {
        let metrics = &self.inner.metrics;
        let version = self.inner.store.config_version().await?;
        let mut providers = SharedMap::default();
        let mut credentials = SharedMap::default();
        for rec in self.inner.store.all_providers().await? {
            Metrics::inc(&metrics.config_providers_read);
            let spec = provider_spec(&rec)?;
            if self.database_secrets() {
                for (_, secret) in spec.secret_refs() {
                    if !credentials.contains_key(&secret) {
                        self.unseal_into(&mut credentials, &secret).await;
                    }
                }
            }
            providers
                .insert(rec.name.clone(), Arc::new(ProviderEntry::new(spec, rec.created_at_ms, rec.updated_at_ms)));
        }
        let tokens: SharedMap<_, _> =
            self.inner.store.all_tokens().await?.into_iter().map(|t| (t.hash, Arc::new(t))).collect();
        Metrics::add(&metrics.config_tokens_read, tokens.len() as u64);
        let signed_out = Arc::new(self.inner.store.signed_out_sessions(self.now_ms()).await?.into_iter().collect());
        let bindings = self.inner.store.all_secret_bindings().await?.into_iter().collect();
        let limits = Arc::new(crate::snapshot::Limits::load(&self.inner.store).await?);
        self.inner.snapshot.store(Arc::new(Snapshot {
            version,
            providers,
            tokens,
            credentials,
            bindings,
            signed_out,
            limits,
        }));
        Metrics::inc(&metrics.config_reloads_full);
        self.inner.ready.store(true, Ordering::Release);
        Ok(())
    }

    /// Provider secrets are cached in the snapshot only for the database backend (env and dir
    /// secrets are read where they live).
    fn database_secrets(&self) -> bool {
        matches!(self.inner.secrets, SecretSource::Database)
    }

    /// Unseals `secret` into `credentials` (absent: left out; unreadable: logged, left out).
    async fn unseal_into(&self, credentials: &mut SharedMap<String, SecretValue>, secret: &str) {
        Metrics::inc(&self.inner.metrics.config_secrets_unsealed);
        match self.inner.store.secret_value(secret).await {
            Ok(Some(v)) => {
                credentials.insert(secret.to_string(), v);
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(secret = %secret, error = %e, "cannot unseal a provider secret"),
        }
    }

    /// The snapshot at version `target`: `current` with each changed resource re-read (a
    /// provider and the secrets it newly references, a secret's value and binding, a token, the
    /// signed-out sessions). `None` when a change names every resource of a kind (a master
    /// key rotation): the caller rebuilds the whole snapshot instead. The maps are shared
    /// with `current` shard by shard ([`SharedMap`]): only the shards a change touches are
    /// copied, and the database work depends only on the changes.
    async fn apply_changes(
        &self,
        current: &Snapshot,
        target: i64,
        changes: &[Change],
    ) -> Result<Option<Snapshot>, StoreError> {
        if changes.iter().any(Change::is_all) {
            return Ok(None);
        }
        let mut next = Snapshot {
            version: target,
            providers: current.providers.clone(),
            tokens: current.tokens.clone(),
            credentials: current.credentials.clone(),
            bindings: current.bindings.clone(),
            signed_out: current.signed_out.clone(),
            limits: current.limits.clone(),
        };
        for change in changes {
            self.apply_change(&mut next, change).await?;
        }
        Ok(Some(next))
    }

    /// Re-reads one changed resource into `next`. A new resource kind adds its arm here (see
    /// `tollgate_store::ConfigKind`).
    async fn apply_change(&self, next: &mut Snapshot, change: &Change) -> Result<(), StoreError> {
        let store = &self.inner.store;
        let metrics = &self.inner.metrics;
        let name = change.name.as_str();
        match change.kind {
            ConfigKind::Provider => {
                Metrics::inc(&metrics.config_providers_read);
                let old = match store.get_provider(name).await? {
                    Some(rec) => {
                        let spec = provider_spec(&rec)?;
                        if self.database_secrets() {
                            for (_, secret) in spec.secret_refs() {
                                if !next.credentials.contains_key(&secret) {
                                    self.unseal_into(&mut next.credentials, &secret).await;
                                }
                            }
                        }
                        let entry = ProviderEntry::new(spec, rec.created_at_ms, rec.updated_at_ms);
                        next.providers.insert(rec.name, Arc::new(entry))
                    }
                    None => next.providers.remove(name),
                };
                // Values cached only for this provider's former references leave the cache.
                let kept: Vec<String> = next
                    .providers
                    .get(name)
                    .map(|p| p.spec.secret_refs().into_iter().map(|(_, s)| s).collect())
                    .unwrap_or_default();
                for (_, secret) in old.map(|p| p.spec.secret_refs()).unwrap_or_default() {
                    if !kept.contains(&secret)
                        && next.credentials.contains_key(&secret)
                        && store.providers_referencing(&secret).await?.is_empty()
                    {
                        next.credentials.remove(&secret);
                    }
                }
            }
            ConfigKind::Secret => {
                let hosts = store.secret_bindings(name).await?;
                if hosts.is_empty() {
                    next.bindings.remove(name);
                } else {
                    next.bindings.insert(name.to_string(), hosts);
                }
                if self.database_secrets() {
                    let referenced =
                        next.credentials.remove(name).is_some() || !store.providers_referencing(name).await?.is_empty();
                    if referenced {
                        self.unseal_into(&mut next.credentials, name).await;
                    }
                }
            }
            ConfigKind::Token => {
                Metrics::inc(&metrics.config_tokens_read);
                match store.get_token(name).await? {
                    Some(t) if t.revoked_at_ms.is_none() => {
                        next.tokens.insert(t.hash, Arc::new(t));
                    }
                    Some(t) => {
                        next.tokens.remove(&t.hash);
                    }
                    None => next.tokens.retain(|_, t| &*t.id != name),
                }
            }
            ConfigKind::Limit => {
                // budgets and rate limits are few: any change re-reads them all
                next.limits = Arc::new(crate::snapshot::Limits::load(store).await?);
            }
            ConfigKind::Session => {
                next.signed_out = Arc::new(store.signed_out_sessions(self.now_ms()).await?.into_iter().collect());
            }
        }
        Ok(())
    }

    /// [`AppState::reload`], logging a failure (the previous snapshot keeps serving).
    async fn reload_logged(&self) {
        if let Err(e) = self.reload().await {
            tracing::warn!(error = %e, "config reload failed; serving the previous snapshot");
        }
    }

    /// Follows config notifications (PostgreSQL `LISTEN`): each one reloads, so a change made
    /// on another replica is served here within a round trip. After connecting, and after
    /// every reconnection, it reloads once to catch up on what was sent while it was not
    /// listening; a failed connection is retried with a backoff (100 ms doubling to 5 s). The
    /// config poll stays on as the fallback. Returns at once on SQLite.
    pub async fn listen_config(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        const FIRST_RETRY: Duration = Duration::from_millis(100);
        const MAX_RETRY: Duration = Duration::from_secs(5);
        let metrics = self.inner.metrics.clone();
        let mut retry = FIRST_RETRY;
        loop {
            let connected = tokio::select! {
                r = self.inner.store.listen_config() => r,
                _ = shutdown.changed() => return,
            };
            let mut listener = match connected {
                Ok(Some(l)) => l,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %e, retry_ms = retry.as_millis() as u64, "config listener cannot connect");
                    tokio::select! {
                        _ = tokio::time::sleep(retry) => {}
                        _ = shutdown.changed() => return,
                    }
                    retry = (retry * 2).min(MAX_RETRY);
                    continue;
                }
            };
            retry = FIRST_RETRY;
            Metrics::inc(&metrics.config_listener_connects);
            tracing::debug!("listening for config changes");
            self.reload_logged().await;
            loop {
                let notice = tokio::select! {
                    n = listener.next() => n,
                    _ = shutdown.changed() => return,
                };
                match notice {
                    Ok(Notice::Changed(version)) => {
                        let more = listener.drain();
                        Metrics::add(&metrics.config_notifications, 1 + more as u64);
                        if more > 0 || version == 0 || version > self.snapshot().version {
                            self.reload_logged().await;
                        }
                    }
                    Ok(Notice::Reconnected) => {
                        Metrics::inc(&metrics.config_listener_connects);
                        tracing::info!("config listener reconnected; catching up");
                        self.reload_logged().await;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "config listener connection failed; reconnecting");
                        break;
                    }
                }
            }
        }
    }

    /// Reloads whenever the database's config version moves (changes by other replicas): the
    /// only way they arrive on SQLite, the fallback to [`AppState::listen_config`] on PostgreSQL.
    pub async fn poll_config(self, interval: Duration, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            match self.inner.store.config_version().await {
                Ok(v) if v != self.snapshot().version => self.reload_logged().await,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "config version poll failed"),
            }
        }
    }
}
