//! sck-core: the domain of sck-ingest, pure and synchronous.
//!
//! Free of I/O, async, the clock and client-library types (its only dependencies are serde,
//! simd-json and thiserror), so it is tested on its own and shared unchanged by sck-bridge and
//! sck-decoder. What a service binary needs around it lives in `sck-runtime`.

pub mod ascii;
pub mod backoff;
pub mod decode;
pub mod encode;
pub mod envelope;
pub mod json;
pub mod latest;
#[cfg(any(test, feature = "oracle"))]
pub mod oracle;
pub mod raw;
pub mod reading;
pub mod registry;
pub mod timestamp;
pub mod topic;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod seeded;
