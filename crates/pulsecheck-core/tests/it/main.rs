//! The core crate's one integration-test binary: the engine against the real simulator
//! and against hostile servers written in the tests.

mod guard;
mod hostile;
mod names;
mod probes;
mod scan;
