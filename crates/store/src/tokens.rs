//! Gateway tokens: who may call the gateway, stored by SHA-256 hash, never in clear.
//!
//! Ids are UUIDv7, so ordering by id is ordering by creation. Revocation keeps the row
//! (`revoked_at`) for audit and attribution. The store refuses to revoke the last admin token
//! that is still usable at `now_ms`, so an operator cannot lock themselves out.

use crate::changes::SIGNED_OUT;
use crate::db::RowExt;
use crate::types::page_size;
use crate::{Change, ConfigKind, Page, PageQuery, Role, Store, StoreError, TokenRecord};

macro_rules! token_select {
    ($tail:literal) => {
        concat!(
            "SELECT id, name, hash, prefix, user_email, agent, role, providers_json, ",
            "expires_at, created_at, revoked_at FROM gateway_tokens ",
            $tail
        )
    };
}

const INSERT_SQL: &str = "INSERT INTO gateway_tokens (id, name, hash, prefix, user_email, agent, \
     role, providers_json, expires_at, created_at, revoked_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING";
const INSERT_IF_EMPTY_SQL: &str = "INSERT INTO gateway_tokens (id, name, hash, prefix, user_email, \
     agent, role, providers_json, expires_at, created_at, revoked_at) \
     SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 \
     WHERE NOT EXISTS (SELECT 1 FROM gateway_tokens)";

fn token_from_row<R: RowExt>(row: &R) -> Result<TokenRecord, StoreError> {
    let id = row.text("id")?;
    let hash: [u8; 32] = row
        .bytes("hash")?
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("token \"{id}\" has a hash that is not 32 bytes")))?;
    let role_text = row.text("role")?;
    let role = role_text
        .parse::<Role>()
        .map_err(|_| StoreError::Corrupt(format!("token \"{id}\" has unknown role \"{role_text}\"")))?;
    let providers = match row.opt_text("providers_json")? {
        None => None,
        Some(json) => Some(
            serde_json::from_str::<Vec<String>>(&json)
                .map_err(|e| StoreError::Corrupt(format!("token \"{id}\" has bad providers_json: {e}")))?,
        ),
    };
    Ok(TokenRecord {
        name: row.text("name")?,
        hash,
        prefix: row.text("prefix")?,
        user: row.opt_text("user_email")?.map(Into::into),
        agent: row.opt_text("agent")?.map(Into::into),
        role,
        providers,
        expires_at_ms: row.opt_int("expires_at")?,
        created_at_ms: row.int("created_at")?,
        revoked_at_ms: row.opt_int("revoked_at")?,
        id: id.into(),
    })
}

fn providers_json(t: &TokenRecord) -> Result<Option<String>, StoreError> {
    t.providers
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("cannot encode token providers: {e}")))
}

/// Binds a token's eleven columns, in table order, to `$query`.
macro_rules! bind_token {
    ($query:expr, $t:expr, $providers:expr) => {
        $query
            .bind(&$t.id)
            .bind(&$t.name)
            .bind(&$t.hash[..])
            .bind(&$t.prefix)
            .bind($t.user.as_deref())
            .bind($t.agent.as_deref())
            .bind($t.role.as_str())
            .bind($providers.as_deref())
            .bind($t.expires_at_ms)
            .bind($t.created_at_ms)
            .bind($t.revoked_at_ms)
    };
}

impl Store {
    /// `AlreadyExists` (named by id) when the id or the hash is already stored.
    pub async fn insert_token(&self, t: &TokenRecord) -> Result<(), StoreError> {
        let providers = providers_json(t)?;
        write_tx!(self, &[Change::new(ConfigKind::Token, &*t.id)], |tx, is_pg| {
            let done = bind_token!(sqlx::query(INSERT_SQL), t, providers).execute(&mut *tx).await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::AlreadyExists { what: "token", name: t.id.to_string() });
            }
        });
        Ok(())
    }

    /// Inserts only when the tokens table is empty (first start); false when tokens already
    /// exist. Safe when replicas start together: the version bump serialises the check.
    pub async fn insert_bootstrap_token(&self, t: &TokenRecord) -> Result<bool, StoreError> {
        let providers = providers_json(t)?;
        write_tx!(self, &[Change::new(ConfigKind::Token, &*t.id)], |tx, is_pg| {
            let done = bind_token!(sqlx::query(INSERT_IF_EMPTY_SQL), t, providers).execute(&mut *tx).await?;
            if done.rows_affected() == 0 {
                return Ok(false);
            }
        });
        Ok(true)
    }

    pub async fn get_token(&self, id: &str) -> Result<Option<TokenRecord>, StoreError> {
        on_pool!(self, |p| {
            let row = sqlx::query(token_select!("WHERE id = $1")).bind(id).fetch_optional(p).await?;
            row.as_ref().map(token_from_row).transpose()
        })
    }

    /// One page of tokens, revoked ones included, ordered by id (creation order).
    pub async fn list_tokens(&self, q: &PageQuery) -> Result<Page<TokenRecord>, StoreError> {
        let size = page_size(q.limit);
        let items = on_pool!(self, |p| {
            let rows = sqlx::query(token_select!("WHERE ($1 IS NULL OR id > $1) ORDER BY id LIMIT $2"))
                .bind(q.after.as_deref())
                .bind(i64::from(size) + 1)
                .fetch_all(p)
                .await?;
            rows.iter().map(token_from_row).collect::<Result<Vec<_>, _>>()?
        });
        Ok(Page::from_rows(items, size, |t| &t.id))
    }

    /// Every token not revoked (expired ones included), ordered by id.
    pub async fn all_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        on_pool!(self, |p| {
            let rows = sqlx::query(token_select!("WHERE revoked_at IS NULL ORDER BY id")).fetch_all(p).await?;
            rows.iter().map(token_from_row).collect()
        })
    }

    /// Sets revoked_at (idempotent: an already revoked token is returned as is). `LastAdmin`
    /// when it is an admin token usable at `now_ms` and no other *lasting* admin token would
    /// remain: one not revoked, without an expiry and without a provider scope. An admin that
    /// expires, or that administers only some providers, cannot stand in for the last one (the
    /// gateway would be left without a token that can administer everything, for good).
    pub async fn revoke_token(&self, id: &str, now_ms: i64) -> Result<TokenRecord, StoreError> {
        let token = write_tx!(self, &[Change::new(ConfigKind::Token, id)], |tx, is_pg| {
            let row = sqlx::query(token_select!("WHERE id = $1")).bind(id).fetch_optional(&mut *tx).await?;
            let mut token = match row {
                Some(row) => token_from_row(&row)?,
                None => {
                    return Err(StoreError::NotFound { what: "token", name: id.to_owned() });
                }
            };
            if token.revoked_at_ms.is_some() {
                return Ok(token);
            }
            let usable = token.expires_at_ms.is_none_or(|e| e > now_ms);
            if token.role == Role::Admin && usable {
                let others: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM gateway_tokens WHERE role = 'admin' AND id <> $1 \
                     AND revoked_at IS NULL AND expires_at IS NULL AND providers_json IS NULL",
                )
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
                if others == 0 {
                    return Err(StoreError::LastAdmin);
                }
            }
            sqlx::query("UPDATE gateway_tokens SET revoked_at = $2 WHERE id = $1")
                .bind(id)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
            token.revoked_at_ms = Some(now_ms);
            token
        });
        Ok(token)
    }

    /// Records that the console session `session` (its cookie's MAC), valid until
    /// `expires_at_ms`, was signed out; every replica refuses it from its next reload. Rows of
    /// sessions expired at `now_ms` are deleted in the same transaction, so the table holds
    /// only sessions that could still be presented.
    pub async fn sign_out_session(&self, session: &str, expires_at_ms: i64, now_ms: i64) -> Result<(), StoreError> {
        write_tx!(self, &[Change::new(ConfigKind::Session, SIGNED_OUT)], |tx, is_pg| {
            sqlx::query("DELETE FROM console_signouts WHERE expires_at <= $1").bind(now_ms).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO console_signouts (session, expires_at) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(session)
                .bind(expires_at_ms)
                .execute(&mut *tx)
                .await?;
        });
        Ok(())
    }

    /// The signed-out console sessions that have not expired at `now_ms`.
    pub async fn signed_out_sessions(&self, now_ms: i64) -> Result<Vec<String>, StoreError> {
        on_pool!(self, |p| {
            let rows: Vec<String> = sqlx::query_scalar("SELECT session FROM console_signouts WHERE expires_at > $1")
                .bind(now_ms)
                .fetch_all(p)
                .await?;
            Ok(rows)
        })
    }
}
