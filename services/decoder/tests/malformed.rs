//! A malformed corpus through the real pipeline (Kafka records as the bridge writes them →
//! sck-decoder → ClickHouse): 1,000 malformed payloads of ten kinds, interleaved with 1,000 good
//! messages on three partitions. Every malformed one ends in `ingest_errors` with its reason and
//! in the dead-letter topic; every good reading is stored once; every partition is committed to
//! its end (none stalls behind a bad record).

use std::time::Duration;

use sck_core::encode::{self, Utc};
use sck_testkit::tables::{INGEST_ERRORS, READINGS};
use sck_testkit::*;

const N: usize = 1_000;

/// Malformed payload `i` (of ten kinds, each failing for a different reason) and its kind.
fn malformed(i: usize, token: &str) -> (BridgeRecord, &'static str) {
    let raw = format!("device/sck/{token}/readings/raw");
    let json = format!("device/sck/{token}/readings");
    let (topic, payload, kind) = match i % 10 {
        0 => (
            &raw,
            format!("t:2017-03-24T13:35:14Z,1:{i}"),
            "malformed_raw",
        ),
        1 => (
            &raw,
            format!("{{t:2017-03-24T13:35:14Z,1:x{i},}}"),
            "invalid_value",
        ),
        2 => (
            &raw,
            format!("{{t:yesterday{i},1:2,}}"),
            "invalid_timestamp",
        ),
        3 => (&raw, format!("{{1:{i},2:3,}}"), "missing_timestamp"),
        4 => (
            &raw,
            format!("{{t:2017-03-24T13:35:14Z,-{i}:5,}}"),
            "invalid_sensor_id",
        ),
        5 => (&json, format!("{{\"data\":[{i}"), "malformed_json"),
        6 => (
            &json,
            format!("{{\"data\":{{\"n\":{i}}}}}"),
            "malformed_json",
        ),
        7 => (
            &json,
            format!(r#"{{"data":[{{"recorded_at":"bad {i}","sensors":[{{"id":1,"value":1}}]}}]}}"#),
            "invalid_timestamp",
        ),
        8 => (
            &json,
            format!(
                r#"{{"data":[{{"recorded_at":"2099-01-01 00:00:00","sensors":[{{"id":1,"value":{i}}}]}}]}}"#
            ),
            "future_timestamp",
        ),
        _ => (
            &json,
            format!(
                r#"{{"data":[{{"recorded_at":"2017-03-24 13:35:14","sensors":[{{"id":1,"value":"x{i}"}}]}}]}}"#
            ),
            "invalid_value",
        ),
    };
    (
        BridgeRecord {
            mqtt_topic: topic.clone(),
            payload: payload.into_bytes(),
        },
        kind,
    )
}

#[test]
fn a_malformed_corpus_ends_in_errors_and_dead_letters_and_nothing_stalls() {
    serial(async {
        let topics = Topics::unique();
        let group = unique("group");
        let db = unique("db_");
        create_topics(&topics, 3).await;
        let bad_token = unique("bad");
        let mut records = Vec::with_capacity(2 * N);
        let mut kinds = std::collections::BTreeMap::new();
        for i in 0..N {
            let (record, kind) = malformed(i, &bad_token);
            *kinds.entry(kind).or_insert(0u64) += 1;
            records.push(record);
            // A good message of one of 20 devices after every bad one.
            let mut payload = Vec::new();
            encode::raw(
                &mut payload,
                Utc(1_700_000_000 + i as i64),
                [(1, Some(i as f64)), (2, Some(0.5))],
            );
            records.push(BridgeRecord {
                mqtt_topic: format!("device/sck/good{}{}/readings/raw", i % 20, group),
                payload,
            });
        }
        let decoder = Decoder::start(&topics, &group, &db, &[]);
        produce_as_bridge(&topics.readings, &records).await;

        let good = format!(
            "SELECT count() FROM {db}.{READINGS} FINAL WHERE device_token LIKE 'good%{group}'"
        );
        assert!(
            wait_for(Duration::from_secs(120), || clickhouse_count(&good)
                == 2 * N as u64),
            "good readings stored: {} of {}",
            clickhouse_count(&good),
            2 * N
        );
        let errors = format!(
            "SELECT count(DISTINCT kafka_partition, kafka_offset) FROM {db}.{INGEST_ERRORS} WHERE device_token = '{bad_token}'"
        );
        assert!(
            wait_for(Duration::from_secs(60), || clickhouse_count(&errors)
                == N as u64),
            "malformed messages in ingest_errors: {} of {N}",
            clickhouse_count(&errors)
        );
        for (kind, n) in &kinds {
            assert_eq!(
                clickhouse_count(&format!(
                    "SELECT count(DISTINCT kafka_partition, kafka_offset) FROM {db}.{INGEST_ERRORS} WHERE device_token = '{bad_token}' AND error_kind = '{kind}'"
                )),
                *n,
                "{kind}"
            );
        }
        let dlq = read_until(&[&topics.dlq], Duration::from_secs(60), |rs| {
            rs.iter()
                .filter(|r| {
                    r.headers.get("dead_lettered_by").map(String::as_str) == Some("sck-decoder")
                })
                .count()
                >= N
        })
        .await;
        let ours: Vec<_> = dlq
            .iter()
            .filter(|r| {
                r.headers.get("dead_lettered_by").map(String::as_str) == Some("sck-decoder")
            })
            .collect();
        assert_eq!(ours.len(), N, "dead letters");
        assert!(ours
            .iter()
            .all(|r| r.key.as_deref() == Some(bad_token.as_bytes())
                && r.headers.get("error").is_some_and(|e| !e.is_empty())));
        // No partition stalls: the group commits every record of the three partitions.
        let mut committed = 0;
        for _ in 0..120 {
            committed = committed_total(&group, &topics.readings, 3).await;
            if committed == 2 * N as i64 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert_eq!(committed, 2 * N as i64, "offsets committed");
        drop(decoder);
        drop_database(&db);
    });
}
