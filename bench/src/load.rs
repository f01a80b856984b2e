//! The load client: HTTP/1.1 keep-alive connections sending chat requests at a target —
//! OpenAI-shaped chat completions or Anthropic-shaped `/v1/messages` ([`Api`]) — measuring
//! latency, time to first streamed chunk and throughput, and checking that every 2xx answer
//! carried its `usage`.
//!
//! Two modes. **Closed loop**: each of N connections sends its next request as soon as the
//! previous answer has been read in full. **Open loop**: a pacer thread releases request
//! slots at a fixed rate and idle connections take them; latency is measured from the slot's
//! *intended* start, so a stall charges every request that should have been sent during it
//! (coordinated-omission correction, as in wrk2).
//!
//! A run is warm-up then a measured window. Throughput counts answers completed inside the
//! window (closed loop) or slots intended inside it (open loop). When the run ends no new
//! request starts, but those in flight are read to the end, so the totals ([`LoadReport::total_responses`])
//! cover every request the target received: they are what the gateway's usage store must
//! hold. Optionally a process (the proxy) is watched: its CPU time over the window and its
//! peak RSS.

use crate::procfs;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http::{HeaderName, HeaderValue, Method, Request, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, mpsc};

/// The shape of the requests and answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    /// `POST …/chat/completions`, the token as `Authorization: Bearer`, `usage.prompt_tokens`.
    #[default]
    Openai,
    /// `POST …/v1/messages` with `anthropic-version`, the token as `x-api-key`,
    /// `usage.input_tokens`.
    Anthropic,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Full URL of the chat endpoint (through the proxy or direct).
    pub url: Uri,
    /// Which API's requests to send.
    pub api: Api,
    /// The model the requests name; `None`: the API's [`Api::default_model`].
    pub model: Option<String>,
    /// Sent as `Authorization: Bearer <token>` (OpenAI) or `x-api-key` (Anthropic).
    pub token: Option<String>,
    /// Ask for a streamed answer (`"stream":true`, plus `stream_options.include_usage` for OpenAI).
    pub stream: bool,
    pub connections: usize,
    pub warmup: Duration,
    /// The measured window (after the warm-up).
    pub duration: Duration,
    /// Open loop at this many requests per second; `None` is closed loop.
    pub rate: Option<f64>,
    /// A process to watch (CPU time and RSS), e.g. the proxy.
    pub watch_pid: Option<u32>,
    /// A request (head and whole body) taking longer is an error.
    pub request_timeout: Duration,
    /// Extra request headers (e.g. a peer gateway's routing headers).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// After the run, with every connection closed, wait this long and sample the watched
    /// process's RSS again: whether the memory of a burst is given back.
    pub settle: Option<Duration>,
}

impl LoadConfig {
    pub fn new(url: Uri) -> LoadConfig {
        LoadConfig {
            url,
            api: Api::Openai,
            model: None,
            token: None,
            stream: false,
            connections: 50,
            warmup: Duration::from_secs(2),
            duration: Duration::from_secs(20),
            rate: None,
            watch_pid: None,
            request_timeout: Duration::from_secs(60),
            headers: Vec::new(),
            settle: None,
        }
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Percentiles {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Percentiles {
        Percentiles {
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
        }
    }
}

/// What the watched process did during the measured window.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ProcStats {
    pub pid: u32,
    /// User + system CPU time over the window, all threads.
    pub cpu_ms: f64,
    /// `cpu_ms` per request completed in the window, in microseconds.
    pub cpu_us_per_request: f64,
    /// The part of `cpu_us_per_request` spent in the kernel (system time).
    #[serde(default)]
    pub cpu_system_us_per_request: f64,
    /// Highest RSS sampled (every 100 ms) from the start of the run to its end.
    pub rss_peak_kib: u64,
    /// Highest anonymous part of it (`RssAnon`: what the process allocated, without the
    /// pages of its binary and other mapped files), sampled alike.
    #[serde(default)]
    pub rss_peak_anon_kib: u64,
    pub rss_end_kib: u64,
    /// RSS `settle` seconds after the run, its connections closed (`--settle`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_settled_kib: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settle_s: Option<f64>,
}

/// The result of one run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LoadReport {
    /// `closed` or `open`.
    pub mode: String,
    #[serde(default)]
    pub api: Api,
    pub connections: usize,
    pub stream: bool,
    pub rate: Option<f64>,
    pub duration_s: f64,
    /// Requests measured (see the module doc).
    pub requests: u64,
    pub rps: f64,
    pub latency_us: Percentiles,
    /// Time to the first body bytes of a streamed answer.
    pub ttft_us: Option<Percentiles>,
    /// Every request that got an answer head, over the whole run (warm-up and tail included).
    pub total_responses: u64,
    pub total_2xx: u64,
    /// Non-2xx answers, transport errors and timeouts over the whole run, and (open loop) the
    /// requests of the fixed rate never started (`unsent`).
    pub errors: u64,
    /// Open loop: requests of the fixed rate not started before the end of the run (counted
    /// in `errors`; they never reached the target).
    #[serde(default)]
    pub unsent: u64,
    /// 2xx answers whose body had no `usage` object.
    pub missing_usage: u64,
    /// Open loop: slots that started more than 1 ms after their intended time.
    pub late_starts: u64,
    pub first_error: Option<String>,
    pub proxy: Option<ProcStats>,
    pub loadavg_before: String,
    pub loadavg_after: String,
}

/// Shared by the connection tasks of one run.
struct Run {
    cfg: LoadConfig,
    authority: HeaderValue,
    path: Uri,
    auth: Option<(HeaderName, HeaderValue)>,
    body: Bytes,
    warm_end: Instant,
    end: Instant,
    slots: Option<Mutex<mpsc::UnboundedReceiver<Instant>>>,
    /// Open loop: slots taken after the end of the run (the target could not keep the rate).
    unsent: std::sync::atomic::AtomicU64,
}

/// What one connection task measured.
struct Tally {
    latency: Histogram<u64>,
    ttft: Histogram<u64>,
    requests: u64,
    total_responses: u64,
    total_2xx: u64,
    errors: u64,
    missing_usage: u64,
    late_starts: u64,
    first_error: Option<String>,
}

fn histogram() -> anyhow::Result<Histogram<u64>> {
    // 1 µs .. 10 min, 3 significant digits.
    Ok(Histogram::new_with_bounds(1, 600_000_000, 3)?)
}

impl Tally {
    fn new() -> anyhow::Result<Tally> {
        Ok(Tally {
            latency: histogram()?,
            ttft: histogram()?,
            requests: 0,
            total_responses: 0,
            total_2xx: 0,
            errors: 0,
            missing_usage: 0,
            late_starts: 0,
            first_error: None,
        })
    }

    fn error(&mut self, e: impl std::fmt::Display) {
        self.errors_of(1, e);
    }

    /// `n` errors of one kind.
    fn errors_of(&mut self, n: u64, e: impl std::fmt::Display) {
        self.errors += n;
        if self.first_error.is_none() {
            self.first_error = Some(e.to_string());
        }
    }

    fn merge(&mut self, o: Tally) -> anyhow::Result<()> {
        self.latency.add(&o.latency)?;
        self.ttft.add(&o.ttft)?;
        self.requests += o.requests;
        self.total_responses += o.total_responses;
        self.total_2xx += o.total_2xx;
        self.errors += o.errors;
        self.missing_usage += o.missing_usage;
        self.late_starts += o.late_starts;
        if self.first_error.is_none() {
            self.first_error = o.first_error;
        }
        Ok(())
    }
}

impl Api {
    /// The model a request names unless told otherwise (the mock answers any).
    pub fn default_model(self) -> &'static str {
        match self {
            Api::Openai => "gpt-4o-mini",
            Api::Anthropic => ANTHROPIC_MODEL,
        }
    }

    /// The request body of a streamed or non-streamed chat request for `model`.
    pub fn request_body(self, model: &str, stream: bool) -> anyhow::Result<Bytes> {
        let messages = serde_json::json!([{"role": "user", "content": "Say hello."}]);
        let mut body = match self {
            Api::Openai => serde_json::json!({"model": model, "messages": messages}),
            Api::Anthropic => serde_json::json!({"model": model, "max_tokens": 64, "messages": messages}),
        };
        if stream {
            body["stream"] = true.into();
            if self == Api::Openai {
                body["stream_options"] = serde_json::json!({"include_usage": true});
            }
        }
        Ok(Bytes::from(serde_json::to_vec(&body)?))
    }

    /// The token count a 2xx body's usage object must carry (when streamed: in the usage chunk
    /// for OpenAI, in `message_start` for Anthropic).
    fn usage_field(self) -> &'static [u8] {
        match self {
            Api::Openai => br#""prompt_tokens""#,
            Api::Anthropic => br#""input_tokens""#,
        }
    }

    /// Whether some `"usage":{…}` object in `body` has the API's token field, in whatever order
    /// the gateway wrote the fields.
    fn carries_usage(self, body: &[u8]) -> bool {
        const OPEN: &[u8] = br#""usage":{"#;
        let field = self.usage_field();
        let mut rest = body;
        while let Some(at) = find(rest, OPEN) {
            rest = &rest[at + OPEN.len()..];
            let object = &rest[..find(rest, b"}").unwrap_or(rest.len())];
            if find(object, field).is_some() {
                return true;
            }
        }
        false
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The model an Anthropic-shaped request names (the mock answers any).
pub const ANTHROPIC_MODEL: &str = "claude-sonnet-4-5";

/// The body of an OpenAI chat completion request, streamed or not.
pub fn request_body(stream: bool) -> Bytes {
    Api::Openai.request_body(Api::Openai.default_model(), stream).unwrap_or_default()
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// Runs the load and returns the report. Must be called inside a Tokio runtime.
pub async fn run(cfg: LoadConfig) -> anyhow::Result<LoadReport> {
    let authority = cfg.url.authority().ok_or_else(|| anyhow::anyhow!("the URL needs a host and port"))?.clone();
    if cfg.url.scheme_str() != Some("http") {
        anyhow::bail!("only http:// targets are supported");
    }
    let path: Uri = cfg.url.path_and_query().map_or("/", |p| p.as_str()).parse()?;
    let auth = match cfg.api {
        Api::Openai => cfg
            .token
            .as_ref()
            .map(|t| HeaderValue::from_str(&format!("Bearer {t}")))
            .transpose()?
            .map(|v| (header::AUTHORIZATION, v)),
        Api::Anthropic => cfg
            .token
            .as_ref()
            .map(|t| HeaderValue::from_str(t))
            .transpose()?
            .map(|v| (HeaderName::from_static("x-api-key"), v)),
    };
    let connections = cfg.connections.max(1);
    let loadavg_before = procfs::loadavg();
    let start = Instant::now();
    let warm_end = start + cfg.warmup;
    let end = warm_end + cfg.duration;

    let (slots, pacer) = match cfg.rate {
        Some(rate) if rate > 0.0 => {
            let (tx, rx) = mpsc::unbounded_channel();
            let pacer = std::thread::spawn(move || pace(tx, rate, start, end));
            (Some(Mutex::new(rx)), Some(pacer))
        }
        Some(_) => anyhow::bail!("--rate must be greater than 0"),
        None => (None, None),
    };
    let run = Arc::new(Run {
        authority: HeaderValue::from_str(authority.as_str())?,
        path,
        auth,
        body: cfg.api.request_body(cfg.model.as_deref().unwrap_or(cfg.api.default_model()), cfg.stream)?,
        warm_end,
        end,
        slots,
        unsent: std::sync::atomic::AtomicU64::new(0),
        cfg,
    });
    let watcher = run.cfg.watch_pid.map(|pid| tokio::spawn(watch(pid, warm_end, end)));
    let tasks: Vec<_> = (0..connections).map(|_| tokio::spawn(connection(run.clone()))).collect();
    let mut total = Tally::new()?;
    for t in tasks {
        total.merge(t.await??)?;
    }
    if let Some(p) = pacer {
        let _ = p.join();
    }
    // Open loop against a target slower than the rate: the slots still queued when the run
    // ended were never sent. They count as errors (not as latency), so a slow target cannot
    // make the run last until its backlog drains.
    let mut unsent = run.unsent.load(std::sync::atomic::Ordering::Relaxed);
    if let Some(slots) = &run.slots {
        let mut rx = slots.lock().await;
        while rx.try_recv().is_ok() {
            unsent += 1;
        }
    }
    if unsent > 0 {
        total.errors_of(
            unsent,
            format!("{unsent} requests of the fixed rate were not started before the end of the run"),
        );
    }
    let window = run.cfg.duration.as_secs_f64();
    let proxy = match watcher {
        Some(w) => {
            let (pid, cpu, peak, rss_end_kib) = w.await?;
            let ms = |ticks: u64| ticks as f64 * 1000.0 / procfs::clock_ticks() as f64;
            let cpu_ms = ms(cpu.total());
            let per = |ms: f64| if total.requests > 0 { ms * 1000.0 / total.requests as f64 } else { 0.0 };
            // Every connection task has returned, so the client's connections are closed.
            let rss_settled_kib = match run.cfg.settle {
                Some(settle) => {
                    tokio::time::sleep(settle).await;
                    procfs::rss_kib(pid)
                }
                None => None,
            };
            let settle_s = run.cfg.settle.map(|d| d.as_secs_f64());
            Some(ProcStats {
                pid,
                cpu_ms,
                cpu_us_per_request: per(cpu_ms),
                cpu_system_us_per_request: per(ms(cpu.system)),
                rss_peak_kib: peak.total,
                rss_peak_anon_kib: peak.anon,
                rss_end_kib,
                rss_settled_kib,
                settle_s,
            })
        }
        None => None,
    };
    Ok(LoadReport {
        mode: if run.slots.is_some() { "open" } else { "closed" }.into(),
        api: run.cfg.api,
        connections,
        stream: run.cfg.stream,
        rate: run.cfg.rate,
        duration_s: window,
        requests: total.requests,
        rps: total.requests as f64 / window,
        latency_us: Percentiles::of(&total.latency),
        ttft_us: run.cfg.stream.then(|| Percentiles::of(&total.ttft)),
        total_responses: total.total_responses,
        total_2xx: total.total_2xx,
        errors: total.errors,
        unsent,
        missing_usage: total.missing_usage,
        late_starts: total.late_starts,
        first_error: total.first_error,
        proxy,
        loadavg_before,
        loadavg_after: procfs::loadavg(),
    })
}

/// Releases one slot (its intended start) every `1/rate` seconds until `end`. A std thread
/// with `nanosleep` keeps the pace to tens of microseconds; Tokio's timer has 1 ms steps.
fn pace(tx: mpsc::UnboundedSender<Instant>, rate: f64, start: Instant, end: Instant) {
    let period = Duration::from_secs_f64(1.0 / rate);
    let mut i: u32 = 0;
    loop {
        let at = start + period * i;
        if at >= end {
            return;
        }
        let now = Instant::now();
        if at > now {
            std::thread::sleep(at - now);
        }
        if tx.send(at).is_err() {
            return;
        }
        i = i.saturating_add(1);
    }
}

/// Samples the watched process: CPU ticks at the window's edges, RSS every 100 ms (the peaks
/// of the total and of its anonymous part, each over the run; the total at the end).
async fn watch(pid: u32, warm_end: Instant, end: Instant) -> (u32, procfs::CpuTicks, procfs::Rss, u64) {
    let mut peak = procfs::Rss::default();
    let sample = |peak: &mut procfs::Rss| {
        let now = procfs::rss(pid).unwrap_or_default();
        *peak = procfs::Rss { total: peak.total.max(now.total), anon: peak.anon.max(now.anon) };
        now.total
    };
    let mut cpu_start = None;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        let now = Instant::now();
        sample(&mut peak);
        if cpu_start.is_none() && now >= warm_end {
            cpu_start = procfs::cpu_ticks(pid);
        }
        if now >= end {
            break;
        }
        // Land on the window's edges rather than the next 100 ms tick.
        let next = now + Duration::from_millis(100);
        if cpu_start.is_none() && next > warm_end {
            tokio::time::sleep_until(warm_end.into()).await;
            cpu_start = procfs::cpu_ticks(pid);
        } else if next > end {
            tokio::time::sleep_until(end.into()).await;
        }
    }
    let cpu_end = procfs::cpu_ticks(pid);
    let ticks = match (cpu_start, cpu_end) {
        (Some(a), Some(b)) => b.since(a),
        _ => procfs::CpuTicks { user: 0, system: 0 },
    };
    let rss_end = sample(&mut peak);
    (pid, ticks, peak, rss_end)
}

async fn connect(run: &Run) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let host = run.cfg.url.host().unwrap_or("127.0.0.1");
    let port = run.cfg.url.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host, port)).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// The next request's intended start, or `None` when the run is over.
async fn next_start(run: &Run) -> Option<Instant> {
    match &run.slots {
        None => Some(Instant::now()).filter(|now| *now < run.end),
        Some(slots) => {
            let slot = slots.lock().await.recv().await?;
            if Instant::now() >= run.end {
                run.unsent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return None;
            }
            Some(slot)
        }
    }
}

/// One connection: sends requests until the run ends, reconnecting after an error.
async fn connection(run: Arc<Run>) -> anyhow::Result<Tally> {
    let mut tally = Tally::new()?;
    let mut sender: Option<SendRequest<Full<Bytes>>> = None;
    let mut body = Vec::with_capacity(4096);
    while let Some(intended) = next_start(&run).await {
        let open = run.slots.is_some();
        let mut conn = match sender.take() {
            Some(s) if !s.is_closed() => s,
            _ => match connect(&run).await {
                Ok(s) => s,
                Err(e) => {
                    tally.error(format!("connect: {e}"));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let started = Instant::now();
        if open && started.duration_since(intended) > Duration::from_millis(1) {
            tally.late_starts += 1;
        }
        let mut req = Request::new(Full::new(run.body.clone()));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = run.path.clone();
        let h = req.headers_mut();
        h.insert(header::HOST, run.authority.clone());
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some((name, value)) = &run.auth {
            h.insert(name.clone(), value.clone());
        }
        if run.cfg.api == Api::Anthropic {
            h.insert(HeaderName::from_static("anthropic-version"), HeaderValue::from_static("2023-06-01"));
        }
        for (k, v) in &run.cfg.headers {
            h.insert(k.clone(), v.clone());
        }
        body.clear();
        let exchange = async {
            conn.ready().await?;
            let resp = conn.send_request(req).await?;
            let status = resp.status();
            let mut incoming = resp.into_body();
            let mut first: Option<Instant> = None;
            while let Some(frame) = incoming.frame().await {
                if let Some(data) = frame?.data_ref()
                    && !data.is_empty()
                {
                    first.get_or_insert_with(Instant::now);
                    body.extend_from_slice(data);
                }
            }
            Ok::<_, hyper::Error>((status, first))
        };
        let outcome = tokio::time::timeout(run.cfg.request_timeout, exchange).await;
        let done = Instant::now();
        let (status, first) = match outcome {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                tally.error(format!("request: {e}"));
                continue;
            }
            Err(_) => {
                tally.error("request: timed out");
                continue;
            }
        };
        sender = Some(conn);
        tally.total_responses += 1;
        if !status.is_success() {
            let snippet = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
            tally.error(format!("HTTP {status}: {snippet}"));
            continue;
        }
        tally.total_2xx += 1;
        if !run.cfg.api.carries_usage(&body) {
            tally.missing_usage += 1;
        }
        let measured = if open { intended >= run.warm_end } else { intended >= run.warm_end && done <= run.end };
        if measured {
            tally.requests += 1;
            tally.latency.saturating_record(micros(done.duration_since(intended)));
            if let Some(f) = first {
                tally.ttft.saturating_record(micros(f.duration_since(intended)));
            }
        }
    }
    Ok(tally)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_check_matches_both_shapes_in_any_field_order() {
        assert!(Api::Openai.carries_usage(br#"{"usage":{"prompt_tokens":1}}"#));
        assert!(
            Api::Openai.carries_usage(b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":12}}\n\ndata: [DONE]\n\n")
        );
        assert!(!Api::Openai.carries_usage(br#"data: {"usage":null}"#));
        assert!(!Api::Openai.carries_usage(b"x"));
        // Anthropic: the usage object of an answer, and of `message_start` in a stream.
        assert!(Api::Anthropic.carries_usage(br#"{"type":"message","usage":{"input_tokens":12,"output_tokens":7}}"#));
        assert!(!Api::Anthropic.carries_usage(br#"{"usage":{"prompt_tokens":1}}"#));
        assert!(!Api::Openai.carries_usage(br#"{"usage":{"input_tokens":1}}"#));
        // Field order is the gateway's (litellm-rs sorts them); the field must be in the object.
        assert!(Api::Openai.carries_usage(br#"{"usage":{"completion_tokens":7,"prompt_tokens":12}}"#));
        assert!(
            Api::Openai.carries_usage(br#"{"usage":null} {"usage":{"total_tokens":1}} {"usage":{"prompt_tokens":1}}"#)
        );
        assert!(!Api::Openai.carries_usage(br#"{"usage":{"completion_tokens":7},"prompt_tokens":12}"#));
        assert!(!Api::Openai.carries_usage(br#"{"usage":{"#));
        for stream in [false, true] {
            let body = Api::Anthropic.request_body(ANTHROPIC_MODEL, stream).unwrap_or_default();
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            assert_eq!((v["model"].as_str(), v["max_tokens"].as_u64()), (Some(ANTHROPIC_MODEL), Some(64)));
            assert_eq!(v["stream"].as_bool(), stream.then_some(true));
            assert!(v.get("stream_options").is_none());
            let v: serde_json::Value = serde_json::from_slice(&request_body(stream)).unwrap_or_default();
            assert_eq!(v["model"], "gpt-4o-mini");
            assert_eq!(v["stream_options"]["include_usage"].as_bool(), stream.then_some(true));
        }
        // A peer that routes by its own model names gets them.
        let body = Api::Openai.request_body("tensorzero::model_name::mock", false).unwrap_or_default();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        assert_eq!((v["model"].as_str(), v.get("stream")), (Some("tensorzero::model_name::mock"), None));
    }

    /// The Anthropic shape end to end against the mock: `x-api-key` and `anthropic-version` sent,
    /// every answer (plain and streamed) carries its usage; a wrong key is refused.
    #[test]
    fn anthropic_load_against_the_mock() -> anyhow::Result<()> {
        use crate::mock::{Mock, MockConfig};
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        rt.block_on(async {
            let cfg = MockConfig { key: Some("sk-mock".into()), chunks: 4, ..MockConfig::default() };
            let mock = Mock::start("127.0.0.1:0".parse()?, cfg).await?;
            let url: Uri = format!("{}/messages", mock.base_url()).parse()?;
            for stream in [false, true] {
                let mut cfg = LoadConfig::new(url.clone());
                cfg.api = Api::Anthropic;
                cfg.token = Some("sk-mock".into());
                cfg.stream = stream;
                cfg.connections = 2;
                cfg.warmup = Duration::ZERO;
                cfg.duration = Duration::from_millis(200);
                let r = run(cfg).await?;
                assert_eq!((r.errors, r.missing_usage, r.api), (0, 0, Api::Anthropic), "{:?}", r.first_error);
                assert!(r.total_2xx > 0 && r.total_2xx == r.total_responses);
                assert_eq!(r.ttft_us.is_some(), stream);
            }
            let mut cfg = LoadConfig::new(url);
            cfg.api = Api::Anthropic;
            cfg.token = Some("sk-wrong".into());
            cfg.connections = 1;
            cfg.warmup = Duration::ZERO;
            cfg.duration = Duration::from_millis(50);
            let r = run(cfg).await?;
            assert!(r.total_2xx == 0 && r.errors > 0);
            let first = r.first_error.unwrap_or_default();
            assert!(first.contains("401") && first.contains("authentication_error"), "{first}");
            Ok(())
        })
    }

    #[test]
    fn percentiles_come_from_the_histogram() -> anyhow::Result<()> {
        let mut h = histogram()?;
        for v in 1..=1000u64 {
            h.record(v)?;
        }
        let p = Percentiles::of(&h);
        assert_eq!((p.p50, p.p90, p.max), (500, 900, 1000));
        Ok(())
    }
}
