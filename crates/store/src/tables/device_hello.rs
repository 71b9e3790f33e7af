//! `device_hello`: when each device last said hello (one row per device after merges).

use clickhouse::Row;
use serde::Serialize;

pub const NAME: &str = "device_hello";

#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize)]
pub struct HelloRow {
    pub device_token: String,
    /// When the bridge received the hello, seconds since the epoch.
    pub last_seen: u32,
}

/// Migration 2.
pub(crate) fn create() -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {{db}}.{NAME} (
    device_token String,
    last_seen DateTime
) ENGINE = ReplacingMergeTree(last_seen)
ORDER BY device_token"
    )
}
