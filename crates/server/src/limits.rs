//! The budget and rate-limit engine (ARCHITECTURE.md, Decisions: Budgets and rate limits):
//! per-replica windows holding a lease taken from the database, reservations against it, and
//! the [`Charge`] a request owns until it settles.
//!
//! A [`Window`] is one (kind, resource, pool key, period start) counter on this replica:
//! `lease` (what the database granted this replica), `consumed` (settled since the last sync),
//! `reserved` (calls in flight), plus what the last sync saw (`spent` of every replica as
//! flushed, `others`' leases). Admission is `consumed + reserved + amount <= lease` under a
//! std mutex held for a few instructions. When the lease is too small, one caller per window
//! (an async mutex) runs [`Store::sync_limit_window`]: it flushes `consumed`, keeps the lease
//! and grows it by a slice, or refuses when what is left cannot cover the call. A background
//! task ([`Limits::run`], every [`SYNC_INTERVAL`]) flushes every window with something to
//! flush, refreshes lease expiries, hands back the unused part of idle leases and forgets
//! windows whose period is over; [`Limits::sync_all`] does the same at once (shutdown, tests).
//!
//! During a sync the local lease is pinned to what the sync keeps, so a reservation made while
//! the transaction runs can never use a part being handed back.
//!
//! Invariants: a request never waits on the database unless its window's lease is too small;
//! every reservation is released exactly once (a [`Charge`] settles on the `Recorder`'s emit or
//! releases on `Drop`); the database never sees `spent + leases > limit` from this replica
//! except through calls whose real cost passed their estimate.

use crate::metrics::Metrics;
use crate::snapshot::ProviderEntry;
use crate::time::Clock;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tollgate_core::{Catalog, ProviderType, Usage};
use tollgate_store::{SpendingFilter, Store, StoreError, UsageStore, WindowKey, WindowSync};

/// How often leases are synced (spend flushed, expiries refreshed, idle leases handed back).
pub const SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// How long a lease stays valid in the database without a sync.
const LEASE_TTL_MS: i64 = 30_000;
/// How long this replica trusts its own lease without a sync (shorter than [`LEASE_TTL_MS`],
/// so it never uses a lease the database already considers expired).
const LOCAL_TTL: Duration = Duration::from_secs(20);
/// Windows not written for this long are deleted from the database by the pruning sync.
const WINDOW_KEEP_MS: i64 = 40 * tollgate_store::DAY_MS;

/// What a window counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Microcents of a budget.
    Budget,
    /// Requests per minute.
    Requests,
    /// Tokens per minute.
    Tokens,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Budget => "budget",
            Kind::Requests => "requests",
            Kind::Tokens => "tokens",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    kind: Kind,
    name: String,
    pool: String,
    start_ms: i64,
}

/// A [`Key`] borrowed from a [`Want`]: the window map is searched with it, so finding an
/// existing window allocates nothing. Same fields in the same order as `Key`, so both hash
/// alike (`String` hashes as `str`).
#[derive(Hash)]
struct KeyRef<'a> {
    kind: Kind,
    name: &'a str,
    pool: &'a str,
    start_ms: i64,
}

impl hashbrown::Equivalent<Key> for KeyRef<'_> {
    fn equivalent(&self, k: &Key) -> bool {
        self.kind == k.kind && self.start_ms == k.start_ms && self.name == k.name && self.pool == k.pool
    }
}

/// Where a new budget window's spend so far comes from: the usage rollups of its period.
#[derive(Debug, Clone, Default)]
pub struct SpendSource {
    pub agent: Option<String>,
    pub user: Option<String>,
    /// Empty: every provider.
    pub providers: Vec<String>,
}

/// A [`SpendSource`] borrowed from the snapshot and the call: made owned only when a window is
/// first created on this replica.
#[derive(Debug, Clone, Copy)]
pub struct SourceRef<'a> {
    pub agent: Option<&'a str>,
    pub user: Option<&'a str>,
    pub providers: &'a [String],
}

impl SpendSource {
    fn as_ref(&self) -> SourceRef<'_> {
        SourceRef { agent: self.agent.as_deref(), user: self.user.as_deref(), providers: &self.providers }
    }
}

/// What the usage rollups hold of `src`'s spend from `start_ms` to `end_ms` (cut at the end of
/// `now_ms`'s hour: rollups are hourly), in microcents: under the key `""` without `per`, else
/// per user or agent (`per`: `Dimension::User` or `Dimension::Agent`; unattributed usage is
/// left out). A new budget window starts from this ([`Limits`]), and a budget's view shows it
/// for pools with no window yet (`admin::budgets::usage`).
pub async fn rollup_spend(
    usage: &tollgate_store::UsageStore,
    src: SourceRef<'_>,
    start_ms: i64,
    end_ms: i64,
    now_ms: i64,
    per: Option<tollgate_store::Dimension>,
) -> Result<std::collections::HashMap<String, i64>, StoreError> {
    let hour = tollgate_store::HOUR_MS;
    let end = ((now_ms.div_euclid(hour) + 1) * hour).min(end_ms);
    let providers: Vec<Option<String>> =
        if src.providers.is_empty() { vec![None] } else { src.providers.iter().cloned().map(Some).collect() };
    let mut out: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    for provider in providers {
        let f = SpendingFilter {
            start_ms,
            end_ms: end,
            provider,
            agent: src.agent.map(str::to_string),
            user: src.user.map(str::to_string),
            ..SpendingFilter::default()
        };
        for row in usage.spending(&f, per, None).await? {
            if per.is_some() && row.key.is_empty() {
                continue;
            }
            let total = out.entry(row.key).or_default();
            *total = total.saturating_add(row.stats.cost.total);
        }
    }
    Ok(out)
}

impl SourceRef<'_> {
    fn to_owned(self) -> SpendSource {
        SpendSource {
            agent: self.agent.map(str::to_string),
            user: self.user.map(str::to_string),
            providers: self.providers.to_vec(),
        }
    }
}

#[derive(Debug)]
struct Counters {
    limit: i64,
    lease: i64,
    consumed: i64,
    reserved: i64,
    /// `spent` as the last sync saw it (every replica's flushed spend).
    spent: i64,
    /// Other replicas' leases as the last sync saw them.
    others: i64,
    synced: bool,
    valid_until: Instant,
    /// A reservation was made since the last sync (the lease is kept, not handed back).
    active: bool,
}

impl Counters {
    fn try_reserve(&mut self, amount: i64, now: Instant) -> bool {
        if !self.synced || now >= self.valid_until {
            return false;
        }
        if self.consumed.saturating_add(self.reserved).saturating_add(amount) <= self.lease {
            self.reserved += amount;
            self.active = true;
            return true;
        }
        false
    }
}

/// One window on this replica.
#[derive(Debug)]
pub struct Window {
    key: Key,
    end_ms: i64,
    source: Option<SpendSource>,
    c: Mutex<Counters>,
    acquire: tokio::sync::Mutex<()>,
}

impl Window {
    fn counters(&self) -> MutexGuard<'_, Counters> {
        // A poisoned lock only means a panic elsewhere; the counters are still consistent.
        self.c.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn release(&self, reserved: i64, consumed: i64) {
        let mut c = self.counters();
        c.reserved = (c.reserved - reserved).max(0);
        c.consumed = c.consumed.saturating_add(consumed);
    }
}

/// One reservation a call asks for.
#[derive(Debug, Clone)]
pub struct Want<'a> {
    pub kind: Kind,
    pub name: &'a str,
    pub pool: &'a str,
    pub start_ms: i64,
    pub end_ms: i64,
    pub limit: i64,
    pub amount: i64,
    /// Budgets: where a new window's spend so far comes from.
    pub source: Option<SourceRef<'a>>,
}

/// What the engine knows of a window after a reservation (for headers and messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// Spend (or requests, tokens) as this replica knows it: flushed + its own settled.
    pub used: i64,
    /// What is left for everyone, as this replica knows it (others' leases counted as used).
    pub remaining: i64,
    pub limit: i64,
    pub end_ms: i64,
}

/// What each want's window showed, in the wants' order (inline for the usual few).
pub type SeenList = smallvec::SmallVec<[Option<Seen>; 4]>;

/// Why a call was not admitted.
#[derive(Debug)]
pub enum Refused {
    /// The `index`-th want would pass its limit.
    Over { index: usize, seen: Seen },
    /// The window state could not be read or written (database) under fail-closed.
    Unavailable(StoreError),
}

/// Reservations a call holds; settled by [`Charge::settle`] (from the `Recorder`'s emit), or
/// released unspent on `Drop`.
#[derive(Debug)]
pub struct Charge {
    /// Inline for the usual few windows: a call's reservations allocate nothing.
    held: smallvec::SmallVec<[(Arc<Window>, i64); 4]>,
    pricing: Option<Pricing>,
}

/// What settling needs to price the call like its usage event.
#[derive(Debug)]
struct Pricing {
    catalog: Arc<Catalog>,
    provider: Arc<ProviderEntry>,
    provider_type: ProviderType,
    model: Option<String>,
}

impl Charge {
    /// A charge holding nothing.
    pub fn empty() -> Charge {
        Charge { held: smallvec::SmallVec::new(), pricing: None }
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Sets what the call is priced with when it settles.
    pub fn priced_with(
        &mut self,
        catalog: Arc<Catalog>,
        provider: Arc<ProviderEntry>,
        provider_type: ProviderType,
        model: Option<String>,
    ) {
        self.pricing = Some(Pricing { catalog, provider, provider_type, model });
    }

    /// Releases every reservation and adds the call's real cost (budgets), its tokens (tokens
    /// per minute) and 1 (requests per minute). `usage` is the usage the call's event gets.
    pub fn settle(mut self, usage: &Usage, response_model: Option<&str>) {
        let cost = match &self.pricing {
            Some(p) if self.held.iter().any(|(w, _)| w.key.kind == Kind::Budget) => {
                crate::catalog::price_call(
                    &p.catalog,
                    Some(&p.provider),
                    p.provider_type,
                    p.model.as_deref(),
                    response_model,
                    usage,
                )
                .1
                .cost
                .total
            }
            _ => 0,
        };
        let tokens = usage.total_tokens();
        for (w, reserved) in std::mem::take(&mut self.held) {
            let used = match w.key.kind {
                Kind::Budget => cost,
                Kind::Requests => 1,
                Kind::Tokens => tokens,
            };
            w.release(reserved, used);
        }
    }
}

impl Drop for Charge {
    /// A call that ends before it was forwarded (or whose recorder never settled it) releases
    /// its reservations unspent.
    fn drop(&mut self) {
        for (w, reserved) in std::mem::take(&mut self.held) {
            w.release(reserved, 0);
        }
    }
}

/// The engine; one per process, cheap to clone.
#[derive(Debug, Clone)]
pub struct Limits {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    usage: UsageStore,
    holder: String,
    clock: Clock,
    metrics: Arc<Metrics>,
    fail_open: bool,
    windows: Mutex<hashbrown::HashMap<Key, Arc<Window>>>,
}

impl Limits {
    /// `holder` names this replica in the lease table (unique per process).
    pub fn new(
        store: Store,
        usage: UsageStore,
        holder: String,
        clock: Clock,
        metrics: Arc<Metrics>,
        fail_open: bool,
    ) -> Limits {
        Limits {
            inner: Arc::new(Inner {
                store,
                usage,
                holder,
                clock,
                metrics,
                fail_open,
                windows: Mutex::new(hashbrown::HashMap::new()),
            }),
        }
    }

    fn windows(&self) -> MutexGuard<'_, hashbrown::HashMap<Key, Arc<Window>>> {
        self.inner.windows.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The want's window on this replica, created (unsynced) on first use. Finding an existing
    /// one allocates nothing.
    fn window(&self, w: &Want<'_>) -> Arc<Window> {
        let probe = KeyRef { kind: w.kind, name: w.name, pool: w.pool, start_ms: w.start_ms };
        let mut map = self.windows();
        if let Some(found) = map.get(&probe) {
            return Arc::clone(found);
        }
        let key = Key { kind: w.kind, name: w.name.to_string(), pool: w.pool.to_string(), start_ms: w.start_ms };
        let window = Arc::new(Window {
            key: key.clone(),
            end_ms: w.end_ms,
            source: w.source.map(SourceRef::to_owned),
            c: Mutex::new(Counters {
                limit: w.limit,
                lease: 0,
                consumed: 0,
                reserved: 0,
                spent: 0,
                others: 0,
                synced: false,
                valid_until: Instant::now(),
                active: false,
            }),
            acquire: tokio::sync::Mutex::new(()),
        });
        map.insert(key, Arc::clone(&window));
        window
    }

    /// Reserves every want, in order, or none: the first that would pass its limit refuses the
    /// call (reservations already made are released with the returned error). A want whose
    /// window cannot be synced is skipped under fail-open (logged and counted) and refuses the
    /// call under fail-closed. Returns the charge and what each want's window showed.
    pub async fn reserve(&self, wants: &[Want<'_>]) -> Result<(Charge, SeenList), Refused> {
        let mut charge = Charge::empty();
        let mut seen = SeenList::new();
        // One clock read for the call's fast paths, taken again after a slow path (which may
        // wait on the database), so no lease is used past its validity.
        let mut now = Instant::now();
        for (index, want) in wants.iter().enumerate() {
            let w = self.window(want);
            let fast = {
                let mut c = w.counters();
                if c.limit != want.limit {
                    // The limit was edited: the lease is re-cut by the next sync, now.
                    c.limit = want.limit;
                    c.valid_until = now;
                }
                c.try_reserve(want.amount, now).then(|| see(&c, w.end_ms))
            };
            let result = match fast {
                Some(s) => Ok(Some(s)),
                // Boxed: the slow path holds a database transaction's future (~15 KB), and
                // inlined it made every proxied request's future that much larger (the
                // handler's future is moved into its box by value: 17 KB with it, -Zprint-type-sizes).
                None => {
                    let acquired = Box::pin(self.acquire(&w, want.amount)).await;
                    now = Instant::now();
                    acquired
                }
            };
            match result {
                Ok(Some(s)) => {
                    charge.held.push((w, want.amount));
                    seen.push(Some(s));
                }
                Ok(None) => {
                    let s = see(&w.counters(), w.end_ms);
                    return Err(Refused::Over { index, seen: s });
                }
                Err(e) => {
                    Metrics::inc(&self.inner.metrics.limit_state_failures);
                    tracing::warn!(error = %e, limit = %want.name, kind = want.kind.as_str(),
                        fail_open = self.inner.fail_open, "budget/rate-limit state could not be read");
                    if !self.inner.fail_open {
                        return Err(Refused::Unavailable(e));
                    }
                    seen.push(None);
                }
            }
        }
        Ok((charge, seen))
    }

    /// The slow path: grows the window's lease by at least `amount` and reserves it; `None`
    /// when the window has no room for it.
    async fn acquire(&self, w: &Arc<Window>, amount: i64) -> Result<Option<Seen>, StoreError> {
        let _one = w.acquire.lock().await;
        {
            let mut c = w.counters();
            if c.try_reserve(amount, Instant::now()) {
                return Ok(Some(see(&c, w.end_ms)));
            }
        }
        let initial = if w.counters().synced { 0 } else { self.spend_so_far(w).await? };
        let (flush, keep, in_flight, limit, need) = {
            let mut c = w.counters();
            let keep = (c.lease - c.consumed).max(c.reserved);
            let free_here = keep - c.reserved;
            let flush = c.consumed;
            c.lease = flush + keep;
            (flush, keep, c.reserved, c.limit, (amount - free_here).max(0))
        };
        let state = self.sync(w, flush, (keep, in_flight), limit, need, initial).await?;
        let mut c = w.counters();
        apply(&mut c, flush, state);
        if state.granted && c.try_reserve(amount, Instant::now()) {
            return Ok(Some(see(&c, w.end_ms)));
        }
        Ok(None)
    }

    async fn sync(
        &self,
        w: &Window,
        flush: i64,
        (keep, in_flight): (i64, i64),
        limit: i64,
        need: i64,
        initial_spent: i64,
    ) -> Result<tollgate_store::WindowState, StoreError> {
        let now_ms = self.inner.clock.now_ms();
        let key = WindowKey {
            kind: w.key.kind.as_str(),
            name: &w.key.name,
            pool: &w.key.pool,
            period_start_ms: w.key.start_ms,
        };
        self.inner
            .store
            .sync_limit_window(&WindowSync {
                key,
                holder: &self.inner.holder,
                limit,
                flush,
                keep,
                in_flight,
                need,
                initial_spent,
                now_ms,
                expires_at_ms: now_ms + LEASE_TTL_MS,
            })
            .await
    }

    /// A budget window's spend before this replica first saw it: the period's usage rollups.
    async fn spend_so_far(&self, w: &Window) -> Result<i64, StoreError> {
        let Some(src) = &w.source else { return Ok(0) };
        let now = self.inner.clock.now_ms();
        let spent = rollup_spend(&self.inner.usage, src.as_ref(), w.key.start_ms, w.end_ms, now, None).await?;
        Ok(spent.get("").copied().unwrap_or(0))
    }

    /// Syncs every window that has something to flush or a lease to refresh or hand back, and
    /// forgets windows that are over and settled. The background task runs this every
    /// [`SYNC_INTERVAL`]; shutdown runs it once more after the requests in flight ended.
    pub async fn sync_all(&self) {
        let all: Vec<Arc<Window>> = self.windows().values().cloned().collect();
        let now_ms = self.inner.clock.now_ms();
        for w in all {
            let _one = w.acquire.lock().await;
            let plan = {
                let mut c = w.counters();
                if !c.synced || (c.consumed == 0 && c.lease == 0) {
                    None
                } else {
                    let flush = c.consumed;
                    let over = now_ms >= w.end_ms;
                    let keep = if c.active && !over { (c.lease - flush).max(c.reserved) } else { c.reserved };
                    c.lease = flush + keep;
                    c.active = false;
                    Some((flush, keep, c.reserved, c.limit))
                }
            };
            if let Some((flush, keep, in_flight, limit)) = plan {
                match self.sync(&w, flush, (keep, in_flight), limit, 0, 0).await {
                    Ok(state) => apply(&mut w.counters(), flush, state),
                    Err(e) => {
                        Metrics::inc(&self.inner.metrics.limit_state_failures);
                        tracing::warn!(error = %e, limit = %w.key.name, "budget/rate-limit sync failed; retrying");
                    }
                }
            }
            let idle = {
                let c = w.counters();
                c.reserved == 0 && c.consumed == 0 && c.lease == 0
            };
            if idle && (now_ms >= w.end_ms || w.key.kind != Kind::Budget) {
                self.windows().remove(&w.key);
            }
        }
    }

    /// The background sync loop; returns on `shutdown` (the caller runs a last
    /// [`Limits::sync_all`] once requests have ended).
    pub async fn run(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(SYNC_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut pruned_at = 0i64;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            self.sync_all().await;
            let now = self.inner.clock.now_ms();
            if now - pruned_at > 3_600_000 {
                pruned_at = now;
                if let Err(e) = self.inner.store.prune_limit_windows(now, now - WINDOW_KEEP_MS).await {
                    tracing::warn!(error = %e, "pruning old budget windows failed");
                }
            }
        }
    }

    /// Reservations in flight on this replica for one resource's windows of a period, and what
    /// this replica consumed but has not flushed, per pool.
    pub fn local(&self, kind: Kind, name: &str, start_ms: i64) -> Vec<(String, i64, i64)> {
        self.windows()
            .values()
            .filter(|w| w.key.kind == kind && w.key.name == name && w.key.start_ms == start_ms)
            .map(|w| {
                let c = w.counters();
                (w.key.pool.clone(), c.reserved, c.consumed)
            })
            .collect()
    }

    /// Reservations in flight on this replica, over every window (0 when nothing is in flight).
    pub fn reserved_total(&self) -> i64 {
        self.windows().values().map(|w| w.counters().reserved).sum()
    }
}

fn apply(c: &mut Counters, flushed: i64, state: tollgate_store::WindowState) {
    c.consumed -= flushed;
    c.lease = state.amount;
    c.spent = state.spent;
    c.others = state.others;
    c.synced = true;
    c.valid_until = Instant::now() + LOCAL_TTL;
}

fn see(c: &Counters, end_ms: i64) -> Seen {
    let used = c.spent.saturating_add(c.consumed);
    let taken = used.saturating_add(c.reserved).saturating_add(c.others);
    Seen { used, remaining: (c.limit - taken).max(0), limit: c.limit, end_ms }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher as _;

    /// The window map is searched with a `KeyRef`: it must hash like the `Key` it stands for
    /// and be equivalent to exactly that key, or every call would create a new window.
    #[test]
    fn a_borrowed_key_finds_its_window() {
        let mut map = hashbrown::HashMap::new();
        let key = |kind, name: &str, pool: &str, start_ms| Key {
            kind,
            name: name.to_string(),
            pool: pool.to_string(),
            start_ms,
        };
        map.insert(key(Kind::Budget, "b", "agent-1", 10), 1);
        map.insert(key(Kind::Budget, "b", "agent-2", 10), 2);
        map.insert(key(Kind::Requests, "b", "agent-1", 10), 3);
        map.insert(key(Kind::Budget, "b", "agent-1", 20), 4);
        map.insert(key(Kind::Tokens, "ab", "c", 0), 5);
        let probe = |kind, name, pool, start_ms| map.get(&KeyRef { kind, name, pool, start_ms }).copied();
        assert_eq!(probe(Kind::Budget, "b", "agent-1", 10), Some(1));
        assert_eq!(probe(Kind::Budget, "b", "agent-2", 10), Some(2));
        assert_eq!(probe(Kind::Requests, "b", "agent-1", 10), Some(3));
        assert_eq!(probe(Kind::Budget, "b", "agent-1", 20), Some(4));
        assert_eq!(probe(Kind::Budget, "b", "agent-3", 10), None);
        // Field boundaries count: ("ab", "c") is not ("a", "bc").
        assert_eq!(probe(Kind::Tokens, "ab", "c", 0), Some(5));
        assert_eq!(probe(Kind::Tokens, "a", "bc", 0), None);
        let s = map.hasher();
        assert_eq!(
            s.hash_one(key(Kind::Tokens, "ab", "c", 0)),
            s.hash_one(KeyRef { kind: Kind::Tokens, name: "ab", pool: "c", start_ms: 0 })
        );
    }
}
