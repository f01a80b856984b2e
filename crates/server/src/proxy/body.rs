//! The response body of a proxied request: upstream chunks pass through the protocol tap
//! (which parses usage on the side and, for an injected `include_usage`, drops the one
//! extra chunk) and on to the client as they arrive. Nothing is buffered beyond one chunk.
//!
//! Exactly one usage event per forwarded request is guaranteed by ownership: the
//! [`Recorder`] emits once, either when the body ends (success, upstream error inside the
//! stream, read timeout) or, if the client went away first, when hyper drops the body. A
//! body dropped after the stream's terminal event (`[DONE]`, `message_stop`,
//! `response.completed`, Gemini's finishing chunk, Bedrock's final metadata) was handed to
//! the client is complete — SDKs hang up right after it without reading the chunked
//! terminator — and is recorded as such; dropped earlier, it is client cancelled.
//!
//! The gateway asks upstreams for `accept-encoding: identity`; one that compresses anyway
//! (gzip or deflate) is decoded here, as it streams, before the tap: the client gets the
//! decoded bytes (without `content-encoding`), so usage is read and the injected usage chunk
//! is dropped exactly as for a plain body.

use crate::meter::{Meter, Metered};
use crate::metrics::Metrics;
use crate::state::ProviderEntry;
use bytes::Bytes;
use futures_util::Stream;
use hyper::body::{Body as _, Incoming};
use std::future::Future as _;
use std::io::Write as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::time::Sleep;
use tollgate_core::{RequestStatus, Usage};
use tollgate_protocol::Tap;

/// Emits a request's usage event exactly once.
#[derive(Debug)]
pub struct Recorder {
    meter: Meter,
    metrics: Arc<Metrics>,
    /// The event so far, already in the box the meter's queue takes: emitting it fills in
    /// the outcome in place instead of moving ~1 KB into a new box (`None`: recording is off).
    draft: Option<Box<Metered>>,
    started: Instant,
    /// The provider as served, for its price overrides (priced later by the usage writer);
    /// handed over with the event.
    provider: Option<Arc<ProviderEntry>>,
    /// The model the response named (see `Tap::response_model`).
    response_model: Option<String>,
    /// The transcript capture, when the provider records bodies (see `super::capture`).
    capture: Option<Box<super::capture::Capture>>,
    response_content_type: Option<String>,
    /// When the upstream request was sent (the recorder is created just before).
    sent: Instant,
    /// The request's trace span and operation name, handed to the writer with the event.
    span: Option<Box<crate::telemetry::RequestSpan>>,
    operation: &'static str,
    /// The call's budget and rate-limit reservations, settled with the event's usage.
    charge: Option<crate::limits::Charge>,
    /// The upstream HTTP/1.1 connection the response is read from: back to the pool once the
    /// body was read to its end ([`Recorder::release_connection`]), closed if dropped earlier.
    connection: Option<crate::upstream::Lease>,
    done: bool,
}

/// How a forwarded request ended, for [`Recorder::emit`].
#[derive(Debug)]
pub struct Outcome<'a> {
    pub status: RequestStatus,
    pub http_status: Option<u16>,
    pub error_class: Option<&'a str>,
    pub usage: Option<Usage>,
    pub ttft: Option<Duration>,
}

impl Recorder {
    /// `draft` holds the event with everything known before forwarding, already boxed (`None`
    /// when usage recording is off: the outcome is still counted in the metrics); `started` is
    /// the request's arrival; `provider` is the snapshot entry the request is served with.
    pub fn new(
        meter: Meter,
        metrics: Arc<Metrics>,
        draft: Option<Box<Metered>>,
        started: Instant,
        provider: Arc<ProviderEntry>,
    ) -> Recorder {
        Metrics::inc(&metrics.proxy_requests_forwarded);
        meter.begin();
        Recorder {
            meter,
            metrics,
            draft,
            started,
            provider: Some(provider),
            response_model: None,
            capture: None,
            response_content_type: None,
            sent: Instant::now(),
            span: None,
            operation: "other",
            charge: None,
            connection: None,
            done: false,
        }
    }

    /// Holds the upstream connection the response comes on (HTTP/1.1 only).
    pub fn hold_connection(&mut self, lease: Option<crate::upstream::Lease>) {
        self.connection = lease;
    }

    /// The upstream body was read to its end: its connection can serve another request.
    pub fn release_connection(&mut self) {
        if let Some(lease) = self.connection.take() {
            lease.release();
        }
    }

    /// Attaches the request's telemetry: its span (tracing on) and `gen_ai.operation.name`.
    pub fn observe(&mut self, span: Option<Box<crate::telemetry::RequestSpan>>, operation: &'static str) {
        self.span = span;
        self.operation = operation;
    }

    /// Fills in the outcome and queues the event; later calls do nothing.
    pub fn emit(&mut self, outcome: Outcome<'_>) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        match outcome.status {
            RequestStatus::ClientCancelled => Metrics::inc(&self.metrics.proxy_client_cancelled),
            RequestStatus::Timeout | RequestStatus::ConnectionError => {
                Metrics::inc(&self.metrics.proxy_upstream_failures);
            }
            _ => {}
        }
        // Budgets and rate limits settle with exactly the usage the event gets.
        if let Some(charge) = self.charge.take() {
            charge.settle(outcome.usage.as_ref().unwrap_or(&Usage::default()), self.response_model.as_deref());
        }
        // One clock read for both spans of time.
        let now = Instant::now();
        let latency = now.saturating_duration_since(self.started);
        let observed = crate::telemetry::Observed {
            operation: self.operation,
            span: self.span.take(),
            latency,
            upstream: Some(now.saturating_duration_since(self.sent)),
        };
        if let Some(mut metered) = self.draft.take() {
            let event = &mut metered.event;
            event.status = outcome.status;
            event.http_status = outcome.http_status.map(i64::from);
            event.error_class = outcome.error_class.map(str::to_string);
            event.usage = outcome.usage.unwrap_or_default();
            event.latency_ms = millis(latency);
            event.ttft_ms = outcome.ttft.map(millis);
            let transcript = self
                .capture
                .take()
                .map(|c| Box::new(c.finish(self.response_content_type.take())))
                .filter(|t| crate::transcript::admit(&self.metrics, t.size()));
            metered.provider = self.provider.take();
            metered.response_model = self.response_model.take();
            metered.transcript = transcript;
            metered.observed = observed;
            self.meter.record_metered(metered);
        } else if let Some(span) = observed.span {
            // Usage recording is off: no event, no price. The span still ends with the outcome.
            let usage = outcome.usage.unwrap_or_default();
            span.finish(&crate::telemetry::SpanEnd {
                status: outcome.status,
                http_status: outcome.http_status.map(i64::from),
                error_class: outcome.error_class,
                response_model: self.response_model.as_deref(),
                usage: &usage,
                cost: &tollgate_core::Cost::default(),
                catalog_version: None,
                latency,
                ttft: outcome.ttft,
                unpriced: true,
            });
        }
        self.meter.end();
    }

    /// Starts recording the transcript (`None`: the provider records nothing).
    pub fn set_capture(&mut self, capture: Option<Box<super::capture::Capture>>) {
        self.capture = capture;
    }

    /// Whether a transcript is being captured.
    pub fn capturing(&self) -> bool {
        self.capture.is_some()
    }

    /// The response's content type, kept with a transcript (how to read its output back).
    pub fn set_response_content_type(&mut self, content_type: Option<&str>) {
        if self.capture.is_some() {
            self.response_content_type = content_type.map(str::to_string);
        }
    }

    /// Bytes the client was sent (kept by a capture recording output).
    #[inline]
    pub fn capture_output(&mut self, bytes: &Bytes) {
        if let Some(c) = self.capture.as_mut() {
            c.output(bytes);
        }
    }

    /// Hands the call's reservations to the recorder: settled when it emits (a recorder that
    /// already emitted settles them at once, with no usage).
    pub fn attach_charge(&mut self, charge: crate::limits::Charge) {
        if self.done {
            charge.settle(&Usage::default(), None);
        } else if !charge.is_empty() {
            self.charge = Some(charge);
        }
    }

    /// Takes what the tap read about the response: the model it named, and (the span
    /// recording) its id and finish reasons.
    pub fn read_tap(&mut self, tap: &Tap) {
        self.set_response_model(tap.response_model());
        if let Some(span) = self.span.as_mut().filter(|s| s.is_recording()) {
            span.set_response_outcome(tap.response_id(), tap.finish_reasons());
        }
    }

    /// Whether the request's span records (then the tap also reads the response's id and
    /// finish reasons: [`Tap::record_outcome`]).
    pub fn tracing(&self) -> bool {
        self.span.as_deref().is_some_and(crate::telemetry::RequestSpan::is_recording)
    }

    /// Records the model the response named (priced by it when the type says so).
    pub fn set_response_model(&mut self, model: Option<&str>) {
        if self.response_model.is_none() {
            self.response_model = model.map(str::to_string);
        }
    }

    /// Records the upstream's own request id (`x-request-id` / `request-id`) on the event.
    pub fn set_request_id(&mut self, id: &str) {
        if let Some(d) = self.draft.as_mut() {
            d.event.request_id = id.to_string();
        }
    }

    /// Whether shutdown is cutting open requests (nothing may linger past it).
    pub fn shutting_down(&self) -> bool {
        self.meter.is_cutting()
    }

    pub fn started(&self) -> Instant {
        self.started
    }
}

impl Drop for Recorder {
    /// A request dropped before it emitted (the client went away while the gateway waited for
    /// the upstream's response head) still gets its one event.
    fn drop(&mut self) {
        self.emit(Outcome {
            status: RequestStatus::ClientCancelled,
            http_status: None,
            error_class: Some("client_cancelled"),
            usage: None,
            ttft: None,
        });
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Decodes a compressed upstream body chunk by chunk.
pub enum Decoder {
    Gzip(flate2::write::GzDecoder<Vec<u8>>),
    /// HTTP's `deflate` is the zlib format (RFC 9110 §8.4.1.2).
    Deflate(flate2::write::ZlibDecoder<Vec<u8>>),
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Decoder::Gzip(_) => "Decoder::Gzip",
            Decoder::Deflate(_) => "Decoder::Deflate",
        })
    }
}

impl Decoder {
    /// The decoder of a `content-encoding` value; `None` for `identity` and for encodings
    /// the gateway does not decode (their bytes pass unchanged and carry no readable usage).
    pub fn for_encoding(value: &str) -> Option<Decoder> {
        let v = value.trim();
        if v.eq_ignore_ascii_case("gzip") || v.eq_ignore_ascii_case("x-gzip") {
            Some(Decoder::Gzip(flate2::write::GzDecoder::new(Vec::new())))
        } else if v.eq_ignore_ascii_case("deflate") {
            Some(Decoder::Deflate(flate2::write::ZlibDecoder::new(Vec::new())))
        } else {
            None
        }
    }

    /// The bytes `chunk` decodes to (possibly none yet).
    pub fn decode(&mut self, chunk: &[u8]) -> std::io::Result<Bytes> {
        let out = match self {
            Decoder::Gzip(d) => {
                d.write_all(chunk)?;
                d.flush()?;
                std::mem::take(d.get_mut())
            }
            Decoder::Deflate(d) => {
                d.write_all(chunk)?;
                d.flush()?;
                std::mem::take(d.get_mut())
            }
        };
        Ok(Bytes::from(out))
    }

    /// The last decoded bytes; an error when the compressed body was cut short.
    pub fn finish(self) -> std::io::Result<Bytes> {
        let out = match self {
            Decoder::Gzip(d) => d.finish()?,
            Decoder::Deflate(d) => d.finish()?,
        };
        Ok(Bytes::from(out))
    }
}

/// The client-facing body stream.
pub struct MeteredStream {
    upstream: Incoming,
    /// Set when the upstream compressed the body: chunks are decoded before the tap.
    decoder: Option<Decoder>,
    /// Longest wait for the next upstream read; the timer is armed only when a read is
    /// pending, so a body that is already buffered costs no timer at all.
    read_timeout: Duration,
    deadline: Option<Pin<Box<Sleep>>>,
    armed: bool,
    tap: Tap,
    recorder: Box<Recorder>,
    http_status: u16,
    /// The upstream's declared length: reaching it completes the body even if the client's
    /// side never polls for the end.
    expected_len: Option<u64>,
    received: u64,
    ttft: Option<Duration>,
    done: bool,
    /// The bytes of the stream's terminal event were returned from `poll_next` (not merely
    /// read into a held batch): a drop from here on is a complete exchange.
    terminal_sent: bool,
    /// The upstream failed after bytes that were sent first; the error goes out next.
    failed_after_batch: bool,
    /// The client hung up and [`ClientBody`] reads the rest for its usage: the outcome is the
    /// client's cancellation whatever the upstream does.
    client_gone: bool,
    /// Bytes held over a scheduler round so that chunks already read join them, and how many
    /// polls in a row found nothing new.
    held: Batch,
    idle_polls: u8,
}

impl std::fmt::Debug for MeteredStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeteredStream").field("http_status", &self.http_status).field("done", &self.done).finish()
    }
}

impl MeteredStream {
    pub fn new(
        upstream: Incoming,
        read_timeout: Duration,
        tap: Tap,
        recorder: Box<Recorder>,
        http_status: u16,
        expected_len: Option<u64>,
    ) -> MeteredStream {
        MeteredStream {
            upstream,
            decoder: None,
            read_timeout,
            deadline: None,
            armed: false,
            tap,
            recorder,
            http_status,
            expected_len,
            received: 0,
            ttft: None,
            done: false,
            terminal_sent: false,
            client_gone: false,
            failed_after_batch: false,
            held: Batch::Empty,
            idle_polls: 0,
        }
    }

    /// Decodes the upstream body with `decoder` (the upstream compressed it).
    pub fn decoding(mut self, decoder: Option<Decoder>) -> MeteredStream {
        self.decoder = decoder;
        self
    }

    /// Starts the read timer if it is not running; true once it has fired.
    fn timed_out(&mut self, cx: &mut Context<'_>) -> bool {
        let at = tokio::time::Instant::now() + self.read_timeout;
        let sleep = self.deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        if !self.armed {
            sleep.as_mut().reset(at);
            self.armed = true;
        }
        sleep.as_mut().poll(cx).is_ready()
    }

    /// The body reached its end: classify and emit.
    fn complete(&mut self) {
        self.done = true;
        self.recorder.read_tap(&self.tap);
        let (status, class) = if self.client_gone {
            (RequestStatus::ClientCancelled, Some("client_cancelled"))
        } else if !(200..300).contains(&self.http_status) {
            (RequestStatus::UpstreamError, Some(upstream_class(self.http_status)))
        } else if self.tap.stream_error().is_some() {
            (RequestStatus::UpstreamError, Some("stream_error"))
        } else {
            (RequestStatus::Success, None)
        };
        self.recorder.emit(Outcome {
            status,
            http_status: Some(self.http_status),
            error_class: class,
            usage: self.tap.usage(),
            ttft: self.ttft,
        });
    }

    fn fail(&mut self, timed_out: bool) {
        self.done = true;
        self.recorder.read_tap(&self.tap);
        let (status, class) = if self.client_gone {
            (RequestStatus::ClientCancelled, "client_cancelled")
        } else if timed_out {
            (RequestStatus::Timeout, "read_timeout")
        } else {
            (RequestStatus::ConnectionError, "upstream_body_error")
        };
        self.recorder.emit(Outcome {
            status,
            http_status: Some(self.http_status),
            error_class: Some(class),
            usage: self.tap.usage(),
            ttft: self.ttft,
        });
    }

    fn mark_first_byte(&mut self) {
        if self.ttft.is_none() {
            self.ttft = Some(self.recorder.started().elapsed());
        }
    }
}

/// `upstream_4xx` / `upstream_5xx` / `upstream_status`.
pub fn upstream_class(status: u16) -> &'static str {
    match status {
        400..=499 => "upstream_4xx",
        500..=599 => "upstream_5xx",
        _ => "upstream_status",
    }
}

/// What the upstream body had next.
enum Upstream {
    Data(Bytes),
    End,
    /// The end, after the last bytes a decoder still held.
    EndAfter(Bytes),
    Failed,
    Pending,
}

/// The bytes of one poll for the client: every chunk the upstream already had, joined, so
/// a burst of small SSE chunks goes out in one write instead of one write (and one wakeup
/// of the client) per chunk. Only data that is already there is joined; nothing waits.
#[derive(Default)]
enum Batch {
    #[default]
    Empty,
    One(Bytes),
    Many(bytes::BytesMut),
}

impl Batch {
    fn push(&mut self, b: Bytes) {
        if b.is_empty() {
            return;
        }
        *self = match std::mem::take(self) {
            Batch::Empty => Batch::One(b),
            Batch::One(a) => {
                let mut m = bytes::BytesMut::with_capacity((a.len() + b.len()).max(4096));
                m.extend_from_slice(&a);
                m.extend_from_slice(&b);
                Batch::Many(m)
            }
            Batch::Many(mut m) => {
                m.extend_from_slice(&b);
                Batch::Many(m)
            }
        };
    }

    fn len(&self) -> usize {
        match self {
            Batch::Empty => 0,
            Batch::One(b) => b.len(),
            Batch::Many(m) => m.len(),
        }
    }

    fn take(&mut self) -> Option<Bytes> {
        match std::mem::take(self) {
            Batch::Empty => None,
            Batch::One(b) => Some(b),
            Batch::Many(m) => Some(m.freeze()),
        }
    }
}

/// Polls in a row without new upstream data before held bytes are sent.
const HOLD_POLLS: u8 = 3;

/// A batch stops growing here (it is sent, and the next poll starts another).
const MAX_BATCH_BYTES: usize = 64 * 1024;

impl MeteredStream {
    fn next_upstream(&mut self, cx: &mut Context<'_>) -> Upstream {
        loop {
            match Pin::new(&mut self.upstream).poll_frame(cx) {
                Poll::Pending => return Upstream::Pending,
                Poll::Ready(Some(Ok(frame))) => {
                    self.armed = false;
                    if let Ok(data) = frame.into_data() {
                        self.received += data.len() as u64;
                        let Some(decoder) = self.decoder.as_mut() else { return Upstream::Data(data) };
                        match decoder.decode(&data) {
                            Ok(out) if out.is_empty() => {}
                            Ok(out) => return Upstream::Data(out),
                            Err(_) => return Upstream::Failed,
                        }
                    }
                }
                Poll::Ready(Some(Err(_))) => return Upstream::Failed,
                Poll::Ready(None) => {
                    return match self.decoder.take().map(Decoder::finish) {
                        None => Upstream::End,
                        Some(Ok(rest)) => Upstream::EndAfter(rest),
                        Some(Err(_)) => Upstream::Failed,
                    };
                }
            }
        }
    }

    /// Sends what the batch holds (if anything) and records the first byte.
    fn ready(&mut self, batch: &mut Batch) -> Poll<Option<Result<Bytes, std::io::Error>>> {
        let out = batch.take();
        if let Some(bytes) = &out {
            self.recorder.capture_output(bytes);
            self.mark_first_byte();
            // The tap reports the terminal event only after the feed whose output holds its
            // bytes, and a batch always leaves whole: these bytes include it.
            if self.tap.terminal_seen() {
                self.terminal_sent = true;
            }
        }
        Poll::Ready(out.map(Ok))
    }
}

impl Stream for MeteredStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if this.failed_after_batch {
            this.failed_after_batch = false;
            if this.terminal_sent {
                this.complete();
                return Poll::Ready(None);
            }
            this.fail(false);
            return Poll::Ready(Some(Err(std::io::Error::other("upstream body failed"))));
        }
        let mut batch = std::mem::take(&mut this.held);
        let mut idle_polls = std::mem::take(&mut this.idle_polls);
        loop {
            match this.next_upstream(cx) {
                Upstream::Data(chunk) => {
                    // More was there: another round may find more still.
                    idle_polls = 0;
                    batch.push(this.tap.feed(chunk));
                    if this.expected_len.is_some_and(|n| this.received >= n) {
                        this.recorder.release_connection();
                        batch.push(this.tap.finish());
                        let out = this.ready(&mut batch);
                        this.complete();
                        return out;
                    }
                    if batch.len() >= MAX_BATCH_BYTES {
                        return this.ready(&mut batch);
                    }
                }
                Upstream::Pending => {
                    // The first bytes of a response leave at once (time to first token).
                    if batch.len() > 0 && idle_polls < HOLD_POLLS && this.ttft.is_some() {
                        // hyper's client hands the body over one chunk per run of its
                        // connection task, which has usually read more already: give it a
                        // scheduler round (no timer) and send once rounds bring nothing, so a
                        // burst of chunks leaves in one write. hyper's server may poll again
                        // within the same round, hence a few polls rather than one.
                        this.held = batch;
                        this.idle_polls = idle_polls + 1;
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                    if batch.len() > 0 {
                        return this.ready(&mut batch);
                    }
                    if this.timed_out(cx) {
                        if this.terminal_sent {
                            // Everything the client needed arrived; the upstream only failed
                            // to close the body. End it cleanly.
                            this.complete();
                            return Poll::Ready(None);
                        }
                        this.fail(true);
                        return Poll::Ready(Some(Err(std::io::Error::other("upstream read timed out"))));
                    }
                    return Poll::Pending;
                }
                Upstream::Failed => {
                    if batch.len() > 0 {
                        // The bytes that arrived before the failure go first; the error next.
                        this.failed_after_batch = true;
                        return this.ready(&mut batch);
                    }
                    if this.terminal_sent {
                        this.complete();
                        return Poll::Ready(None);
                    }
                    this.fail(false);
                    return Poll::Ready(Some(Err(std::io::Error::other("upstream body failed"))));
                }
                Upstream::End => {
                    this.recorder.release_connection();
                    batch.push(this.tap.finish());
                    let out = this.ready(&mut batch);
                    this.complete();
                    return out;
                }
                Upstream::EndAfter(rest) => {
                    this.recorder.release_connection();
                    batch.push(this.tap.feed(rest));
                    batch.push(this.tap.finish());
                    let out = this.ready(&mut batch);
                    this.complete();
                    return out;
                }
            }
        }
    }
}

impl Drop for MeteredStream {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if self.terminal_sent {
            // The whole stream reached the client; it just did not wait for the end of the body.
            self.complete();
        } else {
            self.recorder.read_tap(&self.tap);
            self.recorder.emit(Outcome {
                status: RequestStatus::ClientCancelled,
                http_status: Some(self.http_status),
                error_class: Some("client_cancelled"),
                usage: self.tap.usage(),
                ttft: self.ttft,
            });
        }
    }
}

/// How long the upstream is still read after the client hung up once generation ended.
pub const HANGUP_DRAIN: Duration = Duration::from_secs(2);

/// The client-facing body: a [`MeteredStream`] that outlives a client which hangs up after
/// the upstream finished generating (a finish reason seen) but before the stream's end. The
/// usage comes last (OpenAI's usage chunk, which the gateway itself asks for; Bedrock's
/// `metadata` event), so a client that stops reading at the finish reason would otherwise be
/// metered — and its budget settled — at nothing for a whole answer. The rest is read for at
/// most [`HANGUP_DRAIN`], outside the request, and the event records the cancellation with
/// the upstream's own usage. A hang-up mid-generation is not drained (reading on would make
/// the upstream generate, and bill, more) and is recorded at once, with what the tap saw.
#[derive(Debug)]
pub struct ClientBody(Option<MeteredStream>);

impl ClientBody {
    pub fn new(stream: MeteredStream) -> ClientBody {
        ClientBody(Some(stream))
    }
}

impl Stream for ClientBody {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.get_mut().0.as_mut() {
            Some(s) => Pin::new(s).poll_next(cx),
            None => Poll::Ready(None),
        }
    }
}

impl Drop for ClientBody {
    fn drop(&mut self) {
        let Some(mut s) = self.0.take() else { return };
        let generated = !s.done && !s.terminal_sent && s.tap.generation_ended();
        if !generated || s.recorder.shutting_down() {
            return; // dropped here: its own Drop records what happened
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        s.client_gone = true;
        runtime.spawn(async move {
            let _ = tokio::time::timeout(HANGUP_DRAIN, async {
                while let Some(item) = futures_util::StreamExt::next(&mut s).await {
                    if item.is_err() {
                        break;
                    }
                }
            })
            .await;
            // Dropped here: complete if the upstream ended, else recorded as cancelled.
        });
    }
}
