//! `page_size` / `page_token` handling shared by every list endpoint. Page tokens are opaque
//! to clients: `k1.` then the hex of the last key of the previous page. Every string matching
//! [`TOKEN_PATTERN`] is a valid token (a cursor into the keyset: "the items after this key"),
//! so the OpenAPI document describes exactly what is accepted; anything else is a 400 naming
//! `page_token`. A forged token only moves the cursor: filters and scope still apply.

use crate::error::ApiError;

pub const DEFAULT_PAGE_SIZE: u32 = 50;
pub const MAX_PAGE_SIZE: u32 = 1000;
const TOKEN_PREFIX: &str = "k1.";
/// The shape of a page token, as the OpenAPI document states it.
pub const TOKEN_PATTERN: &str = "^(k1\\.([0-9a-f]{2})*)?$";

/// A parsed page request: where to start and how many.
#[derive(Debug, Clone)]
pub struct PageRequest {
    pub after: Option<String>,
    pub limit: u32,
}

/// Parses `page_size` (1..=1000, default 50; larger values are capped) and `page_token` (an
/// empty token is the first page).
pub fn parse(page_size: Option<&str>, page_token: Option<&str>) -> Result<PageRequest, ApiError> {
    let limit = match page_size.map(str::trim) {
        None => DEFAULT_PAGE_SIZE,
        Some("") => return Err(ApiError::invalid("page_size", "must not be empty; omit it for the default")),
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
    let mut out = String::with_capacity(TOKEN_PREFIX.len() + key.len() * 2);
    out.push_str(TOKEN_PREFIX);
    for b in key.bytes() {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Any token matching [`TOKEN_PATTERN`] decodes; bytes that are not UTF-8 become U+FFFD, which
/// still orders as a cursor.
fn decode(token: &str) -> Option<String> {
    let hex = token.strip_prefix(TOKEN_PREFIX)?.as_bytes();
    if hex.len() % 2 != 0 {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let bytes = hex.chunks_exact(2).map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?)).collect::<Option<Vec<u8>>>()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_any_pattern_match_decodes() {
        for key in ["", "openai-prod", "openai\u{1f}gpt-4o", "ünïcode"] {
            let t = encode(key);
            assert!(regex_lite_match(&t), "{t}");
            assert_eq!(decode(&t).as_deref(), Some(key));
        }
        assert_eq!(decode("k1.ff").as_deref(), Some("\u{fffd}"));
        for bad in ["k1.f", "k1.FF", "k1:00", "azE6", "k1.zz"] {
            assert!(decode(bad).is_none(), "{bad}");
        }
        assert!(parse(None, Some("k1.zz")).is_err());
        assert!(!regex_lite_match("k1.zz") && !regex_lite_match("k1.f") && regex_lite_match(""));
        assert_eq!(parse(None, Some("")).map(|p| p.after).ok(), Some(None));
        assert!(parse(Some(""), None).is_err());
        assert_eq!(parse(None, Some("k1.6162")).map(|p| p.after).ok().flatten().as_deref(), Some("ab"));
    }

    fn regex_lite_match(t: &str) -> bool {
        regex_lite::Regex::new(TOKEN_PATTERN).is_ok_and(|re| re.is_match(t))
    }
}
