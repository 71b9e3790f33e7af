//! `ingest_errors`: one row per problem found in a message (or per message the bridge dead-
//! lettered), with the payload kept whole so it can be replayed after a fix.

use clickhouse::Row;
use serde::{Serialize, Serializer};

use crate::Features;

pub const NAME: &str = "ingest_errors";

#[derive(Debug, Clone, PartialEq, Row, Serialize)]
pub struct IngestErrorRow {
    pub received_at: u32,
    pub mqtt_topic: String,
    pub device_token: String,
    pub error_kind: String,
    pub error_message: String,
    /// Raw bytes: payloads need not be UTF-8 and a ClickHouse String is bytes.
    #[serde(serialize_with = "as_bytes")]
    pub payload: Vec<u8>,
    pub kafka_topic: String,
    pub kafka_partition: u32,
    pub kafka_offset: u64,
    /// Which problem of the message this is (0 for the first).
    pub error_index: u32,
}

fn as_bytes<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bytes(v)
}

/// Migration 1.
pub(crate) fn create(f: Features) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {{db}}.{NAME} (
    received_at DateTime,
    mqtt_topic String,
    device_token String,
    error_kind {lc},
    error_message String,
    payload String{},
    kafka_topic {lc},
    kafka_partition UInt32,
    kafka_offset UInt64,
    error_index UInt32
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(received_at)
ORDER BY (received_at, kafka_topic, kafka_partition, kafka_offset, error_index){}",
        f.codec("ZSTD(3)"),
        f.ttl("received_at + INTERVAL 90 DAY"),
        lc = f.low_cardinality_string(),
    )
}
