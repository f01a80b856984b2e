//! AWS credentials and SigV4 signing for Bedrock providers.
//!
//! Three credential modes (ARCHITECTURE.md, Decisions: The proxy path — the request is
//! SigV4-signed for Bedrock):
//! - **static keys**: `access_key_id_ref` + `secret_access_key_ref`, read per request from the
//!   snapshot's secret cache (the database backend) or the env/dir backend — never the
//!   database on the request path;
//! - **AssumeRole**: `aws-config`'s `AssumeRoleProvider` (STS `AssumeRole` with the role ARN,
//!   optional external id, session name default `tollgate`), its base identity being the
//!   default chain;
//! - **default chain**: `aws-config`'s `DefaultCredentialsChain` (environment, shared
//!   config/credentials files with profiles, SSO, web identity / IRSA, ECS/EKS container
//!   credentials, EC2 instance metadata), honouring the standard `AWS_*` variables.
//!
//! The two dynamic modes are cached per provider configuration in [`AwsCredentials`]:
//! readers take the current credentials lock-free while they are fresh; when they come within
//! the refresh margin of their expiry (five minutes, or half their lifetime if that is
//! shorter) one caller refreshes under a per-entry lock while the others wait for its result,
//! so concurrent requests never stampede STS. A failed refresh keeps serving credentials
//! that have not yet expired.
//!
//! Signing goes through [`tollgate_protocol::sigv4`] over the exact bytes sent. This module does
//! not import the application state: callers pass a [`SecretLookup`] (the secret source, the
//! store and, on the request path, the snapshot whose secret cache is read).
//!
//! `aws-config` builds its own HTTP client (hyper + rustls) for STS, SSO and the metadata
//! endpoints: the one exception to "only `upstream.rs` builds HTTP clients". The STS endpoint
//! can be overridden (`--aws-sts-endpoint`); the metadata endpoints follow the standard
//! `AWS_EC2_METADATA_SERVICE_ENDPOINT` / `AWS_CONTAINER_CREDENTIALS_FULL_URI` variables.

use crate::secrets::SecretSource;
use crate::snapshot::Snapshot;
use arc_swap::ArcSwapOption;
use aws_config::BehaviorVersion;
use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::sts::AssumeRoleProvider;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tollgate_core::ProviderSpec;
use tollgate_core::provider::BedrockCredentialMode;
use tollgate_core::provider::{BedrockConfig, DEFAULT_SESSION_NAME};
use tollgate_protocol::sigv4::{self, AwsCredentials as Creds};
use tollgate_store::{SecretValue, Store};

/// The SigV4 service name of Bedrock (runtime and control plane).
pub const SERVICE: &str = "bedrock";
/// Longest time credentials without an expiry (env, profile files) are reused before the
/// chain is asked again.
const NO_EXPIRY_REUSE: Duration = Duration::from_secs(15 * 60);
/// Refresh this long before expiry (or at half the lifetime, if shorter).
const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// Why no credentials could be had. Messages name secrets and modes, never values.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error("provider \"{provider}\" is not a Bedrock provider")]
    NotBedrock { provider: String },
    #[error("provider \"{provider}\" has no usable upstream credential (secret \"{secret}\")")]
    MissingSecret { provider: String, secret: String },
    #[error("provider \"{provider}\": AWS credentials ({mode}) could not be obtained: {reason}")]
    Provider { provider: String, mode: &'static str, reason: String },
    #[error("provider \"{provider}\": the Bedrock request could not be signed: {reason}")]
    Signing { provider: String, reason: String },
}

/// Where static key secrets are read from: what the caller passes in, so this module needs
/// nothing of the application state.
#[derive(Debug, Clone, Copy)]
pub struct SecretLookup<'a> {
    pub source: &'a SecretSource,
    pub store: &'a Store,
    /// The request path: the snapshot's cache (database backend) or env/dir. `None` on the
    /// admin path, for a provider not saved yet: the secret backend itself.
    pub snapshot: Option<&'a Snapshot>,
}

impl SecretLookup<'_> {
    async fn value(&self, name: &str) -> Option<SecretValue> {
        match self.snapshot {
            Some(snap) => self.source.credential(self.store, snap, name).await.map(std::borrow::Cow::into_owned),
            None => self.source.value(self.store, name).await.ok().flatten(),
        }
    }
}

/// The request line and body of an outgoing request to sign.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    pub method: &'a str,
    /// The full URL exactly as it will be sent.
    pub url: &'a str,
    pub body: &'a [u8],
}

/// The process-wide cache of dynamic credentials, keyed by provider configuration.
#[derive(Debug)]
pub struct AwsCredentials {
    sts_endpoint: Option<String>,
    /// Decides when cached credentials are due for a refresh (tests move it).
    clock: crate::time::Clock,
    entries: Mutex<HashMap<String, Arc<Entry>>>,
}

#[derive(Debug)]
struct Cached {
    creds: Creds,
    expires_at: Option<SystemTime>,
    obtained_at: SystemTime,
}

impl Cached {
    /// Usable without a refresh at `now`.
    fn fresh(&self, now: SystemTime) -> bool {
        match self.expires_at {
            None => now < self.obtained_at + NO_EXPIRY_REUSE,
            Some(exp) => {
                let lifetime = exp.duration_since(self.obtained_at).unwrap_or_default();
                now + REFRESH_MARGIN.min(lifetime / 2) < exp
            }
        }
    }

    /// Not yet expired (may still be used when a refresh fails).
    fn valid(&self, now: SystemTime) -> bool {
        self.expires_at.is_none_or(|exp| now < exp)
    }
}

/// How an [`Entry`] builds its provider.
#[derive(Debug, Clone)]
enum Source {
    DefaultChain { region: String },
    AssumeRole { region: String, role_arn: String, external_id: Option<String>, session_name: String },
}

/// One cached credential source.
#[derive(Debug)]
struct Entry {
    source: Source,
    provider: tokio::sync::OnceCell<SharedCredentialsProvider>,
    current: ArcSwapOption<Cached>,
    refresh: tokio::sync::Mutex<()>,
}

impl Entry {
    fn new(source: Source) -> Entry {
        Entry {
            source,
            provider: tokio::sync::OnceCell::new(),
            current: ArcSwapOption::empty(),
            refresh: tokio::sync::Mutex::new(()),
        }
    }

    #[cfg(test)]
    fn with_provider(provider: SharedCredentialsProvider) -> Entry {
        let e = Entry::new(Source::DefaultChain { region: "us-east-1".into() });
        let _ = e.provider.set(provider);
        e
    }

    fn mode(&self) -> &'static str {
        match self.source {
            Source::DefaultChain { .. } => "default chain",
            Source::AssumeRole { .. } => "assume role",
        }
    }

    async fn provider(&self, sts_endpoint: Option<&str>) -> &SharedCredentialsProvider {
        self.provider
            .get_or_init(|| async {
                match &self.source {
                    Source::DefaultChain { region } => SharedCredentialsProvider::new(default_chain(region).await),
                    Source::AssumeRole { region, role_arn, external_id, session_name } => {
                        let base = default_chain(region).await;
                        let mut loader = aws_config::defaults(BehaviorVersion::latest())
                            .region(aws_config::Region::new(region.clone()))
                            .credentials_provider(base);
                        if let Some(ep) = sts_endpoint {
                            loader = loader.endpoint_url(ep);
                        }
                        let conf = loader.load().await;
                        let mut b = AssumeRoleProvider::builder(role_arn.clone())
                            .session_name(session_name.clone())
                            .region(aws_config::Region::new(region.clone()))
                            .configure(&conf);
                        if let Some(x) = external_id {
                            b = b.external_id(x.clone());
                        }
                        SharedCredentialsProvider::new(b.build().await)
                    }
                }
            })
            .await
    }

    /// Fresh credentials at `now`: the cached ones, or one refresh shared by all waiters.
    async fn get(&self, now: SystemTime, sts_endpoint: Option<&str>) -> Result<Creds, String> {
        if let Some(c) = self.current.load_full().filter(|c| c.fresh(now)) {
            return Ok(c.creds.clone());
        }
        let _refreshing = self.refresh.lock().await;
        // Someone else may have refreshed while this caller waited.
        let current = self.current.load_full();
        if let Some(c) = current.as_ref().filter(|c| c.fresh(now)) {
            return Ok(c.creds.clone());
        }
        let provider = self.provider(sts_endpoint).await;
        match provider.provide_credentials().await {
            Ok(c) => {
                let creds = Creds {
                    access_key_id: c.access_key_id().to_string(),
                    secret_access_key: c.secret_access_key().to_string(),
                    session_token: c.session_token().map(str::to_string),
                };
                self.current.store(Some(Arc::new(Cached {
                    creds: creds.clone(),
                    expires_at: c.expiry(),
                    obtained_at: now,
                })));
                Ok(creds)
            }
            Err(e) => {
                let reason = aws_error_text(&e);
                match current.filter(|c| c.valid(now)) {
                    Some(old) => {
                        tracing::warn!(mode = self.mode(), error = %reason, "AWS credential refresh failed; using the current ones until they expire");
                        Ok(old.creds.clone())
                    }
                    None => Err(reason),
                }
            }
        }
    }
}

/// The error and its sources, one line (no secrets: aws-config errors carry none).
fn aws_error_text(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

async fn default_chain(region: &str) -> DefaultCredentialsChain {
    DefaultCredentialsChain::builder().region(aws_config::Region::new(region.to_string())).build().await
}

fn config(spec: &ProviderSpec) -> Option<&BedrockConfig> {
    spec.bedrock_config.as_ref()
}

/// The region a Bedrock provider signs for.
pub fn region(spec: &ProviderSpec) -> &str {
    config(spec).and_then(|c| c.region.as_deref()).unwrap_or("us-east-1")
}

impl AwsCredentials {
    pub fn new(sts_endpoint: Option<String>, clock: crate::time::Clock) -> AwsCredentials {
        AwsCredentials { sts_endpoint, clock, entries: Mutex::new(HashMap::new()) }
    }

    fn entry(&self, key: String, source: impl FnOnce() -> Source) -> Arc<Entry> {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(map.entry(key).or_insert_with(|| Arc::new(Entry::new(source()))))
    }

    /// The credentials to sign a request of provider `spec` with.
    pub async fn credentials(&self, secrets: SecretLookup<'_>, spec: &ProviderSpec) -> Result<Creds, AwsError> {
        let name = spec.name.as_str();
        let (Some(cfg), Some(mode)) = (config(spec), spec.bedrock_credential_mode()) else {
            return Err(AwsError::NotBedrock { provider: name.to_string() });
        };
        let region = region(spec).to_string();
        match mode {
            BedrockCredentialMode::StaticKeys => {
                let refs = cfg.static_credentials.as_ref();
                let ak_ref = refs.and_then(|s| s.access_key_id_ref.as_deref()).unwrap_or_default();
                let sk_ref = refs.and_then(|s| s.secret_access_key_ref.as_deref()).unwrap_or_default();
                let ak = secret(secrets, name, ak_ref).await?;
                let sk = secret(secrets, name, sk_ref).await?;
                Ok(Creds {
                    access_key_id: ak.expose().trim().to_string(),
                    secret_access_key: sk.expose().trim().to_string(),
                    session_token: None,
                })
            }
            BedrockCredentialMode::AssumeRole => {
                let a = cfg.assume_role.clone().unwrap_or_default();
                let role_arn = a.role_arn.unwrap_or_default();
                let session_name = a.session_name.unwrap_or_else(|| DEFAULT_SESSION_NAME.to_string());
                let key = format!("assume-role\n{name}\n{region}\n{role_arn}\n{:?}\n{session_name}", a.external_id);
                let entry = self.entry(key, || Source::AssumeRole {
                    region: region.clone(),
                    role_arn,
                    external_id: a.external_id,
                    session_name,
                });
                self.fetch(&entry, name).await
            }
            BedrockCredentialMode::DefaultChain => {
                let entry =
                    self.entry(format!("default-chain\n{region}"), || Source::DefaultChain { region: region.clone() });
                self.fetch(&entry, name).await
            }
        }
    }

    async fn fetch(&self, entry: &Entry, provider: &str) -> Result<Creds, AwsError> {
        entry.get(self.clock.now_system(), self.sts_endpoint.as_deref()).await.map_err(|reason| AwsError::Provider {
            provider: provider.to_string(),
            mode: entry.mode(),
            reason,
        })
    }

    /// Signs a request to `url` for provider `spec`: adds `authorization`, `x-amz-date` and
    /// (temporary credentials) `x-amz-security-token` to `headers`, over exactly `headers`
    /// and `body` as they will be sent.
    pub async fn sign(
        &self,
        secrets: SecretLookup<'_>,
        spec: &ProviderSpec,
        out: Outgoing<'_>,
        headers: &mut HeaderMap,
    ) -> Result<(), AwsError> {
        let Outgoing { method, url, body } = out;
        let creds = self.credentials(secrets, spec).await?;
        let pairs: Vec<(&str, &str)> =
            headers.iter().filter_map(|(n, v)| v.to_str().ok().map(|v| (n.as_str(), v))).collect();
        let req = sigv4::Request { method, url, headers: &pairs, body };
        // The signature's time is checked by AWS against its own clock: the real one, not the
        // gateway's (which only tests move).
        let added = sigv4::sign_request(&req, &creds, region(spec), SERVICE, SystemTime::now())
            .map_err(|e| AwsError::Signing { provider: spec.name.clone(), reason: e.to_string() })?;
        for (name, value) in added {
            let Ok(mut v) = HeaderValue::from_str(&value) else {
                // Never the value: it holds the access key id (or the session token).
                return Err(AwsError::Signing {
                    provider: spec.name.clone(),
                    reason: format!("the {name} header it produced is not a valid header value"),
                });
            };
            v.set_sensitive(name != "x-amz-date");
            headers.insert(HeaderName::from_static(name), v);
        }
        Ok(())
    }
}

async fn secret(lookup: SecretLookup<'_>, provider: &str, name: &str) -> Result<SecretValue, AwsError> {
    lookup
        .value(name)
        .await
        .ok_or_else(|| AwsError::MissingSecret { provider: provider.to_string(), secret: name.to_string() })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use aws_credential_types::Credentials;
    use aws_credential_types::provider::future;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A provider that counts calls, takes a while, and issues credentials expiring `ttl`
    /// after a fixed start.
    #[derive(Debug)]
    struct Counting {
        calls: Arc<AtomicUsize>,
        ttl: Option<Duration>,
        fail_after: usize,
    }

    const T0: u64 = 1_750_000_000;

    impl ProvideCredentials for Counting {
        fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            future::ProvideCredentials::new(async move {
                let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::time::sleep(Duration::from_millis(30)).await;
                if n > self.fail_after {
                    return Err(aws_credential_types::provider::error::CredentialsError::not_loaded("sts is down"));
                }
                let expiry = self.ttl.map(|t| SystemTime::UNIX_EPOCH + Duration::from_secs(T0) + t * n as u32);
                Ok(Credentials::new(format!("ASIA{n}"), "secret", Some(format!("token{n}")), expiry, "test"))
            })
        }
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(T0 + secs)
    }

    fn entry(ttl: Option<Duration>, fail_after: usize) -> (Arc<Entry>, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let p = Counting { calls: Arc::clone(&calls), ttl, fail_after };
        (Arc::new(Entry::with_provider(SharedCredentialsProvider::new(p))), calls)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_share_one_refresh() {
        let (e, calls) = entry(Some(Duration::from_secs(3600)), usize::MAX);
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let e = Arc::clone(&e);
            tasks.push(tokio::spawn(async move { e.get(at(0), None).await }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap().access_key_id, "ASIA1");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn refreshes_within_the_margin_before_expiry() {
        let (e, calls) = entry(Some(Duration::from_secs(3600)), usize::MAX);
        assert_eq!(e.get(at(0), None).await.unwrap().access_key_id, "ASIA1");
        // 54 minutes in: more than 5 minutes left, still fresh.
        assert_eq!(e.get(at(54 * 60), None).await.unwrap().access_key_id, "ASIA1");
        // 56 minutes in: within the 5-minute margin, refreshed.
        let c = e.get(at(56 * 60), None).await.unwrap();
        assert_eq!((c.access_key_id.as_str(), c.session_token.as_deref()), ("ASIA2", Some("token2")));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn short_lived_credentials_refresh_at_half_life() {
        let (e, calls) = entry(Some(Duration::from_secs(60)), usize::MAX);
        e.get(at(0), None).await.unwrap();
        e.get(at(29), None).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        e.get(at(31), None).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_failed_refresh_keeps_unexpired_credentials_only() {
        let (e, _) = entry(Some(Duration::from_secs(3600)), 1);
        e.get(at(0), None).await.unwrap();
        assert_eq!(e.get(at(58 * 60), None).await.unwrap().access_key_id, "ASIA1", "refresh failed, still valid");
        let err = e.get(at(61 * 60), None).await.unwrap_err();
        assert!(err.contains("sts is down"), "{err}");
    }

    #[tokio::test]
    async fn credentials_without_expiry_are_reread_after_a_while() {
        let (e, calls) = entry(None, usize::MAX);
        e.get(at(0), None).await.unwrap();
        e.get(at(14 * 60), None).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        e.get(at(16 * 60), None).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
