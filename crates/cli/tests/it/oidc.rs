//! OpenID Connect against the testkit's identity provider (`TestIdp`: discovery, JWKS, signed
//! RS256/ES256/EdDSA tokens, key rotation, authorize + token endpoints): JWTs through the proxy
//! in every header a gateway token may use, attributed to their email and agent claims; roles
//! from the role claim on the admin API; expired, wrong-audience, wrong-issuer, `alg: none`,
//! HMAC-confusion and unknown-key tokens refused with 401; the JWKS refreshed on an unknown kid
//! at most once per interval; the console's "Sign in with …" flow (authorization code + PKCE)
//! over HTTP. The same flow in Chromium is in `console/browser.rs`.

use crate::console::Console;
use crate::proxy::{UPSTREAM_KEY, provider_at, usage_events};
use crate::support::*;
use jsonwebtoken::Algorithm;
use tollgate_core::{ProviderType, Role};
use tollgate_server::settings::OidcSettings;
use tollgate_testkit::idp::{TestIdp, now_s};
use tollgate_testkit::upstream::FakeUpstream;

const AUDIENCE: &str = "tollgate-api";
const CLIENT_ID: &str = "tollgate-console";

pub async fn oidc_gateway(idp: &TestIdp) -> TestGateway {
    let issuer = idp.issuer.clone();
    idp.set_client_id(CLIENT_ID);
    TestGateway::start_with(None, move |s| {
        let mut o = OidcSettings::new(issuer, AUDIENCE);
        o.client_id = Some(CLIENT_ID.into());
        o.agent_claim = Some("agent".into());
        o.role_claim = Some("groups".into());
        o.role_map = vec![("platform-admins".into(), Role::Admin), ("finance".into(), Role::Reader)];
        s.oidc = Some(o);
    })
    .await
    .unwrap_or_else(|e| panic!("gateway did not start: {e:#}"))
}

fn with(mut claims: Value, extra: Value) -> Value {
    crate::proxy::merge(&mut claims, extra);
    claims
}

async fn chat(gw: &TestGateway, header: &str, value: &str) -> (u16, Value) {
    let r = gw
        .client
        .post(gw.url("/llm/v1/providers/oidc-openai/chat/completions"))
        .header(header, value)
        .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

async fn openai_provider(gw: &TestGateway) -> FakeUpstream {
    let up = FakeUpstream::start(ProviderType::Openai, Some(UPSTREAM_KEY)).await.unwrap_or_else(|e| panic!("{e:#}"));
    secret(gw, "OPENAI_API_KEY", UPSTREAM_KEY).await;
    let body = provider_at("openai", "oidc-openai", &up.provider_base_url(), json!({}));
    expect(admin(gw, Method::POST, "/api/v1/llm-providers", Some(body)).await, 201);
    up
}

/// A JWT from each algorithm, in each place a gateway token may be, is served and attributed to
/// the JWT's email and agent claims; the role claim decides what the admin API allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_jwt_is_accepted_wherever_a_token_is_and_attributed_to_its_claims() {
    let idp = TestIdp::start().await.unwrap_or_else(|e| panic!("{e:#}"));
    let gw = oidc_gateway(&idp).await;
    let up = openai_provider(&gw).await;
    let cases = [
        (Algorithm::RS256, "authorization", true),
        (Algorithm::ES256, "x-tollgate-token", false),
        (Algorithm::EdDSA, "x-api-key", false),
        (Algorithm::RS256, "api-key", false),
        (Algorithm::ES256, "x-goog-api-key", false),
    ];
    for (i, (alg, header, bearer)) in cases.iter().enumerate() {
        let claims = with(idp.claims(AUDIENCE), json!({"agent": format!("agent-{i}")}));
        let jwt = idp.sign(*alg, &claims).unwrap_or_else(|e| panic!("{e:#}"));
        let value = if *bearer { format!("Bearer {jwt}") } else { jwt.clone() };
        let (status, body) = chat(&gw, header, &value).await;
        assert_eq!(status, 200, "{alg:?} in {header}: {body}");
        let last = up.requests().pop().unwrap_or_else(|| panic!("nothing forwarded"));
        assert!(last.headers.iter().all(|(_, v)| !String::from_utf8_lossy(v.as_bytes()).contains(&jwt)), "JWT leaked");
    }
    let events = usage_events(&gw, cases.len()).await;
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.user.as_deref(), Some("alice@example.com"), "{e:?}");
        assert_eq!(e.agent.as_deref(), Some(format!("agent-{i}").as_str()), "{e:?}");
        assert_eq!(e.token_id.as_deref(), Some("oidc:alice"), "{e:?}");
    }
    // `?key=` (Google's REST examples) works too.
    let jwt = idp.sign(Algorithm::EdDSA, &idp.claims(AUDIENCE)).unwrap_or_else(|e| panic!("{e:#}"));
    let r = gw
        .client
        .get(gw.url(&format!("/llm/v1/providers/oidc-openai/models?key={jwt}")))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), 200);

    // Roles: no group → invoker (proxy only); finance → reader; platform-admins → admin.
    let invoker = idp.sign(Algorithm::RS256, &idp.claims(AUDIENCE)).unwrap_or_else(|e| panic!("{e:#}"));
    let reader = idp
        .sign(Algorithm::ES256, &with(idp.claims(AUDIENCE), json!({"groups": ["finance"]})))
        .unwrap_or_else(|e| panic!("{e:#}"));
    let admin_jwt = idp
        .sign(Algorithm::EdDSA, &with(idp.claims(AUDIENCE), json!({"groups": ["staff", "platform-admins"]})))
        .unwrap_or_else(|e| panic!("{e:#}"));
    let list = "/api/v1/llm-providers";
    expect(call(&gw, Method::GET, list, Some(&invoker), None).await, 403);
    expect(call(&gw, Method::GET, list, Some(&reader), None).await, 200);
    let body = provider_at("openai", "by-jwt", &up.provider_base_url(), json!({}));
    expect(call(&gw, Method::POST, list, Some(&reader), Some(body.clone())).await, 403);
    expect(call(&gw, Method::POST, list, Some(&admin_jwt), Some(body)).await, 201);
    let tokens = expect(call(&gw, Method::GET, "/api/v1/tokens", Some(&admin_jwt), None).await, 200);
    assert!(tokens.is_object(), "{tokens}");
}

/// Every bad JWT is a 401, on the proxy and on the admin API, and none reaches the upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_foreign_unsigned_and_confused_jwts_are_refused() {
    let idp = TestIdp::start().await.unwrap_or_else(|e| panic!("{e:#}"));
    let gw = oidc_gateway(&idp).await;
    let up = openai_provider(&gw).await;
    let admin_claims = with(idp.claims(AUDIENCE), json!({"groups": ["platform-admins"]}));
    let now = now_s();
    let sign = |c: &Value| idp.sign(Algorithm::RS256, c).unwrap_or_else(|e| panic!("{e:#}"));
    let bad = [
        ("expired beyond the 60 s skew", sign(&with(admin_claims.clone(), json!({"exp": now - 120})))),
        ("wrong audience", sign(&with(admin_claims.clone(), json!({"aud": "someone-else"})))),
        ("wrong issuer", sign(&with(admin_claims.clone(), json!({"iss": "https://evil.example"})))),
        ("not valid yet", sign(&with(admin_claims.clone(), json!({"nbf": now + 600})))),
        ("no exp", sign(&json!({"iss": idp.issuer, "aud": AUDIENCE, "sub": "alice", "groups": ["platform-admins"]}))),
        ("alg none", idp.unsigned(&admin_claims)),
        ("HMAC confusion", idp.hmac_confusion(&admin_claims).unwrap_or_else(|e| panic!("{e:#}"))),
        (
            "a key the JWKS never published",
            idp.sign_with_unpublished(Algorithm::ES256, "es-1", &admin_claims).unwrap_or_else(|e| panic!("{e:#}")),
        ),
        ("a tampered payload", {
            let good = sign(&admin_claims);
            let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
            let forged = with(admin_claims.clone(), json!({"email": "mallory@example.com"}));
            parts[1] = base64_url(&forged.to_string());
            parts.join(".")
        }),
    ];
    for (why, jwt) in &bad {
        let (status, body) = chat(&gw, "authorization", &format!("Bearer {jwt}")).await;
        assert_eq!(status, 401, "proxy, {why}: {body}");
        let (status, body) = call(&gw, Method::GET, "/api/v1/llm-providers", Some(jwt), None).await;
        assert_eq!(status, 401, "admin API, {why}: {body}");
    }
    assert!(up.requests().is_empty(), "a refused JWT reached the upstream");
    // Within the skew an expired token still passes; the gateway's clock decides.
    let recent = sign(&with(admin_claims.clone(), json!({"exp": now - 30})));
    expect(call(&gw, Method::GET, "/api/v1/llm-providers", Some(&recent), None).await, 200);
    let short = sign(&with(admin_claims.clone(), json!({"exp": now + 30})));
    expect(call(&gw, Method::GET, "/api/v1/llm-providers", Some(&short), None).await, 200);
    gw.clock.advance(std::time::Duration::from_secs(120));
    let (status, body) = call(&gw, Method::GET, "/api/v1/llm-providers", Some(&short), None).await;
    assert_eq!(status, 401, "expired once the clock moved: {body}");
    assert!(body.to_string().contains("expired"), "{body}");
}

fn base64_url(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

/// A rotated key is fetched on its first use (an unknown kid triggers a JWKS refresh), but at
/// most once per interval of the gateway clock, however many made-up kids arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_kid_refreshes_the_jwks_at_most_once_per_interval() {
    let idp = TestIdp::start().await.unwrap_or_else(|e| panic!("{e:#}"));
    let gw = oidc_gateway(&idp).await;
    let claims = with(idp.claims(AUDIENCE), json!({"groups": ["finance"]}));
    let list = "/api/v1/llm-providers";
    let at_start = idp.jwks_fetches();
    assert_eq!(at_start, 1, "the JWKS is fetched once at start");
    let kid = idp.rotate(Algorithm::RS256).unwrap_or_else(|e| panic!("{e:#}"));
    let rotated = idp.sign(Algorithm::RS256, &claims).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(jsonwebtoken::decode_header(&rotated).ok().and_then(|h| h.kid) == Some(kid.clone()));
    // Right after start the refresh interval has not passed: refused, and no fetch.
    expect(call(&gw, Method::GET, list, Some(&rotated), None).await, 401);
    assert_eq!(idp.jwks_fetches(), at_start);
    gw.clock.advance(std::time::Duration::from_secs(11));
    expect(call(&gw, Method::GET, list, Some(&rotated), None).await, 200);
    assert_eq!(idp.jwks_fetches(), at_start + 1, "one refresh for the new kid");
    expect(call(&gw, Method::GET, list, Some(&rotated), None).await, 200);
    assert_eq!(idp.jwks_fetches(), at_start + 1, "the new key is cached");
    // Made-up kids: at most one refresh per interval.
    gw.clock.advance(std::time::Duration::from_secs(11));
    for n in 0..5 {
        let forged = idp
            .sign_with_unpublished(Algorithm::RS256, &format!("made-up-{n}"), &claims)
            .unwrap_or_else(|e| panic!("{e:#}"));
        expect(call(&gw, Method::GET, list, Some(&forged), None).await, 401);
    }
    assert_eq!(idp.jwks_fetches(), at_start + 2, "five unknown kids, one refresh");
    // A withdrawn key stops working at the next refresh.
    idp.retire(&kid);
    gw.clock.advance(std::time::Duration::from_secs(11));
    let other = idp.rotate(Algorithm::ES256).unwrap_or_else(|e| panic!("{e:#}"));
    let es = idp.sign(Algorithm::ES256, &claims).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(jsonwebtoken::decode_header(&es).ok().and_then(|h| h.kid) == Some(other));
    expect(call(&gw, Method::GET, list, Some(&es), None).await, 200);
    expect(call(&gw, Method::GET, list, Some(&rotated), None).await, 401);
}

/// The console's "Sign in with …": the login page links to it, the gateway redirects to the
/// authorize endpoint with PKCE (S256), the callback trades the code for an ID token and starts
/// a session of the mapped role; a tampered state and an invoker-only account are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_signs_in_through_the_identity_provider() {
    let idp = TestIdp::start().await.unwrap_or_else(|e| panic!("{e:#}"));
    idp.set_user(json!({"sub": "bob", "email": "bob@example.com", "groups": ["finance"]}));
    let gw = oidc_gateway(&idp).await;
    let mut c = Console::new(&gw);
    let login = c.get("/login?next=%2Fusage").await;
    login.expect(200);
    let host = idp.issuer.trim_start_matches("http://").split(':').next().unwrap_or_default().to_string();
    assert!(login.body.contains(&format!("Sign in with {host}")), "{}", login.body);
    assert!(login.body.contains(r#"href="/login/oidc?next=%2Fusage""#), "{}", login.body);

    let start = c.get("/login/oidc?next=%2Fusage").await;
    assert_eq!(start.status, 303, "{}", start.body);
    let authorize = start.location.clone().unwrap_or_default();
    assert!(authorize.starts_with(&format!("{}/authorize?", idp.issuer)), "{authorize}");
    let set = start.headers.get("set-cookie").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    assert!(set.starts_with("tollgate_oidc=") && set.contains("SameSite=Lax") && set.contains("HttpOnly"), "{set}");

    let back = c.get_absolute(&authorize).await;
    let callback = back.location.clone().unwrap_or_default();
    assert!(callback.starts_with(&format!("{}/login/oidc/callback?code=", gw.base_url)), "{callback}");
    let q = &idp.authorize_queries()[0];
    assert_eq!(q.get("code_challenge_method").map(String::as_str), Some("S256"));
    assert_eq!(q.get("client_id").map(String::as_str), Some(CLIENT_ID));

    // A forged state is refused before any token request.
    let forged = callback.replace("state=", "state=x");
    let refused = c.get_absolute(&forged).await;
    assert_eq!(refused.status, 303);
    assert!(refused.location.as_deref().unwrap_or_default().starts_with("/login?error="), "{refused:?}");
    assert_eq!(idp.token_requests(), 0);

    let done = c.get_absolute(&callback).await;
    done.expect(200);
    assert!(done.body.contains(r#"content="0;url=/usage""#), "{}", done.body);
    assert_eq!(idp.token_requests(), 1);
    let usage = c.get("/usage").await;
    usage.expect(200);
    assert!(usage.body.contains("bob@example.com"), "signed in as bob");
    // A reader: the Tokens page (admin) is refused.
    let tokens = c.get("/tokens").await;
    assert_eq!(tokens.status, 403, "{}", tokens.body);
    // The code is single use.
    let replay = c.get_absolute(&callback).await;
    assert!(replay.location.as_deref().unwrap_or_default().starts_with("/login?error="), "{replay:?}");

    // An account that maps to invoker only may not use the console.
    idp.set_user(json!({"sub": "carol", "email": "carol@example.com"}));
    let mut c2 = Console::new(&gw);
    let start = c2.get("/login/oidc").await;
    let back = c2.get_absolute(start.location.as_deref().unwrap_or_default()).await;
    let done = c2.get_absolute(back.location.as_deref().unwrap_or_default()).await;
    let to = done.location.clone().unwrap_or_default();
    assert!(to.starts_with("/login?error="), "{done:?}");
    let shown = c2.get(&to).await;
    assert!(shown.body.contains("maps to the role `invoker`"), "{}", shown.body);
    assert_eq!(c2.get("/providers").await.status, 303, "no session for an invoker");
}
