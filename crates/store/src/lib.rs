//! Tollgate's store: the only crate with SQL.
//!
//! One API, [`Store`], over two backends: embedded SQLite (single node) and PostgreSQL
//! (replicas sharing one database). It holds providers, sealed secrets, gateway tokens, the
//! config version replicas poll and the change log that says what each version changed
//! (`changes`; on PostgreSQL every config write also notifies the replicas). Usage events have
//! their own handle, [`UsageStore`] (a separate SQLite file, or the same PostgreSQL database),
//! and so do transcripts, [`TranscriptStore`] (a third SQLite file, or tables of their own in
//! PostgreSQL).
//! Every query is written once and expanded per concrete pool by the macros in `db`, so the
//! SQL text is the same for both dialects wherever possible. The store never reads the clock:
//! callers pass `now_ms`. It depends on `tollgate-core` for domain enums only, never on the
//! server, and it never logs or returns secret values except through [`SecretValue`].

#![forbid(unsafe_code)]

#[macro_use]
mod db;
mod changes;
mod conversation;
mod error;
mod limits;
mod providers;
mod requests;
mod rollup;
pub mod seal;
mod secrets;
mod segments;
mod spending;
mod token_usage;
mod tokens;
pub mod transcripts;
mod types;
mod usage;

pub use changes::{
    ALL as ALL_NAMES, CHANNEL as CONFIG_CHANNEL, Change, ConfigKind, ConfigListener, LISTENER_APPLICATION_NAME, Notice,
};
pub use conversation::conversation_of;
pub use error::StoreError;
pub use limits::{LimitRecord, LimitResource, WindowKey, WindowState, WindowSync, grant as limit_grant};
pub use requests::{ConversationFilter, ConversationRow, RequestFilter};
pub use rollup::{DAY_MS, HOUR_MS, RollupKey, RollupStats};
pub use seal::{Keyring, MasterKey};
pub use secrets::{BindOutcome, HostBinding};
pub use spending::{Dimension, SpendingFilter, SpendingRow, TopSpending};
pub use token_usage::TokenUsage;
pub use tollgate_core::{ProviderType, Role};
pub use transcripts::{Transcript, TranscriptFlags, TranscriptRecord, TranscriptRef, TranscriptStore};
pub use types::UsageEvent;
pub use types::{
    DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page, PageQuery, ProviderQuery, ProviderRecord, SecretMeta, SecretValue,
    TokenRecord,
};
pub use usage::{UsageQuery, UsageStore, decode_event, encode_event};

use db::Pool;
use std::sync::{Arc, RwLock};

/// A database URL as messages show it: the password replaced by `***`.
pub fn redacted_url(url: &str) -> String {
    db::redacted(url)
}

/// Which database a [`Store`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A handle on the config database plus the keyring that seals its secrets. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<Inner>,
    /// A rehearsal handle ([`Store::rehearsal`]): config writes run whole, then roll back.
    rehearsal: bool,
}

#[derive(Debug)]
struct Inner {
    pool: Pool,
    keyring: RwLock<Keyring>,
}

impl Store {
    /// Connects to `url` (`sqlite://path?mode=rwc`, a plain file path, or `postgres://...`)
    /// and runs pending migrations. SQLite parent directories are created as needed.
    pub async fn connect(url: &str, keyring: Keyring) -> Result<Store, StoreError> {
        let pool = db::connect(url, db::CONFIG).await?;
        Ok(Store { inner: Arc::new(Inner { pool, keyring: RwLock::new(keyring) }), rehearsal: false })
    }

    /// A handle on the same database whose config writes (everything in a `write_tx!`) run
    /// every statement and check of the real write, then roll back: a dry run that sees
    /// exactly what the write would (a name taken, a secret bound elsewhere, a second override),
    /// changes nothing and notifies no replica.
    pub fn rehearsal(&self) -> Store {
        Store { inner: self.inner.clone(), rehearsal: true }
    }

    /// Like [`Store::connect`], but only to a database a gateway already set up; creates
    /// nothing (the offline `token recover-admin`: a mistyped URL must not yield a new, empty
    /// gateway database and a token that works nowhere).
    pub async fn connect_existing(url: &str, keyring: Keyring) -> Result<Store, StoreError> {
        let pool = db::connect_existing(url, db::CONFIG).await?;
        Ok(Store { inner: Arc::new(Inner { pool, keyring: RwLock::new(keyring) }), rehearsal: false })
    }

    pub fn backend(&self) -> Backend {
        match self.inner.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// The PostgreSQL pool, for stores that share the config database.
    pub(crate) fn postgres_pool(&self) -> Option<Pool> {
        match &self.inner.pool {
            Pool::Postgres(p) => Some(Pool::Postgres(p.clone())),
            Pool::Sqlite(_) => None,
        }
    }

    /// One round trip to the database.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(self, |p| {
            sqlx::query("SELECT 1").execute(p).await?;
        });
        Ok(())
    }

    /// Closes the pool, waiting for checked-out connections to come back.
    pub async fn close(&self) {
        on_pool!(self, |p| p.close().await)
    }

    /// Replaces the keyring (after the server reloads key files).
    pub fn set_keyring(&self, keyring: Keyring) {
        match self.inner.keyring.write() {
            Ok(mut guard) => *guard = keyring,
            Err(poisoned) => *poisoned.into_inner() = keyring,
        }
    }

    pub fn keyring(&self) -> Keyring {
        match self.inner.keyring.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Bumped in the same transaction as every provider/secret/token write; replicas poll it.
    pub async fn config_version(&self) -> Result<i64, StoreError> {
        let v: i64 = on_pool!(self, |p| {
            sqlx::query_scalar("SELECT version FROM config_version WHERE id = 1").fetch_one(p).await?
        });
        Ok(v)
    }
}
