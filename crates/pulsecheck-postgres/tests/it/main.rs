//! The PostgreSQL store's one integration-test binary: the behavioural suite shared with
//! SQLite, and PostgreSQL's own cluster tests (fencing, coordination, claims, restart).
//! Every test starts PostgreSQL itself; without it installed they print why and pass,
//! unless CI is set.

mod cluster;
mod common;
mod open;
mod plans;
mod quorum;
mod size;
mod suite;
mod throughput;
