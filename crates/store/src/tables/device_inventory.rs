//! `device_inventory`: factory inventory reports (`device/inventory`), keyed by their Kafka
//! position since they name no device.

use clickhouse::Row;
use serde::Serialize;

use crate::Features;

pub const NAME: &str = "device_inventory";

#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize)]
pub struct InventoryRow {
    pub received_at: u32,
    /// The JSON document as received.
    pub report: String,
    pub kafka_partition: u32,
    pub kafka_offset: u64,
}

/// Migration 2.
pub(crate) fn create(f: Features) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {{db}}.{NAME} (
    received_at DateTime,
    report String{},
    kafka_partition UInt32,
    kafka_offset UInt64
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(received_at)
ORDER BY (received_at, kafka_partition, kafka_offset)",
        f.codec("ZSTD(3)")
    )
}
