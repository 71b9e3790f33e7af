//! The decoder's main loop: consume → decode → batch → insert → commit, in three parts:
//!
//! - [`flow`]: every decision of the loop (when a batch is due, when to stop taking records,
//!   pause and resume, what a rebalance discards, which offsets to commit, the drain on
//!   SIGTERM) as a pure state machine, unit-tested alone. Its module doc lists the rules.
//! - [`record`]: what one consumed Kafka record adds to the batch (decoded rows, error rows, a
//!   dead letter, or only its offset).
//! - [`shell`]: the async loop that performs the flow's actions with the consumer, the
//!   ClickHouse sink and the dead-letter writer.
//!
//! Offsets are committed only for a batch whose rows are all inserted and whose dead-letter
//! records Kafka has acknowledged, and only for partitions this consumer still owns.

mod flow;
mod record;
mod shell;

pub use shell::Pipeline;
