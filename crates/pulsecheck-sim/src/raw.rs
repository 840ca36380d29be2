//! Behaviours hyper cannot produce, written straight to the TCP stream:
//! `/trickle` (slow headers), `/header-flood` (endless headers) and
//! `/malformed` (not HTTP at all).

use std::io::{self, Write as _};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;

const STATUS_LINE: &[u8] = b"HTTP/1.1 200 OK\r\n";
const MALFORMED: &[u8] = b"THIS IS NOT HTTP\r\n\r\n";
/// `/trickle` writes this, one byte at a time, over and over.
const TRICKLE_CYCLE: &[u8] = b"X-Trickle: a\r\n";
const TRICKLE_EVERY: Duration = Duration::from_millis(200);
/// Longest method we wait for before deciding a request is not raw.
const MAX_METHOD: usize = 16;
/// How long an incomplete request line may take before it goes to hyper anyway.
const PEEK_PATIENCE: Duration = Duration::from_secs(1);
const PEEK_RETRY: Duration = Duration::from_millis(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Trickle,
    HeaderFlood,
    Malformed,
}

const ROUTES: [(&[u8], Route); 3] = [
    (b"/trickle", Route::Trickle),
    (b"/header-flood", Route::HeaderFlood),
    (b"/malformed", Route::Malformed),
];

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Detected {
    /// The peer closed (or failed) before sending anything.
    Closed,
    /// A raw route: serve it with [`serve`].
    Raw(Route),
    /// HTTP/1: hand the untouched stream to hyper's HTTP/1 server.
    Http1,
    /// Anything else (h2c prior knowledge): hand it to hyper's auto-detecting server.
    Http,
}

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Raw(Route),
    Http,
    NeedMore,
}

/// Classifies the start of a request line: `<METHOD> <path>[ ?]`.
fn classify(buf: &[u8]) -> Verdict {
    let Some(sp) = buf.iter().position(|&b| b == b' ') else {
        return if buf.len() < MAX_METHOD && buf.iter().all(u8::is_ascii_alphabetic) {
            Verdict::NeedMore
        } else {
            Verdict::Http
        };
    };
    if sp == 0 || sp > MAX_METHOD || !buf[..sp].iter().all(u8::is_ascii_alphabetic) {
        return Verdict::Http;
    }
    let target = &buf[sp + 1..];
    let mut need_more = false;
    for (path, route) in ROUTES {
        if target.len() > path.len() {
            if target.starts_with(path) && matches!(target[path.len()], b' ' | b'?') {
                return Verdict::Raw(route);
            }
        } else if path.starts_with(target) {
            need_more = true;
        }
    }
    if need_more {
        Verdict::NeedMore
    } else {
        Verdict::Http
    }
}

/// Peeks (without consuming) until the request line says whether this is a
/// raw route. The common case costs one `peek` call.
pub(crate) async fn detect(stream: &TcpStream) -> Detected {
    let mut buf = [0u8; 64];
    let started = tokio::time::Instant::now();
    loop {
        let n = match stream.peek(&mut buf).await {
            Ok(0) | Err(_) => return Detected::Closed,
            Ok(n) => n,
        };
        match classify(&buf[..n]) {
            Verdict::Raw(route) => return Detected::Raw(route),
            // Most clients speak HTTP/1; skipping hyper's version sniffing for them
            // saves the simulator work on every connection of a benchmark.
            Verdict::Http if !buf[..n].starts_with(b"PRI ") => return Detected::Http1,
            Verdict::Http => return Detected::Http,
            // peek returns at once while any byte is buffered, so waiting for
            // the rest of a split request line means polling.
            Verdict::NeedMore if n < buf.len() && started.elapsed() < PEEK_PATIENCE => {
                tokio::time::sleep(PEEK_RETRY).await;
            }
            Verdict::NeedMore => return Detected::Http,
        }
    }
}

/// Serves a raw route until the peer disconnects (or, for `/malformed`, until done).
pub(crate) async fn serve(route: Route, mut stream: TcpStream) -> io::Result<()> {
    match route {
        Route::Malformed => {
            // Consume the request first: closing with unread data would send
            // an RST and the peer might never see the bytes.
            let mut buf = [0u8; 4096];
            let _ = stream.try_read(&mut buf);
            stream.write_all(MALFORMED).await?;
            stream.shutdown().await?;
            let _ = tokio::time::timeout(Duration::from_secs(2), discard(&mut stream)).await;
            Ok(())
        }
        Route::Trickle | Route::HeaderFlood => {
            let (mut reader, mut writer) = stream.split();
            tokio::select! {
                // The request is read and ignored so that the peer closing is noticed.
                () = discard(&mut reader) => Ok(()),
                res = async {
                    writer.write_all(STATUS_LINE).await?;
                    if route == Route::Trickle {
                        trickle(&mut writer).await
                    } else {
                        header_flood(&mut writer).await
                    }
                } => res,
            }
        }
    }
}

async fn discard(reader: &mut (impl AsyncRead + Unpin)) {
    let mut buf = [0u8; 512];
    while let Ok(1..) = reader.read(&mut buf).await {}
}

/// One header byte every 200 ms, forever.
async fn trickle(writer: &mut (impl AsyncWrite + Unpin)) -> io::Result<()> {
    for &byte in TRICKLE_CYCLE.iter().cycle() {
        tokio::time::sleep(TRICKLE_EVERY).await;
        writer.write_all(&[byte]).await?;
    }
    Ok(())
}

/// `X-Flood-N: aaaa…` header lines, as fast as the peer reads them.
async fn header_flood(writer: &mut (impl AsyncWrite + Unpin)) -> io::Result<()> {
    const BATCH: usize = 16 * 1024;
    let value = [b'a'; 64];
    let mut buf = Vec::with_capacity(BATCH + 128);
    let mut n: u64 = 0;
    loop {
        buf.clear();
        while buf.len() < BATCH {
            write!(buf, "X-Flood-{n}: ")?;
            buf.extend_from_slice(&value);
            buf.extend_from_slice(b"\r\n");
            n += 1;
        }
        writer.write_all(&buf).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_request_lines() {
        assert_eq!(classify(b"GET /trickle HTTP/1.1\r\n"), Verdict::Raw(Route::Trickle));
        assert_eq!(
            classify(b"POST /malformed?x=1 HTTP/1.1"),
            Verdict::Raw(Route::Malformed)
        );
        assert_eq!(
            classify(b"HEAD /header-flood HTTP/1.1"),
            Verdict::Raw(Route::HeaderFlood)
        );
        assert_eq!(classify(b"GET /trickles HTTP/1.1"), Verdict::Http);
        assert_eq!(classify(b"GET /ok HTTP/1.1"), Verdict::Http);
        assert_eq!(classify(b"PRI * HTTP/2.0\r\n"), Verdict::Http);
        assert_eq!(classify(b"\x16\x03\x01"), Verdict::Http);
        assert_eq!(classify(b"GE"), Verdict::NeedMore);
        assert_eq!(classify(b"GET /tri"), Verdict::NeedMore);
        assert_eq!(classify(b"GET /trickle"), Verdict::NeedMore);
        assert_eq!(classify(b"GET /"), Verdict::NeedMore);
        assert_eq!(classify(b"GET /o"), Verdict::Http);
    }
}
