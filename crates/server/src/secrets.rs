//! Where secret values come from: the sealed database table (read-write), environment
//! variables or a directory of files (both read-only, for operators who manage secrets
//! elsewhere, e.g. Kubernetes secret mounts). Values never leave this module except as
//! `SecretValue`, whose `Debug` is redacted.

use crate::error::ApiError;
use crate::settings::{SecretBackendKind, Settings};
use crate::snapshot::Snapshot;
use std::path::PathBuf;
use tollgate_core::validate;
use tollgate_store::{SecretMeta, SecretValue, Store, StoreError};

/// The configured secret backend.
#[derive(Debug, Clone)]
pub enum SecretSource {
    Database,
    Env { prefix: String },
    Dir { path: PathBuf },
}

impl SecretSource {
    pub fn from_settings(s: &Settings) -> Result<SecretSource, String> {
        Ok(match s.secret_backend {
            SecretBackendKind::Database => SecretSource::Database,
            SecretBackendKind::Env => SecretSource::Env { prefix: s.secret_env_prefix.clone() },
            SecretBackendKind::Dir => SecretSource::Dir {
                path: s.secret_dir.clone().ok_or("--secret-dir is required with --secret-backend dir")?,
            },
        })
    }

    pub fn kind(&self) -> SecretBackendKind {
        match self {
            SecretSource::Database => SecretBackendKind::Database,
            SecretSource::Env { .. } => SecretBackendKind::Env,
            SecretSource::Dir { .. } => SecretBackendKind::Dir,
        }
    }

    pub fn is_writable(&self) -> bool {
        matches!(self, SecretSource::Database)
    }

    pub fn read_only_error(&self) -> ApiError {
        ApiError::FailedPrecondition(format!(
            "the secret backend `{}` is read-only; manage these secrets where they live",
            self.kind().as_str()
        ))
    }

    fn env_name(prefix: &str, name: &str) -> String {
        format!("{prefix}{name}")
    }

    /// A provider credential on the request path: borrowed from the snapshot's cache for the
    /// database backend (no database read, no copy), read from the environment or the secret
    /// directory otherwise.
    pub async fn credential<'s>(
        &self,
        store: &Store,
        snap: &'s Snapshot,
        name: &str,
    ) -> Option<std::borrow::Cow<'s, SecretValue>> {
        match self {
            SecretSource::Database => snap.credentials.get(name).map(std::borrow::Cow::Borrowed),
            // Boxed: an external secret source's lookup (files, env) is a large future, and
            // inlined it would grow every proxied request's future.
            other => Box::pin(other.value(store, name)).await.ok().flatten().map(std::borrow::Cow::Owned),
        }
    }

    /// The value of a secret, if it exists.
    pub async fn value(&self, store: &Store, name: &str) -> Result<Option<SecretValue>, StoreError> {
        match self {
            SecretSource::Database => store.secret_value(name).await,
            SecretSource::Env { prefix } => {
                Ok(std::env::var(Self::env_name(prefix, name)).ok().filter(|v| !v.is_empty()).map(SecretValue::new))
            }
            SecretSource::Dir { path } => {
                if validate::secret_name(name).is_err() {
                    return Ok(None);
                }
                match tokio::fs::read_to_string(path.join(name)).await {
                    Ok(mut v) => {
                        if v.ends_with('\n') {
                            v.pop();
                            if v.ends_with('\r') {
                                v.pop();
                            }
                        }
                        Ok(if v.is_empty() { None } else { Some(SecretValue::new(v)) })
                    }
                    Err(_) => Ok(None),
                }
            }
        }
    }

    /// Whether a secret exists (and, for read-only backends, is non-empty).
    pub async fn exists(&self, store: &Store, name: &str) -> Result<bool, StoreError> {
        match self {
            SecretSource::Database => Ok(store.get_secret_meta(name).await?.is_some()),
            _ => Ok(self.value(store, name).await?.is_some()),
        }
    }

    /// Names (and times where known) of every secret of a read-only backend, sorted.
    pub async fn list_read_only(&self) -> Vec<SecretMeta> {
        let mut out = Vec::new();
        match self {
            SecretSource::Database => {}
            SecretSource::Env { prefix } => {
                for (k, v) in std::env::vars() {
                    if let Some(name) = k.strip_prefix(prefix.as_str())
                        && !v.is_empty()
                        && validate::secret_name(name).is_ok()
                        && !(prefix.is_empty() && k.starts_with("TOLLGATE_"))
                    {
                        out.push(SecretMeta {
                            name: name.to_string(),
                            key_id: String::new(),
                            created_at_ms: 0,
                            updated_at_ms: 0,
                        });
                    }
                }
            }
            SecretSource::Dir { path } => {
                if let Ok(mut rd) = tokio::fs::read_dir(path).await {
                    while let Ok(Some(e)) = rd.next_entry().await {
                        let name = e.file_name().to_string_lossy().into_owned();
                        if validate::secret_name(&name).is_err() {
                            continue;
                        }
                        if let Ok(md) = tokio::fs::metadata(e.path()).await
                            && md.is_file()
                        {
                            let ms = md
                                .modified()
                                .ok()
                                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
                            out.push(SecretMeta { name, key_id: String::new(), created_at_ms: ms, updated_at_ms: ms });
                        }
                    }
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}
