//! A plain HTTP/1 request written by the probe itself, before hyper exists.
//!
//! hyper reserves about 24 KiB per client connection on its first poll (read and write
//! buffers and its request channel, 8 KiB each, with no setting for their first size),
//! and a check spends most of its life waiting for the server. So the probe writes the
//! request, waits until the socket is readable holding only the socket, and then hands it
//! to hyper behind [`AlreadySent`], which drops the copy of the request hyper writes.
//! hyper still parses every byte the server sends. [`encode_head`] must write what hyper
//! would: a test compares the two byte for byte.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Request;
use http_body_util::Empty;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The request line and headers as hyper writes them for a request without a body
/// (which drops any `Transfer-Encoding`). Every part was validated by `http` and `url`
/// (no CR, LF or NUL can occur), so nothing the user wrote can split the request.
pub fn encode_head(request: &Request<Empty<Bytes>>) -> Vec<u8> {
    let target = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let mut head = Vec::with_capacity(128 + target.len());
    head.extend_from_slice(request.method().as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(target.as_bytes());
    head.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in request.headers() {
        if name == http::header::TRANSFER_ENCODING {
            continue;
        }
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    head
}

/// A stream whose request is already on the wire: what hyper writes is dropped, and its
/// shutdown is left to the close that follows (the same FIN, one system call fewer).
///
/// Reads wait until hyper has written its request: hyper treats bytes that arrive on a
/// connection with no request in flight as an error, and it polls its read side first.
/// The first read held back does not wake the task: [`FirstPollTwice`] polls hyper again
/// at once.
pub struct AlreadySent {
    stream: TcpStream,
    request_written: bool,
    read_held_back: bool,
}

impl AlreadySent {
    pub fn new(stream: TcpStream) -> AlreadySent {
        AlreadySent {
            stream,
            request_written: false,
            read_held_back: false,
        }
    }
}

impl AsyncRead for AlreadySent {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if !self.request_written {
            if std::mem::replace(&mut self.read_held_back, true) {
                // Not expected (hyper writes in the poll that first reads), but never
                // left without a wake-up.
                cx.waker().wake_by_ref();
            }
            return Poll::Pending;
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

/// hyper's connection future over an [`AlreadySent`] stream: its first poll polls hyper
/// twice, once to take the request (its read held back) and once to read the response,
/// which is already there. Waking the task instead would cost a trip through the
/// scheduler, and on an idle runtime a parked worker woken for nothing.
pub struct FirstPollTwice<C> {
    conn: C,
    first: bool,
}

impl<C> FirstPollTwice<C> {
    pub fn new(conn: C) -> FirstPollTwice<C> {
        FirstPollTwice { conn, first: true }
    }
}

impl<C: Future + Unpin> Future for FirstPollTwice<C> {
    type Output = C::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<C::Output> {
        let first = std::mem::replace(&mut self.first, false);
        match Pin::new(&mut self.conn).poll(cx) {
            Poll::Pending if first => Pin::new(&mut self.conn).poll(cx),
            polled => polled,
        }
    }
}

impl AsyncWrite for AlreadySent {
    fn poll_write(mut self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.request_written = true;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use http::{HeaderValue, Method};
    use hyper_util::rt::TokioIo;
    use url::Url;

    use super::*;
    use crate::options::CheckOptions;
    use crate::probe::http::{build_request, close_after};

    /// The plain path writes the request itself and discards what hyper encodes: the
    /// bytes on the wire must be exactly hyper's, for every method and header a user can
    /// give (hyper drops `Transfer-Encoding` from a request without a body).
    #[tokio::test]
    async fn the_plain_path_writes_the_request_hyper_would() {
        use tokio::io::AsyncReadExt as _;
        type Case = (&'static str, Method, Vec<(&'static str, &'static str)>);
        let cases: Vec<Case> = vec![
            ("http://example.test/", Method::GET, vec![]),
            ("http://example.test:8080/a/b%20c?x=1&y=%C3%A9", Method::HEAD, vec![]),
            (
                "http://[::1]:81/p",
                Method::POST,
                vec![
                    ("user-agent", "custom/1.0"),
                    ("x-token", "abc"),
                    ("transfer-encoding", "chunked"),
                    ("connection", "keep-alive"),
                ],
            ),
            (
                "http://127.0.0.1/q?",
                Method::from_bytes(b"PURGE").unwrap(),
                vec![("accept", "text/plain")],
            ),
        ];
        for (url, method, headers) in cases {
            let url = Url::parse(url).unwrap();
            let options = CheckOptions {
                method: method.clone(),
                headers: headers
                    .iter()
                    .map(|(n, v)| (n.parse().unwrap(), HeaderValue::from_str(v).unwrap()))
                    .collect(),
                ..CheckOptions::default()
            };
            let request = || {
                let mut request = build_request(&url, &method, &options, false).unwrap();
                close_after(&mut request);
                request
            };
            let (client, mut server) = tokio::io::duplex(64 * 1024);
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(client))
                .await
                .unwrap();
            let mut tasks = tokio::task::JoinSet::new();
            tasks.spawn(async move { drop(conn.await) });
            let sent = sender.send_request(request());
            tasks.spawn(async move { drop(sent.await) });
            let mut written = Vec::new();
            while !written.ends_with(b"\r\n\r\n") {
                let mut chunk = [0u8; 1024];
                let n = server.read(&mut chunk).await.unwrap();
                assert!(n > 0, "hyper closed before ending the head: {written:?}");
                written.extend_from_slice(&chunk[..n]);
            }
            assert_eq!(
                String::from_utf8_lossy(&encode_head(&request())),
                String::from_utf8_lossy(&written),
                "{method} {url}"
            );
            tasks.abort_all();
        }
    }

    /// Until hyper has written, reads are held back: the first without a wake-up
    /// ([`FirstPollTwice`] polls again), any later one with a wake-up, so that a read
    /// held back outside the first poll can never leave the check waiting for nothing.
    #[tokio::test]
    async fn reads_wait_for_the_request_and_never_without_a_wake_up() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        use tokio::io::AsyncWriteExt as _;

        struct Count(AtomicUsize);
        impl std::task::Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        server.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        client.readable().await.unwrap();

        let wakes = Arc::new(Count(AtomicUsize::new(0)));
        let waker = std::task::Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        let mut stream = AlreadySent::new(client);
        let mut storage = [0u8; 64];
        let mut read = |stream: &mut AlreadySent, cx: &mut Context<'_>| {
            let mut buf = ReadBuf::new(&mut storage);
            let polled = Pin::new(stream).poll_read(cx, &mut buf);
            (polled.is_ready(), buf.filled().len())
        };
        assert_eq!(
            read(&mut stream, &mut cx),
            (false, 0),
            "the response is there, but no request yet"
        );
        assert_eq!(
            wakes.0.load(Ordering::SeqCst),
            0,
            "the first read held back wakes nobody"
        );
        assert_eq!(read(&mut stream, &mut cx), (false, 0));
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1, "a second one does");

        let written = Pin::new(&mut stream).poll_write(&mut cx, b"GET / HTTP/1.1\r\n\r\n");
        assert!(matches!(written, Poll::Ready(Ok(18))), "hyper's copy is taken whole");
        assert_eq!(read(&mut stream, &mut cx), (true, 19), "then the response is read");
    }
}
