//! Fault injection (issue 15): the usage store full or locked, slowloris and idle connections,
//! SIGTERM with streams open, SIGKILL under load. Each runs the real gateway (in-process or the
//! real binary) against real fake upstreams; faults are real too (a full tmpfs, a SQLite write
//! lock held by another connection, half-sent request heads, signals).

use crate::proxy::{Rig, UPSTREAM_KEY};
use crate::serve_binary::serve;
use crate::support::*;
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tollgate_core::ProviderType;
use tollgate_testkit::upstream::{FakeUpstream, Reply, Step, openai};

/// The gateway's `/metrics`, as name → value (label-less samples only).
async fn metrics(client: &reqwest::Client, base: &str) -> HashMap<String, u64> {
    let text = match client.get(format!("{base}/metrics")).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(e) => panic!("GET /metrics: {e}"),
    };
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(' '))
        .filter_map(|(k, v)| v.trim().parse().ok().map(|v| (k.to_string(), v)))
        .collect()
}

/// Asserts `queued = written + dropped + pending` and returns (written, dropped, pending).
#[track_caller]
fn counters_add_up(m: &HashMap<String, u64>) -> (u64, u64, u64) {
    let get = |k: &str| m.get(k).copied().unwrap_or_else(|| panic!("metric {k} missing: {m:?}"));
    let (q, w, d, p) = (
        get("tollgate_usage_events_queued_total"),
        get("tollgate_usage_events_written_total"),
        get("tollgate_usage_events_dropped_total"),
        get("tollgate_usage_events_pending"),
    );
    assert_eq!(q, w + d + p, "queued {q} != written {w} + dropped {d} + pending {p}");
    (w, d, p)
}

async fn readyz(gw: &TestGateway) -> u16 {
    match gw.client.get(gw.url("/readyz")).send().await {
        Ok(r) => r.status().as_u16(),
        Err(e) => panic!("GET /readyz: {e}"),
    }
}

/// `n` chat completions through the rig, eight at a time; each must be answered 200.
async fn chat(rig: &Rig, n: usize) {
    let body = json!({"model": "gpt-5.4", "messages": [{"role": "user", "content": "hi"}]});
    let mut sent = 0;
    while sent < n {
        let wave = (n - sent).min(8);
        let replies = futures_util::future::join_all((0..wave).map(|_| rig.post("/chat/completions", &body))).await;
        for r in replies {
            assert_eq!(r.status, 200, "{}", r.text());
        }
        sent += wave;
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A small tmpfs, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `None` where mounting is not allowed (not root, no tmpfs).
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the file system: a file grown until the disk refuses more.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write as _;
        let path = self.path().join("filler");
        let mut f = std::fs::File::create(&path).unwrap_or_else(|e| panic!("{e}"));
        let block = vec![0u8; 4096];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// Full disk, then freed: nothing is counted as written that was not committed, `/readyz`
/// turns 503 while usage cannot be written, the events of the outage wait in the spill file,
/// and once space returns every request (those of the outage and every later one) is stored.
/// Before the fix the writer dropped the outage's batches after three tries (counted, but
/// `/readyz` stayed 200 and nothing was kept for when space returned).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_then_freed_loses_no_usage() {
    let Some(fs) = Tmpfs::mount("3m") else {
        #[allow(clippy::print_stderr)]
        {
            eprintln!("full_disk_then_freed_loses_no_usage: cannot mount a tmpfs here; skipped");
        }
        return;
    };
    let usage_url = format!("sqlite://{}?mode=rwc", fs.path().join("usage.sqlite").display());
    let gw = TestGateway::start_with(None, |s| {
        s.usage_database_url = Some(tollgate_server::Sensitive(usage_url));
        // No timed flush: during the outage batches of 1000 (the default size) fail whole and
        // are spilled. (The store's own test covers a batch failing half-way through.)
        s.usage_flush_interval = Duration::from_secs(3600);
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
    let rig = Rig::on(gw, "openai", json!({})).await;
    chat(&rig, 20).await;
    rig.gw.flush_usage().await;
    assert_eq!(rig.gw.usage_events().await.unwrap_or_default().len(), 20);

    let filler = fs.fill();
    chat(&rig, 1300).await;
    rig.gw.flush_usage().await;
    assert_eq!(readyz(&rig.gw).await, 503, "usage cannot be written: not ready");
    let m = metrics(&rig.gw.client, &rig.gw.base_url).await;
    let (written, dropped, pending) = counters_add_up(&m);
    assert_eq!(m.get("tollgate_usage_store_up"), Some(&0));
    assert_eq!(dropped, 0, "the spill file holds the outage's events");
    assert!(pending > 0, "{m:?}");
    let stored = rig.gw.usage_events().await.unwrap_or_default().len() as u64;
    assert_eq!(stored, written, "every event counted as written is stored, and no other");

    std::fs::remove_file(filler).unwrap_or_else(|e| panic!("{e}"));
    chat(&rig, 20).await;
    rig.gw.flush_usage().await;
    let events = rig.gw.usage_events().await.unwrap_or_default();
    assert_eq!(events.len(), 1340, "every request's event is stored once space returns");
    let mut ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 1340, "no event stored twice");
    assert_eq!(readyz(&rig.gw).await, 200);
    let m = metrics(&rig.gw.client, &rig.gw.base_url).await;
    assert_eq!(counters_add_up(&m), (1340, 0, 0));
    assert_eq!(m.get("tollgate_usage_store_up"), Some(&1));
    assert!(m.get("tollgate_usage_events_spilled_total").is_some_and(|&n| n > 0), "{m:?}");
    // Later batches keep committing on the pool's connections (none stuck in a transaction).
    chat(&rig, 20).await;
    rig.gw.flush_usage().await;
    assert_eq!(rig.gw.usage_events().await.unwrap_or_default().len(), 1360);
}

/// A usage event with long ids and several models and users, so 1,000 of them fill pages fast.
pub(crate) fn store_event(i: usize) -> tollgate_store::UsageEvent {
    tollgate_store::UsageEvent {
        id: format!("ev-{i:08}-{}", "x".repeat(40)),
        ts_ms: i as i64 * 1000,
        provider: "p".into(),
        provider_type: tollgate_store::ProviderType::Openai,
        model: Some(format!("model-{}", i % 50)),
        endpoint: "/chat/completions".into(),
        user: Some(format!("user-{}", i % 100).into()),
        agent: None,
        token_id: None,
        status: tollgate_core::RequestStatus::Success,
        http_status: Some(200),
        error_class: None,
        streamed: false,
        latency_ms: 1,
        ttft_ms: None,
        usage: tollgate_core::Usage { input: i as i64, ..Default::default() },
        cost: tollgate_core::Cost::default(),
        catalog_version: None,
        priced_by_override: false,
        unpriced: false,
        request_id: format!("r{i}-{}", "y".repeat(60)),
        conversation_id: None,
        transcript: None,
    }
}

/// SQLITE_FULL in the middle of a batch: SQLite rolls the transaction back itself, sqlx's
/// rollback-on-drop then fails and the pooled connection believed it was still inside a
/// transaction; its later batches "committed" a savepoint that never reached the file while
/// holding the write lock (the others: "database is locked"), and nothing recovered when space
/// returned. Now every batch reported written is stored, and writes resume with the space.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_leaves_no_connection_inside_a_transaction() {
    let Some(fs) = Tmpfs::mount("4m") else {
        #[allow(clippy::print_stderr)]
        {
            eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        }
        return;
    };
    let dir = fs.path().to_path_buf();
    let url = format!("sqlite://{}/usage.sqlite?mode=rwc", dir.display());
    let store = tollgate_store::UsageStore::connect(&url).await.unwrap_or_else(|e| panic!("{e}"));
    let (mut next, mut reported, mut failures) = (0, 0i64, 0);
    while failures < 6 {
        let batch: Vec<tollgate_store::UsageEvent> = (next..next + 1000).map(store_event).collect();
        next += 1000;
        match store.insert_events(&batch).await {
            Ok(()) => reported += 1000,
            Err(_) => failures += 1,
        }
    }
    assert_eq!(store.count_events().await.unwrap_or(-1), reported, "written means committed");
    let grown = std::process::Command::new("mount").args(["-o", "remount,size=64m"]).arg(&dir).status();
    assert!(grown.is_ok_and(|s| s.success()));
    for _ in 0..20 {
        let batch: Vec<tollgate_store::UsageEvent> = (next..next + 10).map(store_event).collect();
        next += 10;
        store.insert_events(&batch).await.unwrap_or_else(|e| panic!("with space back: {e}"));
        reported += 10;
    }
    let fresh = tollgate_store::UsageStore::connect(&url).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(fresh.count_events().await.unwrap_or(-1), reported, "every batch after space returned is stored");
    fresh.close().await;
    store.close().await;
}

/// Another process holds the usage database's write lock: the batches wait in memory (spill
/// off), `/readyz` says why, and the counters add up; released, everything is stored. With the
/// spill on, a gateway stopped during the outage leaves the events in `usage-spill.jsonl`,
/// and the next start replays them. The SQLite files are owner-only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locked_usage_database_holds_events_then_spill_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let data = dir.path().join("data");
    let d = data.clone();
    let gw = TestGateway::start_with(None, move |s| {
        s.data_dir = d;
        s.usage_spill_max_bytes = 0;
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
    for f in ["tollgate.sqlite", "usage.sqlite"] {
        assert_eq!(mode(&data.join(f)), 0o600, "{f} is readable only by its owner");
    }
    let rig = Rig::on(gw, "openai", json!({})).await;
    chat(&rig, 5).await;
    rig.gw.flush_usage().await;

    let lock_url = format!("sqlite://{}", data.join("usage.sqlite").display());
    let mut lock =
        <sqlx::SqliteConnection as sqlx::Connection>::connect(&lock_url).await.unwrap_or_else(|e| panic!("{e}"));
    sqlx::query("BEGIN IMMEDIATE").execute(&mut lock).await.unwrap_or_else(|e| panic!("{e}"));
    chat(&rig, 30).await;
    rig.gw.flush_usage().await; // waits out SQLite's busy timeout once, then holds the batch
    assert_eq!(readyz(&rig.gw).await, 503);
    let m = metrics(&rig.gw.client, &rig.gw.base_url).await;
    assert_eq!(counters_add_up(&m), (5, 0, 30), "held in memory, not dropped: {m:?}");
    sqlx::query("ROLLBACK").execute(&mut lock).await.unwrap_or_else(|e| panic!("{e}"));
    rig.gw.flush_usage().await;
    assert_eq!(rig.gw.usage_events().await.unwrap_or_default().len(), 35);
    assert_eq!(readyz(&rig.gw).await, 200);
    assert_eq!(counters_add_up(&metrics(&rig.gw.client, &rig.gw.base_url).await), (35, 0, 0));
    let Rig { gw, up: _up, .. } = rig; // the fake upstream serves the restarted gateway too
    drop(gw);

    // The same data dir with the spill on: lock, serve, stop during the outage, restart.
    let d = data.clone();
    let gw = TestGateway::start_with(None, move |s| s.data_dir = d).await.unwrap_or_else(|e| panic!("{e:#}"));
    let token = gw.token("invoker").await;
    let token = match token {
        Ok(t) => t,
        Err(_) => {
            // The restarted gateway has no bootstrap token of its own: use the saved one.
            let admin = std::fs::read_to_string(data.join("admin.token")).unwrap_or_default().trim().to_string();
            let (s, b) = gw
                .call(Method::POST, "/api/v1/tokens", Some(&admin), Some(&json!({"name": "again", "role": "invoker"})))
                .await
                .unwrap_or_else(|e| panic!("{e:#}"));
            assert_eq!(s, 201, "{b}");
            b["token"].as_str().unwrap_or_default().to_string()
        }
    };
    sqlx::query("BEGIN IMMEDIATE").execute(&mut lock).await.unwrap_or_else(|e| panic!("{e}"));
    let body = json!({"model": "gpt-5.4", "messages": [{"role": "user", "content": "hi"}]});
    for _ in 0..12 {
        let r = gw
            .client
            .post(gw.url("/llm/v1/providers/p-openai/chat/completions"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status(), 200);
    }
    gw.flush_usage().await;
    assert!(
        std::fs::metadata(data.join("usage-spill.jsonl")).is_ok_and(|m| m.len() > 0),
        "the outage's events are in the spill file"
    );
    assert_eq!(mode(&data.join("usage-spill.jsonl")), 0o600);
    gw.stop(); // the drain cannot write either: the spill keeps them
    sqlx::query("ROLLBACK").execute(&mut lock).await.unwrap_or_else(|e| panic!("{e}"));
    drop(lock);

    let d = data.clone();
    let gw = TestGateway::start_with(None, move |s| s.data_dir = d).await.unwrap_or_else(|e| panic!("{e:#}"));
    gw.flush_usage().await;
    assert_eq!(gw.usage_events().await.unwrap_or_default().len(), 47, "35 before + 12 replayed from the spill");
    assert_eq!(counters_add_up(&metrics(&gw.client, &gw.base_url).await), (12, 0, 0));
    assert_eq!(std::fs::metadata(data.join("usage-spill.jsonl")).map(|m| m.len()).unwrap_or(0), 0);
}

/// 2,000 connections that send half a request head and stall do not keep a real request from
/// being served, and the header-read timeout closes every one of them; a connection that sends
/// nothing, and a keep-alive one after its request, are closed by the idle timeout. (Before
/// the fix they all stayed open forever.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_are_closed_and_real_requests_served() {
    let gw = TestGateway::start_with(None, |s| {
        s.header_read_timeout = Duration::from_secs(2);
        s.idle_timeout = Duration::from_secs(2);
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
    let addr = gw.base_url.trim_start_matches("http://").to_string();
    let mut stalled = Vec::with_capacity(2000);
    for _ in 0..2000 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap_or_else(|e| panic!("connect: {e}"));
        s.write_all(b"POST /llm/v1/providers/p/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: app")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        stalled.push(s);
    }
    let silent = tokio::net::TcpStream::connect(&addr).await.unwrap_or_else(|e| panic!("connect: {e}"));
    // A keep-alive connection that was served once and then says nothing more.
    let mut kept = tokio::net::TcpStream::connect(&addr).await.unwrap_or_else(|e| panic!("connect: {e}"));
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap_or_else(|e| panic!("{e}"));
    let mut head = vec![0u8; 1024];
    let n = kept.read(&mut head).await.unwrap_or(0);
    assert!(String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 200"));
    let started = Instant::now();
    let r = gw.client.get(gw.url("/healthz")).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), 200);
    #[allow(clippy::print_stderr)]
    {
        eprintln!("served next to 2,000 stalled heads in {:?}", started.elapsed());
    }

    // Every stalled connection is closed by the gateway (EOF or reset), well before 30 s.
    let closed = |mut s: tokio::net::TcpStream| async move {
        let mut buf = [0u8; 64];
        matches!(tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf)).await, Ok(Ok(0) | Err(_)))
    };
    let mut reads = tokio::task::JoinSet::new();
    for s in stalled {
        reads.spawn(closed(s));
    }
    let mut open = 0;
    while let Some(r) = reads.join_next().await {
        if !r.unwrap_or(false) {
            open += 1;
        }
    }
    assert_eq!(open, 0, "stalled connections left open by the gateway");
    assert!(closed(silent).await, "a connection that never sent a byte is closed by the idle timeout");
    assert!(closed(kept).await, "an idle keep-alive connection is closed by the idle timeout");
    // A new client: the idle timeout has closed the pooled connection of the first request.
    let client = reqwest::Client::new();
    let m = metrics(&client, &gw.base_url).await;
    assert!(m.get("tollgate_connections_header_timeouts_total").is_some_and(|&n| n >= 2000), "{m:?}");
    assert!(m.get("tollgate_connections_idle_closed_total").is_some_and(|&n| n >= 2), "{m:?}");
    // Still serving.
    let r = client.get(gw.url("/healthz")).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), 200);
}

/// Connections beyond `--max-connections` wait for a slot, and are closed unserved when none
/// frees up within the header-read timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_wait_then_are_refused() {
    let gw = TestGateway::start_with(None, |s| {
        s.max_connections = 2;
        s.header_read_timeout = Duration::from_secs(1);
        s.idle_timeout = Duration::from_secs(30);
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
    let addr = gw.base_url.trim_start_matches("http://").to_string();
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap_or_else(|e| panic!("{e}"));
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap_or_else(|e| panic!("{e}"));
        let mut buf = vec![0u8; 1024];
        let n = s.read(&mut buf).await.unwrap_or(0);
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"), "served within the cap");
        held.push(s); // kept alive: both slots taken
    }
    let mut third = tokio::net::TcpStream::connect(&addr).await.unwrap_or_else(|e| panic!("{e}"));
    third.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap_or_else(|e| panic!("{e}"));
    let mut buf = vec![0u8; 1024];
    let got = tokio::time::timeout(Duration::from_secs(10), third.read(&mut buf)).await;
    assert!(matches!(got, Ok(Ok(0) | Err(_))), "closed unserved after waiting: {got:?}");
    drop(held); // frees both slots
    let m = metrics(&gw.client, &gw.base_url).await;
    assert!(m.get("tollgate_connections_refused_total").is_some_and(|&n| n >= 1), "{m:?}");
}

/// Every slot taken by stalled heads (the file-descriptor-limited case: 1,100 half-sent
/// requests against 1,024 descriptors): a real request waiting for a slot is still served, long
/// before the 30 s header timeout, because under pressure heads get at most 1 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_heads_filling_every_slot_do_not_lock_out_a_real_request() {
    let gw = TestGateway::start_with(None, |s| {
        s.max_connections = 50;
        s.header_read_timeout = Duration::from_secs(30);
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
    let addr = gw.base_url.trim_start_matches("http://").to_string();
    let mut stalled = Vec::new();
    for _ in 0..60 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap_or_else(|e| panic!("{e}"));
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap_or_else(|e| panic!("{e}"));
        stalled.push(s);
    }
    let started = Instant::now();
    let mut real = tokio::net::TcpStream::connect(&addr).await.unwrap_or_else(|e| panic!("{e}"));
    real.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(60), real.read_to_end(&mut answer)).await;
    let took = started.elapsed();
    assert!(read.is_ok(), "no answer");
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer));
    assert!(took < Duration::from_secs(15), "served only after {took:?}: the stalled heads were not cut early");
    drop(stalled);
}

/// HTTP/2 (prior knowledge, as gRPC-style clients speak it) is served, and
/// `--http2-max-concurrent-streams` holds: with one stream allowed, a second request on the
/// connection waits until the first stream ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_is_served_within_its_stream_limit() {
    let gw =
        TestGateway::start_with(None, |s| s.http2_max_concurrent_streams = 1).await.unwrap_or_else(|e| panic!("{e:#}"));
    let rig = Rig::on(gw, "openai", json!({})).await;
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let chunks = openai::chat_stream("gpt-5.4", true);
    rig.up.push(Reply::script(
        200,
        "text/event-stream",
        vec![Step::Send(chunks[0].clone()), Step::Wait(release.clone()), Step::Send(chunks[chunks.len() - 1].clone())],
    ));
    let h2 = reqwest::Client::builder().http2_prior_knowledge().build().unwrap_or_else(|e| panic!("{e}"));
    let body = json!({"model": "gpt-5.4", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let mut first = crate::proxy::sdk_auth(h2.post(rig.url("/chat/completions")), "openai", &rig.token)
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(first.version(), reqwest::Version::HTTP_2);
    assert!(first.chunk().await.unwrap_or_else(|e| panic!("{e}")).is_some());
    let second = tokio::spawn(h2.get(rig.gw.url("/healthz")).send());
    // The first stream is open: the second may not start on this connection.
    let waited = tokio::time::timeout(Duration::from_millis(500), async {
        while !second.is_finished() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(waited.is_err(), "a second stream ran beside the first with a limit of one");
    release.notify_one();
    while first.chunk().await.unwrap_or_else(|e| panic!("{e}")).is_some() {}
    let second = second.await.unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(second.status(), 200);
}

/// Helpers for the real binary: an OpenAI provider on `up` and an invoker token.
async fn provision(client: &reqwest::Client, base: &str, data: &Path, up: &FakeUpstream) -> String {
    let admin = std::fs::read_to_string(data.join("admin.token")).unwrap_or_default().trim().to_string();
    let post = |path: &str, body: Value| {
        client.request(Method::PUT, format!("{base}{path}")).bearer_auth(&admin).json(&body).send()
    };
    let r =
        post("/api/v1/secrets/OPENAI_API_KEY", json!({"value": UPSTREAM_KEY})).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(r.status().is_success());
    let provider = json!({"name": "oa", "display_name": "OA", "type": "openai",
        "openai_config": {"api_key_ref": "OPENAI_API_KEY", "base_url": up.provider_base_url()}});
    let r = client
        .post(format!("{base}/api/v1/llm-providers"))
        .bearer_auth(&admin)
        .json(&provider)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), 201);
    let r = client
        .post(format!("{base}/api/v1/tokens"))
        .bearer_auth(&admin)
        .json(&json!({"name": "app", "role": "invoker"}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let b: Value = r.json().await.unwrap_or(Value::Null);
    b["token"].as_str().unwrap_or_default().to_string()
}

async fn stored_events(data: &Path) -> Vec<tollgate_store::UsageEvent> {
    let usage = tollgate_store::UsageStore::connect(&format!("sqlite://{}", data.join("usage.sqlite").display()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let q = tollgate_store::UsageQuery { limit: Some(100_000), ..Default::default() };
    let events = usage.list_events(&q).await.unwrap_or_else(|e| panic!("{e}"));
    usage.close().await;
    events
}

/// SIGTERM with 200 streams open upstream-side forever: the process exits once the shutdown
/// grace is over (before the fix it waited for the streams), and every stream has its usage
/// event, with the status the client got. The flush interval is an hour, so only the shutdown
/// drain can have written them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_cuts_open_streams_after_the_grace_and_writes_their_events() {
    let up = FakeUpstream::start(ProviderType::Openai, Some(UPSTREAM_KEY)).await.unwrap_or_else(|e| panic!("{e:#}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let data = dir.path().join("tollgate-data");
    let served = serve(&data, &["--usage-flush-interval-ms", "3600000", "--shutdown-grace-seconds", "1"], &[]);
    let client = reqwest::Client::new();
    let base = served.base_url.clone();
    let token = provision(&client, &base, &data, &up).await;
    let n = 200;
    let chunks = openai::chat_stream("gpt-5.4", true);
    for _ in 0..n {
        up.push(Reply::script(
            200,
            "text/event-stream",
            vec![Step::Send(chunks[0].clone()), Step::Send(chunks[1].clone()), Step::Hang],
        ));
    }
    let body = json!({"model": "gpt-5.4", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let mut streams = Vec::new();
    for i in 0..n {
        let req = client
            .post(format!("{base}/llm/v1/providers/oa/chat/completions"))
            .bearer_auth(&token)
            .header("x-tollgate-conversation", format!("c{i}"))
            .json(&body);
        streams.push(tokio::spawn(async move {
            let mut resp = req.send().await.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(resp.status(), 200);
            let first = resp.chunk().await.unwrap_or_else(|e| panic!("{e}"));
            assert!(first.is_some(), "the first chunk arrives");
            resp // kept open
        }));
    }
    let mut open = Vec::new();
    for s in streams {
        open.push(s.await.unwrap_or_else(|e| panic!("{e}")));
    }
    let started = Instant::now();
    let (_stdout, stderr) = served.terminate();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(12), "exited {took:?} after SIGTERM with a 1 s grace");
    assert!(stderr.contains("cutting the connections still open"), "{stderr}");
    drop(open);
    let events = stored_events(&data).await;
    assert_eq!(events.len(), n, "one event per open stream");
    let mut convs: Vec<String> = events.iter().filter_map(|e| e.conversation_id.clone()).collect();
    convs.sort();
    convs.dedup();
    assert_eq!(convs.len(), n);
    assert!(events.iter().all(|e| e.streamed && e.http_status == Some(200) && e.ttft_ms.is_some()), "{:?}", events[0]);
    assert!(
        events.iter().all(|e| e.status.as_str() == "client_cancelled" && e.error_class.as_deref() == Some("shutdown")),
        "cut by the shutdown, and said so: {:?}",
        events[0]
    );
}

/// SIGKILL under load, then restart: what was answered more than one flush interval (plus a
/// margin for a loaded machine) before the kill is stored; only the last flush can be lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_at_most_the_last_flush() {
    let up = FakeUpstream::start(ProviderType::Openai, Some(UPSTREAM_KEY)).await.unwrap_or_else(|e| panic!("{e:#}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let data = dir.path().join("tollgate-data");
    let flush = Duration::from_millis(100);
    let mut served = serve(&data, &["--usage-flush-interval-ms", "100"], &[]);
    let client = reqwest::Client::new();
    let base = served.base_url.clone();
    let token = provision(&client, &base, &data, &up).await;
    let body = json!({"model": "gpt-5.4", "messages": [{"role": "user", "content": "hi"}]});
    let done = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(usize, Instant)>::new()));
    let load_for = Duration::from_secs(3);
    let t0 = Instant::now();
    let mut workers = Vec::new();
    for w in 0..8 {
        let (client, base, token, body, done) =
            (client.clone(), base.clone(), token.clone(), body.clone(), done.clone());
        workers.push(tokio::spawn(async move {
            let mut i = w;
            while t0.elapsed() < load_for {
                let r = client
                    .post(format!("{base}/llm/v1/providers/oa/chat/completions"))
                    .bearer_auth(&token)
                    .header("x-tollgate-conversation", format!("c{i}"))
                    .json(&body)
                    .send()
                    .await;
                if let Ok(r) = r
                    && r.status() == 200
                    && r.bytes().await.is_ok()
                    && let Ok(mut d) = done.lock()
                {
                    d.push((i, Instant::now()));
                }
                i += 8;
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    served.kill();
    let killed_at = Instant::now();
    drop(served);
    let answered = done.lock().map(|d| d.clone()).unwrap_or_default();
    assert!(answered.len() > 100, "load ran: {} requests", answered.len());

    // Restart on the same data: it opens the same usage database.
    let again = serve(&data, &[], &[]);
    let _ = again.terminate();
    let stored: std::collections::HashSet<String> =
        stored_events(&data).await.into_iter().filter_map(|e| e.conversation_id).collect();
    let margin = Duration::from_secs(1);
    let must_have: Vec<usize> =
        answered.iter().filter(|(_, at)| killed_at.duration_since(*at) > flush + margin).map(|(i, _)| *i).collect();
    let missing: Vec<usize> = must_have.iter().copied().filter(|i| !stored.contains(&format!("c{i}"))).collect();
    assert!(missing.is_empty(), "answered before the last flush but lost: {missing:?}");
    let lost = answered.len() - stored.len().min(answered.len());
    #[allow(clippy::print_stderr)]
    {
        eprintln!("SIGKILL after {} answered requests: {} stored, {lost} lost", answered.len(), stored.len());
    }
}
