//! OpenID Connect: JWTs from the operator's identity provider accepted wherever a gateway token
//! is, and the console's authorization-code exchange.
//!
//! - **Discovery** (`<issuer>/.well-known/openid-configuration`, whose `issuer` must be the
//!   configured one) gives the JWKS URI and the authorize/token endpoints; it is fetched at
//!   start and, while it fails, retried in the background every [`RETRY_MS`].
//! - **Keys**: the JWKS is parsed into [`KeySet`] (kid → decoding key and its one algorithm)
//!   behind an `ArcSwap`, so validating a JWT is CPU only: header → key by `kid` → signature
//!   (jsonwebtoken on aws-lc-rs) → `iss`, `aud` → `exp`/`nbf` against the gateway's
//!   [`Clock`] with [`SKEW_S`] of leeway. Only RS256, ES256 and EdDSA are accepted, and only
//!   with a key of that algorithm: `alg: none` does not parse and an HMAC algorithm is refused
//!   before any key is touched (no public key is ever used as an HMAC secret).
//! - **Refresh**: a JWT whose `kid` is unknown makes [`Oidc::ensure_key`] re-fetch the JWKS —
//!   at most once per [`MIN_REFRESH_MS`] of the gateway clock, by one caller while the others
//!   wait (rate limited, so made-up kids cannot make the gateway hammer the IdP). The request
//!   path calls it only for such a JWT; every other request reads the cache. The JWKS is also
//!   re-read every [`PERIODIC_MS`], so a key the IdP withdrew stops being accepted.
//! - **Claims → principal** ([`Oidc::principal`]): the user from `user_claim` (default
//!   `email`), the agent from `agent_claim`, the role from `role_claim` through the role map
//!   (the highest match; none → the default role, `invoker`), the expiry from `exp`. The
//!   result is a [`TokenRecord`] with the id `oidc:<sub>`, so roles, scope and usage
//!   attribution work exactly as for a gateway token.
//! - **Verified-token cache**: a JWT that passed is kept (by its SHA-256, at most
//!   [`CACHE_MAX`] entries, emptied when full and at every JWKS load) with its principal until
//!   its `exp` (+ skew), so a client that sends the same JWT again costs a hash and a map
//!   look-up instead of a signature check (20–100 µs).

use crate::settings::OidcSettings;
use crate::time::Clock;
use arc_swap::ArcSwap;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use tollgate_core::Role;
use tollgate_store::TokenRecord;

/// Leeway for `exp` and `nbf`, in seconds.
pub const SKEW_S: i64 = 60;
/// Unknown-kid refreshes are at most this often (gateway clock).
pub const MIN_REFRESH_MS: i64 = 10_000;
/// The JWKS is re-read this often regardless.
pub const PERIODIC_MS: u64 = 10 * 60 * 1000;
/// Discovery is retried this often while it fails.
pub const RETRY_MS: u64 = 10_000;
/// Verified JWTs kept at most (the cache is emptied when it is full).
pub const CACHE_MAX: usize = 10_000;
/// The only algorithms accepted.
pub const ALGORITHMS: [Algorithm; 3] = [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];

/// Why a JWT, or talking to the identity provider, failed. Messages never contain the token.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("malformed JWT or unsupported algorithm (RS256, ES256 and EdDSA are accepted)")]
    Malformed,
    #[error("JWT algorithm {0:?} is not accepted (RS256, ES256 and EdDSA are)")]
    Algorithm(Algorithm),
    #[error("JWT signed with an unknown key (kid {0:?})")]
    UnknownKey(Option<String>),
    #[error("JWT rejected: {0}")]
    Invalid(String),
    #[error("JWT expired")]
    Expired,
    #[error("JWT not valid yet")]
    NotYetValid,
    #[error("the identity provider's keys are not loaded yet")]
    NotReady,
    #[error("identity provider: {0}")]
    Provider(String),
}

/// What discovery says about the identity provider.
#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    pub issuer: String,
    pub jwks_uri: String,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
}

/// The identity provider's signing keys by kid.
#[derive(Default)]
struct KeySet {
    keys: HashMap<String, (Algorithm, DecodingKey)>,
    /// Keys without a kid (used only when the JWT names none).
    unnamed: Vec<(Algorithm, DecodingKey)>,
}

impl KeySet {
    fn from_jwks(body: &Value) -> KeySet {
        let mut set = KeySet::default();
        for raw in body["keys"].as_array().into_iter().flatten() {
            let Ok(jwk) = serde_json::from_value::<Jwk>(raw.clone()) else { continue };
            if raw["use"].as_str().is_some_and(|u| u != "sig") {
                continue;
            }
            let Some(alg) = key_algorithm(&jwk) else { continue };
            let Ok(key) = DecodingKey::from_jwk(&jwk) else { continue };
            match jwk.common.key_id.clone() {
                Some(kid) => {
                    set.keys.insert(kid, (alg, key));
                }
                None => set.unnamed.push((alg, key)),
            }
        }
        set
    }

    fn find(&self, kid: Option<&str>) -> Option<&(Algorithm, DecodingKey)> {
        match kid {
            Some(k) => self.keys.get(k),
            None if self.keys.is_empty() && self.unnamed.len() == 1 => self.unnamed.first(),
            None => None,
        }
    }
}

/// The one algorithm a JWK may verify: its `alg` when it names one we accept, else the one its
/// key type implies (RSA → RS256, P-256 → ES256, Ed25519 → EdDSA); other keys are skipped.
fn key_algorithm(jwk: &Jwk) -> Option<Algorithm> {
    let implied = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => Algorithm::ES256,
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => Algorithm::EdDSA,
        // Other curves, shared secrets (`oct`: never a key a public JWKS may hand out) and key
        // types the crate may add later: not usable (the enum is non-exhaustive upstream).
        _ => return None,
    };
    match jwk.common.key_algorithm {
        None => Some(implied),
        Some(named) => {
            // `KeyAlgorithm` and `Algorithm` spell the names alike (`RS256`, `EdDSA`, …).
            let named: Algorithm = format!("{named:?}").parse().ok()?;
            (named == implied).then_some(named)
        }
    }
}

/// Whether a presented credential is shaped like a JWT (three base64url parts, a JSON header).
pub fn looks_like_jwt(token: &str) -> bool {
    token.starts_with("eyJ") && token.bytes().filter(|b| *b == b'.').count() == 2
}

/// The gateway's side of the identity provider.
pub struct Oidc {
    settings: OidcSettings,
    http: reqwest::Client,
    clock: Clock,
    discovery: ArcSwap<Option<Discovery>>,
    keys: ArcSwap<KeySet>,
    refreshing: tokio::sync::Mutex<()>,
    last_refresh_ms: AtomicI64,
    /// SHA-256 of a verified JWT → its principal (valid until `expires_at_ms`).
    verified: std::sync::Mutex<HashMap<[u8; 32], Arc<TokenRecord>>>,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc").field("issuer", &self.settings.issuer).finish_non_exhaustive()
    }
}

/// Issuers compare without a trailing slash.
fn same_issuer(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

impl Oidc {
    pub fn new(settings: OidcSettings, http: reqwest::Client, clock: Clock) -> Oidc {
        Oidc {
            settings,
            http,
            clock,
            discovery: ArcSwap::from_pointee(None),
            keys: ArcSwap::from_pointee(KeySet::default()),
            refreshing: tokio::sync::Mutex::new(()),
            last_refresh_ms: AtomicI64::new(i64::MIN / 2),
            verified: std::sync::Mutex::new(HashMap::new()),
        }
    }

    pub fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    /// The discovery document, once fetched.
    pub fn discovery(&self) -> Option<Discovery> {
        self.discovery.load().as_ref().clone()
    }

    async fn get_json(&self, url: &str) -> Result<Value, OidcError> {
        let resp = self
            .http
            .get(url)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| OidcError::Provider(format!("GET {url}: {e}")))?;
        if !resp.status().is_success() {
            return Err(OidcError::Provider(format!("GET {url}: HTTP {}", resp.status())));
        }
        resp.json().await.map_err(|e| OidcError::Provider(format!("GET {url}: not JSON: {e}")))
    }

    /// Fetches discovery (once) and the JWKS.
    pub async fn load(&self) -> Result<(), OidcError> {
        let discovery = match self.discovery() {
            Some(d) => d,
            None => {
                let url = format!("{}/.well-known/openid-configuration", self.settings.issuer.trim_end_matches('/'));
                let d: Discovery = serde_json::from_value(self.get_json(&url).await?)
                    .map_err(|e| OidcError::Provider(format!("{url}: {e}")))?;
                if !same_issuer(&d.issuer, &self.settings.issuer) {
                    return Err(OidcError::Provider(format!(
                        "discovery names the issuer {:?}, not the configured {:?}",
                        d.issuer, self.settings.issuer
                    )));
                }
                self.discovery.store(Arc::new(Some(d.clone())));
                d
            }
        };
        let jwks = self.get_json(&discovery.jwks_uri).await?;
        let set = KeySet::from_jwks(&jwks);
        tracing::info!(issuer = %self.settings.issuer, keys = set.keys.len() + set.unnamed.len(), "OIDC signing keys loaded");
        self.keys.store(Arc::new(set));
        // A key may have been withdrawn: every JWT is verified again against the new set.
        if let Ok(mut cache) = self.verified.lock() {
            cache.clear();
        }
        self.last_refresh_ms.store(self.clock.now_ms(), Ordering::Relaxed);
        Ok(())
    }

    /// Before a JWT is validated: when its `kid` is not in the cache, re-reads the JWKS unless
    /// that was done less than [`MIN_REFRESH_MS`] ago. Never fails; validation reports.
    pub async fn ensure_key(&self, token: &str) {
        let Ok(header) = jsonwebtoken::decode_header(token) else { return };
        let known = |kid: Option<&str>| self.keys.load().find(kid).is_some();
        if known(header.kid.as_deref()) {
            return;
        }
        let _one = self.refreshing.lock().await;
        if known(header.kid.as_deref()) {
            return; // another request refreshed while this one waited
        }
        let now = self.clock.now_ms();
        if now.saturating_sub(self.last_refresh_ms.load(Ordering::Relaxed)) < MIN_REFRESH_MS {
            return;
        }
        self.last_refresh_ms.store(now, Ordering::Relaxed);
        if let Err(e) = self.load().await {
            tracing::warn!(error = %e, "refreshing the OIDC signing keys failed");
        }
    }

    /// Keeps discovery and the keys fresh until `stop`.
    pub async fn run(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            let wait = if self.discovery().is_some() { PERIODIC_MS } else { RETRY_MS };
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                () = tokio::time::sleep(Duration::from_millis(wait)) => {}
            }
            let _one = self.refreshing.lock().await;
            if let Err(e) = self.load().await {
                tracing::warn!(error = %e, "loading the OIDC signing keys failed; retrying");
            }
        }
    }

    /// Verifies a JWT's signature, issuer, audience and time window; returns its claims.
    pub fn verify(&self, token: &str, audience: &str) -> Result<Map<String, Value>, OidcError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| OidcError::Malformed)?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(OidcError::Algorithm(header.alg));
        }
        let keys = self.keys.load();
        if keys.keys.is_empty() && keys.unnamed.is_empty() {
            return Err(OidcError::NotReady);
        }
        let (alg, key) = keys.find(header.kid.as_deref()).ok_or_else(|| OidcError::UnknownKey(header.kid.clone()))?;
        if *alg != header.alg {
            return Err(OidcError::Invalid(format!("the key {:?} is for {alg:?}, not {:?}", header.kid, header.alg)));
        }
        let mut v = Validation::new(*alg);
        v.set_issuer(&[self.settings.issuer.as_str(), self.settings.issuer.trim_end_matches('/')]);
        v.set_audience(&[audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        // Time is checked below against the gateway's clock.
        v.validate_exp = false;
        v.validate_nbf = false;
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, key, &v).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            OidcError::Invalid(match e.kind() {
                ErrorKind::InvalidIssuer => "wrong issuer (iss)".to_string(),
                ErrorKind::InvalidAudience => "wrong audience (aud)".to_string(),
                ErrorKind::InvalidSignature => "bad signature".to_string(),
                ErrorKind::MissingRequiredClaim(c) => format!("missing claim {c}"),
                other => format!("{other:?}"),
            })
        })?;
        let claims = data.claims;
        let now_s = self.clock.now_ms() / 1000;
        let exp = claims.get("exp").and_then(Value::as_i64).ok_or_else(|| OidcError::Invalid("exp".into()))?;
        if now_s > exp.saturating_add(SKEW_S) {
            return Err(OidcError::Expired);
        }
        if claims.get("nbf").and_then(Value::as_i64).is_some_and(|nbf| nbf.saturating_sub(SKEW_S) > now_s) {
            return Err(OidcError::NotYetValid);
        }
        Ok(claims)
    }

    /// A JWT presented to the proxy or the admin API, as the principal it names (from the
    /// verified-token cache while it holds the JWT and the JWT has not expired).
    pub fn authenticate(&self, token: &str) -> Result<Arc<TokenRecord>, OidcError> {
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
        let mut key = [0u8; 32];
        key.copy_from_slice(d.as_ref());
        let now = self.clock.now_ms();
        if let Ok(cache) = self.verified.lock()
            && let Some(rec) = cache.get(&key)
            && rec.expires_at_ms.is_some_and(|e| e > now)
        {
            return Ok(rec.clone());
        }
        let claims = self.verify(token, &self.settings.audience)?;
        let rec = Arc::new(self.principal(&claims));
        if let Ok(mut cache) = self.verified.lock() {
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
            cache.insert(key, rec.clone());
        }
        Ok(rec)
    }

    /// The principal a set of verified claims names.
    pub fn principal(&self, claims: &Map<String, Value>) -> TokenRecord {
        let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_string).filter(|s| !s.is_empty());
        let user = text(&self.settings.user_claim);
        let agent = self.settings.agent_claim.as_deref().and_then(text);
        let sub = text("sub").or_else(|| user.clone()).unwrap_or_default();
        let role = self.role(claims);
        let exp = claims.get("exp").and_then(Value::as_i64).map(|s| s.saturating_mul(1000));
        TokenRecord {
            id: format!("oidc:{sub}").into(),
            name: format!("OIDC {sub}"),
            hash: [0; 32],
            prefix: "jwt".into(),
            user: user.map(Into::into),
            agent: agent.map(Into::into),
            role,
            providers: None,
            expires_at_ms: exp.map(|e| e.saturating_add(SKEW_S * 1000)),
            created_at_ms: claims.get("iat").and_then(Value::as_i64).map_or(0, |s| s.saturating_mul(1000)),
            revoked_at_ms: None,
        }
    }

    fn role(&self, claims: &Map<String, Value>) -> Role {
        let Some(claim) = &self.settings.role_claim else { return self.settings.default_role };
        let values: Vec<&str> = match claims.get(claim) {
            Some(Value::String(s)) => s.split_whitespace().collect(),
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        self.settings
            .role_map
            .iter()
            .filter(|(v, _)| values.contains(&v.as_str()))
            .map(|(_, r)| *r)
            .max()
            .unwrap_or(self.settings.default_role)
    }

    /// The console's authorization-code exchange: trades `code` (with the PKCE verifier) for an
    /// ID token at the token endpoint, verifies it for the console client and its `nonce`, and
    /// returns its claims.
    pub async fn exchange_code(
        &self,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
        nonce: &str,
    ) -> Result<Map<String, Value>, OidcError> {
        let endpoint = self
            .discovery()
            .and_then(|d| d.token_endpoint)
            .ok_or_else(|| OidcError::Provider("discovery names no token_endpoint".into()))?;
        let client_id = self.settings.console_client_id();
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("client_id", client_id),
            ("code_verifier", verifier),
        ];
        if let Some(secret) = &self.settings.client_secret {
            form.push(("client_secret", secret.expose()));
        }
        let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        let resp = self
            .http
            .post(&endpoint)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(body)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| OidcError::Provider(format!("token endpoint: {e}")))?;
        let status = resp.status();
        let answer: Value = resp.json().await.unwrap_or_default();
        if !status.is_success() {
            let why = answer["error"].as_str().unwrap_or("no error code");
            return Err(OidcError::Provider(format!("token endpoint answered HTTP {status}: {why}")));
        }
        let id_token = answer["id_token"]
            .as_str()
            .ok_or_else(|| OidcError::Provider("the token answer has no id_token".into()))?;
        self.ensure_key(id_token).await;
        let claims = self.verify(id_token, client_id)?;
        if claims.get("nonce").and_then(Value::as_str) != Some(nonce) {
            return Err(OidcError::Invalid("the ID token's nonce does not match this sign-in".into()));
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_shape() {
        assert!(looks_like_jwt("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"));
        assert!(!looks_like_jwt("tg_abc"));
        assert!(!looks_like_jwt("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0"));
    }

    #[test]
    fn roles_map_to_the_highest_match_else_the_default() {
        let mut s = OidcSettings::new("https://idp.example", "tollgate");
        s.role_claim = Some("groups".into());
        s.role_map = vec![("readers".into(), Role::Reader), ("admins".into(), Role::Admin)];
        let o = Oidc::new(s, reqwest::Client::new(), Clock::default());
        let claims = |v: Value| v.as_object().cloned().unwrap_or_default();
        assert_eq!(o.role(&claims(serde_json::json!({"groups": ["readers", "admins"]}))), Role::Admin);
        assert_eq!(o.role(&claims(serde_json::json!({"groups": "readers other"}))), Role::Reader);
        assert_eq!(o.role(&claims(serde_json::json!({"groups": ["nobody"]}))), Role::Invoker);
        assert_eq!(o.role(&claims(serde_json::json!({}))), Role::Invoker);
    }
}
