//! The gateway serving HTTPS itself (`tls.rs`, `conn.rs`): the official OpenAI Python SDK
//! negotiating HTTP/2 through ALPN (its HTTP client speaks HTTP/2 with the `h2` package, which
//! `tests/tools/install.sh` installs); the README's boto3 example run as written (the gateway token
//! as `AWS_BEARER_TOKEN_BEDROCK`, which botocore sends over HTTPS only), plain and streaming; a
//! certificate file replaced on disk served on the next connection while an open connection
//! keeps going; client certificates required with `--tls-client-ca`; the self-signed CA of
//! `--tls-self-signed` trusted by the CLI with `--ca-cert`.

use crate::connect_snippets::sdk_python;
use crate::proxy::{AWS_KEY, UPSTREAM_KEY, provider_at, usage_events};
use crate::support::*;
use std::path::Path;
use tollgate_core::ProviderType;
use tollgate_server::tls::TlsSource;
use tollgate_testkit::pki::{TestPki, swap_file};
use tollgate_testkit::upstream::{FakeUpstream, TEXT};

async fn self_signed_gateway() -> TestGateway {
    TestGateway::start_with(Some(TestDb::sqlite().await), |s| s.tls = TlsSource::SelfSigned)
        .await
        .unwrap_or_else(|e| panic!("gateway did not start: {e:#}"))
}

fn trusting(ca_pem: &[u8]) -> reqwest::ClientBuilder {
    let ca = reqwest::Certificate::from_pem(ca_pem).unwrap_or_else(|e| panic!("{e}"));
    reqwest::Client::builder().tls_certs_only([ca]).tls_info(true)
}

/// The DER of the certificate the server presented for this response.
fn peer_cert(resp: &reqwest::Response) -> Vec<u8> {
    resp.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .map(<[u8]>::to_vec)
        .unwrap_or_else(|| panic!("no TLS info on the response"))
}

async fn run_python(python: &Path, script: &str, args: &[&str], envs: &[(&str, &str)]) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("run.py");
    std::fs::write(&path, script).unwrap_or_else(|e| panic!("{e}"));
    let out = tokio::process::Command::new(python)
        .arg(&path)
        .args(args)
        .env_clear()
        .env("NO_PROXY", "127.0.0.1,localhost")
        .envs(envs.iter().copied())
        .current_dir(dir.path())
        .output()
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", python.display()));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const OPENAI_HTTP2: &str = r#"
import os, ssl, sys
import openai

ctx = ssl.create_default_context(cafile=sys.argv[2])
client = openai.OpenAI(base_url=sys.argv[1], api_key=os.environ["TOLLGATE_API_KEY"],
                       http_client=openai.DefaultHttpxClient(http2=True, verify=ctx))
msgs = [{"role": "user", "content": "hi"}]
raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=msgs)
print("VERSION", raw.http_response.http_version)
print("TEXT", raw.parse().choices[0].message.content)
with client.chat.completions.with_streaming_response.create(model="gpt-4o-mini", messages=msgs, stream=True) as r:
    print("STREAM_VERSION", r.http_response.http_version)
    parts = [c.delta.content or "" for chunk in r.parse() for c in chunk.choices]
print("STREAM", "".join(parts))
"#;

/// The official OpenAI SDK (its `DefaultHttpxClient` with `http2=True`) negotiates HTTP/2 with the gateway's TLS
/// listener, plain and streaming, and both requests are metered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_sdk_speaks_http2_to_the_https_gateway() {
    let Some(python) = sdk_python("the OpenAI SDK over HTTP/2") else { return };
    let gw = self_signed_gateway().await;
    assert!(gw.base_url.starts_with("https://"), "{}", gw.base_url);
    let ca = gw.tls_ca_file.clone().unwrap_or_else(|| panic!("--tls-self-signed wrote no CA file"));
    let up = FakeUpstream::start(ProviderType::Openai, Some(UPSTREAM_KEY)).await.unwrap_or_else(|e| panic!("{e:#}"));
    secret(&gw, "OPENAI_API_KEY", UPSTREAM_KEY).await;
    let body = provider_at("openai", "h2-openai", &up.provider_base_url(), json!({}));
    let created = expect(admin(&gw, Method::POST, "/api/v1/llm-providers", Some(body)).await, 201);
    let proxy_url = gw.url("/llm/v1/providers/h2-openai");
    assert_eq!(created["url"], json!(proxy_url), "the proxy URL shown is the https one");
    let token = gw.token("invoker").await.unwrap_or_else(|e| panic!("{e:#}"));
    let (ok, stdout, stderr) = run_python(
        &python,
        OPENAI_HTTP2,
        &[&proxy_url, &ca.display().to_string()],
        &[("TOLLGATE_API_KEY", token.as_str())],
    )
    .await;
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("VERSION HTTP/2\n"), "{stdout}");
    assert!(stdout.contains("STREAM_VERSION HTTP/2\n"), "{stdout}");
    assert!(stdout.contains(&format!("TEXT {TEXT}")), "{stdout}");
    assert!(stdout.contains(&format!("STREAM {TEXT}")), "{stdout}");
    let events = usage_events(&gw, 2).await;
    assert!(events.iter().all(|e| e.http_status == Some(200)), "{events:?}");
    assert_eq!(events.iter().filter(|e| e.streamed).count(), 1, "{events:?}");
}

/// The first ```python block of README.md's "AWS Bedrock" section.
fn readme_bedrock_example() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .unwrap_or_else(|e| panic!("README.md: {e}"));
    let section = readme.split("\n### AWS Bedrock\n").nth(1).unwrap_or_else(|| panic!("no AWS Bedrock section"));
    let code = section.split("```python\n").nth(1).unwrap_or_else(|| panic!("no python block in the section"));
    code.split("```").next().unwrap_or_default().to_string()
}

/// README's boto3 example, as written, against the HTTPS gateway: only the host is replaced and
/// the self-signed CA trusted (`AWS_CA_BUNDLE`); botocore sends the gateway token from
/// `AWS_BEARER_TOKEN_BEDROCK` as its bearer token, with no signing hooks. Converse and
/// ConverseStream both arrive, SigV4-signed by the gateway, and are metered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_boto3_example_runs_against_the_https_gateway() {
    let Some(python) = sdk_python("the README's boto3 example") else { return };
    let example = readme_bedrock_example();
    assert!(example.contains("AWS_BEARER_TOKEN_BEDROCK") && example.contains("converse_stream("), "{example}");
    let gw = self_signed_gateway().await;
    let ca = gw.tls_ca_file.clone().unwrap_or_else(|| panic!("no CA file"));
    let up = FakeUpstream::start(ProviderType::Bedrock, Some(&format!("{}:{}", AWS_KEY.0, AWS_KEY.1)))
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    secret(&gw, "AWS_ACCESS_KEY_ID", AWS_KEY.0).await;
    secret(&gw, "AWS_SECRET_ACCESS_KEY", AWS_KEY.1).await;
    let model = "us.anthropic.claude-sonnet-4-6";
    let body =
        provider_at("bedrock", "prod-bedrock", &up.provider_base_url(), json!({"provider_models": [{"name": model}]}));
    expect(admin(&gw, Method::POST, "/api/v1/llm-providers", Some(body)).await, 201);
    let token = gw.token("invoker").await.unwrap_or_else(|e| panic!("{e:#}"));
    let script = example.replace("https://tollgate.example.com", &gw.base_url);
    assert_ne!(script, example, "the README example names https://tollgate.example.com");
    let ca = ca.display().to_string();
    let (ok, stdout, stderr) =
        run_python(&python, &script, &[], &[("TOLLGATE_API_KEY", token.as_str()), ("AWS_CA_BUNDLE", ca.as_str())])
            .await;
    assert!(ok, "{script}\n{stdout}\n{stderr}");
    assert_eq!(stdout.matches(TEXT).count(), 2, "the reply and the streamed reply:\n{stdout}\n{stderr}");
    let got = up.requests();
    let paths: Vec<&str> = got.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, [format!("/model/{model}/converse"), format!("/model/{model}/converse-stream")], "{paths:?}");
    for r in &got {
        let auth = r.header("authorization").unwrap_or_default();
        assert!(auth.starts_with("AWS4-HMAC-SHA256 "), "the gateway signs: {auth}");
        assert!(!auth.contains(&token), "the gateway token never reaches AWS");
    }
    let events = usage_events(&gw, 2).await;
    assert!(events.iter().all(|e| e.http_status == Some(200) && e.model.as_deref() == Some(model)), "{events:?}");
    assert_eq!(events.iter().filter(|e| e.streamed).count(), 1, "{events:?}");
}

/// cert-manager style rotation: the certificate and key files are replaced (write + rename)
/// while the gateway runs. A new connection is served the new certificate; a connection opened
/// before keeps its session and goes on answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_swapped_on_disk_is_served_on_the_next_connection() {
    let pki = TestPki::new("rotation CA").unwrap_or_else(|e| panic!("{e:#}"));
    let first = pki.server("first").unwrap_or_else(|e| panic!("{e:#}"));
    let second = pki.server("second").unwrap_or_else(|e| panic!("{e:#}"));
    let (cert, key) = (pki.dir().join("live.pem"), pki.dir().join("live.key"));
    swap_file(&first.cert_file, &cert).unwrap_or_else(|e| panic!("{e:#}"));
    swap_file(&first.key_file, &key).unwrap_or_else(|e| panic!("{e:#}"));
    let files = TlsSource::Files { cert: cert.clone(), key: key.clone() };
    let gw = TestGateway::start_with(None, move |s| s.tls = files).await.unwrap_or_else(|e| panic!("{e:#}"));
    let url = gw.url("/healthz");

    let early = trusting(pki.ca_pem.as_bytes()).build().unwrap_or_else(|e| panic!("{e}"));
    let r = early.get(&url).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), 200);
    assert!(peer_cert(&r) == first.cert_der, "the first certificate is served");

    swap_file(&second.key_file, &key).unwrap_or_else(|e| panic!("{e:#}"));
    swap_file(&second.cert_file, &cert).unwrap_or_else(|e| panic!("{e:#}"));

    let late = trusting(pki.ca_pem.as_bytes()).build().unwrap_or_else(|e| panic!("{e}"));
    let r = late.get(&url).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), 200);
    assert!(peer_cert(&r) == second.cert_der, "a new connection gets the new certificate");

    // The early client's pooled connection is still open: same session, same certificate.
    let r = early.get(&url).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), 200);
    assert!(peer_cert(&r) == first.cert_der, "the open connection survived the rotation");

    // A half-done rotation (a key that does not fit the certificate) keeps the last good pair.
    let third = pki.server("third").unwrap_or_else(|e| panic!("{e:#}"));
    swap_file(&third.key_file, &key).unwrap_or_else(|e| panic!("{e:#}"));
    let r = trusting(pki.ca_pem.as_bytes())
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
        .get(&url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("a mismatched key pair must not break the listener: {e}"));
    assert!(peer_cert(&r) == second.cert_der, "the last good certificate is kept");
}

/// `--tls-client-ca`: a client without a certificate, or with one from another CA, fails the
/// handshake; one with a certificate from the configured CA is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_are_required_with_a_client_ca() {
    let server_pki = TestPki::new("server CA").unwrap_or_else(|e| panic!("{e:#}"));
    let client_pki = TestPki::new("client CA").unwrap_or_else(|e| panic!("{e:#}"));
    let other_pki = TestPki::new("other CA").unwrap_or_else(|e| panic!("{e:#}"));
    let server = server_pki.server("gateway").unwrap_or_else(|e| panic!("{e:#}"));
    let files = TlsSource::Files { cert: server.cert_file.clone(), key: server.key_file.clone() };
    let client_ca = client_pki.ca_file.clone();
    let gw = TestGateway::start_with(None, move |s| {
        s.tls = files;
        s.tls_client_ca = Some(client_ca);
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
    let url = gw.url("/healthz");
    let identity = |issued: &tollgate_testkit::pki::Issued| {
        reqwest::Identity::from_pem(format!("{}{}", issued.cert_pem, issued.key_pem).as_bytes())
            .unwrap_or_else(|e| panic!("{e}"))
    };

    let anonymous = trusting(server_pki.ca_pem.as_bytes()).build().unwrap_or_else(|e| panic!("{e}"));
    let refused = anonymous.get(&url).send().await;
    assert!(refused.is_err(), "no client certificate: {refused:?}");

    let stranger = other_pki.client("mallory").unwrap_or_else(|e| panic!("{e:#}"));
    let wrong =
        trusting(server_pki.ca_pem.as_bytes()).identity(identity(&stranger)).build().unwrap_or_else(|e| panic!("{e}"));
    let refused = wrong.get(&url).send().await;
    assert!(refused.is_err(), "a certificate from another CA: {refused:?}");

    let alice = client_pki.client("alice").unwrap_or_else(|e| panic!("{e:#}"));
    let ok =
        trusting(server_pki.ca_pem.as_bytes()).identity(identity(&alice)).build().unwrap_or_else(|e| panic!("{e}"));
    let r = ok.get(&url).send().await.unwrap_or_else(|e| panic!("a certificate from the client CA: {e}"));
    assert_eq!(r.status(), 200);
    let metrics = ok
        .get(gw.url("/metrics"))
        .bearer_auth(&gw.admin_token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .text()
        .await
        .unwrap_or_default();
    let failures = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tollgate_tls_handshake_failures_total "))
        .and_then(|v| v.trim().parse::<u64>().ok());
    assert!(failures.is_some_and(|n| n >= 2), "both refusals are counted: {metrics}");
}

/// A TLS client for raw reads and writes, trusting `ca_pem`.
async fn tls_connect(addr: &str, ca_pem: &str) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap_or_else(|e| panic!("{e}")))
        .unwrap_or_else(|e| panic!("{e}"));
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|e| panic!("{e}"))
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap_or_else(|e| panic!("connect: {e}"));
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap_or_else(|e| panic!("{e}"));
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap_or_else(|e| panic!("handshake: {e}"))
}

/// Whether the peer closes `s` (EOF or an error) within 20 s.
async fn closed_by_peer(mut s: impl tokio::io::AsyncRead + Unpin) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(20), s.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue, // a response or a TLS record before the close
            Err(_) => return false,
        }
    }
}

/// The connection limits of `conn.rs` hold over TLS: a client that never finishes its
/// handshake and one that sends half a request head over an established TLS session are
/// closed by the header-read timeout; a keep-alive TLS connection is closed by the idle
/// timeout; real requests are served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_and_idle_timeouts_hold_over_tls() {
    use tokio::io::AsyncWriteExt;
    let gw = TestGateway::start_with(None, |s| {
        s.tls = TlsSource::SelfSigned;
        s.header_read_timeout = std::time::Duration::from_secs(1);
        s.idle_timeout = std::time::Duration::from_secs(2);
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
    let ca = std::fs::read_to_string(gw.tls_ca_file.clone().unwrap_or_else(|| panic!("no CA")))
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = gw.base_url.trim_start_matches("https://").to_string();

    // Half a ClientHello, then nothing.
    let mut stalled_hello = tokio::net::TcpStream::connect(&addr).await.unwrap_or_else(|e| panic!("{e}"));
    stalled_hello.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).await.unwrap_or_else(|e| panic!("{e}"));
    // A TLS session with half a request head.
    let mut stalled_head = tls_connect(&addr, &ca).await;
    stalled_head.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap_or_else(|e| panic!("{e}"));
    stalled_head.flush().await.unwrap_or_else(|e| panic!("{e}"));
    // A TLS keep-alive connection, served once, then silent.
    let mut kept = tls_connect(&addr, &ca).await;
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap_or_else(|e| panic!("{e}"));
    kept.flush().await.unwrap_or_else(|e| panic!("{e}"));

    let r = gw.client.get(gw.url("/healthz")).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), 200, "served next to the stalled connections");
    assert!(closed_by_peer(stalled_hello).await, "an unfinished handshake is closed by the header timeout");
    assert!(closed_by_peer(stalled_head).await, "half a head over TLS is closed by the header timeout");
    assert!(closed_by_peer(kept).await, "an idle TLS keep-alive connection is closed by the idle timeout");
    let metrics = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.as_bytes()).unwrap_or_else(|e| panic!("{e}"))])
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
        .get(gw.url("/metrics"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .text()
        .await
        .unwrap_or_default();
    let counter = |name: &str| {
        metrics.lines().find_map(|l| l.strip_prefix(&format!("{name} "))).and_then(|v| v.trim().parse::<u64>().ok())
    };
    assert!(counter("tollgate_connections_header_timeouts_total").is_some_and(|n| n >= 2), "{metrics}");
    assert!(counter("tollgate_connections_idle_closed_total").is_some_and(|n| n >= 1), "{metrics}");
}

/// Over the gateway's own HTTPS the console's cookies are `Secure` (no proxy header needed);
/// over plain HTTP they are not (a browser would drop them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_cookies_are_secure_over_https() {
    for (tls, secure) in [(TlsSource::SelfSigned, true), (TlsSource::Off, false)] {
        let gw = TestGateway::start_with(None, move |s| s.tls = tls).await.unwrap_or_else(|e| panic!("{e:#}"));
        let mut console = crate::console::Console::new(&gw);
        let page = console.get("/login").await;
        page.expect(200);
        let cookie = page.headers.get("set-cookie").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        assert!(cookie.starts_with("tollgate_login="), "{cookie}");
        assert_eq!(cookie.contains("; Secure"), secure, "{}: {cookie}", gw.base_url);
        console.sign_in(&gw.admin_token).await;
    }
}
