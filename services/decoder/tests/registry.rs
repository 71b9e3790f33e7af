//! sck-decoder with the device registry (REGISTRY_POSTGRES_URL) on the real stack: readings of
//! registered devices stored with their `device_id`, a device registered while the decoder runs
//! found at its first message, unknown tokens kept whole in `ingest_errors`, and a PostgreSQL
//! outage of 20 s that decoding rides out on the cache.
//!
//! Tests run one at a time (one stops PostgreSQL, and always starts it again); each has its own
//! Kafka topics, consumer group, ClickHouse database and device tokens, and deletes the device
//! rows it inserted.

use std::time::{Duration, Instant};

use sck_core::encode::{self, Utc};
use sck_testkit::tables::{DEVICE_HELLO, DEVICE_INFO, INGEST_ERRORS, READINGS};
use sck_testkit::*;

/// A test's own topics, group, database and platform devices, cleaned up on drop.
struct Env {
    topics: Topics,
    group: String,
    db: String,
    tokens: Vec<String>,
}

impl Env {
    fn new() -> Env {
        Env {
            topics: Topics::unique(),
            group: unique("group"),
            db: unique("db_"),
            tokens: Vec::new(),
        }
    }

    /// Registers a device on the platform (as its owner would): its `devices.id`.
    fn register(&mut self, token: &str) -> u32 {
        self.tokens.push(token.to_string());
        let id = platform(&format!(
            "INSERT INTO devices (device_token, owner_id, state) VALUES ('{token}', 1, 'not_configured') RETURNING id"
        ));
        id.trim().parse().expect("a device id")
    }

    /// A decoder of this test with the registry; `env` adds or overrides settings.
    fn decoder(&self, env: &[(&str, &str)]) -> Decoder {
        let mut all = vec![
            (
                "REGISTRY_POSTGRES_URL",
                stack().registry_postgres_url.as_str(),
            ),
            // Nothing may depend on the periodic refresh: first-seen tokens are asked at once.
            ("REGISTRY_REFRESH_SECS", "3600"),
            // The registry alone: the platform updates (which hold commits while PostgreSQL is
            // down) have their own tests (platform.rs).
            ("PLATFORM_UPDATES", "false"),
        ];
        all.extend_from_slice(env);
        Decoder::start(&self.topics, &self.group, &self.db, &all)
    }

    /// `device_id` of each stored reading of `token`, with the sensor, ordered.
    fn readings_of(&self, token: &str) -> String {
        clickhouse(&format!(
            "SELECT device_id, sensor_id, value FROM {}.{READINGS} FINAL WHERE device_token = '{token}' ORDER BY sensor_id, recorded_at",
            self.db
        ))
        .expect("select readings")
    }

    /// Waits until `sql` (a count) reaches `want`; the last count.
    fn wait_count(&self, sql: &str, want: u64, timeout: Duration) -> u64 {
        let mut last = 0;
        wait_for(timeout, || {
            last = clickhouse(sql)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            last >= want
        });
        last
    }

    fn wait_readings(&self, token: &str, want: u64) -> u64 {
        self.wait_count(
            &format!(
                "SELECT count() FROM {}.{READINGS} FINAL WHERE device_token = '{token}'",
                self.db
            ),
            want,
            Duration::from_secs(60),
        )
    }

    fn wait_errors(&self, token: &str, want: u64) -> u64 {
        self.wait_count(
            &format!(
                "SELECT count() FROM {}.{INGEST_ERRORS} FINAL WHERE device_token = '{token}'",
                self.db
            ),
            want,
            Duration::from_secs(60),
        )
    }

    /// `error_kind`, `mqtt_topic` and `payload` of `token`'s error rows, by Kafka offset.
    fn errors_of(&self, token: &str) -> String {
        clickhouse(&format!(
            "SELECT error_kind, mqtt_topic, payload FROM {}.{INGEST_ERRORS} FINAL WHERE device_token = '{token}' ORDER BY kafka_topic, kafka_offset",
            self.db
        ))
        .expect("select errors")
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        drop_database(&self.db);
        if !self.tokens.is_empty() {
            let list: Vec<String> = self.tokens.iter().map(|t| format!("'{t}'")).collect();
            let _ = platform_sql(&format!(
                "DELETE FROM devices WHERE device_token IN ({})",
                list.join(",")
            ));
        }
    }
}

/// Starts PostgreSQL again when dropped, even if the test panicked while it was stopped.
struct PostgresStopped {
    started: bool,
}

impl PostgresStopped {
    fn stop() -> PostgresStopped {
        stack_cmd(&["stop", "postgres"]);
        PostgresStopped { started: false }
    }

    fn start(&mut self) {
        if !self.started {
            self.started = true;
            stack_cmd(&["start", "postgres"]);
        }
    }
}

impl Drop for PostgresStopped {
    fn drop(&mut self) {
        self.start();
    }
}

/// A raw readings message of sensors 1 and 2 at `t`.
fn raw(token: &str, t: i64, x: f64) -> BridgeRecord {
    let mut payload = Vec::new();
    encode::raw(&mut payload, Utc(t), [(1, Some(x)), (2, Some(x + 0.5))]);
    BridgeRecord {
        mqtt_topic: format!("device/sck/{token}/readings/raw"),
        payload,
    }
}

fn record(mqtt_topic: String, payload: &str) -> BridgeRecord {
    BridgeRecord {
        mqtt_topic,
        payload: payload.as_bytes().to_vec(),
    }
}

fn text(r: &BridgeRecord) -> &str {
    std::str::from_utf8(&r.payload).expect("UTF-8 payload")
}

#[test]
fn devices_get_their_id_and_unknown_tokens_are_kept_whole() {
    serial(async {
        let mut env = Env::new();
        create_topics(&env.topics, 3).await;
        let known = unique("regk");
        let known_id = env.register(&known);
        let decoder = env.decoder(&[]);
        assert_eq!(decoder.metric("sck_decoder_registry_up"), Some(1.0));

        // Registered only now, long before the next refresh: found at its first message.
        let late = unique("regl");
        let late_id = env.register(&late);
        let stranger = unique("regu");
        let t = 1_700_000_000;
        let json = r#"{"data":[{"recorded_at":"2023-11-14T22:13:21Z","sensors":[{"id":"temp","value":21.5},{"id":"nope","value":1}]}]}"#;
        let readings = [
            raw(&known, t, 1.0),
            record(format!("device/sck/{known}/readings"), json),
            raw(&late, t, 3.0),
            raw(&stranger, t, 5.0),
        ];
        let events = [
            record(format!("device/sck/{stranger}/hello"), "hello"),
            record(
                format!("device/sck/{stranger}/info"),
                r#"{"hw_ver":"2.1","sam_ver":"0.9.8"}"#,
            ),
        ];
        produce_as_bridge(&env.topics.readings, &readings).await;
        produce_as_bridge(&env.topics.events, &events).await;

        assert_eq!(
            env.wait_readings(&known, 3),
            3,
            "log:\n{}",
            decoder.log_text()
        );
        assert_eq!(
            env.readings_of(&known),
            format!("{known_id}\t1\t1\n{known_id}\t2\t1.5\n{known_id}\t55\t21.5\n"),
            "the JSON key \"temp\" is sensor 55 (sensors.default_key)"
        );
        assert_eq!(
            env.wait_readings(&late, 2),
            2,
            "log:\n{}",
            decoder.log_text()
        );
        assert_eq!(
            env.readings_of(&late),
            format!("{late_id}\t1\t3\n{late_id}\t2\t3.5\n")
        );

        assert_eq!(env.wait_errors(&stranger, 3), 3);
        // Events first (their topic sorts first), hello before info (one key, one partition).
        assert_eq!(
            env.errors_of(&stranger),
            format!(
                "unknown_device\tdevice/sck/{stranger}/hello\thello\n\
                 unknown_device\tdevice/sck/{stranger}/info\t{}\n\
                 unknown_device\tdevice/sck/{stranger}/readings/raw\t{}\n",
                text(&events[1]),
                text(&readings[3]),
            )
        );
        for table in [READINGS, DEVICE_HELLO, DEVICE_INFO] {
            assert_eq!(
                clickhouse_count(&format!(
                    "SELECT count() FROM {}.{table} WHERE device_token = '{stranger}'",
                    env.db
                )),
                0,
                "an unknown token's messages are not stored in {table}"
            );
        }
        assert_eq!(
            clickhouse(&format!(
                "SELECT error_kind FROM {}.{INGEST_ERRORS} FINAL WHERE device_token = '{known}'",
                env.db
            ))
            .expect("select"),
            "unknown_sensor_key\n",
            "a key that is no sensor's default_key"
        );
        let lookups = |result: &str| {
            decoder
                .metric_with(
                    "sck_decoder_registry_lookups_total",
                    &format!("result=\"{result}\""),
                )
                .unwrap_or(0.0)
        };
        assert_eq!(lookups("found"), 1.0, "only the late device was asked");
        assert_eq!(lookups("not_found"), 1.0, "the stranger was asked once");
        assert_eq!(lookups("known"), 2.0);
        assert_eq!(
            lookups("unknown"),
            2.0,
            "hello and info from the negative cache"
        );
        assert!(
            decoder
                .metric("sck_decoder_registry_devices")
                .unwrap_or(0.0)
                >= 1.0,
            "the refresh loaded the table"
        );
    });
}

#[test]
fn postgres_outage_of_20s_keeps_decoding_from_the_cache() {
    serial(async {
        let mut env = Env::new();
        create_topics(&env.topics, 3).await;
        let known = unique("regk");
        let known_id = env.register(&known);
        let decoder = env.decoder(&[("REGISTRY_QUERY_TIMEOUT_MS", "1000")]);
        let t = 1_700_000_000;
        produce_as_bridge(&env.topics.readings, &[raw(&known, t, 1.0)]).await;
        assert_eq!(env.wait_readings(&known, 2), 2);

        let mut pg = PostgresStopped::stop();
        let outage = Instant::now();
        let went_down = wait_for(Duration::from_secs(15), || {
            decoder.metric("sck_decoder_registry_up") == Some(0.0)
        });
        let stranger = unique("regu");
        let during = [raw(&known, t + 60, 2.0), raw(&stranger, t, 9.0)];
        produce_as_bridge(&env.topics.readings, &during).await;
        let stored = env.wait_readings(&known, 4);
        let kept = env.wait_errors(&stranger, 1);
        let mut ready_throughout = true;
        while outage.elapsed() < Duration::from_secs(20) {
            ready_throughout &= decoder.get("/readyz").map(|(c, _)| c) == Some(200);
            std::thread::sleep(Duration::from_millis(500));
        }
        pg.start();

        assert!(went_down, "sck_decoder_registry_up did not fall to 0");
        assert_eq!(
            stored,
            4,
            "a cached device kept flowing; log:\n{}",
            decoder.log_text()
        );
        assert_eq!(
            env.readings_of(&known),
            format!("{known_id}\t1\t1\n{known_id}\t1\t2\n{known_id}\t2\t1.5\n{known_id}\t2\t2.5\n")
        );
        assert_eq!(kept, 1);
        assert_eq!(
            env.errors_of(&stranger),
            format!(
                "registry_unavailable\tdevice/sck/{stranger}/readings/raw\t{}\n",
                text(&during[1])
            )
        );
        assert!(ready_throughout, "/readyz left 200 during the outage");

        let came_back = wait_for(Duration::from_secs(30), || {
            decoder.metric("sck_decoder_registry_up") == Some(1.0)
        });
        assert!(
            came_back,
            "sck_decoder_registry_up did not return to 1; log:\n{}",
            decoder.log_text()
        );
        // Asked again once PostgreSQL is back: a device registered after the outage is found.
        let after = unique("rega");
        let after_id = env.register(&after);
        produce_as_bridge(&env.topics.readings, &[raw(&after, t, 4.0)]).await;
        assert_eq!(
            env.wait_readings(&after, 2),
            2,
            "log:\n{}",
            decoder.log_text()
        );
        assert_eq!(
            env.readings_of(&after),
            format!("{after_id}\t1\t4\n{after_id}\t2\t4.5\n")
        );
    });
}
