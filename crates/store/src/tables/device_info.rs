//! `device_info`: the info documents devices publish (hardware and firmware versions), as JSON.

use clickhouse::Row;
use serde::Serialize;

use crate::Features;

pub const NAME: &str = "device_info";

#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize)]
pub struct InfoRow {
    pub device_token: String,
    pub received_at: u32,
    /// The JSON document as received.
    pub info: String,
}

/// Migration 2.
pub(crate) fn create(f: Features) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {{db}}.{NAME} (
    device_token String,
    received_at DateTime,
    info String{}
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(received_at)
ORDER BY (device_token, received_at)",
        f.codec("ZSTD(3)")
    )
}
