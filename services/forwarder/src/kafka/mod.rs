//! The forwarder's Kafka side, by concern:
//!
//! - the partitions this consumer owns, the revocation generation and the librdkafka context
//!   (rebalance and commit callbacks, the lag gauge) are `sck_runtime::consumer`'s, shared by
//!   both consumer-group services;
//! - [`consumer`]: the consumer (its own group, manual commits only), leaving the group, and
//!   the reachability probe behind `/readyz`;
//! - [`gate`]: the decoder group's committed offsets, read (never written) to forward only
//!   what the decoder has stored;
//! - [`dead_letter`]: the producer and the writer of the forwarder's dead letters.

mod consumer;
mod dead_letter;
pub mod gate;

pub use consumer::{consumer, ForwarderConsumer};
pub use dead_letter::{producer, DeadLetterWriter, Record as DeadLetterRecord};
pub use sck_runtime::consumer::Assignment;
pub use sck_runtime::consumer::Ctx;
pub use sck_runtime::consumer::{leave_group, probe};

use rdkafka::config::ClientConfig;
use sck_runtime::kafka::client_properties;

use crate::config::Config;

/// Brokers, client id and security, common to every client.
fn client_config(cfg: &Config, client_id: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    for (k, v) in client_properties(&cfg.kafka_brokers, client_id, &cfg.security) {
        c.set(k, v);
    }
    c
}
