//! `device_latest`: the newest value of each sensor of each device, for analytics that do not
//! touch the platform's PostgreSQL. Filled by ClickHouse itself: a materialized view on
//! `readings` aggregates every inserted block to one row per (device, sensor) (its newest
//! reading), and ReplacingMergeTree keeps the row with the newest `last_recorded_at` on merge, so
//! a batch arriving out of order never moves a sensor backwards. Read it with `FINAL` (or
//! `argMax`). The decoder writes nothing here.
//!
//! The column is `last_recorded_at`, not `recorded_at`: an alias named like the column it
//! aggregates (`max(recorded_at) AS recorded_at`) nests aggregates in ClickHouse 18.16.

use crate::tables::readings;

pub const NAME: &str = "device_latest";
/// The materialized view that fills [`NAME`] from `readings`.
pub const VIEW: &str = "device_latest_mv";

/// Migration 4: the table.
pub(crate) fn create() -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {{db}}.{NAME} (
    device_token String,
    sensor_id UInt32,
    device_id UInt32,
    last_recorded_at DateTime,
    value Float64
) ENGINE = ReplacingMergeTree(last_recorded_at)
ORDER BY (device_token, sensor_id)"
    )
}

/// Migration 4: the view (after the table, and after `readings.device_id`, migration 3).
pub(crate) fn create_view() -> String {
    let readings = readings::NAME;
    format!(
        "CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.{VIEW} TO {{db}}.{NAME} AS
SELECT device_token, sensor_id,
    argMax(device_id, recorded_at) AS device_id,
    max(recorded_at) AS last_recorded_at,
    argMax(value, recorded_at) AS value
FROM {{db}}.{readings}
GROUP BY device_token, sensor_id"
    )
}
