//! Socket setup and the accept loops of every TCP listener.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use hyper_util::rt::TokioIo;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::AsyncReadExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::{http, raw};

/// Listen backlog; the kernel clamps it to `net.core.somaxconn`.
const BACKLOG: i32 = 4096;
/// A TLS client gets this long to finish its handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What every accept loop and connection task shares.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub(crate) token: CancellationToken,
    pub(crate) tracker: TaskTracker,
    pub(crate) http: Arc<http::Server>,
}

impl Ctx {
    pub(crate) fn new(token: CancellationToken, tracker: TaskTracker) -> Self {
        let http = Arc::new(http::server(token.clone(), tracker.clone()));
        Self { token, tracker, http }
    }

    /// Runs `fut` as a tracked task that ends at once when the sim shuts down.
    fn spawn_conn<F>(&self, fut: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let token = self.token.clone();
        self.tracker.spawn(async move {
            token.run_until_cancelled_owned(fut).await;
        });
    }
}

/// A non-blocking TCP listener with a large backlog.
pub(crate) fn bind_tcp(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let bind = || -> io::Result<TcpListener> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        if addr.is_ipv6() {
            socket.set_only_v6(true)?;
        }
        // Lets a fixed --port be reused at once after a restart (TIME_WAIT).
        socket.set_reuse_address(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&SockAddr::from(addr))?;
        socket.listen(BACKLOG)?;
        TcpListener::from_std(socket.into())
    };
    bind().with_context(|| format!("cannot listen on {addr}"))
}

/// Binds an ephemeral port without listening on it. While the socket lives
/// the port cannot be taken by anyone else, and connecting to it is refused.
pub(crate) fn reserve_refused(addr: SocketAddr) -> anyhow::Result<(Socket, SocketAddr)> {
    let reserve = || -> io::Result<(Socket, SocketAddr)> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.bind(&SockAddr::from(addr))?;
        let local = socket
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("bound socket has no IP address"))?;
        Ok((socket, local))
    };
    reserve().with_context(|| format!("cannot reserve a refused port on {addr}"))
}

/// Accepts until shutdown, handing each connection to `on_conn`.
async fn accept_loop(listener: TcpListener, ctx: &Ctx, mut on_conn: impl FnMut(TcpStream)) {
    loop {
        let accepted = tokio::select! {
            () = ctx.token.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _peer)) => on_conn(stream),
            Err(err) => {
                // Usually EMFILE/ENFILE: back off instead of spinning; the
                // backlog keeps pending clients until descriptors free up.
                tracing::warn!(%err, "accept failed");
                tokio::select! {
                    () = ctx.token.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(20)) => {}
                }
            }
        }
    }
}

/// Plain HTTP: raw behaviours are detected by peeking the request line,
/// everything else goes to hyper (HTTP/1.1 or h2c).
pub(crate) async fn serve_plain_http(listener: TcpListener, ctx: Ctx) {
    accept_loop(listener, &ctx, |stream| {
        let server = ctx.http.clone();
        ctx.spawn_conn(async move {
            let _ = stream.set_nodelay(true);
            match raw::detect(&stream).await {
                raw::Detected::Closed => {}
                raw::Detected::Raw(route) => {
                    let _ = raw::serve(route, stream).await;
                }
                raw::Detected::Http1 => {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), http::service())
                        .await;
                }
                raw::Detected::Http => {
                    let _ = server.serve_connection(TokioIo::new(stream), http::service()).await;
                }
            }
        });
    })
    .await;
}

/// HTTPS with the given certificate; raw behaviours are not served here.
pub(crate) async fn serve_tls(listener: TcpListener, config: Arc<rustls::ServerConfig>, ctx: Ctx) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    accept_loop(listener, &ctx, |stream| {
        let server = ctx.http.clone();
        let acceptor = acceptor.clone();
        ctx.spawn_conn(async move {
            let _ = stream.set_nodelay(true);
            let Ok(Ok(tls)) = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await else {
                return;
            };
            let _ = server.serve_connection(TokioIo::new(tls), http::service()).await;
        });
    })
    .await;
}

/// Holds each connection open, discarding whatever the peer sends and never
/// answering, until the peer closes or the sim shuts down.
pub(crate) async fn serve_blackhole(listener: TcpListener, ctx: Ctx) {
    accept_loop(listener, &ctx, |stream| {
        // Reading (and dropping) is the only way to notice the peer closing.
        ctx.spawn_conn(discard_until_eof(stream));
    })
    .await;
}

/// Accepts, then closes with SO_LINGER 0 so the peer gets a TCP RST.
pub(crate) async fn serve_reset(listener: TcpListener, ctx: Ctx) {
    accept_loop(listener, &ctx, |stream| {
        // With linger 0, close() does not block; it just sends the RST.
        let _ = stream.set_zero_linger();
        drop(stream);
    })
    .await;
}

async fn discard_until_eof(mut stream: TcpStream) {
    let mut buf = [0u8; 512];
    while let Ok(1..) = stream.read(&mut buf).await {}
}
