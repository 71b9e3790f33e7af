//! A consumer group member's bookkeeping, shared by sck-decoder and sck-forwarder: which
//! partitions it owns and the revocation generation ([`assignment`]), and its librdkafka context
//! ([`context`]: rebalance and commit callbacks, the consumer-lag gauge from statistics).

pub mod assignment;
pub mod context;

pub use assignment::Assignment;
pub use context::{lag, Ctx};
