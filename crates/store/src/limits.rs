//! Budgets and rate limits: the resources (validated specs kept as JSON, config writes with
//! the version bump) and the shared counters behind their enforcement (ARCHITECTURE.md,
//! Decisions: Budgets and rate limits).
//!
//! A window is one (kind, resource, pool key, period start) counter: `spent` is what replicas
//! settled and flushed. Each replica (`holder`) holds a lease on a window: an amount taken from
//! what is left, so admission needs no database trip until the lease runs out.
//! [`Store::sync_limit_window`] is the one transaction that moves numbers: it flushes what the
//! replica consumed, sets the lease it keeps, and grows it by a slice when asked, keeping
//! `spent + Σ unexpired leases <= limit` (the window row is locked `FOR UPDATE` on PostgreSQL;
//! SQLite transactions begin `IMMEDIATE`). Window writes are not config writes: they do not
//! bump the config version.

use crate::db::RowExt;
use crate::{Store, StoreError};

/// Which resource table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitResource {
    Budget,
    RateLimit,
}

impl LimitResource {
    fn what(self) -> &'static str {
        match self {
            LimitResource::Budget => "budget",
            LimitResource::RateLimit => "rate limit",
        }
    }

    /// The name of a change to `name` in the config change log.
    fn change(self, name: &str) -> crate::Change {
        let kind = match self {
            LimitResource::Budget => "budget",
            LimitResource::RateLimit => "rate-limit",
        };
        crate::Change::new(crate::ConfigKind::Limit, format!("{kind}/{name}"))
    }

    /// The window kinds a resource owns (deleted with it).
    fn window_kinds(self) -> &'static [&'static str] {
        match self {
            LimitResource::Budget => &["budget"],
            LimitResource::RateLimit => &["requests", "tokens"],
        }
    }
}

/// A stored budget or rate limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitRecord {
    pub name: String,
    /// Budgets: `<pooling>:<agent or user>` of an override (unique), else `None`.
    pub override_key: Option<String>,
    pub spec_json: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// One window, by its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowKey<'a> {
    /// `budget`, `requests` or `tokens`.
    pub kind: &'a str,
    pub name: &'a str,
    /// The pool key: agent, user, or `""` for one shared pool.
    pub pool: &'a str,
    pub period_start_ms: i64,
}

/// What one replica asks of a window in [`Store::sync_limit_window`].
#[derive(Debug, Clone, Copy)]
pub struct WindowSync<'a> {
    pub key: WindowKey<'a>,
    pub holder: &'a str,
    pub limit: i64,
    /// Settled since the last sync: added to `spent`.
    pub flush: i64,
    /// The lease the replica would keep (what its calls in flight may still use); cut to what
    /// is left under the limit, but never below `in_flight`.
    pub keep: i64,
    /// Reservations of calls in flight: always kept (they were admitted).
    pub in_flight: i64,
    /// Grow the lease by at least this much, or grant nothing (0: only flush and keep).
    pub need: i64,
    /// `spent` of a window created by this call (the period's usage so far).
    pub initial_spent: i64,
    pub now_ms: i64,
    pub expires_at_ms: i64,
}

/// A window as one sync left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowState {
    /// Settled spend of every replica (as flushed).
    pub spent: i64,
    /// Unexpired leases of the other replicas.
    pub others: i64,
    /// This replica's lease now.
    pub amount: i64,
    /// `need` was granted (always true when `need` was 0).
    pub granted: bool,
}

/// `limit_tx!(store, |tx, is_pg| body)`: a transaction that does not bump the config version
/// (`IMMEDIATE` on SQLite).
macro_rules! limit_tx {
    ($store:expr, |$tx:ident, $is_pg:ident| $body:expr) => {
        match &$store.inner.pool {
            $crate::db::Pool::Sqlite(p) => {
                let $is_pg = false;
                let mut $tx = p.begin_with("BEGIN IMMEDIATE").await?;
                let out = $body;
                $tx.commit().await?;
                out
            }
            $crate::db::Pool::Postgres(p) => {
                let $is_pg = true;
                let mut $tx = p.begin().await?;
                let out = $body;
                $tx.commit().await?;
                out
            }
        }
    };
}

const WINDOW_INSERT: &str = "INSERT INTO limit_windows (kind, name, pool, period_start, spent, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING";
const WINDOW_SELECT: &str =
    "SELECT spent FROM limit_windows WHERE kind = $1 AND name = $2 AND pool = $3 AND period_start = $4";
const WINDOW_SELECT_PG: &str =
    "SELECT spent FROM limit_windows WHERE kind = $1 AND name = $2 AND pool = $3 AND period_start = $4 FOR UPDATE";
const WINDOW_FLUSH: &str = "UPDATE limit_windows SET spent = spent + $5, updated_at = $6 \
     WHERE kind = $1 AND name = $2 AND pool = $3 AND period_start = $4";
const OTHERS_SQL: &str = "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) AS others FROM limit_leases \
     WHERE kind = $1 AND name = $2 AND pool = $3 AND period_start = $4 AND holder <> $5 AND expires_at > $6";
const LEASE_UPSERT: &str = "INSERT INTO limit_leases (kind, name, pool, period_start, holder, amount, expires_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (kind, name, pool, period_start, holder) \
     DO UPDATE SET amount = excluded.amount, expires_at = excluded.expires_at";
const LEASE_DELETE: &str = "DELETE FROM limit_leases \
     WHERE kind = $1 AND name = $2 AND pool = $3 AND period_start = $4 AND holder = $5";
const SPENT_SQL: &str =
    "SELECT pool, spent FROM limit_windows WHERE kind = $1 AND name = $2 AND period_start = $3 ORDER BY pool";
const EXPIRED_LEASES: &str = "DELETE FROM limit_leases WHERE expires_at < $1";
const OLD_WINDOWS: &str = "DELETE FROM limit_windows WHERE updated_at < $1";

/// How much of a window's free amount one grant takes beyond what was needed: a quarter, so
/// slices shrink geometrically near the cap and other replicas keep room.
const SLICE_DIVISOR: i64 = 4;

/// The extra lease granted: nothing unless `need` fits in `free`; then `need`, or a quarter
/// of `free` when that is more.
pub fn grant(free: i64, need: i64) -> i64 {
    if need <= 0 || free < need { 0 } else { need.max(free / SLICE_DIVISOR).min(free) }
}

macro_rules! res_sql {
    ($r:expr, $budget:literal, $rate:literal) => {
        match $r {
            LimitResource::Budget => $budget,
            LimitResource::RateLimit => $rate,
        }
    };
}

fn record_from_row<R: RowExt>(row: &R, budget: bool) -> Result<LimitRecord, StoreError> {
    Ok(LimitRecord {
        name: row.text("name")?,
        override_key: if budget { row.opt_text("override_key")? } else { None },
        spec_json: row.text("spec_json")?,
        created_at_ms: row.int("created_at")?,
        updated_at_ms: row.int("updated_at")?,
    })
}

/// A budget override must be the only one for its agent or user: `AlreadyExists` with `what`
/// `"budget override"` otherwise. Expanded inside a transaction (concrete per backend).
macro_rules! check_override {
    ($tx:ident, $r:expr, $rec:expr) => {
        if let (LimitResource::Budget, Some(key)) = ($r, $rec.override_key.as_deref()) {
            let other = sqlx::query("SELECT name FROM budgets WHERE override_key = $1 AND name <> $2")
                .bind(key)
                .bind($rec.name.as_str())
                .fetch_optional(&mut *$tx)
                .await?;
            if let Some(row) = other {
                let name = row.text("name")?;
                return Err(StoreError::AlreadyExists { what: "budget override", name: format!("{key} ({name})") });
            }
        }
    };
}

impl Store {
    /// Stores a new budget or rate limit. `AlreadyExists` by name, or with `what` `"budget
    /// override"` and the override key when another budget overrides the same agent or user.
    pub async fn insert_limit_resource(&self, r: LimitResource, rec: &LimitRecord) -> Result<(), StoreError> {
        write_tx!(self, &[r.change(&rec.name)], |tx, is_pg| {
            check_override!(tx, r, rec);
            let q = sqlx::query(res_sql!(
                r,
                "INSERT INTO budgets (name, override_key, spec_json, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                "INSERT INTO rate_limits (name, spec_json, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING"
            ));
            let q = if r == LimitResource::Budget {
                q.bind(&rec.name).bind(rec.override_key.as_deref())
            } else {
                q.bind(&rec.name)
            };
            let done = q.bind(&rec.spec_json).bind(rec.created_at_ms).bind(rec.updated_at_ms).execute(&mut *tx).await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::AlreadyExists { what: r.what(), name: rec.name.clone() });
            }
        });
        Ok(())
    }

    /// Replaces a stored budget or rate limit (`NotFound` when absent); its windows (spend so
    /// far) are kept.
    pub async fn update_limit_resource(&self, r: LimitResource, rec: &LimitRecord) -> Result<(), StoreError> {
        write_tx!(self, &[r.change(&rec.name)], |tx, is_pg| {
            check_override!(tx, r, rec);
            let q = sqlx::query(res_sql!(
                r,
                "UPDATE budgets SET override_key = $2, spec_json = $3, updated_at = $4 WHERE name = $1",
                "UPDATE rate_limits SET spec_json = $2, updated_at = $3 WHERE name = $1"
            ))
            .bind(&rec.name);
            let q = if r == LimitResource::Budget { q.bind(rec.override_key.as_deref()) } else { q };
            let done = q.bind(&rec.spec_json).bind(rec.updated_at_ms).execute(&mut *tx).await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound { what: r.what(), name: rec.name.clone() });
            }
        });
        Ok(())
    }

    pub async fn get_limit_resource(&self, r: LimitResource, name: &str) -> Result<Option<LimitRecord>, StoreError> {
        on_pool!(self, |p| {
            let row = sqlx::query(res_sql!(
                r,
                "SELECT name, override_key, spec_json, created_at, updated_at FROM budgets WHERE name = $1",
                "SELECT name, spec_json, created_at, updated_at FROM rate_limits WHERE name = $1"
            ))
            .bind(name)
            .fetch_optional(p)
            .await?;
            row.as_ref().map(|row| record_from_row(row, r == LimitResource::Budget)).transpose()
        })
    }

    /// Every budget or rate limit, by name.
    pub async fn all_limit_resources(&self, r: LimitResource) -> Result<Vec<LimitRecord>, StoreError> {
        on_pool!(self, |p| {
            let rows = sqlx::query(res_sql!(
                r,
                "SELECT name, override_key, spec_json, created_at, updated_at FROM budgets ORDER BY name",
                "SELECT name, spec_json, created_at, updated_at FROM rate_limits ORDER BY name"
            ))
            .fetch_all(p)
            .await?;
            rows.iter().map(|row| record_from_row(row, r == LimitResource::Budget)).collect()
        })
    }

    /// Deletes a budget or rate limit with its windows and leases (`NotFound` when absent).
    pub async fn delete_limit_resource(&self, r: LimitResource, name: &str) -> Result<(), StoreError> {
        write_tx!(self, &[r.change(name)], |tx, is_pg| {
            let done = sqlx::query(res_sql!(
                r,
                "DELETE FROM budgets WHERE name = $1",
                "DELETE FROM rate_limits WHERE name = $1"
            ))
            .bind(name)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound { what: r.what(), name: name.to_string() });
            }
            for kind in r.window_kinds() {
                for sql in [
                    "DELETE FROM limit_windows WHERE kind = $1 AND name = $2",
                    "DELETE FROM limit_leases WHERE kind = $1 AND name = $2",
                ] {
                    sqlx::query(sql).bind(*kind).bind(name).execute(&mut *tx).await?;
                }
            }
        });
        Ok(())
    }

    /// Flushes `s.flush` into the window, sets this holder's lease to `s.keep` (at most what is
    /// left under the limit, at least `s.in_flight`) and grows it by
    /// [`grant`]`(free, s.need)` where `free = limit - spent - others - keep`; creates the
    /// window with `s.initial_spent` if it does not exist. One transaction.
    pub async fn sync_limit_window(&self, s: &WindowSync<'_>) -> Result<WindowState, StoreError> {
        let k = s.key;
        let state = limit_tx!(self, |tx, is_pg| {
            sqlx::query(WINDOW_INSERT)
                .bind(k.kind)
                .bind(k.name)
                .bind(k.pool)
                .bind(k.period_start_ms)
                .bind(s.initial_spent)
                .bind(s.now_ms)
                .execute(&mut *tx)
                .await?;
            let row = sqlx::query(if is_pg { WINDOW_SELECT_PG } else { WINDOW_SELECT })
                .bind(k.kind)
                .bind(k.name)
                .bind(k.pool)
                .bind(k.period_start_ms)
                .fetch_one(&mut *tx)
                .await?;
            let mut spent = row.int("spent")?;
            if s.flush != 0 {
                sqlx::query(WINDOW_FLUSH)
                    .bind(k.kind)
                    .bind(k.name)
                    .bind(k.pool)
                    .bind(k.period_start_ms)
                    .bind(s.flush)
                    .bind(s.now_ms)
                    .execute(&mut *tx)
                    .await?;
                spent = spent.saturating_add(s.flush);
            }
            let others = sqlx::query(OTHERS_SQL)
                .bind(k.kind)
                .bind(k.name)
                .bind(k.pool)
                .bind(k.period_start_ms)
                .bind(s.holder)
                .bind(s.now_ms)
                .fetch_one(&mut *tx)
                .await?
                .int("others")?;
            // A lowered limit shrinks the lease to what is left, but never below the calls in flight.
            let left = s.limit.saturating_sub(spent).saturating_sub(others);
            let in_flight = s.in_flight.max(0);
            let keep = s.keep.min(left).max(in_flight);
            let free = s.limit.saturating_sub(spent).saturating_sub(others).saturating_sub(keep);
            let extra = grant(free, s.need);
            let amount = keep.saturating_add(extra);
            if amount > 0 {
                sqlx::query(LEASE_UPSERT)
                    .bind(k.kind)
                    .bind(k.name)
                    .bind(k.pool)
                    .bind(k.period_start_ms)
                    .bind(s.holder)
                    .bind(amount)
                    .bind(s.expires_at_ms)
                    .execute(&mut *tx)
                    .await?;
            } else {
                sqlx::query(LEASE_DELETE)
                    .bind(k.kind)
                    .bind(k.name)
                    .bind(k.pool)
                    .bind(k.period_start_ms)
                    .bind(s.holder)
                    .execute(&mut *tx)
                    .await?;
            }
            WindowState { spent, others, amount, granted: s.need <= 0 || extra > 0 }
        });
        Ok(state)
    }

    /// Flushed spend per pool of one resource's windows starting at `period_start_ms`.
    pub async fn limit_window_spent(
        &self,
        kind: &str,
        name: &str,
        period_start_ms: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        on_pool!(self, |p| {
            let rows = sqlx::query(SPENT_SQL).bind(kind).bind(name).bind(period_start_ms).fetch_all(p).await?;
            rows.iter().map(|r| Ok((r.text("pool")?, r.int("spent")?))).collect()
        })
    }

    /// Deletes leases expired before `now_ms` and windows not written since `windows_before_ms`.
    pub async fn prune_limit_windows(&self, now_ms: i64, windows_before_ms: i64) -> Result<(), StoreError> {
        on_pool!(self, |p| {
            sqlx::query(EXPIRED_LEASES).bind(now_ms).execute(p).await?;
            sqlx::query(OLD_WINDOWS).bind(windows_before_ms).execute(p).await?;
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::grant;

    #[test]
    fn grants_shrink_near_the_cap_and_never_pass_it() {
        assert_eq!(grant(1000, 10), 250);
        assert_eq!(grant(20, 10), 10);
        assert_eq!(grant(9, 10), 0);
        assert_eq!(grant(-5, 1), 0);
        assert_eq!(grant(100, 0), 0);
    }
}
