//! `readings`: one row per sensor value. Redeliveries collapse on the sorting key
//! (ReplacingMergeTree), so at-least-once delivery stores each reading once after merges.

use clickhouse::Row;
use serde::Serialize;

use crate::Features;

pub const NAME: &str = "readings";

/// One reading, borrowing the device token (a batch holds it once per message).
#[derive(Debug, Clone, Copy, PartialEq, Row, Serialize)]
pub struct ReadingRow<'a> {
    pub device_token: &'a str,
    pub sensor_id: u32,
    /// `DateTime`: seconds since the epoch.
    pub recorded_at: u32,
    pub value: f64,
    /// When the bridge received the message, seconds since the epoch.
    pub received_at: u32,
    /// `raw` or `json`.
    pub format: &'a str,
}

/// Migration 1.
pub(crate) fn create(f: Features) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {{db}}.{NAME} (
    device_token String,
    sensor_id UInt32,
    recorded_at DateTime{},
    value Float64{},
    received_at DateTime{},
    format {}
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(recorded_at)
ORDER BY (device_token, sensor_id, recorded_at)",
        f.codec("DoubleDelta, LZ4"),
        f.codec("Gorilla, LZ4"),
        f.codec("DoubleDelta, LZ4"),
        f.low_cardinality_string(),
    )
}
