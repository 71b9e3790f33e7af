//! sck-loadtest options: every one a flag and an env var with a default. The MQTT and ClickHouse
//! connection settings are the services' (the ClickHouse and Kafka ones are the very same
//! declarations, from `sck_runtime::settings`).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use sck_runtime::secret::Secret;
use sck_runtime::settings::clickhouse::ClickHouseArgs;
use sck_runtime::settings::docs::PrintSettingsArgs;
use sck_runtime::settings::kafka::{KafkaBrokersArgs, KafkaCompression};
use sck_runtime::settings::ConfigError;

/// Simulates Smart Citizen Kit devices publishing readings over MQTT (QoS 1), then verifies
/// in ClickHouse that every reading arrived exactly once, and how late.
#[derive(Debug, Clone, Parser)]
#[command(name = "sck-loadtest", version)]
pub struct Args {
    #[command(subcommand)]
    pub mode: Option<Mode>,

    /// Simulated devices.
    #[arg(long, env = "LOADTEST_DEVICES", default_value_t = 100)]
    pub devices: usize,

    /// Messages per second, all devices together (after the ramp).
    #[arg(long, env = "LOADTEST_RATE", default_value_t = 1_000.0)]
    pub rate: f64,

    /// How long to publish, e.g. `30s`, `2m`.
    #[arg(long, env = "LOADTEST_DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    pub duration: Duration,

    /// Ramp from 10% to the full rate over this long at the start.
    #[arg(long, env = "LOADTEST_RAMP", default_value = "2s", value_parser = humantime::parse_duration)]
    pub ramp: Duration,

    /// Sensors per device (readings per timestamp).
    #[arg(long, env = "LOADTEST_SENSORS", default_value_t = 12)]
    pub sensors: usize,

    /// Fraction of messages in the raw format (the rest JSON).
    #[arg(long, env = "LOADTEST_RAW_SHARE", default_value_t = 0.5)]
    pub raw_share: f64,

    /// Fraction of JSON messages that carry several timestamps (2–5), like a device catching up.
    #[arg(long, env = "LOADTEST_MULTI_SHARE", default_value_t = 0.05)]
    pub multi_share: f64,

    /// MQTT connections the devices are spread over.
    #[arg(long, env = "LOADTEST_CONNECTIONS", default_value_t = 4)]
    pub connections: usize,

    /// Prefix of every device token of this run [default: random `lt` + 8 hex digits].
    #[arg(long, env = "LOADTEST_RUN_ID")]
    pub run_id: Option<String>,

    /// Write the figures as JSON here (charts go next to it as .svg).
    #[arg(long, env = "LOADTEST_REPORT")]
    pub report: Option<PathBuf>,

    /// How long to wait for every reading to be in ClickHouse after publishing.
    #[arg(long, env = "LOADTEST_VERIFY_TIMEOUT", default_value = "120s", value_parser = humantime::parse_duration)]
    pub verify_timeout: Duration,

    /// MQTT broker host.
    #[arg(long, env = "MQTT_HOST", default_value = "127.0.0.1")]
    pub mqtt_host: String,

    /// MQTT broker port.
    #[arg(long, env = "MQTT_PORT", default_value_t = 1883)]
    pub mqtt_port: u16,

    /// MQTT username (optional).
    #[arg(long, env = "MQTT_USERNAME")]
    pub mqtt_username: Option<String>,

    /// MQTT password (never logged).
    #[arg(long, env = "MQTT_PASSWORD", hide_env_values = true)]
    pub mqtt_password: Option<Secret>,

    #[command(flatten)]
    pub clickhouse: ClickHouseArgs,

    /// The platform's PostgreSQL as its tables' owner. When set, the run registers its devices
    /// there before publishing and checks that every stored reading carries its device's id
    /// (a decoder with REGISTRY_POSTGRES_URL). Unset: no registration, no id check.
    #[arg(long, env = "PLATFORM_POSTGRES_URL", hide_env_values = true)]
    pub platform_postgres_url: Option<Secret>,

    #[command(flatten)]
    pub print: PrintSettingsArgs,
}

#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Mode {
    /// Publish, then verify in ClickHouse (the default).
    Run,
    /// Broker ceiling: publish the same load while a bare no-op subscriber (same shared
    /// subscription, QoS 1) counts what it receives; no ClickHouse involved.
    SubscribeCeiling {
        /// Shared-subscription group of the bare subscriber (stop bridges of this group first).
        #[arg(
            long,
            env = "LOADTEST_SHARED_GROUP",
            default_value = "sck-loadtest-ceiling"
        )]
        group: String,
    },
    /// Kafka ceilings: a bare producer configured as the bridge's (acks=all, idempotent) writes
    /// records exactly as the bridge builds them into a new topic as fast as it can, then a bare
    /// consumer group reads them back. The records stay, for a decoder backlog measurement.
    KafkaCeiling {
        #[command(flatten)]
        brokers: KafkaBrokersArgs,
        /// The topic to create and fill [default: sck.ceiling.<random>].
        #[arg(long)]
        topic: Option<String>,
        /// Partitions of that topic.
        #[arg(long, default_value_t = 6)]
        partitions: i32,
        /// Records to produce (and consume).
        #[arg(long, default_value_t = 200_000)]
        messages: usize,
        /// Producer compression, as the bridge's KAFKA_COMPRESSION.
        #[arg(long, default_value = "lz4")]
        compression: KafkaCompression,
        /// Producer linger, as the bridge's KAFKA_LINGER_MS.
        #[arg(long, default_value_t = 5)]
        linger_ms: u32,
    },
    /// Database ceiling: bulk RowBinary inserts of the same kind of rows straight into a
    /// scratch table, in batches like the decoder's.
    InsertCeiling {
        /// Readings to insert.
        #[arg(long, default_value_t = 2_000_000)]
        rows: usize,
        /// Rows per INSERT.
        #[arg(long, default_value_t = 50_000)]
        batch: usize,
    },
}

impl Args {
    /// Checks the options that would make a run meaningless.
    pub fn check(&self) -> Result<(), ConfigError> {
        for (name, n) in [
            ("LOADTEST_DEVICES", self.devices),
            ("LOADTEST_CONNECTIONS", self.connections),
            ("LOADTEST_SENSORS", self.sensors),
        ] {
            if n == 0 {
                return Err(ConfigError::invalid(name, "at least 1", n));
            }
        }
        if !(self.rate > 0.0 && self.rate.is_finite()) {
            return Err(ConfigError::invalid(
                "LOADTEST_RATE",
                "a positive number",
                self.rate,
            ));
        }
        for (name, v) in [
            ("LOADTEST_RAW_SHARE", self.raw_share),
            ("LOADTEST_MULTI_SHARE", self.multi_share),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(ConfigError::invalid(name, "within 0..=1", v));
            }
        }
        if self.duration.is_zero() {
            return Err(ConfigError::invalid("LOADTEST_DURATION", "positive", "0s"));
        }
        self.clickhouse.check()?;
        if let Some(id) = &self.run_id {
            if id.is_empty() || !id.bytes().all(|c| c.is_ascii_alphanumeric()) {
                return Err(ConfigError::invalid(
                    "LOADTEST_RUN_ID",
                    "letters and digits only",
                    id,
                ));
            }
        }
        if let Some(Mode::KafkaCeiling { brokers, .. }) = &self.mode {
            brokers.check()?;
        }
        Ok(())
    }

    /// The run id: given, or `lt` + 8 random hex digits.
    pub fn run_id(&self) -> String {
        self.run_id
            .clone()
            .unwrap_or_else(|| format!("lt{:08x}", fastrand::u32(..)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Args {
        let mut argv = vec!["sck-loadtest"];
        argv.extend_from_slice(args);
        Args::try_parse_from(argv).expect("clap")
    }

    #[test]
    fn defaults_and_durations() {
        let a = parse(&[]);
        assert_eq!(a.mode, None);
        assert_eq!((a.devices, a.sensors, a.connections), (100, 12, 4));
        assert_eq!(a.duration, Duration::from_secs(30));
        assert_eq!(
            parse(&["--duration", "1m30s"]).duration,
            Duration::from_secs(90)
        );
        assert!(a.check().is_ok());
        let id = a.run_id();
        assert!(id.starts_with("lt") && id.len() == 10, "{id}");
    }

    #[test]
    fn rejects_meaningless_runs() {
        for (args, name) in [
            (vec!["--devices", "0"], "LOADTEST_DEVICES"),
            (vec!["--sensors", "0"], "LOADTEST_SENSORS"),
            (vec!["--rate", "0"], "LOADTEST_RATE"),
            (vec!["--raw-share", "1.5"], "LOADTEST_RAW_SHARE"),
            (vec!["--run-id", "a-b"], "LOADTEST_RUN_ID"),
            (vec!["--clickhouse-database", "x;y"], "CLICKHOUSE_DATABASE"),
            (vec!["--duration", "0s"], "LOADTEST_DURATION"),
            (
                vec!["kafka-ceiling", "--kafka-brokers", " "],
                "KAFKA_BROKERS",
            ),
        ] {
            assert_eq!(
                parse(&args).check().map_err(|e| e.name()),
                Err(name),
                "{args:?}"
            );
        }
    }

    #[test]
    fn ceiling_modes() {
        assert_eq!(
            parse(&["insert-ceiling", "--rows", "10"]).mode,
            Some(Mode::InsertCeiling {
                rows: 10,
                batch: 50_000
            })
        );
        match parse(&["kafka-ceiling", "--compression", "zstd"]).mode {
            Some(Mode::KafkaCeiling {
                brokers,
                compression,
                ..
            }) => {
                assert_eq!(compression, KafkaCompression::Zstd);
                assert!(!brokers.kafka_brokers.is_empty());
            }
            other => panic!("{other:?}"),
        }
        assert!(
            Args::try_parse_from(["sck-loadtest", "kafka-ceiling", "--compression", "br"]).is_err()
        );
        assert!(matches!(
            parse(&["subscribe-ceiling"]).mode,
            Some(Mode::SubscribeCeiling { .. })
        ));
    }
}
