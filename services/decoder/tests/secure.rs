//! The pipeline against the secured stack (`STACK_SECURE=1`, started by
//! scripts/check-secure-stack.sh): Mosquitto over TLS with logins and an ACL, tansu with
//! SASL/SCRAM, ClickHouse over HTTPS with a password on every user. Built only with the `secure`
//! feature, so the integration run on the plain stack never sees these tests.
//!
//! - readings from a logged-in device over TLS → bridge → Kafka (SASL) → decoder → ClickHouse
//!   over HTTPS as the decoder's user, read back by the read-only user;
//! - the read-only user can SELECT and nothing else; no ClickHouse user works without its
//!   password;
//! - a wrong ClickHouse password, an untrusted CA and a wrong Kafka password each leave the
//!   decoder up and unready, saying why;
//! - tansu refuses plaintext clients and wrong SCRAM passwords;
//! - no password of the stack appears in any service log, `--help` output or `/metrics` body.
#![cfg(feature = "secure")]

use std::process::Command;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use sck_core::timestamp::format_utc;
use sck_testkit::tables::READINGS;
use sck_testkit::*;

/// A test's topics, group and database (dropped at the end).
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
}

impl Drop for Scratch {
    fn drop(&mut self) {
        drop_database(&self.db);
    }
}

fn secure() -> &'static Secure {
    stack().secure()
}

/// A CA that did not sign the servers' certificate (the private-CA unit test's fixture).
fn other_ca() -> String {
    repo_root()
        .join("services/decoder/tests/fixtures/ca.pem")
        .to_string_lossy()
        .into_owned()
}

/// A service's log without terminal colours.
fn plain_log(svc: &Service) -> String {
    let text = svc.log_text();
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

/// `/readyz` is 503 and names `check`.
fn unready_because(svc: &Service, check: &str) -> bool {
    matches!(svc.get("/readyz"), Some((503, body)) if body.contains(check))
}

fn still_running(svc: &mut Service) -> bool {
    matches!(svc.child.try_wait(), Ok(None))
}

/// A query as the read-only user.
fn as_reader(sql: &str) -> Result<String, String> {
    clickhouse_as(Some(&secure().clickhouse_reader), sql)
}

/// ClickHouse's exception code at the start of an error body (`Code: 164, …` on 18.16).
fn code(result: Result<String, String>) -> Option<u32> {
    let err = result.err()?;
    let rest = &err[err.find("Code: ")? + 6..];
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[test]
fn readings_travel_over_tls_sasl_and_https_and_the_read_only_user_reads_them() {
    serial(async {
        let s = Scratch::new().await;
        let decoder = Decoder::start(&s.topics, &s.group, &s.db, &[]);
        let bridge = Bridge::start(&BridgeSpec::new(&s.topics, &unique("g")));
        let dev = secure().mqtt_devices[0].clone();
        let publisher = Publisher::connect_as(Some(&dev)).await;
        let n = 60;
        for i in 0..n {
            let payload = format!("{{t:{},1:{i},2:{}}}", format_utc(1_700_000_000 + i), i * 2);
            publisher
                .publish(&format!("device/sck/{}/readings/raw", dev.user), payload)
                .await;
        }
        publisher
            .wait_acked(n as usize, Duration::from_secs(30))
            .await;
        let want = format!("{}\t{}\n", 2 * n, 3 * n * (n - 1) / 2);
        let query = format!(
            "SELECT count(), toInt64(sum(value)) FROM {}.{READINGS} FINAL WHERE device_token = '{}'",
            s.db, dev.user
        );
        let mut got = String::new();
        let stored = wait_for(Duration::from_secs(60), || {
            got = as_reader(&query).unwrap_or_default();
            got == want
        });
        assert!(
            stored,
            "read-only user sees {got:?}, want {want:?}\n{}",
            decoder.log_text()
        );
        assert_eq!(decoder.get("/readyz").map(|(c, _)| c), Some(200));
        // The metric moves once the insert has returned, a moment after the rows are visible.
        let rows = |d: &Decoder| d.metric("sck_decoder_rows_inserted_total").unwrap_or(0.0);
        assert!(
            wait_for(Duration::from_secs(10), || rows(&decoder) >= (2 * n) as f64),
            "rows inserted: {}",
            rows(&decoder)
        );
        // Stored through HTTPS: the decoder's URL is https://, and its user is not `default`.
        let log = plain_log(&decoder);
        assert!(
            log.contains(&format!("clickhouse={}", secure().clickhouse_url)),
            "{log}"
        );
        assert_eq!(secure().clickhouse_decoder.user, "sck_decoder");
        retire(vec![bridge]).await;
    });
}

#[test]
fn the_read_only_user_only_reads_and_every_user_needs_its_password() {
    serial(async {
        let s = Scratch::new().await;
        let admin = &secure().clickhouse_admin;
        clickhouse(&format!("CREATE DATABASE {}", s.db)).expect("create database");
        clickhouse(&format!(
            "CREATE TABLE {}.t (x UInt8) ENGINE = Memory",
            s.db
        ))
        .expect("create");
        clickhouse(&format!("INSERT INTO {}.t VALUES (1), (2)", s.db)).expect("insert");

        assert_eq!(
            as_reader(&format!("SELECT sum(x) FROM {}.t", s.db)),
            Ok("3\n".into())
        );
        // 164 READONLY for every write or DDL, and for changing the setting itself.
        for sql in [
            format!("INSERT INTO {}.t VALUES (3)", s.db),
            format!("CREATE TABLE {}.u (x UInt8) ENGINE = Memory", s.db),
            format!("DROP TABLE {}.t", s.db),
            format!("ALTER TABLE {}.t DELETE WHERE x = 1", s.db),
            format!("CREATE DATABASE {}_x", s.db),
            "SET readonly = 0".to_string(),
        ] {
            assert_eq!(code(as_reader(&sql)), Some(164), "{sql}");
        }
        assert_eq!(
            clickhouse_count(&format!("SELECT count() FROM {}.t", s.db)),
            2
        );

        // Without a password: 194 (password required); a wrong one: 193 (wrong password).
        let no_password = |user: &str| Login {
            user: user.into(),
            password: String::new(),
        };
        for user in ["default", "sck_decoder", "sck_reader"] {
            assert_eq!(
                code(clickhouse_as(Some(&no_password(user)), "SELECT 1")),
                Some(194),
                "{user}"
            );
            let wrong = Login {
                user: user.into(),
                password: format!("{}x", admin.password),
            };
            assert_eq!(
                code(clickhouse_as(Some(&wrong), "SELECT 1")),
                Some(193),
                "{user}"
            );
        }
        assert_eq!(
            code(clickhouse_as(None, "SELECT 1")),
            Some(194),
            "no credentials at all"
        );
        // The decoder's user may write (it runs the migrations and the inserts).
        clickhouse_as(
            Some(&secure().clickhouse_decoder),
            &format!("INSERT INTO {}.t VALUES (4)", s.db),
        )
        .expect("the decoder's user inserts");
    });
}

#[test]
fn a_wrong_clickhouse_password_leaves_the_decoder_unready_saying_so() {
    serial(async {
        let s = Scratch::new().await;
        let mut d = Decoder::spawn(
            &s.topics,
            &s.group,
            &s.db,
            &[("CLICKHOUSE_PASSWORD", "not-the-password")],
        );
        let said = wait_for(Duration::from_secs(30), || {
            unready_because(&d, "clickhouse_inserts")
                && plain_log(&d).contains("ClickHouse refuses the write (credentials or grants)")
        });
        assert!(said, "{:?}\n{}", d.get("/readyz"), d.log_text());
        let log = plain_log(&d);
        // 18.16 answers 193 (WRONG_PASSWORD), current servers 516 (AUTHENTICATION_FAILED).
        assert!(
            log.contains("code=193") || log.contains("code=516"),
            "{log}"
        );
        assert!(still_running(&mut d), "{}", d.log_text());
        // Refused at the migrations: the database was never created.
        assert_eq!(
            clickhouse_count(&format!(
                "SELECT count() FROM system.databases WHERE name = '{}'",
                s.db
            )),
            0
        );
    });
}

#[test]
fn an_untrusted_clickhouse_certificate_leaves_the_decoder_unready_saying_so() {
    serial(async {
        let s = Scratch::new().await;
        let mut d = Decoder::spawn(
            &s.topics,
            &s.group,
            &s.db,
            &[("CLICKHOUSE_CA_FILE", &other_ca())],
        );
        let said = wait_for(Duration::from_secs(30), || {
            plain_log(&d).contains("invalid peer certificate: UnknownIssuer")
        });
        assert!(said, "{}", d.log_text());
        assert!(plain_log(&d).contains("migration failed; retrying"));
        assert!(
            matches!(d.get("/readyz"), Some((503, _))),
            "{:?}",
            d.get("/readyz")
        );
        assert!(still_running(&mut d), "{}", d.log_text());
    });
}

/// Topics in a metadata answer of the stack's Kafka to a client with these extra properties.
fn kafka_metadata(extra: &[(&str, String)]) -> Result<usize, String> {
    let mut c = rdkafka::ClientConfig::new();
    c.set("bootstrap.servers", &stack().kafka_brokers)
        .set("log_level", "0");
    for (k, v) in extra {
        c.set(*k, v);
    }
    let consumer: BaseConsumer = c.create().map_err(|e| e.to_string())?;
    consumer
        .fetch_metadata(None, Duration::from_secs(5))
        .map(|m| m.topics().len())
        .map_err(|e| e.to_string())
}

/// SASL properties of the stack's mechanism for `user` and `password`.
fn sasl(user: &str, password: &str) -> Vec<(&'static str, String)> {
    vec![
        ("security.protocol", secure().kafka_protocol.clone()),
        ("sasl.mechanism", secure().kafka_mechanism.clone()),
        ("sasl.username", user.to_string()),
        ("sasl.password", password.to_string()),
    ]
}

#[test]
fn kafka_refuses_plaintext_clients_and_wrong_passwords() {
    serial(async {
        let k = &secure().kafka;
        let topics = kafka_metadata(&sasl(&k.user, &k.password));
        assert!(
            matches!(topics, Ok(n) if n > 0),
            "the right login: {topics:?}"
        );
        let wrong = kafka_metadata(&sasl(&k.user, "not-the-password"));
        assert!(wrong.is_err(), "a wrong password was accepted: {wrong:?}");
        let nobody = kafka_metadata(&sasl("nobody", &k.password));
        assert!(nobody.is_err(), "an unknown user was accepted: {nobody:?}");
        let plain = kafka_metadata(&[]);
        assert!(plain.is_err(), "a plaintext client was accepted: {plain:?}");

        // The decoder with a wrong Kafka password: up, unready on `kafka`, librdkafka says why.
        let s = Scratch::new().await;
        let mut d = Decoder::spawn(
            &s.topics,
            &s.group,
            &s.db,
            &[("KAFKA_SASL_PASSWORD", "not-the-password")],
        );
        let said = wait_for(Duration::from_secs(30), || {
            unready_because(&d, "kafka") && plain_log(&d).contains("SASL authentication error")
        });
        assert!(said, "{:?}\n{}", d.get("/readyz"), d.log_text());
        assert!(still_running(&mut d), "{}", d.log_text());
    });
}

/// What `bin args…` prints (stdout and stderr) with `env` set, as an operator would see it.
fn output_of(bin: &str, args: &[&str], env: &[(String, String)]) -> String {
    let out = Command::new(bin_path(bin))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .unwrap_or_else(|e| panic!("run {bin}: {e}"));
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn no_password_in_logs_help_or_metrics() {
    serial(async {
        let sec = secure();
        let passwords = sec.passwords();
        // The platform's PostgreSQL is not part of this stack: a registry URL with a password
        // of its own, on a port nothing listens on (the forwarder keeps retrying it).
        let pg_password = "registry-pw-1234";
        let registry_url = format!(
            "postgres://sck_registry:{pg_password}@127.0.0.1:{}/sck_platform",
            free_port()
        );
        // The services as deployed, plus ones refused for a wrong password (the wrong one is
        // what an operator typed: it must not be echoed either).
        let s = Scratch::new().await;
        let decoder = Decoder::start(&s.topics, &s.group, &s.db, &[]);
        let wrong_ch = Decoder::spawn(
            &s.topics,
            &unique("group"),
            &s.db,
            &[("CLICKHOUSE_PASSWORD", "wrong-pw-ch-1234")],
        );
        let bridge = Bridge::start(&BridgeSpec::new(&s.topics, &unique("g")));
        let wrong_mqtt = Bridge::spawn(
            &BridgeSpec::new(&s.topics, &unique("g")).with("MQTT_PASSWORD", "wrong-pw-mqtt-1234"),
        );
        // (The topics exist: creating them would wait on the refused admin client instead.)
        let wrong_kafka = Bridge::spawn(
            &BridgeSpec::new(&s.topics, &unique("g"))
                .with("KAFKA_SASL_PASSWORD", "wrong-pw-kafka-1234")
                .with("KAFKA_CREATE_TOPICS", "false"),
        );
        // Without its registry the forwarder stays unready, but logs, connects to MQTT as its
        // user and serves /metrics.
        let forwarder = Forwarder::spawn(
            &s.topics,
            &unique("fwd"),
            &s.group,
            &[("REGISTRY_POSTGRES_URL", &registry_url)],
        );
        assert!(
            wait_for(Duration::from_secs(30), || {
                wrong_mqtt
                    .metric("sck_bridge_mqtt_connection_errors_total")
                    .unwrap_or(0.0)
                    >= 2.0
                    && plain_log(&wrong_kafka).contains("SASL authentication error")
                    && plain_log(&wrong_ch).contains("ClickHouse refuses the write")
                    && forwarder.metric("sck_forwarder_mqtt_connected") == Some(1.0)
                    && plain_log(&forwarder).contains("registry load failed")
                    && matches!(wrong_kafka.get("/readyz"), Some((503, _)))
            }),
            "the services did not get going:\n{}\n{}\n{}\n{}",
            wrong_mqtt.log_text(),
            wrong_kafka.log_text(),
            wrong_ch.log_text(),
            forwarder.log_text()
        );
        // Which passwords (the stack's, and `also`) `text` holds, named by their first letters.
        let found = |what: &str, text: &str, also: &[&str]| -> Vec<String> {
            assert!(!text.is_empty(), "{what} is empty");
            passwords
                .iter()
                .chain(also)
                .filter(|p| text.contains(*p))
                .map(|p| format!("{what} contains a password ({}…)", &p[..4]))
                .collect()
        };
        // The check itself finds a password where there is one.
        assert_eq!(
            found("self-test", &format!("..{}..", passwords[0]), &[]).len(),
            1
        );
        let mut leaks = Vec::new();
        let mut check = |what: String, text: &str, also: &[&str]| {
            leaks.extend(found(&what, text, also));
        };
        let wrong = [
            "wrong-pw-ch-1234",
            "wrong-pw-mqtt-1234",
            "wrong-pw-kafka-1234",
            pg_password,
        ];
        let services: [&Service; 6] = [
            &decoder,
            &wrong_ch,
            &bridge,
            &wrong_mqtt,
            &wrong_kafka,
            &forwarder,
        ];
        for svc in services {
            let (code, metrics) = svc.get("/metrics").expect("/metrics");
            assert_eq!(code, 200);
            check(format!("{} /metrics", svc.name), &metrics, &wrong);
            check(
                format!("{} /readyz", svc.name),
                &svc.get("/readyz").expect("/readyz").1,
                &wrong,
            );
            check(
                format!("log {}", svc.log.display()),
                &svc.log_text(),
                &wrong,
            );
        }
        // --help with every secret set in the environment, as in a pod.
        let mut env = sec.bridge_env();
        env.extend(sec.decoder_env());
        env.extend(sec.forwarder_env());
        env.push(("REGISTRY_POSTGRES_URL".into(), registry_url.clone()));
        for (bin, args) in [
            ("sck-bridge", &["--help"][..]),
            ("sck-bridge", &["-h"][..]),
            ("sck-decoder", &["--help"][..]),
            ("sck-decoder", &["migrate", "--help"][..]),
            ("sck-decoder", &["replay", "--help"][..]),
            ("sck-forwarder", &["--help"][..]),
            ("sck-forwarder", &["--print-settings-markdown"][..]),
        ] {
            let text = output_of(bin, args, &env);
            assert!(
                text.contains("Usage:") || text.contains("| Variable |"),
                "{bin} {args:?}: {text}"
            );
            check(format!("{bin} {}", args.join(" ")), &text, &[pg_password]);
        }
        // Every log the test services wrote, this run's and earlier ones' (target/test-logs).
        let dir = repo_root().join("target/test-logs");
        for entry in std::fs::read_dir(&dir).expect("target/test-logs") {
            let path = entry.expect("dir entry").path();
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if !text.is_empty() {
                check(format!("log {}", path.display()), &text, &[]);
            }
        }
        assert!(leaks.is_empty(), "{leaks:#?}");
        drop((decoder, wrong_ch, wrong_mqtt, wrong_kafka, forwarder));
        retire(vec![bridge]).await;
    });
}
