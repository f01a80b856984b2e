//! The in-memory configuration snapshot: providers, active gateway tokens, the cached
//! values of the secrets providers reference and the signed-out console sessions, at one
//! config version. Plain data, built by `AppState::reload` and read lock-free by every
//! request; it depends on nothing else in the server, so the usage writer, the proxy and the console can all use it without importing
//! the application state.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use tollgate_core::ProviderSpec;
use tollgate_store::{SecretValue, TokenRecord};

/// A provider as the snapshot holds it.
#[derive(Debug, Clone)]
pub struct ProviderEntry {
    pub spec: ProviderSpec,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// `host[:port]` of the upstream base URL, as secret bindings name hosts: worked out once
    /// per snapshot so the per-request binding check is a map lookup, not a URL parse.
    pub base_host: Option<String>,
    /// Host and port of the upstream base URL (the scheme's port when none is given), for
    /// the `server.address` / `server.port` span attributes; worked out once per snapshot.
    pub server: Option<(String, u16)>,
}

impl ProviderEntry {
    pub fn new(spec: ProviderSpec, created_at_ms: i64, updated_at_ms: i64) -> ProviderEntry {
        let base = spec.upstream_base_url();
        let base_host = crate::binding::host_of(&base);
        let server = url::Url::parse(&base).ok().and_then(|u| {
            Some((u.host_str()?.trim_start_matches('[').trim_end_matches(']').to_string(), u.port_or_known_default()?))
        });
        ProviderEntry { spec, created_at_ms, updated_at_ms, base_host, server }
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
}
