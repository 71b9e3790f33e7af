//! `sck-decoder replay`: stores the readings of messages that were kept in `ingest_errors`
//! because their device was not registered yet (`unknown_device`) or the registry could not be
//! asked (`registry_unavailable`), now that it is.
//!
//! It re-reads `ingest_errors`, not Kafka: the payload is kept there whole, with the message's
//! MQTT topic and the bridge's `received_at`, for as long as ClickHouse keeps it (Kafka keeps
//! records for days; a device may be registered weeks later), and a replay then needs no
//! consumer group or offsets. Each message is decoded again with the pipeline's own code and its
//! readings are written with the device's id and the original `received_at`: a second run writes
//! the same rows again, which `readings` collapses on its sorting key (ReplacingMergeTree), so it
//! is idempotent. Tokens still unknown are counted and left for a later replay.

use std::collections::HashMap;

use anyhow::Context;
use clickhouse::Row;
use sck_core::decode::{Decoder, Outcome};
use sck_core::reading::{Decoded, Format, Limits, Reading};
use sck_store::tables::{ReadingRow, INGEST_ERRORS, READINGS};
use serde::Deserialize;

/// The kinds a replay picks up.
pub const REPLAYABLE: [&str; 2] = ["unknown_device", "registry_unavailable"];

/// One kept message (several problems of one message are one row here).
#[derive(Debug, Row, Deserialize)]
struct Kept {
    mqtt_topic: String,
    device_token: String,
    /// The payload as hex: a ClickHouse String is bytes, and a payload need not be UTF-8.
    payload_hex: String,
    received_at: u32,
}

/// What a replay did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub messages: usize,
    pub readings: usize,
    /// Messages whose token is still not a registered device.
    pub still_unknown: usize,
}

fn query(db: &str, device_token: Option<&str>) -> String {
    let kinds = REPLAYABLE.map(|k| format!("'{k}'")).join(", ");
    let token = if device_token.is_some() {
        " AND device_token = ?"
    } else {
        ""
    };
    format!(
        "SELECT mqtt_topic, device_token, hex(payload) AS payload_hex, received_at \
         FROM {db}.{INGEST_ERRORS} \
         WHERE error_kind IN ({kinds}) AND received_at >= toDateTime(?){token} \
         ORDER BY kafka_topic, kafka_partition, kafka_offset \
         LIMIT 1 BY kafka_topic, kafka_partition, kafka_offset"
    )
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Replays what was kept since `since` (Unix seconds), optionally for one device. `ids` resolves
/// tokens to registered device ids (the registry's own lookup).
/// `ch` has the database as its default (the insert names the table alone); `db` names it in
/// the query.
pub async fn run<F, Fut>(
    ch: &clickhouse::Client,
    db: &str,
    since: i64,
    device_token: Option<&str>,
    max_future_secs: i64,
    ids: F,
) -> anyhow::Result<Summary>
where
    F: FnOnce(Vec<String>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<HashMap<String, u32>>>,
{
    let mut q = ch.query(&query(db, device_token)).bind(since);
    if let Some(t) = device_token {
        q = q.bind(t);
    }
    let kept: Vec<Kept> = q.fetch_all().await.context("reading ingest_errors")?;
    let mut tokens: Vec<String> = kept.iter().map(|k| k.device_token.clone()).collect();
    tokens.sort();
    tokens.dedup();
    let ids = ids(tokens).await?;
    let limits = Limits {
        now: sck_runtime::clock::now_secs(),
        max_future_secs,
    };
    let mut decoder = Decoder::default();
    let mut decoded = Decoded::default();
    let mut rows: Vec<(String, u32, Format, u32, Reading)> = Vec::new();
    let mut summary = Summary::default();
    for k in &kept {
        summary.messages += 1;
        let Some(&device_id) = ids.get(&k.device_token) else {
            summary.still_unknown += 1;
            continue;
        };
        let Some(payload) = unhex(&k.payload_hex) else {
            continue;
        };
        if let Outcome::Readings { token, format } =
            decoder.decode(Some(&k.mqtt_topic), &payload, &limits, &mut decoded)
        {
            for r in &decoded.readings {
                rows.push((token.to_string(), device_id, format, k.received_at, *r));
            }
        }
    }
    summary.readings = rows.len();
    if !rows.is_empty() {
        sck_store::insert::<ReadingRow<'_>>(
            ch,
            READINGS,
            rows.iter()
                .map(|(token, device_id, format, received_at, r)| ReadingRow {
                    device_token: token,
                    device_id: *device_id,
                    sensor_id: r.sensor_id,
                    recorded_at: r.recorded_at,
                    value: r.value,
                    received_at: *received_at,
                    format: format.as_str(),
                }),
            None,
        )
        .await
        .context("inserting the replayed readings")?;
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_picks_replayable_kinds_once_per_message() {
        let q = query("sck", Some("tok"));
        assert!(
            q.contains("error_kind IN ('unknown_device', 'registry_unavailable')"),
            "{q}"
        );
        assert!(
            q.contains("LIMIT 1 BY kafka_topic, kafka_partition, kafka_offset"),
            "{q}"
        );
        assert!(q.contains("AND device_token = ? ORDER BY"), "{q}");
        assert!(!query("sck", None).contains("device_token = ?"));
    }

    #[test]
    fn hex_payloads_round_trip_any_bytes() {
        assert_eq!(unhex("7B74FF00"), Some(vec![0x7b, 0x74, 0xff, 0x00]));
        assert_eq!(unhex("7"), None);
        assert_eq!(unhex("zz"), None);
    }
}
