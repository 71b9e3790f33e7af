//! sck-decoder when ClickHouse refuses writes for good (issue 12, "errors that can end"): with a
//! wrong password and with a column dropped by hand, the decoder keeps its batch and commits
//! nothing, turns `/readyz` 503 naming the `clickhouse_inserts` check, sets
//! `sck_decoder_insert_blocked{table,reason}` and logs the error with its table and code; once
//! the cause is fixed everything is stored and committed, nothing lost.
//!
//! Each test has its own Kafka topics, consumer group and ClickHouse database (dropped after).

use std::process::Command;
use std::time::{Duration, Instant};

use sck_core::timestamp::format_utc;
use sck_testkit::tables::{READINGS, SCHEMA_MIGRATIONS};
use sck_testkit::*;

/// The readiness check a refused write fails.
const CHECK: &str = "clickhouse_inserts";

/// A test's topics, group and database; the database is dropped on drop (the uniquely named
/// topics stay: tansu's DeleteTopics deletes all).
struct Scratch {
    topics: Topics,
    group: String,
    db: String,
}

impl Scratch {
    async fn new() -> Scratch {
        let s = Scratch {
            topics: Topics::unique(),
            group: unique("group"),
            db: unique("db_"),
        };
        create_topics(&s.topics, 3).await;
        s
    }

    /// Readings stored for run `run` (`and` adds a condition), 0 while the table is missing.
    fn stored(&self, run: &str, and: &str) -> u64 {
        clickhouse(&format!(
            "SELECT count() FROM {}.{READINGS} FINAL WHERE device_token LIKE '{run}%' {and}",
            self.db
        ))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
    }

    /// Offsets the group committed on the readings topic (summed over partitions).
    async fn committed(&self) -> i64 {
        committed_total(&self.group, &self.topics.readings, 3).await
    }

    /// Waits until [`Self::committed`] is `want` (or the timeout); returns the last total.
    async fn wait_committed(&self, want: i64, timeout: Duration) -> i64 {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.committed().await;
            if got == want || Instant::now() >= deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Runs `sck-decoder migrate` on this database with the right credentials.
    fn migrate(&self) {
        let out = Command::new(bin_path("sck-decoder"))
            .arg("migrate")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env(
                "CLICKHOUSE_URL",
                format!("http://{}", stack().clickhouse_http),
            )
            .env("CLICKHOUSE_DATABASE", &self.db)
            .output()
            .expect("run sck-decoder migrate");
        assert!(out.status.success(), "migrate: {out:?}");
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        drop_database(&self.db);
    }
}

/// `messages` raw messages of one reading each, over 10 devices of run `run`, every
/// (device, time) distinct.
fn messages(run: &str, messages: usize) -> Vec<BridgeRecord> {
    (0..messages)
        .map(|i| BridgeRecord {
            mqtt_topic: format!("device/sck/{run}d{}/readings/raw", i % 10),
            payload: format!("{{t:{},1:{i}}}", format_utc(1_700_000_000 + i as i64)).into_bytes(),
        })
        .collect()
}

/// `sck_decoder_insert_blocked{table, reason}` (label order aside).
fn blocked(d: &Decoder, table: &str, reason: &str) -> Option<f64> {
    let (_, body) = d.get("/metrics")?;
    let (t, r) = (format!("table=\"{table}\""), format!("reason=\"{reason}\""));
    body.lines()
        .filter(|l| l.starts_with("sck_decoder_insert_blocked{") && l.contains(&t))
        .find(|l| l.contains(&r))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// The decoder's log without terminal colours (`key=value` as written).
fn log(d: &Decoder) -> String {
    let text = d.log_text();
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(i) = rest.find("\x1b[") {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        rest = rest.find('m').map_or("", |m| &rest[m + 1..]);
    }
    out.push_str(rest);
    out
}

/// `/readyz` is 503 and names the check.
fn refused_readiness(d: &Decoder) -> bool {
    matches!(d.get("/readyz"), Some((503, body)) if body.contains(CHECK))
}

#[test]
fn wrong_password_blocks_until_the_decoder_runs_with_the_right_one() {
    serial(async {
        let s = Scratch::new().await;
        let run = unique("pw");
        let n = 300;
        produce_as_bridge(&s.topics.readings, &messages(&run, n)).await;
        let wrong = ("CLICKHOUSE_PASSWORD", "wrong");

        // At start the migrations are refused: blocked before anything is consumed.
        let mut d = Decoder::spawn(&s.topics, &s.group, &s.db, &[wrong]);
        let said = wait_for(Duration::from_secs(30), || {
            refused_readiness(&d) && blocked(&d, SCHEMA_MIGRATIONS, "access") == Some(1.0)
        });
        assert!(said, "{:?}\n{}", d.get("/readyz"), d.log_text());
        // 18.16 answers 193 (WRONG_PASSWORD), current servers 516 (AUTHENTICATION_FAILED).
        let text = log(&d);
        assert!(
            text.contains("ClickHouse refuses the write")
                && text.contains(&format!("table=\"{SCHEMA_MIGRATIONS}\""))
                && (text.contains("code=193") || text.contains("code=516")),
            "{text}"
        );
        d.kill(); // it never joined the group

        // Migrated by someone else: the inserts are refused; the records are consumed, kept.
        s.migrate();
        let mut d = Decoder::spawn(
            &s.topics,
            &s.group,
            &s.db,
            &[
                wrong,
                ("CLICKHOUSE_MIGRATE", "false"),
                ("DRAIN_TIMEOUT_SECS", "1"),
            ],
        );
        let said = wait_for(Duration::from_secs(60), || {
            refused_readiness(&d)
                && blocked(&d, READINGS, "access") == Some(1.0)
                && d.metric_with(
                    "sck_decoder_messages_consumed_total",
                    "kind=\"readings_raw\"",
                ) == Some(n as f64)
        });
        assert!(said, "{:?}\n{}", d.get("/readyz"), d.log_text());
        assert_eq!(blocked(&d, READINGS, "schema"), Some(0.0));
        assert!(log(&d).contains(&format!("table=\"{READINGS}\"")));
        assert_eq!(
            s.committed().await,
            0,
            "committed while inserts were refused"
        );
        assert_eq!(s.stored(&run, ""), 0);
        // SIGTERM: the refused batch stays uncommitted, the decoder leaves the group.
        let status = d
            .terminate(Duration::from_secs(30))
            .expect("exited in time");
        assert!(status.success(), "{status:?}\n{}", d.log_text());
        assert_eq!(s.committed().await, 0);

        // The right password: everything is stored and committed.
        let d = Decoder::start(&s.topics, &s.group, &s.db, &[]);
        let stored = wait_for(Duration::from_secs(60), || s.stored(&run, "") == n as u64);
        assert!(stored, "{} of {n}\n{}", s.stored(&run, ""), d.log_text());
        assert_eq!(
            s.wait_committed(n as i64, Duration::from_secs(30)).await,
            n as i64
        );
        assert_eq!(blocked(&d, READINGS, "access"), Some(0.0));
        assert_eq!(blocked(&d, SCHEMA_MIGRATIONS, "access"), Some(0.0));
    });
}

#[test]
fn dropped_column_blocks_until_it_is_added_back_and_nothing_is_lost() {
    serial(async {
        let s = Scratch::new().await;
        let run = unique("col");
        let n = 400;
        let records = messages(&run, n);
        let d = Decoder::start(&s.topics, &s.group, &s.db, &[("BATCH_MAX_ROWS", "100")]);
        produce_as_bridge(&s.topics.readings, &records[..n / 2]).await;
        assert!(wait_for(Duration::from_secs(60), || s.stored(&run, "")
            == (n / 2) as u64));
        let half = (n / 2) as i64;
        assert_eq!(s.wait_committed(half, Duration::from_secs(30)).await, half);

        let format_type = clickhouse(&format!(
            "SELECT type FROM system.columns WHERE database = '{}' AND table = '{READINGS}' AND name = 'format'",
            s.db
        ))
        .expect("system.columns");
        let format_type = format_type.trim();
        assert!(!format_type.is_empty(), "no format column");
        clickhouse(&format!(
            "ALTER TABLE {}.{READINGS} DROP COLUMN format",
            s.db
        ))
        .expect("drop column");
        produce_as_bridge(&s.topics.readings, &records[n / 2..]).await;

        let said = wait_for(Duration::from_secs(60), || {
            blocked(&d, READINGS, "schema") == Some(1.0)
                && d.get("/readyz") == Some((503, format!("not ready: {CHECK}\n")))
        });
        assert!(said, "{:?}\n{}", d.get("/readyz"), d.log_text());
        // 18.16 answers 16 (NO_SUCH_COLUMN_IN_TABLE); current servers 16 or 47.
        let text = log(&d);
        assert!(
            text.contains("ClickHouse refuses the write")
                && text.contains(&format!("table=\"{READINGS}\""))
                && (text.contains("code=16 ") || text.contains("code=47 ")),
            "{text}"
        );
        assert_eq!(s.committed().await, half, "committed while refused");
        assert_eq!(s.stored(&run, ""), (n / 2) as u64);

        clickhouse(&format!(
            "ALTER TABLE {}.{READINGS} ADD COLUMN format {format_type} AFTER value",
            s.db
        ))
        .expect("add column");
        let stored = wait_for(Duration::from_secs(60), || s.stored(&run, "") == n as u64);
        assert!(stored, "{} of {n}\n{}", s.stored(&run, ""), d.log_text());
        // The rows written after the fix carry their format (the first half lost it with the
        // column, as ClickHouse drops a column's data).
        assert_eq!(s.stored(&run, "AND format = 'raw'"), (n / 2) as u64);
        assert!(wait_for(Duration::from_secs(30), || {
            d.get("/readyz").map(|(c, _)| c) == Some(200)
                && blocked(&d, READINGS, "schema") == Some(0.0)
        }));
        assert_eq!(
            s.wait_committed(n as i64, Duration::from_secs(30)).await,
            n as i64
        );
        assert_eq!(
            clickhouse_count(&format!(
                "SELECT count() - uniqExact(device_token, recorded_at) FROM {}.{READINGS} FINAL WHERE device_token LIKE '{run}%'",
                s.db
            )),
            0
        );
    });
}
