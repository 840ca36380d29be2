//! Idle HTTP connections kept between checks when connection reuse is asked for
//! (`--reuse-connections`). By default every check opens a fresh connection and this
//! pool stays empty.
//!
//! A pooled connection is driven by its own tracked task and owned by exactly one check
//! at a time. Whoever holds it and drops it without putting it back closes it at once
//! (its task is cancelled), so a check cut short by its deadline never leaves a
//! half-used connection behind.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Mutex;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::informational::InformationalCount;
use super::TrackedExecutor;
use crate::result::CertificateInfo;

/// Connections are interchangeable only for the same scheme, host, port and
/// verification mode (an `--insecure` handshake must not serve a verifying check).
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct PoolKey {
    pub https: bool,
    pub host: String,
    pub port: u16,
    pub insecure: bool,
}

/// The request side of a client connection of either HTTP version.
pub enum Sender {
    Http1(http1::SendRequest<Empty<Bytes>>),
    Http2(http2::SendRequest<Empty<Bytes>>),
}

impl Sender {
    pub fn is_http2(&self) -> bool {
        matches!(self, Sender::Http2(_))
    }

    pub async fn send_request(&mut self, request: Request<Empty<Bytes>>) -> hyper::Result<Response<Incoming>> {
        match self {
            Sender::Http1(sender) => sender.send_request(request).await,
            Sender::Http2(sender) => sender.send_request(request).await,
        }
    }

    /// Waits until the connection can take a request: a reused one may still be
    /// finishing its previous response. An error means it closed meanwhile.
    pub async fn ready(&mut self) -> hyper::Result<()> {
        match self {
            Sender::Http1(sender) => sender.ready().await,
            Sender::Http2(sender) => sender.ready().await,
        }
    }

    fn is_closed(&self) -> bool {
        match self {
            Sender::Http1(sender) => sender.is_closed(),
            Sender::Http2(sender) => sender.is_closed(),
        }
    }
}

/// One connection and what its handshake established, reported again by every check
/// that reuses it.
pub struct PooledConnection {
    pub sender: Sender,
    pub ip: IpAddr,
    pub certificate: Option<CertificateInfo>,
    /// Counts each request's informational responses (see [`super::informational`]).
    pub informational: InformationalCount,
    /// Cancels the connection's task when this handle is dropped.
    _close_on_drop: DropGuard,
}

#[derive(Default)]
pub struct Pool {
    idle: Mutex<HashMap<PoolKey, Vec<PooledConnection>>>,
    /// Parent of every connection's token: dropping the pool closes them all.
    shutdown: CancellationToken,
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Pool {
    /// Drives `connection` on its own tracked task until it ends, the returned handle
    /// is dropped, or the pool is.
    pub fn adopt<C>(
        &self,
        executor: &TrackedExecutor,
        connection: C,
        sender: Sender,
        ip: IpAddr,
        certificate: Option<CertificateInfo>,
        informational: InformationalCount,
    ) -> PooledConnection
    where
        C: Future + Send + 'static,
    {
        let token = self.shutdown.child_token();
        let cancelled = token.clone();
        executor.0.spawn(async move {
            tokio::select! {
                _ = connection => {}
                _ = cancelled.cancelled() => {}
            }
        });
        PooledConnection {
            sender,
            ip,
            certificate,
            informational,
            _close_on_drop: token.drop_guard(),
        }
    }

    /// An idle connection that is not known to be closed, if any; closed ones found on
    /// the way are dropped. The caller waits for it to be [ready](Sender::ready).
    pub fn take(&self, key: &PoolKey) -> Option<PooledConnection> {
        let mut idle = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let list = idle.get_mut(key)?;
        let mut found = None;
        while let Some(connection) = list.pop() {
            if !connection.sender.is_closed() {
                found = Some(connection);
                break;
            }
        }
        if list.is_empty() {
            idle.remove(key);
        }
        found
    }

    /// Keeps a connection whose last response was read to the end, for the next check.
    pub fn put(&self, key: PoolKey, connection: PooledConnection) {
        let mut idle = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        idle.entry(key).or_default().push(connection);
    }
}
