//! The `request` span around every request, on both planes (the router's and the proxy's fast
//! path): method and path (never the query string: `?key=` may carry a credential) and
//! `request_id`, which `proxy::handle` fills in, so every log line written while serving a
//! request carries its id. At INFO, one line when the response head is ready: `finished
//! processing request` with the status and the latency in milliseconds.
//!
//! Written for the request path: when no subscriber wants the span (`--log warn`, the
//! benchmark's setting) it costs one interest check and reads no clock; the response body is
//! not wrapped. (tower-http's `TraceLayer`, used before, read the clock four times per request
//! and twice more per body frame, whether or not anything was logged.)

use axum::http::{Request, Response};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;
use tracing::instrument::{Instrument as _, Instrumented};

/// Wraps a service in [`RequestSpan`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestSpanLayer;

impl<S> tower::Layer<S> for RequestSpanLayer {
    type Service = RequestSpan<S>;
    fn layer(&self, inner: S) -> RequestSpan<S> {
        RequestSpan { inner }
    }
}

/// See the module's documentation.
#[derive(Debug, Clone)]
pub struct RequestSpan<S> {
    inner: S,
}

impl<S, B, R> tower::Service<Request<B>> for RequestSpan<S>
where
    S: tower::Service<Request<B>, Response = Response<R>>,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = Instrumented<Finished<S::Future>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let span = tracing::info_span!(
            "request",
            method = %req.method(),
            path = %req.uri().path(),
            request_id = tracing::field::Empty
        );
        let start = (!span.is_disabled()).then(Instant::now);
        let inner = {
            let _entered = span.enter();
            self.inner.call(req)
        };
        Finished { inner, start }.instrument(span)
    }
}

pin_project_lite::pin_project! {
    /// The inner service's future; logs the finished line when it is ready (inside the span,
    /// which [`Instrumented`] enters around every poll).
    pub struct Finished<F> {
        #[pin]
        inner: F,
        // When the span is enabled: when the request arrived.
        start: Option<Instant>,
    }
}

impl<F, R, E> Future for Finished<F>
where
    F: Future<Output = Result<Response<R>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let out = ready!(this.inner.poll(cx));
        if let (Some(start), Ok(resp)) = (this.start.take(), &out) {
            let latency_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
            tracing::info!(status = resp.status().as_u16(), latency_ms, "finished processing request");
        }
        Poll::Ready(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::{Arc, Mutex};
    use tower::{Layer as _, ServiceExt as _};
    use tracing_subscriber::layer::SubscriberExt as _;

    /// Lines written to a buffer by the fmt layer (JSON, with the current span).
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    async fn serve(level: &str, uri: &str) -> Vec<serde_json::Value> {
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::EnvFilter::new(level))
            .with(tracing_subscriber::fmt::layer().json().with_writer(move || writer.clone()));
        let _default = tracing::subscriber::set_default(subscriber);
        let svc = RequestSpanLayer.layer(tower::service_fn(|_req: Request<()>| async {
            tracing::Span::current().record("request_id", "req-1");
            tracing::warn!("inside");
            Ok::<_, std::convert::Infallible>(Response::builder().status(418).body(()).unwrap())
        }));
        let resp = svc.oneshot(Request::builder().uri(uri).body(()).unwrap()).await.unwrap();
        assert_eq!(resp.status(), 418);
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    #[tokio::test]
    async fn lines_carry_the_span_and_the_finished_line_has_status_and_latency() {
        let lines = serve("info", "/llm/v1/providers/p/v1/chat?key=sk-secret").await;
        assert_eq!(lines.len(), 2, "{lines:?}");
        for l in &lines {
            assert_eq!(l["span"]["name"], "request", "{l}");
            assert_eq!(l["span"]["method"], "GET", "{l}");
            assert_eq!(l["span"]["path"], "/llm/v1/providers/p/v1/chat", "{l}");
            assert_eq!(l["span"]["request_id"], "req-1", "{l}");
        }
        assert_eq!(lines[0]["fields"]["message"], "inside");
        assert_eq!(lines[1]["fields"]["message"], "finished processing request");
        assert_eq!(lines[1]["fields"]["status"], 418);
        assert!(lines[1]["fields"]["latency_ms"].as_u64().is_some(), "{}", lines[1]);
        assert!(!format!("{lines:?}").contains("sk-secret"), "the query string was logged");
    }

    #[tokio::test]
    async fn below_info_only_the_requests_own_lines_are_written() {
        let lines = serve("warn", "/x").await;
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0]["fields"]["message"], "inside");
    }
}
