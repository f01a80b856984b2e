//! Helpers shared by the integration tests: running a case on both stores, and request
//! shorthands against a [`TestGateway`].

pub use reqwest::Method;
pub use serde_json::{Value, json};
pub use tollgate_testkit::TestGateway;
pub use tollgate_testkit::db::TestDb;

/// For each `async fn case(db: TestDb)` in scope, generates `case::sqlite` (always) and
/// `case::postgres` (when `TOLLGATE_TEST_DATABASE_URL` is set) tests.
#[macro_export]
macro_rules! both_backends {
    ($($case:ident),* $(,)?) => {
        $(
            mod $case {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$case(tollgate_testkit::db::TestDb::sqlite().await).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(db) = tollgate_testkit::db::TestDb::postgres().await {
                        super::$case(db).await;
                    }
                }
            }
        )*
    };
}

/// Starts a gateway on `db`, panicking with the reason when it cannot.
pub async fn gateway(db: TestDb) -> TestGateway {
    match TestGateway::start_on(db).await {
        Ok(g) => g,
        Err(e) => panic!("gateway did not start: {e:#}"),
    }
}

/// Calls the API and panics on transport errors (the status is for the test to check).
pub async fn call(
    gw: &TestGateway,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    match gw.call(method.clone(), path, token, body.as_ref()).await {
        Ok((s, v)) => (s.as_u16(), v),
        Err(e) => panic!("{method} {path}: {e:#}"),
    }
}

/// Calls the API with the admin token.
pub async fn admin(gw: &TestGateway, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let token = gw.admin_token.clone();
    call(gw, method, path, Some(&token), body).await
}

/// Asserts a status, showing the body when it differs.
#[track_caller]
pub fn expect(got: (u16, Value), status: u16) -> Value {
    assert_eq!(got.0, status, "unexpected status; body: {}", got.1);
    got.1
}

/// Asserts an `invalid_argument` error naming `field`.
#[track_caller]
/// A 422 naming `field`: a well-formed body whose value breaks a rule.
pub fn expect_field(got: (u16, Value), field: &str) -> Value {
    let body = expect(got, 422);
    assert_eq!(body["error"]["code"], "invalid_argument", "{body}");
    assert_eq!(body["error"]["field"], field, "{body}");
    body
}

/// A 400 naming `field`: a request without the documented shape.
pub fn expect_shape_field(got: (u16, Value), field: &str) -> Value {
    let body = expect(got, 400);
    assert_eq!(body["error"]["code"], "invalid_argument", "{body}");
    assert_eq!(body["error"]["field"], field, "{body}");
    body
}

pub async fn secret(gw: &TestGateway, name: &str, value: &str) {
    if let Err(e) = gw.put_secret(name, value).await {
        panic!("{e:#}");
    }
}

/// A valid provider body of each type (secrets named here must be stored first).
pub fn provider_body(kind: &str, name: &str) -> Value {
    let mut b = json!({"name": name, "display_name": format!("Test {name}"), "type": kind});
    let ptype: tollgate_core::ProviderType = kind.parse().unwrap_or_else(|e| panic!("{e}"));
    let cfg = match ptype {
        tollgate_core::ProviderType::Openai => json!({"openai_config": {"api_key_ref": "OPENAI_API_KEY"}}),
        tollgate_core::ProviderType::Anthropic => json!({"anthropic_config": {"api_key_ref": "ANTHROPIC_API_KEY"}}),
        tollgate_core::ProviderType::Google => json!({"google_config": {"api_key_ref": "GOOGLE_AI_API_KEY"}}),
        tollgate_core::ProviderType::Bedrock => json!({"bedrock_config": {"region": "us-east-1", "static_credentials":
            {"access_key_id_ref": "AWS_ACCESS_KEY_ID", "secret_access_key_ref": "AWS_SECRET_ACCESS_KEY"}}}),
        tollgate_core::ProviderType::OpenaiCompatible => {
            json!({"openai_compatible_config": {"base_url": "http://127.0.0.1:11434/v1"}})
        }
        tollgate_core::ProviderType::AzureOpenai => json!({"azure_openai_config":
            {"endpoint": "https://tollgate-test.openai.azure.com", "api_key_ref": "AZURE_OPENAI_API_KEY"}}),
    };
    if let (Some(o), Some(c)) = (b.as_object_mut(), cfg.as_object()) {
        for (k, v) in c {
            o.insert(k.clone(), v.clone());
        }
    }
    b
}

/// Distinctive secret values, so leaks are easy to grep for.
pub const SECRET_VALUES: [(&str, &str); 6] = [
    ("OPENAI_API_KEY", "sk-openai-LEAKCHECK-7f3a9c1e"),
    ("AZURE_OPENAI_API_KEY", "azure-LEAKCHECK-3b9d7e21"),
    ("ANTHROPIC_API_KEY", "sk-ant-LEAKCHECK-52b8d0aa"),
    ("GOOGLE_AI_API_KEY", "AIza-LEAKCHECK-91c3e7f2"),
    ("AWS_ACCESS_KEY_ID", "AKIALEAKCHECK4D2E9B1"),
    ("AWS_SECRET_ACCESS_KEY", "aws-secret-LEAKCHECK-0e6f4c8d"),
];

pub async fn all_secrets(gw: &TestGateway) {
    for (n, v) in SECRET_VALUES {
        secret(gw, n, v).await;
    }
}

/// A local port where connections are refused, reserved for the life of the returned socket:
/// bound but never listening, so no other test can take the port in the meantime (a port
/// from a dropped listener could be reused by a parallel test's server and then answer).
pub fn refusing_port() -> (tokio::net::TcpSocket, u16) {
    let sock = tokio::net::TcpSocket::new_v4().unwrap_or_else(|e| panic!("{e}"));
    sock.bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0))).unwrap_or_else(|e| panic!("{e}"));
    let port = sock.local_addr().map(|a| a.port()).unwrap_or_else(|e| panic!("{e}"));
    (sock, port)
}
