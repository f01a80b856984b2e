//! Gateway-token roles and principals.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use utoipa::ToSchema;

/// What a gateway token may do. Roles are ordered: each includes everything below it.
/// `invoker` may only call the proxy; `reader` may also get and list admin resources;
/// `writer` may create, update and delete providers and secrets; `admin` also manages tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Invoker,
    Reader,
    Writer,
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Invoker, Role::Reader, Role::Writer, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Invoker => "invoker",
            Role::Reader => "reader",
            Role::Writer => "writer",
            Role::Admin => "admin",
        }
    }

    /// True when a token of this role may do what `required` allows.
    pub fn allows(self, required: Role) -> bool {
        self >= required
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "invoker" => Ok(Role::Invoker),
            "reader" => Ok(Role::Reader),
            "writer" => Ok(Role::Writer),
            "admin" => Ok(Role::Admin),
            other => Err(format!("unknown role `{other}`; expected admin, writer, reader or invoker")),
        }
    }
}

/// Prefix of every gateway token.
pub const TOKEN_PREFIX: &str = "tg_";
/// Characters of the random part of a token (32 random bytes in base62 need 43).
pub const TOKEN_RANDOM_CHARS: usize = 43;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Builds a token `tg_` + 43 base62 characters from random bytes, using rejection
/// sampling so every character is uniform. `random` is called for more bytes as needed.
pub fn token_from_random(mut random: impl FnMut(&mut [u8])) -> String {
    let mut out = String::with_capacity(TOKEN_PREFIX.len() + TOKEN_RANDOM_CHARS);
    out.push_str(TOKEN_PREFIX);
    let mut buf = [0u8; 64];
    let mut produced = 0;
    while produced < TOKEN_RANDOM_CHARS {
        random(&mut buf);
        for b in buf {
            // 248 = 4 * 62: bytes at or above it would bias the result.
            if b < 248 && produced < TOKEN_RANDOM_CHARS {
                out.push(char::from(BASE62[usize::from(b % 62)]));
                produced += 1;
            }
        }
    }
    out
}

/// True when `s` has the shape of a gateway token (it may still be unknown or revoked).
pub fn looks_like_token(s: &str) -> bool {
    s.strip_prefix(TOKEN_PREFIX)
        .is_some_and(|r| r.len() == TOKEN_RANDOM_CHARS && r.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// The display prefix of a token: `tg_` plus its first six random characters.
pub fn display_prefix(token: &str) -> String {
    token.chars().take(TOKEN_PREFIX.len() + 6).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_order() {
        assert!(Role::Admin.allows(Role::Writer));
        assert!(Role::Writer.allows(Role::Reader));
        assert!(Role::Reader.allows(Role::Invoker));
        assert!(!Role::Reader.allows(Role::Writer));
        assert!(!Role::Invoker.allows(Role::Reader));
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn token_shape_and_uniform_alphabet() {
        let mut n = 0u8;
        let t = token_from_random(|b| {
            for x in b.iter_mut() {
                *x = n;
                n = n.wrapping_add(1);
            }
        });
        assert!(looks_like_token(&t), "{t}");
        assert_eq!(t.len(), 46);
        assert_eq!(display_prefix(&t).len(), 9);
        // bytes >= 248 are skipped, never mapped (they would bias the alphabet)
        let mut calls = 0;
        let t2 = token_from_random(|b| {
            calls += 1;
            b.fill(if calls == 1 { 250 } else { 61 });
        });
        assert_eq!(&t2[3..], "z".repeat(TOKEN_RANDOM_CHARS));
        assert_eq!(calls, 2);
    }
}
