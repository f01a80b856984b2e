//! The in-memory configuration snapshot: providers, active gateway tokens, the cached
//! values of the secrets providers reference and the signed-out console sessions, at one
//! config version. Plain data, built by `AppState::reload` and read lock-free by every
//! request; it depends on nothing else in the server, so the usage writer, the proxy and the console can all use it without importing
//! the application state.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use tollgate_core::ProviderSpec;
use tollgate_core::budget::{BudgetSpec, RateLimitSpec};
use tollgate_store::{LimitResource, SecretValue, Store, StoreError, TokenRecord};

/// A provider as the snapshot holds it.
#[derive(Debug, Clone)]
pub struct ProviderEntry {
    pub spec: ProviderSpec,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// `host[:port]` of the upstream base URL, as secret bindings name hosts: worked out once
    /// per snapshot so the per-request binding check is a map lookup, not a URL parse.
    pub base_host: Option<String>,
}

impl ProviderEntry {
    pub fn new(spec: ProviderSpec, created_at_ms: i64, updated_at_ms: i64) -> ProviderEntry {
        let base_host = crate::binding::host_of(&spec.upstream_base_url());
        ProviderEntry { spec, created_at_ms, updated_at_ms, base_host }
    }
}

/// Immutable view of the configuration at one config version.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub version: i64,
    pub providers: HashMap<String, Arc<ProviderEntry>>,
    /// Active (not revoked) tokens by SHA-256 of the token. Expiry is checked per request.
    pub tokens: HashMap<[u8; 32], Arc<TokenRecord>>,
    /// Values of the database secrets that providers reference, by secret name.
    pub credentials: HashMap<String, SecretValue>,
    /// Each bound secret's hosts (`host[:port]`), by secret name (see `crate::binding`).
    pub bindings: HashMap<String, BTreeSet<String>>,
    /// Console sessions signed out before their expiry (the MAC of each cookie).
    pub signed_out: HashSet<String>,
    /// Budgets and rate limits.
    pub limits: Limits,
}

/// The budgets and rate limits in force (ARCHITECTURE.md, Decisions: Budgets and rate limits).
#[derive(Debug, Default)]
pub struct Limits {
    pub budgets: Vec<Arc<BudgetSpec>>,
    pub rate_limits: Vec<Arc<RateLimitSpec>>,
    /// Stored timestamps (created, updated) by name, for the API and console.
    pub stamps: HashMap<String, (i64, i64)>,
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        self.budgets.is_empty() && self.rate_limits.is_empty()
    }

    /// Every stored budget and rate limit (a row that no longer parses is skipped and logged,
    /// never enforced half-read).
    pub async fn load(store: &Store) -> Result<Limits, StoreError> {
        let mut out = Limits::default();
        for rec in store.all_limit_resources(LimitResource::Budget).await? {
            match serde_json::from_str::<serde_json::Value>(&rec.spec_json)
                .map_err(|e| e.to_string())
                .and_then(|v| BudgetSpec::from_value(v).map_err(|e| e.to_string()))
            {
                Ok(b) => {
                    out.stamps.insert(format!("b/{}", rec.name), (rec.created_at_ms, rec.updated_at_ms));
                    out.budgets.push(Arc::new(b));
                }
                Err(e) => tracing::error!(budget = %rec.name, error = %e, "stored budget is unreadable; not enforced"),
            }
        }
        for rec in store.all_limit_resources(LimitResource::RateLimit).await? {
            match serde_json::from_str::<serde_json::Value>(&rec.spec_json)
                .map_err(|e| e.to_string())
                .and_then(|v| RateLimitSpec::from_value(v).map_err(|e| e.to_string()))
            {
                Ok(r) => {
                    out.stamps.insert(format!("r/{}", rec.name), (rec.created_at_ms, rec.updated_at_ms));
                    out.rate_limits.push(Arc::new(r));
                }
                Err(e) => {
                    tracing::error!(rate_limit = %rec.name, error = %e, "stored rate limit is unreadable; not enforced")
                }
            }
        }
        Ok(out)
    }
}
