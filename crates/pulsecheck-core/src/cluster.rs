//! Several `serve` nodes on one shared store: membership, leases and fencing.
//!
//! Each node registers as a [`Member`] and renews its row with a heartbeat. Every unit
//! of work that must run on exactly one node (a check; with a location quorum, a check
//! at one location; the store's housekeeping) has a lease, keyed by a string. A lease is
//! a row with an owner, an expiry and a **fencing epoch** that grows every time the
//! lease changes hands. Expiries are computed by the store's clock, never the nodes'.
//!
//! A node writes a run with the [`Fence`] of the lease it ran under; the store commits
//! the run (result, state, transition and notifications together) only while that lease
//! is still held by the node with that epoch and has not expired, checked in the same
//! transaction. A node that was paused or partitioned past its lease therefore cannot
//! write or cause a notification, whatever it believes.
//!
//! No session advisory locks: they do not survive a connection pooler in transaction
//! mode. Leases are rows.

pub mod memory;

use std::time::Duration;

use crate::outbox::BoxFuture;
use crate::storage::StorageError;

/// A live node, as the store lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Unique in the cluster; stable across restarts of the same node.
    pub node: String,
    /// Where the node probes from, for checks with a location quorum.
    pub location: Option<String>,
}

/// A lease a node holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub key: String,
    /// Grows every time the lease changes hands; kept while the same node renews it.
    pub epoch: i64,
    /// When it lapses unless renewed, by the store's clock.
    pub expires_at: jiff::Timestamp,
}

/// What a write carries to prove that its writer still owns the work: the lease key,
/// the node and the epoch it ran under.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Fence {
    pub key: String,
    pub node: String,
    pub epoch: i64,
}

/// Membership and leases, implemented by shared stores (PostgreSQL) and in memory for
/// tests. A single-node store (SQLite) does not need one: its node owns everything and
/// writes without a fence.
pub trait Coordinator: Send + Sync + 'static {
    /// Registers or renews `member` until now + `ttl` (the store's clock), and returns
    /// every live member, this one included, ordered by node id.
    fn heartbeat<'a>(&'a self, member: &'a Member, ttl: Duration) -> BoxFuture<'a, Result<Vec<Member>, StorageError>>;

    /// Takes or renews the leases `keys` for `node` until now + `ttl`: a key nobody
    /// holds, whose lease expired, or that `node` already holds. Taking a lease (from
    /// nobody or from another node) increments its epoch; renewing keeps it. Returns the
    /// leases `node` holds among `keys` afterwards; a key held by another live lease is
    /// missing.
    fn acquire<'a>(
        &'a self,
        node: &'a str,
        keys: &'a [String],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Vec<Lease>, StorageError>>;

    /// Gives up these leases of `node` at once (the work moved to another node, or the
    /// node stops), so that the next owner need not wait for them to expire. A lease no
    /// longer held by `node` is left alone.
    fn release<'a>(&'a self, node: &'a str, keys: &'a [String]) -> BoxFuture<'a, Result<(), StorageError>>;

    /// Leaves the cluster: removes the member and releases all its leases.
    fn leave<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<(), StorageError>>;
}
