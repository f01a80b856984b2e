//! Serving client connections with limits (ARCHITECTURE.md, Invariants: connection limits):
//! the accept loop, a cap on connections served at once, the header-read and idle timeouts,
//! HTTP/2 limits, and shutdown with a deadline.
//!
//! `axum::serve` has no timer, so it cannot time out a client; connections are served here with
//! hyper-util's `auto::Builder` (HTTP/1.1 and HTTP/2) and the router resolved once per process.
//! Client sockets get `TCP_NODELAY`, so a stream's small chunks leave at once.
//!
//! - **Cap**: at most `max_connections` are served; a connection beyond it waits (at most the
//!   header-read timeout, and at most `max_connections` of them) for a slot, and is otherwise
//!   closed unserved. The file-descriptor limit is raised to its hard maximum at start, and the
//!   cap lowered (with a warning) if the limit cannot hold both served and waiting connections.
//! - **Timeouts**, per connection, from a watchdog that sees its bytes and its requests: a
//!   request head (first byte to the request being dispatched) must arrive within
//!   `header_read_timeout`, else the connection is closed (slowloris). While every slot is
//!   taken ("pressure", until a tenth of them is free again) that timeout is at most
//!   [`PRESSURE_HEADER_TIMEOUT`], so stalled heads cannot starve the clients waiting for a
//!   slot. A connection with no
//!   request in flight and no byte received for `idle_timeout` is shut down gracefully.
//!   Requests in flight, long streams included, are never timed out here (the upstream read
//!   timeout bounds the waits inside one).
//! - **TLS** (`tls.rs`): with a certificate configured, each accepted socket first completes
//!   a TLS handshake, which counts as part of the request head (it must finish within the
//!   header-read timeout, the pressure one included; a connection still shaking hands at
//!   shutdown is dropped). The watchdog then sees the decrypted bytes, so every limit above
//!   applies unchanged; HTTP/2 is whatever ALPN chose.
//! - **Shutdown**: stop accepting, shut every connection down gracefully (idle ones close, busy
//!   ones finish their requests), and after `shutdown_grace` drop whatever is still open: the
//!   streams are cut, and their usage events are emitted with what was seen (the proxy's
//!   recorder emits on drop).

use crate::metrics::Metrics;
use axum::Router;
use futures_util::future::Either;
use futures_util::task::AtomicWaker;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// The limits one gateway serves connections with (from `Settings`).
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub http2_max_concurrent_streams: u32,
    pub http2_max_header_list_bytes: u32,
    pub shutdown_grace: Duration,
}

/// The header-read timeout while every connection slot is taken.
pub const PRESSURE_HEADER_TIMEOUT: Duration = Duration::from_secs(1);

/// Descriptors kept free for the databases, upstream connections and files.
const FD_RESERVE: u64 = 256;

/// Raises the soft file-descriptor limit to the hard one and returns the connection cap the
/// limit can hold (served + waiting connections, plus [`FD_RESERVE`]), which may be lower than
/// `wanted`.
pub fn fit_to_fd_limit(wanted: usize) -> usize {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let lim = getrlimit(Resource::Nofile);
    let mut soft = lim.current;
    if lim.current != lim.maximum {
        match setrlimit(Resource::Nofile, Rlimit { current: lim.maximum, maximum: lim.maximum }) {
            Ok(()) => soft = lim.maximum,
            Err(e) => tracing::debug!(error = %e, "could not raise the file-descriptor limit"),
        }
    }
    let Some(soft) = soft else { return wanted };
    let fits = usize::try_from(soft.saturating_sub(FD_RESERVE) / 2).unwrap_or(usize::MAX).max(1);
    if wanted > fits {
        tracing::warn!(
            max_connections = wanted,
            fd_limit = soft,
            using = fits,
            "--max-connections lowered to what the file-descriptor limit can hold (raise `ulimit -n`)"
        );
        return fits;
    }
    wanted
}

/// Serves `listener` until `shutdown` resolves, then drains within `limits.shutdown_grace`
/// (calling `before_cut` just before dropping what is still open). Returns once every
/// connection is closed.
pub async fn serve(
    listener: TcpListener,
    app: App,
    limits: Limits,
    tls: Option<crate::tls::ServerTls>,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    before_cut: impl FnOnce(),
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The watchdog below times heads and idleness; hyper's own header timer (which would also
    // run while a keep-alive connection waits for its next request) stays off: no timer.
    builder.http1().keep_alive(true);
    builder
        .http2()
        .max_concurrent_streams(limits.http2_max_concurrent_streams)
        .max_header_list_size(limits.http2_max_header_list_bytes);
    let builder = Arc::new(builder);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let waiting = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (close_tx, close_rx) = watch::channel(false);
    let (pressure_tx, pressure_rx) = watch::channel(false);
    let relieved = (limits.max_connections / 10).max(1);
    let mut tasks = JoinSet::new();
    let shutdown = shutdown;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => {
                let tcp = match accepted {
                    Ok((tcp, _peer)) => tcp,
                    Err(e) => {
                        // EMFILE/ENFILE and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // TCP_NODELAY: a stream's small chunks must leave at once, not wait (Nagle) for
                // the client's delayed ACK of the previous one (up to 40 ms per chunk on Linux).
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::debug!(error = %e, "could not set TCP_NODELAY on a client connection");
                }
                Metrics::inc(&metrics.connections_accepted);
                let one = One {
                    builder: builder.clone(),
                    tls: tls.as_ref().map(|t| t.acceptor.clone()),
                    app: app.clone(),
                    limits: limits.clone(),
                    metrics: metrics.clone(),
                    close: close_rx.clone(),
                    pressure: pressure_rx.clone(),
                };
                let slot = slots.clone().try_acquire_owned();
                // Only real changes wake the watchdogs; a tenth of the slots must be free again
                // before the pressure is off, so it does not flap with every connection.
                let under_pressure = slot.is_err() || (*pressure_tx.borrow() && slots.available_permits() < relieved);
                pressure_tx.send_if_modified(|p| std::mem::replace(p, under_pressure) != under_pressure);
                match slot {
                    Ok(permit) => {
                        tasks.spawn(async move { one.run(tcp, permit).await });
                    }
                    Err(_) => match waiting.clone().try_acquire_owned() {
                        Ok(queued) => {
                            let slots = slots.clone();
                            tasks.spawn(async move {
                                let permit =
                                    tokio::time::timeout(one.limits.header_read_timeout, slots.acquire_owned()).await;
                                drop(queued);
                                match permit {
                                    Ok(Ok(permit)) => one.run(tcp, permit).await,
                                    _ => Metrics::inc(&one.metrics.connections_refused),
                                }
                            });
                        }
                        Err(_) => Metrics::inc(&metrics.connections_refused),
                    },
                }
            }
        }
    }
    drop(listener);
    tracing::info!(open = tasks.len(), "shutting down: finishing in-flight requests");
    let _ = close_tx.send(true);
    let deadline = tokio::time::sleep(limits.shutdown_grace);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            next = tasks.join_next() => if next.is_none() { break },
            () = &mut deadline => {
                let open = tasks.len();
                Metrics::add(&metrics.connections_cut_at_shutdown, open as u64);
                tracing::warn!(connections = open, grace_ms = limits.shutdown_grace.as_millis() as u64,
                    "shutdown grace over: cutting the connections still open");
                // Dropping a connection drops its responses: each cut stream's recorder emits
                // its usage event with what was seen.
                before_cut();
                tasks.shutdown().await;
                break;
            }
        }
    }
}

/// One connection's serving context.
struct One {
    builder: Arc<auto::Builder<TokioExecutor>>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: App,
    limits: Limits,
    metrics: Arc<Metrics>,
    close: watch::Receiver<bool>,
    /// Every slot taken: heads get at most [`PRESSURE_HEADER_TIMEOUT`].
    pressure: watch::Receiver<bool>,
}

/// Marks an idle stretch in [`Activity::head_started_ms`].
const NONE: u64 = u64::MAX;

/// What the watchdog of one connection sees: requests in flight and when bytes came.
#[derive(Debug)]
struct Activity {
    start: Instant,
    in_flight: AtomicUsize,
    /// When the connection last had no request in flight (ms since `start`).
    idle_since_ms: AtomicU64,
    /// The first byte received since then (a request head starting), or [`NONE`].
    head_started_ms: AtomicU64,
}

impl Activity {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(NONE - 1)
    }
}

impl One {
    /// Serves one accepted socket, after its TLS handshake when TLS is on.
    async fn run(self, tcp: TcpStream, permit: tokio::sync::OwnedSemaphorePermit) {
        let Some(acceptor) = self.tls.clone() else {
            return self.serve_io(tcp, permit).await;
        };
        // The handshake is the start of the request head: it gets the header-read timeout.
        let limit = if *self.pressure.borrow() {
            self.limits.header_read_timeout.min(PRESSURE_HEADER_TIMEOUT)
        } else {
            self.limits.header_read_timeout
        };
        let mut close = self.close.clone();
        let handshake = tokio::select! {
            r = tokio::time::timeout(limit, acceptor.accept(tcp)) => r,
            _ = close.wait_for(|closing| *closing) => return, // shutting down: not served
        };
        match handshake {
            Ok(Ok(tls)) => self.serve_io(tls, permit).await,
            Ok(Err(e)) => {
                Metrics::inc(&self.metrics.tls_handshake_failures);
                tracing::debug!(error = %e, "TLS handshake with a client failed");
            }
            Err(_) => {
                Metrics::inc(&self.metrics.connections_header_timeouts);
                tracing::debug!("closing a connection: TLS handshake not finished in time");
            }
        }
    }

    async fn serve_io<S>(mut self, io: S, _permit: tokio::sync::OwnedSemaphorePermit)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        Metrics::inc(&self.metrics.connections_open);
        let act = Arc::new(Activity {
            start: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            head_started_ms: AtomicU64::new(NONE),
        });
        let io = TokioIo::new(Tracked { inner: io, act: act.clone() });
        let svc = Service { app: self.app.clone(), act: act.clone() };
        let conn = self.builder.serve_connection(io, svc);
        tokio::pin!(conn);
        let normal_header_ms = u64::try_from(self.limits.header_read_timeout.as_millis()).unwrap_or(NONE - 1);
        let pressure_header_ms = normal_header_ms.min(PRESSURE_HEADER_TIMEOUT.as_millis() as u64);
        let mut pressure_open = true;
        let idle_ms = u64::try_from(self.limits.idle_timeout.as_millis()).unwrap_or(NONE - 1);
        let mut closing = *self.close.borrow();
        if closing {
            conn.as_mut().graceful_shutdown();
        }
        let (pressure_woken, close_woken) = (Woken::new(), Woken::new());
        loop {
            // The next moment the watchdog has to look again, and what happens then.
            let now = act.now_ms();
            let header_ms = if *self.pressure.borrow() { pressure_header_ms } else { normal_header_ms };
            let (at, verdict) = if act.in_flight.load(Ordering::Acquire) > 0 {
                (now.saturating_add(header_ms.min(idle_ms)), Verdict::Nothing)
            } else {
                match act.head_started_ms.load(Ordering::Acquire) {
                    NONE => {
                        let idle_since = act.idle_since_ms.load(Ordering::Acquire);
                        (idle_since.saturating_add(idle_ms), Verdict::Idle)
                    }
                    started => (started.saturating_add(header_ms), Verdict::HeadTimeout),
                }
            };
            let wake = act.start + Duration::from_millis(at);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "client connection ended with an error");
                    }
                    break;
                }
                changed = Gate::new(Box::pin(self.pressure.changed()), &pressure_woken), if pressure_open => {
                    // Re-plan with the other header timeout.
                    pressure_open = changed.is_ok();
                }
                changed = Gate::new(Box::pin(self.close.changed()), &close_woken), if !closing => {
                    closing = true;
                    if changed.is_ok() {
                        conn.as_mut().graceful_shutdown();
                    }
                }
                () = tokio::time::sleep_until(wake) => {
                    // Re-check: a request or a byte may have come since `at` was computed.
                    if act.in_flight.load(Ordering::Acquire) > 0 {
                        continue;
                    }
                    let now = act.now_ms();
                    match verdict {
                        Verdict::Nothing => {}
                        Verdict::HeadTimeout => {
                            let started = act.head_started_ms.load(Ordering::Acquire);
                            if started != NONE && now >= started.saturating_add(header_ms) {
                                Metrics::inc(&self.metrics.connections_header_timeouts);
                                tracing::debug!("closing a connection: request head not received in time");
                                break; // dropping the connection closes the socket
                            }
                        }
                        Verdict::Idle => {
                            let idle = act.head_started_ms.load(Ordering::Acquire) == NONE
                                && now >= act.idle_since_ms.load(Ordering::Acquire).saturating_add(idle_ms);
                            if idle && !closing {
                                closing = true;
                                Metrics::inc(&self.metrics.connections_idle_closed);
                                conn.as_mut().graceful_shutdown();
                            } else if idle {
                                break; // already shutting down and still silent
                            }
                        }
                    }
                }
            }
        }
        self.metrics.connections_open.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Debug, Clone, Copy)]
enum Verdict {
    Nothing,
    HeadTimeout,
    Idle,
}

/// Whether a [`Gate`]'s future was woken since it was last polled.
#[derive(Debug)]
struct Woken {
    flag: AtomicBool,
    /// The task's own waker, woken in turn.
    task: AtomicWaker,
}

impl Woken {
    fn new() -> (Arc<Woken>, Waker) {
        let w = Arc::new(Woken { flag: AtomicBool::new(true), task: AtomicWaker::new() });
        let waker = Waker::from(w.clone());
        (w, waker)
    }
}

impl Wake for Woken {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.flag.store(true, Ordering::Release);
        self.task.wake();
    }
}

/// A future polled only on its first poll and when its own waker fired since. The connection
/// task is woken for every read and write of its requests, and `tokio::select!` then polls
/// every branch; a `watch::Receiver::changed` future takes the channel's waiter lock on each
/// poll (~180 instructions, two such branches, ~3 wakes per request), this check an atomic swap.
struct Gate<'w, F> {
    inner: Pin<Box<F>>,
    woken: &'w (Arc<Woken>, Waker),
}

impl<'w, F: Future> Gate<'w, F> {
    fn new(inner: Pin<Box<F>>, woken: &'w (Arc<Woken>, Waker)) -> Gate<'w, F> {
        // A new future has not been polled: poll it once whatever happened before.
        woken.0.flag.store(true, Ordering::Release);
        Gate { inner, woken }
    }
}

impl<F: Future> Future for Gate<'_, F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let (state, waker) = self.woken;
        state.task.register(cx.waker());
        if !state.flag.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        self.inner.as_mut().poll(&mut Context::from_waker(waker))
    }
}

/// The socket (or the TLS stream over it), noting when the first byte of a request head
/// arrives.
struct Tracked<S> {
    inner: S,
    act: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before
            && self.act.in_flight.load(Ordering::Acquire) == 0
            && self.act.head_started_ms.load(Ordering::Acquire) == NONE
        {
            let now = self.act.now_ms();
            self.act.head_started_ms.store(now, Ordering::Release);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// What connections serve: the proxy (`proxy::service`, under the same outer layers as the
/// router) for every request on a proxy path, the merged console and admin router for the
/// rest.
#[derive(Clone)]
pub struct App {
    pub router: Router,
    pub proxy: ProxyService,
}

/// The proxy handler under the gateway's outer layers, type-erased.
pub type ProxyService = tower::util::BoxCloneSyncService<axum::extract::Request, axum::response::Response, Infallible>;

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").finish_non_exhaustive()
    }
}

/// The app as a hyper service, counting each request in flight until its response body is
/// finished or dropped.
#[derive(Clone)]
struct Service {
    app: App,
    act: Arc<Activity>,
}

/// One request in flight; dropping it (response body done or dropped) may make the connection
/// idle.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn new(act: Arc<Activity>) -> InFlight {
        act.in_flight.fetch_add(1, Ordering::AcqRel);
        act.head_started_ms.store(NONE, Ordering::Release);
        InFlight(act)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            let now = self.0.now_ms();
            self.0.idle_since_ms.store(now, Ordering::Release);
        }
    }
}

type Response = axum::http::Response<Body>;

impl hyper::service::Service<axum::http::Request<Incoming>> for Service {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn call(&self, req: axum::http::Request<Incoming>) -> Self::Future {
        let guard = InFlight::new(self.act.clone());
        let resp = if crate::proxy::is_proxy_path(req.uri().path()) {
            let proxy = self.app.proxy.clone();
            Either::Left(tower::ServiceExt::oneshot(proxy, req.map(axum::body::Body::new)))
        } else {
            Either::Right(tower::ServiceExt::oneshot(self.app.router.clone(), req))
        };
        Box::pin(async move {
            let resp = match resp.await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            Ok(resp.map(|inner| Body { inner, _guard: guard }))
        })
    }
}

/// A response body that holds its request's [`InFlight`] until it is finished or dropped.
struct Body {
    inner: axum::body::Body,
    _guard: InFlight,
}

impl HttpBody for Body {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Counts its polls; ready once `ready` is set, and wakes whoever polled it then.
    struct Probe {
        polls: Arc<AtomicUsize>,
        ready: Arc<AtomicBool>,
        waker: Arc<std::sync::Mutex<Option<Waker>>>,
    }

    impl Future for Probe {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.polls.fetch_add(1, Ordering::SeqCst);
            if self.ready.load(Ordering::SeqCst) {
                return Poll::Ready(());
            }
            *self.waker.lock().unwrap_or_else(|e| e.into_inner()) = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    #[test]
    fn a_gate_polls_its_future_first_and_then_only_when_it_was_woken() {
        let (polls, ready) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
        let inner_waker = Arc::new(std::sync::Mutex::new(None));
        let probe = Probe { polls: polls.clone(), ready: ready.clone(), waker: inner_waker.clone() };
        let woken = Woken::new();
        let mut gate = Gate::new(Box::pin(probe), &woken);
        let task = Arc::new(Counted(AtomicUsize::new(0)));
        let task_waker = Waker::from(task.clone());
        let mut cx = Context::from_waker(&task_waker);
        assert!(Pin::new(&mut gate).poll(&mut cx).is_pending());
        assert_eq!(polls.load(Ordering::SeqCst), 1, "the first poll reaches the future");
        for _ in 0..5 {
            assert!(Pin::new(&mut gate).poll(&mut cx).is_pending());
        }
        assert_eq!(polls.load(Ordering::SeqCst), 1, "the task woken for something else: the future is left alone");
        ready.store(true, Ordering::SeqCst);
        let w = inner_waker.lock().unwrap_or_else(|e| e.into_inner()).take();
        w.unwrap_or_else(|| panic!("the future kept a waker")).wake();
        assert_eq!(task.0.load(Ordering::SeqCst), 1, "its wake wakes the task");
        assert!(Pin::new(&mut gate).poll(&mut cx).is_ready(), "and the next poll reaches it");
        assert_eq!(polls.load(Ordering::SeqCst), 2);
        drop(gate);
        // A new gate on the same state polls its new future at once.
        let again = Probe { polls: polls.clone(), ready, waker: inner_waker };
        assert!(Pin::new(&mut Gate::new(Box::pin(again), &woken)).poll(&mut cx).is_ready());
        assert_eq!(polls.load(Ordering::SeqCst), 3);
    }

    struct Counted(AtomicUsize);

    impl Wake for Counted {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}
