//! The real `tollgate serve` process, as an operator runs it: first start (bootstrap token
//! printed once and saved 0600), graceful SIGTERM, restart, read-only secret backends, key
//! rotation, and a grep of every log line and response for secret values.

use crate::support::*;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_tollgate");

pub struct Served {
    child: Child,
    pub base_url: String,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

fn pump(stream: impl Read + Send + 'static, sink: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if let Ok(mut s) = sink.lock() {
                s.push_str(&line);
                s.push('\n');
            }
        }
    });
}

/// Starts `tollgate serve` on a free port with `data_dir` and waits until it listens.
pub fn serve(data_dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Served {
    let mut cmd = Command::new(BIN);
    cmd.arg("serve").arg("--listen").arg("127.0.0.1:0").arg("--data-dir").arg(data_dir).args(args);
    cmd.env("TOLLGATE_LOG", "debug").env_remove("TOLLGATE_DATABASE_URL").env_remove("TOLLGATE_MASTER_KEY");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {BIN}: {e}"));
    let stdout = Arc::new(Mutex::new(String::new()));
    let stderr = Arc::new(Mutex::new(String::new()));
    if let Some(o) = child.stdout.take() {
        pump(o, stdout.clone());
    }
    if let Some(e) = child.stderr.take() {
        pump(e, stderr.clone());
    }
    let start = Instant::now();
    loop {
        let out = stdout.lock().map(|s| s.clone()).unwrap_or_default();
        if let Some(rest) = out.split("Tollgate is listening on ").nth(1) {
            let url = rest.split_whitespace().next().unwrap_or_default().to_string();
            return Served { child, base_url: url, stdout, stderr };
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("tollgate serve exited early ({status}): {}", stderr.lock().map(|s| s.clone()).unwrap_or_default());
        }
        assert!(start.elapsed() < Duration::from_secs(30), "tollgate serve did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Served {
    pub fn stdout(&self) -> String {
        self.stdout.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for a clean exit; returns (stdout, stderr).
    pub fn terminate(mut self) -> (String, String) {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill").arg("-TERM").arg(&pid).status();
        assert!(killed.is_ok_and(|s| s.success()), "kill -TERM failed");
        let start = Instant::now();
        let status = loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                break s;
            }
            assert!(start.elapsed() < Duration::from_secs(15), "no exit within 15 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        };
        std::thread::sleep(Duration::from_millis(100)); // let the pumps drain
        assert!(status.success(), "exit after SIGTERM: {status}; stderr: {}", self.stderr());
        (self.stdout(), self.stderr())
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn req(
    client: &reqwest::Client,
    method: Method,
    url: String,
    token: &str,
    body: Option<Value>,
    transcript: &mut String,
) -> (u16, Value) {
    let mut r = client.request(method, url).bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().await.unwrap_or_else(|e| panic!("{e}"));
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    transcript.push_str(&text);
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_start_bootstraps_then_stops_gracefully_and_never_logs_secrets() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let data = dir.path().join("tollgate-data");
    let served = serve(&data, &[], &[]);
    let out = served.stdout();
    assert!(out.contains("Bootstrap admin token"), "{out}");
    let token = out.split_whitespace().find(|w| w.starts_with("tg_")).unwrap_or_default().to_string();
    assert_eq!(token.len(), 46, "{out}");
    let saved = std::fs::read_to_string(data.join("admin.token")).unwrap_or_default();
    assert_eq!(saved.trim(), token, "the printed token is the saved one");
    assert_eq!(mode(&data.join("admin.token")), 0o600);
    assert_eq!(mode(&data.join("master.key")), 0o600);
    assert_eq!(mode(&data), 0o700, "the data dir is private");
    assert!(data.join("tollgate.sqlite").exists(), "SQLite in the data dir by default");

    let client = reqwest::Client::new();
    let base = served.base_url.clone();
    let mut transcript = String::new();
    assert_eq!(req(&client, Method::GET, format!("{base}/readyz"), "", None, &mut transcript).await.0, 200);
    // exercise every path that handles a secret value, including failures
    for (name, value) in SECRET_VALUES {
        let (s, _) = req(
            &client,
            Method::PUT,
            format!("{base}/api/v1/secrets/{name}"),
            &token,
            Some(json!({"value": value})),
            &mut transcript,
        )
        .await;
        assert_eq!(s, 201);
    }
    let via_cli = "sk-cli-LEAKCHECK-from-stdin-77";
    let mut cli = Command::new(BIN)
        .args(["--url", &base, "--token", &token, "secret", "set", "CLI_KEY"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    if let Some(mut stdin) = cli.stdin.take() {
        use std::io::Write;
        let _ = stdin.write_all(format!("{via_cli}\n").as_bytes());
    }
    let cli_out = cli.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    assert!(cli_out.status.success(), "{}", String::from_utf8_lossy(&cli_out.stderr));
    transcript.push_str(&String::from_utf8_lossy(&cli_out.stdout));
    transcript.push_str(&String::from_utf8_lossy(&cli_out.stderr));
    for kind in ["openai", "anthropic", "google", "bedrock", "openai_compatible", "azure_openai"] {
        let (s, _) = req(
            &client,
            Method::POST,
            format!("{base}/api/v1/llm-providers"),
            &token,
            Some(provider_body(kind, &format!("p-{}", kind.replace('_', "-")))),
            &mut transcript,
        )
        .await;
        assert_eq!(s, 201);
    }
    let _ =
        req(&client, Method::DELETE, format!("{base}/api/v1/secrets/OPENAI_API_KEY"), &token, None, &mut transcript)
            .await;
    let _ = req(
        &client,
        Method::PUT,
        format!("{base}/api/v1/secrets/bad-name"),
        &token,
        Some(json!({"value": "sk-bad-LEAKCHECK-1"})),
        &mut transcript,
    )
    .await;
    let _ = req(&client, Method::GET, format!("{base}/api/v1/secrets"), &token, None, &mut transcript).await;
    let _ = req(&client, Method::GET, format!("{base}/api/v1/llm-providers"), &token, None, &mut transcript).await;

    let (stdout, stderr) = served.terminate();
    assert!(stderr.contains("shutting down"), "{stderr}");
    assert!(stderr.contains("DEBUG") || stderr.contains("debug"), "debug logging was on: {stderr}");
    let everything = format!("{stdout}\n{stderr}\n{transcript}");
    let mut values: Vec<&str> = SECRET_VALUES.iter().map(|(_, v)| *v).collect();
    values.push(via_cli);
    values.push("sk-bad-LEAKCHECK-1");
    for v in values {
        assert!(!everything.contains(v), "secret value {v} leaked into logs or responses");
    }
    let master = std::fs::read_to_string(data.join("master.key")).unwrap_or_default();
    assert!(!everything.contains(master.trim()), "the master key leaked");

    // restart: no new bootstrap token, the old one still works, data persisted
    let again = serve(&data, &[], &[]);
    assert!(!again.stdout().contains("Bootstrap admin token"), "{}", again.stdout());
    let (s, v) =
        req(&client, Method::GET, format!("{}/api/v1/llm-providers", again.base_url), &token, None, &mut String::new())
            .await;
    assert_eq!(s, 200);
    assert_eq!(v["llm_providers"].as_array().map(Vec::len), Some(6));
    again.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_secret_backend_is_read_only() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let served = serve(
        &dir.path().join("d"),
        &["--secret-backend", "env", "--secret-env-prefix", "TGTEST_"],
        &[("TGTEST_OPENAI_API_KEY", "sk-env-LEAKCHECK-1"), ("TGTEST_lower", "ignored")],
    );
    let token = served.stdout().split_whitespace().find(|w| w.starts_with("tg_")).unwrap_or_default().to_string();
    let client = reqwest::Client::new();
    let base = served.base_url.clone();
    let mut t = String::new();
    let (s, v) = req(&client, Method::GET, format!("{base}/api/v1/secrets"), &token, None, &mut t).await;
    assert_eq!(s, 200);
    assert_eq!(
        v["secrets"],
        json!([{"name": "OPENAI_API_KEY", "bound_hosts": []}]),
        "only well-formed names under the prefix"
    );
    let (s, _) = req(
        &client,
        Method::POST,
        format!("{base}/api/v1/llm-providers"),
        &token,
        Some(provider_body("openai", "env-openai")),
        &mut t,
    )
    .await;
    assert_eq!(s, 201, "a reference resolves against the environment");
    // The binding of an environment secret lives in the database: first use bound it.
    let (s, v) = req(&client, Method::GET, format!("{base}/api/v1/secrets/OPENAI_API_KEY"), &token, None, &mut t).await;
    assert_eq!(s, 200);
    assert_eq!(v["bound_hosts"].as_array().map(Vec::len), Some(1), "{v}");
    let (s, v) = req(
        &client,
        Method::POST,
        format!("{base}/api/v1/llm-providers"),
        &token,
        Some(provider_body("google", "env-google")),
        &mut t,
    )
    .await;
    assert_eq!((s, v["error"]["field"].as_str()), (422, Some("google_config.api_key_ref")), "{v}");
    let (s, v) = req(
        &client,
        Method::PUT,
        format!("{base}/api/v1/secrets/NEW_ONE"),
        &token,
        Some(json!({"value": "x"})),
        &mut t,
    )
    .await;
    assert_eq!((s, v["error"]["code"].as_str()), (400, Some("failed_precondition")), "{v}");
    let (s, _) =
        req(&client, Method::DELETE, format!("{base}/api/v1/secrets/OPENAI_API_KEY"), &token, None, &mut t).await;
    assert_eq!(s, 400);
    assert!(!t.contains("sk-env-LEAKCHECK-1"));
    let (_, stderr) = served.terminate();
    assert!(!stderr.contains("sk-env-LEAKCHECK-1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dir_secret_backend_reads_files() {
    let secrets = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(secrets.path().join("ANTHROPIC_API_KEY"), "sk-ant-dir-LEAKCHECK\n")
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(secrets.path().join("not-a-secret-name"), "x").unwrap_or_else(|e| panic!("{e}"));
    let path = secrets.path().to_path_buf();
    let gw = TestGateway::start_with(None, move |s| {
        s.secret_backend = tollgate_server::SecretBackendKind::Dir;
        s.secret_dir = Some(path);
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
    let list = expect(admin(&gw, Method::GET, "/api/v1/secrets", None).await, 200);
    let names: Vec<&str> =
        list["secrets"].as_array().map(|a| a.iter().filter_map(|s| s["name"].as_str()).collect()).unwrap_or_default();
    assert_eq!(names, ["ANTHROPIC_API_KEY"]);
    expect(
        admin(&gw, Method::POST, "/api/v1/llm-providers", Some(provider_body("anthropic", "dir-claude"))).await,
        201,
    );
    expect_field(
        admin(&gw, Method::POST, "/api/v1/llm-providers", Some(provider_body("openai", "dir-openai"))).await,
        "openai_config.api_key_ref",
    );
    let ro = expect(admin(&gw, Method::PUT, "/api/v1/secrets/X", Some(json!({"value": "v"}))).await, 400);
    assert_eq!(ro["error"]["code"], "failed_precondition");
    let v = gw.client.get(gw.url("/api/v1/secrets/ANTHROPIC_API_KEY")).bearer_auth(&gw.admin_token).send().await;
    let text = match v {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(e) => panic!("{e}"),
    };
    assert!(!text.contains("LEAKCHECK"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_key_reseals_every_secret() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let data = dir.path().join("data");
    let served = serve(&data, &[], &[]);
    let token = served.stdout().split_whitespace().find(|w| w.starts_with("tg_")).unwrap_or_default().to_string();
    let client = reqwest::Client::new();
    for (name, value) in SECRET_VALUES {
        let (s, _) = req(
            &client,
            Method::PUT,
            format!("{}/api/v1/secrets/{name}", served.base_url),
            &token,
            Some(json!({"value": value})),
            &mut String::new(),
        )
        .await;
        assert_eq!(s, 201);
    }
    // Refused while the gateway runs on that data dir (nothing re-sealed), allowed once it stopped.
    let rotate = || {
        Command::new(BIN)
            .args(["secrets", "rotate-key", "--data-dir"])
            .arg(&data)
            .env_remove("TOLLGATE_MASTER_KEY")
            .env_remove("TOLLGATE_DATABASE_URL")
            .output()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let beside = rotate();
    let err = String::from_utf8_lossy(&beside.stderr);
    assert!(!beside.status.success() && err.contains("a gateway is running on"), "{err}");
    assert!(
        !data.read_dir().into_iter().flatten().flatten().any(|e| e.file_name().to_string_lossy().contains("retired"))
    );
    served.terminate();
    let old_key = std::fs::read_to_string(data.join("master.key")).unwrap_or_default();
    let out = rotate();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("re-sealed {} secret(s)", SECRET_VALUES.len())), "{stdout}");
    let new_key = std::fs::read_to_string(data.join("master.key")).unwrap_or_default();
    assert_ne!(old_key, new_key, "the key file holds a new key");
    assert_eq!(mode(&data.join("master.key")), 0o600);
    let retired: Vec<_> = std::fs::read_dir(&data)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("master.key.retired-"))
        .collect();
    assert_eq!(retired.len(), 1);
    assert_eq!(mode(&retired[0].path()), 0o600);
    // every value is readable with only the new key, and sealed under its id
    let new = tollgate_store::seal::MasterKey::from_base64(new_key.trim()).unwrap_or_else(|e| panic!("{e}"));
    let url = format!("sqlite://{}", data.join("tollgate.sqlite").display());
    let store = tollgate_store::Store::connect(&url, tollgate_store::seal::Keyring::new(new.clone()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for (name, value) in SECRET_VALUES {
        let got = store.secret_value(name).await.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got.as_ref().map(|v| v.expose()), Some(value));
        assert_eq!(store.get_secret_meta(name).await.ok().flatten().map(|m| m.key_id), Some(new.key_id()));
    }
    store.close().await;
    // and the gateway starts with the rotated key
    let again = serve(&data, &[], &[]);
    let (s, _) = req(
        &client,
        Method::POST,
        format!("{}/api/v1/llm-providers", again.base_url),
        &token,
        Some(provider_body("openai", "after-rotation")),
        &mut String::new(),
    )
    .await;
    assert_eq!(s, 201);
    again.terminate();
}

/// Every admin token lost: `token recover-admin` mints one straight into the database, beside
/// the running gateway, which accepts it at once; a data dir without a database is refused and
/// left without one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_admin_mints_a_working_admin_token_offline() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let data = dir.path().join("data");
    let recover = |data: &Path| {
        Command::new(BIN)
            .args(["token", "recover-admin", "--name", "break-glass", "--data-dir"])
            .arg(data)
            .env_remove("TOLLGATE_MASTER_KEY")
            .env_remove("TOLLGATE_DATABASE_URL")
            .output()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let missing = dir.path().join("typo");
    let out = recover(&missing);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("is not a Tollgate database"), "{err}");
    assert!(!missing.join("tollgate.sqlite").exists() && !missing.join("master.key").exists(), "nothing created");
    // A database URL naming a file that is not there, or one that is no gateway's: refused,
    // nothing created or migrated.
    let typo = dir.path().join("typo.sqlite");
    let empty = dir.path().join("empty.sqlite");
    std::fs::write(&empty, b"").unwrap_or_else(|e| panic!("{e}"));
    for db in [&typo, &empty] {
        let out = Command::new(BIN)
            .args(["token", "recover-admin", "--database-url"])
            .arg(format!("sqlite://{}", db.display()))
            .env_remove("TOLLGATE_MASTER_KEY")
            .env_remove("TOLLGATE_DATABASE_URL")
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("is not a Tollgate database"), "{}: {err}", db.display());
    }
    assert!(!typo.exists(), "no database created");
    assert_eq!(std::fs::metadata(&empty).map(|m| m.len()).unwrap_or(1), 0, "nothing migrated");
    // A PostgreSQL database without the gateway's schema: refused, and left without one.
    if let Some(pg) = TestDb::postgres().await {
        let out = Command::new(BIN)
            .args(["token", "recover-admin", "--database-url", pg.url()])
            .env_remove("TOLLGATE_DATABASE_URL")
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("is not a Tollgate database"), "{err}");
        let conn = sqlx::PgPool::connect(pg.url()).await.unwrap_or_else(|e| panic!("{e}"));
        let tables: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pg_tables WHERE schemaname = 'public'")
            .fetch_one(&conn)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(tables, 0, "no schema created");
        conn.close().await;
    }
    // The names the API refuses are refused here too.
    let out = Command::new(BIN)
        .args(["token", "recover-admin", "--name", "   ", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--name: must not be empty"), "{out:?}");

    let served = serve(&data, &[], &[]);
    let key_before = std::fs::read_to_string(data.join("master.key")).unwrap_or_default();
    let out = recover(&data);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    let token = stdout.trim().to_string();
    assert!(token.starts_with("tg_") && !token.contains(char::is_whitespace), "{stdout}");
    assert_eq!(std::fs::read_to_string(data.join("master.key")).unwrap_or_default(), key_before, "key untouched");
    // The running gateway takes it (a config write its poll picks up): an admin-only call.
    let client = reqwest::Client::new();
    let url = format!("{}/api/v1/tokens", served.base_url);
    let deadline = Instant::now() + Duration::from_secs(10);
    let listed = loop {
        let (status, body) = req(&client, Method::GET, url.clone(), &token, None, &mut String::new()).await;
        if status == 200 || Instant::now() > deadline {
            break (status, body);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(listed.0, 200, "{}", listed.1);
    let names: Vec<&str> =
        listed.1["tokens"].as_array().into_iter().flatten().filter_map(|t| t["name"].as_str()).collect();
    assert!(names.contains(&"break-glass"), "{names:?}");
    let made = listed.1["tokens"].as_array().into_iter().flatten().find(|t| t["name"] == "break-glass").cloned();
    let made = made.unwrap_or_default();
    assert_eq!((made["role"].as_str(), made["expires_at"].is_null()), (Some("admin"), true), "{made}");
    served.terminate();
}

#[test]
fn settings_debug_never_shows_the_master_key_or_db_password() {
    let mut s = tollgate_server::Settings::new("/tmp/x");
    s.master_key = Some(tollgate_server::Sensitive("bWFzdGVyLWtleS1MRUFLQ0hFQ0s=".into()));
    s.database_url = Some(tollgate_server::Sensitive("postgres://app:pw-LEAKCHECK@db/tollgate".into()));
    let shown = format!("{s:?}");
    assert!(!shown.contains("LEAKCHECK") && !shown.contains("bWFzdGVy"), "{shown}");
    assert_eq!(
        tollgate_server::settings::redact_url("postgres://app:pw-LEAKCHECK@db/tollgate"),
        "postgres://app:***@db/tollgate"
    );
}

/// The real binary proxies (with debug logs on), and on SIGTERM writes every queued usage event
/// before exiting: the flush interval is an hour, so only the shutdown drain can have written
/// them. Neither the upstream key nor the gateway token appears in any log line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_drains_usage_on_sigterm_and_never_logs_keys() {
    use tollgate_core::ProviderType;
    use tollgate_testkit::upstream::FakeUpstream;
    let upstream_key = "sk-up-LEAKCHECK-3e9d0c";
    let up = FakeUpstream::start(ProviderType::Google, Some(upstream_key)).await.unwrap_or_else(|e| panic!("{e:#}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let data = dir.path().join("tollgate-data");
    let served = serve(&data, &["--usage-flush-interval-ms", "3600000"], &[]);
    let admin_token = std::fs::read_to_string(data.join("admin.token")).unwrap_or_default().trim().to_string();
    let client = reqwest::Client::new();
    let base = served.base_url.clone();
    let mut transcript = String::new();
    let put = req(
        &client,
        Method::PUT,
        format!("{base}/api/v1/secrets/GEMINI_KEY"),
        &admin_token,
        Some(json!({"value": upstream_key})),
        &mut transcript,
    )
    .await;
    assert_eq!(put.0, 201);
    let provider = json!({"name": "gem", "display_name": "Gem", "type": "google",
        "google_config": {"api_key_ref": "GEMINI_KEY", "base_url": up.provider_base_url()}});
    assert_eq!(
        req(
            &client,
            Method::POST,
            format!("{base}/api/v1/llm-providers"),
            &admin_token,
            Some(provider),
            &mut transcript
        )
        .await
        .0,
        201
    );
    let (_, tok) = req(
        &client,
        Method::POST,
        format!("{base}/api/v1/tokens"),
        &admin_token,
        Some(json!({"name": "app", "role": "invoker"})),
        &mut String::new(),
    )
    .await; // shown once, by design
    let token = tok["token"].as_str().unwrap_or_default().to_string();
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
    let n = 12;
    for i in 0..n {
        let url = match i % 3 {
            0 => format!("{base}/llm/v1/providers/gem/v1beta/models/gemini-2.5-flash:generateContent"),
            1 => format!("{base}/llm/v1/providers/gem/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"),
            _ => {
                format!("{base}/llm/v1/providers/gem/v1beta/models/gemini-2.5-flash:streamGenerateContent?key={token}")
            }
        };
        let mut r = client.post(url).json(&body);
        if i % 3 != 2 {
            r = r.header("x-goog-api-key", &token);
        }
        let resp = r.send().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(resp.status(), 200);
        transcript.push_str(&resp.text().await.unwrap_or_default());
    }
    let (stdout, stderr) = served.terminate();
    let usage = tollgate_store::UsageStore::connect(&format!("sqlite://{}", data.join("usage.sqlite").display()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let events = usage.list_events(&tollgate_store::UsageQuery::default()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(events.len(), n, "every queued event was written on shutdown");
    assert!(events.iter().all(|e| e.usage.input > 0 && e.model.as_deref() == Some("gemini-2.5-flash")), "{events:#?}");
    let logs = format!("{stdout}\n{stderr}");
    assert!(logs.contains("/llm/v1/providers/gem/"), "proxied requests are logged (by path): {stderr}");
    for secret in [upstream_key, token.as_str()] {
        assert!(!logs.contains(secret), "{secret} leaked into the logs");
        assert!(!transcript.contains(secret), "{secret} leaked into a response");
    }
}

/// `tollgate serve --tls-self-signed` prints the CA file to trust and an https address; the
/// CLI reaches it with `--ca-cert` (and refuses the unknown CA without it); a restart keeps the
/// CA, so a client trusts it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_signed_tls_prints_the_ca_and_the_cli_trusts_it_with_ca_cert() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let served = serve(dir.path(), &["--tls-self-signed"], &[]);
    assert!(served.base_url.starts_with("https://127.0.0.1:"), "{}", served.base_url);
    let ca = dir.path().join("tls/ca.pem");
    assert!(served.stdout().contains(&format!("trust the CA certificate {}", ca.display())), "{}", served.stdout());
    assert_eq!(mode(&dir.path().join("tls/ca.key")) & 0o777, 0o600);
    let health = |extra: &[&str]| {
        Command::new(BIN)
            .args(["--url", &served.base_url])
            .args(extra)
            .arg("health")
            .output()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let ok = health(&["--ca-cert", &ca.display().to_string()]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "ready");
    assert!(!health(&[]).status.success(), "an unknown CA is refused without --ca-cert");
    let first_ca = std::fs::read(&ca).unwrap_or_else(|e| panic!("{e}"));
    served.terminate();
    let again = serve(dir.path(), &["--tls-self-signed"], &[]);
    assert_eq!(std::fs::read(&ca).unwrap_or_else(|e| panic!("{e}")), first_ca, "the CA is kept across restarts");
    let ok = Command::new(BIN)
        .args(["--url", &again.base_url, "--ca-cert", &ca.display().to_string(), "health"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(ok.status.success(), "the new leaf chains to the kept CA: {}", String::from_utf8_lossy(&ok.stderr));
    again.terminate();
}

/// `tollgate serve --oidc-*`: the flags reach the gateway (a JWT of the issuer, with the
/// mapped group, lists providers through the admin API; one without is an invoker), and a
/// malformed role map stops the start with the flag's name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_flags_configure_jwt_sign_in() {
    let idp = tollgate_testkit::idp::TestIdp::start().await.unwrap_or_else(|e| panic!("{e:#}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let bad = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .args(["--oidc-issuer", &idp.issuer, "--oidc-audience", "tg", "--oidc-role-claim", "groups"])
        .args(["--oidc-role-map", "ops=superuser"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--oidc-role-map: `superuser` is not a role"), "{bad:?}");
    let served = serve(
        dir.path(),
        &["--oidc-issuer", &idp.issuer, "--oidc-audience", "tg", "--oidc-role-claim", "groups"],
        &[("TOLLGATE_OIDC_ROLE_MAP", "ops=writer")],
    );
    let client = reqwest::Client::new();
    let claims = |groups: Value| {
        let mut c = idp.claims("tg");
        c["groups"] = groups;
        c
    };
    let ops = idp.sign(jsonwebtoken::Algorithm::ES256, &claims(json!(["ops"]))).unwrap_or_else(|e| panic!("{e:#}"));
    let nobody = idp.sign(jsonwebtoken::Algorithm::ES256, &claims(json!([]))).unwrap_or_else(|e| panic!("{e:#}"));
    let status = |jwt: String| {
        let client = client.clone();
        let url = format!("{}/api/v1/llm-providers", served.base_url);
        async move { client.get(url).bearer_auth(jwt).send().await.map(|r| r.status().as_u16()).unwrap_or(0) }
    };
    assert_eq!(status(ops).await, 200, "ops maps to writer");
    assert_eq!(status(nobody).await, 403, "the default role is invoker");
    served.terminate();
}
