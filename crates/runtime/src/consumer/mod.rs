//! A consumer group member's bookkeeping, shared by sck-decoder and sck-forwarder: which
//! partitions it owns and the revocation generation ([`assignment`]), and its librdkafka context
//! ([`context`]: rebalance and commit callbacks, the consumer-lag gauge from statistics), and
//! leaving the group and probing Kafka ([`group`]).

pub mod assignment;
pub mod context;
pub mod group;

pub use assignment::Assignment;
pub use context::{lag, Ctx};
pub use group::{leave_group, probe, GroupConsumer};
