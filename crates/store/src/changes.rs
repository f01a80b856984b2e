//! The config change log and the PostgreSQL notification that carries config changes to
//! every replica.
//!
//! Every config write names what it changes (a [`Change`]: a [`ConfigKind`] and the
//! resource's name, or [`ALL`] for every resource of the kind). `write_tx!` (in `db`) records
//! those rows in `config_changes` at the version the same transaction bumps to, prunes rows
//! older than `db::KEEP_VERSIONS`, and on PostgreSQL sends `NOTIFY tollgate_config` with the new
//! version as payload — inside the transaction, so the notification exists only if the write
//! committed. [`Store::changes_between`] returns what changed between two versions, or `None`
//! when the log cannot say (pruned rows, a version without rows from an older binary, a kind
//! this binary does not know): the caller then reloads everything. [`ConfigListener`] is the
//! `LISTEN` side, on a connection of its own (application name [`LISTENER_APPLICATION_NAME`]).
//!
//! Adding a resource kind: a [`ConfigKind`] variant (its `as_str` text is stored, so never
//! rename one), the changes its writes pass to `write_tx!`, and the server's snapshot update
//! for it (`server/src/state.rs`, `apply_change`); until that exists, a change of the kind makes
//! replicas reload whole, which is correct, only slower.

use crate::db::{KEEP_VERSIONS, Pool};
use crate::{Store, StoreError};
use sqlx::postgres::{PgListener, PgPoolOptions};

/// The PostgreSQL notification channel of config changes.
pub const CHANNEL: &str = "tollgate_config";
/// The `application_name` of the listener's connection (so operators, and the tests that cut
/// it, can find it in `pg_stat_activity`).
pub const LISTENER_APPLICATION_NAME: &str = "tollgate-config-listener";
/// The one name of [`ConfigKind::Session`] changes.
pub const SIGNED_OUT: &str = "signed-out";
/// The name that stands for every resource of a kind (a master key rotation re-seals all secrets).
pub const ALL: &str = "*";

const BETWEEN_SQL: &str = "SELECT version, kind, name FROM config_changes \
     WHERE version > $1 AND version <= $2 ORDER BY version, kind, name";

/// A kind of config resource replicas cache. The text is stored in the change log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfigKind {
    /// An LLM provider, by name.
    Provider,
    /// A stored secret (its value or its host binding), by name.
    Secret,
    /// A gateway token, by id.
    Token,
    /// The signed-out console sessions, always named [`SIGNED_OUT`] (the list is re-read
    /// whole; the cookie's MAC stays out of the log).
    Session,
    /// A budget or a rate limit, named `budget/<name>` or `rate-limit/<name>` (the limits are
    /// few and re-read whole).
    Limit,
}

impl ConfigKind {
    pub const ALL: [ConfigKind; 5] =
        [ConfigKind::Provider, ConfigKind::Secret, ConfigKind::Token, ConfigKind::Session, ConfigKind::Limit];

    pub fn as_str(self) -> &'static str {
        match self {
            ConfigKind::Provider => "provider",
            ConfigKind::Secret => "secret",
            ConfigKind::Token => "token",
            ConfigKind::Session => "session",
            ConfigKind::Limit => "limit",
        }
    }

    pub fn parse(text: &str) -> Option<ConfigKind> {
        ConfigKind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// One resource a config write changed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Change {
    pub kind: ConfigKind,
    /// The resource's name (a token's id), or [`ALL`].
    pub name: String,
}

impl Change {
    pub fn new(kind: ConfigKind, name: impl Into<String>) -> Change {
        Change { kind, name: name.into() }
    }

    /// Every resource of `kind`.
    pub fn all(kind: ConfigKind) -> Change {
        Change { kind, name: ALL.to_string() }
    }

    pub fn is_all(&self) -> bool {
        self.name == ALL
    }
}

impl Store {
    /// What changed after version `from` up to and including `to`, each resource once, in
    /// order of first change; `None` when the log does not cover every version in between
    /// (pruned, written by a binary without the log, or naming a kind this one does not know)
    /// or `to` is below `from`.
    pub async fn changes_between(&self, from: i64, to: i64) -> Result<Option<Vec<Change>>, StoreError> {
        if to == from {
            return Ok(Some(Vec::new()));
        }
        // A version that went back (a restored database) cannot be followed by changes.
        if to < from || to - from > KEEP_VERSIONS {
            return Ok(None);
        }
        let rows: Vec<(i64, String, String)> =
            on_pool!(self, |p| { sqlx::query_as(BETWEEN_SQL).bind(from).bind(to).fetch_all(p).await? });
        let mut versions = 0i64;
        let mut last = None;
        let mut out: Vec<Change> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (version, kind, name) in rows {
            if last != Some(version) {
                versions += 1;
                last = Some(version);
            }
            let Some(kind) = ConfigKind::parse(&kind) else {
                return Ok(None);
            };
            let change = Change { kind, name };
            if seen.insert(change.clone()) {
                out.push(change);
            }
        }
        Ok((versions == to - from).then_some(out))
    }

    /// A `LISTEN` on the config channel over a connection of its own (PostgreSQL); `None` on
    /// SQLite, where replicas cannot share a database.
    pub async fn listen_config(&self) -> Result<Option<ConfigListener>, StoreError> {
        let Pool::Postgres(pool) = &self.inner.pool else {
            return Ok(None);
        };
        let options = (*pool.connect_options()).clone().application_name(LISTENER_APPLICATION_NAME);
        let own = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_with(options)
            .await?;
        let mut listener = PgListener::connect_with(&own).await?;
        listener.ignore_pool_close_event(true);
        listener.listen(CHANNEL).await?;
        Ok(Some(ConfigListener { listener }))
    }
}

/// The listening side of config notifications.
#[derive(Debug)]
pub struct ConfigListener {
    listener: PgListener,
}

/// What [`ConfigListener::next`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// A config write committed at this version (0 when the payload was unreadable).
    Changed(i64),
    /// The connection was lost and has been re-established (listening again): notifications
    /// sent meanwhile are lost, so the caller must catch up from the database.
    Reconnected,
}

impl ConfigListener {
    /// Waits for the next notification. An error means the connection is unusable; drop the
    /// listener and open a new one.
    pub async fn next(&mut self) -> Result<Notice, StoreError> {
        Ok(match self.listener.try_recv().await? {
            Some(n) => Notice::Changed(n.payload().parse().unwrap_or(0)),
            None => Notice::Reconnected,
        })
    }

    /// Takes the notifications already received without waiting; returns how many.
    pub fn drain(&mut self) -> usize {
        let mut n = 0;
        while self.listener.next_buffered().is_some() {
            n += 1;
        }
        n
    }
}
