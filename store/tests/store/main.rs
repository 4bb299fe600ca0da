//! Behaviour of the store library through its public API: durability, pop
//! semantics, redelivery, dead-lettering, long polling, filtering, FIFO,
//! delay and transactional messages, restarts; and the conformance of the
//! gRPC store ([`pier_store::RemoteStore`]) to the in-process one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod clock;
mod common;
mod conformance;
mod delay;
mod delivery;
mod fifo;
mod find;
mod restart;
mod txn;
