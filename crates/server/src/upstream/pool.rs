//! The proxy's upstream connections (ARCHITECTURE.md, Decisions: Upstream connections): hyper's
//! connection API (`hyper::client::conn`) over the shared connector (TLS with ALPN, the
//! address policy's resolver, the connect timeout), with a pool of our own.
//!
//! Per origin (scheme and authority) the pool keeps idle HTTP/1.1 connections, newest last,
//! and at most one HTTP/2 connection, which every request to that origin shares while it is
//! open. An HTTP/1.1 connection goes back to the pool only when its response body was read to
//! the end: the proxy holds it in a [`Lease`] beside the body and calls [`Lease::release`]
//! then (a body cut short drops the lease, and hyper closes that connection). So taking one
//! never meets a busy connection, no task is spawned per request to wait for it, and a
//! checkout is one lock and a `pop`.
//!
//! hyper-util's pooled client did the same work generically: ~6,000 instructions per request
//! (SipHash-keyed maps, a boxed future per checkout, a task per response to return the
//! connection) in the P1 profile. What it also did and this keeps: a request refused by a
//! pooled connection that closed before the request was written (the upstream's keep-alive
//! timeout racing the checkout, or an HTTP/2 connection's GOAWAY) is sent again on another
//! connection, since nothing of it reached the upstream; idle connections close after [`IDLE_TIMEOUT`] (checked at checkout
//! and by [`ProxyClient::reap`]); at most [`MAX_IDLE_PER_ORIGIN`] are kept per origin.

use super::ProxyBody;
use crate::address_policy::PolicyResolver;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::{Connection as _, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};
use tower::Service as _;

/// How long an idle connection is kept.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Most idle HTTP/1.1 connections kept per origin.
pub const MAX_IDLE_PER_ORIGIN: usize = 1024;

/// How often [`ProxyClient::reap`] closes connections idle for longer than [`IDLE_TIMEOUT`].
const REAP_EVERY: Duration = Duration::from_secs(10);

type Connector = HttpsConnector<HttpConnector<PolicyResolver>>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a request could not be sent or answered.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No connection: resolving, the address policy, TCP connect, TLS, or the HTTP handshake.
    #[error("could not connect")]
    Connect(#[source] BoxError),
    /// The connection failed while the request was sent or its response head awaited.
    #[error("request failed")]
    Request(#[source] hyper::Error),
    /// The request URL has no scheme or authority (the proxy always builds absolute URLs).
    #[error("the request URL is not absolute")]
    NotAbsolute,
}

impl UpstreamError {
    /// Whether no connection could be made (a 502 "could not be reached").
    pub fn is_connect(&self) -> bool {
        matches!(self, UpstreamError::Connect(_))
    }
}

/// An HTTP/1.1 connection in use: give it back with [`Lease::release`] once its response body
/// was read to the end; dropping it instead lets the connection close.
#[derive(Debug)]
pub struct Lease {
    origin: Arc<Origin>,
    sender: http1::SendRequest<ProxyBody>,
}

impl Lease {
    /// Returns the connection to its origin's idle list (unless it closed meanwhile or the
    /// list is full).
    pub fn release(self) {
        if self.sender.is_closed() {
            return;
        }
        let mut idle = self.origin.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE_PER_ORIGIN {
            idle.push(Idle { sender: self.sender, since: Instant::now() });
        }
    }
}

#[derive(Debug)]
struct Idle {
    sender: http1::SendRequest<ProxyBody>,
    since: Instant,
}

/// One origin's connections.
#[derive(Debug, Default)]
struct Origin {
    idle: Mutex<Vec<Idle>>,
    h2: Mutex<Option<http2::SendRequest<ProxyBody>>>,
}

impl Origin {
    /// The newest idle HTTP/1.1 connection still open; closed and expired ones are dropped.
    fn take_idle(&self, now: Instant) -> Option<http1::SendRequest<ProxyBody>> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(i) = idle.pop() {
            if !i.sender.is_closed() && now.saturating_duration_since(i.since) < IDLE_TIMEOUT {
                return Some(i.sender);
            }
        }
        None
    }

    /// The shared HTTP/2 connection, while it is open.
    fn h2(&self) -> Option<http2::SendRequest<ProxyBody>> {
        let mut h2 = self.h2.lock().unwrap_or_else(PoisonError::into_inner);
        match h2.as_ref() {
            Some(s) if !s.is_closed() => Some(s.clone()),
            Some(_) => {
                *h2 = None;
                None
            }
            None => None,
        }
    }
}

/// Origins by scheme and authority, the authority as the URL spells it (keyed by its text:
/// `Authority`'s own hash lowercases byte by byte, ~500 instructions a lookup; an authority
/// spelled two ways only gets two pools).
#[derive(Debug, Default)]
struct Origins {
    http: hashbrown::HashMap<Box<str>, Arc<Origin>>,
    https: hashbrown::HashMap<Box<str>, Arc<Origin>>,
}

#[derive(Debug)]
struct Inner {
    connector: Connector,
    origins: Mutex<Origins>,
}

/// The proxy's upstream HTTP client (cheap to clone: one shared pool).
#[derive(Debug, Clone)]
pub struct ProxyClient {
    inner: Arc<Inner>,
}

/// A new connection: HTTP/1.1 or, when ALPN chose it, HTTP/2.
enum Fresh {
    H1(http1::SendRequest<ProxyBody>),
    H2(http2::SendRequest<ProxyBody>),
}

impl ProxyClient {
    pub(super) fn new(connector: Connector) -> ProxyClient {
        ProxyClient { inner: Arc::new(Inner { connector, origins: Mutex::default() }) }
    }

    fn origin(&self, https: bool, authority: &Authority) -> Arc<Origin> {
        let mut origins = self.inner.origins.lock().unwrap_or_else(PoisonError::into_inner);
        let map = if https { &mut origins.https } else { &mut origins.http };
        if let Some(o) = map.get(authority.as_str()) {
            return o.clone();
        }
        map.entry(authority.as_str().into()).or_default().clone()
    }

    /// Sends `req` (an absolute URL) and waits for the response head. For an HTTP/1.1
    /// connection the [`Lease`] comes back with the response: release it when the body was
    /// read to the end. A `Host` header is added when the request has none.
    pub async fn request(
        &self,
        mut req: Request<ProxyBody>,
    ) -> Result<(Response<Incoming>, Option<Lease>), UpstreamError> {
        let (https, authority) = match (req.uri().scheme(), req.uri().authority()) {
            (Some(s), Some(a)) => (*s == Scheme::HTTPS, a.clone()),
            _ => return Err(UpstreamError::NotAbsolute),
        };
        let origin = self.origin(https, &authority);
        if let Some(mut h2) = origin.h2() {
            match h2.try_send_request(req).await {
                Ok(resp) => return Ok((resp, None)),
                Err(mut e) => match e.take_message() {
                    // The connection stopped taking streams (a GOAWAY, or it closed) before this
                    // request went out on it: forget it; a new connection takes the request.
                    Some(back) => {
                        *origin.h2.lock().unwrap_or_else(PoisonError::into_inner) = None;
                        req = back;
                    }
                    None => return Err(UpstreamError::Request(e.into_error())),
                },
            }
        }
        // HTTP/1.1 writes the request target as given: origin-form, with the authority in `Host`.
        let path = req.uri().path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"));
        *req.uri_mut() = Uri::from(path);
        if !req.headers().contains_key(http::header::HOST) {
            let host = HeaderValue::from_str(authority.as_str()).map_err(|e| UpstreamError::Connect(Box::new(e)))?;
            req.headers_mut().insert(http::header::HOST, host);
        }
        let now = Instant::now();
        while let Some(mut sender) = origin.take_idle(now) {
            if !sender.is_ready() && sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(req).await {
                Ok(resp) => return Ok((resp, Some(Lease { origin, sender }))),
                Err(mut e) => match e.take_message() {
                    // Refused before anything was written: another connection takes it.
                    Some(back) => req = back,
                    None => return Err(UpstreamError::Request(e.into_error())),
                },
            }
        }
        // Boxed: the connect and handshake futures are kilobytes, and every request's future
        // (moved whole into its task) would carry their space though few requests connect.
        // The absolute URL again (the connector needs it, and HTTP/2 sends it), built only
        // here: few requests connect.
        let scheme = if https { Scheme::HTTPS } else { Scheme::HTTP };
        let absolute = Uri::builder()
            .scheme(scheme)
            .authority(authority)
            .path_and_query(req.uri().path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/")))
            .build()
            .map_err(|e| UpstreamError::Connect(Box::new(e)))?;
        match Box::pin(self.connect(&absolute)).await? {
            Fresh::H1(mut sender) => {
                let resp = sender.send_request(req).await.map_err(UpstreamError::Request)?;
                Ok((resp, Some(Lease { origin, sender })))
            }
            Fresh::H2(mut sender) => {
                *origin.h2.lock().unwrap_or_else(PoisonError::into_inner) = Some(sender.clone());
                // HTTP/2 takes the target from the absolute URL (`:scheme`, `:authority`).
                req.headers_mut().remove(http::header::HOST);
                *req.uri_mut() = absolute;
                sender.send_request(req).await.map(|r| (r, None)).map_err(UpstreamError::Request)
            }
        }
    }

    /// Opens a connection to `uri`'s origin and starts its task.
    async fn connect(&self, uri: &Uri) -> Result<Fresh, UpstreamError> {
        let mut connector = self.inner.connector.clone();
        std::future::poll_fn(|cx| connector.poll_ready(cx)).await.map_err(UpstreamError::Connect)?;
        let io = connector.call(uri.clone()).await.map_err(UpstreamError::Connect)?;
        if io.connected().is_negotiated_h2() {
            let (sender, conn) = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .handshake(io)
                .await
                .map_err(|e| UpstreamError::Connect(Box::new(e)))?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "upstream HTTP/2 connection ended");
                }
            });
            return Ok(Fresh::H2(sender));
        }
        let (sender, conn) = http1::handshake(io).await.map_err(|e| UpstreamError::Connect(Box::new(e)))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream connection ended");
            }
        });
        Ok(Fresh::H1(sender))
    }

    /// Closes idle connections older than [`IDLE_TIMEOUT`] every [`REAP_EVERY`] until
    /// `shutdown` (a quiet gateway does not keep a burst's connections open).
    pub async fn reap(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        drop(self);
        let mut tick = tokio::time::interval(REAP_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            let Some(inner) = weak.upgrade() else { return };
            ProxyClient { inner }.sweep(Instant::now());
        }
    }

    /// Closes the idle connections older than [`IDLE_TIMEOUT`] at `now` (and closed ones), and
    /// forgets origins left with no connection that no request holds.
    fn sweep(&self, now: Instant) {
        let origins: Vec<Arc<Origin>> = {
            let o = self.inner.origins.lock().unwrap_or_else(PoisonError::into_inner);
            o.http.values().chain(o.https.values()).cloned().collect()
        };
        for origin in origins {
            let expired: Vec<Idle> = {
                let mut idle = origin.idle.lock().unwrap_or_else(PoisonError::into_inner);
                let (keep, expired) = std::mem::take(&mut *idle)
                    .into_iter()
                    .partition(|i| !i.sender.is_closed() && now.saturating_duration_since(i.since) < IDLE_TIMEOUT);
                *idle = keep;
                expired
            };
            // Dropped outside the lock: each drop ends a connection task.
            drop(expired);
            origin.h2();
        }
        // An origin only the map holds (no request, no lease) and without connections goes.
        let unused = |o: &Arc<Origin>| {
            Arc::strong_count(o) == 1
                && o.idle.lock().unwrap_or_else(PoisonError::into_inner).is_empty()
                && o.h2.lock().unwrap_or_else(PoisonError::into_inner).is_none()
        };
        let mut o = self.inner.origins.lock().unwrap_or_else(PoisonError::into_inner);
        o.http.retain(|_, origin| !unused(origin));
        o.https.retain(|_, origin| !unused(origin));
    }

    /// Origins the pool knows (tests).
    pub fn origins(&self) -> usize {
        let o = self.inner.origins.lock().unwrap_or_else(PoisonError::into_inner);
        o.http.len() + o.https.len()
    }

    /// Idle HTTP/1.1 connections kept, over every origin (tests).
    pub fn idle_connections(&self) -> usize {
        let o = self.inner.origins.lock().unwrap_or_else(PoisonError::into_inner);
        o.http
            .values()
            .chain(o.https.values())
            .map(|x| x.idle.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address_policy::AddressPolicy;
    use bytes::Bytes;
    use http_body_util::BodyExt as _;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    fn connector(tls: rustls::ClientConfig) -> Connector {
        let mut http = HttpConnector::new_with_resolver(PolicyResolver::new(Arc::new(AddressPolicy::default())));
        http.enforce_http(false);
        hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http)
    }

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::aws_lc_rs::default_provider())
    }

    fn plain_client() -> ProxyClient {
        let tls = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap_or_else(|e| panic!("{e}"))
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        ProxyClient::new(connector(tls))
    }

    fn get(url: &str) -> Request<ProxyBody> {
        let mut req = Request::new(ProxyBody::new(Bytes::from_static(b"{}")));
        *req.method_mut() = http::Method::POST;
        *req.uri_mut() = url.parse().unwrap_or_else(|e| panic!("{e}"));
        req
    }

    /// A real HTTP server (hyper's, HTTP/1.1 and HTTP/2) on loopback, optionally over TLS with
    /// ALPN; counts the connections it accepted and answers each request with the protocol
    /// version it arrived in and its `Host`. With `goaway`, a TLS connection is shut down
    /// gracefully (HTTP/2: a GOAWAY) once it answered its first request.
    async fn server(tls: Option<Arc<rustls::ServerConfig>>, goaway: bool) -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let scheme = if tls.is_some() { "https" } else { "http" };
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { return };
                count.fetch_add(1, Ordering::SeqCst);
                let tls = tls.clone();
                tokio::spawn(async move {
                    let served = Arc::new(tokio::sync::Notify::new());
                    let signal = served.clone();
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let signal = signal.clone();
                        async move {
                            let host =
                                req.headers().get(http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("-");
                            let text = format!("{:?} {host} {}", req.version(), req.uri().path());
                            signal.notify_one();
                            Ok::<_, std::convert::Infallible>(Response::new(http_body_util::Full::new(Bytes::from(
                                text,
                            ))))
                        }
                    });
                    let auto = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    match tls {
                        Some(cfg) => {
                            let Ok(stream) = tokio_rustls::TlsAcceptor::from(cfg).accept(tcp).await else { return };
                            let conn = auto.serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
                            tokio::pin!(conn);
                            if goaway {
                                tokio::select! {
                                    _ = conn.as_mut() => return,
                                    _ = served.notified() => {}
                                }
                                conn.as_mut().graceful_shutdown();
                            }
                            let _ = conn.await;
                        }
                        None => {
                            let _ = auto.serve_connection(hyper_util::rt::TokioIo::new(tcp), svc).await;
                        }
                    }
                });
            }
        });
        (format!("{scheme}://{addr}"), accepted)
    }

    /// A TLS server config for `127.0.0.1` offering HTTP/2 and HTTP/1.1, and a client config
    /// trusting it.
    fn tls_pair() -> (Arc<rustls::ServerConfig>, rustls::ClientConfig) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap_or_else(|e| panic!("{e}"));
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
            .and_then(|p| p.self_signed(&key))
            .unwrap_or_else(|e| panic!("{e}"));
        let key_der = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap_or_else(|e| panic!("{e}"));
        let mut server_cfg = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap_or_else(|e| panic!("{e}"))
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key_der)
            .unwrap_or_else(|e| panic!("{e}"));
        server_cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.der().clone()).unwrap_or_else(|e| panic!("{e}"));
        let client_cfg = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap_or_else(|e| panic!("{e}"))
            .with_root_certificates(roots)
            .with_no_client_auth();
        (Arc::new(server_cfg), client_cfg)
    }

    async fn text(resp: Response<Incoming>) -> String {
        let body = resp.into_body().collect().await.unwrap_or_else(|e| panic!("{e}")).to_bytes();
        String::from_utf8_lossy(&body).into_owned()
    }

    #[tokio::test]
    async fn http1_connections_are_reused_once_their_body_was_read() {
        let (base, accepted) = server(None, false).await;
        let client = plain_client();
        for i in 0..5 {
            let (resp, lease) = client.request(get(&format!("{base}/v1/x{i}"))).await.unwrap_or_else(|e| panic!("{e}"));
            let host = base.trim_start_matches("http://");
            assert_eq!(text(resp).await, format!("HTTP/1.1 {host} /v1/x{i}"), "origin-form target, Host added");
            lease.unwrap_or_else(|| panic!("an HTTP/1.1 lease")).release();
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "one connection served all five");
        assert_eq!(client.idle_connections(), 1);

        // Two requests at once need two connections; both come back.
        let (a, b) = tokio::join!(client.request(get(&format!("{base}/a"))), client.request(get(&format!("{base}/b"))));
        let ((ra, la), (rb, lb)) = (a.unwrap_or_else(|e| panic!("{e}")), b.unwrap_or_else(|e| panic!("{e}")));
        text(ra).await;
        text(rb).await;
        la.into_iter().chain(lb).for_each(Lease::release);
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        assert_eq!(client.idle_connections(), 2);
    }

    /// The reaper's sweep closes connections idle for longer than the timeout and forgets an
    /// origin left with nothing; a leased connection keeps its origin.
    #[tokio::test]
    async fn idle_connections_expire_and_empty_origins_are_forgotten() {
        let (base, accepted) = server(None, false).await;
        let (other, _) = server(None, false).await;
        let client = plain_client();
        let (resp, lease) = client.request(get(&format!("{base}/a"))).await.unwrap_or_else(|e| panic!("{e}"));
        text(resp).await;
        lease.into_iter().for_each(Lease::release);
        let (resp, held) = client.request(get(&format!("{other}/b"))).await.unwrap_or_else(|e| panic!("{e}"));
        text(resp).await;
        assert_eq!((client.idle_connections(), client.origins()), (1, 2));
        client.sweep(Instant::now());
        assert_eq!((client.idle_connections(), client.origins()), (1, 2), "nothing expired yet");
        client.sweep(Instant::now() + IDLE_TIMEOUT);
        assert_eq!(client.idle_connections(), 0, "the idle connection expired");
        assert_eq!(client.origins(), 1, "the origin of the held lease stays");
        drop(held);
        client.sweep(Instant::now());
        assert_eq!(client.origins(), 0);
        let (resp, _) = client.request(get(&format!("{base}/c"))).await.unwrap_or_else(|e| panic!("{e}"));
        text(resp).await;
        assert_eq!(accepted.load(Ordering::SeqCst), 2, "a new connection after the old one expired");
    }

    #[tokio::test]
    async fn a_dropped_lease_is_never_reused() {
        let (base, accepted) = server(None, false).await;
        let client = plain_client();
        for _ in 0..3 {
            let (resp, lease) = client.request(get(&format!("{base}/v1/x"))).await.unwrap_or_else(|e| panic!("{e}"));
            drop(lease);
            text(resp).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3, "a body not read to its end through the lease is not pooled");
        assert_eq!(client.idle_connections(), 0);
    }

    /// An upstream that answers and then closes the connection without saying so: the next
    /// request still gets its answer (a closed connection is skipped, or the request refused
    /// by it before anything was written goes out on a new one).
    #[tokio::test]
    async fn a_connection_the_upstream_closed_is_not_used_again() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut tcp, _)) = listener.accept().await else { return };
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut got = Vec::new();
                    while !got.windows(6).any(|w| w == b"\r\n\r\n{}") {
                        match tcp.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => got.extend_from_slice(&buf[..n]),
                        }
                    }
                    let _ = tcp.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
                    let _ = tcp.shutdown().await;
                });
            }
        });
        let client = plain_client();
        for _ in 0..3 {
            let (resp, lease) =
                client.request(get(&format!("http://{addr}/v1/x"))).await.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(text(resp).await, "ok");
            if let Some(l) = lease {
                l.release();
            }
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    /// Over TLS, ALPN picks HTTP/2 and every request to the origin shares that connection,
    /// concurrent ones included; no lease (nothing to give back).
    #[tokio::test]
    async fn https_upstreams_negotiate_http2_and_share_one_connection() {
        let (server_cfg, tls) = tls_pair();
        let (base, accepted) = server(Some(server_cfg), false).await;
        let client = ProxyClient::new(connector(tls));
        let (resp, lease) = client.request(get(&format!("{base}/v1/first"))).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(lease.is_none());
        assert_eq!(text(resp).await, "HTTP/2.0 - /v1/first", "HTTP/2: the authority travels as :authority, not Host");
        let reqs = (0..4).map(|i| client.request(get(&format!("{base}/v1/c{i}"))));
        for (i, r) in futures_util::future::join_all(reqs).await.into_iter().enumerate() {
            let (resp, lease) = r.unwrap_or_else(|e| panic!("{e}"));
            assert!(lease.is_none());
            assert_eq!(text(resp).await, format!("HTTP/2.0 - /v1/c{i}"));
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "one HTTP/2 connection for all five");
    }

    /// An HTTP/2 upstream that sends GOAWAY after its first answer (as servers do when they
    /// rotate connections): the next request is answered on a new connection, whether the
    /// pool saw the old one close or the request was refused by it before it was sent.
    #[tokio::test]
    async fn an_http2_goaway_moves_the_next_request_to_a_new_connection() {
        let (server_cfg, tls) = tls_pair();
        let (base, accepted) = server(Some(server_cfg), true).await;
        let client = ProxyClient::new(connector(tls));
        for i in 0..3 {
            let (resp, lease) = client.request(get(&format!("{base}/v1/r{i}"))).await.unwrap_or_else(|e| panic!("{e}"));
            assert!(lease.is_none());
            assert_eq!(text(resp).await, format!("HTTP/2.0 - /v1/r{i}"));
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3, "each connection served one request, then went away");
    }

    /// Every request's future is moved into its task whole: the connect path (7 KB of
    /// connector and handshake futures) is boxed so that it is not carried by all of them.
    #[test]
    fn a_request_future_stays_small() {
        let client = plain_client();
        let fut = client.request(get("http://127.0.0.1:9/x"));
        assert!(std::mem::size_of_val(&fut) <= 1536, "{} bytes", std::mem::size_of_val(&fut));
    }

    #[tokio::test]
    async fn connect_failures_are_told_apart() {
        // A port nothing listens on (bound, then closed).
        let addr =
            std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).unwrap_or_else(|e| panic!("{e}"));
        let err = plain_client().request(get(&format!("http://{addr}/x"))).await.err();
        assert!(err.as_ref().is_some_and(UpstreamError::is_connect), "{err:?}");
        let err = plain_client().request(get("/relative")).await.err();
        assert!(matches!(err, Some(UpstreamError::NotAbsolute)), "{err:?}");
    }
}
