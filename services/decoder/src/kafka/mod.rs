//! The decoder's Kafka side, by concern:
//!
//! - the partitions this consumer owns, the revocation generation and the librdkafka context
//!   (rebalance and commit callbacks, the lag gauge) are `sck_runtime::consumer`'s, shared by
//!   both consumer-group services;
//! - [`consumer`]: the consumer itself (manual commits only), leaving the group, and the
//!   reachability probe behind `/readyz`;
//! - [`dead_letter`]: the dead-letter producer and writer, and [`produce_error`]: which of its
//!   failures can pass on their own (retried with backoff) and which need an operator (retried
//!   slowly, logged as errors).

mod consumer;
mod dead_letter;
mod produce_error;

pub use consumer::{consumer, DecoderConsumer};
pub use dead_letter::{producer, DeadLetterWriter};
pub use produce_error::FailureClass;
pub use sck_runtime::consumer::Assignment;
pub use sck_runtime::consumer::Ctx;
pub use sck_runtime::consumer::{leave_group, probe};

use rdkafka::config::ClientConfig;
use sck_runtime::kafka::client_properties;

use crate::config::Config;

/// Brokers, client id and security, common to the consumer and the producer.
fn client_config(cfg: &Config) -> ClientConfig {
    let mut c = ClientConfig::new();
    for (k, v) in client_properties(&cfg.kafka_brokers, &cfg.client_id, &cfg.security) {
        c.set(k, v);
    }
    c
}
