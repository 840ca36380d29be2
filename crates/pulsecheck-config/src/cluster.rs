//! `cluster:` and `store.url`: several `serve` nodes on one shared PostgreSQL store.
//! Each node registers under `node` (default: the host name), optionally with a
//! `location`, and holds its checks by leases that last `lease_ttl`, renewed every
//! third of it. A node claims a notification for `claim_ttl` while it delivers it.
//! SQLite is one node's file, so `cluster:` needs a PostgreSQL store.

use std::time::Duration;

use super::de::Spanned;
use super::raw::{RawCluster, RawStore};
use super::validate::Validator;

/// The default lease TTL: a dead node's checks resume elsewhere within it.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(15);
/// Shorter leases would be renewed more often than a loaded store answers reliably.
pub const MIN_LEASE_TTL: Duration = Duration::from_secs(3);
/// Longer leases leave a dead node's checks unwatched for too long.
pub const MAX_LEASE_TTL: Duration = Duration::from_secs(600);
const MAX_NODE_CHARS: usize = 100;
/// The default claim on a notification: a dead node's deliveries move after it.
pub const DEFAULT_CLAIM_TTL: Duration = Duration::from_secs(120);
/// A claim shorter than this would lapse under a delivery on a loaded store.
pub const MIN_CLAIM_TTL: Duration = Duration::from_secs(5);
pub const MAX_CLAIM_TTL: Duration = Duration::from_secs(3600);
/// How much longer than a channel's timeout a claim lasts at least: room for the claim
/// and settle queries on a loaded store.
pub const CLAIM_MARGIN: Duration = Duration::from_secs(5);

/// The `cluster:` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterConfig {
    /// This node's name; `None`: the host name, decided by the binary.
    pub node: Option<String>,
    /// Where this node probes from (for checks with a location quorum).
    pub location: Option<String>,
    /// How long a lease and a membership last without renewal.
    pub lease_ttl: Duration,
    /// How long a node holds a notification it is delivering before another node may
    /// take it over; `None`: [`claim_ttl`] decides from the channels' timeouts.
    pub claim_ttl: Option<Duration>,
}

/// The claim on a notification being delivered: `configured`, else the default, made
/// longer than twice the longest channel `timeout` so a slow but live delivery is never
/// taken over.
pub fn claim_ttl(configured: Option<Duration>, channel_timeouts: impl IntoIterator<Item = Duration>) -> Duration {
    configured.unwrap_or_else(|| {
        let longest = channel_timeouts.into_iter().max().unwrap_or_default();
        DEFAULT_CLAIM_TTL.max(longest * 2)
    })
}

impl ClusterConfig {
    /// How often leases and membership are renewed: a third of the TTL, so two renewals
    /// can fail before a lease lapses.
    pub fn heartbeat(&self) -> Duration {
        self.lease_ttl / 3
    }
}

/// Whether `url` names a PostgreSQL database.
pub fn is_postgres_url(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

/// `store.url`: a PostgreSQL URL, exclusive with `store.path`.
pub(crate) fn store_url(v: &mut Validator<'_>, raw: &RawStore) -> Option<String> {
    let url = raw.url.as_ref()?;
    if let Some(path) = &raw.path {
        v.error(
            url.loc,
            format!("store.url and store.path (line {}) are both set", path.loc.line),
            Some("keep one: url for a shared PostgreSQL store, path for this node's SQLite file".into()),
        );
        return None;
    }
    let text = url.value.trim();
    let rest = text.split_once("://").map(|(_, rest)| rest).unwrap_or_default();
    if !is_postgres_url(text) || rest.is_empty() || rest.starts_with('/') {
        v.error(
            url.loc,
            "store.url is not a PostgreSQL URL",
            Some(
                "write postgres://USER:${PGPASSWORD}@HOST:5432/DB (keep the password in the environment); \
                 for SQLite use store.path"
                    .into(),
            ),
        );
        return None;
    }
    Some(text.to_owned())
}

/// `cluster:`, checked against the store: a cluster needs a shared store, so an
/// explicit SQLite `store.path` is an error (without a store at all, the binary decides,
/// since `--store` may name one).
pub(crate) fn cluster(
    v: &mut Validator<'_>,
    raw: Option<&Spanned<RawCluster>>,
    store: Option<&Spanned<RawStore>>,
    channels: &[pulsecheck_core::channel::ChannelSpec],
) -> Option<ClusterConfig> {
    let raw = raw?;
    if let Some(path) = store.and_then(|s| s.value.path.as_ref()) {
        v.error(
            raw.loc,
            format!(
                "cluster: needs a shared PostgreSQL store, but store.path (line {}) is an SQLite file",
                path.loc.line
            ),
            Some("replace store.path with store.url: postgres://USER:${PGPASSWORD}@HOST/DB, or remove cluster:".into()),
        );
    }
    let r = &raw.value;
    let label = |v: &mut Validator<'_>, what: &str, value: &Option<Spanned<String>>| {
        let value = value.as_ref()?;
        let text = value.value.as_str();
        let bad = text.is_empty()
            || text.chars().count() > MAX_NODE_CHARS
            || text.chars().any(|c| c.is_whitespace() || c.is_control() || c == '@');
        if bad {
            v.error(
                value.loc,
                format!("cluster {what} {text:?} is not a usable name"),
                Some(format!(
                    "use 1 to {MAX_NODE_CHARS} characters without spaces, control characters or '@', e.g. eu-1"
                )),
            );
            return None;
        }
        Some(text.to_owned())
    };
    let node = label(v, "node", &r.node);
    let location = label(v, "location", &r.location);
    let lease_ttl = match &r.lease_ttl {
        Some(ttl) if ttl.value.0 < MIN_LEASE_TTL || ttl.value.0 > MAX_LEASE_TTL => {
            v.error(
                ttl.loc,
                format!("lease_ttl {:?} is out of range", ttl.value.0),
                Some(format!(
                    "use {}s to {}s; leases are renewed every third of it, and a dead node's checks move \
                     within it",
                    MIN_LEASE_TTL.as_secs(),
                    MAX_LEASE_TTL.as_secs()
                )),
            );
            DEFAULT_LEASE_TTL
        }
        Some(ttl) => ttl.value.0,
        None => DEFAULT_LEASE_TTL,
    };
    let claim_ttl = r.claim_ttl.as_ref().and_then(|ttl| {
        let value = ttl.value.0;
        if !(MIN_CLAIM_TTL..=MAX_CLAIM_TTL).contains(&value) {
            v.error(
                ttl.loc,
                format!("claim_ttl {value:?} is out of range"),
                Some(format!(
                    "use {}s to {}s; a dead node's deliveries move to another node after it",
                    MIN_CLAIM_TTL.as_secs(),
                    MAX_CLAIM_TTL.as_secs()
                )),
            );
            return None;
        }
        if let Some(slow) = channels.iter().find(|c| c.timeout + CLAIM_MARGIN > value) {
            v.error(
                ttl.loc,
                format!(
                    "claim_ttl {value:?} is too short for channel {} (timeout {:?})",
                    slow.name, slow.timeout
                ),
                Some(format!(
                    "make claim_ttl at least the longest channel timeout plus {}s, or the claim lapses \
                     while the node still delivers and another node sends it again",
                    CLAIM_MARGIN.as_secs()
                )),
            );
            return None;
        }
        Some(value)
    });
    Some(ClusterConfig {
        node,
        location,
        lease_ttl,
        claim_ttl,
    })
}
