//! Transcripts and the request log, end to end through the real proxy and fake upstreams, on
//! both stores: every provider family, streamed and not; toggles off store nothing (a unique
//! marker from the prompt is in no file of the data dir); input-only and output-only store
//! that half; bodies are sealed at rest; the assembled message equals what the fake sent; no
//! upstream key or gateway token in a transcript; a toggle flipped mid-traffic is not
//! retroactive; readers get metadata only; conversations; purges.

use crate::proxy::{Rig, UPSTREAM_KEY, send};
use crate::support::*;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::Notify;
use tollgate_testkit::upstream::{Reply, Step, TEXT};

/// A marker unique to this run, put in every prompt.
fn marker() -> String {
    format!("MARKER-{}", uuid::Uuid::now_v7().simple())
}

/// The (path, body) of a generation request of `kind` whose prompt holds `marker`.
fn generation(kind: &str, stream: bool, marker: &str) -> (String, Value) {
    let say = format!("please answer {marker}");
    match kind {
        "anthropic" => (
            "/v1/messages".into(),
            json!({"model": "claude-x", "max_tokens": 16, "stream": stream, "messages": [{"role": "user", "content": say}]}),
        ),
        "google" => (
            if stream {
                "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse".into()
            } else {
                "/v1beta/models/gemini-2.5-flash:generateContent".into()
            },
            json!({"contents": [{"role": "user", "parts": [{"text": say}]}]}),
        ),
        "bedrock" => (
            format!(
                "/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/{}",
                if stream { "converse-stream" } else { "converse" }
            ),
            json!({"messages": [{"role": "user", "content": [{"text": say}]}], "inferenceConfig": {"maxTokens": 16}}),
        ),
        "azure_openai" => (
            "/openai/deployments/chat/chat/completions?api-version=2024-10-21".into(),
            json!({"stream": stream, "messages": [{"role": "user", "content": say}]}),
        ),
        _ => (
            "/chat/completions".into(),
            json!({"model": "gpt-4o", "stream": stream, "messages": [{"role": "user", "content": say}]}),
        ),
    }
}

fn recording(input: bool, output: bool) -> Value {
    json!({"transcripts": {"record_input_messages": input, "record_output_messages": output}})
}

/// Every file under `dirs` (recursively).
fn files(dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo: Vec<PathBuf> = dirs.to_vec();
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() { todo.push(p) } else { out.push(p) }
        }
    }
    out
}

/// The directories a SQLite gateway keeps data in: its data dir and the config database's.
fn data_dirs(gw: &TestGateway, db_url: &str) -> Vec<PathBuf> {
    let mut dirs = vec![gw.data_dir.clone()];
    if let Some(path) = db_url.strip_prefix("sqlite://") {
        let file = path.split('?').next().unwrap_or_default();
        if let Some(parent) = Path::new(file).parent() {
            dirs.push(parent.to_path_buf());
        }
    }
    dirs
}

#[track_caller]
fn assert_absent_from_files(dirs: &[PathBuf], needle: &str) {
    let all = files(dirs);
    assert!(!all.is_empty(), "no data files found in {dirs:?}");
    for f in all {
        let bytes = std::fs::read(&f).unwrap_or_default();
        assert!(!bytes.windows(needle.len()).any(|w| w == needle.as_bytes()), "{needle} found in {}", f.display());
    }
}

/// The transcript store the gateway writes (its own SQLite file, or the PostgreSQL database).
async fn transcript_store(gw: &TestGateway, db_url: &str) -> tollgate_store::TranscriptStore {
    let url = if db_url.starts_with("postgres") {
        db_url.to_string()
    } else {
        format!("sqlite://{}?mode=rwc", gw.data_dir.join("transcripts.sqlite").display())
    };
    tollgate_store::TranscriptStore::connect(&url).await.unwrap_or_else(|e| panic!("{e}"))
}

/// The sealed text of every transcript batch the gateway stored, read straight from the table.
async fn sealed_batches(gw: &TestGateway, db_url: &str) -> Vec<String> {
    const SQL: &str = "SELECT sealed FROM transcript_batches";
    if db_url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(db_url).await.unwrap_or_else(|e| panic!("{e}"));
        let rows = sqlx::query_scalar(SQL).fetch_all(&pool).await.unwrap_or_else(|e| panic!("{e}"));
        pool.close().await;
        rows
    } else {
        let url = format!("sqlite://{}", gw.data_dir.join("transcripts.sqlite").display());
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap_or_else(|e| panic!("{e}"));
        let rows = sqlx::query_scalar(SQL).fetch_all(&pool).await.unwrap_or_else(|e| panic!("{e}"));
        pool.close().await;
        rows
    }
}

/// The request log as the admin sees it, newest first.
async fn requests(gw: &TestGateway, query: &str) -> Vec<Value> {
    let v = expect(admin(gw, Method::GET, &format!("/api/v1/requests{query}"), None).await, 200);
    v["requests"].as_array().cloned().unwrap_or_default()
}

async fn detail(gw: &TestGateway, id: &str) -> Value {
    expect(admin(gw, Method::GET, &format!("/api/v1/requests/{id}"), None).await, 200)
}

const KINDS: [&str; 6] = ["openai", "anthropic", "google", "bedrock", "azure_openai", "openai_compatible"];

/// Both toggles on, every family, streamed and not: the input is the client's body, the
/// assembled output is the fake's text, both are sealed at rest, and neither the upstream key
/// nor the gateway token is in a transcript. A reader sees the log without bodies.
async fn both_toggles_record_every_family(db: TestDb) {
    let db_url = db.url().to_string();
    let mut gw = Some(gateway(db).await);
    for kind in KINDS {
        let rig = Rig::on(gw.take().unwrap_or_else(|| panic!("gateway")), kind, recording(true, true)).await;
        let mark = marker();
        for stream in [false, true] {
            let (path, body) = generation(kind, stream, &mark);
            let r = rig.post(&path, &body).await;
            assert_eq!(r.status, 200, "{kind} stream={stream}: {}", r.text());
            let id = r.headers.get("x-tollgate-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default();
            rig.gw.flush_usage().await;
            let d = detail(&rig.gw, id).await;
            assert_eq!(d["input_recorded"], true, "{kind} {stream}: {d}");
            assert_eq!(d["output_recorded"], true, "{kind} {stream}: {d}");
            assert_eq!(d["bodies_withheld"], false);
            assert_eq!(d["input"], body, "{kind} {stream}: the input is the client's body");
            assert_eq!(d["output_message"]["text"], TEXT, "{kind} stream={stream}: {}", d["output"]);
            if !stream {
                assert_eq!(d["output"], r.json(), "{kind}: a JSON body comes back as JSON");
            }
            assert_eq!(d["streamed"], stream, "{kind}");
            let text = d.to_string();
            assert!(!text.contains(UPSTREAM_KEY), "{kind}: the upstream key is in a transcript");
            assert!(!text.contains(&rig.token), "{kind}: the gateway token is in a transcript");
            assert_eq!(d["request_headers"].get("authorization"), None);
            assert!(
                d["request_headers"]["content-type"].as_str().is_some_and(|v| v.starts_with("application/json")),
                "{kind}: allow-listed headers are kept: {}",
                d["request_headers"]
            );
            // A reader sees the request and its flags, not the bodies.
            let reader = rig.gw.token("reader").await.unwrap_or_else(|e| panic!("{e:#}"));
            let v =
                expect(call(&rig.gw, Method::GET, &format!("/api/v1/requests/{id}"), Some(&reader), None).await, 200);
            assert_eq!((v["bodies_withheld"].clone(), v["input"].clone()), (json!(true), Value::Null));
            assert_eq!(v["input_recorded"], true);
        }
        // Sealed at rest: the marker is in no file (SQLite) and not in the stored batches (both).
        let list = requests(&rig.gw, &format!("?provider={}", rig.name)).await;
        assert_eq!(list.len(), 2, "{kind}");
        for req in &list {
            assert_eq!((req["input_recorded"].clone(), req["output_recorded"].clone()), (json!(true), json!(true)));
        }
        let sealed = sealed_batches(&rig.gw, &db_url).await;
        assert!(!sealed.is_empty(), "{kind}: no batch stored");
        for s in &sealed {
            assert!(s.starts_with("v1:") && !s.contains(&mark), "{kind}: not sealed");
        }
        if !db_url.starts_with("postgres") {
            assert_absent_from_files(&data_dirs(&rig.gw, &db_url), &mark);
        }
        gw = Some(rig.gw);
    }
}

/// Both toggles off (the default): the request log still has every request, nothing of the
/// bodies is stored, and the marker is in no file of the data dir.
async fn toggles_off_store_no_body(db: TestDb) {
    let db_url = db.url().to_string();
    let mut gw = Some(gateway(db).await);
    for kind in KINDS {
        let rig = Rig::on(gw.take().unwrap_or_else(|| panic!("gateway")), kind, json!({})).await;
        let mark = marker();
        for stream in [false, true] {
            let (path, body) = generation(kind, stream, &mark);
            assert_eq!(rig.post(&path, &body).await.status, 200, "{kind}");
        }
        rig.gw.flush_usage().await;
        let list = requests(&rig.gw, &format!("?provider={}", rig.name)).await;
        assert_eq!(list.len(), 2, "{kind}: every request is in the log");
        for req in &list {
            assert_eq!((req["input_recorded"].clone(), req["output_recorded"].clone()), (json!(false), json!(false)));
            let d = detail(&rig.gw, req["id"].as_str().unwrap_or_default()).await;
            assert_eq!((d["input"].clone(), d["output"].clone()), (Value::Null, Value::Null), "{kind}");
            assert!(d["tokens"]["total"].as_i64().unwrap_or(0) > 0, "{kind}: usage is still metered");
        }
        let ts = transcript_store(&rig.gw, &db_url).await;
        assert_eq!(ts.count().await.unwrap_or(-1), 0, "{kind}");
        ts.close().await;
        if !db_url.starts_with("postgres") {
            assert_absent_from_files(&data_dirs(&rig.gw, &db_url), &mark);
        }
        gw = Some(rig.gw);
    }
}

/// Input only stores the request body and no response; output only the reverse.
async fn input_only_and_output_only(db: TestDb) {
    let rig = Rig::new(db, "anthropic", recording(true, false)).await;
    let mark = marker();
    let (path, body) = generation("anthropic", true, &mark);
    assert_eq!(rig.post(&path, &body).await.status, 200);
    rig.gw.flush_usage().await;
    let first = requests(&rig.gw, "").await;
    let d = detail(&rig.gw, first[0]["id"].as_str().unwrap_or_default()).await;
    assert_eq!(d["input"], body);
    assert_eq!((d["output"].clone(), d["output_recorded"].clone()), (Value::Null, json!(false)));

    let patch = recording(false, true);
    expect(admin(&rig.gw, Method::PATCH, &format!("/api/v1/llm-providers/{}", rig.name), Some(patch)).await, 200);
    assert_eq!(rig.post(&path, &body).await.status, 200);
    rig.gw.flush_usage().await;
    let list = requests(&rig.gw, "").await;
    assert_eq!(list.len(), 2);
    let d = detail(&rig.gw, list[0]["id"].as_str().unwrap_or_default()).await;
    assert_eq!((d["input"].clone(), d["input_recorded"].clone()), (Value::Null, json!(false)));
    assert_eq!(d["output_message"]["text"], TEXT);
    assert!(d["output"].as_str().unwrap_or_default().contains("message_stop"), "the raw stream text: {}", d["output"]);
}

/// A toggle flipped while a request streams applies to requests that start afterwards only:
/// the one in flight keeps the setting it started with, in both directions.
async fn toggle_flip_is_not_retroactive(db: TestDb) {
    let rig = Rig::new(db, "openai", json!({})).await;
    let mut ids = Vec::new();
    for turn_on in [true, false] {
        let release = Arc::new(Notify::new());
        let first = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n";
        let rest = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"}}]}\n\ndata: [DONE]\n\n";
        rig.up.push(Reply::script(
            200,
            "text/event-stream",
            vec![Step::Send(first.into()), Step::Wait(release.clone()), Step::Send(rest.into())],
        ));
        let (path, body) = generation("openai", true, &marker());
        let started = rig.request(Method::POST, &path).json(&body).send().await.unwrap_or_else(|e| panic!("{e}"));
        let patch = recording(turn_on, turn_on);
        expect(admin(&rig.gw, Method::PATCH, &format!("/api/v1/llm-providers/{}", rig.name), Some(patch)).await, 200);
        release.notify_one();
        let text = started.text().await.unwrap_or_default();
        assert!(text.contains("[DONE]"), "{text}");
        // The next request starts after the change.
        assert_eq!(rig.post(&path, &body).await.status, 200);
        rig.gw.flush_usage().await;
        let list = requests(&rig.gw, "").await;
        ids.push((list[1]["id"].clone(), list[1]["input_recorded"].clone(), list[0]["input_recorded"].clone()));
        assert_eq!(list[1]["input_recorded"], !turn_on, "in flight keeps the old setting (on={turn_on})");
        assert_eq!(list[0]["input_recorded"], turn_on, "after the change: the new setting (on={turn_on})");
        if turn_on {
            let d = detail(&rig.gw, list[0]["id"].as_str().unwrap_or_default()).await;
            assert_eq!(d["output_message"]["text"], TEXT);
        }
    }
    assert_eq!(ids.len(), 2);
}

/// Conversations: `X-Tollgate-Conversation`, Claude Code's session header, and a request
/// without either (a conversation of its own); a failed turn makes the conversation failed.
async fn conversations_group_turns(db: TestDb) {
    let rig = Rig::new(db, "anthropic", recording(true, true)).await;
    let (path, body) = generation("anthropic", false, &marker());
    for _ in 0..2 {
        let r = send(rig.request(Method::POST, &path).header("x-tollgate-conversation", "conv-a").json(&body)).await;
        assert_eq!(r.status, 200);
    }
    rig.up.push(Reply::json(529, &json!({"type": "error", "error": {"type": "overloaded_error", "message": "busy"}})));
    let r = send(rig.request(Method::POST, &path).header("x-claude-code-session-id", "cc-123").json(&body)).await;
    assert_eq!(r.status, 529);
    let r = send(rig.request(Method::POST, &path).header("x-claude-code-session-id", "cc-123").json(&body)).await;
    assert_eq!(r.status, 200);
    // The Codex CLI's session header (and the older underscore form other agents send).
    let r = send(rig.request(Method::POST, &path).header("session-id", "codex-1").json(&body)).await;
    assert_eq!(r.status, 200);
    let r = send(rig.request(Method::POST, &path).header("session_id", "codex-1").json(&body)).await;
    assert_eq!(r.status, 200);
    let lone = rig.post(&path, &body).await;
    let lone_id = lone.headers.get("x-tollgate-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default();
    rig.gw.flush_usage().await;

    let v = expect(admin(&rig.gw, Method::GET, "/api/v1/conversations", None).await, 200);
    let convs = v["conversations"].as_array().cloned().unwrap_or_default();
    assert_eq!(convs.len(), 4, "{v}");
    let by_id = |id: &str| convs.iter().find(|c| c["id"] == id).cloned().unwrap_or_else(|| panic!("{id}: {v}"));
    let a = by_id("conv-a");
    assert_eq!((a["turns"].clone(), a["status"].clone()), (json!(2), json!("ok")));
    assert_eq!(a["providers"], json!([rig.name]));
    assert!(a["tokens"].as_i64().unwrap_or(0) > 0);
    let cc = by_id("cc-123");
    assert_eq!(
        (cc["turns"].clone(), cc["status"].clone(), cc["failed_turns"].clone()),
        (json!(2), json!("failed"), json!(1))
    );
    assert_eq!(by_id(lone_id)["turns"], 1, "a request without a conversation is one of its own");
    assert_eq!(by_id("codex-1")["turns"], 2);
    assert_eq!(convs[0]["id"], lone_id, "most recently active first");

    let failed = expect(admin(&rig.gw, Method::GET, "/api/v1/conversations?status=failed", None).await, 200);
    assert_eq!(failed["conversations"].as_array().map(Vec::len), Some(1));
    // A one-turn conversation is read from its event (no conversation row): its detail, and
    // the list's pages, which merge both sources in one order.
    let d = expect(admin(&rig.gw, Method::GET, &format!("/api/v1/conversations/{lone_id}"), None).await, 200);
    assert_eq!(d["requests"].as_array().map(Vec::len), Some(1), "{d}");
    assert_eq!(d["requests"][0]["id"], lone_id);
    assert_eq!(d["turns"], 1, "the count, once: {d}");
    let paged = all_pages(&rig.gw, "/api/v1/conversations?page_size=1", "conversations").await;
    let listed: Vec<_> = convs.iter().map(|c| c["id"].as_str().unwrap_or_default().to_string()).collect();
    assert_eq!(paged, listed, "pages of one walk the same list, once each");
    // A failed request without a conversation is a failed conversation of its own.
    rig.up.push(Reply::json(529, &json!({"type": "error", "error": {"type": "overloaded_error", "message": "busy"}})));
    assert_eq!(rig.post(&path, &body).await.status, 529);
    rig.gw.flush_usage().await;
    let failed = expect(admin(&rig.gw, Method::GET, "/api/v1/conversations?status=failed", None).await, 200);
    let failed: Vec<_> = failed["conversations"].as_array().into_iter().flatten().cloned().collect();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert_eq!((failed[0]["turns"].clone(), failed[0]["status"].clone()), (json!(1), json!("failed")));
    assert_eq!(failed[1]["id"], "cc-123");
    let ok = expect(admin(&rig.gw, Method::GET, "/api/v1/conversations?status=ok", None).await, 200);
    assert_eq!(ok["conversations"].as_array().map(Vec::len), Some(3), "{ok}");
    let d = expect(admin(&rig.gw, Method::GET, "/api/v1/conversations/cc-123", None).await, 200);
    let turns = d["requests"].as_array().cloned().unwrap_or_default();
    assert_eq!(turns.len(), 2);
    assert_eq!((turns[0]["status"].clone(), turns[1]["status"].clone()), (json!("upstream_error"), json!("success")));
    let failed_reqs = requests(&rig.gw, "?status=failed").await;
    assert_eq!(failed_reqs.len(), 2);
    assert_eq!(requests(&rig.gw, "?conversation=conv-a").await.len(), 2);
    expect(admin(&rig.gw, Method::GET, "/api/v1/conversations/nope", None).await, 404);
    let bad = admin(&rig.gw, Method::GET, "/api/v1/requests?status=bogus", None).await;
    assert_eq!(expect(bad, 400)["error"]["field"], "status");

    // Keyset pagination: pages of two, newest first, no overlap.
    let seen = all_pages(&rig.gw, "/api/v1/requests?page_size=2", "requests").await;
    assert_eq!(seen.len(), 8);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(seen, sorted, "newest first (UUIDv7 ids sort by time)");
}

/// The ids of every item of a keyset-paginated list (`first`: its first page's path with a
/// query; `key`: the member holding the items), following `next_page_token` to the end.
async fn all_pages(gw: &TestGateway, first: &str, key: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let q = match &token {
            Some(t) => format!("{first}&page_token={t}"),
            None => first.to_string(),
        };
        let v = expect(admin(gw, Method::GET, &q, None).await, 200);
        ids.extend(v[key].as_array().into_iter().flatten().map(|r| r["id"].as_str().unwrap_or_default().to_string()));
        token = v["next_page_token"].as_str().map(str::to_string);
        if token.is_none() {
            return ids;
        }
    }
}

/// Purging a provider's transcripts keeps its requests; deleting a provider with
/// `purge_transcripts=true` purges too.
async fn purges(db: TestDb) {
    let db_url = db.url().to_string();
    let rig = Rig::new(db, "openai", recording(true, true)).await;
    let (path, body) = generation("openai", false, &marker());
    for _ in 0..3 {
        assert_eq!(rig.post(&path, &body).await.status, 200);
    }
    rig.gw.flush_usage().await;
    let ts = transcript_store(&rig.gw, &db_url).await;
    assert_eq!(ts.count().await.unwrap_or(-1), 3);
    let bad = admin(&rig.gw, Method::DELETE, "/api/v1/transcripts", None).await;
    assert_eq!(expect(bad, 400)["error"]["field"], "provider");
    let old = admin(
        &rig.gw,
        Method::DELETE,
        &format!("/api/v1/transcripts?provider={}&before=2000-01-01T00:00:00Z", rig.name),
        None,
    )
    .await;
    assert_eq!(expect(old, 200)["deleted"], 0);
    let all = admin(&rig.gw, Method::DELETE, &format!("/api/v1/transcripts?provider={}", rig.name), None).await;
    assert_eq!(expect(all, 200)["deleted"], 3);
    assert_eq!(ts.count().await.unwrap_or(-1), 0);
    assert_eq!(requests(&rig.gw, "").await.len(), 3, "the requests stay");
    // A transcript still queued in the usage writer when the purge runs (its request answered,
    // its flush not yet due) is dropped when written, not stored after the purge.
    assert_eq!(rig.post(&path, &body).await.status, 200);
    let all = admin(&rig.gw, Method::DELETE, &format!("/api/v1/transcripts?provider={}", rig.name), None).await;
    expect(all, 200);
    rig.gw.flush_usage().await;
    assert_eq!(ts.count().await.unwrap_or(-1), 0, "the queued transcript was purged too");
    assert_eq!(requests(&rig.gw, "").await.len(), 4, "its request is recorded");

    assert_eq!(rig.post(&path, &body).await.status, 200);
    rig.gw.flush_usage().await;
    assert_eq!(ts.count().await.unwrap_or(-1), 1, "a request after the purge is recorded");
    expect(
        admin(&rig.gw, Method::DELETE, &format!("/api/v1/llm-providers/{}?purge_transcripts=true", rig.name), None)
            .await,
        204,
    );
    assert_eq!(ts.count().await.unwrap_or(-1), 0);
    ts.close().await;
}

/// A body longer than `--transcript-max-bytes` keeps its head and is flagged truncated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_bodies_keep_their_head() {
    let gw = TestGateway::start_with(None, |s| s.transcript_max_bytes = 64).await.unwrap_or_else(|e| panic!("{e:#}"));
    let rig = Rig::on(gw, "openai", recording(true, true)).await;
    let (path, body) = generation("openai", false, &"x".repeat(200));
    assert_eq!(rig.post(&path, &body).await.status, 200);
    rig.gw.flush_usage().await;
    let list = requests(&rig.gw, "").await;
    assert_eq!(list[0]["truncated"], true);
    let d = detail(&rig.gw, list[0]["id"].as_str().unwrap_or_default()).await;
    assert_eq!((d["input_truncated"].clone(), d["output_truncated"].clone()), (json!(true), json!(true)));
    let input = d["input"].as_str().unwrap_or_default();
    assert_eq!(input.len(), 64);
    assert_eq!(input, &body.to_string()[..64], "the head of the client's body");
}

crate::both_backends!(
    both_toggles_record_every_family,
    toggles_off_store_no_body,
    input_only_and_output_only,
    toggle_flip_is_not_retroactive,
    conversations_group_turns,
    purges,
);

/// Retention by age and the total-size cap, with the gateway's injected clock: requests are
/// stamped by it, and the sweep deletes by it (oldest first).
async fn retention_and_size_cap(db: TestDb) {
    let db_url = db.url().to_string();
    let rig = Rig::new(db, "openai", recording(true, true)).await;
    let (path, body) = generation("openai", false, &marker());
    const DAY: std::time::Duration = std::time::Duration::from_secs(86_400);
    for _ in 0..2 {
        assert_eq!(rig.post(&path, &body).await.status, 200);
    }
    rig.gw.clock.advance(20 * DAY);
    for _ in 0..3 {
        assert_eq!(rig.post(&path, &body).await.status, 200);
    }
    rig.gw.flush_usage().await;
    let ts = transcript_store(&rig.gw, &db_url).await;
    let ring = tollgate_server::keys::load_keyring(&tollgate_server::Settings::new(&rig.gw.data_dir))
        .unwrap_or_else(|e| panic!("{e}"));
    let metrics = tollgate_server::metrics::Metrics::default();
    let now = rig.gw.clock.now_ms();
    assert_eq!(
        tollgate_server::transcript::sweep(&ts, &ring, &metrics, 30, 0, now).await,
        0,
        "nothing is 30 days old yet"
    );
    rig.gw.clock.advance(15 * DAY);
    let now = rig.gw.clock.now_ms();
    assert_eq!(
        tollgate_server::transcript::sweep(&ts, &ring, &metrics, 30, 0, now).await,
        2,
        "the two from 35 days ago"
    );
    assert_eq!(ts.count().await.unwrap_or(-1), 3);
    // The cap: room for two of the three (same size each); the oldest goes.
    let total = ts.total_bytes().await.unwrap_or(0);
    let cap = u64::try_from(total * 2 / 3).unwrap_or(0);
    assert_eq!(tollgate_server::transcript::sweep(&ts, &ring, &metrics, 0, cap, now).await, 1);
    assert!(ts.total_bytes().await.unwrap_or(i64::MAX) <= total * 2 / 3);
    assert_eq!(metrics.transcripts_expired.load(std::sync::atomic::Ordering::Relaxed), 3);
    let left = requests(&rig.gw, "").await;
    assert_eq!(left.len(), 5, "the request log keeps every request");
    let recorded: Vec<bool> = left.iter().map(|r| r["input_recorded"] == true).collect();
    assert_eq!(recorded, vec![true, true, false, false, false], "the newest two keep their bodies");
    // The gateway counts what it captured.
    let m = rig.gw.client.get(rig.gw.url("/metrics")).send().await.unwrap_or_else(|e| panic!("{e}"));
    let m = m.text().await.unwrap_or_default();
    assert!(m.contains("tollgate_transcripts_captured_total 5"), "{m}");
    let stored: u64 = m
        .lines()
        .find_map(|l| l.strip_prefix("tollgate_transcripts_bytes_stored_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no bytes_stored counter: {m}"));
    assert!(stored > 0, "the sealed batches' bytes are counted: {m}");
    ts.close().await;
}

/// `secrets rotate-key` re-seals transcripts too: afterwards they open with the new key alone.
async fn rotation_reseals_transcripts(db: TestDb) {
    use tollgate_store::transcripts::{Direction, Entry, SealedBody, open_body, seal_batch, seal_body};
    use tollgate_store::{Keyring, MasterKey, TranscriptFlags, TranscriptRecord, TranscriptRef};
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let old = MasterKey::generate().unwrap_or_else(|e| panic!("{e}"));
    let new = MasterKey::generate().unwrap_or_else(|e| panic!("{e}"));
    let store =
        tollgate_store::Store::connect(db.url(), Keyring::new(old.clone())).await.unwrap_or_else(|e| panic!("{e}"));
    let ts_url = if db.is_postgres() {
        db.url().to_string()
    } else {
        format!("sqlite://{}/transcripts.sqlite?mode=rwc", dir.path().display())
    };
    let ts = tollgate_store::TranscriptStore::connect(&ts_url).await.unwrap_or_else(|e| panic!("{e}"));
    let ring = Keyring::new(old.clone());
    let plain = b"{\"prompt\": \"rotate me\"}";
    let sealed = seal_body(&ring, "ev-1", Direction::Input, plain).unwrap_or_else(|e| panic!("{e}"));
    let rec = TranscriptRecord {
        event_id: "ev-1".into(),
        ts_ms: 1,
        provider: "p".into(),
        key_id: old.key_id(),
        request_headers: "{}".into(),
        response_content_type: None,
        input: Some(SealedBody { sealed, bytes: plain.len() as i64, truncated: false }),
        output: None,
    };
    ts.insert_rows(&[rec]).await.unwrap_or_else(|e| panic!("{e}"));
    // And a batch, as the gateway writes them now.
    let entry = Entry {
        event_id: "ev-2".into(),
        ts_ms: 2,
        request_headers: "content-type: application/json\n".into(),
        input: Some(plain.to_vec()),
        ..Entry::default()
    };
    let batch = seal_batch(&ring, "b-1".into(), "p".into(), vec![entry]).unwrap_or_else(|e| panic!("{e}"));
    ts.insert_batches(&[batch]).await.unwrap_or_else(|e| panic!("{e}"));
    let reference = TranscriptRef { batch: "b-1".into(), flags: TranscriptFlags { input: true, ..Default::default() } };
    let mut settings = tollgate_server::Settings::new(dir.path());
    settings.master_key = Some(tollgate_server::Sensitive(old.to_base64()));
    let r = tollgate_server::keys::rotate(&settings, &store, &ts, Some(&new.to_base64()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.transcripts_resealed, 2, "the row and the batched transcript");
    let got = ts.get("ev-1").await.unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|| panic!("row"));
    assert_eq!(got.key_id, new.key_id());
    let body = got.input.unwrap_or_else(|| panic!("input"));
    let only_new = Keyring::new(new.clone());
    let opened = open_body(&only_new, "ev-1", Direction::Input, &body.sealed, plain.len());
    assert_eq!(opened.unwrap_or_else(|e| panic!("{e}")), plain.to_vec());
    assert!(open_body(&Keyring::new(old.clone()), "ev-1", Direction::Input, &body.sealed, plain.len()).is_err());
    // Bound to its row and direction: the output slot does not open it.
    assert!(open_body(&only_new, "ev-1", Direction::Output, &body.sealed, plain.len()).is_err());
    // The batch opens with the new key alone, and no longer with the old one.
    let batched = ts.open(&only_new, "ev-2", Some(&reference)).await.unwrap_or_else(|e| panic!("{e}"));
    let batched = batched.unwrap_or_else(|| panic!("batched transcript"));
    assert_eq!(batched.request_headers, vec![("content-type".to_string(), "application/json".to_string())]);
    assert_eq!(
        (batched.key_id.as_str(), batched.input.map(|b| b.bytes)),
        (new.key_id().as_str(), Some(plain.to_vec()))
    );
    assert!(ts.open(&Keyring::new(old), "ev-2", Some(&reference)).await.is_err());
    // The row too, through the same call (no reference: recorded before batching).
    let row = ts.open(&only_new, "ev-1", None).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(row.and_then(|t| t.input).map(|b| b.bytes), Some(plain.to_vec()));
    ts.close().await;
    store.close().await;
}

/// Batches at the store: the request log's flags come from the batch an event names and the
/// ids it still holds (an event naming a batch never stored is not recorded); a purge that
/// cuts through a batch re-seals it with the newer transcripts only; the size cap takes the
/// oldest batch whole when it fits in the excess.
async fn batches_are_cut_and_flagged_by_what_they_hold(db: TestDb) {
    use tollgate_store::transcripts::{Entry, seal_batch};
    use tollgate_store::{Keyring, MasterKey, TranscriptFlags, TranscriptRef};
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let url = if db.is_postgres() {
        db.url().to_string()
    } else {
        format!("sqlite://{}/transcripts.sqlite?mode=rwc", dir.path().display())
    };
    let ts = tollgate_store::TranscriptStore::connect(&url).await.unwrap_or_else(|e| panic!("{e}"));
    let ring = Keyring::new(MasterKey::generate().unwrap_or_else(|e| panic!("{e}")));
    let entry = |id: &str, ts_ms: i64| Entry {
        event_id: id.into(),
        ts_ms,
        request_headers: String::new(),
        input: Some(format!("prompt of {id}").into_bytes()),
        ..Entry::default()
    };
    let b1 = seal_batch(&ring, "b-1".into(), "p".into(), vec![entry("e1", 10), entry("e2", 20), entry("e3", 30)]);
    let b2 = seal_batch(&ring, "b-2".into(), "q".into(), vec![entry("e4", 5)]);
    let (b1, b2) = (b1.unwrap_or_else(|e| panic!("{e}")), b2.unwrap_or_else(|e| panic!("{e}")));
    ts.insert_batches(&[b1, b2.clone()]).await.unwrap_or_else(|e| panic!("{e}"));
    let flags = TranscriptFlags { input: true, ..Default::default() };
    let events: Vec<tollgate_store::UsageEvent> =
        [("e1", "b-1"), ("e2", "b-1"), ("e3", "b-1"), ("e4", "b-2"), ("e5", "b-9")]
            .iter()
            .enumerate()
            .map(|(i, (id, batch))| {
                let mut e = crate::faults::store_event(i);
                e.id = (*id).into();
                e.transcript = Some(TranscriptRef { batch: (*batch).into(), flags });
                e
            })
            .collect();
    let held = |events: &[tollgate_store::UsageEvent], m: &std::collections::HashMap<String, TranscriptFlags>| {
        events.iter().map(|e| m.contains_key(&e.id)).collect::<Vec<bool>>()
    };
    let m = ts.flags(&events).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(held(&events, &m), vec![true, true, true, true, false], "e5's batch was never stored");
    assert_eq!(m.get("e1"), Some(&flags));
    assert_eq!(ts.count().await.unwrap_or(-1), 4);

    // A purge of provider p before 25 cuts through b-1: e1 and e2 go, e3 stays; q is untouched.
    assert_eq!(ts.delete_before(&ring, Some("p"), 25, 1).await.unwrap_or_else(|e| panic!("{e}")), 2);
    let m = ts.flags(&events).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(held(&events, &m), vec![false, false, true, true, false]);
    let open = |id: &'static str, batch: &'static str| {
        let r = TranscriptRef { batch: batch.into(), flags };
        let (ts, ring) = (ts.clone(), ring.clone());
        async move { ts.open(&ring, id, Some(&r)).await.unwrap_or_else(|e| panic!("{e}")) }
    };
    assert!(open("e1", "b-1").await.is_none(), "purged");
    let e3 = open("e3", "b-1").await.unwrap_or_else(|| panic!("e3 kept"));
    assert_eq!(e3.input.map(|b| b.bytes), Some(b"prompt of e3".to_vec()));
    assert_eq!(ts.count().await.unwrap_or(-1), 2);

    // The cap: one byte over takes the oldest batch (b-2, from t=5) whole.
    let total = ts.total_bytes().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ts.shrink_to(&ring, total - 1, 10).await.unwrap_or_else(|e| panic!("{e}")), 1);
    assert!(open("e4", "b-2").await.is_none() && open("e3", "b-1").await.is_some());
    assert_eq!(ts.total_bytes().await.unwrap_or(-1), total - b2.stored_bytes);
    ts.close().await;
}

crate::both_backends!(
    retention_and_size_cap,
    rotation_reseals_transcripts,
    batches_are_cut_and_flagged_by_what_they_hold
);

/// The CLI: `requests list|get`, `conversations list|get`, `transcripts purge`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_requests_conversations_and_purge() {
    let rig = Rig::new(TestDb::sqlite().await, "openai", recording(true, true)).await;
    let (path, body) = generation("openai", false, "cli-marker");
    let r = send(rig.request(Method::POST, &path).header("x-tollgate-conversation", "cli-conv").json(&body)).await;
    assert_eq!(r.status, 200);
    let id = r.headers.get("x-tollgate-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    rig.gw.flush_usage().await;
    // The gateway runs on its own thread: the blocking binary runs do not stall it.
    let gw = &rig.gw;
    let list = crate::cli::tg(gw, &["requests", "list"]).ok().stdout;
    let got = crate::cli::tg(gw, &["requests", "get", &id]).ok().stdout;
    let json = crate::cli::tg(gw, &["-o", "json", "requests", "list", "--conversation", "cli-conv"]).ok().json();
    let convs = crate::cli::tg(gw, &["conversations", "list"]).ok().stdout;
    let conv = crate::cli::tg(gw, &["conversations", "get", "cli-conv"]).ok().stdout;
    let purge = crate::cli::tg(gw, &["transcripts", "purge", "--provider", "p-openai"]).ok().stdout;
    let after = crate::cli::tg(gw, &["requests", "get", &id]).ok().stdout;
    assert!(list.contains("p-openai") && list.contains("in,out"), "{list}");
    assert!(got.contains("cli-marker") && got.contains(TEXT), "{got}");
    assert_eq!(json["requests"].as_array().map(Vec::len), Some(1), "{json}");
    assert!(convs.contains("cli-conv"), "{convs}");
    assert!(conv.contains("cli-conv") && conv.contains("success"), "{conv}");
    let summary: Vec<&str> = conv.lines().nth(1).unwrap_or_default().split_whitespace().collect();
    assert_eq!(summary.get(3), Some(&"1"), "the TURNS column counts the turns: {conv}");
    assert!(purge.contains("purged 1 transcript(s)"), "{purge}");
    assert!(after.contains("input: not recorded"), "{after}");
    // `provider delete --purge-transcripts` purges what was recorded since
    let r = send(rig.request(Method::POST, &path).json(&body)).await;
    let id = r.headers.get("x-tollgate-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    rig.gw.flush_usage().await;
    assert!(crate::cli::tg(gw, &["requests", "get", &id]).ok().stdout.contains("cli-marker"));
    crate::cli::tg(gw, &["provider", "delete", "p-openai", "--purge-transcripts"]).ok();
    assert!(crate::cli::tg(gw, &["requests", "get", &id]).ok().stdout.contains("input: not recorded"));
}

/// The console: Requests (filters as chips, rows linking to the request), the request's Chat
/// and Detailed views, Transcripts (conversations) and a conversation's turns; a reader sees
/// no bodies; Cost & Usage links its failed requests, the provider detail its requests.
async fn console_pages(db: TestDb) {
    use crate::console::{Console, section};
    let rig = Rig::new(db, "anthropic", recording(true, true)).await;
    let mark = marker();
    let (path, body) = generation("anthropic", true, &mark);
    for _ in 0..2 {
        let r =
            send(rig.request(Method::POST, &path).header("x-tollgate-conversation", "console-conv").json(&body)).await;
        assert_eq!(r.status, 200);
    }
    rig.up.push(Reply::json(500, &json!({"type": "error", "error": {"type": "api_error", "message": "boom"}})));
    assert_eq!(rig.post(&path, &body).await.status, 500);
    rig.gw.flush_usage().await;
    let list = requests(&rig.gw, "").await;
    let ok_id = list[1]["id"].as_str().unwrap_or_default().to_string();

    let mut c = Console::new(&rig.gw);
    c.sign_in(&rig.gw.admin_token).await;
    let p = c.get("/requests").await;
    p.expect(200);
    assert_eq!(p.body.matches("data-request=").count(), 3, "{}", p.body);
    let row = section(&p.body, &format!(r#"data-request="{ok_id}""#), "</tr>");
    assert!(row.contains(&rig.name) && row.contains("success") && row.contains("input + output"), "{row}");
    let failed = c.get("/requests?status=failed").await;
    assert_eq!(failed.body.matches("data-request=").count(), 1);
    assert!(section(&failed.body, r#"id="chips""#, "</div>").contains("failed"), "the filter shows as a chip");

    let chat = c.get(&format!("/requests/{ok_id}")).await;
    chat.expect(200);
    let view = section(&chat.body, r#"id="chat-view""#, "</section>");
    assert!(view.contains(&mark) && view.contains(TEXT), "the prompt and the assembled answer: {view}");
    let detailed = c.get(&format!("/requests/{ok_id}?view=detailed")).await;
    let raw = section(&detailed.body, r#"id="detailed-view""#, "</section>");
    assert!(raw.contains("message_stop") && raw.contains(&mark), "{raw}");
    // The failed request's Chat view shows the upstream's error, not the prompt alone.
    let failed_id = list[0]["id"].as_str().unwrap_or_default().to_string();
    let chat = c.get(&format!("/requests/{failed_id}")).await;
    let view = section(&chat.body, r#"id="chat-view""#, "</section>");
    let error = section(view, r#"bubble-error"#, "</div>\n  </div>");
    assert!(error.contains("HTTP 500: boom"), "the recorded error: {view}");
    assert!(view.contains(&mark), "and the prompt: {view}");

    let t = c.get("/transcripts").await;
    t.expect(200);
    let conv = section(&t.body, r#"data-conversation="console-conv""#, "</tr>");
    assert!(conv.contains(">2<") && conv.contains("ok"), "{conv}");
    let turns = c.get("/transcripts/console-conv").await;
    turns.expect(200);
    assert_eq!(turns.body.matches("data-turn=").count(), 2);
    assert_eq!(turns.body.matches(TEXT).count(), 2, "each turn's answer");
    c.get("/transcripts/console-conv?view=detailed").await.expect(200);

    // Links in: Cost & Usage's failed requests, the provider's requests.
    let usage = c.get("/usage").await;
    let kpis = section(&usage.body, r#"id="headline""#, "</div>\n</div>");
    assert!(
        kpis.contains(r#"href="/requests?status=failed"#) && kpis.contains(r#"id="failed-requests-link""#),
        "{kpis}"
    );
    let detail = c.get(&format!("/providers/{}", rig.name)).await;
    assert!(detail.body.contains(&format!("/requests?provider={}", rig.name)));

    // A reader: the log, no bodies.
    let reader = rig.gw.token("reader").await.unwrap_or_else(|e| panic!("{e:#}"));
    let mut r = Console::new(&rig.gw);
    r.sign_in(&reader).await;
    let chat = r.get(&format!("/requests/{ok_id}")).await;
    chat.expect(200);
    assert!(chat.body.contains("Bodies withheld") && !chat.body.contains(&mark), "{}", chat.body);
    let turns = r.get("/transcripts/console-conv").await;
    assert!(!turns.body.contains(&mark));
}

crate::both_backends!(console_pages);
