//! Provider records and their secret references.
//!
//! A provider row keeps the spec as opaque JSON plus the columns lists filter on; its
//! `(field, secret)` references live in `provider_secret_refs` so `delete_secret` can refuse
//! to drop a secret in use. Reads join the refs in one statement, so a record and its refs
//! always come from the same snapshot. `secret_refs` come back sorted by field.

use crate::db::RowExt;
use crate::secrets::{HostBinding, bind_host};
use crate::types::page_size;
use crate::{BindOutcome, Change, ConfigKind, Page, ProviderQuery, ProviderRecord, ProviderType, Store, StoreError};

/// Columns of a provider joined with its refs (`field`, `secret` are NULL when it has none).
macro_rules! provider_select {
    ($inner:literal) => {
        concat!(
            "SELECT p.name, p.type, p.display_name, p.enabled, p.spec_json, p.created_at, ",
            "p.updated_at, r.field, r.secret FROM (",
            $inner,
            ") p LEFT JOIN provider_secret_refs r ON r.provider = p.name ORDER BY p.name, r.field"
        )
    };
}

const GET_SQL: &str = provider_select!("SELECT * FROM providers WHERE name = $1");
const ALL_SQL: &str = provider_select!("SELECT * FROM providers");
const LIST_SQL: &str = provider_select!(
    "SELECT * FROM providers WHERE ($1 IS NULL OR type = $1) AND ($2 IS NULL OR enabled = $2) \
     AND ($3 IS NULL OR LOWER(name) LIKE $3 ESCAPE '\\' OR LOWER(display_name) LIKE $3 ESCAPE '\\') \
     AND ($4 IS NULL OR name > $4) ORDER BY name LIMIT $5"
);

const INSERT_SQL: &str = "INSERT INTO providers \
     (name, type, display_name, enabled, spec_json, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (name) DO NOTHING";
const UPDATE_SQL: &str = "UPDATE providers SET type = $2, display_name = $3, enabled = $4, \
     spec_json = $5, updated_at = $6 WHERE name = $1";
const INSERT_REF_SQL: &str = "INSERT INTO provider_secret_refs (provider, field, secret) VALUES ($1, $2, $3)";
const DELETE_REFS_SQL: &str = "DELETE FROM provider_secret_refs WHERE provider = $1";
const SECRET_EXISTS_SQL: &str = "SELECT name FROM secrets WHERE name = $1";
const SECRET_EXISTS_PG_SQL: &str = "SELECT name FROM secrets WHERE name = $1 FOR SHARE";

/// Turns joined rows (ordered by provider name) into records.
fn group_rows<R: RowExt>(rows: &[R]) -> Result<Vec<ProviderRecord>, StoreError> {
    let mut out: Vec<ProviderRecord> = Vec::new();
    for row in rows {
        let name = row.text("name")?;
        if out.last().is_none_or(|p| p.name != name) {
            let type_text = row.text("type")?;
            let provider_type = type_text
                .parse::<ProviderType>()
                .map_err(|_| StoreError::Corrupt(format!("provider \"{name}\" has unknown type \"{type_text}\"")))?;
            out.push(ProviderRecord {
                name,
                provider_type,
                display_name: row.text("display_name")?,
                enabled: row.boolean("enabled")?,
                spec_json: row.text("spec_json")?,
                secret_refs: Vec::new(),
                created_at_ms: row.int("created_at")?,
                updated_at_ms: row.int("updated_at")?,
            });
        }
        if let (Some(field), Some(secret), Some(p)) = (row.opt_text("field")?, row.opt_text("secret")?, out.last_mut())
        {
            p.secret_refs.push((field, secret));
        }
    }
    Ok(out)
}

/// `%` + `needle` lowercased with LIKE wildcards escaped by `\` + `%`.
fn like_pattern(needle: &str) -> String {
    let mut out = String::with_capacity(needle.len() + 2);
    out.push('%');
    for c in needle.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// Inside a write transaction: with `check`, every referenced secret must exist (locked
/// `FOR SHARE` on Postgres until commit), else `SecretNotFound` naming the field; then the
/// provider's ref rows replace its old ones (none, on insert).
macro_rules! save_refs {
    ($tx:ident, $is_pg:ident, $record:expr, $check:expr) => {{
        if $check {
            let sql = if $is_pg { SECRET_EXISTS_PG_SQL } else { SECRET_EXISTS_SQL };
            for (field, secret) in &$record.secret_refs {
                let found = sqlx::query(sql).bind(secret).fetch_optional(&mut *$tx).await?;
                if found.is_none() {
                    return Err(StoreError::SecretNotFound { field: field.clone(), name: secret.clone() });
                }
            }
        }
        sqlx::query(DELETE_REFS_SQL).bind(&$record.name).execute(&mut *$tx).await?;
        for (field, secret) in &$record.secret_refs {
            sqlx::query(INSERT_REF_SQL).bind(&$record.name).bind(field).bind(secret).execute(&mut *$tx).await?;
        }
    }};
}

/// Inside a provider save's transaction, after its row and refs: binds the injected secret to
/// its host ([`HostBinding`]); a secret bound elsewhere fails the save (`SecretBoundElsewhere`:
/// the transaction rolls back, the provider row with it). The change log records the secret
/// only when its binding changed.
macro_rules! save_binding {
    ($tx:ident, $binding:expr) => {{
        match $binding {
            None => None,
            Some(b) => match bind_host!($tx, b.secret, b.host, b.add_if_other) {
                BindOutcome::Refused(hosts) => {
                    return Err(StoreError::SecretBoundElsewhere { secret: b.secret.to_string(), hosts });
                }
                outcome => {
                    if outcome != BindOutcome::AlreadyBound {
                        sqlx::query(crate::db::RECORD_SQL)
                            .bind(ConfigKind::Secret.as_str())
                            .bind(b.secret)
                            .execute(&mut *$tx)
                            .await?;
                    }
                    Some(outcome)
                }
            },
        }
    }};
}

impl Store {
    /// Inserts a new provider and its refs. `AlreadyExists` when the name is taken. With
    /// `check_refs_in_db`, every referenced secret must exist in the secrets table (rows are
    /// locked `FOR SHARE` on Postgres until commit), else `SecretNotFound` naming the field.
    /// `binding`: the injected secret is bound to its host in the same transaction
    /// (`SecretBoundElsewhere` when it may not be); the outcome comes back.
    pub async fn insert_provider(
        &self,
        record: &ProviderRecord,
        check_refs_in_db: bool,
        binding: Option<HostBinding<'_>>,
    ) -> Result<Option<BindOutcome>, StoreError> {
        let bound = write_tx!(self, &[Change::new(ConfigKind::Provider, &record.name)], |tx, is_pg| {
            let inserted = sqlx::query(INSERT_SQL)
                .bind(&record.name)
                .bind(record.provider_type.as_str())
                .bind(&record.display_name)
                .bind(record.enabled)
                .bind(&record.spec_json)
                .bind(record.created_at_ms)
                .bind(record.updated_at_ms)
                .execute(&mut *tx)
                .await?;
            if inserted.rows_affected() == 0 {
                return Err(StoreError::AlreadyExists { what: "provider", name: record.name.clone() });
            }
            save_refs!(tx, is_pg, record, check_refs_in_db);
            save_binding!(tx, binding)
        });
        Ok(bound)
    }

    /// Replaces a provider's columns and refs; `created_at` is kept. `NotFound` when absent.
    /// `check_refs_in_db` and `binding` as for [`Store::insert_provider`].
    pub async fn update_provider(
        &self,
        record: &ProviderRecord,
        check_refs_in_db: bool,
        binding: Option<HostBinding<'_>>,
    ) -> Result<Option<BindOutcome>, StoreError> {
        let bound = write_tx!(self, &[Change::new(ConfigKind::Provider, &record.name)], |tx, is_pg| {
            let updated = sqlx::query(UPDATE_SQL)
                .bind(&record.name)
                .bind(record.provider_type.as_str())
                .bind(&record.display_name)
                .bind(record.enabled)
                .bind(&record.spec_json)
                .bind(record.updated_at_ms)
                .execute(&mut *tx)
                .await?;
            if updated.rows_affected() == 0 {
                return Err(StoreError::NotFound { what: "provider", name: record.name.clone() });
            }
            save_refs!(tx, is_pg, record, check_refs_in_db);
            save_binding!(tx, binding)
        });
        Ok(bound)
    }

    pub async fn get_provider(&self, name: &str) -> Result<Option<ProviderRecord>, StoreError> {
        let mut records = on_pool!(self, |p| {
            let rows = sqlx::query(GET_SQL).bind(name).fetch_all(p).await?;
            group_rows(&rows)?
        });
        Ok(records.pop())
    }

    /// One page of providers matching `q`, ordered by name.
    pub async fn list_providers(&self, q: &ProviderQuery) -> Result<Page<ProviderRecord>, StoreError> {
        let size = page_size(q.limit);
        let pattern = q.name_contains.as_deref().map(like_pattern);
        let records = on_pool!(self, |p| {
            let rows = sqlx::query(LIST_SQL)
                .bind(q.provider_type.map(ProviderType::as_str))
                .bind(q.enabled)
                .bind(pattern.as_deref())
                .bind(q.after.as_deref())
                .bind(i64::from(size) + 1)
                .fetch_all(p)
                .await?;
            group_rows(&rows)?
        });
        Ok(Page::from_rows(records, size, |r| &r.name))
    }

    /// Every provider, ordered by name (for the server's config snapshot).
    pub async fn all_providers(&self) -> Result<Vec<ProviderRecord>, StoreError> {
        on_pool!(self, |p| {
            let rows = sqlx::query(ALL_SQL).fetch_all(p).await?;
            group_rows(&rows)
        })
    }

    /// Deletes a provider and its refs. `NotFound` when absent.
    pub async fn delete_provider(&self, name: &str) -> Result<(), StoreError> {
        write_tx!(self, &[Change::new(ConfigKind::Provider, name)], |tx, is_pg| {
            sqlx::query(DELETE_REFS_SQL).bind(name).execute(&mut *tx).await?;
            let deleted = sqlx::query("DELETE FROM providers WHERE name = $1").bind(name).execute(&mut *tx).await?;
            if deleted.rows_affected() == 0 {
                return Err(StoreError::NotFound { what: "provider", name: name.to_owned() });
            }
        });
        Ok(())
    }
}
