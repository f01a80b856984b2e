//! The OpenAPI 3.1 document is generated from the handlers: every route is in it, every
//! documented operation is routed, and the committed copy (`docs/openapi.json`) is current.

use crate::support::*;

/// Every admin route the server serves. Adding a route means adding it here; the test fails
/// until the route is documented.
const ROUTES: [(&str, &str); 40] = [
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/api/openapi.json"),
    ("get", "/api/v1/llm-providers"),
    ("post", "/api/v1/llm-providers"),
    ("get", "/api/v1/llm-providers/{name}"),
    ("patch", "/api/v1/llm-providers/{name}"),
    ("delete", "/api/v1/llm-providers/{name}"),
    ("post", "/api/v1/llm-providers/{name}/check"),
    ("get", "/api/v1/secrets"),
    ("get", "/api/v1/secrets/{name}"),
    ("put", "/api/v1/secrets/{name}"),
    ("patch", "/api/v1/secrets/{name}"),
    ("delete", "/api/v1/secrets/{name}"),
    ("get", "/api/v1/tokens"),
    ("post", "/api/v1/tokens"),
    ("get", "/api/v1/tokens/{id}"),
    ("delete", "/api/v1/tokens/{id}"),
    ("get", "/api/v1/models"),
    ("get", "/api/v1/models/{name}"),
    ("get", "/api/v1/spending/summary"),
    ("get", "/api/v1/spending/timeseries"),
    ("get", "/api/v1/spending/breakdown"),
    ("get", "/api/v1/spending/export.csv"),
    ("get", "/api/v1/requests"),
    ("get", "/api/v1/requests/{id}"),
    ("get", "/api/v1/conversations"),
    ("get", "/api/v1/conversations/{id}"),
    ("delete", "/api/v1/transcripts"),
    ("get", "/api/v1/budgets"),
    ("post", "/api/v1/budgets"),
    ("get", "/api/v1/budgets/{name}"),
    ("patch", "/api/v1/budgets/{name}"),
    ("delete", "/api/v1/budgets/{name}"),
    ("get", "/api/v1/rate-limits"),
    ("post", "/api/v1/rate-limits"),
    ("get", "/api/v1/rate-limits/{name}"),
    ("patch", "/api/v1/rate-limits/{name}"),
    ("delete", "/api/v1/rate-limits/{name}"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_is_documented_and_every_operation_routed() {
    let gw = gateway(TestDb::sqlite().await).await;
    let spec = expect(call(&gw, Method::GET, "/api/openapi.json", None, None).await, 200);
    assert_eq!(spec["openapi"], "3.1.0");
    let mut documented = Vec::new();
    for (path, item) in spec["paths"].as_object().into_iter().flatten() {
        for method in item.as_object().into_iter().flatten().map(|(m, _)| m.clone()) {
            documented.push((method, path.clone()));
        }
    }
    for (m, p) in ROUTES {
        assert!(documented.contains(&(m.to_string(), p.to_string())), "{m} {p} is served but not documented");
    }
    assert_eq!(documented.len(), ROUTES.len(), "documented operations: {documented:?}");
    // every documented operation is routed (a wrong method or path would 404/405)
    for (m, p) in &documented {
        let path = p.replace("{name}", "SOME_NAME").replace("{id}", "some-id");
        let method = Method::from_bytes(m.to_uppercase().as_bytes()).unwrap_or(Method::GET);
        let resp = gw.client.request(method, gw.url(&path)).send().await;
        let status = resp.map(|r| r.status().as_u16()).unwrap_or(0);
        assert!(status != 405 && (status != 404 || p.contains('{')), "{m} {p} → {status}");
    }
    assert!(spec["components"]["schemas"]["ProviderSpec"]["properties"]["bedrock_config"].is_object());
    assert!(spec["components"]["securitySchemes"]["bearer"].is_object());
    // the committed copy is current (regenerate: TOLLGATE_UPDATE_OPENAPI=1 cargo test openapi)
    let committed_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let pretty = serde_json::to_string_pretty(&spec).unwrap_or_default() + "\n";
    if std::env::var_os("TOLLGATE_UPDATE_OPENAPI").is_some() {
        std::fs::write(&committed_path, &pretty)
            .unwrap_or_else(|e| panic!("writing {}: {e}", committed_path.display()));
    }
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
    assert!(committed == pretty, "docs/openapi.json is stale; run TOLLGATE_UPDATE_OPENAPI=1 cargo test openapi");
}

/// schemathesis (pinned, installed by `tests/tools/schemathesis.sh install` into
/// `<repo>/target/schemathesis` or `$TOLLGATE_SCHEMATHESIS`; `.ci/run` installs it) checks the
/// served document against the server: every operation, every check, with
/// `tests/tools/schemathesis.toml` (which lets the operations whose bodies have rules beyond
/// the schema answer 422, and a revoked token answer 410); any finding fails the test.
/// Skipped with a note when schemathesis is missing, except under `CI=true`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing() {
    let dir = std::env::var_os("TOLLGATE_SCHEMATHESIS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/schemathesis"));
    let st = dir.join("venv/bin/st");
    if !st.exists() {
        assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "schemathesis is not installed in {}", dir.display());
        #[allow(clippy::print_stderr)] // the one way to tell a test runner a test was skipped
        {
            eprintln!(
                "SKIPPED: schemathesis is not installed ({}); run tests/tools/schemathesis.sh install",
                st.display()
            );
        }
        return;
    }
    let gw = gateway(TestDb::sqlite().await).await;
    all_secrets(&gw).await;
    expect(admin(&gw, Method::POST, "/api/v1/llm-providers", Some(provider_body("openai", "sample"))).await, 201);
    let url = gw.url("/api/openapi.json");
    let auth = format!("Authorization: Bearer {}", gw.admin_token);
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/tools/schemathesis.toml");
    let out = tokio::process::Command::new(&st)
        .arg("--config-file")
        .arg(&config)
        .args(["run", &url, "--header", &auth, "--checks", "all", "--max-examples", "25", "--seed", "1"])
        .args(["--suppress-health-check", "all", "--no-color"])
        .current_dir(&dir)
        .output()
        .await
        .unwrap_or_else(|e| panic!("running {}: {e}", st.display()));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "schemathesis found problems:\n{text}");
}
