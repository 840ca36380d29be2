//! The HTTP routes, served by hyper on the plain and TLS listeners.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, LOCATION};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::server::conn::auto;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Largest `/bytes/{n}` body; bigger requests are clamped to it.
pub(crate) const MAX_BYTES: u64 = 1 << 30;
/// Longest `/delay/{ms}`; bigger requests are clamped to it.
const MAX_DELAY_MS: u64 = 3_600_000;
/// `/headers` counts at most this much of the request body.
const MAX_ECHO_BODY: u64 = 1 << 20;

const JSON_BODY: &str = r#"{"status":"UP","version":"1.0","checks":{"db":"UP"}}"#;
const NOT_FOUND_BODY: &str = "not found; routes: /ok /delay/{ms} /status/{code} /redirect/{n} \
/redirect-loop /flap/{ms} /json /bytes/{n} /endless /headers /method /trickle /header-flood /malformed\n";

/// One static chunk shared by every streamed body, so streaming costs no allocation.
static CHUNK: [u8; 16 * 1024] = [b'a'; 16 * 1024];

pub(crate) type Server = auto::Builder<TrackedExecutor>;

/// hyper's HTTP/1.1 + HTTP/2 connection builder, spawning h2 stream tasks on the sim's tracker.
pub(crate) fn server(token: CancellationToken, tracker: TaskTracker) -> Server {
    let mut builder = auto::Builder::new(TrackedExecutor { token, tracker });
    builder.http1().keep_alive(true);
    builder.http2().max_concurrent_streams(1024);
    builder
}

/// A hyper executor that keeps every task it starts tracked and cancellable.
#[derive(Clone)]
pub(crate) struct TrackedExecutor {
    token: CancellationToken,
    tracker: TaskTracker,
}

impl<F> hyper::rt::Executor<F> for TrackedExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        let token = self.token.clone();
        self.tracker.spawn(async move {
            token.run_until_cancelled_owned(fut).await;
        });
    }
}

/// The hyper service for one connection.
pub(crate) fn service() -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<SimBody>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<SimBody>, Infallible>> + Send,
> + Clone {
    hyper::service::service_fn(|req| async move { Ok(route(req).await) })
}

async fn route(req: Request<Incoming>) -> Response<SimBody> {
    let path = req.uri().path();
    if path == "/ok" {
        return text(StatusCode::OK, "ok");
    }
    if path == "/json" {
        return with_type(
            text(StatusCode::OK, JSON_BODY),
            HeaderValue::from_static("application/json"),
        );
    }
    if path == "/redirect-loop" {
        return redirect("/redirect-loop");
    }
    if path == "/endless" {
        return octets(SimBody::Endless);
    }
    if path == "/headers" || path == "/method" {
        return echo(req).await;
    }
    if let Some(ms) = path.strip_prefix("/delay/") {
        let Ok(ms) = ms.parse::<u64>() else {
            return text(StatusCode::BAD_REQUEST, "bad delay; use /delay/{ms}\n");
        };
        tokio::time::sleep(Duration::from_millis(ms.min(MAX_DELAY_MS))).await;
        return text(StatusCode::OK, "ok");
    }
    if let Some(code) = path.strip_prefix("/status/") {
        return status(code);
    }
    if let Some(period) = path.strip_prefix("/flap/") {
        return flap(period);
    }
    if let Some(n) = path.strip_prefix("/redirect/") {
        return match n.parse::<u64>() {
            // n redirects in all, like httpbin: /redirect/1 goes straight to /ok.
            Ok(0) => text(StatusCode::OK, "ok\n"),
            Ok(1) => redirect("/ok"),
            Ok(n) => redirect(&format!("/redirect/{}", n - 1)),
            Err(_) => text(StatusCode::BAD_REQUEST, "bad count; use /redirect/{n}\n"),
        };
    }
    if let Some(n) = path.strip_prefix("/bytes/") {
        let Ok(n) = n.parse::<u64>() else {
            return text(StatusCode::BAD_REQUEST, "bad size; use /bytes/{n}\n");
        };
        return octets(SimBody::Sized {
            remaining: n.min(MAX_BYTES),
        });
    }
    text(StatusCode::NOT_FOUND, NOT_FOUND_BODY)
}

/// `/flap/{period_ms}`: 200 during even periods of wall-clock time and 500 during odd
/// ones, so a monitored check changes state on a known rhythm.
fn flap(period: &str) -> Response<SimBody> {
    let Some(period) = period.parse::<u64>().ok().filter(|p| *p > 0) else {
        return text(StatusCode::BAD_REQUEST, "bad period; use /flap/{ms}\n");
    };
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    if (now_ms / period).is_multiple_of(2) {
        text(StatusCode::OK, "up\n")
    } else {
        text(StatusCode::INTERNAL_SERVER_ERROR, "down\n")
    }
}

fn status(code: &str) -> Response<SimBody> {
    let Some(requested) = code.parse::<u16>().ok().filter(|c| (100..=599).contains(c)) else {
        return text(StatusCode::BAD_REQUEST, "bad status; use /status/{100..599}\n");
    };
    // hyper turns a final 1xx response into a 500, so 1xx is answered as 200.
    let code = if requested < 200 { 200 } else { requested };
    let Ok(status) = StatusCode::from_u16(code) else {
        return text(StatusCode::BAD_REQUEST, "bad status\n");
    };
    let mut resp = if matches!(code, 204 | 304) {
        empty(status)
    } else {
        text(status, format!("status {requested}\n"))
    };
    resp.headers_mut()
        .insert("x-requested-status", HeaderValue::from(requested));
    resp
}

/// `{"method":..,"uri":..,"version":..,"headers":{name: value},"body_len":n}`;
/// repeated headers are joined with ", ".
async fn echo(req: Request<Incoming>) -> Response<SimBody> {
    let (parts, mut body) = req.into_parts();
    let mut headers = serde_json::Map::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        match headers.get_mut(name.as_str()) {
            Some(serde_json::Value::String(existing)) => {
                existing.push_str(", ");
                existing.push_str(&value);
            }
            _ => {
                headers.insert(name.as_str().to_owned(), value.into());
            }
        }
    }
    let mut body_len = 0u64;
    while body_len < MAX_ECHO_BODY {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    body_len += data.len() as u64;
                }
            }
            Some(Err(_)) | None => break,
        }
    }
    let json = serde_json::json!({
        "method": parts.method.as_str(),
        "uri": parts.uri.to_string(),
        "version": format!("{:?}", parts.version),
        "headers": headers,
        "body_len": body_len,
    });
    let mut resp = with_type(
        text(StatusCode::OK, json.to_string()),
        HeaderValue::from_static("application/json"),
    );
    if parts.method == Method::HEAD {
        *resp.body_mut() = SimBody::Full(None);
    }
    resp
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<SimBody> {
    let mut resp = Response::new(SimBody::Full(Some(body.into())));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

fn empty(status: StatusCode) -> Response<SimBody> {
    let mut resp = Response::new(SimBody::Full(None));
    *resp.status_mut() = status;
    resp
}

fn with_type(mut resp: Response<SimBody>, content_type: HeaderValue) -> Response<SimBody> {
    resp.headers_mut().insert(CONTENT_TYPE, content_type);
    resp
}

fn octets(body: SimBody) -> Response<SimBody> {
    with_type(
        Response::new(body),
        HeaderValue::from_static("application/octet-stream"),
    )
}

fn redirect(location: &str) -> Response<SimBody> {
    let mut resp = text(StatusCode::FOUND, "redirect\n");
    if let Ok(value) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(LOCATION, value);
    }
    resp
}

/// Response bodies: small fixed ones, exact-size streams and endless streams,
/// all without per-chunk allocation.
pub(crate) enum SimBody {
    Full(Option<Bytes>),
    Sized { remaining: u64 },
    Endless,
}

impl Body for SimBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let frame = match self.get_mut() {
            SimBody::Full(body) => body.take().filter(|b| !b.is_empty()),
            SimBody::Sized { remaining } => {
                if *remaining == 0 {
                    None
                } else {
                    let n = (*remaining).min(CHUNK.len() as u64);
                    *remaining -= n;
                    Some(Bytes::from_static(&CHUNK[..n as usize]))
                }
            }
            SimBody::Endless => Some(Bytes::from_static(&CHUNK)),
        };
        Poll::Ready(frame.map(|data| Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        match self {
            SimBody::Full(body) => body.as_ref().is_none_or(Bytes::is_empty),
            SimBody::Sized { remaining } => *remaining == 0,
            SimBody::Endless => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            SimBody::Full(body) => SizeHint::with_exact(body.as_ref().map_or(0, |b| b.len() as u64)),
            SimBody::Sized { remaining } => SizeHint::with_exact(*remaining),
            SimBody::Endless => SizeHint::default(),
        }
    }
}
