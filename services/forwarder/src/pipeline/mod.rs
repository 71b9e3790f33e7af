//! The forwarder's loop: consume → decide → wait for the decoder → publish → commit, in three
//! parts:
//!
//! - [`state`]: every decision (the gate, per-device order, retries, dead letters, the bounded
//!   backlog, the offsets to commit) as a pure state machine; its module doc lists the rules;
//! - [`record`]: what one consumed record becomes (a job of MQTT messages, or nothing);
//! - [`shell`]: the async loop that performs the state's actions with the consumer, the MQTT
//!   publisher and the dead-letter writer.
//!
//! Offsets are committed only up to the oldest record whose messages are not all acknowledged
//! (or whose dead letter Kafka does not have yet): at least once.

mod record;
mod shell;
pub mod state;

pub use shell::Pipeline;
