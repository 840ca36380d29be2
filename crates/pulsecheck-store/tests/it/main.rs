//! The store crate's one integration-test binary: the SQLite store and its writer.

mod common;
mod console;
mod history;
mod store;
mod writer;
