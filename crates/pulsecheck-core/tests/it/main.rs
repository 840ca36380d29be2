//! The core crate's one integration-test binary: the engine against the real simulator.

mod probes;
mod scan;
