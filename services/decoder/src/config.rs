//! sck-decoder settings: every one an env var with a default and a `--help` line.
//!
//! [`Args`] is what clap parses; [`Args::validate`] turns it into a [`Config`] and holds every
//! rule that can reject a start-up, so those rules are unit-tested without the environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use sck_runtime::kafka::KafkaSecurity;
use sck_runtime::secret::Secret;
use sck_runtime::settings::clickhouse::{ClickHouseArgs, ClickHouseTransportArgs};
use sck_runtime::settings::docs::PrintSettingsArgs;
use sck_runtime::settings::kafka::{
    parse_properties, KafkaBrokersArgs, KafkaSecurityArgs, KafkaTopicsArgs,
};
use sck_runtime::settings::registry::{RegistryArgs, RegistrySettings};
use sck_runtime::settings::service::{Service, ServiceArgs};

pub use sck_runtime::settings::clickhouse::ClickHouseCompression;
pub use sck_runtime::settings::ConfigError;

/// Consumes the records sck-bridge wrote to Kafka, decodes both readings formats and the device
/// events, and inserts them into ClickHouse in batches; Kafka offsets are committed only after
/// the insert holding them succeeded.
#[derive(Debug, Clone, Parser)]
#[command(name = "sck-decoder", version)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub kafka_brokers: KafkaBrokersArgs,

    /// Consumer group: decoder replicas in one group share the partitions.
    #[arg(long, env = "KAFKA_GROUP", default_value = "sck-decoder")]
    pub kafka_group: String,

    #[command(flatten)]
    pub kafka_topics: KafkaTopicsArgs,

    /// Also consume the dead-letter topic, recording what the *bridge* dead-lettered
    /// (too_large, unknown_topic, …) in `ingest_errors`. The decoder's own records are skipped.
    #[arg(long, env = "KAFKA_CONSUME_DEAD_LETTER", default_value_t = true, action = clap::ArgAction::Set)]
    pub kafka_consume_dead_letter: bool,

    /// How often librdkafka reports statistics (the source of the consumer-lag gauge), ms.
    #[arg(long, env = "KAFKA_STATISTICS_INTERVAL_MS", default_value_t = 5_000)]
    pub kafka_statistics_interval_ms: u64,

    /// Longest a fetch request waits for data, ms (librdkafka `fetch.wait.max.ms`). It bounds
    /// the added latency on brokers that hold a fetch for the whole wait (tansu); Apache Kafka
    /// answers as soon as data arrives either way.
    #[arg(long, env = "KAFKA_FETCH_WAIT_MAX_MS", default_value_t = 100)]
    pub kafka_fetch_wait_max_ms: u32,

    /// Extra librdkafka consumer properties, `key=value` separated by `;` (applied last).
    #[arg(long, env = "KAFKA_CONSUMER_PROPERTIES", value_delimiter = ';')]
    pub kafka_consumer_properties: Vec<String>,

    #[command(flatten)]
    pub kafka_security: KafkaSecurityArgs,

    #[command(flatten)]
    pub clickhouse: ClickHouseArgs,

    #[command(flatten)]
    pub clickhouse_transport: ClickHouseTransportArgs,

    /// Let the clickhouse crate check rows against the table schema (RowBinaryWithNamesAndTypes).
    /// Needs a current ClickHouse; must stay off for old servers such as 18.16.
    #[arg(long, env = "CLICKHOUSE_VALIDATION", default_value_t = false, action = clap::ArgAction::Set)]
    pub clickhouse_validation: bool,

    /// Run the schema migrations at start (they are idempotent; `sck-decoder migrate` runs
    /// only them).
    #[arg(long, env = "CLICKHOUSE_MIGRATE", default_value_t = true, action = clap::ArgAction::Set)]
    pub clickhouse_migrate: bool,

    /// Time limit of one INSERT, seconds (then it is retried).
    #[arg(long, env = "INSERT_TIMEOUT_SECS", default_value_t = 30)]
    pub insert_timeout_secs: u64,

    /// A batch is inserted when it holds this many rows …
    #[arg(long, env = "BATCH_MAX_ROWS", default_value_t = 20_000)]
    pub batch_max_rows: usize,

    /// … or this many payload bytes …
    #[arg(long, env = "BATCH_MAX_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub batch_max_bytes: usize,

    /// … or when its first message is this old, milliseconds.
    #[arg(long, env = "BATCH_MAX_AGE_MS", default_value_t = 1_000)]
    pub batch_max_age_ms: u64,

    /// Readings stamped more than this far in the future are rejected, seconds.
    #[arg(long, env = "MAX_FUTURE_SECS", default_value_t = 86_400)]
    pub max_future_secs: i64,

    #[command(flatten)]
    pub registry: RegistryArgs,

    /// With REGISTRY_POSTGRES_URL: after each inserted batch (before its offsets are
    /// committed) update the platform's devices (last_reading_at, data, state, hardware_info),
    /// components (last_reading_at) and the orphan-device handshake, as the original handler
    /// did. A failed update is retried like an insert: nothing is committed meanwhile.
    #[arg(long, env = "PLATFORM_UPDATES", default_value_t = true, action = clap::ArgAction::Set)]
    pub platform_updates: bool,

    /// Redis of the platform's onboarding page: a hello from an orphan device publishes its
    /// onboarding session on the channel `token-received`. Unset: no publish (the handshake
    /// flag is still set).
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<Secret>,

    #[command(flatten)]
    pub service: ServiceArgs<Decoder>,

    #[command(flatten)]
    pub print: PrintSettingsArgs,
}

/// sck-decoder's part of the settings every service has ([`ServiceArgs`]).
#[derive(Debug, Clone)]
pub struct Decoder;

impl Service for Decoder {
    const DRAIN_HELP: &'static str =
        "On SIGTERM, how long to keep trying to insert and commit what was consumed, seconds";
}

#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Run the ClickHouse schema migrations and exit (the service also runs them at start).
    Migrate,
    /// Consume and insert (the default).
    Run,
    /// Decode payloads with the pipeline's code and print what would be stored, as JSON lines
    /// (rows, problems, a summary); needs no Kafka, ClickHouse or network. Exit 0: decoded;
    /// 1: problems; 2: usage error.
    Decode(DecodeArgs),
    /// Store the readings of messages kept in ingest_errors as unknown_device or
    /// registry_unavailable, now that their devices are registered (needs ClickHouse and
    /// REGISTRY_POSTGRES_URL; idempotent).
    Replay(ReplayArgs),
}

#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct ReplayArgs {
    /// Only messages received at or after this time: Unix seconds or a timestamp
    /// (`2026-11-27T10:00:00Z`, `2026-11-27 10:00:00`).
    #[arg(long)]
    pub since: String,

    /// Only this device's messages.
    #[arg(long)]
    pub device_token: Option<String>,
}

/// `sck-decoder decode` arguments (per invocation, so flags only, no env vars).
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct DecodeArgs {
    /// MQTT topic the payload was published on; it decides the format
    /// (e.g. device/sck/<token>/readings/raw).
    #[arg(long)]
    pub topic: String,

    /// Read one payload per input line; inside a line \n \r \t \0 \\ and \xHH are escapes.
    #[arg(long)]
    pub lines: bool,

    /// The clock for the future-timestamp check (MAX_FUTURE_SECS): Unix seconds or a
    /// timestamp, for reproducible output [default: the system clock].
    #[arg(long)]
    pub now: Option<String>,

    /// The payload, or - to read it from stdin [default with --lines: -].
    pub payload: Option<std::ffi::OsString>,
}

/// Batch bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    pub max_rows: usize,
    pub max_bytes: usize,
    pub max_age: Duration,
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub command: Command,
    pub kafka_brokers: String,
    pub group: String,
    pub readings_topic: String,
    pub events_topic: String,
    pub dlq_topic: String,
    pub consume_dead_letter: bool,
    pub statistics_interval_ms: u64,
    pub fetch_wait_max_ms: u32,
    pub consumer_properties: Vec<(String, String)>,
    pub security: KafkaSecurity,
    pub clickhouse_url: String,
    pub clickhouse_ca_file: Option<PathBuf>,
    pub database: String,
    pub clickhouse_user: String,
    pub clickhouse_password: Option<Secret>,
    pub compression: ClickHouseCompression,
    pub validation: bool,
    pub migrate: bool,
    pub insert_timeout: Duration,
    pub batch: BatchLimits,
    pub max_future_secs: i64,
    /// The device registry; `None` without REGISTRY_POSTGRES_URL (device_id 0).
    pub registry: Option<RegistrySettings>,
    /// Write the platform's latest state and handshake (only with a registry).
    pub platform_updates: bool,
    pub redis_url: Option<Secret>,
    pub drain_timeout: Duration,
    pub metrics_addr: SocketAddr,
    pub client_id: String,
}

impl Args {
    pub fn validate(self, hostname: &str) -> Result<Config, ConfigError> {
        self.clickhouse.check()?;
        self.clickhouse_transport
            .check(&self.clickhouse.clickhouse_url)?;
        if self.batch_max_rows == 0 {
            return Err(ConfigError::invalid(
                "BATCH_MAX_ROWS",
                "at least 1",
                self.batch_max_rows,
            ));
        }
        if self.batch_max_bytes < 1024 {
            return Err(ConfigError::invalid(
                "BATCH_MAX_BYTES",
                "at least 1024",
                self.batch_max_bytes,
            ));
        }
        if self.batch_max_age_ms == 0 {
            return Err(ConfigError::invalid(
                "BATCH_MAX_AGE_MS",
                "at least 1",
                self.batch_max_age_ms,
            ));
        }
        if self.max_future_secs < 0 {
            return Err(ConfigError::invalid(
                "MAX_FUTURE_SECS",
                "0 or more",
                self.max_future_secs,
            ));
        }
        if self.kafka_fetch_wait_max_ms == 0 {
            return Err(ConfigError::invalid(
                "KAFKA_FETCH_WAIT_MAX_MS",
                "at least 1",
                0,
            ));
        }
        if self.insert_timeout_secs == 0 {
            return Err(ConfigError::invalid("INSERT_TIMEOUT_SECS", "at least 1", 0));
        }
        let security = self.kafka_security.validate()?;
        let consumer_properties =
            parse_properties("KAFKA_CONSUMER_PROPERTIES", &self.kafka_consumer_properties)?;
        check_eager_rebalancing(&consumer_properties)?;
        self.kafka_brokers.check()?;
        self.kafka_topics.check()?;
        let registry = self.registry.validate()?;
        Ok(Config {
            command: self.command.unwrap_or(Command::Run),
            kafka_brokers: self.kafka_brokers.kafka_brokers,
            group: self.kafka_group,
            readings_topic: self.kafka_topics.kafka_readings_topic,
            events_topic: self.kafka_topics.kafka_events_topic,
            dlq_topic: self.kafka_topics.kafka_dlq_topic,
            consume_dead_letter: self.kafka_consume_dead_letter,
            statistics_interval_ms: self.kafka_statistics_interval_ms,
            fetch_wait_max_ms: self.kafka_fetch_wait_max_ms,
            consumer_properties,
            security,
            clickhouse_url: self.clickhouse.clickhouse_url,
            clickhouse_ca_file: self.clickhouse_transport.clickhouse_ca_file,
            database: self.clickhouse.clickhouse_database,
            clickhouse_user: self.clickhouse.clickhouse_user,
            clickhouse_password: self.clickhouse.clickhouse_password,
            compression: self.clickhouse_transport.clickhouse_compression,
            validation: self.clickhouse_validation,
            migrate: self.clickhouse_migrate,
            insert_timeout: Duration::from_secs(self.insert_timeout_secs),
            batch: BatchLimits {
                max_rows: self.batch_max_rows,
                max_bytes: self.batch_max_bytes,
                max_age: Duration::from_millis(self.batch_max_age_ms),
            },
            max_future_secs: self.max_future_secs,
            platform_updates: self.platform_updates && registry.is_some(),
            registry,
            redis_url: self.redis_url.filter(|u| !u.expose().trim().is_empty()),
            drain_timeout: self.service.drain_timeout(),
            metrics_addr: self.service.metrics_addr,
            client_id: format!("sck-decoder-{hostname}"),
        })
    }
}

/// The pipeline discards its whole uncommitted batch when partitions are revoked, which is safe
/// only with eager rebalancing (every partition revoked and re-read from its committed offset).
/// Incremental protocols keep some partitions through a rebalance, so their discarded records
/// would never be read again: refused.
fn check_eager_rebalancing(properties: &[(String, String)]) -> Result<(), ConfigError> {
    for (key, value) in properties {
        let incremental = match key.as_str() {
            "partition.assignment.strategy" => value.contains("cooperative"),
            "group.protocol" => value.trim() != "classic",
            _ => false,
        };
        if incremental {
            return Err(ConfigError::invalid(
                "KAFKA_CONSUMER_PROPERTIES",
                format!("an eager rebalancing setting for {key} (the decoder discards uncommitted batches at a rebalance)"),
                value,
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, ConfigError> {
        let mut argv = vec!["sck-decoder"];
        argv.extend_from_slice(args);
        Args::try_parse_from(argv).expect("clap").validate("pod-1")
    }

    #[test]
    fn defaults_match_the_documentation() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.command, Command::Run);
        assert_eq!(c.group, "sck-decoder");
        assert_eq!(
            (
                c.readings_topic.as_str(),
                c.events_topic.as_str(),
                c.dlq_topic.as_str()
            ),
            ("sck.readings", "sck.device-events", "sck.dead-letter")
        );
        assert_eq!(c.database, "sck");
        assert_eq!(c.compression, ClickHouseCompression::Lz4);
        assert!(!c.validation && c.migrate && c.consume_dead_letter);
        assert_eq!(
            c.batch,
            BatchLimits {
                max_rows: 20_000,
                max_bytes: 16 * 1024 * 1024,
                max_age: Duration::from_secs(1)
            }
        );
        assert_eq!(c.max_future_secs, 86_400);
        assert_eq!(c.fetch_wait_max_ms, 100);
        assert_eq!(c.client_id, "sck-decoder-pod-1");
        assert_eq!(
            c.registry, None,
            "no registry without REGISTRY_POSTGRES_URL"
        );
    }

    #[test]
    fn registry_settings() {
        let c = parse(&[
            "--registry-postgres-url",
            "postgres://reg:hunter2@pg:5432/platform",
            "--registry-refresh-secs",
            "3600",
        ])
        .unwrap();
        let r = c.registry.as_ref().expect("a registry");
        assert_eq!(r.refresh, Duration::from_secs(3600));
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(
            parse(&["--registry-query-timeout-ms", "0"])
                .map_err(|e| e.name())
                .err(),
            Some("REGISTRY_QUERY_TIMEOUT_MS")
        );
    }

    #[test]
    fn ca_file_with_an_https_url() {
        let c = parse(&[
            "--clickhouse-url",
            "https://ch.example:8443",
            "--clickhouse-ca-file",
            "/etc/sck/clickhouse-ca/ca.crt",
        ])
        .unwrap();
        assert_eq!(
            c.clickhouse_ca_file.as_deref(),
            Some(std::path::Path::new("/etc/sck/clickhouse-ca/ca.crt"))
        );
        assert_eq!(parse(&[]).unwrap().clickhouse_ca_file, None);
    }

    #[test]
    fn passwords_are_never_printed() {
        let c = parse(&["--clickhouse-password", "hunter2"]).unwrap();
        assert_eq!(
            c.clickhouse_password.as_ref().map(|p| p.expose()),
            Some("hunter2")
        );
        assert!(!format!("{c:?}").contains("hunter2"), "{c:?}");
    }

    #[test]
    fn migrate_subcommand() {
        assert_eq!(parse(&["migrate"]).unwrap().command, Command::Migrate);
    }

    #[test]
    fn rejects_bad_values() {
        for (args, name) in [
            (
                vec!["--clickhouse-database", "sck; DROP"],
                "CLICKHOUSE_DATABASE",
            ),
            (vec!["--clickhouse-database", "1db"], "CLICKHOUSE_DATABASE"),
            (vec!["--batch-max-rows", "0"], "BATCH_MAX_ROWS"),
            (vec!["--batch-max-bytes", "10"], "BATCH_MAX_BYTES"),
            (vec!["--batch-max-age-ms", "0"], "BATCH_MAX_AGE_MS"),
            (vec!["--max-future-secs=-1"], "MAX_FUTURE_SECS"),
            (
                vec!["--kafka-fetch-wait-max-ms", "0"],
                "KAFKA_FETCH_WAIT_MAX_MS",
            ),
            (vec!["--kafka-readings-topic", " "], "KAFKA_READINGS_TOPIC"),
            (vec!["--clickhouse-ca-file", "/ca.pem"], "CLICKHOUSE_URL"),
            (vec!["--kafka-brokers", ""], "KAFKA_BROKERS"),
        ] {
            match parse(&args) {
                Err(ConfigError::Invalid { name: n, .. }) => assert_eq!(n, name, "{args:?}"),
                Err(other) => panic!("{args:?}: unexpected {other}"),
                Ok(_) => panic!("{args:?} accepted"),
            }
        }
    }

    #[test]
    fn kafka_settings_are_checked_like_the_bridge() {
        assert_eq!(
            parse(&["--kafka-security-protocol", "tls"]).unwrap_err(),
            ConfigError::invalid(
                "KAFKA_SECURITY_PROTOCOL",
                "one of plaintext, ssl, sasl_plaintext, sasl_ssl",
                "tls"
            )
        );
        assert_eq!(
            parse(&["--kafka-security-protocol", "sasl_plaintext"]).unwrap_err(),
            ConfigError::missing(
                "KAFKA_SASL_MECHANISM",
                "with KAFKA_SECURITY_PROTOCOL=sasl_plaintext"
            )
        );
        assert_eq!(
            parse(&["--kafka-consumer-properties", "fetch.min.bytes"]).unwrap_err(),
            ConfigError::invalid(
                "KAFKA_CONSUMER_PROPERTIES",
                "key=value entries separated by `;`",
                "fetch.min.bytes"
            )
        );
    }

    #[test]
    fn compression_is_lz4_or_none() {
        assert_eq!(
            parse(&["--clickhouse-compression", "NONE"])
                .unwrap()
                .compression,
            ClickHouseCompression::None
        );
        let err = Args::try_parse_from(["sck-decoder", "--clickhouse-compression", "zip"])
            .expect_err("not a codec")
            .to_string();
        assert!(err.contains("zip") && err.contains("lz4 or none"), "{err}");
    }

    #[test]
    fn service_settings_keep_their_defaults_and_help() {
        use clap::CommandFactory;
        let c = parse(&[]).unwrap();
        assert_eq!(c.drain_timeout, Duration::from_secs(20));
        assert_eq!(c.metrics_addr, "0.0.0.0:9000".parse().unwrap());
        let help = Args::command().render_help().to_string();
        assert!(
            help.contains("insert and commit what was consumed"),
            "{help}"
        );
    }

    #[test]
    fn consumer_properties_are_split() {
        let c = parse(&[
            "--kafka-consumer-properties",
            "fetch.min.bytes=1000; session.timeout.ms=30000;",
        ])
        .unwrap();
        assert_eq!(
            c.consumer_properties,
            vec![
                ("fetch.min.bytes".to_string(), "1000".to_string()),
                ("session.timeout.ms".to_string(), "30000".to_string())
            ]
        );
    }

    #[test]
    fn incremental_rebalancing_is_refused() {
        for props in [
            "partition.assignment.strategy=cooperative-sticky",
            "partition.assignment.strategy=range,cooperative-sticky",
            "group.protocol=consumer",
        ] {
            let e = parse(&["--kafka-consumer-properties", props])
                .expect_err(props)
                .to_string();
            assert!(e.contains("KAFKA_CONSUMER_PROPERTIES"), "{e}");
        }
        for props in [
            "partition.assignment.strategy=roundrobin",
            "group.protocol=classic",
        ] {
            assert!(
                parse(&["--kafka-consumer-properties", props]).is_ok(),
                "{props}"
            );
        }
    }
}
