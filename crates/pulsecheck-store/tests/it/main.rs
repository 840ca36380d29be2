//! The store crate's one integration-test binary: the SQLite store and its writer.

mod common;
mod store;
mod writer;
