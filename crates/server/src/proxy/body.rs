//! The response body of a proxied request: upstream chunks pass through the protocol tap
//! (which parses usage on the side and, for an injected `include_usage`, drops the one
//! extra chunk) and on to the client as they arrive. Nothing is buffered beyond one chunk.
//!
//! Exactly one usage event per forwarded request is guaranteed by ownership: the
//! [`Recorder`] emits once, either when the body ends (success, upstream error inside the
//! stream, read timeout) or, if the client went away first, when hyper drops the body
//! (client cancelled).

use crate::meter::Meter;
use crate::metrics::Metrics;
use bytes::Bytes;
use futures_util::Stream;
use hyper::body::{Body as _, Incoming};
use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::time::Sleep;
use tollgate_core::{RequestStatus, Usage};
use tollgate_protocol::Tap;
use tollgate_store::UsageEvent;

/// Emits a request's usage event exactly once.
#[derive(Debug)]
pub struct Recorder {
    meter: Meter,
    metrics: Arc<Metrics>,
    draft: Option<UsageEvent>,
    started: Instant,
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
    /// `draft` holds everything known before forwarding (`None` when usage recording is off:
    /// the outcome is still counted in the metrics); `started` is the request's arrival.
    pub fn new(meter: Meter, metrics: Arc<Metrics>, draft: Option<UsageEvent>, started: Instant) -> Recorder {
        Metrics::inc(&metrics.proxy_requests_forwarded);
        Recorder { meter, metrics, draft, started, done: false }
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
        let Some(mut event) = self.draft.take() else { return };
        event.status = outcome.status;
        event.http_status = outcome.http_status.map(i64::from);
        event.error_class = outcome.error_class.map(str::to_string);
        event.usage = outcome.usage.unwrap_or_default();
        event.latency_ms = millis(self.started.elapsed());
        event.ttft_ms = outcome.ttft.map(millis);
        self.meter.record(event);
    }

    /// Records the upstream's own request id (`x-request-id` / `request-id`) on the event.
    pub fn set_request_id(&mut self, id: &str) {
        if let Some(d) = self.draft.as_mut() {
            d.request_id = id.to_string();
        }
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

/// The client-facing body stream.
pub struct MeteredStream {
    upstream: Incoming,
    /// Longest wait for the next upstream read; the timer is armed only when a read is
    /// pending, so a body that is already buffered costs no timer at all.
    read_timeout: Duration,
    deadline: Option<Pin<Box<Sleep>>>,
    armed: bool,
    tap: Tap,
    recorder: Recorder,
    http_status: u16,
    /// The upstream's declared length: reaching it completes the body even if the client's
    /// side never polls for the end.
    expected_len: Option<u64>,
    received: u64,
    ttft: Option<Duration>,
    done: bool,
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
        recorder: Recorder,
        http_status: u16,
        expected_len: Option<u64>,
    ) -> MeteredStream {
        MeteredStream {
            upstream,
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
        }
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
        let (status, class) = if !(200..300).contains(&self.http_status) {
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
        let (status, class) = if timed_out {
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

impl Stream for MeteredStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            let chunk = match Pin::new(&mut this.upstream).poll_frame(cx) {
                Poll::Pending => {
                    if this.timed_out(cx) {
                        this.fail(true);
                        return Poll::Ready(Some(Err(std::io::Error::other("upstream read timed out"))));
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Some(Ok(frame))) => {
                    this.armed = false;
                    match frame.into_data() {
                        Ok(data) => Some(Ok(data)),
                        Err(_trailers) => continue,
                    }
                }
                Poll::Ready(Some(Err(e))) => Some(Err(e)),
                Poll::Ready(None) => None,
            };
            match chunk {
                Some(Ok(chunk)) => {
                    this.received += chunk.len() as u64;
                    let mut out = this.tap.feed(chunk);
                    if this.expected_len.is_some_and(|n| this.received >= n) {
                        let tail = this.tap.finish();
                        if !tail.is_empty() {
                            let mut joined = Vec::with_capacity(out.len() + tail.len());
                            joined.extend_from_slice(&out);
                            joined.extend_from_slice(&tail);
                            out = Bytes::from(joined);
                        }
                        if !out.is_empty() {
                            this.mark_first_byte();
                        }
                        this.complete();
                        return Poll::Ready(if out.is_empty() { None } else { Some(Ok(out)) });
                    }
                    if out.is_empty() {
                        continue;
                    }
                    this.mark_first_byte();
                    return Poll::Ready(Some(Ok(out)));
                }
                Some(Err(_)) => {
                    this.fail(false);
                    return Poll::Ready(Some(Err(std::io::Error::other("upstream body failed"))));
                }
                None => {
                    let tail = this.tap.finish();
                    if !tail.is_empty() {
                        this.mark_first_byte();
                    }
                    this.complete();
                    return Poll::Ready(if tail.is_empty() { None } else { Some(Ok(tail)) });
                }
            }
        }
    }
}

impl Drop for MeteredStream {
    fn drop(&mut self) {
        if !self.done {
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
