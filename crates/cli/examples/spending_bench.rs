//! Spending-report benchmark: seeds N usage events over D days through the usage store's real
//! write path (`UsageStore::insert_events`: events + hourly rollups in one transaction per
//! batch of 1,000), starts a real gateway on that database, and times
//! `GET /api/v1/spending/timeseries` over the whole window (several `bucket` / `group_by`
//! variants, p50 and max of R runs each) on SQLite and PostgreSQL.
//!
//! ```sh
//! cargo run --release -p tollgate-cli --example spending_bench -- [--events 1000000] [--days 30] \
//!     [--runs 20] [--backend sqlite|postgres|both]
//! ```
//! PostgreSQL uses `TOLLGATE_TEST_DATABASE_URL` (a fresh `t_<uuid>` database, dropped after).
//! `--keep DIR` (SQLite only) puts the usage and transcript databases and the master key in DIR
//! and reuses them when DIR already holds a run with the same `--events` and `--days` and a seed
//! of the current shape (seeding 10^7 events takes minutes; the config database is fresh every
//! run).
//! Then the request log and conversations (`GET /api/v1/requests`, `/api/v1/conversations`,
//! first pages, filters, a deep page) over the same events, with a sealed transcript for one
//! event in ten. After the API, the same data is read through the console: every page that shows usage (and
//! the secrets and tokens pages) is timed signed in as an admin (see `console_pages`).
//!
//! Traffic shape (deterministic): 60 gateway tokens (40 users × agents), each calling one home
//! model 80% of the time and one other 20%, over 6 providers of 4 types (one provider deleted,
//! as its history stays in reports) and 12 models; token counts vary per request; cost is
//! priced with the embedded catalog. This gives about 100 rollup rows per hour. One request in
//! 5,000 is from a rare user (a sparse term beside dense ones in the request log).
#![allow(clippy::print_stdout, clippy::print_stderr, clippy::unwrap_used, clippy::expect_used)]

/// The gateway's allocator (`crates/cli/src/main.rs`), so the timed server allocates as the
/// `tollgate` binary does (SQLite's own allocations stay on the C allocator either way).
#[global_allocator]
static ALLOCATOR: tollgate_cli::alloc::Allocator = tollgate_cli::alloc::Allocator;

use std::time::{Duration, Instant};
use tollgate_core::pricing::{PriceInput, price};
use tollgate_core::{Catalog, ProviderType, RequestStatus, Usage};
use tollgate_server::{Gateway, Sensitive, Settings};
use tollgate_store::{UsageEvent, UsageStore};
use tollgate_testkit::db::TestDb;

const PROVIDERS: [(&str, ProviderType, &[&str]); 6] = [
    ("prod-openai", ProviderType::Openai, &["gpt-5.4", "gpt-5-mini", "gpt-4.1"]),
    ("prod-anthropic", ProviderType::Anthropic, &["claude-sonnet-4-6", "claude-haiku-4-5", "claude-opus-4-6"]),
    ("prod-gemini", ProviderType::Google, &["gemini-2.5-pro", "gemini-2.5-flash"]),
    (
        "bedrock-us",
        ProviderType::Bedrock,
        &["us.anthropic.claude-sonnet-4-6", "global.anthropic.claude-haiku-4-5-20251001-v1:0"],
    ),
    ("ollama", ProviderType::OpenaiCompatible, &["llama-3.3-70b"]),
    ("old-openai", ProviderType::Openai, &["gpt-4o"]),
];

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Args {
    events: u64,
    days: i64,
    runs: usize,
    backend: String,
    keep: Option<std::path::PathBuf>,
}

fn args() -> Args {
    let mut a = Args { events: 1_000_000, days: 30, runs: 20, backend: "both".into(), keep: None };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let v = pair.get(1).cloned().unwrap_or_default();
        match pair[0].as_str() {
            "--events" => a.events = v.parse().expect("--events N"),
            "--days" => a.days = v.parse().expect("--days N"),
            "--runs" => a.runs = v.parse().expect("--runs N"),
            "--backend" => a.backend = v,
            "--keep" => a.keep = Some(v.into()),
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

/// The rare user: one request in `RARE_EVERY`.
const RARE_USER: &str = "rare@example.com";
const RARE_EVERY: u64 = 5_000;

/// What a kept seed was made by: a seed of an earlier shape is made again.
const SEED_SHAPE: i64 = 2;

/// The model each of 60 tokens calls: (provider index, model index) for home and other.
fn token_plan(rng: &mut Rng) -> Vec<[(usize, usize); 2]> {
    (0..60)
        .map(|_| {
            let mut pick = || {
                let p = rng.below(PROVIDERS.len() as u64) as usize;
                (p, rng.below(PROVIDERS[p].2.len() as u64) as usize)
            };
            [pick(), pick()]
        })
        .collect()
}

/// Event `i`'s id: a UUIDv7 of its arrival time (as the proxy makes them; the usage store finds
/// an event by the time its id carries), its random bits from `i`.
fn event_id(i: u64, ts_ms: i64) -> String {
    let mut random = [0u8; 10];
    random[2..].copy_from_slice(&i.to_be_bytes());
    uuid::Builder::from_unix_timestamp_millis(ts_ms as u64, &random).into_uuid().to_string()
}

/// Event `i`'s arrival time: events spread evenly over the window, in time order.
fn event_ts(a: &Args, end_ms: i64, i: u64) -> i64 {
    let span = a.days * 86_400_000;
    end_ms - span + (i as i64 * span) / a.events as i64
}

async fn seed(store: &UsageStore, a: &Args, end_ms: i64) -> Duration {
    let catalog = Catalog::embedded().expect("catalog");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let plan = token_plan(&mut rng);
    let span = a.days * 86_400_000;
    let start = end_ms - span;
    let t = Instant::now();
    let mut batch = Vec::with_capacity(1000);
    for i in 0..a.events {
        // events spread evenly over the window, in time order (as a live writer sees them)
        let ts = start + (i as i64 * span) / a.events as i64;
        let tok = rng.below(60) as usize;
        let (p, m) = plan[tok][usize::from(rng.below(10) >= 8)];
        let (provider, ptype, models) = PROVIDERS[p];
        let model = models[m];
        let input = 200 + rng.below(20_000) as i64;
        let cached = if rng.below(3) == 0 { rng.below(30_000) as i64 } else { 0 };
        let usage = Usage {
            input,
            output: 20 + rng.below(2_000) as i64,
            reasoning: if rng.below(4) == 0 { rng.below(3_000) as i64 } else { 0 },
            cached_input: cached,
            cache_write_5m: if ptype == ProviderType::Anthropic && rng.below(5) == 0 { 2048 } else { 0 },
            ..Usage::default()
        };
        let priced =
            price(&PriceInput { provider_type: ptype, model: Some(model), usage: &usage, overrides: None }, &catalog);
        let failed = rng.below(50) == 0;
        batch.push(UsageEvent {
            id: event_id(i, ts),
            ts_ms: ts,
            provider: provider.into(),
            provider_type: ptype,
            model: Some(model.into()),
            endpoint: "/v1/messages".into(),
            // One request in 5,000 from a rare user (the request log's sparse-term case).
            user: Some(if i % RARE_EVERY == RARE_EVERY / 2 {
                RARE_USER.into()
            } else {
                format!("user{}@example.com", tok % 40).into()
            }),
            agent: (!tok.is_multiple_of(4)).then(|| format!("agent-{}", tok % 15).into()),
            token_id: Some(format!("tok{tok}").into()),
            status: if failed { RequestStatus::UpstreamError } else { RequestStatus::Success },
            http_status: Some(if failed { 529 } else { 200 }),
            error_class: failed.then(|| "upstream_5xx".into()),
            streamed: rng.below(2) == 0,
            latency_ms: 300 + rng.below(5_000) as i64,
            ttft_ms: Some(100 + rng.below(900) as i64),
            usage: if failed { Usage::default() } else { usage },
            cost: if failed { Default::default() } else { priced.cost },
            catalog_version: Some(catalog.shared_version()),
            priced_by_override: false,
            unpriced: priced.unpriced,
            request_id: event_id(i, ts),
            // Four in five requests belong to a conversation of about ten turns of one token;
            // the rest are conversations of their own.
            conversation_id: (rng.below(5) != 0).then(|| format!("conv-{tok}-{}", i / 600)),
            // Every tenth event recorded, in batches of 100 (`seed_transcripts`).
            transcript: i.is_multiple_of(10).then(|| tollgate_store::TranscriptRef {
                batch: format!("b{}", i / 1000).into(),
                flags: tollgate_store::TranscriptFlags { input: true, output: true, truncated: false },
            }),
        });
        if batch.len() == 1000 {
            store.insert_events(&batch).await.expect("insert");
            batch.clear();
        }
        if i > 0 && i % 200_000 == 0 {
            eprintln!("  seeded {i} events ({:.0}/s)", i as f64 / t.elapsed().as_secs_f64());
        }
    }
    store.insert_events(&batch).await.expect("insert");
    t.elapsed()
}

/// Seeds a transcript for every tenth event (the ids `seed` gave them), with small JSON bodies,
/// sealed in batches of 100 as the usage writer does (the batch ids `seed` named).
async fn seed_transcripts(
    store: &tollgate_store::TranscriptStore,
    keys: &tollgate_store::Keyring,
    a: &Args,
    end_ms: i64,
) {
    use tollgate_store::transcripts::{Entry, seal_batch};
    let mut entries = Vec::with_capacity(100);
    let mut sealed = Vec::with_capacity(50);
    for i in (0..a.events).step_by(10) {
        entries.push(Entry {
            event_id: event_id(i, event_ts(a, end_ms, i)),
            ts_ms: event_ts(a, end_ms, i),
            request_headers: String::new(),
            response_content_type: Some("application/json".into()),
            input: Some(
                format!(r#"{{"model":"m","messages":[{{"role":"user","content":"question {i}"}}]}}"#).into_bytes(),
            ),
            output: Some(format!(r#"{{"content":[{{"type":"text","text":"answer {i}"}}]}}"#).into_bytes()),
            ..Entry::default()
        });
        if (i + 10) % 1000 == 0 || i + 10 >= a.events {
            let batch = format!("b{}", i / 1000);
            let group = std::mem::take(&mut entries);
            sealed.push(seal_batch(keys, batch, "prod-anthropic".into(), group).expect("seal"));
        }
        if sealed.len() == 50 {
            store.insert_batches(&sealed).await.expect("insert transcripts");
            sealed.clear();
        }
    }
    store.insert_batches(&sealed).await.expect("insert transcripts");
}

/// Times the request log and conversation lists (first page, filtered, deep page).
async fn request_log(base: &str, token: &str, client: &reqwest::Client, a: &Args, end_ms: i64) {
    let get = |path: String| async move {
        let t = Instant::now();
        let resp = client.get(format!("{base}{path}")).bearer_auth(token).send().await.expect("request");
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        let body: serde_json::Value = resp.json().await.expect("json");
        (t.elapsed().as_secs_f64() * 1000.0, body)
    };
    // A page token from deep in the log: the key after which the last tenth of the events lies.
    let (_, first) = get("/api/v1/requests?page_size=1000".into()).await;
    let deep = first["next_page_token"].as_str().unwrap_or_default().to_string();
    // Deep pages: the token after 10 pages of 1,000 (unfiltered and with a provider filter).
    let deep_after = |filter: &'static str| {
        let get = &get;
        async move {
            let mut token = String::new();
            for _ in 0..10 {
                let sep = if token.is_empty() { String::new() } else { format!("&page_token={token}") };
                let (_, page) = get(format!("/api/v1/requests?page_size=1000{filter}{sep}")).await;
                token = page["next_page_token"].as_str().unwrap_or_default().to_string();
            }
            token
        }
    };
    let deep10 = deep_after("").await;
    let deep10_gemini = deep_after("&provider=prod-gemini").await;
    let (_, convs) = get("/api/v1/conversations?page_size=1000".into()).await;
    let conv_deep = convs["next_page_token"].as_str().unwrap_or_default().to_string();
    let variants = [
        ("requests, first page of 50", "/api/v1/requests".to_string()),
        ("requests, provider filter", "/api/v1/requests?provider=prod-gemini".to_string()),
        ("requests, status=failed", "/api/v1/requests?status=failed".to_string()),
        ("requests, user filter", "/api/v1/requests?user=user7@example.com".to_string()),
        ("requests, one conversation", "/api/v1/requests?conversation=conv-3-5".to_string()),
        ("requests, second page (page_token)", format!("/api/v1/requests?page_token={deep}")),
        ("requests, page 11 (after 10,000 rows)", format!("/api/v1/requests?page_token={deep10}")),
        (
            "requests, provider filter, page 11",
            format!("/api/v1/requests?provider=prod-gemini&page_token={deep10_gemini}"),
        ),
        (
            "requests, provider + status=failed + user",
            "/api/v1/requests?provider=prod-anthropic&status=failed&user=user3@example.com".to_string(),
        ),
        (
            "requests, rare user (1 in 5,000) + provider",
            format!("/api/v1/requests?user={RARE_USER}&provider=prod-openai"),
        ),
        ("requests, 1000 a page", "/api/v1/requests?page_size=1000".to_string()),
        ("conversations, first page", "/api/v1/conversations".to_string()),
        ("conversations, status=failed", "/api/v1/conversations?status=failed".to_string()),
        ("conversations, provider filter", "/api/v1/conversations?provider=prod-gemini".to_string()),
        ("conversations, page after 1,000", format!("/api/v1/conversations?page_token={conv_deep}")),
        ("one request with its transcript", format!("/api/v1/requests/{}", event_id(1000, event_ts(a, end_ms, 1000)))),
        ("one conversation (turns)", "/api/v1/conversations/conv-3-5".to_string()),
    ];
    println!("\n| request log ({} events, {} transcripts) | p50 ms | max ms | rows |", a.events, a.events / 10);
    println!("|---|---:|---:|---:|");
    for (name, path) in variants {
        let mut times = Vec::with_capacity(a.runs);
        let mut rows = 0;
        for run in 0..=a.runs {
            let (ms, body) = get(path.clone()).await;
            if run == 0 {
                rows = body["requests"]
                    .as_array()
                    .or_else(|| body["conversations"].as_array())
                    .or_else(|| body["turns"].as_array())
                    .map_or(1, Vec::len);
                continue;
            }
            times.push(ms);
        }
        times.sort_by(f64::total_cmp);
        println!("| {name} | {:.1} | {:.1} | {rows} |", pct(&times, 0.5), times[times.len() - 1]);
    }
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn bench(label: &str, db: Option<TestDb>, a: &Args) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = Settings::new(dir.path().join("data"));
    settings.listen = "127.0.0.1:0".parse().expect("addr");
    settings.database_url = db.as_ref().map(|d| Sensitive(d.url().to_string()));
    settings.usage_retention_days = 0;
    // nothing of the seeded history expires while the bench (or a later `--keep` run) reads it
    settings.transcript_retention_days = 0;
    settings.transcript_max_total_bytes = 0;
    // Align the window end to an hour so every run reads the same rollups.
    let now = tollgate_server::time::system_now_ms();
    let mut end_ms = now - now % 3_600_000;
    std::fs::create_dir_all(&settings.data_dir).expect("data dir");
    // `--keep DIR`: the usage and transcript databases and the master key live in DIR, and a
    // previous run's seed (same events and days) is reused, with the window end it was seeded for.
    let kept = a.keep.as_ref().filter(|_| db.is_none());
    let marker = kept.map(|d| d.join("seeded"));
    let reuse = marker.as_ref().and_then(|m| std::fs::read_to_string(m).ok()).and_then(|t| {
        let v: Vec<i64> = t.split_whitespace().filter_map(|x| x.parse().ok()).collect();
        (v.len() == 4 && v[0] == a.events as i64 && v[1] == a.days && v[3] == SEED_SHAPE).then_some(v[2])
    });
    if let Some(d) = kept {
        std::fs::create_dir_all(d).expect("keep dir");
        settings.usage_database_url =
            Some(Sensitive(format!("sqlite://{}?mode=rwc", d.join("usage.sqlite").display())));
        settings.transcript_database_url =
            Some(Sensitive(format!("sqlite://{}?mode=rwc", d.join("transcripts.sqlite").display())));
    }
    let usage_url = settings.effective_usage_database_url().unwrap_or_else(|| settings.effective_database_url());
    let transcript_url =
        settings.effective_transcript_database_url().unwrap_or_else(|| settings.effective_database_url());
    let key_file = kept.map(|d| d.join("master.key"));
    let key = match (reuse, &key_file) {
        (Some(_), Some(f)) => {
            tollgate_store::MasterKey::from_base64(std::fs::read_to_string(f).expect("master.key").trim()).expect("key")
        }
        _ => tollgate_store::MasterKey::generate().expect("key"),
    };
    settings.master_key = Some(Sensitive(key.to_base64()));
    if let (Some(d), None) = (kept, reuse) {
        // a fresh seed: nothing of an earlier (different or unfinished) one stays
        for f in ["usage.sqlite", "transcripts.sqlite", "seeded"] {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(d.join(format!("{f}{suffix}")));
            }
        }
    }
    let store = UsageStore::connect(&usage_url).await.expect("usage store");
    let seeded = if let Some(seeded_end) = reuse {
        end_ms = seeded_end;
        eprintln!("{label}: reusing {} events seeded in {}", a.events, kept.expect("kept").display());
        "seed reused from an earlier run".to_string()
    } else {
        eprintln!("{label}: seeding {} events over {} days…", a.events, a.days);
        let took = seed(&store, a, end_ms).await;
        if let Some(db) = &db {
            // A database that grew to this size over weeks has been vacuumed and analyzed by
            // autovacuum many times (its insert threshold is a fifth of the table); one seeded
            // in minutes has not, and PostgreSQL would read every term row's heap page (no
            // visibility map for index-only reads) on stale statistics. Measured without this:
            // the three-term request-log page at 10^6 events took 175 ms instead of 52.
            let pool = sqlx::PgPool::connect(db.url()).await.expect("postgres");
            sqlx::query("VACUUM ANALYZE").execute(&pool).await.expect("vacuum");
            pool.close().await;
        }
        // One transcript per ten events (10^5 for 10^6), sealed under the gateway's master key.
        let transcripts = tollgate_store::TranscriptStore::connect(&transcript_url).await.expect("transcript store");
        seed_transcripts(&transcripts, &tollgate_store::Keyring::new(key), a, end_ms).await;
        transcripts.close().await;
        if let (Some(f), Some(m)) = (&key_file, &marker) {
            let key = settings.master_key.as_ref().expect("key").0.clone();
            std::fs::write(f, key).expect("master.key");
            std::fs::write(m, format!("{} {} {end_ms} {SEED_SHAPE}\n", a.events, a.days)).expect("marker");
        }
        format!(
            "seeded in {:.1} s ({:.0} events/s through insert_events, rollups included)",
            took.as_secs_f64(),
            a.events as f64 / took.as_secs_f64()
        )
    };
    let rollup_rows = store.rollup_rows(i64::MIN, i64::MAX).await.expect("rollups").len();
    store.close().await;
    eprintln!("{label}: {seeded}, {rollup_rows} hourly rollup rows");

    let gw = Gateway::start(settings).await.expect("gateway");
    let base = format!("http://{}", gw.local_addr());
    let token = gw.bootstrap_token().expect("fresh data dir").to_string();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(gw.serve(async move {
        let _ = stop_rx.await;
    }));
    let client = reqwest::Client::new();
    let start = tollgate_server::time::rfc3339(end_ms - a.days * 86_400_000);
    let end = tollgate_server::time::rfc3339(end_ms);
    let variants = [
        ("bucket=hour", "bucket=hour"),
        ("bucket=day", "bucket=day"),
        ("bucket=hour&group_by=provider", "bucket=hour&group_by=provider"),
        ("bucket=day&group_by=model", "bucket=day&group_by=model"),
        ("bucket=day&group_by=user", "bucket=day&group_by=user"),
        ("bucket=hour&group_by=user (top 10 + other)", "bucket=hour&group_by=user"),
        ("bucket=hour&group_by=user&limit=1000", "bucket=hour&group_by=user&limit=1000"),
        ("bucket=hour&group_by=token_type", "bucket=hour&group_by=token_type"),
        ("bucket=day + provider filter", "bucket=day&provider=prod-anthropic"),
    ];
    println!("\n{label}: {} events over {} days, {rollup_rows} hourly rollup rows; {seeded}", a.events, a.days);
    println!("| timeseries query (30 days) | p50 ms | max ms | series × points, size |");
    println!("|---|---:|---:|---:|");
    for (name, q) in variants {
        let url = format!("{base}/api/v1/spending/timeseries?start={start}&end={end}&{q}");
        let mut times = Vec::with_capacity(a.runs);
        let mut shape = String::new();
        for run in 0..=a.runs {
            let t = Instant::now();
            let resp = client.get(&url).bearer_auth(&token).send().await.expect("request");
            assert_eq!(resp.status().as_u16(), 200, "{name}");
            // Timed until the whole answer has arrived (parsing it is the client's business).
            let bytes = resp.bytes().await.expect("body");
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            if run == 0 {
                let body: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
                // warm-up run (connection, first page cache), not counted
                let series = body["series"].as_array().map_or(0, Vec::len);
                let points = body["series"][0]["points"].as_array().map_or(0, Vec::len);
                shape = format!("{series} × {points}, {} KiB", bytes.len() / 1024);
                continue;
            }
            times.push(ms);
        }
        times.sort_by(f64::total_cmp);
        println!("| `{name}` | {:.1} | {:.1} | {shape} |", pct(&times, 0.5), times[times.len() - 1]);
    }
    request_log(&base, &token, &client, a, end_ms).await;
    console_pages(label, &base, &token, &client, a, end_ms).await;
    let _ = stop_tx.send(());
    let _ = server.await;
    drop(db);
}

// ---- Console pages -------------------------------------------------------------------------

/// The `_csrf` hidden input of a console page.
fn csrf_of(html: &str) -> String {
    let marker = r#"name="_csrf" value=""#;
    let at = html.find(marker).expect("a _csrf field in the page") + marker.len();
    html[at..].split('"').next().unwrap_or_default().to_string()
}

/// The `app;dur=<ms>` of a console response's `Server-Timing` header.
fn server_ms(resp: &reqwest::Response) -> f64 {
    resp.headers()
        .get("server-timing")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split("dur=").nth(1))
        .and_then(|v| v.parse().ok())
        .expect("Server-Timing: app;dur=<ms>")
}

/// Times every console page that reads usage (and the secrets and tokens pages) through a real
/// console session: the five live providers of the seeded traffic are created through the admin
/// API first (so the providers list and the detail page have spend to show), then a reader
/// token signs in through `/login` like a browser (nonce cookie + CSRF field → session cookie).
/// Reports the server time (`Server-Timing: app;dur`, handler and template render: the whole
/// answer is built before the first byte is sent) and the time until the whole answer arrived.
async fn console_pages(label: &str, base: &str, admin: &str, api: &reqwest::Client, a: &Args, end_ms: i64) {
    let admin_call = |method: reqwest::Method, path: String, body: serde_json::Value| async move {
        let resp = api.request(method, format!("{base}{path}")).bearer_auth(admin).json(&body).send().await;
        let resp = resp.expect("admin request");
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        assert!(status.is_success(), "{path}: {status} {text}");
        serde_json::from_str::<serde_json::Value>(&text).unwrap_or_default()
    };
    for (name, value) in [
        ("OPENAI_API_KEY", "sk-bench"),
        ("ANTHROPIC_API_KEY", "sk-ant-bench"),
        ("GOOGLE_AI_API_KEY", "AIza-bench"),
        ("AWS_ACCESS_KEY_ID", "AKIABENCH"),
        ("AWS_SECRET_ACCESS_KEY", "aws-bench"),
    ] {
        admin_call(reqwest::Method::PUT, format!("/api/v1/secrets/{name}"), serde_json::json!({"value": value})).await;
    }
    // `old-openai` stays deleted: its history shows in Cost & Usage only.
    for (name, ptype, models) in &PROVIDERS[..5] {
        let cfg = match ptype {
            ProviderType::Openai => serde_json::json!({"openai_config": {"api_key_ref": "OPENAI_API_KEY"}}),
            ProviderType::Anthropic => serde_json::json!({"anthropic_config": {"api_key_ref": "ANTHROPIC_API_KEY"}}),
            ProviderType::Google => serde_json::json!({"google_config": {"api_key_ref": "GOOGLE_AI_API_KEY"}}),
            ProviderType::Bedrock => serde_json::json!({"bedrock_config": {"region": "us-east-1",
                "static_credentials": {"access_key_id_ref": "AWS_ACCESS_KEY_ID",
                    "secret_access_key_ref": "AWS_SECRET_ACCESS_KEY"}}}),
            ProviderType::OpenaiCompatible => {
                serde_json::json!({"openai_compatible_config": {"base_url": "http://127.0.0.1:11434/v1"}})
            }
            ProviderType::AzureOpenai => serde_json::json!({"azure_openai_config":
                {"endpoint": "https://bench.openai.azure.com", "api_key_ref": "OPENAI_API_KEY"}}),
        };
        let mut body =
            serde_json::json!({"name": name, "display_name": name, "type": ptype.as_str(), "models": models});
        for (k, v) in cfg.as_object().expect("object") {
            body[k] = v.clone();
        }
        admin_call(reqwest::Method::POST, "/api/v1/llm-providers".into(), body).await;
    }
    let operator = admin_call(
        reqwest::Method::POST,
        "/api/v1/tokens".into(),
        serde_json::json!({"name": "bench-console", "role": "admin", "user": "bench@example.com"}),
    )
    .await["token"]
        .as_str()
        .expect("token")
        .to_string();
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let login = browser.get(format!("{base}/login")).send().await.expect("login page");
    let csrf = csrf_of(&login.text().await.expect("body"));
    let signed_in = browser
        .post(format!("{base}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs([("token", operator.as_str()), ("next", "/providers"), ("_csrf", csrf.as_str())])
                .finish(),
        )
        .send()
        .await
        .expect("sign in");
    assert_eq!(signed_in.status().as_u16(), 303, "sign-in");

    let two_days = format!(
        "/usage?range=custom&customStart={}&customEnd={}",
        tollgate_server::console::format::iso(end_ms - 2 * 86_400_000),
        tollgate_server::console::format::iso(end_ms)
    );
    let pages: Vec<(&str, String)> = vec![
        ("Home (spend today / 7 d / 30 d with changes, tops, budgets, failures)", "/".into()),
        ("Providers list (7-day spend + sparklines)", "/providers".into()),
        ("Provider detail, Overview (KPIs, per-model spend)", "/providers/prod-anthropic".into()),
        ("Provider detail, Connect tab", "/providers/prod-anthropic?tab=connect".into()),
        ("Provider detail, Models tab (catalog, 7-day usage)", "/providers/prod-anthropic?tab=models".into()),
        ("Provider detail, Settings tab", "/providers/prod-anthropic?tab=settings".into()),
        ("Cost & Usage, default (last 7 days by provider)", "/usage".into()),
        ("Cost & Usage, last 30 days", "/usage?range=30d".into()),
        ("Cost & Usage, last 30 days compared to the 30 before", "/usage?range=30d&compare=1".into()),
        ("Cost & Usage, last 90 days", "/usage?range=90d".into()),
        ("Cost & Usage, 30 days by model", "/usage?range=30d&group_by=model".into()),
        ("Cost & Usage, 30 days by user", "/usage?range=30d&group_by=user".into()),
        ("Cost & Usage, 30 days by agent", "/usage?range=30d&group_by=agent".into()),
        ("Cost & Usage, 30 days by token type", "/usage?range=30d&group_by=token_type".into()),
        (
            "Cost & Usage, 30 days, filters (2 providers × 2 models, output cost)",
            "/usage?range=30d&group_by=model&provider=prod-anthropic&provider=bedrock-us\
             &model=claude-sonnet-4-6&model=us.anthropic.claude-sonnet-4-6&cost_type=output"
                .into(),
        ),
        ("Cost & Usage, 30 days, user + agent filter", "/usage?range=30d&user=user3@example.com&agent=agent-3".into()),
        ("Cost & Usage, custom 2 days by user (hourly)", format!("{two_days}&group_by=user")),
        ("Cost & Usage, custom 2 days (hourly buckets)", two_days),
        ("CSV download, 30 days by model", "/usage/export.csv?range=30d&group_by=model".into()),
        ("CSV download, 30 days by user", "/usage/export.csv?range=30d&group_by=user".into()),
        ("Requests, first page", "/requests".into()),
        ("Requests, provider + status chips", "/requests?provider=prod-gemini&status=failed".into()),
        ("Requests, user chip", "/requests?user=user7@example.com".into()),
        (
            "Requests, deep page (a day before the end)",
            format!("/requests?after={}:{:016x}", end_ms - 86_400_000, u64::MAX),
        ),
        (
            "Requests, provider chip, deep page (a week before the end)",
            format!("/requests?provider=prod-anthropic&after={}:{:016x}", end_ms - 7 * 86_400_000, u64::MAX),
        ),
        ("Request detail (with its transcript)", format!("/requests/{}", event_id(1000, event_ts(a, end_ms, 1000)))),
        ("Transcripts, first page", "/transcripts".into()),
        ("Transcripts, status=failed", "/transcripts?status=failed".into()),
        ("Transcripts, provider chip", "/transcripts?provider=prod-gemini".into()),
        (
            "Transcripts, deep page (a week before the end)",
            format!("/transcripts?after={}:zzzz", end_ms - 7 * 86_400_000),
        ),
        ("Conversation (Chat view)", "/transcripts/conv-3-5".into()),
        ("Secrets", "/secrets".into()),
        ("Tokens", "/tokens".into()),
    ];
    println!("load average before: {}", std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim());
    println!("\n{label}: console pages, signed in as an admin ({} runs after one warm-up)", a.runs);
    println!("| console page | server p50 ms | server max ms | answer p50 ms | answer max ms | size |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, path) in &pages {
        let (mut server, mut answer) = (Vec::with_capacity(a.runs), Vec::with_capacity(a.runs));
        let mut size = 0;
        for run in 0..=a.runs {
            let t = Instant::now();
            let resp = browser.get(format!("{base}{path}")).send().await.expect("request");
            assert_eq!(resp.status().as_u16(), 200, "{name}: {path}");
            let s = server_ms(&resp);
            let bytes = resp.bytes().await.expect("body");
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            if run == 0 {
                size = bytes.len();
                let text = String::from_utf8_lossy(&bytes);
                // the seeded spend reaches the pages (the window ends at the last seeded hour)
                if path.starts_with("/providers/prod-anthropic") && !path.contains("tab=") {
                    assert!(!text.contains(r#"<span class="kpi-value">$0.00</span>"#), "{name}: no spend shown");
                }
                if path == "/providers" {
                    assert!(text.contains("prod-anthropic") && text.contains("<polyline"), "{name}");
                }
                continue;
            }
            server.push(s);
            answer.push(ms);
        }
        server.sort_by(f64::total_cmp);
        answer.sort_by(f64::total_cmp);
        println!(
            "| {name} `{path}` | {:.1} | {:.1} | {:.1} | {:.1} | {} KiB |",
            pct(&server, 0.5),
            server[server.len() - 1],
            pct(&answer, 0.5),
            answer[answer.len() - 1],
            size / 1024
        );
    }
    println!("load average after: {}", std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim());
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let a = args();
    if a.backend == "sqlite" || a.backend == "both" {
        bench("SQLite", None, &a).await;
    }
    if a.backend == "postgres" || a.backend == "both" {
        match TestDb::postgres().await {
            Some(db) => bench("PostgreSQL", Some(db), &a).await,
            None => eprintln!("PostgreSQL skipped: set TOLLGATE_TEST_DATABASE_URL"),
        }
    }
}
