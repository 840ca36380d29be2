//! The `pulsecheck` crate's one integration-test binary: the real binary against the
//! real simulator.

mod cli;
mod prometheus;
mod serve;
mod usage;
