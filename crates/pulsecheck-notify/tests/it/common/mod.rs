//! Test receivers on loopback port 0: an HTTP/1.1 responder that records requests and
//! answers by policy, and a minimal SMTP server that records messages. Both stop when
//! dropped.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pulsecheck_core::outbox::{AlertEvent, AlertKind, CauseResult};
use pulsecheck_core::{Outcome, Reason};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// An alert for `check`, numbered `seq`, for `channel`: key `{check}:{seq}:{channel}`.
pub fn event(check: &str, seq: u32, channel: &str, kind: AlertKind) -> AlertEvent {
    let at: jiff::Timestamp = "2026-01-01T03:00:00Z".parse().unwrap();
    let (from, to, reason, error, outcome) = match kind {
        AlertKind::Resolved => ("down", "up", None, None, Outcome::Up),
        _ => (
            "up",
            "down",
            Some(Reason::Timeout),
            Some("no verdict within 5s".to_owned()),
            Outcome::Down,
        ),
    };
    AlertEvent {
        idempotency_key: format!("{check}:{seq}:{channel}"),
        kind,
        check: check.to_owned(),
        group: Some("web".into()),
        target: format!("https://{check}.example.com/health"),
        from: from.into(),
        to: to.into(),
        at,
        reason,
        error: error.clone(),
        cause: vec![CauseResult {
            at,
            outcome,
            reason,
            error,
            duration_ms: 5000.0,
        }],
    }
}

pub fn down(check: &str, seq: u32, channel: &str) -> AlertEvent {
    event(check, seq, channel, AlertKind::Down)
}

/// Polls `done` every 5 ms until it holds or `within` passes (works with paused time too).
pub async fn wait_until(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if done() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

// ---------------------------------------------------------------------------------
// HTTP

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    Status(u16),
    /// Status with a `Retry-After: N` header.
    RetryAfter(u16, u64),
    /// Read the request, never answer.
    Hang,
}

#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub reply: Reply,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }

    pub fn key(&self) -> String {
        self.header("idempotency-key").unwrap_or_default().to_owned()
    }
}

type Policy = Arc<dyn Fn(usize, &Request) -> Reply + Send + Sync>;

pub struct HttpReceiver {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
    cancel: CancellationToken,
    _tasks: TaskTracker,
}

impl Drop for HttpReceiver {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl HttpReceiver {
    /// Answers each request with `policy(index of the request, request)`.
    pub async fn start(policy: impl Fn(usize, &Request) -> Reply + Send + Sync + 'static) -> HttpReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let cancel = CancellationToken::new();
        let tasks = TaskTracker::new();
        let policy: Policy = Arc::new(policy);
        {
            let (requests, cancel, inner) = (requests.clone(), cancel.clone(), tasks.clone());
            tasks.spawn(async move {
                loop {
                    let stream = tokio::select! {
                        () = cancel.cancelled() => return,
                        accepted = listener.accept() => match accepted {
                            Ok((stream, _)) => stream,
                            Err(_) => continue,
                        },
                    };
                    let (requests, cancel, policy) = (requests.clone(), cancel.clone(), policy.clone());
                    inner.spawn(async move {
                        tokio::select! {
                            () = cancel.cancelled() => {}
                            () = serve_http(stream, requests, policy) => {}
                        }
                    });
                }
            });
        }
        HttpReceiver {
            addr,
            requests,
            cancel,
            _tasks: tasks,
        }
    }

    pub async fn ok() -> HttpReceiver {
        HttpReceiver::start(|_, _| Reply::Status(200)).await
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    pub async fn wait_for(&self, count: usize, within: Duration) -> Vec<Request> {
        assert!(
            wait_until(within, || self.requests.lock().unwrap().len() >= count).await,
            "expected {count} requests, got {:?}",
            self.requests()
        );
        self.requests()
    }
}

async fn serve_http(stream: TcpStream, requests: Arc<Mutex<Vec<Request>>>, policy: Policy) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_owned();
        let path = parts.next().unwrap_or_default().to_owned();
        let mut headers = Vec::new();
        loop {
            let mut header = String::new();
            match reader.read_line(&mut header).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
            }
        }
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).await.is_err() {
            return;
        }
        let mut request = Request {
            method,
            path,
            headers,
            body,
            reply: Reply::Hang,
        };
        let reply = {
            let mut all = requests.lock().unwrap();
            request.reply = policy(all.len(), &request);
            all.push(request.clone());
            request.reply
        };
        let (status, extra) = match reply {
            Reply::Hang => {
                std::future::pending::<()>().await;
                return;
            }
            Reply::Status(status) => (status, String::new()),
            Reply::RetryAfter(status, secs) => (status, format!("retry-after: {secs}\r\n")),
        };
        let body = format!("answer {status}");
        let response = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n{extra}\r\n{body}",
            body.len()
        );
        if reader.get_mut().write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

// ---------------------------------------------------------------------------------
// SMTP

#[derive(Clone, Debug)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

impl Mail {
    /// The value of a header in the message (unfolded).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or_default();
        let mut found: Option<String> = None;
        for line in head.split("\r\n") {
            if line.starts_with(' ') || line.starts_with('\t') {
                if let Some(value) = found.as_mut() {
                    value.push(' ');
                    value.push_str(line.trim());
                }
                continue;
            }
            if found.is_some() {
                break;
            }
            if let Some((n, v)) = line.split_once(':') {
                if n.eq_ignore_ascii_case(name) {
                    found = Some(v.trim().to_owned());
                }
            }
        }
        found
    }

    pub fn body(&self) -> String {
        self.data
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default()
    }
}

pub struct SmtpReceiver {
    pub addr: SocketAddr,
    mails: Arc<Mutex<Vec<Mail>>>,
    cancel: CancellationToken,
    _tasks: TaskTracker,
}

impl Drop for SmtpReceiver {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl SmtpReceiver {
    /// `rcpt_reply`: the answer to RCPT TO instead of 250 (e.g. "451 4.3.0 try later").
    pub async fn start(rcpt_reply: Option<&'static str>) -> SmtpReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mails = Arc::new(Mutex::new(Vec::new()));
        let cancel = CancellationToken::new();
        let tasks = TaskTracker::new();
        {
            let (mails, cancel, inner) = (mails.clone(), cancel.clone(), tasks.clone());
            tasks.spawn(async move {
                loop {
                    let stream = tokio::select! {
                        () = cancel.cancelled() => return,
                        accepted = listener.accept() => match accepted {
                            Ok((stream, _)) => stream,
                            Err(_) => continue,
                        },
                    };
                    let (mails, cancel) = (mails.clone(), cancel.clone());
                    inner.spawn(async move {
                        tokio::select! {
                            () = cancel.cancelled() => {}
                            _ = serve_smtp(stream, mails, rcpt_reply) => {}
                        }
                    });
                }
            });
        }
        SmtpReceiver {
            addr,
            mails,
            cancel,
            _tasks: tasks,
        }
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().unwrap().clone()
    }
}

async fn serve_smtp(
    stream: TcpStream,
    mails: Arc<Mutex<Vec<Mail>>>,
    rcpt_reply: Option<&'static str>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    reader.get_mut().write_all(b"220 test.local ESMTP ready\r\n").await?;
    let (mut from, mut to) = (String::new(), Vec::new());
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_owned();
        let upper = command.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") {
            "250-test.local\r\n250 8BITMIME\r\n".into()
        } else if upper.starts_with("HELO") {
            "250 test.local\r\n".into()
        } else if upper.starts_with("MAIL FROM:") {
            from = command[10..].trim().to_owned();
            to.clear();
            "250 2.1.0 ok\r\n".into()
        } else if upper.starts_with("RCPT TO:") {
            match rcpt_reply {
                Some(reply) => format!("{reply}\r\n"),
                None => {
                    to.push(command[8..].trim().to_owned());
                    "250 2.1.5 ok\r\n".into()
                }
            }
        } else if upper == "DATA" {
            reader.get_mut().write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
            let mut data = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" {
                    break;
                }
                let line = line.strip_prefix('.').unwrap_or(&line);
                data.push_str(line);
            }
            mails.lock().unwrap().push(Mail {
                from: from.clone(),
                to: to.clone(),
                data,
            });
            "250 2.0.0 queued\r\n".into()
        } else if upper == "QUIT" {
            reader.get_mut().write_all(b"221 2.0.0 bye\r\n").await?;
            return Ok(());
        } else if upper == "RSET" || upper == "NOOP" {
            "250 2.0.0 ok\r\n".into()
        } else {
            "502 5.5.2 not implemented\r\n".into()
        };
        reader.get_mut().write_all(reply.as_bytes()).await?;
    }
}
