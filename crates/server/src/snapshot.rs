//! The in-memory configuration snapshot: providers, active gateway tokens, the cached
//! values of the secrets providers reference and the signed-out console sessions, at one
//! config version. Plain data, built by `AppState::reload` and read lock-free by every
//! request; it depends on nothing else in the server, so the usage writer, the proxy and the console can all use it without importing
//! the application state.
//!
//! Its maps are [`SharedMap`]s: [`SHARDS`] hash maps, each behind an `Arc`. A new snapshot
//! that changes one provider copies the shard pointers and then only that provider's shard
//! (copy-on-write), so an update costs the same at 10 providers and at 10,000; a lookup is
//! one byte-wise FNV-1a hash of the key to pick the shard, then the shard's own lookup.

use std::borrow::Borrow;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::HeaderValue;

/// How many shards a [`SharedMap`] has.
pub const SHARDS: usize = 256;

/// Picks a key's shard; `str` and `String` must agree.
pub trait ShardKey {
    fn shard(&self) -> usize;
}

impl ShardKey for str {
    /// FNV-1a over the bytes (not a defence against chosen names: a skewed shard only makes
    /// copying it cost what copying the whole map would).
    fn shard(&self) -> usize {
        let mut h: u32 = 0x811c_9dc5;
        for b in self.as_bytes() {
            h = (h ^ u32::from(*b)).wrapping_mul(0x0100_0193);
        }
        h as usize % SHARDS
    }
}

impl ShardKey for String {
    fn shard(&self) -> usize {
        self.as_str().shard()
    }
}

impl ShardKey for [u8; 32] {
    /// Token hashes are SHA-256: their first byte is already uniform.
    fn shard(&self) -> usize {
        usize::from(self[0]) % SHARDS
    }
}

/// A hash map split into [`SHARDS`] copy-on-write shards: `clone` copies `SHARDS` pointers,
/// `insert` / `remove` copy the one shard they change (when another snapshot still shares it).
/// Shards hash with hashbrown's default (foldhash, seeded per process) rather than std's
/// SipHash: each proxied request looks up three of these maps (~180 instructions a lookup
/// with SipHash), and their keys come from the configuration, never inserted by a client.
#[derive(Debug, Clone)]
pub struct SharedMap<K, V> {
    shards: Vec<Arc<hashbrown::HashMap<K, V>>>,
    len: usize,
}

impl<K, V> Default for SharedMap<K, V> {
    fn default() -> Self {
        SharedMap { shards: (0..SHARDS).map(|_| Arc::new(hashbrown::HashMap::new())).collect(), len: 0 }
    }
}

impl<K: Hash + Eq + Clone + ShardKey, V: Clone> SharedMap<K, V> {
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ShardKey + ?Sized,
    {
        self.shards.get(key.shard()).and_then(|s| s.get(key))
    }

    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ShardKey + ?Sized,
    {
        self.get(key).is_some()
    }

    /// Inserts, returning the value it replaced.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let shard = key.shard();
        let old = self.shards.get_mut(shard).and_then(|s| Arc::make_mut(s).insert(key, value));
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ShardKey + ?Sized,
    {
        let shard = self.shards.get_mut(key.shard())?;
        if !shard.contains_key(key) {
            return None; // no copy of a shard that would not change
        }
        let old = Arc::make_mut(shard).remove(key);
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    /// Keeps the entries `keep` accepts (visits, and may copy, every shard).
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &V) -> bool) {
        for shard in &mut self.shards {
            if shard.iter().all(|(k, v)| keep(k, v)) {
                continue;
            }
            Arc::make_mut(shard).retain(|k, v| keep(k, v));
        }
        self.len = self.shards.iter().map(|s| s.len()).sum();
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.shards.iter().flat_map(|s| s.iter())
    }

    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }
}

impl<K: Hash + Eq + Clone + ShardKey, V: Clone> FromIterator<(K, V)> for SharedMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut map = SharedMap::default();
        for (k, v) in iter {
            map.insert(k, v);
        }
        map
    }
}
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
    /// Host and port of the upstream base URL (the scheme's port when none is given), for
    /// the `server.address` / `server.port` span attributes; worked out once per snapshot.
    pub server: Option<(String, u16)>,
    /// The upstream base URL parsed (`None`: it does not parse), for the per-request check
    /// that the request URL stays under it (`proxy::prepare::under_base`).
    pub base_url: Option<url::Url>,
    /// The `Host` header of requests to a plain-HTTP upstream (`host[:port]`, the port only
    /// when not the scheme's default: what the HTTP client would otherwise format for every
    /// request). `None` for `https` upstreams: those may negotiate HTTP/2, where the client
    /// sends `:authority` and no `Host`, and this keeps it that way.
    pub host_header: Option<http::HeaderValue>,
    /// The provider's name as every usage event of it holds it (shared, not a copy per event).
    pub name: Arc<str>,
}

impl ProviderEntry {
    pub fn new(spec: ProviderSpec, created_at_ms: i64, updated_at_ms: i64) -> ProviderEntry {
        let base = spec.upstream_base_url();
        let base_host = crate::binding::host_of(&base);
        let base_url = url::Url::parse(&base).ok();
        let server = base_url.as_ref().and_then(|u| {
            Some((u.host_str()?.trim_start_matches('[').trim_end_matches(']').to_string(), u.port_or_known_default()?))
        });
        let host_header = base_url.as_ref().filter(|u| u.scheme() == "http").and_then(|u| {
            let host = u.host_str()?;
            let value = match u.port() {
                Some(port) => format!("{host}:{port}"),
                None => host.to_string(),
            };
            http::HeaderValue::from_str(&value).ok()
        });
        let name = spec.name.as_str().into();
        ProviderEntry { spec, created_at_ms, updated_at_ms, base_host, server, base_url, host_header, name }
    }
}

/// Immutable view of the configuration at one config version.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub version: i64,
    pub providers: SharedMap<String, Arc<ProviderEntry>>,
    /// Active (not revoked) tokens by SHA-256 of the token. Expiry is checked per request.
    pub tokens: SharedMap<[u8; 32], Arc<TokenRecord>>,
    /// Values of the database secrets that providers reference, by secret name.
    pub credentials: SharedMap<String, SecretValue>,
    /// Each bound secret's hosts (`host[:port]`), by secret name (see `crate::binding`).
    pub bindings: SharedMap<String, BTreeSet<String>>,
    /// Console sessions signed out before their expiry (the MAC of each cookie).
    /// Shared between snapshots until a sign-out changes it (it is re-read whole).
    pub signed_out: Arc<HashSet<String>>,
    /// Budgets and rate limits.
    pub limits: Arc<Limits>,
}

/// The budgets and rate limits in force (ARCHITECTURE.md, Decisions: Budgets and rate limits).
#[derive(Debug, Default)]
pub struct Limits {
    pub budgets: Vec<Budget>,
    pub rate_limits: Vec<Arc<RateLimit>>,
    /// Stored timestamps (created, updated) by name, for the API and console.
    pub stamps: HashMap<String, (i64, i64)>,
}

/// A budget in force, with its current period remembered (every call under it needs the
/// period's bounds, and a monthly period is a calendar computation).
#[derive(Debug)]
pub struct Budget {
    pub spec: BudgetSpec,
    /// `[start, end)` of the period last computed, in days since the epoch, in one word (start
    /// in the high half, length in days in the low half; 0: none yet), so no reader sees half
    /// of an update.
    period: AtomicU64,
}

impl Budget {
    pub fn new(spec: BudgetSpec) -> Budget {
        Budget { spec, period: AtomicU64::new(0) }
    }

    /// `[start, end)` in epoch milliseconds of the budget's period holding `now_ms`
    /// (`Period::bounds`, remembered until `now_ms` leaves it).
    pub fn bounds(&self, now_ms: i64) -> (i64, i64) {
        use tollgate_store::DAY_MS;
        let packed = self.period.load(Ordering::Relaxed);
        let days = i64::from(packed as u32);
        let start = i64::from((packed >> 32) as u32 as i32) * DAY_MS;
        let end = start + days * DAY_MS;
        if days > 0 && start <= now_ms && now_ms < end {
            return (start, end);
        }
        let (start, end) = self.spec.period.bounds(now_ms);
        if let (Ok(first), Ok(days)) = (i32::try_from(start / DAY_MS), u32::try_from((end - start) / DAY_MS)) {
            self.period.store((u64::from(first as u32) << 32) | u64::from(days), Ordering::Relaxed);
        }
        (start, end)
    }
}

impl AsRef<BudgetSpec> for Budget {
    fn as_ref(&self) -> &BudgetSpec {
        &self.spec
    }
}

impl std::ops::Deref for Budget {
    type Target = BudgetSpec;
    fn deref(&self) -> &BudgetSpec {
        &self.spec
    }
}

/// A rate limit in force, with the values of its `x-ratelimit-limit-*` headers formatted once
/// (every response under it carries them).
#[derive(Debug)]
pub struct RateLimit {
    pub spec: RateLimitSpec,
    /// `x-ratelimit-limit-requests`: `requests_per_minute`, when set.
    pub requests_value: Option<HeaderValue>,
    /// `x-ratelimit-limit-tokens`: `tokens_per_minute`, when set.
    pub tokens_value: Option<HeaderValue>,
}

impl RateLimit {
    pub fn new(spec: RateLimitSpec) -> RateLimit {
        let value = |v: Option<i64>| v.map(count_value);
        RateLimit { requests_value: value(spec.requests_per_minute), tokens_value: value(spec.tokens_per_minute), spec }
    }
}

/// A count as a header value, in one allocation (`HeaderValue::from(i64)` makes two: it
/// formats into a growable buffer, then shrinks it into its own). Cutting values from a shared
/// per-thread chunk instead was measured no cheaper: the thread-local access costs what the
/// allocation saved.
pub fn count_value(n: i64) -> HeaderValue {
    let mut digits = itoa::Buffer::new();
    HeaderValue::from_maybe_shared(bytes::Bytes::copy_from_slice(digits.format(n).as_bytes()))
        .unwrap_or_else(|_| HeaderValue::from_static("0"))
}

impl std::ops::Deref for RateLimit {
    type Target = RateLimitSpec;
    fn deref(&self) -> &RateLimitSpec {
        &self.spec
    }
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
                    out.budgets.push(Budget::new(b));
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
                    out.rate_limits.push(Arc::new(RateLimit::new(r)));
                }
                Err(e) => {
                    tracing::error!(rate_limit = %rec.name, error = %e, "stored rate limit is unreadable; not enforced")
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_remembers_its_period_until_the_clock_leaves_it() {
        use tollgate_core::budget::Period;
        let ms = |y, m, d| {
            let day = chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap_or_else(|| panic!("{y}-{m}-{d}"));
            day.and_time(chrono::NaiveTime::MIN).and_utc().timestamp_millis()
        };
        for period in [Period::Daily, Period::Weekly, Period::Monthly] {
            let b = Budget::new(BudgetSpec { period, ..BudgetSpec::default() });
            // Across two month ends (one into a leap February), a week, back in time and
            // before the epoch: always what the period itself says.
            let mut at = vec![ms(2028, 1, 31) + 5, ms(2028, 1, 31) + 86_399_999, ms(2028, 2, 1), ms(2028, 2, 29) + 1];
            at.extend([ms(2028, 3, 1) - 1, ms(2028, 3, 1), ms(2027, 12, 31), ms(1969, 12, 31) + 7, ms(2028, 3, 6)]);
            for now in at {
                assert_eq!(b.bounds(now), period.bounds(now), "{period:?} at {now}");
                assert_eq!(b.bounds(now), period.bounds(now), "{period:?} at {now}, remembered");
            }
        }
    }

    #[test]
    fn an_update_copies_only_the_shard_it_changes() {
        let base: SharedMap<String, u32> = (0..10_000).map(|i| (format!("provider-{i}"), i)).collect();
        assert_eq!(base.len(), 10_000);
        let mut next = base.clone();
        assert!(next.shards.iter().zip(&base.shards).all(|(a, b)| Arc::ptr_eq(a, b)), "a clone shares every shard");
        assert_eq!(next.insert("provider-new".to_string(), 1), None);
        assert_eq!(next.insert("provider-7".to_string(), 70), Some(7));
        assert_eq!(next.remove("provider-8"), Some(8));
        assert_eq!(next.remove("absent"), None);
        let copied = next.shards.iter().zip(&base.shards).filter(|(a, b)| !Arc::ptr_eq(a, b)).count();
        assert!((1..=3).contains(&copied), "three changes copied {copied} shards");
        assert_eq!((next.len(), base.len()), (10_000, 10_000));
        assert_eq!((next.get("provider-7"), base.get("provider-7")), (Some(&70), Some(&7)));
        assert!(!next.contains_key("provider-8") && base.contains_key("provider-8"));
        assert_eq!(next.keys().count(), next.len());
    }

    #[test]
    fn a_plain_http_upstreams_host_header_names_a_port_only_when_it_is_not_the_schemes() {
        let host = |base: &str| {
            let spec: ProviderSpec = serde_json::from_value(serde_json::json!({
                "name": "p", "display_name": "P", "type": "openai_compatible",
                "openai_compatible_config": {"base_url": base}
            }))
            .unwrap_or_else(|e| panic!("{e}"));
            ProviderEntry::new(spec, 0, 0).host_header.and_then(|h| h.to_str().ok().map(str::to_string))
        };
        assert_eq!(host("http://api.example.com/v1"), Some("api.example.com".to_string()));
        assert_eq!(host("http://api.example.com:80/v1"), Some("api.example.com".to_string()));
        assert_eq!(host("http://127.0.0.1:8080"), Some("127.0.0.1:8080".to_string()));
        assert_eq!(host("https://api.example.com/v1"), None, "https may be HTTP/2: the client's own");
        assert_eq!(host("http://[::1]:9000/x"), Some("[::1]:9000".to_string()));
    }

    #[test]
    fn str_and_string_keys_pick_the_same_shard() {
        for name in ["", "a", "prod-openai", "ünïcode"] {
            assert_eq!(name.shard(), name.to_string().shard());
        }
        let mut m: SharedMap<String, u8> = SharedMap::default();
        m.insert("x".to_string(), 1);
        m.retain(|k, _| k != "x");
        assert!(m.is_empty());
    }
}
