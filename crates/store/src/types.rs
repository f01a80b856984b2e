//! The records the store reads and writes, and the paging types of its list calls.
//!
//! Plain data: no SQL and no IO. `spec_json` is opaque here; the server owns its shape.
//! [`SecretValue`] is the only type holding a plaintext secret and never prints it.

use crate::{ProviderType, Role};
use std::fmt;
use tollgate_core::{Cost, RequestStatus, Usage};

/// One LLM provider as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderRecord {
    pub name: String,
    pub provider_type: ProviderType,
    pub display_name: String,
    pub enabled: bool,
    /// The full provider spec as JSON; opaque to the store.
    pub spec_json: String,
    /// `(field path, secret name)`, e.g. `("openai_config.api_key_ref", "OPENAI_API_KEY")`.
    pub secret_refs: Vec<(String, String)>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// Filters and keyset paging for [`crate::Store::list_providers`], ordered by name.
#[derive(Clone, Debug, Default)]
pub struct ProviderQuery {
    pub provider_type: Option<ProviderType>,
    pub enabled: Option<bool>,
    /// Case-insensitive substring of the name or the display name; `%` and `_` match literally.
    pub name_contains: Option<String>,
    /// Return names strictly after this one.
    pub after: Option<String>,
    /// Page size; 0 means [`DEFAULT_PAGE_SIZE`], values above [`MAX_PAGE_SIZE`] are capped.
    pub limit: u32,
}

/// Keyset paging for lists ordered by their key (secret name, token id).
#[derive(Clone, Debug, Default)]
pub struct PageQuery {
    pub after: Option<String>,
    /// Page size; 0 means [`DEFAULT_PAGE_SIZE`], values above [`MAX_PAGE_SIZE`] are capped.
    pub limit: u32,
}

pub const DEFAULT_PAGE_SIZE: u32 = 100;
pub const MAX_PAGE_SIZE: u32 = 1000;

/// Page size actually used for a requested `limit`.
pub(crate) fn page_size(limit: u32) -> u32 {
    match limit {
        0 => DEFAULT_PAGE_SIZE,
        n => n.min(MAX_PAGE_SIZE),
    }
}

/// One page of a list.
#[derive(Clone, Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// The last key of this page when more rows follow; pass it as `after` for the next page.
    pub next_after: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `size + 1` rows fetched in key order.
    pub(crate) fn from_rows(mut rows: Vec<T>, size: u32, key: impl Fn(&T) -> &str) -> Page<T> {
        let size = size as usize;
        let next_after = if rows.len() > size {
            rows.truncate(size);
            rows.last().map(|r| key(r).to_owned())
        } else {
            None
        };
        Page { items: rows, next_after }
    }
}

/// What the store shows about a secret: never its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretMeta {
    pub name: String,
    /// Id of the master key that sealed the current value.
    pub key_id: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// A plaintext secret value. `Debug` is redacted; there is no `Display` and no `Serialize`.
#[derive(Clone)]
pub struct SecretValue(String);

impl SecretValue {
    pub fn new(value: String) -> Self {
        SecretValue(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

/// A gateway token as stored: its SHA-256 hash, never the token itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRecord {
    /// UUIDv7, so id order is creation order.
    pub id: std::sync::Arc<str>,
    pub name: String,
    pub hash: [u8; 32],
    /// Display prefix, e.g. `tg_AbC123`.
    pub prefix: String,
    /// The principal's email.
    pub user: Option<std::sync::Arc<str>>,
    /// The principal's agent slug.
    pub agent: Option<std::sync::Arc<str>>,
    pub role: Role,
    /// Provider scope; `None` = every provider.
    pub providers: Option<Vec<String>>,
    pub expires_at_ms: Option<i64>,
    pub created_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
}

/// One proxied request as metered (ARCHITECTURE.md, Decisions: Money and usage).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageEvent {
    /// UUIDv7 (time-ordered).
    pub id: String,
    /// When the request arrived, epoch ms.
    pub ts_ms: i64,
    pub provider: std::sync::Arc<str>,
    pub provider_type: ProviderType,
    /// The model as the client called it (body or path), if the request named one.
    pub model: Option<String>,
    /// Upstream-relative path, e.g. `/chat/completions` (no query string).
    pub endpoint: String,
    pub user: Option<std::sync::Arc<str>>,
    pub agent: Option<std::sync::Arc<str>>,
    pub token_id: Option<std::sync::Arc<str>>,
    pub status: RequestStatus,
    /// The status the client received, when a response head was sent.
    pub http_status: Option<i64>,
    /// Short machine-readable class for non-success outcomes, e.g. `upstream_4xx`, `read_timeout`.
    pub error_class: Option<String>,
    pub streamed: bool,
    /// Arrival to the end of the response body (or the failure), ms.
    pub latency_ms: i64,
    /// Arrival to the first response body byte sent to the client, ms.
    pub ttft_ms: Option<i64>,
    pub usage: Usage,
    pub cost: Cost,
    pub catalog_version: Option<std::sync::Arc<str>>,
    pub priced_by_override: bool,
    /// The model (or a bucket with tokens) had no price: the cost is 0, not a guess.
    pub unpriced: bool,
    pub request_id: String,
    pub conversation_id: Option<String>,
    /// Where the request's transcript is, when its provider recorded one: the batch the usage
    /// writer sealed it into, and what it holds. `None` otherwise, and for events recorded
    /// before transcripts were batched (a transcript of theirs is a row of its own, keyed by the
    /// event id).
    pub transcript: Option<crate::transcripts::TranscriptRef>,
}
