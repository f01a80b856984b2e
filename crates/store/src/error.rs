//! The store's one error type, [`StoreError`].
//!
//! Variants are classified so the server can map them to HTTP in one place: `NotFound` → 404,
//! `AlreadyExists`/`SecretInUse`/`LastAdmin` → 409, `SecretNotFound` → 400 naming the field,
//! everything else → 500. Messages never contain secret values or key bytes.

/// Everything a store call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// `what` is `"provider"`, `"secret"` or `"token"`.
    #[error("{what} \"{name}\" not found")]
    NotFound { what: &'static str, name: String },
    #[error("{what} \"{name}\" already exists")]
    AlreadyExists { what: &'static str, name: String },
    /// A provider's `field` names a secret the secrets table does not hold.
    #[error("secret \"{name}\" not found")]
    SecretNotFound { field: String, name: String },
    /// `providers` is sorted.
    #[error("secret \"{name}\" is used by provider(s) {}", .providers.join(", "))]
    SecretInUse { name: String, providers: Vec<String> },
    /// A provider save would send `secret` to a host outside its binding (`hosts`, sorted).
    #[error("secret \"{secret}\" is bound to {}", .hosts.join(", "))]
    SecretBoundElsewhere { secret: String, hosts: Vec<String> },
    #[error("cannot revoke the last lasting admin token (unscoped, without an expiry)")]
    LastAdmin,
    /// A sealed value names a key id the keyring does not hold.
    #[error("sealed with master key \"{0}\", which is not in the keyring")]
    UnknownKeyId(String),
    #[error("crypto error: {0}")]
    Crypto(String),
    #[error("invalid database url: {0}")]
    InvalidUrl(String),
    /// [`crate::Store::connect_existing`]: the database (named, password hidden) does not exist or
    /// holds no gateway schema.
    #[error("{0} is not a Tollgate database (it does not exist, or no gateway ever started on it)")]
    NotAGatewayDatabase(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query argument outside what the store accepts (a caller bug, not user input).
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// A stored row that the store cannot decode (bad enum text, wrong hash length, bad JSON).
    #[error("corrupt row: {0}")]
    Corrupt(String),
}
