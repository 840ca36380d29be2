//! pulsecheck-core: the engine behind `pulsecheck scan` and `pulsecheck serve`.
//!
//! - [`Target`] is one line of input parsed into a [`TargetSpec`] (or an [`InvalidTarget`]).
//! - [`Engine`] owns the shared resources (resolver, TLS clients, ICMP sockets), the global
//!   and per-host [`limiter`], and the [`ledger`]; [`Engine::check`] turns one target into
//!   exactly one [`CheckResult`] under a deadline, and [`Engine::scan`] does that for a batch.
//! - [`CheckResult`] is data: an [`Outcome`] (up, down, cancelled), a closed [`Reason`] when
//!   down, and the [`Timings`] of every phase.
//! - [`probe`] holds one module per kind of check (HTTP, TCP, TLS, DNS, ICMP).

#![forbid(unsafe_code)]

pub mod address_policy;
pub mod channel;
pub mod clock;
pub mod cluster;
pub mod conditions;
pub mod engine;
pub mod latency;
pub mod ledger;
pub mod limiter;
pub mod live;
pub mod maintenance;
pub mod monitor;
pub mod options;
pub mod outbox;
pub mod ownership;
pub mod probe;
pub mod quorum;
pub mod rendezvous;
pub mod resolve;
pub mod result;
pub mod rlimit;
pub mod scheduler;
pub mod state;
pub mod storage;
pub mod target;
pub mod text;
pub mod tls;
pub mod writer;

pub use address_policy::AddressPolicy;
pub use engine::{Engine, EngineSetup};
pub use latency::LatencyHistogram;
pub use ledger::LedgerCounts;
pub use options::{CheckOptions, EngineOptions, StatusMatcher};
pub use result::{CapturedResponse, CertificateInfo, CheckResult, DnsAnswer, Outcome, ProbeKind, Reason, Timings};
pub use target::{parse_spec, InvalidTarget, Target, TargetSpec};

/// For the store macros (`impl_console!`, `impl_history!`): their signatures name jiff's
/// types whatever the calling crate depends on.
#[doc(hidden)]
pub use jiff as __jiff;
