//! A real OpenID Connect identity provider for tests, over HTTP on 127.0.0.1: discovery
//! (`/.well-known/openid-configuration`), a JWKS (`/jwks`, fetches counted), an authorize
//! endpoint that approves the configured user at once (no login page) and a token endpoint
//! that checks the PKCE verifier (S256) before it answers with an ID token. Keys are generated
//! per IdP (RS256, ES256 and EdDSA; rcgen on aws-lc-rs) and tokens are signed with
//! `jsonwebtoken`: no hand-written crypto. Keys rotate with [`TestIdp::rotate`] and
//! [`TestIdp::retire`].
//!
//! For the refusal tests it also builds the classic bad tokens: `alg: none`
//! ([`TestIdp::unsigned`]) and HMAC confusion, an HS256 token whose secret is the RSA public
//! key ([`TestIdp::hmac_confusion`]).

use anyhow::{Context, anyhow};
use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// One signing key the IdP publishes.
struct Key {
    kid: String,
    alg: Algorithm,
    enc: EncodingKey,
    jwk: Value,
    /// SubjectPublicKeyInfo PEM of the public key (what an HMAC-confusion attacker would use).
    public_pem: String,
}

/// An authorization code waiting for its token request.
struct Pending {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    nonce: Option<String>,
}

struct Shared {
    issuer: String,
    keys: Mutex<Vec<Key>>,
    jwks_fetches: AtomicUsize,
    token_requests: AtomicUsize,
    /// Claims of the user the authorize endpoint approves.
    user: Mutex<Value>,
    client_id: Mutex<Option<String>>,
    codes: Mutex<HashMap<String, Pending>>,
    authorize_queries: Mutex<Vec<HashMap<String, String>>>,
    next_kid: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Seconds since the Unix epoch (the system clock; tests that move the gateway's clock add
/// their offset to the claims they mint).
pub fn now_s() -> i64 {
    chrono::Utc::now().timestamp()
}

fn new_key(kid: String, alg: Algorithm) -> anyhow::Result<Key> {
    let rc_alg = match alg {
        Algorithm::RS256 => &rcgen::PKCS_RSA_SHA256,
        Algorithm::ES256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        Algorithm::EdDSA => &rcgen::PKCS_ED25519,
        other => return Err(anyhow!("the test IdP signs RS256, ES256 or EdDSA, not {other:?}")),
    };
    let pair = rcgen::KeyPair::generate_for(rc_alg)?;
    let pem = pair.serialize_pem();
    let enc = match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(pem.as_bytes())?,
        Algorithm::ES256 => EncodingKey::from_ec_pem(pem.as_bytes())?,
        _ => EncodingKey::from_ed_pem(pem.as_bytes())?,
    };
    let mut jwk = match alg {
        // jsonwebtoken derives Ed25519 JWKs from PKCS#8 v1 only; rcgen writes v2 (with the
        // public key), so the JWK is built from the raw public key.
        Algorithm::EdDSA => {
            json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "x": URL_SAFE_NO_PAD.encode(pair.public_key_raw())})
        }
        _ => serde_json::to_value(Jwk::from_encoding_key(&enc, alg)?)?,
    };
    jwk["kid"] = json!(kid);
    jwk["use"] = json!("sig");
    Ok(Key { kid, alg, enc, jwk, public_pem: pair.public_key_pem() })
}

/// A running test identity provider. Stopped on drop.
pub struct TestIdp {
    /// `http://127.0.0.1:<port>`: the issuer (`iss`) and the base of every endpoint.
    pub issuer: String,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for TestIdp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestIdp").field("issuer", &self.issuer).finish_non_exhaustive()
    }
}

impl TestIdp {
    /// Starts an IdP with one key per algorithm (kids `rs-1`, `es-1`, `ed-1`) and the user
    /// `alice@example.com` for the authorize endpoint.
    pub async fn start() -> anyhow::Result<TestIdp> {
        let keys = vec![
            new_key("rs-1".into(), Algorithm::RS256)?,
            new_key("es-1".into(), Algorithm::ES256)?,
            new_key("ed-1".into(), Algorithm::EdDSA)?,
        ];
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<anyhow::Result<SocketAddr>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let issuer = format!("http://{addr}");
        let shared = Arc::new(Shared {
            issuer: issuer.clone(),
            keys: Mutex::new(keys),
            jwks_fetches: AtomicUsize::new(0),
            token_requests: AtomicUsize::new(0),
            user: Mutex::new(json!({"sub": "alice", "email": "alice@example.com"})),
            client_id: Mutex::new(None),
            codes: Mutex::new(HashMap::new()),
            authorize_queries: Mutex::new(Vec::new()),
            next_kid: AtomicUsize::new(2),
        });
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .with_state(shared.clone());
        let thread = std::thread::Builder::new().name("test-idp".into()).spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.into()));
                    return;
                }
            };
            rt.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.into()));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(addr));
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stop_rx.await;
                    })
                    .await;
            });
        })?;
        ready_rx.await.context("test IdP thread died")??;
        Ok(TestIdp { issuer, shared, stop: Some(stop_tx), thread: Some(thread) })
    }

    /// Standard claims for `aud`: `iss`, `sub` (`alice`), `email`, `iat`, `exp` in an hour.
    pub fn claims(&self, aud: &str) -> Value {
        let now = now_s();
        json!({"iss": self.issuer, "aud": aud, "sub": "alice", "email": "alice@example.com",
               "iat": now, "exp": now + 3600})
    }

    /// Signs `claims` with the newest key of `alg`.
    pub fn sign(&self, alg: Algorithm, claims: &Value) -> anyhow::Result<String> {
        let keys = lock(&self.shared.keys);
        let key = keys.iter().rev().find(|k| k.alg == alg).ok_or_else(|| anyhow!("no {alg:?} key"))?;
        sign_with(key, claims)
    }

    /// Signs `claims` with the key `kid` (even a retired one).
    pub fn sign_with_kid(&self, kid: &str, claims: &Value) -> anyhow::Result<String> {
        let keys = lock(&self.shared.keys);
        let key = keys.iter().find(|k| k.kid == kid).ok_or_else(|| anyhow!("no key {kid}"))?;
        sign_with(key, claims)
    }

    /// Signs with a key of `alg` that the JWKS never published, under the kid `kid`.
    pub fn sign_with_unpublished(&self, alg: Algorithm, kid: &str, claims: &Value) -> anyhow::Result<String> {
        let key = new_key(kid.to_string(), alg)?;
        sign_with(&key, claims)
    }

    /// Adds a new key of `alg` to the JWKS; tokens of `alg` are signed with it from now on.
    /// Returns its kid.
    pub fn rotate(&self, alg: Algorithm) -> anyhow::Result<String> {
        let n = self.shared.next_kid.fetch_add(1, Ordering::Relaxed);
        let prefix = match alg {
            Algorithm::RS256 => "rs",
            Algorithm::ES256 => "es",
            _ => "ed",
        };
        let key = new_key(format!("{prefix}-{n}"), alg)?;
        let kid = key.kid.clone();
        lock(&self.shared.keys).push(key);
        Ok(kid)
    }

    /// Removes `kid` from the JWKS (tokens can still be signed with it, for tests).
    pub fn retire(&self, kid: &str) {
        for k in lock(&self.shared.keys).iter_mut().filter(|k| k.kid == kid) {
            k.jwk = Value::Null;
        }
    }

    /// An `alg: none` token: the header names the RSA key, the signature is empty.
    pub fn unsigned(&self, claims: &Value) -> String {
        let header = json!({"alg": "none", "typ": "JWT", "kid": "rs-1"});
        format!("{}.{}.", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()))
    }

    /// HMAC confusion: an HS256 token under the RSA key's kid whose HMAC secret is that key's
    /// public key PEM (what a verifier that lets the token pick the algorithm would check
    /// against).
    pub fn hmac_confusion(&self, claims: &Value) -> anyhow::Result<String> {
        let keys = lock(&self.shared.keys);
        let rsa = keys.iter().find(|k| k.kid == "rs-1").ok_or_else(|| anyhow!("no rs-1"))?;
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(rsa.kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(rsa.public_pem.as_bytes())?)?)
    }

    /// How many times the JWKS was fetched.
    pub fn jwks_fetches(&self) -> usize {
        self.shared.jwks_fetches.load(Ordering::SeqCst)
    }

    /// How many token requests the token endpoint answered with tokens.
    pub fn token_requests(&self) -> usize {
        self.shared.token_requests.load(Ordering::SeqCst)
    }

    /// The claims the authorize endpoint approves (merged over `sub`/`email` defaults).
    pub fn set_user(&self, claims: Value) {
        *lock(&self.shared.user) = claims;
    }

    /// Only this client id may use the authorize and token endpoints.
    pub fn set_client_id(&self, client_id: &str) {
        *lock(&self.shared.client_id) = Some(client_id.to_string());
    }

    /// The query strings the authorize endpoint received.
    pub fn authorize_queries(&self) -> Vec<HashMap<String, String>> {
        lock(&self.shared.authorize_queries).clone()
    }
}

impl Drop for TestIdp {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn sign_with(key: &Key, claims: &Value) -> anyhow::Result<String> {
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.clone());
    Ok(jsonwebtoken::encode(&header, claims, &key.enc)?)
}

async fn discovery(State(s): State<Arc<Shared>>) -> Response {
    let i = &s.issuer;
    axum::Json(json!({
        "issuer": i,
        "jwks_uri": format!("{i}/jwks"),
        "authorization_endpoint": format!("{i}/authorize"),
        "token_endpoint": format!("{i}/token"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256", "EdDSA"],
        "code_challenge_methods_supported": ["S256"],
    }))
    .into_response()
}

async fn jwks(State(s): State<Arc<Shared>>) -> Response {
    s.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    let keys: Vec<Value> = lock(&s.keys).iter().map(|k| k.jwk.clone()).filter(|j| !j.is_null()).collect();
    axum::Json(json!({ "keys": keys })).into_response()
}

fn oauth_error(code: &str, why: &str) -> Response {
    (StatusCode::BAD_REQUEST, axum::Json(json!({"error": code, "error_description": why}))).into_response()
}

async fn authorize(State(s): State<Arc<Shared>>, Query(q): Query<HashMap<String, String>>) -> Response {
    lock(&s.authorize_queries).push(q.clone());
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    if get("response_type") != "code" {
        return oauth_error("unsupported_response_type", "response_type must be code");
    }
    if get("code_challenge_method") != "S256" || get("code_challenge").is_empty() {
        return oauth_error("invalid_request", "PKCE with S256 is required");
    }
    if lock(&s.client_id).as_deref().is_some_and(|c| c != get("client_id")) {
        return oauth_error("unauthorized_client", "unknown client_id");
    }
    let redirect = get("redirect_uri");
    let Ok(mut target) = url::Url::parse(&redirect) else {
        return oauth_error("invalid_request", "redirect_uri");
    };
    let code = uuid::Uuid::now_v7().simple().to_string();
    lock(&s.codes).insert(
        code.clone(),
        Pending {
            client_id: get("client_id"),
            redirect_uri: redirect,
            challenge: get("code_challenge"),
            nonce: q.get("nonce").cloned(),
        },
    );
    target.query_pairs_mut().append_pair("code", &code);
    if let Some(state) = q.get("state") {
        target.query_pairs_mut().append_pair("state", state);
    }
    Redirect::to(target.as_str()).into_response()
}

async fn token(State(s): State<Arc<Shared>>, Form(f): Form<HashMap<String, String>>) -> Response {
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    if get("grant_type") != "authorization_code" {
        return oauth_error("unsupported_grant_type", "authorization_code only");
    }
    let Some(p) = lock(&s.codes).remove(&get("code")) else {
        return oauth_error("invalid_grant", "unknown or used code");
    };
    if p.client_id != get("client_id") || p.redirect_uri != get("redirect_uri") {
        return oauth_error("invalid_grant", "client_id or redirect_uri differ from the authorize request");
    }
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, get("code_verifier").as_bytes());
    if URL_SAFE_NO_PAD.encode(digest.as_ref()) != p.challenge {
        return oauth_error("invalid_grant", "the PKCE code_verifier does not match the code_challenge");
    }
    let now = now_s();
    let mut claims = json!({"iss": s.issuer, "aud": p.client_id, "iat": now, "exp": now + 3600});
    if let Some(n) = p.nonce {
        claims["nonce"] = json!(n);
    }
    if let (Some(c), Some(u)) = (claims.as_object_mut(), lock(&s.user).as_object()) {
        for (k, v) in u {
            c.insert(k.clone(), v.clone());
        }
    }
    let signed = {
        let keys = lock(&s.keys);
        match keys.iter().find(|k| k.alg == Algorithm::RS256 && !k.jwk.is_null()) {
            Some(k) => sign_with(k, &claims),
            None => Err(anyhow!("no RS256 key")),
        }
    };
    match signed {
        Ok(id_token) => {
            s.token_requests.fetch_add(1, Ordering::SeqCst);
            axum::Json(json!({"id_token": id_token, "token_type": "Bearer", "expires_in": 3600})).into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}
