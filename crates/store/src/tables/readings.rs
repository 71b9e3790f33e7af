//! `readings`: one row per sensor value. Redeliveries collapse on the sorting key
//! (ReplacingMergeTree), so at-least-once delivery stores each reading once after merges.
//!
//! `device_id` (migration 3) is the platform's public id of the device: the token is a secret and
//! must not be the only key analysts can use. It is appended to the table, not part of the
//! sorting key: a ReplacingMergeTree's key cannot take an existing column (and ClickHouse 18.16
//! cannot change a key at all), and the key must stay what deduplicates redeliveries. A token
//! names one device, so the key already keeps a device's rows together. Rows stored before the
//! migration (or without a registry) read `device_id` 0.

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
    /// The platform's `devices.id` (0: no registry, or stored before migration 3).
    pub device_id: u32,
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

/// Columns added after [`create`], in order (the table's columns are [`create`]'s then these).
pub const ADDED_COLUMNS: [&str; 1] = ["device_id"];

/// Migration 3: `device_id`, 0 for the rows already stored. Old servers (18.16) have no
/// `ADD COLUMN IF NOT EXISTS`: there the statement fails when the column exists, which
/// [`crate::migrations`] takes as already applied.
pub(crate) fn add_device_id(f: Features) -> String {
    format!(
        "ALTER TABLE {{db}}.{NAME} ADD COLUMN {}{} UInt32 DEFAULT 0",
        f.if_not_exists(),
        ADDED_COLUMNS[0]
    )
}
