//! Connections, migrations and the per-backend dispatch every query goes through.
//!
//! [`Pool`] is an enum of the two concrete sqlx pools; `on_pool!` and `write_tx!` expand a
//! block of query code once per variant, so `sqlx::query(...)` and `Row::try_get` are typed
//! against a concrete database without generic bounds (no sqlx `Any`). Write transactions begin
//! `IMMEDIATE` on SQLite (no lock-upgrade `SQLITE_BUSY`) and, on both backends, first bump the
//! config version: that single row lock serialises config writes across replicas on Postgres,
//! which makes check-then-write sequences (last admin, bootstrap token, secret refs) race-free
//! and means no write transaction can wait on another while holding other row locks. Every
//! write transaction names what it changes; `write_tx!` records it in the change log and (on
//! PostgreSQL) notifies the other replicas (see `changes`).
//! Migrations are embedded with `include_str!` and run on connect; on Postgres sqlx's migrator
//! holds an advisory lock, so replicas starting together apply them once.

use crate::StoreError;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqlSafeStr};
use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

/// The two concrete pools behind one [`crate::Store`].
#[derive(Clone, Debug)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// `on_pool!(store, |p| body)`: runs `body` with `p` bound to the concrete pool.
macro_rules! on_pool {
    ($store:expr, |$p:ident| $body:expr) => {
        match &$store.inner.pool {
            $crate::db::Pool::Sqlite($p) => $body,
            $crate::db::Pool::Postgres($p) => $body,
        }
    };
}

/// `write_tx!(store, changes, |tx, is_pg| body)`: runs `body` in a write transaction `tx`
/// that has already bumped the config version and recorded `changes` (a slice of
/// [`crate::Change`]: what this write may change) in the change log, then commits and
/// evaluates to `body`'s value (a [`crate::Store::rehearsal`] handle rolls back instead of
/// committing). On PostgreSQL the transaction also sends the config
/// notification (`pg_notify`), which PostgreSQL delivers only if it commits.
/// Leaving `body` early (`?`, `return`) drops `tx`, which rolls everything back, the version
/// bump, the change rows and the notification included. `is_pg` lets the body pick
/// Postgres-only SQL such as `FOR SHARE`.
macro_rules! write_tx {
    ($store:expr, $changes:expr, |$tx:ident, $is_pg:ident| $body:expr) => {{
        let changes: &[$crate::Change] = $changes;
        match &$store.inner.pool {
            $crate::db::Pool::Sqlite(p) => {
                #[allow(unused_variables)]
                let $is_pg = false;
                let mut $tx = p.begin_with("BEGIN IMMEDIATE").await?;
                sqlx::query($crate::db::BUMP_VERSION).execute(&mut *$tx).await?;
                for c in changes {
                    sqlx::query($crate::db::RECORD_SQL).bind(c.kind.as_str()).bind(&c.name).execute(&mut *$tx).await?;
                }
                sqlx::query($crate::db::PRUNE_SQL).bind($crate::db::KEEP_VERSIONS).execute(&mut *$tx).await?;
                let out = $body;
                if $store.rehearsal {
                    $tx.rollback().await?;
                } else {
                    $tx.commit().await?;
                }
                out
            }
            $crate::db::Pool::Postgres(p) => {
                #[allow(unused_variables)]
                let $is_pg = true;
                let mut $tx = p.begin().await?;
                sqlx::query($crate::db::BUMP_VERSION).execute(&mut *$tx).await?;
                for c in changes {
                    sqlx::query($crate::db::RECORD_SQL).bind(c.kind.as_str()).bind(&c.name).execute(&mut *$tx).await?;
                }
                sqlx::query($crate::db::PRUNE_SQL).bind($crate::db::KEEP_VERSIONS).execute(&mut *$tx).await?;
                sqlx::query($crate::db::NOTIFY_SQL).execute(&mut *$tx).await?;
                let out = $body;
                if $store.rehearsal {
                    $tx.rollback().await?;
                } else {
                    $tx.commit().await?;
                }
                out
            }
        }
    }};
}

pub(crate) const BUMP_VERSION: &str = "UPDATE config_version SET version = version + 1 WHERE id = 1";

/// How many versions of change-log rows are kept (see `changes`).
pub(crate) const KEEP_VERSIONS: i64 = 10_000;
/// Records one change (`$1` kind, `$2` name) at the transaction's new version.
pub(crate) const RECORD_SQL: &str = "INSERT INTO config_changes (version, kind, name) \
     SELECT version, $1, $2 FROM config_version WHERE id = 1 ON CONFLICT DO NOTHING";
/// `$1` is [`KEEP_VERSIONS`].
pub(crate) const PRUNE_SQL: &str =
    "DELETE FROM config_changes WHERE version <= (SELECT version FROM config_version WHERE id = 1) - $1";
/// The config notification (channel `changes::CHANNEL`), payload the new version; PostgreSQL
/// delivers it only if the transaction commits.
pub(crate) const NOTIFY_SQL: &str =
    "SELECT pg_notify('tollgate_config', CAST(version AS TEXT)) FROM config_version WHERE id = 1";

/// (version, description, SQL) per backend. Never edit an applied migration: add a new one.
pub(crate) const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "config", include_str!("../migrations/sqlite/0001_config.sql")),
    (2, "console signouts", include_str!("../migrations/sqlite/0002_console_signouts.sql")),
    (3, "secret bindings", include_str!("../migrations/sqlite/0003_secret_bindings.sql")),
    (4, "config changes", include_str!("../migrations/sqlite/0004_config_changes.sql")),
    (5, "limits", include_str!("../migrations/sqlite/0005_limits.sql")),
];
/// On PostgreSQL usage tables live in the same database, so they are in the same list.
pub(crate) const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "config", include_str!("../migrations/postgres/0001_config.sql")),
    (2, "usage events", include_str!("../migrations/postgres/0002_usage_events.sql")),
    (3, "cost rollups", include_str!("../migrations/postgres/0003_cost_rollups.sql")),
    (4, "console signouts", include_str!("../migrations/postgres/0004_console_signouts.sql")),
    (5, "secret bindings", include_str!("../migrations/postgres/0005_secret_bindings.sql")),
    (6, "transcripts", include_str!("../migrations/postgres/0006_transcripts.sql")),
    (7, "config changes", include_str!("../migrations/postgres/0007_config_changes.sql")),
    (8, "limits", include_str!("../migrations/postgres/0008_limits.sql")),
    (9, "failed requests", include_str!("../migrations/postgres/0009_failed_requests.sql")),
    (10, "lean event indexes", include_str!("../migrations/postgres/0010_lean_event_indexes.sql")),
    (11, "token usage", include_str!("../migrations/postgres/0011_token_usage.sql")),
    (12, "singleton conversations", include_str!("../migrations/postgres/0012_singleton_conversations.sql")),
    (13, "lean transcript indexes", include_str!("../migrations/postgres/0013_lean_transcript_indexes.sql")),
    (14, "transcript batches", include_str!("../migrations/postgres/0014_transcript_batches.sql")),
    (15, "usage segments", include_str!("../migrations/postgres/0015_usage_segments.sql")),
    (16, "principal rollups", include_str!("../migrations/postgres/0016_principal_rollups.sql")),
];
/// On SQLite usage events live in their own file with its own migration history.
pub(crate) const SQLITE_USAGE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "usage events", include_str!("../migrations/sqlite_usage/0001_usage_events.sql")),
    (2, "cost rollups", include_str!("../migrations/sqlite_usage/0002_cost_rollups.sql")),
    (3, "conversations", include_str!("../migrations/sqlite_usage/0003_conversations.sql")),
    (4, "failed requests", include_str!("../migrations/sqlite_usage/0004_failed_requests.sql")),
    (5, "lean event indexes", include_str!("../migrations/sqlite_usage/0005_lean_event_indexes.sql")),
    (6, "token usage", include_str!("../migrations/sqlite_usage/0006_token_usage.sql")),
    (7, "singleton conversations", include_str!("../migrations/sqlite_usage/0007_singleton_conversations.sql")),
    (8, "transcript refs", include_str!("../migrations/sqlite_usage/0008_transcript_refs.sql")),
    (9, "usage segments", include_str!("../migrations/sqlite_usage/0009_usage_segments.sql")),
    (10, "principal rollups", include_str!("../migrations/sqlite_usage/0010_principal_rollups.sql")),
];
/// On SQLite transcripts live in a third file with its own migration history.
pub(crate) const SQLITE_TRANSCRIPT_MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "transcripts", include_str!("../migrations/sqlite_transcripts/0001_transcripts.sql")),
    (2, "lean transcript indexes", include_str!("../migrations/sqlite_transcripts/0002_lean_transcript_indexes.sql")),
    (3, "transcript batches", include_str!("../migrations/sqlite_transcripts/0003_transcript_batches.sql")),
];

fn migrator(list: &'static [(i64, &'static str, &'static str)]) -> Migrator {
    Migrator::with_migrations(
        list.iter()
            .map(|&(version, description, sql)| {
                Migration::new(version, Cow::Borrowed(description), MigrationType::Simple, sql.into_sql_str(), false)
            })
            .collect(),
    )
}

/// Which migration lists to run on a SQLite file: `(sqlite, postgres)`.
pub(crate) type Migrations =
    (&'static [(i64, &'static str, &'static str)], &'static [(i64, &'static str, &'static str)]);

/// The config database's migrations.
pub(crate) const CONFIG: Migrations = (SQLITE_MIGRATIONS, POSTGRES_MIGRATIONS);
/// The usage database's migrations (on PostgreSQL the same list as the config database).
pub(crate) const USAGE: Migrations = (SQLITE_USAGE_MIGRATIONS, POSTGRES_MIGRATIONS);
/// The transcript database's migrations (on PostgreSQL the same list as the config database).
pub(crate) const TRANSCRIPTS: Migrations = (SQLITE_TRANSCRIPT_MIGRATIONS, POSTGRES_MIGRATIONS);

/// Opens a pool for `url` and runs pending migrations of `migrations`.
pub(crate) async fn connect(url: &str, migrations: Migrations) -> Result<Pool, StoreError> {
    open(url, migrations, true).await
}

/// Like [`connect`], but only to a database this gateway already set up (its migrations
/// table holds a row): nothing is created — no SQLite file, no directory, no schema in a
/// PostgreSQL database that has none ([`StoreError::NotAGatewayDatabase`]).
pub(crate) async fn connect_existing(url: &str, migrations: Migrations) -> Result<Pool, StoreError> {
    open(url, migrations, false).await
}

/// 1 when the database has sqlx's migrations table, else 0 (then it is no gateway's).
const APPLIED_SQLITE: &str = "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'";
const APPLIED_PG: &str =
    "SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = '_sqlx_migrations'";

async fn open(url: &str, migrations: Migrations, create: bool) -> Result<Pool, StoreError> {
    let url = url.trim();
    let not_ours = || StoreError::NotAGatewayDatabase(redacted(url));
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let options =
            PgConnectOptions::from_str(url).map_err(|e| StoreError::InvalidUrl(format!("bad postgres url: {e}")))?;
        let pool = PgPoolOptions::new().max_connections(10).connect_with(options).await?;
        if !create {
            let tables: i64 = sqlx::query_scalar(APPLIED_PG).fetch_one(&pool).await?;
            let applied: i64 = if tables == 0 {
                0
            } else {
                sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations").fetch_one(&pool).await?
            };
            if applied == 0 {
                pool.close().await;
                return Err(not_ours());
            }
        }
        migrator(migrations.1).run(&pool).await?;
        tracing::debug!(backend = "postgres", "store connected and migrated");
        return Ok(Pool::Postgres(pool));
    }

    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    let options = if url.starts_with("sqlite:") {
        SqliteConnectOptions::from_str(url).map_err(|e| StoreError::InvalidUrl(format!("bad sqlite url: {e}")))?
    } else if url.is_empty() || url.contains("://") {
        let scheme = url.split("://").next().unwrap_or_default();
        return Err(StoreError::InvalidUrl(format!(
            "unsupported database url scheme \"{scheme}\"; expected sqlite://, postgres:// or a file path"
        )));
    } else {
        SqliteConnectOptions::new().filename(url)
    };
    if !create {
        // Checked over a read-only connection first: the pool's own would switch the file to
        // WAL (writing it) before the check could refuse it.
        if in_memory || !options.get_filename().is_file() {
            return Err(not_ours());
        }
        let ro = SqliteConnectOptions::new().filename(options.get_filename()).read_only(true);
        let mut conn = sqlx::ConnectOptions::connect(&ro).await?;
        let tables: i64 = sqlx::query_scalar(APPLIED_SQLITE).fetch_one(&mut conn).await?;
        let applied: i64 = if tables == 0 {
            0
        } else {
            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations").fetch_one(&mut conn).await?
        };
        sqlx::Connection::close(conn).await?;
        if applied == 0 {
            return Err(not_ours());
        }
    }
    let options = options
        .create_if_missing(create)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5))
        .foreign_keys(true);
    let parent = options.get_filename().parent().filter(|d| !d.as_os_str().is_empty());
    if let (false, Some(dir)) = (in_memory, parent) {
        tokio::fs::create_dir_all(dir).await.map_err(sqlx::Error::Io)?;
    }
    if !in_memory {
        private_files(options.get_filename()).map_err(sqlx::Error::Io)?;
    }
    let pool = SqlitePoolOptions::new().max_connections(8).connect_with(options).await?;
    migrator(migrations.0).run(&pool).await?;
    tracing::debug!(backend = "sqlite", "store connected and migrated");
    Ok(Pool::Sqlite(pool))
}

/// `url` without its password, for messages.
pub(crate) fn redacted(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let authority = rest.split('/').next().unwrap_or_default();
        if let Some((userinfo, host)) = authority.rsplit_once('@')
            && let Some((user, _)) = userinfo.split_once(':')
        {
            let tail = &rest[authority.len()..];
            return format!("{scheme}://{user}:***@{host}{tail}");
        }
    }
    url.to_string()
}

/// Creates the SQLite file owner-only (0600) before SQLite opens it, and narrows an existing
/// file (and its `-wal` / `-shm` companions) to 0600: the usage database names users and
/// agents, the config database holds sealed secrets and token hashes. SQLite creates the WAL
/// and shared-memory files with the database file's mode.
fn private_files(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    if path.as_os_str().is_empty() {
        return Ok(());
    }
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_os_string();
        p.push(suffix);
        match std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Column access shared by both row types, so row mapping is written once.
pub(crate) trait RowExt {
    fn text(&self, col: &str) -> Result<String, StoreError>;
    fn opt_text(&self, col: &str) -> Result<Option<String>, StoreError>;
    fn int(&self, col: &str) -> Result<i64, StoreError>;
    /// The integer in column `i` (0-based): for wide rows read often, where finding each
    /// column by name costs more than decoding it (a spending report reads 21 a row).
    fn int_at(&self, i: usize) -> Result<i64, StoreError>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>, StoreError>;
    fn boolean(&self, col: &str) -> Result<bool, StoreError>;
    fn bytes(&self, col: &str) -> Result<Vec<u8>, StoreError>;
}

macro_rules! impl_row_ext {
    ($row:ty) => {
        impl RowExt for $row {
            fn text(&self, col: &str) -> Result<String, StoreError> {
                Ok(self.try_get(col)?)
            }
            fn opt_text(&self, col: &str) -> Result<Option<String>, StoreError> {
                Ok(self.try_get(col)?)
            }
            fn int(&self, col: &str) -> Result<i64, StoreError> {
                Ok(self.try_get(col)?)
            }
            fn int_at(&self, i: usize) -> Result<i64, StoreError> {
                Ok(self.try_get(i)?)
            }
            fn opt_int(&self, col: &str) -> Result<Option<i64>, StoreError> {
                Ok(self.try_get(col)?)
            }
            fn boolean(&self, col: &str) -> Result<bool, StoreError> {
                Ok(self.try_get(col)?)
            }
            fn bytes(&self, col: &str) -> Result<Vec<u8>, StoreError> {
                Ok(self.try_get(col)?)
            }
        }
    };
}

impl_row_ext!(SqliteRow);
impl_row_ext!(PgRow);

/// Multi-row INSERTs cut into a few fixed statement sizes, each prepared once per connection
/// and its text built once per process: parsing a multi-row INSERT cost more than executing
/// it (callgrind: SQLite's parser over ~200 rows of placeholders), and a statement cached per
/// distinct batch size grew each pooled connection by megabytes. Every batch write goes
/// through one: usage events, their rollup, conversation and token-day upserts (whose few,
/// varying rows per batch were a statement prepared per batch), and transcripts.
///
/// Below the largest size the sizes halve (32, 16, … 1): `n` rows take at most one statement
/// per bit of `n` instead of up to nine of one row each. Each statement is a round trip to
/// the SQLite connection's worker thread (two context switches on a loaded core): with
/// `[50, 10, 1]` a usage batch's six term rows were six statements, now two.
pub(crate) struct MultiRowInsert {
    table: &'static str,
    columns: &'static str,
    /// After the VALUES list (`ON CONFLICT …`), or empty.
    tail: &'static str,
    /// Largest first, ending in 1.
    sizes: &'static [usize],
    sql: std::sync::OnceLock<Vec<(bool, usize, String)>>,
}

/// Statement sizes for upserts whose rows per batch are usually few (conversations, token days).
pub(crate) const SMALL_BATCH_SIZES: [usize; 7] = [100, 32, 16, 8, 4, 2, 1];

impl MultiRowInsert {
    pub(crate) const fn new(
        table: &'static str,
        columns: &'static str,
        tail: &'static str,
        sizes: &'static [usize],
    ) -> MultiRowInsert {
        MultiRowInsert { table, columns, tail, sizes, sql: std::sync::OnceLock::new() }
    }

    /// The statement for `rows` rows (one of the sizes): `?` placeholders on SQLite (bound in
    /// order), `$n` on PostgreSQL.
    pub(crate) fn sql(&self, postgres: bool, rows: usize) -> &str {
        let all = self.sql.get_or_init(|| {
            let columns = self.columns.split(',').count();
            let mut out = Vec::new();
            for postgres in [false, true] {
                for &rows in self.sizes {
                    let mut sql = format!("INSERT INTO {} ({}) VALUES ", self.table, self.columns);
                    let mut n = 0;
                    for r in 0..rows {
                        sql.push_str(if r == 0 { "(" } else { ", (" });
                        for c in 0..columns {
                            if c > 0 {
                                sql.push_str(", ");
                            }
                            n += 1;
                            if postgres {
                                sql.push('$');
                                sql.push_str(&n.to_string());
                            } else {
                                sql.push('?');
                            }
                        }
                        sql.push(')');
                    }
                    sql.push_str(self.tail);
                    out.push((postgres, rows, sql));
                }
            }
            out
        });
        all.iter().find(|(pg, n, _)| *pg == postgres && *n == rows).map_or("", |(_, _, sql)| sql.as_str())
    }

    /// `rows` cut into the prepared sizes, largest first, each piece with its statement.
    pub(crate) fn statements<'s, 'r, T>(
        &'s self,
        postgres: bool,
        rows: &'r [T],
    ) -> impl Iterator<Item = (&'s str, &'r [T])> + use<'s, 'r, T> {
        let mut rest = rows;
        self.pieces(rows.len()).into_iter().map(move |size| {
            let (piece, tail) = rest.split_at(size);
            rest = tail;
            (self.sql(postgres, size), piece)
        })
    }

    /// Cuts `n` rows into statement sizes, largest first.
    pub(crate) fn pieces(&self, mut n: usize) -> Vec<usize> {
        let mut out = Vec::new();
        for &size in self.sizes {
            while n >= size {
                out.push(size);
                n -= size;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacted_hides_only_the_password() {
        assert_eq!(redacted("postgres://u:pw@h:5432/db?x=a@b"), "postgres://u:***@h:5432/db?x=a@b");
        assert_eq!(redacted("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redacted("sqlite://./x.sqlite"), "sqlite://./x.sqlite");
    }
}
