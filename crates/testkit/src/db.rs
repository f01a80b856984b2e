//! `TestDb`: a fresh, empty database per test, on SQLite or PostgreSQL.
//!
//! SQLite databases live in a temp dir removed on drop. PostgreSQL ones are created next to the
//! server named by `TOLLGATE_TEST_DATABASE_URL` (`CREATE DATABASE t_<uuid>`) and dropped,
//! best effort, when the `TestDb` is dropped; without that variable `postgres()` returns `None`
//! and callers skip. Tests may read raw columns through [`TestDb::raw_strings`], which uses
//! its own connection, not the store's pool.

use anyhow::Context;
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use sqlx::sqlite::SqliteConnection;
use tempfile::TempDir;

pub use sqlx;

/// The environment variable naming an admin connection to a test PostgreSQL server.
pub const POSTGRES_URL_VAR: &str = "TOLLGATE_TEST_DATABASE_URL";

#[derive(Debug)]
pub struct TestDb {
    url: String,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Sqlite { _dir: TempDir },
    Postgres { admin_url: String, db_name: String },
}

impl TestDb {
    /// A file database in a fresh temp dir. Its parent directory does not exist yet, so the
    /// store's "create parent dirs" path is exercised too.
    pub async fn sqlite() -> TestDb {
        let dir = match tempfile::tempdir() {
            Ok(dir) => dir,
            Err(e) => panic!("cannot create temp dir for test database: {e}"),
        };
        let path = dir.path().join("data").join("tollgate.db");
        TestDb { url: format!("sqlite://{}?mode=rwc", path.display()), kind: Kind::Sqlite { _dir: dir } }
    }

    /// A fresh database on the server in `TOLLGATE_TEST_DATABASE_URL`; `None` when unset, after
    /// saying on stderr that the PostgreSQL variant was skipped (so a skip never passes
    /// silently). Under `CI=true` an unset variable is a failure: CI always runs both stores.
    /// Panics when the variable is set but the database cannot be created.
    pub async fn postgres() -> Option<TestDb> {
        let Some(admin_url) = std::env::var(POSTGRES_URL_VAR).ok().filter(|u| !u.trim().is_empty()) else {
            let test = std::thread::current().name().unwrap_or("this test").to_string();
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{test}: {POSTGRES_URL_VAR} is unset under CI=true; CI runs every PostgreSQL variant");
            }
            // Written to the process's stderr directly, not through `eprintln!`, which the test
            // harness captures and hides for passing tests.
            use std::io::Write as _;
            let _ =
                writeln!(std::io::stderr(), "{test}: SKIPPED (PostgreSQL variant): set {POSTGRES_URL_VAR} to run it");
            return None;
        };
        match create_pg_database(&admin_url).await {
            Ok((url, db_name)) => Some(TestDb { url, kind: Kind::Postgres { admin_url, db_name } }),
            Err(e) => {
                panic!("{POSTGRES_URL_VAR} is set but creating a test database failed: {e:#}")
            }
        }
    }

    /// The URL to pass to `Store::connect`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.kind, Kind::Postgres { .. })
    }

    /// Runs `sql` (one `$1` parameter bound to `arg`) on a separate connection and returns
    /// the first column of every row as text.
    pub async fn raw_strings(&self, sql: &'static str, arg: &str) -> anyhow::Result<Vec<String>> {
        let rows: Vec<String> = match &self.kind {
            Kind::Sqlite { .. } => {
                let mut conn = SqliteConnection::connect(&self.url).await?;
                let rows = sqlx::query_scalar(sql).bind(arg).fetch_all(&mut conn).await?;
                conn.close().await?;
                rows
            }
            Kind::Postgres { .. } => {
                let mut conn = PgConnection::connect(&self.url).await?;
                let rows = sqlx::query_scalar(sql).bind(arg).fetch_all(&mut conn).await?;
                conn.close().await?;
                rows
            }
        };
        Ok(rows)
    }
}

async fn create_pg_database(admin_url: &str) -> anyhow::Result<(String, String)> {
    let db_name = format!("t_{}", uuid::Uuid::now_v7().simple());
    let mut conn = PgConnection::connect(admin_url).await.context("connecting to the admin database")?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db_name}")))
        .execute(&mut conn)
        .await
        .with_context(|| format!("CREATE DATABASE {db_name}"))?;
    conn.close().await?;
    let mut url = reqwest::Url::parse(admin_url).context("parsing the admin database url")?;
    url.set_path(&format!("/{db_name}"));
    Ok((url.to_string(), db_name))
}

async fn drop_pg_database(admin_url: &str, db_name: &str) -> anyhow::Result<()> {
    let mut conn = PgConnection::connect(admin_url).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(())
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Kind::Postgres { admin_url, db_name } = &self.kind else {
            return;
        };
        let (admin_url, db_name) = (admin_url.clone(), db_name.clone());
        // Drop runs inside the test's runtime, which must not be blocked on; use a thread
        // with its own runtime and wait for it so the database is gone when the test ends.
        let handle = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
            let dropped = match rt {
                Ok(rt) => rt.block_on(drop_pg_database(&admin_url, &db_name)),
                Err(e) => Err(e.into()),
            };
            if let Err(e) = dropped {
                #[allow(clippy::print_stderr)]
                {
                    eprintln!("warning: could not drop test database {db_name}: {e:#}");
                }
            }
        });
        let _ = handle.join();
    }
}
