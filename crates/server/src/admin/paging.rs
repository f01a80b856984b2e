//! `page_size` / `page_token` handling shared by every list endpoint. Page tokens are opaque
//! to clients: base64url of the last key of the previous page.

use crate::error::ApiError;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub const DEFAULT_PAGE_SIZE: u32 = 50;
pub const MAX_PAGE_SIZE: u32 = 1000;
const TOKEN_VERSION: &str = "k1:";

/// A parsed page request: where to start and how many.
#[derive(Debug, Clone)]
pub struct PageRequest {
    pub after: Option<String>,
    pub limit: u32,
}

/// Parses `page_size` (1..=1000, default 50; larger values are capped) and `page_token`.
pub fn parse(page_size: Option<&str>, page_token: Option<&str>) -> Result<PageRequest, ApiError> {
    let limit = match page_size.map(str::trim).filter(|s| !s.is_empty()) {
        None => DEFAULT_PAGE_SIZE,
        Some(s) => match s.parse::<i64>() {
            Ok(0) => DEFAULT_PAGE_SIZE,
            Ok(n) if n < 0 => return Err(ApiError::invalid("page_size", "must be 0 or more")),
            Ok(n) => u32::try_from(n.min(i64::from(MAX_PAGE_SIZE))).unwrap_or(MAX_PAGE_SIZE),
            Err(_) => return Err(ApiError::invalid("page_size", format!("`{s}` is not an integer"))),
        },
    };
    let after = match page_token.filter(|s| !s.is_empty()) {
        None => None,
        Some(t) => Some(decode(t).ok_or_else(|| {
            ApiError::invalid("page_token", "is not a page token returned by this list; omit it to start over")
        })?),
    };
    Ok(PageRequest { after, limit })
}

/// The token that continues after `key`.
pub fn encode(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{TOKEN_VERSION}{key}"))
}

fn decode(token: &str) -> Option<String> {
    let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
    let s = String::from_utf8(bytes).ok()?;
    s.strip_prefix(TOKEN_VERSION).map(str::to_string)
}
