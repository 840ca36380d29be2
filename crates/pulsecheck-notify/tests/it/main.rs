//! The notify crate's one integration-test binary: channels against loopback receivers,
//! and the delivery workers on an in-memory outbox.

mod channels;
mod common;
mod delivery;
mod scheduling;
