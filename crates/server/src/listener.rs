//! The accept loop. Each accepted connection is served over HTTP/1.1 or h2c (HTTP/2 with prior
//! knowledge, detected from its first bytes), or with `--tls-*` over TLS first (whose handshake
//! must finish within the header-read timeout), with the limits that keep clients from exhausting the
//! server: a cap on open connections, a deadline for request heads, an idle timeout (which also
//! bounds how long a request body may stop arriving, and how long a response may wait for a client
//! that stopped reading it) and HTTP/2 keep-alive pings. A connection is idle only while no request is in flight, and a request stays
//! in flight until its response body has been sent, so a SubscribeToShard stream is never cut.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::Request;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;

use crate::http::App;
use crate::observe::ConnectionMetrics;

/// How long the accept loop pauses when the process is out of file descriptors, so that it does
/// not spin while connections close.
const OUT_OF_DESCRIPTORS_PAUSE: Duration = Duration::from_millis(100);

/// The connection limits (`--max-connections`, `--header-read-timeout-secs`,
/// `--idle-timeout-secs`, `--http2-keepalive-secs`).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub max_connections: u32,
    /// A new connection must send a complete request head within this long; for HTTP/1.1 also
    /// each next request head after a response (so it bounds idle keep-alive connections too).
    /// None: no deadline.
    pub header_read_timeout: Option<Duration>,
    /// A connection with no request in flight for this long is closed (HTTP/2: GOAWAY); a request
    /// body of which nothing arrives for this long fails.
    pub idle_timeout: Option<Duration>,
    /// HTTP/2 PING interval; a peer that does not answer within the same time is disconnected.
    pub http2_keepalive: Option<Duration>,
}

/// Serves `app` on `listener` (over TLS when `tls` is given) until `shutdown` resolves, then stops
/// accepting, lets every connection finish its in-flight requests, and returns once all
/// connections are closed.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Arc<App>,
    limits: ConnectionLimits,
    metrics: ConnectionMetrics,
    shutdown: impl Future<Output = ()>,
) {
    let builder = Arc::new(http_builder(&limits));
    let permits = Arc::new(Semaphore::new(limits.max_connections as usize));
    let (stop, stopping) = watch::channel(false);
    let mut refusing = false;
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    accept_failed(&error).await;
                    continue;
                }
            },
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            // Closed at once: the client learns now, instead of waiting in the backlog for a
            // slot that idle connections may hold for a whole idle timeout.
            metrics.refused.inc();
            if !refusing {
                tracing::warn!(
                    max_connections = limits.max_connections,
                    "connection limit reached: refusing new connections"
                );
                refusing = true;
            }
            drop(stream);
            continue;
        };
        refusing = false;
        let connection = Connection {
            builder: Arc::clone(&builder),
            app: Arc::clone(&app),
            limits,
            metrics: metrics.clone(),
            stopping: stopping.clone(),
        };
        let tls = tls.clone();
        tokio::spawn(async move {
            connection.accept(stream, tls).await;
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop.send(true);
    // Every connection holds a permit until it is closed.
    let _ = permits.acquire_many(limits.max_connections).await;
}

fn http_builder(limits: &ConnectionLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    let mut http2 = builder.http2();
    http2.timer(TokioTimer::new()).keep_alive_interval(limits.http2_keepalive);
    if let Some(interval) = limits.http2_keepalive {
        http2.keep_alive_timeout(interval);
    }
    builder
}

async fn accept_failed(error: &std::io::Error) {
    // EMFILE / ENFILE: the descriptor limit is reached; the connection waits in the backlog
    // until a descriptor is free.
    if matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
        tracing::warn!(%error, "cannot accept a connection: out of file descriptors");
        tokio::time::sleep(OUT_OF_DESCRIPTORS_PAUSE).await;
    } else {
        tracing::debug!(%error, "accept failed");
    }
}

/// One accepted connection and what serving it needs.
struct Connection {
    builder: Arc<auto::Builder<TokioExecutor>>,
    app: Arc<App>,
    limits: ConnectionLimits,
    metrics: ConnectionMetrics,
    stopping: watch::Receiver<bool>,
}

impl Connection {
    /// Serves the connection, after the TLS handshake when `tls` is given; it counts as open (and
    /// holds its slot) from the start of the handshake.
    async fn accept(mut self, stream: TcpStream, tls: Option<TlsAcceptor>) {
        // Event-stream frames and small responses must leave at once: without TCP_NODELAY,
        // Nagle's algorithm holds them back until the client's delayed ACK (tens of ms).
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        let _open = self.metrics.opened();
        match tls {
            None => self.serve(stream).await,
            Some(acceptor) => {
                if let Some(stream) = self.handshake(&acceptor, stream).await {
                    self.serve(stream).await;
                }
            }
        }
    }

    /// The TLS handshake, within the header-read timeout so that a client that connects and says
    /// nothing (or stops halfway) cannot hold a connection slot; None when it failed, timed out
    /// or the server is stopping.
    async fn handshake(
        &mut self,
        acceptor: &TlsAcceptor,
        stream: TcpStream,
    ) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
        let handshake = acceptor.accept(stream);
        let deadline = self.limits.header_read_timeout;
        let bounded = async move {
            match deadline {
                Some(limit) => tokio::time::timeout(limit, handshake).await.ok(),
                None => Some(handshake.await),
            }
        };
        let outcome = tokio::select! {
            outcome = bounded => outcome,
            _ = self.stopping.wait_for(|stopping| *stopping) => return None,
        };
        match outcome {
            Some(Ok(stream)) => return Some(stream),
            Some(Err(error)) => tracing::debug!(%error, "TLS handshake failed"),
            None => tracing::debug!("TLS handshake not finished within the header-read timeout"),
        }
        self.metrics.tls_handshake_failures.inc();
        None
    }

    async fn serve<I>(mut self, stream: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let activity = Activity::default();
        let app = self.app;
        let idle_timeout = self.limits.idle_timeout;
        let service = {
            let activity = activity.clone();
            hyper::service::service_fn(move |request: Request<Incoming>| {
                let in_flight = activity.begin();
                let request = request.map(|body| Body::new(StallGuarded::new(body, idle_timeout)));
                let app = Arc::clone(&app);
                async move {
                    let response = app.respond(request).await;
                    Ok::<_, Infallible>(response.map(|body| HeldBody { body, _in_flight: in_flight }))
                }
            })
        };
        let stream = WriteStallGuarded { io: stream, limit: idle_timeout, stall: None };
        let connection = self.builder.serve_connection(TokioIo::new(stream), service);
        tokio::pin!(connection);
        let idle = activity.idle(self.limits.header_read_timeout, self.limits.idle_timeout);
        tokio::pin!(idle);
        let mut closing = false;
        loop {
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                    return;
                }
                () = &mut idle => {
                    if closing {
                        // Still open a whole idle period after being asked to close (a client that
                        // never finished its request head, say): dropped.
                        tracing::debug!("dropping a connection that did not close");
                        return;
                    }
                    tracing::debug!("closing an idle connection");
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                    idle.set(activity.idle(self.limits.header_read_timeout, self.limits.idle_timeout));
                }
                _ = self.stopping.wait_for(|stopping| *stopping), if !closing => {
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    }
}

/// The number of requests in flight on one connection.
#[derive(Clone, Default)]
struct Activity(Arc<watch::Sender<usize>>);

impl Activity {
    fn begin(&self) -> InFlight {
        self.0.send_modify(|requests| *requests += 1);
        InFlight(self.clone())
    }

    /// Resolves once no request has been in flight for `first` (before any request has been
    /// seen) or `then` (after); never when both are None.
    async fn idle(&self, first: Option<Duration>, then: Option<Duration>) {
        let mut changes = self.0.subscribe();
        let mut limit = first.or(then);
        loop {
            let busy = *changes.borrow_and_update() > 0;
            match limit {
                Some(limit) if !busy => {
                    if tokio::time::timeout(limit, changes.changed()).await.is_err() {
                        return;
                    }
                }
                // The sender lives as long as this activity does, so `changed` cannot fail here.
                _ => {
                    let _ = changes.changed().await;
                }
            }
            limit = then;
        }
    }
}

/// A request in flight, from the moment its head is parsed until its response body is dropped.
struct InFlight(Activity);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0 .0.send_modify(|requests| *requests = requests.saturating_sub(1));
    }
}

/// A request body that fails once none of it has arrived for the idle timeout: a client that stops
/// sending the body it announced would otherwise hold its request, and its connection, forever.
/// The failure answers the request with a 400 and closes an HTTP/1.1 connection.
struct StallGuarded {
    body: Incoming,
    limit: Option<Duration>,
    /// Created the first time the body is waited for; most bodies arrive with their head.
    stall: Option<Pin<Box<tokio::time::Sleep>>>,
}

#[derive(Debug, thiserror::Error)]
#[error("no part of the request body arrived for {0:?}")]
struct BodyStalled(Duration);

impl StallGuarded {
    fn new(body: Incoming, limit: Option<Duration>) -> Self {
        Self { body, limit, stall: None }
    }
}

impl hyper::body::Body for StallGuarded {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Pending => {
                let Some(limit) = this.limit else { return Poll::Pending };
                let stall = this.stall.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                match stall.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(BodyStalled(limit).into()))),
                    Poll::Pending => Poll::Pending,
                }
            }
            Poll::Ready(frame) => {
                if let (Some(stall), Some(limit)) = (&mut this.stall, this.limit) {
                    stall.as_mut().reset(tokio::time::Instant::now() + limit);
                }
                Poll::Ready(frame.map(|frame| frame.map_err(Into::into)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The connection's IO, failing a write that has made no progress for the idle timeout. A client
/// that stops reading its response would otherwise keep that request in flight — so the idle
/// timeout never closes its connection — and the response's share of the response budget held,
/// for as long as it stays connected. Only a write the server is waiting on counts: a silent
/// SubscribeToShard stream writes nothing and is not cut.
struct WriteStallGuarded<I> {
    io: I,
    limit: Option<Duration>,
    /// Created the first time a write has to wait; reset whenever one makes progress.
    stall: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<I> WriteStallGuarded<I> {
    fn guard<T>(&mut self, cx: &mut Context<'_>, written: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        let Some(limit) = self.limit else { return written };
        match written {
            Poll::Pending => {
                let stall = self.stall.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                match stall.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("the client read nothing of its response for {limit:?}"),
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
            Poll::Ready(result) => {
                if let Some(stall) = &mut self.stall {
                    stall.as_mut().reset(tokio::time::Instant::now() + limit);
                }
                Poll::Ready(result)
            }
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for WriteStallGuarded<I> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for WriteStallGuarded<I> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.io).poll_write(cx, buf);
        self.guard(cx, written)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.guard(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let flushed = Pin::new(&mut self.io).poll_flush(cx);
        self.guard(cx, flushed)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The response body, holding its request in flight until the body is sent or abandoned. Its size
/// hint is the body's, so that a response of known length keeps its `Content-Length`.
struct HeldBody {
    body: Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for HeldBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
