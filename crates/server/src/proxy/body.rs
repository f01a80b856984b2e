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
use crate::state::ProviderEntry;
use bytes::Bytes;
use futures_util::Stream;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
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
    /// The provider as served, for its price overrides (priced later by the usage writer);
    /// handed over with the event.
    provider: Option<Arc<ProviderEntry>>,
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
    /// `draft` holds everything known before forwarding; `started` is the request's arrival;
    /// `provider` is the snapshot entry the request is served with.
    pub fn new(
        meter: Meter,
        metrics: Arc<Metrics>,
        draft: UsageEvent,
        started: Instant,
        provider: Arc<ProviderEntry>,
    ) -> Recorder {
        Metrics::inc(&metrics.proxy_requests_forwarded);
        Recorder { meter, metrics, draft: Some(draft), started, provider: Some(provider) }
    }

    /// Fills in the outcome and queues the event; later calls do nothing.
    pub fn emit(&mut self, outcome: Outcome<'_>) {
        let Some(mut event) = self.draft.take() else { return };
        match outcome.status {
            RequestStatus::ClientCancelled => Metrics::inc(&self.metrics.proxy_client_cancelled),
            RequestStatus::Timeout | RequestStatus::ConnectionError => {
                Metrics::inc(&self.metrics.proxy_upstream_failures);
            }
            _ => {}
        }
        event.status = outcome.status;
        event.http_status = outcome.http_status.map(i64::from);
        event.error_class = outcome.error_class.map(str::to_string);
        event.usage = outcome.usage.unwrap_or_default();
        event.latency_ms = millis(self.started.elapsed());
        event.ttft_ms = outcome.ttft.map(millis);
        self.meter.record(event, self.provider.take());
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

type UpstreamStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// The client-facing body stream.
pub struct MeteredStream {
    upstream: UpstreamStream,
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
        upstream: UpstreamStream,
        tap: Tap,
        recorder: Recorder,
        http_status: u16,
        expected_len: Option<u64>,
    ) -> MeteredStream {
        MeteredStream { upstream, tap, recorder, http_status, expected_len, received: 0, ttft: None, done: false }
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

    fn fail(&mut self, err: &reqwest::Error) {
        self.done = true;
        let (status, class) = if err.is_timeout() {
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
            match this.upstream.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => {
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
                Poll::Ready(Some(Err(e))) => {
                    this.fail(&e);
                    return Poll::Ready(Some(Err(std::io::Error::other("upstream body failed"))));
                }
                Poll::Ready(None) => {
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
