//! Test harness of sck-ingest against the real local stack (Mosquitto, tansu, ClickHouse).
//!
//! Starts the stack when it is not running (`scripts/stack.sh up`), or uses the one of
//! `$STACK_DIR` (a check script's, e.g. the secure stack: TLS, logins, SASL; see [`Secure`]),
//! runs the service binaries as
//! child processes with their own topics, groups, client ids and databases, publishes with a real
//! MQTT client, reads back with a real Kafka consumer (assigned partitions, no group join to wait
//! for) and queries ClickHouse over HTTP.

mod clickhouse;
mod kafka;
mod mqtt;
mod platform;
mod process;
mod stack;

pub use clickhouse::*;
pub use kafka::*;
pub use mqtt::*;
pub use platform::*;
pub use process::*;
pub use stack::*;
