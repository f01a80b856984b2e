//! Gateway-token authentication and role checks for the admin API (and, through [`lookup`],
//! for the proxy and the console sign-in). With `--oidc-issuer`, a JWT of the identity provider
//! is accepted wherever a gateway token is.
//!
//! Tokens are `tg_` + 43 base62 characters (256 random bits), stored only as SHA-256; a fast
//! hash is right for high-entropy tokens. Lookups hit the in-memory snapshot.

use crate::error::ApiError;
use crate::state::AppState;
use aws_lc_rs::digest;
use axum::http::HeaderMap;
use std::sync::Arc;
use tollgate_core::Role;
use tollgate_core::token::{looks_like_token, token_from_random};
use tollgate_store::TokenRecord;

/// SHA-256 of a token.
pub fn hash_token(token: &str) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// A fresh random token.
pub fn generate_token() -> Result<String, ApiError> {
    let mut failed = false;
    let token = token_from_random(|buf| {
        if aws_lc_rs::rand::fill(buf).is_err() {
            failed = true;
            buf.fill(0);
        }
    });
    if failed {
        return Err(ApiError::Internal("the system random generator failed".into()));
    }
    Ok(token)
}

/// The bearer token of a request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

/// Looks a presented token up in the snapshot and checks it is active at `now_ms`. With OIDC
/// on, a JWT is verified instead (CPU only: the identity provider's keys are cached, see
/// [`crate::oidc`]) and stands for the principal its claims name.
pub fn lookup(state: &AppState, token: &str, now_ms: i64) -> Result<Arc<TokenRecord>, ApiError> {
    if let Some(oidc) = state.oidc()
        && crate::oidc::looks_like_jwt(token)
    {
        return oidc.authenticate(token).map_err(|e| ApiError::Unauthenticated(e.to_string()));
    }
    if !looks_like_token(token) {
        return Err(ApiError::Unauthenticated("invalid gateway token".into()));
    }
    let snap = state.snapshot();
    let rec = snap
        .tokens
        .get(&hash_token(token))
        .cloned()
        .ok_or_else(|| ApiError::Unauthenticated("invalid or revoked gateway token".into()))?;
    if rec.expires_at_ms.is_some_and(|e| e <= now_ms) {
        return Err(ApiError::Unauthenticated("gateway token expired".into()));
    }
    Ok(rec)
}

/// Authenticates the request and checks the token's role is at least `required`.
pub fn authorize(state: &AppState, headers: &HeaderMap, required: Role) -> Result<Arc<TokenRecord>, ApiError> {
    let token = bearer(headers)
        .ok_or_else(|| ApiError::Unauthenticated("missing gateway token: send `Authorization: Bearer tg_…`".into()))?;
    let rec = lookup(state, token, state.now_ms())?;
    if !rec.role.allows(required) {
        return Err(ApiError::PermissionDenied(format!(
            "this token's role `{}` may not do this; it needs `{}` or higher",
            rec.role, required
        )));
    }
    Ok(rec)
}

/// Whether a token may act on a provider (tokens without a provider scope may act on all).
pub fn in_scope(token: &TokenRecord, provider: &str) -> bool {
    token.providers.as_ref().is_none_or(|p| p.iter().any(|n| n == provider))
}

/// Refuses a provider outside the token's scope.
pub fn require_scope(token: &TokenRecord, provider: &str) -> Result<(), ApiError> {
    if in_scope(token, provider) {
        Ok(())
    } else {
        Err(ApiError::PermissionDenied(format!("this token is not scoped to provider \"{provider}\"")))
    }
}
