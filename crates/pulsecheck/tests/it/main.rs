//! The `pulsecheck` crate's one integration-test binary: the real binary against the
//! real simulator (and the outbox and delivery workers on a real store).

mod api;
mod browser;
mod cli;
mod cluster;
mod cluster_failover;
mod cluster_nodes;
mod daemon;
mod demo;
mod payload;
mod prometheus;
mod quorum;
mod serve;
mod store_commands;
mod usage;
