//! Every snippet on the console's Connect tab, run as written with the real tool: the test
//! signs in, fetches each provider's Connect tab, takes the snippet text out of the HTML (what
//! the user copies), writes it to a file and runs it with curl, Python and the official SDKs,
//! TypeScript (the official JS SDKs, through `tsx`), Codex, Claude Code and Gemini CLI, against
//! a real gateway in front of fake upstreams. Each run must print the fake upstream's answer;
//! the fake must have received the call with the injected credential (or, under authorization
//! passthrough, the client's own); every forwarded request is metered.
//!
//! The tools come from `tests/tools/install.sh` (a venv and an npm prefix, by default in
//! `<repo>/target/snippet-tools`, or `$TOLLGATE_SNIPPET_TOOLS`); `.ci/run` runs it first. When
//! they are missing the test says so and passes, except under `CI=true`, where it fails.
//!
//! Two things are run differently from a user's terminal, both stated where they happen: the
//! interactive last line of a coding-tool setup (`claude`, `codex`, `gemini`) becomes its
//! one-shot form (`claude -p`, `codex exec`, `gemini -p`) with a prompt; and the OpenAI SDKs'
//! environment-only setup is followed by a Python call of `OpenAI()` without arguments. The
//! Bedrock Python (boto3) sample is run too and must fail the way its note on the page says:
//! botocore sends bearer tokens over HTTPS only and the test gateway is plain HTTP. A second
//! test starts the gateway with `--tls-self-signed` (boto3 trusts its CA through
//! `AWS_CA_BUNDLE`) and runs the same sample as written to success.

use crate::console::Console;
use crate::proxy::{AWS_KEY, UPSTREAM_KEY, provider_at};
use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tollgate_core::ProviderType;
use tollgate_testkit::upstream::{FakeUpstream, Received, TEXT};

/// The client's own Anthropic credential in the passthrough case (what Claude Code's sign-in
/// or the user's key would send as `Authorization: Bearer`).
const OWN_ANTHROPIC_TOKEN: &str = "sk-ant-oat-own-credential-LEAKCHECK-5d1e";

/// The client's own Microsoft Entra ID token in the Azure OpenAI passthrough case.
const OWN_AZURE_AD_TOKEN: &str = "eyJ0eXAiOi-own-entra-LEAKCHECK-41c9";

/// Where the installed tools are.
struct Tools {
    python: PathBuf,
    node_dir: PathBuf,
    bin: PathBuf,
}

/// Where `tests/tools/install.sh` put the tools.
fn tools_dir() -> PathBuf {
    std::env::var_os("TOLLGATE_SNIPPET_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/snippet-tools"))
}

/// The venv's Python with the official SDKs, for other tests that drive an SDK; `None` (the
/// test is skipped, with a message; a failure under CI) when it is not installed.
pub fn sdk_python(test: &str) -> Option<PathBuf> {
    let python = tools_dir().join("venv/bin/python");
    if python.exists() {
        return Some(python);
    }
    let why = format!("{test} needs the SDK venv (run tests/tools/install.sh); missing: {}", python.display());
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{why}");
    }
    #[allow(clippy::print_stderr)] // the one way to tell a test runner a test was skipped
    {
        eprintln!("SKIPPED {why}");
    }
    None
}

fn tools() -> Option<Tools> {
    let dir = tools_dir();
    let t = Tools {
        python: dir.join("venv/bin/python"),
        node_dir: dir.join("node"),
        bin: dir.join("node/node_modules/.bin"),
    };
    let missing: Vec<String> =
        [t.python.clone(), t.bin.join("tsx"), t.bin.join("codex"), t.bin.join("claude"), t.bin.join("gemini")]
            .into_iter()
            .chain([PathBuf::from("/usr/bin/curl")])
            .filter(|p| !p.exists())
            .map(|p| p.display().to_string())
            .collect();
    if missing.is_empty() {
        return Some(t);
    }
    let why = format!(
        "the Connect tab's snippets need their tools (run tests/tools/install.sh); missing: {}",
        missing.join(", ")
    );
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{why}");
    }
    #[allow(clippy::print_stderr)] // the one way to tell a test runner a test was skipped
    {
        eprintln!("SKIPPED connect_snippets: {why}");
    }
    None
}

/// A provider of the test: name, type, passthrough, the credential its fake expects, allow-list.
type Spec<'a> = (&'static str, &'static str, bool, Option<&'a str>, &'static [&'static str]);

/// One provider of the test and its fake upstream.
struct Prov {
    name: &'static str,
    kind: &'static str,
    passthrough: bool,
    models: &'static [&'static str],
    up: FakeUpstream,
}

impl Prov {
    /// Asserts that every request the fake received since `from` carried the credential the
    /// gateway injects (or the client's own under passthrough) and never the gateway token.
    #[track_caller]
    fn assert_credentials(&self, from: usize, gateway_token: &str, what: &str) {
        let got = self.up.requests();
        assert!(got.len() > from, "{what}: the fake upstream of {} received nothing", self.name);
        for r in &got[from..] {
            check_credential(self, r, gateway_token, what);
        }
    }
}

#[track_caller]
fn check_credential(p: &Prov, r: &Received, gateway_token: &str, what: &str) {
    let header = |h: &str| r.header(h).map(str::to_string);
    match (p.kind, p.passthrough) {
        ("anthropic", true) => {
            assert_eq!(
                header("authorization"),
                Some(format!("Bearer {OWN_ANTHROPIC_TOKEN}")),
                "{what}: {:?}",
                r.headers
            );
            assert_eq!(header("x-api-key"), None, "{what}");
        }
        ("anthropic", false) => {
            assert_eq!(header("x-api-key").as_deref(), Some(UPSTREAM_KEY), "{what}: {:?}", r.headers)
        }
        ("google", _) => assert_eq!(header("x-goog-api-key").as_deref(), Some(UPSTREAM_KEY), "{what}: {:?}", r.headers),
        ("openai", _) => {
            assert_eq!(header("authorization"), Some(format!("Bearer {UPSTREAM_KEY}")), "{what}: {:?}", r.headers)
        }
        ("azure_openai", true) => {
            assert_eq!(
                header("authorization"),
                Some(format!("Bearer {OWN_AZURE_AD_TOKEN}")),
                "{what}: {:?}",
                r.headers
            );
            assert_eq!(header("api-key"), None, "{what}");
        }
        ("azure_openai", false) => {
            assert_eq!(header("api-key").as_deref(), Some(UPSTREAM_KEY), "{what}: {:?}", r.headers);
            assert_eq!(header("authorization"), None, "{what}");
        }
        ("bedrock", _) => {
            let auth = header("authorization").unwrap_or_default();
            assert!(auth.starts_with(&format!("AWS4-HMAC-SHA256 Credential={}/", AWS_KEY.0)), "{what}: {auth}");
        }
        (_, _) => assert_eq!(header("authorization"), None, "{what}: a keyless upstream: {:?}", r.headers),
    }
    for (name, value) in &r.headers {
        assert!(!String::from_utf8_lossy(value.as_bytes()).contains(gateway_token), "{what}: token leaked in {name}");
        assert!(
            !name.as_str().starts_with("x-tollgate") || name.as_str() == "x-tollgate-hop",
            "{what}: {name} leaked upstream"
        );
    }
}

/// The text of `<pre class="code" id="{id}">…</pre>` in a page, HTML entities decoded.
fn code_block(html: &str, id: &str) -> Option<String> {
    let start = html.find(&format!(r#"<pre class="code" id="{id}">"#))?;
    let rest = &html[start..];
    let open_end = rest.find('>')? + 1;
    let end = rest.find("</pre>")?;
    Some(unescape(&rest[open_end..end]))
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#34;", "\"")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&amp;", "&")
}

/// What a tool printed.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    fn show(&self) -> String {
        format!("--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr)
    }
}

/// A clean environment for a tool: only PATH (the tools first), a fresh HOME, the gateway
/// token in TOLLGATE_API_KEY, and no traffic beyond 127.0.0.1 from the coding tools.
struct Env {
    home: tempfile::TempDir,
    vars: Vec<(String, String)>,
}

impl Env {
    fn new(tools: &Tools, token: &str) -> Env {
        let home = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = format!(
            "{}:{}:{}",
            tools.bin.display(),
            tools.python.parent().map(Path::display).map(|d| d.to_string()).unwrap_or_default(),
            std::env::var("PATH").unwrap_or_default()
        );
        let vars = [
            ("PATH", path.as_str()),
            ("HOME", &home.path().display().to_string()),
            ("LANG", "C.UTF-8"),
            ("TOLLGATE_API_KEY", token),
            ("NO_COLOR", "1"),
            ("NO_PROXY", "127.0.0.1,localhost"),
            // Claude Code: no telemetry, update checks or other calls home
            ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
            ("DISABLE_AUTOUPDATER", "1"),
            ("DISABLE_TELEMETRY", "1"),
            // Gemini CLI: no telemetry or update checks either
            ("GEMINI_CLI_NO_RELAUNCH", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Env { home, vars }
    }

    async fn run(&self, program: &Path, args: &[&str], dir: &Path, what: &str) -> Run {
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .current_dir(dir)
            .env_clear()
            .envs(self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("{what}: starting {}: {e}", program.display()));
        let out = match tokio::time::timeout(Duration::from_secs(240), child.wait_with_output()).await {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => panic!("{what}: {e}"),
            Err(_) => panic!("{what}: no result within 240 s"),
        };
        Run {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Writes `text` to `dir/name` and returns the path.
fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
    }
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    path
}

/// The non-interactive form of a setup's last line, with a prompt.
fn one_shot(shell: &str, model: &str) -> String {
    let mut lines: Vec<&str> = shell.lines().collect();
    let last = lines.pop().unwrap_or_default();
    let run = match last {
        "claude" => "claude -p 'Say hello'".to_string(),
        "codex" => "codex exec --skip-git-repo-check --sandbox read-only 'Say hello'".to_string(),
        "gemini" => "gemini --skip-trust -p 'Say hello'".to_string(),
        // the environment-only setup of the OpenAI SDKs: a client built without arguments
        l if l.starts_with("export OPENAI_API_KEY") => {
            lines.push(l);
            format!(
                "python -c 'from openai import OpenAI; r = OpenAI().chat.completions.create(model=\"{model}\", \
                 messages=[{{\"role\": \"user\", \"content\": \"Hello\"}}]); print(r.choices[0].message.content)'"
            )
        }
        // the environment-only setup of the AzureOpenAI clients
        l if l.starts_with("export OPENAI_API_VERSION") => {
            lines.push(l);
            format!(
                "python -c 'from openai import AzureOpenAI; r = AzureOpenAI().chat.completions.create(model=\"{model}\", \
                 messages=[{{\"role\": \"user\", \"content\": \"Hello\"}}]); print(r.choices[0].message.content)'"
            )
        }
        other => panic!("a setup ends with an unexpected line: {other}"),
    };
    format!("set -e\n{}\n{run}\n", lines.join("\n"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_connect_tab_snippet_runs_as_written() {
    let Some(tools) = tools() else { return };
    let gw = gateway(TestDb::sqlite().await).await;
    for (name, value) in [
        ("OPENAI_API_KEY", UPSTREAM_KEY),
        ("ANTHROPIC_API_KEY", UPSTREAM_KEY),
        ("GOOGLE_AI_API_KEY", UPSTREAM_KEY),
        ("AWS_ACCESS_KEY_ID", AWS_KEY.0),
        ("AWS_SECRET_ACCESS_KEY", AWS_KEY.1),
        ("AZURE_OPENAI_API_KEY", UPSTREAM_KEY),
    ] {
        secret(&gw, name, value).await;
    }
    let aws = format!("{}:{}", AWS_KEY.0, AWS_KEY.1);
    // name, type, passthrough, the fake's expected credential, allow-list
    let specs: [Spec; 8] = [
        ("c-openai", "openai", false, Some(UPSTREAM_KEY), &["gpt-4o-mini"]),
        ("c-anthropic", "anthropic", false, Some(UPSTREAM_KEY), &["claude-sonnet-4-6", "claude-haiku-4-5"]),
        // passthrough: the fake accepts any credential; the test checks the client's own arrived
        ("c-anthropic-pt", "anthropic", true, None, &["claude-sonnet-4-6", "claude-haiku-4-5"]),
        ("c-google", "google", false, Some(UPSTREAM_KEY), &["gemini-2.5-flash"]),
        (
            "c-bedrock",
            "bedrock",
            false,
            Some(&aws),
            &["us.anthropic.claude-sonnet-4-6", "us.anthropic.claude-haiku-4-5-20251001-v1:0"],
        ),
        ("c-compat", "openai_compatible", false, None, &["llama3.1:8b"]),
        ("c-azure", "azure_openai", false, Some(UPSTREAM_KEY), &["chat"]),
        // passthrough: the fake expects the client's own Entra ID token
        ("c-azure-pt", "azure_openai", true, Some(OWN_AZURE_AD_TOKEN), &["chat"]),
    ];
    let mut provs = Vec::new();
    for (name, kind, passthrough, credential, models) in specs {
        let up = FakeUpstream::start(crate::proxy::ptype(kind), credential).await.unwrap_or_else(|e| panic!("{e:#}"));
        let mut extra = json!({"provider_models": models.iter().map(|m| json!({"name": m})).collect::<Vec<_>>()});
        if passthrough {
            extra[format!("{kind}_config")] = json!({"authorization_passthrough": true});
        }
        let mut body = provider_at(kind, name, &up.provider_base_url(), extra);
        if passthrough && let Some(cfg) = body[format!("{kind}_config")].as_object_mut() {
            cfg.remove("api_key_ref");
        }
        expect(admin(&gw, Method::POST, "/api/v1/llm-providers", Some(body)).await, 201);
        provs.push(Prov { name, kind, passthrough, models, up });
    }
    let token = gw.token("invoker").await.unwrap_or_else(|e| panic!("{e:#}"));
    let mut console = Console::new(&gw);
    console.sign_in(&gw.admin_token).await;
    let work = tempfile::tempdir_in(&tools.node_dir).unwrap_or_else(|e| panic!("{e}"));
    let mut ran = Vec::new();

    for p in &provs {
        let page = console.get(&format!("/providers/{}?tab=connect", p.name)).await;
        page.expect(200);
        let html = &page.body;
        assert!(html.contains("export TOLLGATE_API_KEY=tg_"), "step 1 names the variable every snippet reads");
        assert!(!html.contains("TOLLGATE_TOKEN"), "the old variable name is gone");
        let mut env = Env::new(&tools, &token);
        if p.passthrough {
            // what the user's own sign-in / key is in the passthrough samples
            env.vars.push(("ANTHROPIC_AUTH_TOKEN".into(), OWN_ANTHROPIC_TOKEN.into()));
            env.vars.push(("AZURE_OPENAI_AD_TOKEN".into(), OWN_AZURE_AD_TOKEN.into()));
        }
        let dir = work.path().join(p.name);

        // code samples
        let langs = [("code-curl", "snippet.sh"), ("code-python", "snippet.py"), ("code-typescript", "snippet.mts")];
        for (id, file) in langs {
            let what = format!("{} {id}", p.name);
            let code = code_block(html, id).unwrap_or_else(|| panic!("{what}: not on the page"));
            let path = write(&dir, file, &code);
            let before = p.up.requests().len();
            let run = match id {
                "code-curl" => env.run(Path::new("bash"), &[&path.display().to_string()], &dir, &what).await,
                "code-python" => env.run(&tools.python, &[&path.display().to_string()], &dir, &what).await,
                _ => env.run(&tools.bin.join("tsx"), &[&path.display().to_string()], &dir, &what).await,
            };
            if p.kind == "bedrock" && id == "code-python" {
                // boto3 refuses bearer tokens over plain HTTP; the page says so next to the sample
                assert!(!run.ok, "{what}: boto3 over plain HTTP was expected to refuse\n{}", run.show());
                assert!(
                    run.stderr.contains("Bearer authorization requires an HTTPS endpoint"),
                    "{what}: {}",
                    run.show()
                );
                let note = crate::console::section(html, r#"id="code-python-note""#, "</div>");
                assert!(note.contains("HTTPS only") && note.contains("requires an HTTPS endpoint"), "{note}");
                assert_eq!(p.up.requests().len(), before, "{what}: nothing reached the upstream");
                ran.push(format!("{what}: refused by boto3 as the note says"));
                continue;
            }
            assert!(run.ok && run.stdout.contains(TEXT), "{what} failed:\n{code}\n{}", run.show());
            p.assert_credentials(before, &token, &what);
            ran.push(what);
        }
        assert!(!html.contains(r#"id="code-python-note""#) || p.kind == "bedrock", "{}: no boto3 note", p.name);

        // client setups: setup-1, setup-2, … (with their files); which tools each type gets
        let tools_for: &[&str] = match p.kind {
            "azure_openai" if p.passthrough => &[],
            "openai" | "openai_compatible" => &["OpenAI SDKs", "Codex"],
            "anthropic" => &["Claude Code"],
            "bedrock" => &["Claude Code (Bedrock)"],
            "azure_openai" => &["OpenAI SDKs (AzureOpenAI client)"],
            _ => &["Gemini CLI"],
        };
        for title in tools_for {
            assert!(html.contains(&format!(r#"<h3 class="small">{title}</h3>"#)), "{}: no {title} setup", p.name);
        }
        let mut setups = 0;
        for n in 1.. {
            let id = format!("setup-{n}");
            let Some(shell) = code_block(html, &id) else { break };
            let what = format!("{} {id}", p.name);
            let mut setup_env = Env::new(&tools, &token);
            setup_env.vars.extend(env.vars.iter().filter(|(k, _)| k == "ANTHROPIC_AUTH_TOKEN").cloned());
            if let Some(file) = code_block(html, &format!("{id}-file")) {
                // written where the page says, under the fresh HOME
                let at = crate::console::section(html, &format!(r#"id="{id}-path">"#), "</code>");
                let path = at.trim_start_matches(&format!(r#"id="{id}-path">"#));
                let rel = path.strip_prefix("~/").unwrap_or_else(|| panic!("{what}: a file outside HOME: {path}"));
                write(setup_env.home.path(), rel, &file);
            }
            let script = write(&dir, &format!("{id}.sh"), &one_shot(&shell, p.models[0]));
            let before = p.up.requests().len();
            let run = setup_env.run(Path::new("bash"), &[&script.display().to_string()], &dir, &what).await;
            assert!(run.ok && run.stdout.contains(TEXT), "{what} failed:\n{shell}\n{}", run.show());
            p.assert_credentials(before, &token, &what);
            ran.push(what);
            setups += 1;
        }
        assert_eq!(setups, tools_for.len(), "{}: every setup ran", p.name);
    }

    // every forwarded request was metered, with this token, and none was refused upstream
    let forwarded: usize = provs.iter().map(|p| p.up.requests().len()).sum();
    let events = crate::proxy::usage_events(&gw, forwarded).await;
    for e in &events {
        assert!(provs.iter().any(|p| *p.name == *e.provider), "{e:?}");
        assert!(e.token_id.is_some(), "{e:?}");
        // Claude Code in Bedrock mode also looks its models up with GetInferenceProfile on the
        // runtime endpoint; the fake Bedrock does not serve it (404) and Claude Code carries on.
        let side_lookup = &*e.provider == "c-bedrock" && e.endpoint.starts_with("/inference-profiles");
        assert!(e.http_status.is_some_and(|s| s < 400) || side_lookup, "a snippet's request failed upstream: {e:?}");
    }
    #[allow(clippy::print_stderr)] // what ran, for `--nocapture`
    {
        eprintln!("connect snippets run: {}", ran.join("; "));
    }
}

/// The Bedrock Python (boto3) sample, run as written against a gateway serving HTTPS itself
/// (`--tls-self-signed`): with the https public URL the tab shows no HTTPS note and boto3 sends
/// the gateway token as its bearer token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bedrock_boto3_snippet_runs_against_the_https_gateway() {
    let Some(tools) = tools() else { return };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let gw = TestGateway::start_with(Some(TestDb::sqlite().await), |s| {
        s.tls = tollgate_server::tls::TlsSource::SelfSigned;
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
    let public = gw.base_url.clone();
    assert!(public.starts_with("https://"), "{public}");
    let cert = gw.tls_ca_file.clone().unwrap_or_else(|| panic!("no CA file"));

    let up = FakeUpstream::start(ProviderType::Bedrock, Some(&format!("{}:{}", AWS_KEY.0, AWS_KEY.1)))
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    secret(&gw, "AWS_ACCESS_KEY_ID", AWS_KEY.0).await;
    secret(&gw, "AWS_SECRET_ACCESS_KEY", AWS_KEY.1).await;
    let model = "us.anthropic.claude-sonnet-4-6";
    let body =
        provider_at("bedrock", "c-bedrock", &up.provider_base_url(), json!({"provider_models": [{"name": model}]}));
    expect(admin(&gw, Method::POST, "/api/v1/llm-providers", Some(body)).await, 201);
    let token = gw.token("invoker").await.unwrap_or_else(|e| panic!("{e:#}"));
    let mut console = Console::new(&gw);
    console.sign_in(&gw.admin_token).await;
    let page = console.get("/providers/c-bedrock?tab=connect").await;
    page.expect(200);
    assert!(!page.body.contains(r#"id="code-python-note""#), "no HTTPS note under an https URL");
    let code = code_block(&page.body, "code-python").unwrap_or_else(|| panic!("no Python sample"));
    assert!(code.contains(&format!("endpoint_url=\"{public}/llm/v1/providers/c-bedrock\"")), "{code}");

    let mut env = Env::new(&tools, &token);
    env.vars.push(("AWS_CA_BUNDLE".into(), cert.display().to_string())); // trust the gateway's CA
    let path = write(dir.path(), "snippet.py", &code);
    let run = env.run(&tools.python, &[&path.display().to_string()], dir.path(), "boto3 over HTTPS").await;
    assert!(run.ok && run.stdout.contains(TEXT), "boto3 over HTTPS failed:\n{code}\n{}", run.show());
    let p = Prov { name: "c-bedrock", kind: "bedrock", passthrough: false, models: &[], up };
    p.assert_credentials(0, &token, "boto3 over HTTPS");
    let events = crate::proxy::usage_events(&gw, p.up.requests().len()).await;
    assert!(events.iter().all(|e| e.http_status == Some(200) && e.model.as_deref() == Some(model)), "{events:?}");
}
