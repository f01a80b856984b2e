//! Fake LLM upstreams: real HTTP servers on 127.0.0.1 that speak the API of one provider type
//! each ([`FakeUpstream::start`]: OpenAI and OpenAI-compatible, Anthropic, Gemini, AWS Bedrock,
//! Azure OpenAI with fixed deployments ([`azure_openai`]); streaming included) and record every
//! request they receive, so integration tests can point a provider's `base_url` at one and drive
//! the gateway through it. The Bedrock fake is a small fake AWS ([`bedrock`]): it verifies every
//! SigV4 signature independently ([`sigv4`]) and also serves the control plane, STS and the
//! metadata endpoints.
//!
//! Each [`FakeUpstream`] answers, in this order:
//! 1. the next queued [`Reply`] ([`FakeUpstream::push`]), whatever the path, credential or
//!    body — scripted replies bypass every built-in check. A [`Reply`] is a JSON or raw body,
//!    paced SSE, a script of [`Step`]s (chunks, waits on a timer or a `Notify`, a hang, an
//!    abort), a redirect, a head that never comes ([`Reply::stall_headers`]) or a recorded
//!    fixture case replayed ([`Reply::from_case`]);
//! 2. otherwise its built-in behaviour: the credential check (401 in the provider's own error
//!    JSON), then the endpoint, with realistic bodies and the FIXED usage numbers published in
//!    [`openai`], [`anthropic`] and [`google`], so tests can assert exact buckets.
//!
//! Every response body is streamed through a tracking wrapper: [`FakeUpstream::completed_bodies`]
//! counts bodies handed over in full, [`FakeUpstream::aborted_bodies`] those that ended early
//! (a scripted [`Step::Abort`], or the peer went away and the body was dropped).

use anyhow::{Context, bail};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use futures_util::Stream;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tollgate_core::ProviderType;

/// The text every built-in reply generates, split the way built-in streams send it (one part
/// per content event/chunk).
pub const TEXT_PARTS: [&str; 5] = ["Hello", " from", " the", " fake", " upstream."];
/// [`TEXT_PARTS`] joined: the text of every built-in non-streaming reply.
pub const TEXT: &str = "Hello from the fake upstream.";

/// One request as the fake upstream received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    /// The raw (not percent-decoded) path.
    pub path: String,
    /// The raw query string, without `?`.
    pub query: Option<String>,
    pub headers: HeaderMap,
    /// The full request body.
    pub body: Bytes,
    /// The client's address: which connection the request came on (the gateway's pooled
    /// upstream connections are told apart by it).
    pub peer: Option<SocketAddr>,
}

impl Received {
    /// The header's value (case-insensitive name); `None` when absent or not visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> anyhow::Result<Value> {
        serde_json::from_slice(&self.body)
            .with_context(|| format!("request body is not JSON: {}", String::from_utf8_lossy(&self.body)))
    }

    /// A query parameter, percent-decoded (`+` is not treated as a space).
    pub fn query_param(&self, name: &str) -> Option<String> {
        query_param(self.query.as_deref(), name)
    }
}

/// A scripted reply. Build one with the constructors; `headers` are sent as given (the
/// constructors add `content-type`).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: ReplyBody,
}

#[derive(Debug, Clone)]
pub enum ReplyBody {
    /// Sent whole, with a `content-length` (unless the headers set one).
    Full(Bytes),
    /// Played step by step after the head is sent (chunked encoding).
    Script(Vec<Step>),
    /// The response head itself is held back for `delay`, then `then` is served
    /// (see [`Reply::delayed`]).
    Delayed { delay: Duration, then: Box<ReplyBody> },
}

#[derive(Debug, Clone)]
pub enum Step {
    /// Write these bytes as one chunk.
    Send(Bytes),
    /// Wait this long.
    Sleep(Duration),
    /// Wait until the `Notify` is signalled. Use `notify_one()`: its permit is kept, so a signal
    /// sent before the body reaches this step is not lost (`notify_waiters()` would be).
    Wait(Arc<Notify>),
    /// Never finish the body.
    Hang,
    /// Drop the connection mid-body (counted as aborted).
    Abort,
}

impl Reply {
    /// A JSON body (`content-type: application/json`).
    pub fn json(status: u16, body: &Value) -> Reply {
        Reply::raw(status, "application/json", body.to_string())
    }

    /// Any body with the given content type, sent whole.
    pub fn raw(status: u16, content_type: &str, body: impl Into<Bytes>) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".to_string(), content_type.to_string())],
            body: ReplyBody::Full(body.into()),
        }
    }

    /// An SSE reply (`text/event-stream`): each element is one whole event's bytes, sent as its
    /// own chunk, with `pace` between events (not before the first nor after the last).
    pub fn sse(events: Vec<Bytes>, pace: Duration) -> Reply {
        Reply::script(200, "text/event-stream", paced(events, pace))
    }

    /// A streamed reply played from `steps`.
    pub fn script(status: u16, content_type: &str, steps: Vec<Step>) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".to_string(), content_type.to_string())],
            body: ReplyBody::Script(steps),
        }
    }

    /// A redirect to `location` with an empty body.
    pub fn redirect(status: u16, location: &str) -> Reply {
        Reply {
            status,
            headers: vec![("location".to_string(), location.to_string())],
            body: ReplyBody::Full(Bytes::new()),
        }
    }

    /// The head (`status`, `content-type: application/json`) is sent, then the body never starts
    /// (for read/idle-timeout tests). Change the content type with [`Reply::with_header`].
    pub fn stall_headers(status: u16) -> Reply {
        Reply::script(status, "application/json", vec![Step::Hang])
    }

    /// Holds the whole response, head included, back for `delay` (for response-head timeouts).
    pub fn delayed(self, delay: Duration) -> Reply {
        Reply { body: ReplyBody::Delayed { delay, then: Box::new(self.body) }, ..self }
    }

    /// Sets a header, replacing any header of the same name (case-insensitive).
    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// A reply from a recorded fixture case (`<name>.case.json`): its `status` (default 200),
    /// `content_type` and the bytes of its `response` file (same directory). A `.sse` response is
    /// split into one chunk per event ([`split_sse_events`], bytes kept exact) with `pace`
    /// between; anything else is sent whole.
    pub fn from_case(case_file: &Path, pace: Duration) -> anyhow::Result<Reply> {
        let text = std::fs::read_to_string(case_file).with_context(|| format!("reading {}", case_file.display()))?;
        let case: Value = serde_json::from_str(&text).with_context(|| format!("parsing {}", case_file.display()))?;
        let status = match case.get("status") {
            None => 200,
            Some(v) => v
                .as_u64()
                .and_then(|s| u16::try_from(s).ok())
                .with_context(|| format!("{}: bad status {v}", case_file.display()))?,
        };
        let response = case
            .get("response")
            .and_then(Value::as_str)
            .with_context(|| format!("{}: no \"response\" file name", case_file.display()))?;
        let is_sse = response.ends_with(".sse");
        let is_events = response.ends_with(".events.json");
        let content_type = match case.get("content_type").and_then(Value::as_str) {
            Some(ct) => ct.to_string(),
            None if is_sse => "text/event-stream".to_string(),
            None if is_events => "application/vnd.amazon.eventstream".to_string(),
            None => "application/json".to_string(),
        };
        let dir = case_file.parent().unwrap_or(Path::new("."));
        let path = dir.join(response);
        let mut reply = if is_sse {
            let bytes = crate::fixtures::body_bytes(&path)?;
            Reply::script(status, &content_type, paced(split_sse_events(&bytes), pace))
        } else if is_events {
            let raw = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            let frames = tollgate_protocol::fixture::event_stream_frames(&raw)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            Reply::script(status, &content_type, paced(frames.into_iter().map(Bytes::from).collect(), pace))
        } else {
            Reply::raw(status, &content_type, crate::fixtures::body_bytes(&path)?)
        };
        for pair in case.get("response_headers").and_then(Value::as_array).into_iter().flatten() {
            if let (Some(n), Some(v)) = (pair.get(0).and_then(Value::as_str), pair.get(1).and_then(Value::as_str)) {
                reply = reply.with_header(n, v);
            }
        }
        Ok(reply)
    }
}

/// The repo's fixture dir: `<workspace>/tests/fixtures` ([`crate::fixtures::root`]).
pub fn fixtures_dir() -> PathBuf {
    crate::fixtures::root()
}

/// Splits an SSE byte stream into events: a chunk ends after each blank line (`\n`, `\r\n` or
/// `\r`); trailing bytes without a blank line form the last chunk. Concatenating the chunks
/// gives back the input exactly.
pub fn split_sse_events(bytes: &[u8]) -> Vec<Bytes> {
    let mut events = Vec::new();
    let (mut start, mut line_start, mut i) = (0, 0, 0);
    while i < bytes.len() {
        let eol = match bytes[i] {
            b'\n' => 1,
            b'\r' if bytes.get(i + 1) == Some(&b'\n') => 2,
            b'\r' => 1,
            _ => {
                i += 1;
                continue;
            }
        };
        let blank = i == line_start;
        i += eol;
        line_start = i;
        if blank {
            events.push(Bytes::copy_from_slice(&bytes[start..i]));
            start = i;
        }
    }
    if start < bytes.len() {
        events.push(Bytes::copy_from_slice(&bytes[start..]));
    }
    events
}

/// `Send` steps for `chunks` with `Sleep(pace)` between them (none when `pace` is zero).
fn paced(chunks: Vec<Bytes>, pace: Duration) -> Vec<Step> {
    let mut steps = Vec::with_capacity(chunks.len() * 2);
    for (i, chunk) in chunks.into_iter().enumerate() {
        if i > 0 && !pace.is_zero() {
            steps.push(Step::Sleep(pace));
        }
        steps.push(Step::Send(chunk));
    }
    steps
}

/// A fake upstream on its own thread and runtime (so a test may block), listening on
/// 127.0.0.1 with a free port. Stopped on drop (open connections are cut).
#[derive(Debug)]
pub struct FakeUpstream {
    /// `http://127.0.0.1:<port>`
    pub base_url: String,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    /// The kind of upstream this fake is: the provider type whose API it speaks (OpenAI and
    /// OpenAI-compatible: everything under `/v1`, `Authorization: Bearer`; Anthropic:
    /// `/v1/messages`…, `x-api-key`, `anthropic-version` required; Google: the Gemini API,
    /// `x-goog-api-key` or `?key=`; Bedrock: runtime + control plane + STS + metadata, SigV4
    /// everywhere, see [`bedrock`]).
    provider_type: ProviderType,
    credential: Option<String>,
    queue: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<Received>>,
    pace: Mutex<Duration>,
    completed: AtomicUsize,
    aborted: AtomicUsize,
    aws: bedrock::AwsState,
}

/// Locks, ignoring poisoning (a panicking test thread must not hide what was recorded).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl FakeUpstream {
    /// Starts a fake upstream. `credential` is the API key it expects (OpenAI
    /// `Authorization: Bearer <k>`, Anthropic `x-api-key: <k>`, Google `x-goog-api-key: <k>` or
    /// `?key=<k>`); a wrong or missing one gets a 401 in the provider's error JSON. `None`
    /// accepts anything (like a local Ollama). Bedrock: `"ACCESS_KEY_ID:SECRET"` registers one
    /// static key pair (more with [`FakeUpstream::aws_add_key`]); signatures are always checked.
    pub async fn start(provider_type: ProviderType, credential: Option<&str>) -> anyhow::Result<FakeUpstream> {
        let shared = Arc::new(Shared {
            provider_type,
            credential: credential.map(str::to_string),
            queue: Mutex::new(VecDeque::new()),
            requests: Mutex::new(Vec::new()),
            pace: Mutex::new(Duration::ZERO),
            completed: AtomicUsize::new(0),
            aborted: AtomicUsize::new(0),
            aws: bedrock::AwsState::default(),
        });
        let app = Router::new().fallback(handle).with_state(Arc::clone(&shared));
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<anyhow::Result<SocketAddr>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new().name(format!("fake-upstream-{provider_type}")).spawn(move || {
            let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.into()));
                    return;
                }
            };
            rt.block_on(async move {
                let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.into()));
                        return;
                    }
                };
                match listener.local_addr() {
                    Ok(addr) => {
                        let _ = ready_tx.send(Ok(addr));
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.into()));
                        return;
                    }
                }
                tokio::select! {
                    _ = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()) => {}
                    _ = stop_rx => {}
                }
            });
            // Cuts open connections (hanging bodies included) instead of waiting for them.
            rt.shutdown_timeout(Duration::from_secs(1));
        })?;
        let addr = ready_rx.await.context("fake upstream thread died")??;
        let up =
            FakeUpstream { base_url: format!("http://{addr}"), shared, shutdown: Some(stop_tx), thread: Some(thread) };
        if provider_type == ProviderType::Bedrock
            && let Some((ak, sk)) = credential.and_then(|c| c.split_once(':'))
        {
            up.aws_add_key(ak, sk);
        }
        Ok(up)
    }

    /// The provider type whose API this fake speaks.
    pub fn provider_type(&self) -> ProviderType {
        self.shared.provider_type
    }

    /// What to configure as the provider's `base_url` (Azure OpenAI: `endpoint`): OpenAI `<base_url>/v1`, others `<base_url>`.
    pub fn provider_base_url(&self) -> String {
        match self.shared.provider_type {
            ProviderType::Openai | ProviderType::OpenaiCompatible => format!("{}/v1", self.base_url),
            ProviderType::Anthropic | ProviderType::Google | ProviderType::Bedrock | ProviderType::AzureOpenai => {
                self.base_url.clone()
            }
        }
    }

    /// `base_url` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Queues a scripted reply; queued replies are served FIFO, to any path, before the
    /// built-in behaviour (no credential or header checks for them).
    pub fn push(&self, reply: Reply) {
        lock(&self.shared.queue).push_back(reply);
    }

    /// How many pushed replies are still queued.
    pub fn queued(&self) -> usize {
        lock(&self.shared.queue).len()
    }

    /// The pause between chunks of built-in streams (default zero). Read when a request arrives.
    pub fn set_pace(&self, pace: Duration) {
        *lock(&self.shared.pace) = pace;
    }

    /// Everything received so far, in arrival order.
    pub fn requests(&self) -> Vec<Received> {
        lock(&self.shared.requests).clone()
    }

    /// The last request received.
    pub fn last_request(&self) -> Option<Received> {
        lock(&self.shared.requests).last().cloned()
    }

    /// Waits (polling, up to `timeout`) until at least `n` requests were received; returns all.
    pub async fn wait_requests(&self, n: usize, timeout: Duration) -> anyhow::Result<Vec<Received>> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.requests();
            if got.len() >= n {
                return Ok(got);
            }
            if Instant::now() >= deadline {
                bail!("fake upstream: expected {n} request(s) within {timeout:?}, got {}", got.len());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Response bodies (of every reply, built-in or scripted) handed over in full.
    pub fn completed_bodies(&self) -> usize {
        self.shared.completed.load(Ordering::SeqCst)
    }

    /// Response bodies that ended early: a [`Step::Abort`], or the peer went away.
    pub fn aborted_bodies(&self) -> usize {
        self.shared.aborted.load(Ordering::SeqCst)
    }

    /// Waits (polling, up to `timeout`) until `completed + aborted >= n`; returns
    /// `(completed, aborted)`. Useful because the counters move on the server's thread.
    pub async fn wait_bodies(&self, n: usize, timeout: Duration) -> anyhow::Result<(usize, usize)> {
        let deadline = Instant::now() + timeout;
        loop {
            let (c, a) = (self.completed_bodies(), self.aborted_bodies());
            if c + a >= n {
                return Ok((c, a));
            }
            if Instant::now() >= deadline {
                bail!(
                    "fake upstream: expected {n} finished bodies within {timeout:?}, got {c} completed + {a} aborted"
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Serving

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => {
            let mut resp = Response::new(Body::from(format!("could not read request body: {e}")));
            *resp.status_mut() = StatusCode::BAD_REQUEST;
            return resp;
        }
    };
    let received = Received {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        peer: parts.extensions.get::<axum::extract::ConnectInfo<SocketAddr>>().map(|c| c.0),
        headers: parts.headers,
        body,
    };
    if shared.provider_type == ProviderType::Bedrock
        && let Some(reply) = bedrock::side_service(&shared, &received)
    {
        return respond(reply, shared).await;
    }
    lock(&shared.requests).push(received.clone());
    if shared.provider_type == ProviderType::Bedrock
        && let Err(reply) = bedrock::check_signature(&shared, &received)
    {
        return respond(reply, shared).await;
    }
    let queued = lock(&shared.queue).pop_front();
    let reply = match queued {
        Some(reply) => reply,
        None => {
            let pace = *lock(&shared.pace);
            match shared.provider_type {
                ProviderType::Openai | ProviderType::OpenaiCompatible => {
                    openai::serve(&received, shared.credential.as_deref(), pace)
                }
                ProviderType::Anthropic => anthropic::serve(&received, shared.credential.as_deref(), pace),
                ProviderType::Google => google::serve(&received, shared.credential.as_deref(), pace),
                ProviderType::Bedrock => bedrock::serve(&shared, &received, pace),
                ProviderType::AzureOpenai => azure_openai::serve(&received, shared.credential.as_deref(), pace),
            }
        }
    };
    respond(reply, shared).await
}

async fn respond(reply: Reply, shared: Arc<Shared>) -> Response {
    let mut body = reply.body;
    while let ReplyBody::Delayed { delay, then } = body {
        tokio::time::sleep(delay).await;
        body = *then;
    }
    let mut headers = HeaderMap::new();
    for (name, value) in &reply.headers {
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name.as_str()), HeaderValue::try_from(value.as_str())) {
            headers.append(n, v);
        }
    }
    let steps = match body {
        ReplyBody::Full(bytes) => {
            if !headers.contains_key(http::header::CONTENT_LENGTH) {
                headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
            }
            if bytes.is_empty() { VecDeque::new() } else { VecDeque::from([Step::Send(bytes)]) }
        }
        ReplyBody::Script(steps) => VecDeque::from(steps),
        ReplyBody::Delayed { .. } => VecDeque::new(), // unreachable: unwrapped above
    };
    let mut guard = BodyGuard { shared, state: BodyState::Running };
    if steps.is_empty() {
        // Nothing to send (hyper may not even poll an empty, length-delimited body).
        guard.finish(BodyState::Completed);
    }
    let mut resp = Response::new(Body::from_stream(body_stream(steps, guard)));
    *resp.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    *resp.headers_mut() = headers;
    resp
}

#[derive(Debug, PartialEq, Eq)]
enum BodyState {
    Running,
    Completed,
    Aborted,
}

/// Counts its body as completed or aborted exactly once; dropped while running = aborted.
struct BodyGuard {
    shared: Arc<Shared>,
    state: BodyState,
}

impl BodyGuard {
    fn finish(&mut self, state: BodyState) {
        if self.state == BodyState::Running {
            let counter = if state == BodyState::Completed { &self.shared.completed } else { &self.shared.aborted };
            counter.fetch_add(1, Ordering::SeqCst);
            self.state = state;
        }
    }
}

impl Drop for BodyGuard {
    fn drop(&mut self) {
        self.finish(BodyState::Aborted);
    }
}

struct BodyRun {
    steps: VecDeque<Step>,
    guard: BodyGuard,
}

fn body_stream(steps: VecDeque<Step>, guard: BodyGuard) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
    futures_util::stream::unfold(Some(BodyRun { steps, guard }), |run| async move {
        let mut run = run?;
        loop {
            match run.steps.pop_front() {
                None => {
                    run.guard.finish(BodyState::Completed);
                    return None;
                }
                Some(Step::Send(bytes)) => {
                    // The last chunk handed over completes the body: with a content-length,
                    // hyper may never poll for the end of the stream.
                    if run.steps.is_empty() {
                        run.guard.finish(BodyState::Completed);
                    }
                    return Some((Ok(bytes), Some(run)));
                }
                Some(Step::Sleep(d)) => tokio::time::sleep(d).await,
                Some(Step::Wait(notify)) => notify.notified().await,
                Some(Step::Hang) => std::future::pending::<()>().await,
                Some(Step::Abort) => {
                    // Let hyper flush the head and the chunks so far first: the peer must see
                    // the body start and then break, not a connection that never answered.
                    tokio::task::yield_now().await;
                    run.guard.finish(BodyState::Aborted);
                    let err = std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "scripted abort");
                    return Some((Err(err), None));
                }
            }
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Helpers shared by the provider types

/// A query parameter, percent-decoded.
fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = percent_encoding::percent_decode_str(k).decode_utf8_lossy();
        (k == name).then(|| percent_encoding::percent_decode_str(v).decode_utf8_lossy().into_owned())
    })
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

fn sse_data(v: &Value) -> Bytes {
    Bytes::from(format!("data: {v}\n\n"))
}

fn sse_event(name: &str, v: &Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {v}\n\n"))
}

/// The request body as a JSON object, or `None` when it is not one.
fn json_object(req: &Received) -> Option<Value> {
    serde_json::from_slice::<Value>(&req.body).ok().filter(Value::is_object)
}

/// A fixed `created` timestamp (unix seconds) used by every built-in OpenAI body.
pub const CREATED: i64 = 1_750_000_000;

// ---------------------------------------------------------------------------------------------

pub mod openai {
    //! The OpenAI (and OpenAI-compatible) fake: endpoints, bodies and their fixed usage numbers.
    //!
    //! - `POST /v1/chat/completions`: [`chat_completion`]; with `"stream": true`, [`chat_stream`]
    //!   (the usage-only chunk and the `"usage": null` fields only when
    //!   `stream_options.include_usage` is true, as the real API does).
    //! - `POST /v1/completions`: [`completion`] / [`completion_stream`], same stream rules.
    //! - `POST /v1/responses`: [`response`] / [`response_stream`] (`event:` lines, no `[DONE]`).
    //! - `POST /v1/embeddings`: [`embeddings`]. `GET /v1/models` (+ `/v1/models/{id}`): [`models`].
    //! - Unknown path 404, invalid JSON 400, missing `model` 400 — all `{"error":{…}}`.
    //!
    //! Every reply echoes the request's `model`.

    use super::*;

    /// Chat: `usage.prompt_tokens` (includes the cached ones).
    pub const CHAT_PROMPT_TOKENS: u64 = 57;
    /// Chat: `usage.prompt_tokens_details.cached_tokens`.
    pub const CHAT_CACHED_TOKENS: u64 = 12;
    /// Chat: `usage.completion_tokens` (includes the reasoning ones).
    pub const CHAT_COMPLETION_TOKENS: u64 = 17;
    /// Chat: `usage.completion_tokens_details.reasoning_tokens`.
    pub const CHAT_REASONING_TOKENS: u64 = 5;
    /// Chat: `usage.total_tokens` = prompt + completion.
    pub const CHAT_TOTAL_TOKENS: u64 = CHAT_PROMPT_TOKENS + CHAT_COMPLETION_TOKENS;

    /// Legacy completions: `usage.prompt_tokens`.
    pub const COMPLETIONS_PROMPT_TOKENS: u64 = 23;
    /// Legacy completions: `usage.completion_tokens`.
    pub const COMPLETIONS_COMPLETION_TOKENS: u64 = 9;
    /// Legacy completions: `usage.total_tokens`.
    pub const COMPLETIONS_TOTAL_TOKENS: u64 = COMPLETIONS_PROMPT_TOKENS + COMPLETIONS_COMPLETION_TOKENS;

    /// Responses: `usage.input_tokens` (includes the cached ones).
    pub const RESPONSES_INPUT_TOKENS: u64 = 41;
    /// Responses: `usage.input_tokens_details.cached_tokens`.
    pub const RESPONSES_CACHED_TOKENS: u64 = 8;
    /// Responses: `usage.output_tokens` (includes the reasoning ones).
    pub const RESPONSES_OUTPUT_TOKENS: u64 = 13;
    /// Responses: `usage.output_tokens_details.reasoning_tokens`.
    pub const RESPONSES_REASONING_TOKENS: u64 = 4;
    /// Responses: `usage.total_tokens`.
    pub const RESPONSES_TOTAL_TOKENS: u64 = RESPONSES_INPUT_TOKENS + RESPONSES_OUTPUT_TOKENS;

    /// Embeddings: `usage.prompt_tokens` and `usage.total_tokens` (whatever the input).
    pub const EMBEDDINGS_PROMPT_TOKENS: u64 = 8;
    /// The vector returned for every embedding input.
    pub const EMBEDDING: [f64; 4] = [0.0125, -0.25, 0.5, 0.75];

    /// The ids `GET /v1/models` lists.
    pub const MODELS: [&str; 4] = ["gpt-4o", "gpt-4o-mini", "o3-mini", "text-embedding-3-small"];

    pub fn chat_usage() -> Value {
        json!({
            "prompt_tokens": CHAT_PROMPT_TOKENS,
            "completion_tokens": CHAT_COMPLETION_TOKENS,
            "total_tokens": CHAT_TOTAL_TOKENS,
            "prompt_tokens_details": {"cached_tokens": CHAT_CACHED_TOKENS, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": CHAT_REASONING_TOKENS,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0
            }
        })
    }

    /// The non-streaming `chat.completion` body.
    pub fn chat_completion(model: &str) -> Value {
        json!({
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": CREATED,
            "model": model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": TEXT, "refusal": null, "annotations": []},
                "logprobs": null,
                "finish_reason": "stop"
            }],
            "usage": chat_usage(),
            "service_tier": "default",
            "system_fingerprint": "fp_fake"
        })
    }

    fn chat_chunk(model: &str, delta: Value, finish: Value, include_usage: bool) -> Value {
        let mut chunk = json!({
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": model,
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]
        });
        if include_usage {
            chunk["usage"] = Value::Null;
        }
        chunk
    }

    /// The SSE events of a streamed chat completion: a role chunk, one chunk per
    /// [`TEXT_PARTS`], a finish chunk, then (only with `include_usage`) a `"choices": []` chunk
    /// with [`chat_usage`] — every other chunk then carrying `"usage": null` — and `data: [DONE]`.
    pub fn chat_stream(model: &str, include_usage: bool) -> Vec<Bytes> {
        let mut events = vec![sse_data(&chat_chunk(
            model,
            json!({"role": "assistant", "content": "", "refusal": null}),
            Value::Null,
            include_usage,
        ))];
        for part in TEXT_PARTS {
            events.push(sse_data(&chat_chunk(model, json!({"content": part}), Value::Null, include_usage)));
        }
        events.push(sse_data(&chat_chunk(model, json!({}), json!("stop"), include_usage)));
        if include_usage {
            events.push(sse_data(&json!({
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": CREATED,
                "model": model,
                "service_tier": "default",
                "system_fingerprint": "fp_fake",
                "choices": [],
                "usage": chat_usage()
            })));
        }
        events.push(Bytes::from_static(b"data: [DONE]\n\n"));
        events
    }

    pub fn completion_usage() -> Value {
        json!({
            "prompt_tokens": COMPLETIONS_PROMPT_TOKENS,
            "completion_tokens": COMPLETIONS_COMPLETION_TOKENS,
            "total_tokens": COMPLETIONS_TOTAL_TOKENS
        })
    }

    /// The non-streaming legacy `text_completion` body.
    pub fn completion(model: &str) -> Value {
        json!({
            "id": "cmpl-fake",
            "object": "text_completion",
            "created": CREATED,
            "model": model,
            "choices": [{"text": TEXT, "index": 0, "logprobs": null, "finish_reason": "stop"}],
            "usage": completion_usage()
        })
    }

    fn completion_chunk(model: &str, text: &str, finish: Value, include_usage: bool) -> Value {
        let mut chunk = json!({
            "id": "cmpl-fake",
            "object": "text_completion",
            "created": CREATED,
            "model": model,
            "choices": [{"text": text, "index": 0, "logprobs": null, "finish_reason": finish}]
        });
        if include_usage {
            chunk["usage"] = Value::Null;
        }
        chunk
    }

    /// The SSE events of a streamed legacy completion: one chunk per [`TEXT_PARTS`], a finish
    /// chunk, the usage chunk (only with `include_usage`), `data: [DONE]`.
    pub fn completion_stream(model: &str, include_usage: bool) -> Vec<Bytes> {
        let mut events: Vec<Bytes> = TEXT_PARTS
            .iter()
            .map(|part| sse_data(&completion_chunk(model, part, Value::Null, include_usage)))
            .collect();
        events.push(sse_data(&completion_chunk(model, "", json!("stop"), include_usage)));
        if include_usage {
            events.push(sse_data(&json!({
                "id": "cmpl-fake",
                "object": "text_completion",
                "created": CREATED,
                "model": model,
                "choices": [],
                "usage": completion_usage()
            })));
        }
        events.push(Bytes::from_static(b"data: [DONE]\n\n"));
        events
    }

    pub fn responses_usage() -> Value {
        json!({
            "input_tokens": RESPONSES_INPUT_TOKENS,
            "input_tokens_details": {"cached_tokens": RESPONSES_CACHED_TOKENS},
            "output_tokens": RESPONSES_OUTPUT_TOKENS,
            "output_tokens_details": {"reasoning_tokens": RESPONSES_REASONING_TOKENS},
            "total_tokens": RESPONSES_TOTAL_TOKENS
        })
    }

    fn output_message(status: &str, text: Option<&str>) -> Value {
        let content = match text {
            Some(t) => json!([{"type": "output_text", "text": t, "annotations": [], "logprobs": []}]),
            None => json!([]),
        };
        json!({"id": "msg_fake", "type": "message", "status": status, "role": "assistant", "content": content})
    }

    fn response_object(model: &str, status: &str, output: Value, usage: Value) -> Value {
        json!({
            "id": "resp_fake",
            "object": "response",
            "created_at": CREATED,
            "status": status,
            "error": null,
            "incomplete_details": null,
            "instructions": null,
            "max_output_tokens": null,
            "model": model,
            "output": output,
            "parallel_tool_calls": true,
            "previous_response_id": null,
            "reasoning": {"effort": null, "summary": null},
            "store": true,
            "temperature": 1.0,
            "text": {"format": {"type": "text"}},
            "tool_choice": "auto",
            "tools": [],
            "top_p": 1.0,
            "truncation": "disabled",
            "usage": usage,
            "user": null,
            "metadata": {}
        })
    }

    /// The non-streaming Responses API `response` object.
    pub fn response(model: &str) -> Value {
        response_object(model, "completed", json!([output_message("completed", Some(TEXT))]), responses_usage())
    }

    /// The SSE events of a streamed Responses API call, each with its `event:` line and a
    /// `sequence_number`: `response.created`, `response.in_progress`,
    /// `response.output_item.added`, `response.content_part.added`, `response.output_text.delta`
    /// per [`TEXT_PARTS`], `response.output_text.done`, `response.content_part.done`,
    /// `response.output_item.done`, `response.completed` (with [`responses_usage`]). No `[DONE]`.
    pub fn response_stream(model: &str) -> Vec<Bytes> {
        let mut seq = 0u64;
        let mut events = Vec::new();
        let mut push = |name: &str, mut v: Value| {
            v["type"] = json!(name);
            v["sequence_number"] = json!(seq);
            seq += 1;
            events.push(sse_event(name, &v));
        };
        let in_progress = response_object(model, "in_progress", json!([]), Value::Null);
        push("response.created", json!({"response": in_progress.clone()}));
        push("response.in_progress", json!({"response": in_progress}));
        push("response.output_item.added", json!({"output_index": 0, "item": output_message("in_progress", None)}));
        let ids = json!({"item_id": "msg_fake", "output_index": 0, "content_index": 0});
        let part = |text: &str| json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []});
        let with_ids = |extra: Value| {
            let mut v = ids.clone();
            if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
                o.extend(e.clone());
            }
            v
        };
        push("response.content_part.added", with_ids(json!({"part": part("")})));
        for delta in TEXT_PARTS {
            push("response.output_text.delta", with_ids(json!({"delta": delta, "logprobs": []})));
        }
        push("response.output_text.done", with_ids(json!({"text": TEXT, "logprobs": []})));
        push("response.content_part.done", with_ids(json!({"part": part(TEXT)})));
        push("response.output_item.done", json!({"output_index": 0, "item": output_message("completed", Some(TEXT))}));
        push("response.completed", json!({"response": response(model)}));
        events
    }

    /// The embeddings list: one [`EMBEDDING`] per input (a string or an array of inputs).
    pub fn embeddings(model: &str, inputs: usize) -> Value {
        let data: Vec<Value> =
            (0..inputs).map(|i| json!({"object": "embedding", "index": i, "embedding": EMBEDDING})).collect();
        json!({
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": EMBEDDINGS_PROMPT_TOKENS, "total_tokens": EMBEDDINGS_PROMPT_TOKENS}
        })
    }

    fn model_object(id: &str) -> Value {
        json!({"id": id, "object": "model", "created": CREATED, "owned_by": "system"})
    }

    /// The `GET /v1/models` list of [`MODELS`].
    pub fn models() -> Value {
        json!({"object": "list", "data": MODELS.iter().map(|m| model_object(m)).collect::<Vec<_>>()})
    }

    /// The OpenAI error body.
    pub fn error(message: &str, kind: &str, code: Option<&str>) -> Value {
        json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
    }

    fn reply(status: u16, body: &Value) -> Reply {
        Reply::raw(status, "application/json", pretty(body)).with_header("x-request-id", "req_fake")
    }

    fn stream(events: Vec<Bytes>, pace: Duration) -> Reply {
        Reply::script(200, "text/event-stream; charset=utf-8", paced(events, pace))
            .with_header("x-request-id", "req_fake")
    }

    pub(super) fn serve(req: &Received, credential: Option<&str>, pace: Duration) -> Reply {
        if let Some(expected) = credential {
            match req.header("authorization").and_then(|h| h.strip_prefix("Bearer ")) {
                Some(k) if k == expected => {}
                None => {
                    let msg = "You didn't provide an API key. You need to provide your API key in an Authorization \
                               header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).";
                    return reply(401, &error(msg, "invalid_request_error", None));
                }
                Some(_) => {
                    let msg = "Incorrect API key provided. You can find your API key at \
                               https://platform.openai.com/account/api-keys.";
                    return reply(401, &error(msg, "invalid_request_error", Some("invalid_api_key")));
                }
            }
        }
        let path = req.path.as_str();
        match (req.method.as_str(), path) {
            ("GET", "/v1/models") => return reply(200, &models()),
            ("GET", p) if p.starts_with("/v1/models/") => {
                let id = p.trim_start_matches("/v1/models/");
                if MODELS.contains(&id) {
                    return reply(200, &model_object(id));
                }
                let msg = format!("The model '{id}' does not exist");
                return reply(404, &error(&msg, "invalid_request_error", Some("model_not_found")));
            }
            ("POST", "/v1/chat/completions" | "/v1/completions" | "/v1/responses" | "/v1/embeddings") => {}
            (method, _) => {
                let msg = format!("Invalid URL ({method} {path})");
                return reply(404, &error(&msg, "invalid_request_error", None));
            }
        }
        let Some(body) = json_object(req) else {
            let msg = "We could not parse the JSON body of your request. (HINT: This likely means you aren't using \
                       your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not \
                       valid JSON.)";
            return reply(400, &error(msg, "invalid_request_error", None));
        };
        let Some(model) = body.get("model").and_then(Value::as_str) else {
            return reply(400, &error("you must provide a model parameter", "invalid_request_error", None));
        };
        let streaming = body.get("stream").and_then(Value::as_bool) == Some(true);
        let include_usage = body.pointer("/stream_options/include_usage").and_then(Value::as_bool) == Some(true);
        match (path, streaming) {
            ("/v1/chat/completions", false) => reply(200, &chat_completion(model)),
            ("/v1/chat/completions", true) => stream(chat_stream(model, include_usage), pace),
            ("/v1/completions", false) => reply(200, &completion(model)),
            ("/v1/completions", true) => stream(completion_stream(model, include_usage), pace),
            ("/v1/responses", false) => reply(200, &response(model)),
            ("/v1/responses", true) => stream(response_stream(model), pace),
            _ => {
                let inputs = body.get("input").and_then(Value::as_array).map_or(1, Vec::len);
                reply(200, &embeddings(model, inputs))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------

pub mod anthropic {
    //! The Anthropic fake: endpoints, bodies and their fixed usage numbers.
    //!
    //! Every request needs `anthropic-version` (else 400 `invalid_request_error`), checked after
    //! the credential.
    //! - `POST /v1/messages`: [`message`]; with `"stream": true`, [`message_stream`].
    //! - `POST /v1/messages/count_tokens`: `{"input_tokens": COUNT_TOKENS_INPUT_TOKENS}`.
    //! - `GET /v1/models` (+ `/v1/models/{id}`): [`models`].
    //! - Unknown path 404 `not_found_error`, invalid JSON 400 — all `{"type":"error","error":{…}}`.

    use super::*;

    /// `usage.input_tokens` (excludes the cache buckets, as in the real API).
    pub const INPUT_TOKENS: u64 = 31;
    /// `usage.cache_creation_input_tokens` = 5-minute + 1-hour writes.
    pub const CACHE_CREATION_INPUT_TOKENS: u64 = EPHEMERAL_5M_INPUT_TOKENS + EPHEMERAL_1H_INPUT_TOKENS;
    /// `usage.cache_creation.ephemeral_5m_input_tokens`.
    pub const EPHEMERAL_5M_INPUT_TOKENS: u64 = 4;
    /// `usage.cache_creation.ephemeral_1h_input_tokens`.
    pub const EPHEMERAL_1H_INPUT_TOKENS: u64 = 3;
    /// `usage.cache_read_input_tokens`.
    pub const CACHE_READ_INPUT_TOKENS: u64 = 11;
    /// `usage.output_tokens` (non-stream, and the cumulative value in the stream's `message_delta`).
    pub const OUTPUT_TOKENS: u64 = 15;
    /// `usage.output_tokens` in the stream's `message_start`.
    pub const STREAM_START_OUTPUT_TOKENS: u64 = 1;
    /// `count_tokens` answer.
    pub const COUNT_TOKENS_INPUT_TOKENS: u64 = 33;

    /// `(id, display_name, created_at)` of the models `GET /v1/models` lists.
    pub const MODELS: [(&str, &str, &str); 3] = [
        ("claude-sonnet-4-5-20250929", "Claude Sonnet 4.5", "2025-09-29T00:00:00Z"),
        ("claude-opus-4-1-20250805", "Claude Opus 4.1", "2025-08-05T00:00:00Z"),
        ("claude-3-5-haiku-20241022", "Claude Haiku 3.5", "2024-10-22T00:00:00Z"),
    ];

    /// The full usage object, with `output_tokens` as given.
    pub fn usage(output_tokens: u64) -> Value {
        json!({
            "input_tokens": INPUT_TOKENS,
            "cache_creation_input_tokens": CACHE_CREATION_INPUT_TOKENS,
            "cache_read_input_tokens": CACHE_READ_INPUT_TOKENS,
            "cache_creation": {
                "ephemeral_5m_input_tokens": EPHEMERAL_5M_INPUT_TOKENS,
                "ephemeral_1h_input_tokens": EPHEMERAL_1H_INPUT_TOKENS
            },
            "output_tokens": output_tokens,
            "service_tier": "standard"
        })
    }

    /// The non-streaming `message` body.
    pub fn message(model: &str) -> Value {
        json!({
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": TEXT}],
            "stop_reason": "end_turn",
            "stop_sequence": null,
            "usage": usage(OUTPUT_TOKENS)
        })
    }

    /// The SSE events of a streamed message: `message_start` (full [`usage`] with
    /// [`STREAM_START_OUTPUT_TOKENS`]), `content_block_start`, `ping`, one `content_block_delta`
    /// per [`TEXT_PARTS`], `content_block_stop`, `message_delta` (cumulative usage: the same
    /// input/cache numbers again and `output_tokens` = [`OUTPUT_TOKENS`], as the current API
    /// sends — a meter must merge, not add), `message_stop`.
    pub fn message_stream(model: &str) -> Vec<Bytes> {
        let mut start = message(model);
        start["content"] = json!([]);
        start["stop_reason"] = Value::Null;
        start["usage"] = usage(STREAM_START_OUTPUT_TOKENS);
        let mut events = vec![
            sse_event("message_start", &json!({"type": "message_start", "message": start})),
            sse_event(
                "content_block_start",
                &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ),
            sse_event("ping", &json!({"type": "ping"})),
        ];
        for part in TEXT_PARTS {
            events.push(sse_event(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": part}}),
            ));
        }
        events.push(sse_event("content_block_stop", &json!({"type": "content_block_stop", "index": 0})));
        events.push(sse_event(
            "message_delta",
            &json!({
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                "usage": {
                    "input_tokens": INPUT_TOKENS,
                    "cache_creation_input_tokens": CACHE_CREATION_INPUT_TOKENS,
                    "cache_read_input_tokens": CACHE_READ_INPUT_TOKENS,
                    "output_tokens": OUTPUT_TOKENS
                }
            }),
        ));
        events.push(sse_event("message_stop", &json!({"type": "message_stop"})));
        events
    }

    fn model_object((id, display_name, created_at): (&str, &str, &str)) -> Value {
        json!({"type": "model", "id": id, "display_name": display_name, "created_at": created_at})
    }

    /// The `GET /v1/models` page of [`MODELS`].
    pub fn models() -> Value {
        json!({
            "data": MODELS.iter().map(|m| model_object(*m)).collect::<Vec<_>>(),
            "has_more": false,
            "first_id": MODELS[0].0,
            "last_id": MODELS[MODELS.len() - 1].0
        })
    }

    /// The Anthropic error body.
    pub fn error(kind: &str, message: &str) -> Value {
        json!({"type": "error", "error": {"type": kind, "message": message}})
    }

    fn reply(status: u16, body: &Value) -> Reply {
        Reply::json(status, body).with_header("request-id", "req_fake")
    }

    pub(super) fn serve(req: &Received, credential: Option<&str>, pace: Duration) -> Reply {
        if let Some(expected) = credential {
            match req.header("x-api-key") {
                Some(k) if k == expected => {}
                None => return reply(401, &error("authentication_error", "x-api-key header is required")),
                Some(_) => return reply(401, &error("authentication_error", "invalid x-api-key")),
            }
        }
        if req.header("anthropic-version").is_none() {
            return reply(400, &error("invalid_request_error", "anthropic-version: header is required"));
        }
        let path = req.path.as_str();
        match (req.method.as_str(), path) {
            ("GET", "/v1/models") => return reply(200, &models()),
            ("GET", p) if p.starts_with("/v1/models/") => {
                let id = p.trim_start_matches("/v1/models/");
                return match MODELS.iter().find(|m| m.0 == id) {
                    Some(m) => reply(200, &model_object(*m)),
                    None => reply(404, &error("not_found_error", &format!("model: {id}"))),
                };
            }
            ("POST", "/v1/messages" | "/v1/messages/count_tokens") => {}
            _ => return reply(404, &error("not_found_error", "Not Found")),
        }
        let Some(body) = json_object(req) else {
            return reply(400, &error("invalid_request_error", "There was an error parsing the body of your request"));
        };
        let Some(model) = body.get("model").and_then(Value::as_str) else {
            return reply(400, &error("invalid_request_error", "model: Field required"));
        };
        if path == "/v1/messages/count_tokens" {
            return reply(200, &json!({"input_tokens": COUNT_TOKENS_INPUT_TOKENS}));
        }
        if body.get("stream").and_then(Value::as_bool) == Some(true) {
            Reply::script(200, "text/event-stream; charset=utf-8", paced(message_stream(model), pace))
                .with_header("request-id", "req_fake")
        } else {
            reply(200, &message(model))
        }
    }
}

// ---------------------------------------------------------------------------------------------

pub mod google {
    //! The Google (Gemini API) fake: endpoints, bodies and their fixed usage numbers.
    //!
    //! Paths under `/v1beta` or `/v1` (the model is taken from the path, percent-decoded):
    //! - `POST /…/models/{model}:generateContent`: [`generate_content`].
    //! - `POST /…/models/{model}:streamGenerateContent?alt=sse`: [`stream_sse`] (`data: …\r\n\r\n`);
    //!   without `alt=sse`: [`stream_json_array`] (`application/json`, a JSON array sent element
    //!   by element).
    //! - `:countTokens` → `{"totalTokens": COUNT_TOKENS_TOTAL}`; `:embedContent` →
    //!   `{"embedding": {"values": EMBEDDING}}`.
    //! - `GET /…/models` (+ `/…/models/{model}`): [`models`].
    //! - Otherwise 404 `NOT_FOUND`; invalid JSON 400 `INVALID_ARGUMENT` — all `{"error":{…}}`.

    use super::*;

    /// `usageMetadata.promptTokenCount` (includes the cached ones).
    pub const PROMPT_TOKEN_COUNT: u64 = 27;
    /// `usageMetadata.cachedContentTokenCount`.
    pub const CACHED_CONTENT_TOKEN_COUNT: u64 = 9;
    /// `usageMetadata.candidatesTokenCount` (excludes the thoughts).
    pub const CANDIDATES_TOKEN_COUNT: u64 = 14;
    /// `usageMetadata.thoughtsTokenCount`.
    pub const THOUGHTS_TOKEN_COUNT: u64 = 6;
    /// `usageMetadata.totalTokenCount` = prompt + candidates + thoughts.
    pub const TOTAL_TOKEN_COUNT: u64 = PROMPT_TOKEN_COUNT + CANDIDATES_TOKEN_COUNT + THOUGHTS_TOKEN_COUNT;
    /// `candidatesTokenCount` of each streamed chunk (cumulative; the last equals
    /// [`CANDIDATES_TOKEN_COUNT`]). Prompt, cached and thoughts counts are the same in every chunk.
    pub const STREAM_CANDIDATES_CUMULATIVE: [u64; 5] = [3, 6, 9, 12, CANDIDATES_TOKEN_COUNT];
    /// `countTokens` answer.
    pub const COUNT_TOKENS_TOTAL: u64 = 21;
    /// The vector `embedContent` returns.
    pub const EMBEDDING: [f64; 4] = [0.0125, -0.25, 0.5, 0.75];
    /// The models `GET /v1beta/models` lists (as `models/<id>`).
    pub const MODELS: [&str; 3] = ["gemini-2.5-flash", "gemini-2.5-pro", "gemini-embedding-001"];

    /// `usageMetadata` with the given cumulative `candidatesTokenCount`.
    pub fn usage_metadata(candidates: u64) -> Value {
        json!({
            "promptTokenCount": PROMPT_TOKEN_COUNT,
            "candidatesTokenCount": candidates,
            "totalTokenCount": PROMPT_TOKEN_COUNT + candidates + THOUGHTS_TOKEN_COUNT,
            "cachedContentTokenCount": CACHED_CONTENT_TOKEN_COUNT,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": PROMPT_TOKEN_COUNT}],
            "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": CACHED_CONTENT_TOKEN_COUNT}],
            "thoughtsTokenCount": THOUGHTS_TOKEN_COUNT
        })
    }

    fn response(model: &str, text: &str, finished: bool, candidates: u64) -> Value {
        let mut candidate = json!({"content": {"parts": [{"text": text}], "role": "model"}, "index": 0});
        if finished {
            candidate["finishReason"] = json!("STOP");
        }
        json!({
            "candidates": [candidate],
            "usageMetadata": usage_metadata(candidates),
            "modelVersion": model,
            "responseId": "fake-response-id"
        })
    }

    /// The non-streaming `GenerateContentResponse`.
    pub fn generate_content(model: &str) -> Value {
        response(model, TEXT, true, CANDIDATES_TOKEN_COUNT)
    }

    /// The streamed chunks: one per [`TEXT_PARTS`], each with cumulative `usageMetadata`
    /// ([`STREAM_CANDIDATES_CUMULATIVE`]); the last has `finishReason: STOP`.
    pub fn stream_chunks(model: &str) -> Vec<Value> {
        TEXT_PARTS
            .iter()
            .zip(STREAM_CANDIDATES_CUMULATIVE)
            .enumerate()
            .map(|(i, (part, cum))| response(model, part, i + 1 == TEXT_PARTS.len(), cum))
            .collect()
    }

    /// `alt=sse`: each chunk as `data: <compact JSON>\r\n\r\n`.
    pub fn stream_sse(model: &str) -> Vec<Bytes> {
        stream_chunks(model).iter().map(|c| Bytes::from(format!("data: {c}\r\n\r\n"))).collect()
    }

    /// Without `alt=sse`: a JSON array sent progressively — `[` + first element, then
    /// `,\r\n` + each next element (pretty-printed), then `]`.
    pub fn stream_json_array(model: &str) -> Vec<Bytes> {
        let mut out: Vec<Bytes> = stream_chunks(model)
            .iter()
            .enumerate()
            .map(|(i, c)| Bytes::from(format!("{}{}", if i == 0 { "[" } else { ",\r\n" }, pretty(c))))
            .collect();
        out.push(Bytes::from_static(b"]"));
        out
    }

    fn model_object(id: &str) -> Value {
        let embedding = id.contains("embedding");
        let methods: &[&str] = if embedding {
            &["embedContent", "countTextTokens", "countTokens"]
        } else {
            &["generateContent", "countTokens", "createCachedContent", "batchGenerateContent"]
        };
        json!({
            "name": format!("models/{id}"),
            "version": "001",
            "displayName": id,
            "description": format!("Fake {id}"),
            "inputTokenLimit": if embedding { 2048 } else { 1_048_576 },
            "outputTokenLimit": if embedding { 1 } else { 65_536 },
            "supportedGenerationMethods": methods
        })
    }

    /// The `GET /v1beta/models` list of [`MODELS`] (one page, no `nextPageToken`).
    pub fn models() -> Value {
        json!({"models": MODELS.iter().map(|m| model_object(m)).collect::<Vec<_>>()})
    }

    /// The Google error body.
    pub fn error(code: u16, status: &str, message: &str) -> Value {
        json!({"error": {"code": code, "message": message, "status": status}})
    }

    fn reply(status: u16, body: &Value) -> Reply {
        Reply::raw(status, "application/json; charset=UTF-8", pretty(body))
    }

    pub(super) fn serve(req: &Received, credential: Option<&str>, pace: Duration) -> Reply {
        if let Some(expected) = credential {
            let given = req.header("x-goog-api-key").map(str::to_string).or_else(|| req.query_param("key"));
            if given.as_deref() != Some(expected) {
                let msg = "API key not valid. Please pass a valid API key.";
                return reply(401, &error(401, "UNAUTHENTICATED", msg));
            }
        }
        let not_found = || {
            let msg = format!("The requested URL {} was not found on this server.", req.path);
            reply(404, &error(404, "NOT_FOUND", &msg))
        };
        let Some(rest) = req.path.strip_prefix("/v1beta/models").or_else(|| req.path.strip_prefix("/v1/models")) else {
            return not_found();
        };
        let target = percent_encoding::percent_decode_str(rest.trim_start_matches('/')).decode_utf8_lossy();
        if req.method == "GET" {
            if target.is_empty() {
                return reply(200, &models());
            }
            return match MODELS.iter().find(|m| **m == target) {
                Some(m) => reply(200, &model_object(m)),
                None => reply(404, &error(404, "NOT_FOUND", &format!("models/{target} is not found"))),
            };
        }
        let Some((model, method)) = target.rsplit_once(':') else {
            return not_found();
        };
        if req.method != "POST"
            || !matches!(method, "generateContent" | "streamGenerateContent" | "countTokens" | "embedContent")
        {
            return not_found();
        }
        if json_object(req).is_none() {
            return reply(400, &error(400, "INVALID_ARGUMENT", "Invalid JSON payload received."));
        }
        match method {
            "generateContent" => reply(200, &generate_content(model)),
            "streamGenerateContent" if req.query_param("alt").as_deref() == Some("sse") => {
                Reply::script(200, "text/event-stream", paced(stream_sse(model), pace))
            }
            "streamGenerateContent" => {
                Reply::script(200, "application/json; charset=UTF-8", paced(stream_json_array(model), pace))
            }
            "countTokens" => reply(
                200,
                &json!({
                    "totalTokens": COUNT_TOKENS_TOTAL,
                    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": COUNT_TOKENS_TOTAL}]
                }),
            ),
            _ => reply(200, &json!({"embedding": {"values": EMBEDDING}})),
        }
    }
}

pub mod azure_openai;
pub mod bedrock;
pub mod sigv4;

#[cfg(test)]
mod tests;
