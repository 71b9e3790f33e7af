//! sck-decoder's platform updates on the real stack (PostgreSQL, Redis): after a batch is in
//! ClickHouse, `devices.last_reading_at` / `data` / `state`, `components.last_reading_at` and
//! `hardware_info` are updated, never moved back by an older batch; an orphan device's hello
//! sets its handshake flag and publishes its onboarding session on Redis exactly once per hello
//! message, even when the message is read again; and a PostgreSQL outage holds the commits and
//! loses nothing, the updates being applied once it is back.
//!
//! Tests run one at a time (one stops PostgreSQL and always starts it again); each has its own
//! topics, group, database and platform rows, deleted at the end.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sck_core::encode::{self, Utc};
use sck_testkit::tables::READINGS;
use sck_testkit::*;

/// Two sensors of the seed's catalogue (components reference `sensors`).
const S1: u32 = 10;
const S2: u32 = 14;

struct Env {
    topics: Topics,
    group: String,
    db: String,
    devices: Vec<String>,
    orphans: Vec<String>,
}

impl Env {
    fn new() -> Env {
        Env {
            topics: Topics::unique(),
            group: unique("group"),
            db: unique("db_"),
            devices: Vec::new(),
            orphans: Vec::new(),
        }
    }

    /// A registered device with components for S1 and S2: its id.
    fn device(&mut self, token: &str) -> u32 {
        self.devices.push(token.to_string());
        let id: u32 = platform(&format!(
            "INSERT INTO devices (device_token, owner_id, state) VALUES ('{token}', 1, 'never_published') RETURNING id"
        ))
        .trim()
        .parse()
        .expect("a device id");
        platform(&format!(
            "INSERT INTO components (device_id, sensor_id, key) VALUES ({id}, {S1}, 's{S1}'), ({id}, {S2}, 's{S2}')"
        ));
        id
    }

    fn orphan(&mut self, token: &str, session: &str) {
        self.orphans.push(token.to_string());
        platform(&format!(
            "INSERT INTO orphan_devices (device_token, onboarding_session, device_handshake) VALUES ('{token}', '{session}', false)"
        ));
    }

    fn decoder(&self, group: &str) -> Decoder {
        Decoder::start(
            &self.topics,
            group,
            &self.db,
            &[
                (
                    "REGISTRY_POSTGRES_URL",
                    stack().registry_postgres_url.as_str(),
                ),
                ("REDIS_URL", stack().redis_url.as_str()),
            ],
        )
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        drop_database(&self.db);
        let list = |v: &[String]| {
            v.iter()
                .map(|t| format!("'{t}'"))
                .collect::<Vec<_>>()
                .join(",")
        };
        if !self.devices.is_empty() {
            let l = list(&self.devices);
            let _ = platform_sql(&format!(
                "DELETE FROM components WHERE device_id IN (SELECT id FROM devices WHERE device_token IN ({l}));
                 DELETE FROM devices WHERE device_token IN ({l})"
            ));
        }
        if !self.orphans.is_empty() {
            let _ = platform_sql(&format!(
                "DELETE FROM orphan_devices WHERE device_token IN ({})",
                list(&self.orphans)
            ));
        }
    }
}

/// `redis-cli SUBSCRIBE token-received`: the messages it printed so far.
struct Subscriber {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Subscriber {
    fn start() -> Subscriber {
        let port = stack()
            .redis_url
            .rsplit(':')
            .next()
            .expect("a port")
            .to_string();
        let mut child = Command::new("redis-cli")
            .args(["-p", &port, "--no-raw", "SUBSCRIBE", "token-received"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("redis-cli (Debian redis-tools, installed with redis-server)");
        let out = child.stdout.take().expect("stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().expect("lines").push(line);
            }
        });
        let s = Subscriber { child, lines };
        assert!(
            wait_for(Duration::from_secs(10), || s
                .lines()
                .iter()
                .any(|l| l.contains("subscribe"))),
            "redis-cli did not subscribe"
        );
        s
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("lines").clone()
    }

    /// The published messages naming `session`.
    fn sessions(&self, session: &str) -> usize {
        self.lines()
            .iter()
            .filter(|l| l.contains("onboarding_session") && l.contains(session))
            .count()
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn raw(token: &str, t: i64, x: f64) -> BridgeRecord {
    let mut payload = Vec::new();
    encode::raw(&mut payload, Utc(t), [(S1, Some(x)), (S2, Some(x + 0.5))]);
    BridgeRecord {
        mqtt_topic: format!("device/sck/{token}/readings/raw"),
        payload,
    }
}

fn event(token: &str, kind: &str, payload: &str) -> BridgeRecord {
    BridgeRecord {
        mqtt_topic: format!("device/sck/{token}/{kind}"),
        payload: payload.as_bytes().to_vec(),
    }
}

/// `SELECT` on the platform, waiting until it returns `want`.
fn wait_platform(sql: &str, want: &str) -> String {
    let mut last = String::new();
    wait_for(Duration::from_secs(60), || {
        last = platform_sql(sql).unwrap_or_default();
        last == want
    });
    last
}

fn stored(db: &str, token: &str) -> u64 {
    clickhouse_count(&format!(
        "SELECT count() FROM {db}.{READINGS} FINAL WHERE device_token = '{token}'"
    ))
}

#[test]
fn a_batch_updates_the_platform_and_a_hello_hands_shake_once() {
    serial(async {
        let mut env = Env::new();
        create_topics(&env.topics, 2).await;
        let dev = unique("pdev");
        let orphan = unique("porph");
        let session = unique("session");
        env.device(&dev);
        env.orphan(&orphan, &session);
        let sub = Subscriber::start();
        let decoder = env.decoder(&env.group);

        let (t1, t2) = (1_700_000_000, 1_700_000_600);
        produce_as_bridge(&env.topics.readings, &[raw(&dev, t2, 21.0)]).await;
        produce_as_bridge(
            &env.topics.events,
            &[
                event(&dev, "info", r#"{"hw_ver":"2.1","esp_ver":"0.9"}"#),
                event(&orphan, "hello", "hello"),
            ],
        )
        .await;
        let state = format!(
            "SELECT to_char(last_reading_at, 'YYYY-MM-DD HH24:MI:SS'), data->>'{S1}', data->>'{S2}', state, hardware_info->>'hw_ver' FROM devices WHERE device_token = '{dev}'"
        );
        assert_eq!(
            wait_platform(&state, "2023-11-14 22:23:20|21|21.5|has_published|2.1"),
            "2023-11-14 22:23:20|21|21.5|has_published|2.1"
        );
        let components = format!(
            "SELECT c.sensor_id, to_char(c.last_reading_at, 'YYYY-MM-DD HH24:MI:SS') FROM components c JOIN devices d ON d.id = c.device_id WHERE d.device_token = '{dev}' ORDER BY c.sensor_id"
        );
        assert_eq!(
            platform(&components),
            format!("{S1}|2023-11-14 22:23:20\n{S2}|2023-11-14 22:23:20")
        );
        let flag =
            format!("SELECT device_handshake FROM orphan_devices WHERE device_token = '{orphan}'");
        assert_eq!(wait_platform(&flag, "t"), "t");
        assert!(
            wait_for(Duration::from_secs(30), || sub.sessions(&session) == 1),
            "one publish of the session: {:?}",
            sub.lines()
        );
        assert_eq!(
            decoder.metric("sck_decoder_handshakes_published_total"),
            Some(1.0)
        );

        // An older batch, read after the newer one, is stored but moves nothing back.
        produce_as_bridge(&env.topics.readings, &[raw(&dev, t1, 5.0)]).await;
        assert!(wait_for(Duration::from_secs(60), || stored(&env.db, &dev) == 4));
        assert!(wait_for(Duration::from_secs(30), || {
            decoder
                .metric("sck_decoder_rows_inserted_total")
                .unwrap_or(0.0)
                >= 4.0
        }));
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(
            platform(&state),
            "2023-11-14 22:23:20|21|21.5|has_published|2.1",
            "an older batch moved the device's state back"
        );
        assert_eq!(
            platform(&components),
            format!("{S1}|2023-11-14 22:23:20\n{S2}|2023-11-14 22:23:20")
        );

        // The same hello message read again (a second group re-reads every record): the flag is
        // set again, the session is not published again.
        let again_group = unique("group");
        let again = env.decoder(&again_group);
        assert!(
            wait_for(Duration::from_secs(60), || {
                again
                    .metric("sck_decoder_messages_consumed_total")
                    .unwrap_or(0.0)
                    >= 4.0
                    && again
                        .metric("sck_decoder_rows_inserted_total")
                        .unwrap_or(0.0)
                        >= 4.0
            }),
            "the second group did not read the records again"
        );
        // Its batch (with the hello) went through the platform writer before it committed.
        assert!(
            committed_within(&again_group, &env.topics.events, 2, 2).await,
            "the second group did not commit the events"
        );
        assert_eq!(
            again.metric("sck_decoder_handshakes_published_total"),
            Some(0.0)
        );
        assert_eq!(
            sub.sessions(&session),
            1,
            "published again: {:?}",
            sub.lines()
        );
        drop(again);
        drop(decoder);
    });
}

/// Waits (up to 60 s) until `group` has committed `want` records of `topic`.
async fn committed_within(group: &str, topic: &str, partitions: i32, want: i64) -> bool {
    for _ in 0..120 {
        if committed_total(group, topic, partitions).await >= want {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    false
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

#[test]
fn a_postgres_outage_holds_the_commits_and_loses_nothing() {
    serial(async {
        let mut env = Env::new();
        create_topics(&env.topics, 2).await;
        let dev = unique("pout");
        env.device(&dev);
        let decoder = env.decoder(&env.group);
        let t = 1_700_000_000;
        produce_as_bridge(&env.topics.readings, &[raw(&dev, t, 1.0)]).await;
        let last = format!(
            "SELECT to_char(last_reading_at, 'YYYY-MM-DD HH24:MI:SS'), data->>'{S1}' FROM devices WHERE device_token = '{dev}'"
        );
        assert_eq!(
            wait_platform(&last, "2023-11-14 22:13:20|1"),
            "2023-11-14 22:13:20|1"
        );
        assert!(committed_within(&env.group, &env.topics.readings, 2, 1).await);

        let mut pg = PostgresStopped::stop();
        produce_as_bridge(
            &env.topics.readings,
            &[raw(&dev, t + 60, 2.0), raw(&dev, t + 120, 3.0)],
        )
        .await;
        // The batch reaches ClickHouse; its platform update fails and is retried, and its
        // offsets wait.
        assert!(wait_for(Duration::from_secs(60), || stored(&env.db, &dev) >= 4));
        assert!(wait_for(Duration::from_secs(60), || {
            decoder
                .metric("sck_decoder_platform_update_errors_total")
                .unwrap_or(0.0)
                >= 1.0
        }));
        assert_eq!(
            committed_total(&env.group, &env.topics.readings, 2).await,
            1,
            "offsets committed while the platform update failed"
        );
        pg.start();
        assert_eq!(
            wait_platform(&last, "2023-11-14 22:15:20|3"),
            "2023-11-14 22:15:20|3"
        );
        assert!(committed_within(&env.group, &env.topics.readings, 2, 3).await);
        assert_eq!(stored(&env.db, &dev), 6, "a reading is missing or doubled");
        drop(decoder);
    });
}

/// `sck-decoder replay` against this test's database: its stdout.
fn replay(db: &str, since: i64, token: &str) -> String {
    let out = std::process::Command::new(bin_path("sck-decoder"))
        .args([
            "replay",
            "--since",
            &since.to_string(),
            "--device-token",
            token,
        ])
        .env(
            "CLICKHOUSE_URL",
            format!("http://{}", stack().clickhouse_http),
        )
        .env("CLICKHOUSE_DATABASE", db)
        .env("REGISTRY_POSTGRES_URL", &stack().registry_postgres_url)
        .output()
        .expect("run sck-decoder replay");
    assert!(
        out.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn readings_of_a_device_registered_later_are_replayed_once() {
    serial(async {
        let mut env = Env::new();
        create_topics(&env.topics, 2).await;
        let late = unique("plate");
        let decoder = env.decoder(&env.group);
        let since = sck_runtime::clock::now_secs() - 5;
        let t = 1_700_000_000;
        produce_as_bridge(
            &env.topics.readings,
            &[raw(&late, t, 1.0), raw(&late, t + 60, 2.0)],
        )
        .await;
        let kept = format!(
            "SELECT count() FROM {}.ingest_errors FINAL WHERE device_token = '{late}' AND error_kind = 'unknown_device'",
            env.db
        );
        assert!(wait_for(Duration::from_secs(60), || clickhouse_count(
            &kept
        ) == 2));
        assert_eq!(
            stored(&env.db, &late),
            0,
            "an unregistered device's readings were stored"
        );
        drop(decoder);

        let id = env.device(&late);
        assert_eq!(
            replay(&env.db, since, &late).trim(),
            "replayed messages=2 readings=4 still_unknown=0"
        );
        let ids = format!(
            "SELECT DISTINCT device_id FROM {}.{READINGS} FINAL WHERE device_token = '{late}'",
            env.db
        );
        assert_eq!(stored(&env.db, &late), 4);
        assert_eq!(clickhouse(&ids).expect("ids").trim(), id.to_string());
        // Idempotent: a second run leaves one row per reading.
        replay(&env.db, since, &late);
        assert_eq!(stored(&env.db, &late), 4);
    });
}
