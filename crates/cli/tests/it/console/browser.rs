//! The console end to end in headless Chromium (Debian `chromium` + `chromium-driver`, driven
//! over WebDriver by fantoccini): sign in; store a secret; create a provider of every type
//! through the form (Resource ID derived as you type, type cards, Existing and New secrets, the
//! catalog model picker, free-typed models, a price override in the dialog, transcripts); see
//! them listed; send traffic through the proxy to fake upstreams; Test Connection; see the spend
//! on the detail KPIs and on Cost & Usage (groups, chips, a shared custom-range URL); edit,
//! disable and delete; a reader's read-only view.
//!
//! One browser session serves the whole flow (Chromium is slow to start on two cores). Without
//! `/usr/bin/chromedriver` the test fails, unless `TOLLGATE_SKIP_BROWSER_TESTS=1`. With
//! `TOLLGATE_SCREENSHOTS=1` it saves a PNG of every page under `docs/screenshots/`.

use super::token_of;
use crate::proxy::{AWS_KEY, UPSTREAM_KEY, sdk_auth, send, usage_events};
use crate::support::*;
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tollgate_core::pricing::{PriceInput, price};
use tollgate_core::{Catalog, ProviderType, RequestStatus, Usage};
use tollgate_server::console::format as fmt;
use tollgate_store::{UsageEvent, UsageStore};
use tollgate_testkit::upstream::FakeUpstream;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
const DAY_MS: i64 = 86_400_000;

/// A chromedriver process this test started, in a process group of its own with the Chromium it
/// launches; the whole group is killed when dropped, so a failed run leaves no browser behind
/// (killing chromedriver alone orphans its Chromium processes).
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", self.child.id())]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rfc3339(ms: i64) -> String {
    fmt::iso(ms)
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    l.local_addr().map(|a| a.port()).unwrap_or_else(|e| panic!("{e}"))
}

/// Starts chromedriver, or says why the browser tests cannot run.
fn driver() -> Option<Driver> {
    if !std::path::Path::new(CHROMEDRIVER).exists() {
        if std::env::var("TOLLGATE_SKIP_BROWSER_TESTS").as_deref() == Ok("1") {
            #[allow(clippy::print_stderr)] // the one way to tell a test runner a test was skipped
            {
                eprintln!("browser tests skipped: {CHROMEDRIVER} is missing and TOLLGATE_SKIP_BROWSER_TESTS=1");
            }
            return None;
        }
        panic!(
            "{CHROMEDRIVER} is missing: install Debian's chromium and chromium-driver (.ci/run does), \
             or set TOLLGATE_SKIP_BROWSER_TESTS=1 to skip the browser tests"
        );
    }
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .process_group(0)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting chromedriver: {e}"));
    let d = Driver { child, port };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(d)
}

/// The browser, plus where screenshots go.
struct Browser {
    c: Client,
    base: String,
    shots: Option<PathBuf>,
    _driver: Driver,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start(base: &str, driver: Driver) -> Browser {
        let profile = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let caps: serde_json::Map<String, Value> = serde_json::from_value(json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         "--disable-dev-shm-usage", "--window-size=1400,1000",
                         format!("--user-data-dir={}", profile.path().display())]
            }
        }))
        .unwrap_or_default();
        let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
            .unwrap_or_else(|e| panic!("WebDriver session: {e}"));
        let shots = (std::env::var("TOLLGATE_SCREENSHOTS").as_deref() == Ok("1"))
            .then(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots"));
        Browser { c, base: base.to_string(), shots, _driver: driver, _profile: profile }
    }

    async fn go(&self, path: &str) {
        self.c.goto(&format!("{}{path}", self.base)).await.unwrap_or_else(|e| panic!("goto {path}: {e}"));
    }

    async fn el(&self, css: &str) -> Element {
        match self.c.wait().at_most(Duration::from_secs(15)).for_element(Locator::Css(css)).await {
            Ok(e) => e,
            Err(e) => panic!("no element {css} on {:?}: {e}", self.c.current_url().await.ok()),
        }
    }

    /// Clicks `css`; an element the page redrew between finding and clicking (a suggestion list
    /// redrawn as typing goes on) is found again.
    async fn click(&self, css: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match self.el(css).await.click().await {
                Ok(()) => return,
                Err(e) if e.to_string().contains("stale element") && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("click {css}: {e}"),
            }
        }
    }

    async fn fill(&self, css: &str, text: &str) {
        let e = self.el(css).await;
        e.clear().await.unwrap_or_else(|e| panic!("clear {css}: {e}"));
        e.send_keys(text).await.unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    async fn select(&self, css: &str, value: &str) {
        self.el(css).await.select_by_value(value).await.unwrap_or_else(|e| panic!("select {value} in {css}: {e}"));
    }

    async fn text(&self, css: &str) -> String {
        self.el(css).await.text().await.unwrap_or_default()
    }

    async fn prop(&self, css: &str, prop: &str) -> Option<String> {
        self.el(css).await.prop(prop).await.unwrap_or_default()
    }

    async fn exists(&self, css: &str) -> bool {
        self.c.find(Locator::Css(css)).await.is_ok()
    }

    /// Waits until nothing matches `css` (e.g. after a navigation).
    async fn wait_gone(&self, css: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.exists(css).await {
            assert!(Instant::now() < deadline, "{css} is still there");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn js(&self, script: &str) -> Value {
        self.c.execute(script, vec![]).await.unwrap_or_else(|e| panic!("script: {e}"))
    }

    /// Waits until `css`'s text contains `needle`.
    async fn wait_text(&self, css: &str, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let t = self.text(css).await;
            if t.contains(needle) {
                return t;
            }
            assert!(Instant::now() < deadline, "{css} never showed {needle:?}; it shows {t:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn path(&self) -> String {
        let u = self.c.current_url().await.unwrap_or_else(|e| panic!("{e}"));
        match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_string(),
        }
    }

    /// Saves a full-page PNG at `width` CSS pixels as `docs/screenshots/<name>.png` when
    /// screenshots are on (the window is put back to 390 × 844 after).
    async fn shot_at(&self, name: &str, width: u32) {
        let Some(dir) = &self.shots else { return };
        let h = self
            .js("window.scrollTo(0, 0); return document.documentElement.scrollHeight")
            .await
            .as_u64()
            .unwrap_or(844);
        let _ = self.c.set_window_size(width, (h + 140).clamp(844, 6000) as u32).await;
        let png = self.c.screenshot().await.unwrap_or_else(|e| panic!("screenshot: {e}"));
        let _ = self.c.set_window_size(width, 844).await;
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Saves a full-page PNG as `docs/screenshots/<name>.png` when screenshots are on.
    async fn shot(&self, name: &str) {
        let Some(dir) = &self.shots else { return };
        let h = self
            .js("window.scrollTo(0, 0); return document.documentElement.scrollHeight")
            .await
            .as_u64()
            .unwrap_or(1000);
        let _ = self.c.set_window_size(1400, (h + 140).clamp(800, 4200) as u32).await;
        let png = self.c.screenshot().await.unwrap_or_else(|e| panic!("screenshot: {e}"));
        let _ = self.c.set_window_size(1400, 1000).await;
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// axe-core's `axe.min.js`, installed by `tests/tools/install.sh` (under CI=true a missing one
/// fails the test; elsewhere the accessibility check is skipped with a message).
fn axe_script() -> Option<String> {
    let dir = std::env::var_os("TOLLGATE_SNIPPET_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/snippet-tools"));
    let path = dir.join("node/node_modules/axe-core/axe.min.js");
    match std::fs::read_to_string(&path) {
        Ok(s) => Some(s),
        Err(e) => {
            assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "axe-core is missing ({}): {e}", path.display());
            #[allow(clippy::print_stderr)] // the one way to tell a test runner a check was skipped
            {
                eprintln!("SKIPPED the axe-core checks: {} is missing (run tests/tools/install.sh)", path.display());
            }
            None
        }
    }
}

/// Injects axe-core into the page and returns its serious and critical violations (rule,
/// impact, first nodes).
async fn axe_violations(b: &Browser, axe: &str) -> Vec<Value> {
    b.c.execute(axe, vec![]).await.unwrap_or_else(|e| panic!("injecting axe-core: {e}"));
    let r = b
        .c
        .execute_async(
            "const done = arguments[arguments.length - 1];              axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations                .filter(v => v.impact === 'serious' || v.impact === 'critical')                .map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))))                .catch(e => done([{id: 'axe-error', impact: String(e)}]));",
            vec![],
        )
        .await
        .unwrap_or_else(|e| panic!("running axe-core: {e}"));
    r.as_array().cloned().unwrap_or_default()
}

/// What the form should be filled with for one provider.
struct NewProvider<'a> {
    display: &'a str,
    expected_id: &'a str,
    kind: &'a str,
    base_url: String,
    /// (field, how): `("openai_config.api_key_ref", Existing("OPENAI_API_KEY"))`.
    secrets: Vec<(&'a str, SecretInput<'a>)>,
    /// Catalog models picked from the suggestions.
    picked: Vec<&'a str>,
    /// Models typed (not in the catalog).
    typed: Vec<&'a str>,
    /// Screenshot the catalog suggestions open for the first picked model under this name.
    picker_shot: Option<&'a str>,
}

enum SecretInput<'a> {
    Existing(&'a str),
    New(&'a str, &'a str),
}

async fn create_through_form(b: &Browser, p: &NewProvider<'_>, shot: Option<&str>) {
    b.go("/providers/new").await;
    assert_eq!(b.prop("#submit-provider", "disabled").await.as_deref(), Some("true"), "Create starts inactive");
    b.fill("#display_name", p.display).await;
    // the Resource ID follows the display name, and the live check approves it
    assert_eq!(b.prop("#name", "value").await.as_deref(), Some(p.expected_id));
    b.wait_text("#name-ok", "available").await;
    assert!(b.el("#sum-name").await.attr("class").await.unwrap_or_default().unwrap_or_default().contains("done"));
    assert_eq!(b.prop("#submit-provider", "disabled").await.as_deref(), Some("true"), "Type is still missing");
    b.click(&format!("label[for=type-{}]", p.kind)).await;
    assert_eq!(b.prop("#submit-provider", "disabled").await.as_deref(), Some("false"), "Name and Type set");
    let base_input = match p.kind {
        "openai" => "#openai-base-url",
        "anthropic" => "#anthropic-base-url",
        "google" => "#google-base-url",
        "bedrock" => "#bedrock-base-url",
        _ => "#compat-base-url",
    };
    b.fill(base_input, &p.base_url).await;
    if p.kind == "bedrock" {
        b.click("label:has(> #cred-static)").await;
    }
    for (field, how) in &p.secrets {
        let boxed = format!(r#"div[data-secret-field="{field}"]"#);
        let id = field.replace(['.', '_'], "-");
        match how {
            SecretInput::Existing(name) => b.select(&format!("select#{id}"), name).await,
            SecretInput::New(name, value) => {
                b.click(&format!("{boxed} label:has(> .mode-new)")).await;
                b.fill(&format!("#{id}-new-name"), name).await;
                b.fill(&format!("#{id}-new-value"), value).await;
            }
        }
    }
    for (i, m) in p.picked.iter().enumerate() {
        b.fill("#model-search", m).await;
        if let (0, Some(name)) = (i, p.picker_shot) {
            // the suggestions come from the catalog, with input/output prices per 1M
            let item = b.text(&format!(r#"#model-suggestions .picker-item[data-name="{m}"]"#)).await;
            assert!(item.contains('$'), "a catalog suggestion shows its prices: {item}");
            b.shot(name).await;
        }
        b.click(&format!(r#"#model-suggestions .picker-item[data-name="{m}"]"#)).await;
        b.el(&format!(r#"#model-rows tr[data-name="{m}"]"#)).await;
    }
    for m in &p.typed {
        b.fill("#model-search", &format!("{m}\u{E007}")).await;
        b.el(&format!(r#"#model-rows tr[data-name="{m}"]"#)).await;
    }
    if let Some(name) = shot {
        b.shot(name).await;
    }
}

async fn submit_provider(b: &Browser, id: &str) {
    b.click("#submit-provider").await;
    b.wait_text("#notice", &format!("Provider \"{id}\" created.")).await;
    assert_eq!(b.path().await, format!("/providers/{id}?notice=created&name={id}"));
}

/// Priced historical events for the last `days` days (not today), so the charts have a shape.
fn history(kind: ProviderType, provider: &str, models: &[&str], days: i64, now_ms: i64) -> Vec<UsageEvent> {
    let catalog = Catalog::embedded().unwrap_or_else(|e| panic!("{e}"));
    let today = now_ms - now_ms.rem_euclid(DAY_MS);
    let mut out = Vec::new();
    for d in 1..=days {
        for (i, model) in models.iter().enumerate() {
            let n = ((d * 7 + i as i64 * 3) % 5) + 1;
            for k in 0..n {
                let usage = Usage {
                    input: 1_000 * (d % 4 + 1) + 250 * k,
                    output: 400 * (i as i64 + 1),
                    cached_input: if kind == ProviderType::Anthropic { 2_000 } else { 0 },
                    cache_write_5m: if kind == ProviderType::Anthropic && k == 0 { 500 } else { 0 },
                    reasoning: if kind == ProviderType::Openai { 120 } else { 0 },
                    ..Usage::default()
                };
                let priced = price(
                    &PriceInput { provider_type: kind, model: Some(model), usage: &usage, overrides: None },
                    &catalog,
                );
                out.push(UsageEvent {
                    id: uuid::Uuid::now_v7().to_string(),
                    ts_ms: today - d * DAY_MS + (k + 1) * 3_600_000 + i as i64 * 60_000,
                    provider: provider.into(),
                    provider_type: kind,
                    model: Some(model.to_string()),
                    endpoint: "/v1/messages".into(),
                    user: Some(["ana@example.com", "li@example.com"][(k % 2) as usize].into()),
                    agent: Some(["support-bot", "coder"][(d % 2) as usize].into()),
                    token_id: None,
                    status: if k == 3 { RequestStatus::UpstreamError } else { RequestStatus::Success },
                    http_status: Some(200),
                    error_class: None,
                    streamed: k % 2 == 0,
                    latency_ms: 800,
                    ttft_ms: Some(200),
                    usage,
                    cost: priced.cost,
                    catalog_version: Some(catalog.shared_version()),
                    priced_by_override: false,
                    unpriced: priced.unpriced,
                    request_id: format!("hist-{provider}-{d}-{i}-{k}"),
                    conversation_id: None,
                    transcript: None,
                });
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_end_to_end_in_chromium() {
    let Some(driver) = driver() else { return };
    // fake upstreams for every type
    let up = |flavor, key: Option<&'static str>| async move {
        FakeUpstream::start(flavor, key).await.unwrap_or_else(|e| panic!("fake upstream: {e:#}"))
    };
    let openai = up(ProviderType::Openai, Some(UPSTREAM_KEY)).await;
    let anthropic = up(ProviderType::Anthropic, Some(UPSTREAM_KEY)).await;
    let google = up(ProviderType::Google, Some(UPSTREAM_KEY)).await;
    let aws_key = format!("{}:{}", AWS_KEY.0, AWS_KEY.1);
    let bedrock = FakeUpstream::start(ProviderType::Bedrock, Some(&aws_key)).await.unwrap_or_else(|e| panic!("{e:#}"));
    let local = up(ProviderType::Openai, None).await;
    let control = bedrock.base_url.clone();
    let gw = TestGateway::start_with(None, |s| s.bedrock_control_endpoint = Some(control))
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    secret(&gw, "GOOGLE_AI_API_KEY", UPSTREAM_KEY).await;
    let b = Browser::start(&gw.base_url, driver).await;

    // ---- sign in
    b.go("/providers").await;
    assert!(b.path().await.starts_with("/login?next=%2Fproviders"));
    b.shot("01-sign-in").await;
    b.fill("#token", "tg_not-a-real-token").await;
    b.click("#sign-in").await;
    b.wait_text("#login-error", "invalid gateway token").await;
    b.fill("#token", &gw.admin_token).await;
    b.click("#sign-in").await;
    b.wait_text("#no-providers", "No providers yet").await;
    assert_eq!(b.text("#role").await, "admin");

    // ---- a secret through the Secrets page
    b.click(r#"a[href="/secrets"]"#).await;
    b.fill("#secret-name", "OPENAI_API_KEY").await;
    b.fill("#secret-value", UPSTREAM_KEY).await;
    b.click("#save-secret").await;
    b.wait_text("#notice", "Secret OPENAI_API_KEY stored.").await;
    assert!(b.exists(r#"tr[data-secret="OPENAI_API_KEY"]"#).await);

    // ---- one provider of each type through the form
    let anthropic_p = NewProvider {
        display: "Claude Team",
        expected_id: "claude-team",
        kind: "anthropic",
        base_url: anthropic.provider_base_url(),
        secrets: vec![("anthropic_config.api_key_ref", SecretInput::New("ANTHROPIC_API_KEY", UPSTREAM_KEY))],
        picked: vec!["claude-haiku-4-5", "claude-sonnet-4-5"],
        typed: vec![],
        picker_shot: None,
    };
    // the blank form: Create is inactive until Name and Type are set
    b.go("/providers/new").await;
    assert_eq!(b.prop("#submit-provider", "disabled").await.as_deref(), Some("true"));
    b.shot("02a-create-empty").await;
    create_through_form(&b, &anthropic_p, None).await;
    // override the price of one model in the dialog: input $0.75, cached input free, output blank
    b.click(r#"tr[data-name="claude-haiku-4-5"] button[data-action="override"]"#).await;
    let placeholder = b.el("#ov-input_per_million").await.attr("placeholder").await.ok().flatten().unwrap_or_default();
    assert_eq!(placeholder, "1", "the catalog rate is the placeholder");
    b.fill("#ov-input_per_million", "0.75").await;
    b.fill("#ov-output_per_million", "9").await;
    b.fill("#ov-cached_input_per_million", "0").await;
    b.click(r#"button[data-reset="output_per_million"]"#).await;
    assert_eq!(b.prop("#ov-output_per_million", "value").await.as_deref(), Some(""), "per-field reset");
    b.shot("03-override-pricing").await;
    b.click("#pricing-save").await;
    assert_eq!(b.text(r#"tr[data-name="claude-haiku-4-5"] .m-in"#).await, "$0.75");
    assert!(b.el(r#"tr[data-name="claude-haiku-4-5"] .price-badge"#).await.is_displayed().await.unwrap_or(false));
    b.click("#record-inputs").await;
    // the picker: Enter takes the highlighted catalog entry, not the text typed
    b.fill("#model-search", "sonnet-4-6").await;
    b.wait_text("#model-suggestions .picker-item.active", "claude-sonnet-4-6").await;
    b.el("#model-search").await.send_keys("\u{E007}").await.unwrap_or_else(|e| panic!("{e}"));
    b.el(r#"#model-rows tr[data-name="claude-sonnet-4-6"]"#).await;
    assert!(!b.exists(r#"#model-rows tr[data-name="sonnet-4-6"]"#).await, "Enter saved the typed text");
    // an ID the catalog does not know: Enter adds nothing, "Add custom" adds it with a warning
    b.fill("#model-search", "my-fine-tune").await;
    b.el("#add-custom-model").await;
    b.el("#model-search").await.send_keys("\u{E007}").await.unwrap_or_else(|e| panic!("{e}"));
    assert!(!b.exists(r#"#model-rows tr[data-name="my-fine-tune"]"#).await, "Enter added free text");
    b.fill("#model-search", "my-fine-tune").await;
    b.click("#add-custom-model").await;
    let warn = b.text(r#"#model-rows tr[data-name="my-fine-tune"] .field-warn"#).await;
    assert!(warn.contains("not in the catalog for type anthropic"), "{warn}");
    for m in ["claude-sonnet-4-6", "my-fine-tune"] {
        b.click(&format!(r#"#model-rows tr[data-name="{m}"] button[data-action="remove"]"#)).await;
        b.wait_gone(&format!(r#"#model-rows tr[data-name="{m}"]"#)).await;
    }
    b.shot("02-create-provider").await;
    submit_provider(&b, "claude-team").await;
    // a Resource ID that is taken is not ticked in the Summary, and Create stays inactive
    b.go("/providers/new").await;
    b.fill("#display_name", "Claude Team").await;
    b.wait_text("#name-live-error", "already exists").await;
    assert!(!b.el("#sum-name").await.attr("class").await.ok().flatten().unwrap_or_default().contains("done"));
    b.click("label[for=type-anthropic]").await;
    assert_eq!(b.prop("#submit-provider", "disabled").await.as_deref(), Some("true"), "a taken name");
    // switching type drops the other type's catalog models and keeps custom IDs
    b.click("label[for=type-openai]").await;
    b.fill("#model-search", "gpt-4o-mini").await;
    b.click(r#"#model-suggestions .picker-item[data-name="gpt-4o-mini"]"#).await;
    b.fill("#model-search", "house-model").await;
    b.click("#add-custom-model").await;
    b.el(r#"#model-rows tr[data-name="house-model"]"#).await;
    b.click("label[for=type-google]").await;
    b.wait_gone(r#"#model-rows tr[data-name="gpt-4o-mini"]"#).await;
    assert!(b.exists(r#"#model-rows tr[data-name="house-model"]"#).await, "a custom ID stays");

    let providers = [
        NewProvider {
            display: "Prod OpenAI",
            expected_id: "prod-openai",
            kind: "openai",
            base_url: openai.provider_base_url(),
            secrets: vec![("openai_config.api_key_ref", SecretInput::Existing("OPENAI_API_KEY"))],
            picked: vec!["gpt-4o-mini", "gpt-4o", "gpt-4.1"],
            typed: vec![],
            picker_shot: Some("02c-model-picker"),
        },
        NewProvider {
            display: "Gemini",
            expected_id: "gemini",
            kind: "google",
            base_url: google.provider_base_url(),
            secrets: vec![("google_config.api_key_ref", SecretInput::Existing("GOOGLE_AI_API_KEY"))],
            picked: vec![],
            typed: vec![],
            picker_shot: None,
        },
        NewProvider {
            display: "Bedrock US",
            expected_id: "bedrock-us",
            kind: "bedrock",
            base_url: bedrock.provider_base_url(),
            secrets: vec![
                (
                    "bedrock_config.static_credentials.access_key_id_ref",
                    SecretInput::New("AWS_ACCESS_KEY_ID", AWS_KEY.0),
                ),
                (
                    "bedrock_config.static_credentials.secret_access_key_ref",
                    SecretInput::New("AWS_SECRET_ACCESS_KEY", AWS_KEY.1),
                ),
            ],
            picked: vec!["us.anthropic.claude-haiku-4-5-20251001-v1:0"],
            typed: vec![],
            picker_shot: None,
        },
        NewProvider {
            display: "Local Llama",
            expected_id: "local-llama",
            kind: "openai_compatible",
            base_url: local.provider_base_url(),
            secrets: vec![],
            picked: vec![],
            typed: vec!["llama3.1:8b", "qwen2.5-coder:7b"],
            picker_shot: None,
        },
    ];
    for p in &providers {
        let shot = match p.kind {
            "bedrock" => Some("02b-create-bedrock"),
            "openai_compatible" => Some("02d-create-openai-compatible"),
            _ => None,
        };
        create_through_form(&b, p, shot).await;
        submit_provider(&b, p.expected_id).await;
    }
    // what the forms stored
    let (_, spec) = admin(&gw, Method::GET, "/api/v1/llm-providers/claude-team", None).await;
    assert_eq!(
        spec["provider_models"],
        json!([{"name": "claude-haiku-4-5", "custom_pricing": {"input_per_million": 75_000_000, "cached_input_per_million": 0}},
               {"name": "claude-sonnet-4-5"}])
    );
    assert_eq!(spec["transcripts"], json!({"record_input_messages": true, "record_output_messages": false}));
    let (_, spec) = admin(&gw, Method::GET, "/api/v1/llm-providers/bedrock-us", None).await;
    assert_eq!(spec["bedrock_config"]["static_credentials"]["access_key_id_ref"], "AWS_ACCESS_KEY_ID");
    let (_, spec) = admin(&gw, Method::GET, "/api/v1/llm-providers/local-llama", None).await;
    assert_eq!(spec["provider_models"], json!([{"name": "llama3.1:8b"}, {"name": "qwen2.5-coder:7b"}]));
    // a server-side error is shown next to its field: an Assume IAM role without a valid role ARN
    b.go("/providers/new").await;
    b.fill("#display_name", "Bedrock EU").await;
    b.wait_text("#name-ok", "available").await;
    b.click("label[for=type-bedrock]").await;
    b.fill("#bedrock-region", "eu-west-1").await;
    b.click("label:has(> #cred-assume)").await;
    b.fill("#bedrock-role-arn", "tollgate-bedrock").await;
    b.click("#submit-provider").await;
    let err = b.wait_text(".pane-assume .field-error", "role").await;
    assert!(b.path().await.starts_with("/providers/new"), "the form is shown again: {err}");
    assert_eq!(b.prop("#bedrock-role-arn", "value").await.as_deref(), Some("tollgate-bedrock"), "input kept");
    b.shot("02e-create-server-error").await;
    // a second OpenAI provider (through the API), so the charts need two hatches of one colour
    let mut second = crate::proxy::provider_at("openai", "batch-openai", &openai.provider_base_url(), json!({}));
    second["display_name"] = json!("Batch OpenAI");
    expect(admin(&gw, Method::POST, "/api/v1/llm-providers", Some(second)).await, 201);

    // ---- the list
    b.go("/providers").await;
    for id in ["batch-openai", "bedrock-us", "claude-team", "gemini", "local-llama", "prod-openai"] {
        assert!(b.exists(&format!(r#"tr[data-provider="{id}"]"#)).await, "{id} listed");
    }
    assert_eq!(b.text("#page-range").await, "1–6 of 6");
    let models = b.text(r#"tr[data-provider="prod-openai"]"#).await;
    assert!(models.contains("gpt-4o-mini") && models.contains("gpt-4o") && models.contains("+1"), "{models}");
    assert!(!models.contains("gpt-4.1"), "only the first two models are named: {models}");

    // ---- traffic through the proxy, with a token made on the Tokens page
    b.go("/tokens?providers=claude-team&role=invoker&name=app").await;
    b.select("#token-role", "invoker").await;
    b.js("for (const o of document.querySelectorAll('#token-providers option')) o.selected = false").await;
    b.fill("#token-agent", "support-bot").await;
    b.fill("#token-user", "ana@example.com").await;
    b.click("#create-token").await;
    let app_token = b.text("#new-token-value").await;
    assert!(app_token.starts_with("tg_"), "{app_token}");
    b.shot("09-tokens").await;
    let hi = json!({"messages": [{"role": "user", "content": "hi"}]});
    let proxy = |p: &str| gw.url(&format!("/llm/v1/providers/{p}"));
    let mut sent = 0;
    for (p, kind, path, model) in [
        ("claude-team", "anthropic", "/v1/messages", "claude-haiku-4-5"),
        ("claude-team", "anthropic", "/v1/messages", "claude-sonnet-4-5"),
        ("prod-openai", "openai", "/chat/completions", "gpt-4o-mini"),
        ("batch-openai", "openai", "/chat/completions", "gpt-4o"),
        ("local-llama", "openai_compatible", "/chat/completions", "llama3.1:8b"),
    ] {
        let mut body = hi.clone();
        body["model"] = json!(model);
        body["max_tokens"] = json!(64);
        let r = send(sdk_auth(gw.client.post(format!("{}{path}", proxy(p))), kind, &app_token).json(&body)).await;
        assert_eq!(r.status, 200, "{p}: {}", r.text());
        sent += 1;
    }
    let r = send(
        sdk_auth(
            gw.client.post(format!("{}/v1beta/models/gemini-2.5-flash:generateContent", proxy("gemini"))),
            "google",
            &app_token,
        )
        .json(&json!({"contents": [{"parts": [{"text": "hi"}]}]})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = send(
        gw.client
            .post(format!("{}/model/us.anthropic.claude-haiku-4-5-20251001-v1:0/converse", proxy("bedrock-us")))
            .bearer_auth(&app_token)
            .json(&json!({"messages": [{"role": "user", "content": [{"text": "hi"}]}]})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    sent += 2;
    usage_events(&gw, sent).await;
    // and two weeks of history, so the charts have a shape
    let now = chrono::Utc::now().timestamp_millis();
    let mut past = history(ProviderType::Anthropic, "claude-team", &["claude-haiku-4-5", "claude-sonnet-4-5"], 13, now);
    past.extend(history(ProviderType::Openai, "prod-openai", &["gpt-4o-mini", "gpt-4o"], 13, now));
    past.extend(history(ProviderType::Openai, "batch-openai", &["gpt-4o"], 9, now));
    past.extend(history(ProviderType::Google, "gemini", &["gemini-2.5-flash"], 11, now));
    // one call without a user or a model (a model list through a token without a user)
    let mut anonymous = past[0].clone();
    anonymous.id = uuid::Uuid::now_v7().to_string();
    anonymous.request_id = "hist-anonymous".into();
    (anonymous.user, anonymous.agent, anonymous.model) = (None, None, None);
    past.push(anonymous);
    let usage_url = format!("sqlite://{}?mode=rwc", gw.data_dir.join("usage.sqlite").display());
    let store = UsageStore::connect(&usage_url).await.unwrap_or_else(|e| panic!("{e}"));
    store.insert_events(&past).await.unwrap_or_else(|e| panic!("{e}"));
    store.close().await;

    // ---- the detail page: KPIs match the spending API, Test Connection passes
    let today = now - now.rem_euclid(DAY_MS);
    let week = |p: &str| {
        format!(
            "/api/v1/spending/summary?provider={p}&start={}&end={}",
            rfc3339(today - 6 * DAY_MS),
            rfc3339(today + DAY_MS)
        )
    };
    let (_, s) = admin(&gw, Method::GET, &week("claude-team"), None).await;
    let spend = s["stats"]["total_cost_microcents"].as_i64().unwrap_or_default();
    assert!(spend > 0, "{s}");
    b.go("/providers/claude-team").await;
    assert_eq!(b.text("#kpi-spend .kpi-value").await, fmt::usd(spend));
    assert_eq!(b.text("#kpi-requests .kpi-value").await, fmt::int(s["stats"]["total_requests"].as_i64().unwrap_or(0)));
    assert_eq!(b.text("#kpi-tokens .kpi-value").await, fmt::int(s["stats"]["total_tokens"].as_i64().unwrap_or(0)));
    assert!(b.text(r#"tr[data-model="claude-haiku-4-5"]"#).await.contains("$0.75"), "override price in the list");
    assert!(b.text("#connection-card").await.contains(&proxy("claude-team")));
    assert_eq!(b.text("#check-text").await, "Not tested yet");
    // the fake upstream does not list this model: a failure with the reason
    b.select("#check-model", "claude-haiku-4-5").await;
    b.click("#test-connection").await;
    b.wait_text("#check-text", "does not list model").await;
    assert!(b.el("#check-status").await.attr("class").await.ok().flatten().unwrap_or_default().contains("fail"));
    b.select("#check-model", "").await;
    b.click("#test-connection").await;
    let status = b.wait_text("#check-text", "Passed").await;
    assert!(status.contains(" ms"), "{status}");
    b.click("#show-commands summary").await;
    assert!(b.text("#cmd-1").await.contains("/api/v1/llm-providers/claude-team/check"));
    // the commands follow the model chosen in the dropdown
    assert_eq!(b.text("#cmd-2").await, "tollgate provider check claude-team");
    b.select("#check-model", "claude-sonnet-4-5").await;
    assert_eq!(b.text("#cmd-2").await, "tollgate provider check claude-team --model claude-sonnet-4-5");
    assert!(b.text("#cmd-1").await.contains(r#"{"model": "claude-sonnet-4-5"}"#));
    // copy buttons keep their icon after "Copied" (twice in a row, too)
    let icon = r#"#connection-card button[data-copy] svg"#;
    b.el(icon).await;
    b.click("#connection-card button[data-copy]").await;
    b.click("#connection-card button[data-copy]").await;
    b.wait_text("#connection-card button[data-copy]", "Copied").await;
    b.el(icon).await;
    assert_eq!(b.text("#connection-card button[data-copy]").await, "", "the icon, not text");
    b.shot("04-provider-detail").await;
    // Test Connection on Bedrock signs ListFoundationModels against the fake control plane
    b.go("/providers/bedrock-us").await;
    b.click("#test-connection").await;
    b.wait_text("#check-text", "Passed").await;
    // Connect tab
    b.go("/providers/claude-team").await;
    b.click("#tab-connect").await;
    let curl = b.text("#code-curl").await;
    assert!(curl.contains(&format!("curl {}/v1/messages", proxy("claude-team"))), "{curl:?}");
    b.click("label:has(> .lang-typescript)").await;
    assert!(b.text("#code-typescript").await.contains("@anthropic-ai/sdk"));
    assert!(b.text("#step-clients").await.contains("ANTHROPIC_BASE_URL"));
    b.click("label:has(> .lang-python)").await;
    b.shot("05-provider-connect").await;
    b.go("/providers/gemini?tab=connect").await;
    assert!(b.text("#code-curl").await.contains(":generateContent"));

    // ---- the list with spend
    b.go("/providers").await;
    let row = b.text(r#"tr[data-provider="claude-team"]"#).await;
    assert!(row.contains(&fmt::usd(spend)), "{row}");
    b.shot("06-providers").await;

    // ---- Cost & Usage
    b.click(r#"a[href="/usage"]"#).await;
    let sub = b.text("#usage-subtitle").await;
    assert!(sub.ends_with("Last 7 days · daily buckets"), "{sub}");
    let bars = b.el("#chart-spend").await.attr("data-buckets").await.ok().flatten().unwrap_or_default();
    assert_eq!(bars, "7");
    let (_, all) = admin(
        &gw,
        Method::GET,
        &format!("/api/v1/spending/summary?start={}&end={}", rfc3339(today - 6 * DAY_MS), rfc3339(today + DAY_MS)),
        None,
    )
    .await;
    let total = all["stats"]["total_cost_microcents"].as_i64().unwrap_or_default();
    assert!(b.text("#cost-sums").await.contains(&fmt::usd(total)));
    // two OpenAI providers: one colour, distinct hatches
    let legend = b.text("#chart-spend-card .legend").await;
    assert!(legend.contains("Prod OpenAI") && legend.contains("Batch OpenAI"), "{legend}");
    let hatched: i64 =
        b.js("return document.querySelectorAll('#chart-spend pattern').length").await.as_i64().unwrap_or(0);
    assert!(hatched >= 1, "the second OpenAI provider is hatched");
    b.shot("07-cost-and-usage").await;

    // ---- Requests and Transcripts: record claude-team's bodies, then read them back
    let patch = json!({"transcripts": {"record_input_messages": true, "record_output_messages": true}});
    expect(admin(&gw, Method::PATCH, "/api/v1/llm-providers/claude-team", Some(patch)).await, 200);
    for question in ["What is Tollgate?", "And how are transcripts stored?"] {
        let body = json!({"model": "claude-haiku-4-5", "max_tokens": 64, "stream": true,
            "system": "Answer briefly.", "messages": [{"role": "user", "content": question}]});
        let r = send(
            sdk_auth(gw.client.post(format!("{}/v1/messages", proxy("claude-team"))), "anthropic", &app_token)
                .header("x-tollgate-conversation", "docs-chat")
                .json(&body),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    gw.flush_usage().await;
    b.click("#failed-requests-link").await;
    assert!(b.path().await.starts_with("/requests?status=failed"), "Failed requests leads to them");
    b.click(r#"a[href="/requests"]"#).await;
    let first = b.text("#requests-table tbody tr").await;
    assert!(first.contains("claude-team") && first.contains("input + output"), "{first}");
    b.shot("13-requests").await;
    b.click("#requests-table tbody tr td a").await;
    b.wait_text("#chat-view", "Hello from the fake upstream.").await;
    assert!(b.text("#chat-view").await.contains("And how are transcripts stored?"));
    b.shot("14-request-chat").await;
    b.click("#view-detailed").await;
    b.wait_text("#detailed-view", "message_stop").await;
    b.shot("14b-request-detailed").await;
    b.click(r#"a[href="/transcripts"]"#).await;
    assert!(b.text(r#"tr[data-conversation="docs-chat"]"#).await.contains("2"));
    b.shot("15-transcripts").await;
    b.click(r#"tr[data-conversation="docs-chat"] a"#).await;
    b.wait_text("#chat-view", "What is Tollgate?").await;
    assert_eq!(b.js("return document.querySelectorAll('[data-turn]').length").await.as_i64(), Some(2));
    b.shot("16-transcript-chat").await;
    b.go("/usage").await;
    // group by model, filter to one provider and one cost type through the chips
    b.select("#group-by", "model").await;
    b.wait_text("#breakdown-card h2", "By Model").await;
    b.click("#add-filter").await;
    b.select("#filter-add", "provider:claude-team").await;
    b.el(r#".fchip[data-dim="provider"][data-value="claude-team"]"#).await;
    b.click("#add-filter").await;
    b.select("#filter-add", "cost_type:input").await;
    b.el(r#".fchip[data-dim="cost_type"][data-value="input"]"#).await;
    let sums = b.text("#cost-sums").await;
    assert!(!sums.contains("Output"), "only input cost is left: {sums}");
    assert!(b.path().await.contains("provider=claude-team") && b.path().await.contains("cost_type=input"));
    b.shot("08-cost-and-usage-filtered").await;
    b.click(r#".fchip[data-dim="cost_type"] a"#).await;
    b.wait_gone(r#".fchip[data-dim="cost_type"]"#).await;
    assert!(b.text("#chips").await.contains("Claude Team"), "the other chip stays");
    assert!(!b.path().await.contains("cost_type"));
    // a shared custom-range URL opens the same window
    let shared = format!(
        "/usage?range=custom&customStart={}&customEnd={}&group_by=provider",
        fmt::iso(today - 2 * DAY_MS),
        fmt::iso(today + DAY_MS)
    );
    b.go(&shared).await;
    assert_eq!(b.path().await, shared, "the shared URL stays as it is");
    assert_eq!(b.prop("#range", "value").await.as_deref(), Some("custom"));
    let sub = b.text("#usage-subtitle").await;
    assert!(sub.ends_with("daily buckets") && sub.contains(" – "), "{sub}");
    assert_eq!(b.el("#chart-spend").await.attr("data-buckets").await.ok().flatten().as_deref(), Some("3"));
    // the link to this view: the same window, the default grouping left out
    assert_eq!(b.text("#share-url").await, shared.replace("&group_by=provider", ""));
    b.shot("08b-cost-and-usage-custom-range").await;
    // two days bucketed by hour, by token type: hours without traffic are zero-height bars
    let hourly = format!(
        "/usage?range=custom&customStart={}&customEnd={}&group_by=token_type",
        fmt::iso(today - 2 * DAY_MS),
        fmt::iso(today)
    );
    b.go(&hourly).await;
    assert!(b.text("#usage-subtitle").await.ends_with("hourly buckets"));
    assert_eq!(b.el("#chart-spend").await.attr("data-buckets").await.ok().flatten().as_deref(), Some("48"));
    let legend = b.text("#chart-spend-card .legend").await;
    assert!(legend.contains("Input") && legend.contains("Output"), "{legend}");
    b.shot("08c-cost-and-usage-token-type-hourly").await;
    // by user, filtered to one agent
    b.go("/usage?range=14d&group_by=user&agent=support-bot").await;
    b.wait_text("#breakdown-card h2", "By User").await;
    let rows = b.text("#breakdown").await;
    assert!(rows.contains("ana@example.com") && rows.contains("li@example.com"), "{rows}");
    assert!(b.exists(r#".fchip[data-dim="agent"][data-value="support-bot"]"#).await);
    b.shot("08d-cost-and-usage-by-user").await;
    // "(unattributed)" is a filter like any other user
    b.go("/usage?range=14d&group_by=user").await;
    b.click("#add-filter").await;
    assert_eq!(b.text(r#"#filter-add option[value="user:"]"#).await, "User: (unattributed)");
    b.select("#filter-add", "user:").await;
    b.el(r#".fchip[data-dim="user"][data-value=""]"#).await;
    assert!(b.path().await.contains("user=&") || b.path().await.ends_with("user="), "{}", b.path().await);
    let rows = b.text("#breakdown").await;
    assert!(rows.contains("(unattributed)") && !rows.contains("ana@example.com"), "{rows}");

    // ---- exploring the charts: crosshair, legend isolation, bar → its day, row → its filter,
    // compare to the previous period
    b.go("/usage?range=14d").await;
    let legend_names: Vec<String> = b
        .js("return Array.from(document.querySelectorAll('#chart-spend-card .legend-item')).map(b => b.textContent.trim())")
        .await
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    assert!(legend_names.len() >= 3, "{legend_names:?}");
    let tip = b
        .js("const g = document.querySelectorAll('#chart-spend g.bucket')[12]; const r = g.getBoundingClientRect();              g.querySelector('rect.hit').dispatchEvent(new MouseEvent('mousemove', {bubbles: true, clientX: r.x + r.width / 2, clientY: r.y + 20}));              const t = document.querySelector('#chart-spend-card .chart-tip');              return [t.hidden, t.textContent, document.querySelector('#chart-spend line.crosshair').getAttribute('visibility')];")
        .await;
    assert_eq!(tip[0], json!(false), "the tooltip shows: {tip}");
    assert_eq!(tip[2], json!("visible"), "with a crosshair: {tip}");
    for name in &legend_names {
        assert!(
            tip[1].as_str().unwrap_or_default().contains(name.as_str()),
            "every series in the tooltip: {name} in {tip}"
        );
    }
    b.shot("08e-cost-and-usage-crosshair").await;
    b.click(r#"#chart-spend-card .legend-item[data-series="1"]"#).await;
    assert_eq!(
        b.prop(r#"#chart-spend-card .legend-item[data-series="1"]"#, "ariaPressed").await.as_deref(),
        Some("true")
    );
    let dims = b.js("return [document.querySelectorAll('#chart-spend rect.seg.dim').length, document.querySelectorAll('#chart-spend rect.seg:not(.dim)').length, document.querySelectorAll('#chart-spend rect.seg:not(.dim):not([data-series=\"1\"])').length]").await;
    assert!(
        dims[0].as_i64().unwrap_or(0) > 0 && dims[1].as_i64().unwrap_or(0) > 0 && dims[2] == json!(0),
        "only series 1 stays: {dims}"
    );
    b.shot("08f-cost-and-usage-isolated").await;
    b.click(r#"#chart-spend-card .legend-item[data-series="1"]"#).await;
    assert_eq!(
        b.js("return document.querySelectorAll('#chart-spend rect.seg.dim').length").await,
        json!(0),
        "again: all"
    );
    // a bar narrows the range to its day
    b.click("#chart-spend a.bucket-link:last-of-type").await;
    b.wait_text("#usage-subtitle", "hourly buckets").await;
    assert!(b.path().await.contains("range=custom&customStart="), "{}", b.path().await);
    // a breakdown row drills into its provider, grouped by model
    b.go("/usage?range=14d").await;
    b.click(r#"#breakdown tr[data-key="claude-team"] a.drill"#).await;
    b.wait_text("#breakdown-card h2", "By Model").await;
    assert!(b.exists(r#".fchip[data-dim="provider"][data-value="claude-team"]"#).await);
    // compare to the previous period: the switch submits itself and the line is drawn
    b.click("#compare").await;
    b.el("#chart-spend polyline.prev").await;
    assert!(b.path().await.contains("compare=1"));
    assert!(b.text("#spend-change").await.contains("vs previous period"));
    b.shot("08g-cost-and-usage-compare").await;

    // ---- edit, disable, delete
    b.go("/providers/prod-openai").await;
    b.click("#edit-provider").await;
    assert_eq!(b.prop("#name", "readOnly").await.as_deref(), Some("true"));
    assert_eq!(b.prop("#type-openai", "disabled").await.as_deref(), Some("true"));
    b.shot("10-provider-edit").await;
    b.fill("#display_name", "Prod OpenAI (EU)").await;
    b.click("#submit-provider").await;
    b.wait_text("#notice", "saved").await;
    assert_eq!(b.text("#provider-title").await, "Prod OpenAI (EU)");
    b.click("#disable-provider").await;
    b.c.accept_alert().await.unwrap_or_else(|e| panic!("Disable asks first: {e}"));
    b.wait_text("#status-badge", "Disabled").await;
    let r = send(
        sdk_auth(gw.client.post(format!("{}/chat/completions", proxy("prod-openai"))), "openai", &gw.admin_token)
            .json(&json!({"model": "gpt-4o-mini", "messages": []})),
    )
    .await;
    assert_eq!(r.status, 403, "a disabled provider refuses the proxy");
    assert!(b.prop("#delete-provider", "disabled").await.as_deref() == Some("true"), "delete waits for the name");
    b.fill("#confirm-name", "prod-openai").await;
    assert_eq!(b.prop("#delete-provider", "disabled").await.as_deref(), Some("false"));
    assert!(b.exists("#enable-provider").await, "a disabled provider offers Enable");
    b.shot("10b-provider-disabled-delete").await;
    b.click("#delete-provider").await;
    b.wait_text("#notice", "deleted").await;
    assert!(!b.exists(r#"tr[data-provider="prod-openai"]"#).await);
    // its spend stays in Cost & Usage: folded into "Deleted providers", or listed on demand
    b.go("/usage").await;
    assert!(b.text(r#"#breakdown tr[data-key="(deleted providers)"]"#).await.contains("Deleted providers"));
    b.click("#show-deleted").await;
    let gone = b.text(r#"#breakdown tr[data-key="prod-openai"]"#).await;
    assert!(gone.contains("prod-openai") && gone.contains("deleted"), "{gone}");

    // ---- budgets: a default through the form (a chip, the warn-at slider), an override with a
    // custom amount, the usage bars
    b.click(r#"a[href="/budgets"]"#).await;
    assert_eq!(b.prop("#budget-warn", "value").await.as_deref(), Some("80"), "warn at starts at 80 %");
    b.fill("#budget-name", "agents-monthly").await;
    b.click(r#"input[name="cap"][value="25"]"#).await;
    b.c.execute(
        "const s = document.getElementById('budget-warn'); s.value = 60; s.dispatchEvent(new Event('input'));",
        vec![],
    )
    .await
    .unwrap_or_else(|e| panic!("slider: {e}"));
    assert_eq!(b.text("#budget-warn-value").await, "60 %", "the slider shows its value");
    b.click("#save-budget").await;
    b.wait_text("#notice", "Budget \"agents-monthly\" created.").await;
    let card = b.text(r#"section[data-budget="agents-monthly"]"#).await;
    assert!(card.contains("$25") && card.contains("warn at $15"), "{card}");
    b.fill("#budget-name", "app-override").await;
    b.fill("#budget-agent", "app").await;
    b.fill("#budget-cap-custom", "250").await;
    assert_eq!(
        b.prop(r#"input[name="cap"][value="custom"]"#, "checked").await.as_deref(),
        Some("true"),
        "typing picks Other"
    );
    b.click("#save-budget").await;
    b.wait_text("#notice", "Budget \"app-override\" created.").await;
    let row = b.text(r#"tr[data-budget="app-override"]"#).await;
    assert!(row.contains("app") && row.contains("$250") && row.contains("$200"), "{row}");
    // a rate limit whose provider is misspelt: kept, with the warning on its row
    let typo = json!({"name": "typo", "scope": {"provider": "prod-opneai"}, "requests_per_minute": 60});
    assert_eq!(admin(&gw, Method::POST, "/api/v1/rate-limits", Some(typo)).await.0, 201);
    b.go("/budgets").await;
    let typo = b.text(r#"tr[data-rate-limit="typo"]"#).await;
    assert!(typo.contains("provider \"prod-opneai\" does not exist"), "{typo}");
    b.shot("13-budgets").await;

    // ---- secrets page with its users, and a reader's read-only console
    b.go("/secrets").await;
    assert!(b.text(r#"tr[data-secret="ANTHROPIC_API_KEY"]"#).await.contains("claude-team"));
    b.shot("11-secrets").await;
    // delete a secret no provider uses (the page asks first)
    b.fill("#secret-name", "SPARE_KEY").await;
    b.fill("#secret-value", "spare-value").await;
    b.click("#save-secret").await;
    b.wait_text("#notice", "Secret SPARE_KEY stored.").await;
    // rotate it first: the row's form takes a new value under the same name
    b.click(r#"#rotate-SPARE_KEY summary"#).await;
    b.fill("#rotate-value-SPARE_KEY", "spare-value-2").await;
    b.shot("11b-secrets-rotate").await;
    b.click("#rotate-save-SPARE_KEY").await;
    b.wait_text("#notice", "Secret SPARE_KEY rotated").await;
    b.click(r#"tr[data-secret="SPARE_KEY"] form[action$="/delete"] button[type=submit]"#).await;
    b.c.accept_alert().await.unwrap_or_else(|e| panic!("confirm: {e}"));
    b.wait_text("#notice", "Secret SPARE_KEY deleted.").await;
    assert!(!b.exists(r#"tr[data-secret="SPARE_KEY"]"#).await);
    // revoke the application token: the proxy refuses it at once
    b.go("/tokens").await;
    b.click(r#"tr[data-token="app"] button[type=submit]"#).await;
    b.c.accept_alert().await.unwrap_or_else(|e| panic!("confirm: {e}"));
    b.wait_text("#notice", "Token revoked").await;
    assert!(b.text(r#"tr[data-token="app"]"#).await.contains("revoked"));
    b.shot("09b-tokens-revoked").await;
    let mut body = hi.clone();
    body["model"] = json!("claude-haiku-4-5");
    body["max_tokens"] = json!(8);
    let r = send(
        sdk_auth(gw.client.post(format!("{}/v1/messages", proxy("claude-team"))), "anthropic", &app_token).json(&body),
    )
    .await;
    assert_eq!(r.status, 401, "a revoked token is refused: {}", r.text());
    // ---- every page at desktop and phone width: no horizontal overflow on the phone, no
    // serious or critical accessibility violation (axe-core) at either; phone screenshots
    let pages = [
        ("/", "01-home"),
        ("/providers", "02-providers"),
        ("/providers/claude-team", "03-provider-overview"),
        ("/providers/claude-team?tab=models", "03b-provider-models"),
        ("/providers/claude-team?tab=connect", "03c-provider-connect"),
        ("/providers/claude-team?tab=settings", "03d-provider-settings"),
        ("/providers/claude-team/edit", "04-provider-edit"),
        ("/providers/new", "05-provider-new"),
        ("/usage", "06-cost-and-usage"),
        ("/usage?range=30d&group_by=model&compare=1", "06b-cost-and-usage-compare"),
        ("/requests", "07-requests"),
        ("/transcripts", "07b-transcripts"),
        ("/budgets", "08-budgets"),
        ("/secrets", "09-secrets"),
        ("/tokens", "10-tokens"),
        ("/providers/nope", "11-not-found"),
    ];
    let axe = axe_script();
    // every problem of every page, reported together
    let mut problems: Vec<String> = Vec::new();
    for (w, h) in [(1440u32, 900u32), (390, 844)] {
        b.c.set_window_size(w, h).await.unwrap_or_else(|e| panic!("{e}"));
        for (page, name) in pages {
            b.go(page).await;
            b.el("#main").await;
            let inner = b.js("return window.innerWidth").await.as_i64().unwrap_or(0);
            if w == 390 {
                assert!(inner <= 390, "the window is phone-sized: {inner}");
                let wide = b
                    .js("return [document.scrollingElement.scrollWidth, window.innerWidth,                          Array.from(document.querySelectorAll('body *')).filter(e => e.getBoundingClientRect().right > window.innerWidth + 1 && getComputedStyle(e).position !== 'fixed').slice(0, 5).map(e => e.tagName + '#' + e.id + '.' + e.className)]")
                    .await;
                if wide[0].as_i64() > wide[1].as_i64() {
                    problems.push(format!("{page} overflows at 390 px: {wide}"));
                }
                // A chart wider than the phone opens at its newest (right) end; tab strips
                // scroll sideways only (no 1 px vertical scrollbar beside them).
                let charts = b
                    .js("return Array.from(document.querySelectorAll('.chart')).filter(c => c.scrollWidth > c.clientWidth + 1)                          .map(c => [c.querySelector('svg').getBoundingClientRect().right, c.getBoundingClientRect().right])")
                    .await;
                for c in charts.as_array().into_iter().flatten() {
                    if c[0].as_f64().unwrap_or(0.0) > c[1].as_f64().unwrap_or(0.0) + 1.0 {
                        problems.push(format!("{page}: a chart opens scrolled away from its newest bars: {c}"));
                    }
                }
                // (a vertical scrollbar takes its width from the box's client width)
                let tabs = b
                    .js("return Array.from(document.querySelectorAll('.tabs')).filter(t => { const s = getComputedStyle(t);                          return t.offsetWidth - t.clientWidth - parseFloat(s.borderLeftWidth) - parseFloat(s.borderRightWidth) > 0; }).length")
                    .await;
                if tabs.as_i64() != Some(0) {
                    problems.push(format!("{page}: a tab strip shows a vertical scrollbar at 390 px"));
                }
            }
            if let Some(axe) = &axe {
                let bad = axe_violations(&b, axe).await;
                if !bad.is_empty() {
                    problems.push(format!("{page} at {w}×{h}: serious/critical accessibility violations: {bad:#?}"));
                }
            }
            if w == 390 {
                b.shot_at(&format!("phone-{name}"), 390).await;
            } else if page == "/"
                || page.contains("tab=models")
                || page.contains("tab=settings")
                || page == "/providers/nope"
            {
                b.shot(name).await;
                b.c.set_window_size(w, h).await.unwrap_or_else(|e| panic!("{e}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // the phone menu opens and closes without script help (a checkbox)
    b.c.set_window_size(390, 844).await.unwrap_or_else(|e| panic!("{e}"));
    b.go("/usage").await;
    assert!(!b.el("#nav-home").await.is_displayed().await.unwrap_or(true), "the menu starts closed");
    b.click("#nav-toggle-label").await;
    assert!(b.el("#nav-home").await.is_displayed().await.unwrap_or(false), "the menu opens");
    b.shot_at("phone-menu-open", 390).await;
    b.c.set_window_size(1400, 1000).await.unwrap_or_else(|e| panic!("{e}"));

    let reader = token_of(&gw, "reader").await;
    b.click("#sign-out").await;
    b.el("#token").await;
    b.fill("#token", &reader).await;
    b.click("#sign-in").await;
    // signed out from a page, signed in again: Home (no page asked for)
    b.el("#home-tiles").await;
    assert_eq!(b.path().await, "/");
    b.go("/providers").await;
    b.el("#providers-table").await;
    assert!(!b.exists("#create-provider").await && !b.exists(r#"a[href="/tokens"]"#).await);
    b.go("/providers/claude-team").await;
    assert!(
        !b.exists("#edit-provider").await && !b.exists("#test-connection").await && !b.exists("#delete-card").await
    );
    b.shot("12-reader-view").await;
    let _ = b.c.close().await;
}

/// "Sign in with <issuer>" in Chromium against the testkit's identity provider: the button on
/// the sign-in page, the authorize endpoint's automatic approval, the callback's code exchange
/// (PKCE) and its same-site hop to the page asked for, signed in as the IdP's user with the role
/// its group maps to; sign-out returns to the sign-in page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_signs_in_with_the_identity_provider_in_chromium() {
    let Some(driver) = driver() else { return };
    let idp = tollgate_testkit::idp::TestIdp::start().await.unwrap_or_else(|e| panic!("{e:#}"));
    idp.set_user(json!({"sub": "dana", "email": "dana@example.com", "groups": ["platform-admins"]}));
    let gw = crate::oidc::oidc_gateway(&idp).await;
    let b = Browser::start(&gw.base_url, driver).await;
    b.go("/usage").await;
    assert!(b.path().await.starts_with("/login?next=%2Fusage"));
    let host = idp.issuer.trim_start_matches("http://").split(':').next().unwrap_or_default().to_string();
    b.wait_text("#sign-in-sso", &format!("Sign in with {host}")).await;
    b.shot("01b-sign-in-sso").await;
    b.click("#sign-in-sso").await;
    b.wait_text("#who", "dana@example.com").await;
    assert!(b.path().await.starts_with("/usage"), "landed on {}", b.path().await);
    assert_eq!(idp.token_requests(), 1, "one code exchange");
    // platform-admins maps to admin: the Tokens page is open.
    b.go("/tokens").await;
    assert!(b.path().await.starts_with("/tokens"));
    b.wait_text("h1", "Gateway tokens").await;
}
