//! Sealed secrets: named values stored encrypted under the keyring's primary master key.
//!
//! Values are sealed before they reach SQL and opened after they leave it, with
//! AAD `secret/<name>` so a sealed value moved to another name does not open. Only
//! [`Store::secret_value`] returns plaintext, wrapped in a redacting [`SecretValue`].

use crate::db::RowExt;
use crate::types::page_size;
use crate::{Change, ConfigKind, Keyring, MasterKey, Page, PageQuery, SecretMeta, SecretValue, Store, StoreError};
use std::collections::{BTreeSet, HashMap};

/// A provider save's injected secret and the host it will be sent to (`host[:port]` of the
/// base URL): [`Store::insert_provider`] and [`Store::update_provider`] bind it in the save's
/// own transaction, so a save that fails (a name taken, a provider gone, a secret bound
/// elsewhere) changes no binding.
#[derive(Debug, Clone, Copy)]
pub struct HostBinding<'a> {
    pub secret: &'a str,
    pub host: &'a str,
    /// An admin's save: a secret bound to other hosts gets this one added instead of refusing.
    pub add_if_other: bool,
}

/// Inside a write transaction: reads `secret`'s bound hosts and decides `host`'s
/// [`BindOutcome`], inserting the binding row for `FirstUse` and `Added` (nothing for
/// `AlreadyBound` and `Refused`).
macro_rules! bind_host {
    ($tx:ident, $secret:expr, $host:expr, $add_if_other:expr) => {{
        let (secret, host): (&str, &str) = ($secret, $host);
        let hosts: Vec<String> = sqlx::query_scalar("SELECT host FROM secret_bindings WHERE secret = $1 ORDER BY host")
            .bind(secret)
            .fetch_all(&mut *$tx)
            .await?;
        let outcome = if hosts.iter().any(|h| h == host) {
            $crate::BindOutcome::AlreadyBound
        } else if hosts.is_empty() {
            $crate::BindOutcome::FirstUse
        } else if $add_if_other {
            $crate::BindOutcome::Added
        } else {
            $crate::BindOutcome::Refused(hosts)
        };
        if matches!(outcome, $crate::BindOutcome::FirstUse | $crate::BindOutcome::Added) {
            sqlx::query("INSERT INTO secret_bindings (secret, host) VALUES ($1, $2)")
                .bind(secret)
                .bind(host)
                .execute(&mut *$tx)
                .await?;
        }
        outcome
    }};
}
pub(crate) use bind_host;

/// The outcome of [`Store::bind_secret_host`] and of a provider save's [`HostBinding`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindOutcome {
    /// The host was already in the secret's binding.
    AlreadyBound,
    /// The secret had no binding; it is now bound to this host (first use binds).
    FirstUse,
    /// The host was added to an existing binding (`add_if_other` was set).
    Added,
    /// The secret is bound to other hosts (listed, sorted); nothing was changed.
    Refused(Vec<String>),
}

fn aad(name: &str) -> Vec<u8> {
    let mut aad = b"secret/".to_vec();
    aad.extend_from_slice(name.as_bytes());
    aad
}

fn meta_from_row<R: RowExt>(row: &R) -> Result<SecretMeta, StoreError> {
    Ok(SecretMeta {
        name: row.text("name")?,
        key_id: row.text("key_id")?,
        created_at_ms: row.int("created_at")?,
        updated_at_ms: row.int("updated_at")?,
    })
}

fn open_value(keyring: &Keyring, name: &str, sealed: &str) -> Result<SecretValue, StoreError> {
    let bytes = keyring.open(&aad(name), sealed)?;
    let text = String::from_utf8(bytes).map_err(|_| StoreError::Corrupt(format!("secret \"{name}\" is not UTF-8")))?;
    Ok(SecretValue::new(text))
}

impl Store {
    /// Creates or replaces a secret; returns true when it was created.
    pub async fn put_secret(&self, name: &str, value: &SecretValue, now_ms: i64) -> Result<bool, StoreError> {
        let keyring = self.keyring();
        let sealed = keyring.seal(&aad(name), value.expose().as_bytes())?;
        let key_id = keyring.primary_id();
        let created = write_tx!(self, &[Change::new(ConfigKind::Secret, name)], |tx, is_pg| {
            let existing =
                sqlx::query("SELECT name FROM secrets WHERE name = $1").bind(name).fetch_optional(&mut *tx).await?;
            sqlx::query(
                "INSERT INTO secrets (name, sealed, key_id, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $4) ON CONFLICT (name) DO UPDATE SET \
                 sealed = excluded.sealed, key_id = excluded.key_id, updated_at = excluded.updated_at",
            )
            .bind(name)
            .bind(&sealed)
            .bind(&key_id)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
            existing.is_none()
        });
        Ok(created)
    }

    pub async fn get_secret_meta(&self, name: &str) -> Result<Option<SecretMeta>, StoreError> {
        on_pool!(self, |p| {
            let row = sqlx::query("SELECT name, key_id, created_at, updated_at FROM secrets WHERE name = $1")
                .bind(name)
                .fetch_optional(p)
                .await?;
            row.as_ref().map(meta_from_row).transpose()
        })
    }

    /// One page of secret metadata, ordered by name.
    pub async fn list_secrets(&self, q: &PageQuery) -> Result<Page<SecretMeta>, StoreError> {
        let size = page_size(q.limit);
        let items = on_pool!(self, |p| {
            let rows = sqlx::query(
                "SELECT name, key_id, created_at, updated_at FROM secrets \
                 WHERE ($1 IS NULL OR name > $1) ORDER BY name LIMIT $2",
            )
            .bind(q.after.as_deref())
            .bind(i64::from(size) + 1)
            .fetch_all(p)
            .await?;
            rows.iter().map(meta_from_row).collect::<Result<Vec<_>, _>>()?
        });
        Ok(Page::from_rows(items, size, |m| &m.name))
    }

    /// The plaintext of a secret, opened with the current keyring.
    pub async fn secret_value(&self, name: &str) -> Result<Option<SecretValue>, StoreError> {
        let sealed: Option<String> = on_pool!(self, |p| {
            sqlx::query_scalar("SELECT sealed FROM secrets WHERE name = $1").bind(name).fetch_optional(p).await?
        });
        sealed.map(|s| open_value(&self.keyring(), name, &s)).transpose()
    }

    /// Deletes, then (same tx) checks provider refs; any → rollback + SecretInUse (sorted names).
    /// This order matters on Postgres READ COMMITTED: the DELETE waits on a concurrent provider
    /// save's FOR SHARE lock, and the ref check that follows then sees that save's refs.
    pub async fn delete_secret(&self, name: &str) -> Result<(), StoreError> {
        write_tx!(self, &[Change::new(ConfigKind::Secret, name)], |tx, is_pg| {
            let deleted = sqlx::query("DELETE FROM secrets WHERE name = $1").bind(name).execute(&mut *tx).await?;
            if deleted.rows_affected() == 0 {
                return Err(StoreError::NotFound { what: "secret", name: name.to_owned() });
            }
            sqlx::query("DELETE FROM secret_bindings WHERE secret = $1").bind(name).execute(&mut *tx).await?;
            let providers: Vec<String> = sqlx::query_scalar(
                "SELECT DISTINCT provider FROM provider_secret_refs WHERE secret = $1 ORDER BY provider",
            )
            .bind(name)
            .fetch_all(&mut *tx)
            .await?;
            if !providers.is_empty() {
                return Err(StoreError::SecretInUse { name: name.to_owned(), providers });
            }
        });
        Ok(())
    }

    /// Every secret's bound hosts (secrets without a binding are absent).
    pub async fn all_secret_bindings(&self) -> Result<HashMap<String, BTreeSet<String>>, StoreError> {
        let rows: Vec<(String, String)> = on_pool!(self, |p| {
            sqlx::query_as("SELECT secret, host FROM secret_bindings ORDER BY secret, host").fetch_all(p).await?
        });
        let mut out: HashMap<String, BTreeSet<String>> = HashMap::new();
        for (secret, host) in rows {
            out.entry(secret).or_default().insert(host);
        }
        Ok(out)
    }

    /// One secret's bound hosts (empty: not bound).
    pub async fn secret_bindings(&self, secret: &str) -> Result<BTreeSet<String>, StoreError> {
        let hosts: Vec<String> = on_pool!(self, |p| {
            sqlx::query_scalar("SELECT host FROM secret_bindings WHERE secret = $1 ORDER BY host")
                .bind(secret)
                .fetch_all(p)
                .await?
        });
        Ok(hosts.into_iter().collect())
    }

    /// Binds `host` to `secret` in one transaction: an unbound secret becomes bound to it
    /// (first use binds); a secret bound elsewhere gets it added only when `add_if_other`
    /// (an admin's save), else nothing changes and the current binding is returned.
    pub async fn bind_secret_host(
        &self,
        secret: &str,
        host: &str,
        add_if_other: bool,
    ) -> Result<BindOutcome, StoreError> {
        let outcome = write_tx!(self, &[Change::new(ConfigKind::Secret, secret)], |tx, is_pg| {
            bind_host!(tx, secret, host, add_if_other)
        });
        Ok(outcome)
    }

    /// Replaces `secret`'s binding with `hosts` (empty: unbound).
    pub async fn set_secret_bindings(&self, secret: &str, hosts: &BTreeSet<String>) -> Result<(), StoreError> {
        write_tx!(self, &[Change::new(ConfigKind::Secret, secret)], |tx, is_pg| {
            sqlx::query("DELETE FROM secret_bindings WHERE secret = $1").bind(secret).execute(&mut *tx).await?;
            for host in hosts {
                sqlx::query("INSERT INTO secret_bindings (secret, host) VALUES ($1, $2)")
                    .bind(secret)
                    .bind(host)
                    .execute(&mut *tx)
                    .await?;
            }
        });
        Ok(())
    }

    /// Binds each secret that has no binding yet to the given hosts (start-up: providers
    /// saved before bindings existed). Secrets already bound are left alone. Returns how many
    /// secrets were bound.
    pub async fn backfill_secret_bindings(
        &self,
        wanted: &HashMap<String, BTreeSet<String>>,
    ) -> Result<usize, StoreError> {
        if wanted.is_empty() {
            return Ok(0);
        }
        let changes: Vec<Change> = wanted.keys().map(|s| Change::new(ConfigKind::Secret, s)).collect();
        let count = write_tx!(self, &changes, |tx, is_pg| {
            let mut count = 0;
            for (secret, hosts) in wanted {
                let bound: Option<String> =
                    sqlx::query_scalar("SELECT host FROM secret_bindings WHERE secret = $1 LIMIT 1")
                        .bind(secret)
                        .fetch_optional(&mut *tx)
                        .await?;
                if bound.is_some() || hosts.is_empty() {
                    continue;
                }
                for host in hosts {
                    sqlx::query("INSERT INTO secret_bindings (secret, host) VALUES ($1, $2)")
                        .bind(secret)
                        .bind(host)
                        .execute(&mut *tx)
                        .await?;
                }
                count += 1;
            }
            count
        });
        Ok(count)
    }

    /// Names of the providers whose refs name `secret`, sorted.
    pub async fn providers_referencing(&self, secret: &str) -> Result<Vec<String>, StoreError> {
        let names = on_pool!(self, |p| {
            sqlx::query_scalar("SELECT DISTINCT provider FROM provider_secret_refs WHERE secret = $1 ORDER BY provider")
                .bind(secret)
                .fetch_all(p)
                .await?
        });
        Ok(names)
    }

    /// Re-seals every secret under `new_primary` in one transaction; on success the store's
    /// keyring becomes (new_primary, old keys retained for reading). Returns how many secrets
    /// were re-sealed. Fails without changing anything if any secret cannot be opened.
    /// `updated_at` is left alone: the values did not change.
    pub async fn rotate_master_key(&self, new_primary: MasterKey) -> Result<usize, StoreError> {
        let current = self.keyring();
        let next = current.keys().cloned().fold(Keyring::new(new_primary), Keyring::with_old);
        let new_id = next.primary_id();
        let count = write_tx!(self, &[Change::all(ConfigKind::Secret)], |tx, is_pg| {
            let rows: Vec<(String, String)> =
                sqlx::query_as("SELECT name, sealed FROM secrets ORDER BY name").fetch_all(&mut *tx).await?;
            for (name, sealed) in &rows {
                let plain = next.open(&aad(name), sealed)?;
                let resealed = next.seal(&aad(name), &plain)?;
                sqlx::query("UPDATE secrets SET sealed = $2, key_id = $3 WHERE name = $1")
                    .bind(name)
                    .bind(&resealed)
                    .bind(&new_id)
                    .execute(&mut *tx)
                    .await?;
            }
            rows.len()
        });
        self.set_keyring(next);
        tracing::info!(key_id = %new_id, secrets = count, "master key rotated");
        Ok(count)
    }
}
