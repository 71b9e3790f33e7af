//! sck-decoder on the real stack: MQTT → bridge → Kafka → decoder → ClickHouse, and no loss or
//! duplicate when the decoder is SIGKILLed, when ClickHouse goes away, on SIGTERM, and with two
//! decoders sharing the partitions.
//!
//! Tests run one at a time (one stops ClickHouse); each has its own Kafka topics, consumer group
//! and ClickHouse database (the database is dropped afterwards).

use std::time::{Duration, Instant};

use sck_core::encode::{self, Spaced, Utc};
use sck_testkit::tables::{DEVICE_HELLO, DEVICE_INFO, DEVICE_INVENTORY, INGEST_ERRORS, READINGS};
use sck_testkit::*;

/// A test's own topics, group and database, cleaned up on drop.
struct Env {
    topics: Topics,
    group: String,
    db: String,
}

impl Env {
    fn new() -> Env {
        Env {
            topics: Topics::unique(),
            group: unique("group"),
            db: unique("db_"),
        }
    }

    fn count(&self, sql_where: &str) -> u64 {
        clickhouse_count(&format!(
            "SELECT count() FROM {}.{READINGS} FINAL WHERE {sql_where}",
            self.db
        ))
    }

    /// Waits until `count(where)` reaches `want` (or the timeout), returning the last count.
    fn wait_count(&self, sql_where: &str, want: u64, timeout: Duration) -> u64 {
        let mut last = 0;
        wait_for(timeout, || {
            last = clickhouse(&format!(
                "SELECT count() FROM {}.{READINGS} FINAL WHERE {sql_where}",
                self.db
            ))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
            last >= want
        });
        last
    }

    /// A device's stored readings, one `sensor_id\trecorded_at\tvalue\tformat` line each.
    fn rows_of(&self, token: &str) -> String {
        clickhouse(&format!(
            "SELECT sensor_id, toString(recorded_at, 'UTC'), value, format FROM {}.{READINGS} FINAL WHERE device_token = '{token}' ORDER BY recorded_at, sensor_id",
            self.db
        ))
        .expect("select")
    }

    /// Rows of the run that did not collapse: count() without FINAL minus distinct keys.
    fn duplicates_after_merge(&self, run: &str) -> u64 {
        clickhouse_count(&format!(
            "SELECT count() - uniqExact(device_token, sensor_id, recorded_at) FROM {}.{READINGS} FINAL WHERE device_token LIKE '{run}%'",
            self.db
        ))
    }
}

impl Drop for Env {
    /// Drops the database; the uniquely named topics stay (tansu's DeleteTopics deletes all).
    fn drop(&mut self) {
        drop_database(&self.db);
    }
}

const SENSORS: u32 = 10;

/// `messages` raw readings messages of `SENSORS` readings each, spread over `devices` devices of
/// run `run`; every (device, sensor, time) is unique, so counts are exact.
fn raw_records(run: &str, devices: usize, messages: usize) -> Vec<BridgeRecord> {
    let start = 1_700_000_000i64;
    (0..messages)
        .map(|i| {
            let device = i % devices;
            let t = start + (i / devices) as i64;
            let mut payload = Vec::new();
            let values = (1..=SENSORS).map(|s| (s, i as f64 + f64::from(s) / 100.0));
            encode::raw(&mut payload, Utc(t), values);
            BridgeRecord {
                mqtt_topic: format!("device/sck/{run}d{device}/readings/raw"),
                payload,
            }
        })
        .collect()
}

#[test]
fn mqtt_to_clickhouse_end_to_end() {
    serial(async {
        let env = Env::new();
        let run = unique("e2e");
        let bridge = Bridge::start(
            &BridgeSpec::new(&env.topics, &unique("g")).with("MAX_PAYLOAD_BYTES", "2048"),
        );
        let decoder = Decoder::start(&env.topics, &env.group, &env.db, &[]);
        let publisher = Publisher::connect().await;
        let tok = format!("{run}a");
        let examples = [
            (
                format!("device/sck/{tok}/readings"),
                r#"{"data": [{"recorded_at": "2016-06-08 10:30:00Z","sensors": [{"id": 1,"value": 21}]}]}"#.to_string(),
            ),
            (
                format!("device/sck/{tok}/readings/raw"),
                "{ t:2017-03-24T13:35:14Z, 1:48.45, 13:66, 12:28, 10:4.45 }".to_string(),
            ),
            (
                format!("device/sck/{tok}/readings/raw"),
                "ceci n'est pas un message".to_string(),
            ),
            (
                format!("bridge/device/sck/{tok}/readings"),
                r#"{"data":[{"recorded_at":"2016-06-08T10:31:00+00:00","sensors":[{"id":2,"value":"7.5"},{"id":3,"value":null},{"id":-4,"value":1}]}]}"#.to_string(),
            ),
            (format!("device/sck/{tok}/hello"), "hello".to_string()),
            (
                format!("device/sck/{tok}/info"),
                r#"{"time":"2024-01-01T00:00:00Z","hw_ver":"2.1","sam_ver":"0.9.8"}"#.to_string(),
            ),
            (
                "device/inventory".to_string(),
                format!(r#"{{"report":"factory test","run":"{run}"}}"#),
            ),
            (format!("device/sck/{tok}/readings"), "x".repeat(4096)),
        ];
        for (topic, payload) in &examples {
            publisher.publish(topic, payload.clone()).await;
        }
        // And a stream of both formats from 20 devices.
        let n = 400usize;
        for i in 0..n {
            let device = format!("{run}d{}", i % 20);
            let t = 1_700_000_000 + (i / 20) as i64;
            let x = i as f64;
            let mut payload = Vec::new();
            let topic = if i % 2 == 0 {
                encode::raw(
                    &mut payload,
                    Utc(t),
                    [(1, Some(x)), (2, Some(-x - 0.5)), (3, None)],
                );
                format!("device/sck/{device}/readings/raw")
            } else {
                encode::json(&mut payload, [(Spaced(t), [(1, x), (2, -x - 0.5)])]);
                format!("device/sck/{device}/readings")
            };
            publisher.publish(&topic, payload).await;
        }
        publisher
            .wait_acked(examples.len() + n, Duration::from_secs(60))
            .await;

        let stream = env.wait_count(
            &format!("device_token LIKE '{run}d%'"),
            2 * n as u64,
            Duration::from_secs(60),
        );
        assert_eq!(stream, 2 * n as u64, "stream readings stored");
        let examples_want = 1 + 4 + 1;
        let got = env.wait_count(
            &format!("device_token = '{tok}'"),
            examples_want,
            Duration::from_secs(30),
        );
        assert_eq!(got, examples_want);

        let rows = env.rows_of(&tok);
        assert_eq!(
            rows,
            "1\t2016-06-08 10:30:00\t21\tjson\n\
             2\t2016-06-08 10:31:00\t7.5\tjson\n\
             1\t2017-03-24 13:35:14\t48.45\traw\n\
             10\t2017-03-24 13:35:14\t4.45\traw\n\
             12\t2017-03-24 13:35:14\t28\traw\n\
             13\t2017-03-24 13:35:14\t66\traw\n"
        );
        let stream_sum = clickhouse_count(&format!(
            "SELECT toInt64(-sum(value) * 2) FROM {}.{READINGS} FINAL WHERE device_token LIKE '{run}d%'",
            env.db
        ));
        // Sum over i of (i + -(i + 0.5)) = -n/2; negated and doubled: n.
        assert_eq!(stream_sum, n as u64);

        let wait_errors = |want: u64| {
            let mut got = 0;
            wait_for(Duration::from_secs(30), || {
                got = clickhouse(&format!(
                    "SELECT count() FROM {}.{INGEST_ERRORS} FINAL WHERE device_token = '{tok}'",
                    env.db
                ))
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
                got >= want
            });
            got
        };
        assert_eq!(
            wait_errors(3),
            3,
            "malformed raw + bad sensor id + too_large"
        );
        let errors = clickhouse(&format!(
            "SELECT error_kind, mqtt_topic, payload FROM {}.{INGEST_ERRORS} FINAL WHERE device_token = '{tok}' AND error_kind != 'too_large' ORDER BY error_kind",
            env.db
        ))
        .expect("errors");
        assert_eq!(
            errors,
            format!(
                "invalid_sensor_id\tbridge/device/sck/{tok}/readings\t{}\nmalformed_raw\tdevice/sck/{tok}/readings/raw\tceci n\\'est pas un message\n",
                examples[3].1
            )
        );
        assert_eq!(
            clickhouse_count(&format!(
                "SELECT count() FROM {}.{INGEST_ERRORS} WHERE device_token = '{tok}' AND error_kind = 'too_large' AND length(payload) = 2048",
                env.db
            )),
            1,
            "the bridge's too_large dead letter is recorded (cut to MAX_PAYLOAD_BYTES)"
        );

        assert!(wait_for(Duration::from_secs(30), || {
            clickhouse_count(&format!(
                "SELECT count() FROM {}.{DEVICE_HELLO} FINAL WHERE device_token = '{tok}'",
                env.db
            )) == 1
                && clickhouse_count(&format!(
                    "SELECT count() FROM {}.{DEVICE_INFO} WHERE device_token = '{tok}' AND visitParamExtractString(info, 'hw_ver') = '2.1'",
                    env.db
                )) == 1
                && clickhouse_count(&format!(
                    "SELECT count() FROM {}.{DEVICE_INVENTORY} WHERE position(report, '{run}') > 0",
                    env.db
                )) == 1
        }));

        // The decoder's dead letters: the two messages with problems, marked as its own.
        let dlq = read_until(&[&env.topics.dlq], Duration::from_secs(30), |rs| {
            rs.iter()
                .filter(|r| r.headers.contains_key("dead_lettered_by"))
                .count()
                >= 2
        })
        .await;
        let mut ours: Vec<&str> = dlq
            .iter()
            .filter(|r| {
                r.headers.get("dead_lettered_by").map(String::as_str) == Some("sck-decoder")
            })
            .map(|r| r.headers["error"].as_str())
            .collect();
        ours.sort();
        assert_eq!(ours, vec!["invalid_sensor_id", "malformed_raw"]);
        let raw_dl = dlq
            .iter()
            .find(|r| r.headers.get("error").map(String::as_str) == Some("malformed_raw"))
            .expect("malformed raw dead letter");
        assert_eq!(raw_dl.payload, b"ceci n'est pas un message");
        assert_eq!(raw_dl.key.as_deref(), Some(tok.as_bytes()));
        assert!(raw_dl.headers["error_message"].contains("at byte 0"));

        // Metrics.
        assert_eq!(
            decoder.metric_with("sck_decoder_errors_total", "reason=\"malformed_raw\""),
            Some(1.0)
        );
        assert!(
            decoder
                .metric_with("sck_decoder_rows_inserted_total", "table=\"readings\"")
                .unwrap_or(0.0)
                >= (2 * n + 6) as f64
        );
        assert!(
            decoder
                .metric_with(
                    "sck_decoder_messages_consumed_total",
                    "kind=\"readings_raw\""
                )
                .unwrap_or(0.0)
                >= (n / 2 + 2) as f64
        );
        assert!(
            decoder
                .metric("sck_decoder_end_to_end_latency_seconds_count")
                .unwrap_or(0.0)
                > 0.0
        );
        assert!(
            decoder
                .metric("sck_decoder_insert_duration_seconds_count")
                .unwrap_or(0.0)
                > 0.0
        );
        let id = bridge.client_id();
        drop(bridge);
        forget_sessions(&[id]).await;
    });
}

/// Issue 10's inputs through the real decoder: what the original handler stored is stored, each
/// bad pair costs only itself (an `ingest_errors` row), dropped bytes are counted.
#[test]
fn tolerant_decoding_end_to_end() {
    serial(async {
        let env = Env::new();
        create_topics(&env.topics, 3).await;
        let run = unique("parity");
        let tok = format!("{run}a");
        let raw = format!("device/sck/{tok}/readings/raw");
        let json = format!("device/sck/{tok}/readings");
        let cases: Vec<(&str, Vec<u8>)> = vec![
            (&raw, b"{t:2017-03-24T13:35:14Z4:114}".to_vec()),
            (
                &raw,
                "{t:2024-09-25T13:19:38Z\u{1f4a3}\u{1f4a3}\u{1f4a3}\u{1f4a3},100:-2000.12345,21:12345.23450}"
                    .as_bytes()
                    .to_vec(),
            ),
            (&raw, b"{t:2017-03-24T13:35:15Z,1:-,2:5}\0".to_vec()),
            (
                &json,
                b"\xef\xbb\xbf{\"data\":[{\"recorded_at\":\"2016-06-08 12:30:00 +0200\",\"sensors\":[{\"id\":\"7\",\"value\":1},{\"id\":8,\"value\":1e400},{\"id\":\"temp\",\"value\":2}]}]}"
                    .to_vec(),
            ),
        ];
        let records: Vec<BridgeRecord> = cases
            .into_iter()
            .map(|(topic, payload)| BridgeRecord {
                mqtt_topic: topic.to_string(),
                payload,
            })
            .collect();
        produce_as_bridge(&env.topics.readings, &records).await;
        let decoder = Decoder::start(&env.topics, &env.group, &env.db, &[]);

        let want = 5;
        let got = env.wait_count(
            &format!("device_token = '{tok}'"),
            want,
            Duration::from_secs(60),
        );
        assert_eq!(got, want, "{}", decoder.log_text());
        let rows = env.rows_of(&tok);
        assert_eq!(
            rows,
            "7\t2016-06-08 10:30:00\t1\tjson\n\
             4\t2017-03-24 13:35:14\t114\traw\n\
             2\t2017-03-24 13:35:15\t5\traw\n\
             21\t2024-09-25 13:19:38\t12345.2345\traw\n\
             100\t2024-09-25 13:19:38\t-2000.12345\traw\n"
        );
        let mut errors = String::new();
        wait_for(Duration::from_secs(30), || {
            errors = clickhouse(&format!(
                "SELECT error_kind FROM {}.{INGEST_ERRORS} FINAL WHERE device_token = '{tok}' ORDER BY error_kind",
                env.db
            ))
            .unwrap_or_default();
            errors.lines().count() >= 3
        });
        assert_eq!(errors, "invalid_value\ninvalid_value\nunknown_sensor_key\n");
        assert!(wait_for(Duration::from_secs(10), || {
            decoder.metric_with(
                "sck_decoder_payload_bytes_dropped_total",
                "kind=\"readings_raw\"",
            ) == Some(16.0)
                && decoder.metric_with(
                    "sck_decoder_payload_bytes_dropped_total",
                    "kind=\"readings\"",
                ) == Some(3.0)
        }));
    });
}

#[test]
fn sigkill_mid_stream_loses_nothing_and_duplicates_collapse() {
    serial(async {
        let env = Env::new();
        create_topics(&env.topics, 3).await;
        let run = unique("kill");
        // Enough records, in small batches, that the kill lands mid-stream: a decoder drains
        // ~50,000 messages/s from this Kafka, faster than a 200 ms poll can react to.
        let messages = 10_000;
        let want = (messages * SENSORS as usize) as u64;
        produce_as_bridge(&env.topics.readings, &raw_records(&run, 50, messages)).await;

        let settings = [("BATCH_MAX_ROWS", "1000")];
        let mut first = Decoder::start(&env.topics, &env.group, &env.db, &settings);
        let seen = wait_for(Duration::from_secs(60), || {
            first
                .metric_with("sck_decoder_rows_inserted_total", "table=\"readings\"")
                .unwrap_or(0.0)
                >= 2_000.0
        });
        assert!(seen, "decoder inserted nothing: {}", first.log_text());
        first.kill();
        let before = env.count(&format!("device_token LIKE '{run}%'"));
        // Restart only once the killed member's session (10 s in tests) has expired: tansu hands
        // a member that joins while a dead one is still registered an empty assignment and
        // never rebalances again. tansu cannot list group members (DescribeGroups), so on it
        // this waits the session timeout plus 2 s; a broker that can tell returns earlier.
        wait_for(Duration::from_secs(12), || {
            group_members(&env.group) == Some(0)
        });
        assert!(
            before < want,
            "the kill came too late to test anything ({before} of {want})"
        );

        let second = Decoder::start(&env.topics, &env.group, &env.db, &settings);
        let got = env.wait_count(
            &format!("device_token LIKE '{run}%'"),
            want,
            Duration::from_secs(120),
        );
        assert_eq!(
            got,
            want,
            "readings after restart; log:\n{}",
            second.log_text()
        );
        assert_eq!(env.duplicates_after_merge(&run), 0);
        let raw_rows = clickhouse_count(&format!(
            "SELECT count() FROM {}.{READINGS} WHERE device_token LIKE '{run}%'",
            env.db
        ));
        eprintln!("SIGKILL after {before} of {want} readings: {raw_rows} rows before merges (redelivered: {})", raw_rows - want);
        // Once caught up, every record's offset is committed.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let committed = committed_total(&env.group, &env.topics.readings, 3).await;
            if committed == messages as i64 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "committed {committed} of {messages}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
}

#[test]
fn clickhouse_outage_of_20s_loses_nothing() {
    serial(async {
        let env = Env::new();
        create_topics(&env.topics, 3).await;
        let run = unique("chdown");
        let decoder = Decoder::start(
            &env.topics,
            &env.group,
            &env.db,
            &[("BATCH_MAX_ROWS", "1000"), ("INSERT_TIMEOUT_SECS", "5")],
        );
        let records = raw_records(&run, 20, 2_000);
        produce_as_bridge(&env.topics.readings, &records[..500]).await;
        let first = env.wait_count(
            &format!("device_token LIKE '{run}%'"),
            5_000,
            Duration::from_secs(60),
        );
        assert_eq!(first, 5_000);

        stack_cmd(&["stop", "clickhouse"]);
        let outage = Instant::now();
        produce_as_bridge(&env.topics.readings, &records[500..]).await;
        let not_ready = wait_for(Duration::from_secs(15), || {
            decoder.get("/readyz").map(|(c, _)| c) == Some(503)
        });
        let lag_rose = wait_for(Duration::from_secs(15), || {
            decoder.metric("sck_decoder_consumer_lag").unwrap_or(0.0) > 0.0
        });
        let paused = wait_for(Duration::from_secs(15), || {
            decoder.metric("sck_decoder_paused") == Some(1.0)
        });
        let errors = decoder
            .metric("sck_decoder_insert_errors_total")
            .unwrap_or(0.0);
        let rss = decoder.rss_kib().unwrap_or(0);
        std::thread::sleep(Duration::from_secs(20).saturating_sub(outage.elapsed()));
        stack_cmd(&["start", "clickhouse"]);

        let got = env.wait_count(
            &format!("device_token LIKE '{run}%'"),
            20_000,
            Duration::from_secs(120),
        );
        assert_eq!(got, 20_000, "log:\n{}", decoder.log_text());
        assert_eq!(env.duplicates_after_merge(&run), 0);
        assert!(not_ready, "/readyz stayed 200 while ClickHouse was down");
        assert!(errors > 0.0, "no insert error counted during the outage");
        assert!(paused, "consumption was not paused while inserts failed");
        assert_eq!(
            decoder.metric("sck_decoder_paused"),
            Some(0.0),
            "still paused after recovery"
        );
        let lag_fell = wait_for(Duration::from_secs(30), || {
            decoder.metric("sck_decoder_consumer_lag").unwrap_or(1.0) == 0.0
        });
        eprintln!("outage: insert errors {errors}, decoder RSS {rss} KiB, lag rose {lag_rose}, fell {lag_fell}");
        assert!(
            lag_rose && lag_fell,
            "consumer lag gauge: rose={lag_rose} fell={lag_fell}"
        );
        assert!(rss < 200 * 1024, "decoder RSS {rss} KiB during the outage");
    });
}

#[test]
fn sigterm_flushes_commits_and_exits_0() {
    serial(async {
        let env = Env::new();
        create_topics(&env.topics, 3).await;
        let run = unique("term");
        let messages = 1_000;
        produce_as_bridge(&env.topics.readings, &raw_records(&run, 10, messages)).await;
        // A batch that only SIGTERM will flush: huge row bound, one-minute age bound.
        let mut d = Decoder::start(
            &env.topics,
            &env.group,
            &env.db,
            &[("BATCH_MAX_ROWS", "1000000"), ("BATCH_MAX_AGE_MS", "60000")],
        );
        assert!(wait_for(Duration::from_secs(60), || {
            d.metric("sck_decoder_messages_consumed_total")
                .unwrap_or(0.0)
                >= messages as f64
        }));
        assert_eq!(
            env.count(&format!("device_token LIKE '{run}%'")),
            0,
            "inserted before SIGTERM"
        );
        let status = d
            .terminate(Duration::from_secs(30))
            .expect("exited in time");
        assert!(
            status.success(),
            "exit status {status:?}; log:\n{}",
            d.log_text()
        );
        assert_eq!(
            env.count(&format!("device_token LIKE '{run}%'")),
            (messages * SENSORS as usize) as u64
        );
        assert_eq!(
            committed_total(&env.group, &env.topics.readings, 3).await,
            messages as i64
        );
        assert!(d.log_text().contains("left the consumer group"));
    });
}

#[test]
fn two_decoders_split_the_partitions_and_a_rebalance_mid_stream_loses_nothing() {
    serial(async {
        let env = Env::new();
        create_topics(&env.topics, 3).await;
        let run = unique("split");
        let messages = 4_000;
        let want = (messages * SENSORS as usize) as u64;
        let records = raw_records(&run, 60, messages);
        let settings = [("BATCH_MAX_ROWS", "2000")];
        let a = Decoder::start(&env.topics, &env.group, &env.db, &settings);
        produce_as_bridge(&env.topics.readings, &records[..messages / 2]).await;
        assert!(wait_for(Duration::from_secs(60), || {
            a.metric_with("sck_decoder_rows_inserted_total", "table=\"readings\"")
                .unwrap_or(0.0)
                > 0.0
        }));
        // A second member joins while the first is busy: the group rebalances mid-stream.
        let b = Decoder::start(&env.topics, &env.group, &env.db, &settings);
        let assigned = |d: &Decoder| d.log_text().contains("partitions assigned");
        assert!(wait_for(Duration::from_secs(60), || assigned(&b)));
        produce_as_bridge(&env.topics.readings, &records[messages / 2..]).await;
        let got = env.wait_count(
            &format!("device_token LIKE '{run}%'"),
            want,
            Duration::from_secs(120),
        );
        assert_eq!(got, want, "a:\n{}\nb:\n{}", a.log_text(), b.log_text());
        assert_eq!(env.duplicates_after_merge(&run), 0);
        let consumed = |d: &Decoder| {
            d.metric_with(
                "sck_decoder_messages_consumed_total",
                "kind=\"readings_raw\"",
            )
            .unwrap_or(0.0)
        };
        let (ca, cb) = (consumed(&a), consumed(&b));
        let discarded = a
            .metric("sck_decoder_batches_discarded_total")
            .unwrap_or(0.0);
        eprintln!("decoder a consumed {ca}, b consumed {cb}; a discarded {discarded} batches at the rebalance");
        assert!(
            ca > 0.0 && cb > 0.0,
            "one decoder did all the work: {ca} / {cb}"
        );
        assert!(ca + cb >= messages as f64);
    });
}
