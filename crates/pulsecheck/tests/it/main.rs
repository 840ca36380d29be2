//! The `pulsecheck` crate's one integration-test binary: the real binary against the
//! real simulator.

mod cli;
mod serve;
mod store_commands;
mod usage;
