//! sck-core: the domain of sck-ingest, pure and synchronous.
//!
//! Everything under the crate root except [`runtime`] is free of I/O, async and client-library
//! types, so it is tested on its own and shared unchanged by sck-bridge and sck-decoder.
//! [`runtime`] (feature `runtime`) holds the small helpers every service binary needs: logging
//! setup, the `/metrics` `/healthz` `/readyz` server, jittered backoff sleeps.

pub mod ascii;
pub mod backoff;
pub mod clock;
pub mod decode;
pub mod envelope;
pub mod json;
pub mod raw;
pub mod reading;
pub mod secret;
pub mod timestamp;
pub mod topic;

#[cfg(test)]
mod proptests;

#[cfg(feature = "runtime")]
pub mod runtime;
