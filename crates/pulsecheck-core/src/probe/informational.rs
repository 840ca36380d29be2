//! A cap on the informational (`1xx`) responses one HTTP/1 request may receive.
//!
//! hyper skips `100 Continue`, `102 Processing` and the like in a loop inside one poll,
//! reading again for as long as the socket has bytes: a server that floods them would
//! hold a runtime worker, and push every other check on it past its deadline. hyper
//! reports each one to an [`on_informational`](hyper::ext::on_informational) callback,
//! which counts them here, and the connection's IO is wrapped so that its next read
//! yields to the runtime after any `1xx` and fails (as `InvalidData`: a `protocol`
//! failure) once the request has received more than [`MAX_INFORMATIONAL_RESPONSES`].

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Request;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Real servers send one or two (`100 Continue`, `103 Early Hints`).
pub const MAX_INFORMATIONAL_RESPONSES: usize = 8;

/// The informational responses received for the current request of one connection.
#[derive(Clone, Debug, Default)]
pub struct InformationalCount(Arc<AtomicUsize>);

impl InformationalCount {
    /// Counts `request`'s informational responses, from zero: a pooled connection
    /// carries many requests.
    pub fn watch<B>(&self, request: &mut Request<B>) {
        self.0.store(0, Ordering::Relaxed);
        let count = self.0.clone();
        hyper::ext::on_informational(request, move |_| {
            count.fetch_add(1, Ordering::Relaxed);
        });
    }
}

/// A connection's IO, capped by its [`InformationalCount`].
pub struct InformationalCap<I> {
    io: I,
    count: InformationalCount,
    /// The count at the last read, to yield once whenever it moved.
    seen: usize,
}

impl<I> InformationalCap<I> {
    pub fn new(io: I, count: &InformationalCount) -> InformationalCap<I> {
        InformationalCap {
            io,
            count: count.clone(),
            seen: 0,
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for InformationalCap<I> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let count = self.count.0.load(Ordering::Relaxed);
        if count > MAX_INFORMATIONAL_RESPONSES {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("more than {MAX_INFORMATIONAL_RESPONSES} informational (1xx) responses to one request"),
            )));
        }
        if count != self.seen {
            // hyper would read and parse the next batch in this same poll: let other
            // tasks run first.
            self.seen = count;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for InformationalCap<I> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
