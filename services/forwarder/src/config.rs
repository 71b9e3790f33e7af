//! sck-forwarder settings: every one an env var with a default and a `--help` line.
//!
//! [`Args`] is what clap parses; [`Args::validate`] turns it into a [`Config`] and holds every
//! rule that can reject a start-up, so those rules are unit-tested without the environment.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use sck_core::backoff::Backoff;
use sck_runtime::kafka::KafkaSecurity;
use sck_runtime::secret::Secret;
use sck_runtime::settings::docs::PrintSettingsArgs;
use sck_runtime::settings::kafka::{
    parse_properties, KafkaBrokersArgs, KafkaSecurityArgs, KafkaTopicsArgs,
};
use sck_runtime::settings::mqtt::{MqttLogin, MqttLoginArgs};
use sck_runtime::settings::service::{Service, ServiceArgs};

pub use sck_runtime::settings::ConfigError;

/// Publishes the readings of the devices that forward (`devices.enable_forwarding`, owner with a
/// `forwarding_token`) to `/forward/<owner forwarding_token>/device/<device id>/readings`, QoS 1,
/// once the decoder has stored them; at least once, in its own Kafka consumer group.
#[derive(Debug, Clone, Parser)]
#[command(name = "sck-forwarder", version)]
pub struct Args {
    #[command(flatten)]
    pub kafka_brokers: KafkaBrokersArgs,

    /// Consumer group of the forwarder on the readings topic (its own: its lag and failures
    /// never hold up the decoder's).
    #[arg(long, env = "KAFKA_GROUP", default_value = "sck-forwarder")]
    pub kafka_group: String,

    // The readings topic is consumed, dead letters go to the dead-letter topic (the events topic
    // is not used).
    #[command(flatten)]
    pub kafka_topics: KafkaTopicsArgs,

    /// How often librdkafka reports statistics (the source of the consumer-lag gauge), ms.
    #[arg(long, env = "KAFKA_STATISTICS_INTERVAL_MS", default_value_t = 5_000)]
    pub kafka_statistics_interval_ms: u64,

    /// Longest a fetch request waits for data, ms (librdkafka `fetch.wait.max.ms`).
    #[arg(long, env = "KAFKA_FETCH_WAIT_MAX_MS", default_value_t = 100)]
    pub kafka_fetch_wait_max_ms: u32,

    /// Extra librdkafka consumer properties, `key=value` separated by `;` (applied last).
    #[arg(long, env = "KAFKA_CONSUMER_PROPERTIES", value_delimiter = ';')]
    pub kafka_consumer_properties: Vec<String>,

    #[command(flatten)]
    pub kafka_security: KafkaSecurityArgs,

    /// Forward a record only once this consumer group (the decoder's, KAFKA_GROUP of
    /// sck-decoder) has committed past it, i.e. once its readings are stored in ClickHouse.
    /// Empty: forward as soon as consumed.
    #[arg(long, env = "FORWARD_AFTER_GROUP", default_value = "sck-decoder")]
    pub forward_after_group: String,

    /// How often the decoder group's committed offsets are read, ms.
    #[arg(long, env = "FORWARD_GATE_POLL_MS", default_value_t = 500)]
    pub forward_gate_poll_ms: u64,

    /// MQTT broker the readings are forwarded to.
    #[arg(long, env = "MQTT_HOST", default_value = "127.0.0.1")]
    pub mqtt_host: String,

    /// MQTT broker port.
    #[arg(long, env = "MQTT_PORT", default_value_t = 1883)]
    pub mqtt_port: u16,

    /// MQTT client id prefix; `-<hostname>` is appended (the session is clean: the id only
    /// has to be unique).
    #[arg(long, env = "MQTT_CLIENT", default_value = "sck-forwarder")]
    pub mqtt_client: String,

    // MQTT_USERNAME, MQTT_PASSWORD, MQTT_TLS, MQTT_CA_FILE, MQTT_KEEP_ALIVE_SECS (shared with the other MQTT client).
    #[command(flatten)]
    pub mqtt_login: MqttLoginArgs,

    /// The platform's PostgreSQL (`postgres://user:password@host:port/database`), read for
    /// `devices.enable_forwarding` and the owner's `users.forwarding_token` (SELECT is enough;
    /// never logged). Required.
    #[arg(long, env = "REGISTRY_POSTGRES_URL", hide_env_values = true)]
    pub registry_postgres_url: Option<Secret>,

    /// How often every forwarding device is loaded from PostgreSQL, seconds (a token seen for
    /// the first time is looked up at once).
    #[arg(long, env = "FORWARDER_REFRESH_SECS", default_value_t = 60)]
    pub forwarder_refresh_secs: u64,

    /// Tokens remembered as not forwarding, at most (the oldest is forgotten first).
    #[arg(long, env = "FORWARDER_NEGATIVE_CACHE", default_value_t = 100_000)]
    pub forwarder_negative_cache: usize,

    /// Time limit of one PostgreSQL query (and connection), ms.
    #[arg(long, env = "FORWARDER_REGISTRY_TIMEOUT_MS", default_value_t = 2_000)]
    pub forwarder_registry_timeout_ms: u64,

    /// Attempts to publish a record's messages before it is dead-lettered (`forward_failed`).
    #[arg(long, env = "FORWARD_MAX_ATTEMPTS", default_value_t = 5)]
    pub forward_max_attempts: u32,

    /// Delay before the second attempt, ms; it doubles at each attempt (with jitter) …
    #[arg(long, env = "FORWARD_RETRY_INITIAL_MS", default_value_t = 1_000)]
    pub forward_retry_initial_ms: u64,

    /// … up to this, ms.
    #[arg(long, env = "FORWARD_RETRY_MAX_MS", default_value_t = 60_000)]
    pub forward_retry_max_ms: u64,

    /// Records one device may hold waiting to be forwarded; the next is dead-lettered at once
    /// (`forward_queue_full`), so a device whose forwarding fails holds no more.
    #[arg(long, env = "FORWARD_DEVICE_QUEUE", default_value_t = 1_000)]
    pub forward_device_queue: usize,

    /// Records consumed and not yet forwarded, at most (all devices); consumption pauses there.
    #[arg(long, env = "FORWARD_QUEUE_CAPACITY", default_value_t = 10_000)]
    pub forward_queue_capacity: usize,

    /// MQTT publishes sent and not yet acknowledged, at most (1..=65535).
    #[arg(long, env = "FORWARD_MAX_IN_FLIGHT", default_value_t = 1_000)]
    pub forward_max_in_flight: usize,

    /// Readings stamped more than this far in the future are not forwarded, seconds (keep it
    /// equal to the decoder's: the forwarder forwards what the decoder stores).
    #[arg(long, env = "MAX_FUTURE_SECS", default_value_t = 86_400)]
    pub max_future_secs: i64,

    #[command(flatten)]
    pub service: ServiceArgs<Forwarder>,

    #[command(flatten)]
    pub print: PrintSettingsArgs,
}

/// sck-forwarder's part of the settings every service has ([`ServiceArgs`]).
#[derive(Debug, Clone)]
pub struct Forwarder;

impl Service for Forwarder {
    const DRAIN_HELP: &'static str = "On SIGTERM, how long to keep publishing, retrying and \
        dead-lettering what was consumed before committing what is done, seconds";
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub kafka_brokers: String,
    pub group: String,
    pub readings_topic: String,
    pub dlq_topic: String,
    pub statistics_interval_ms: u64,
    pub fetch_wait_max_ms: u32,
    pub consumer_properties: Vec<(String, String)>,
    pub security: KafkaSecurity,
    pub client_id: String,
    /// The decoder's group, when forwarding waits for it.
    pub after_group: Option<String>,
    pub gate_poll: Duration,
    pub mqtt_host: String,
    pub mqtt_port: u16,
    pub mqtt_client_id: String,
    pub mqtt_login: MqttLogin,
    pub registry_url: Secret,
    pub refresh: Duration,
    pub negative_cache: usize,
    pub registry_timeout: Duration,
    pub max_attempts: u32,
    pub retry: Backoff,
    pub device_queue: usize,
    pub queue_capacity: usize,
    pub max_in_flight: usize,
    pub max_future_secs: i64,
    pub drain_timeout: Duration,
    pub metrics_addr: SocketAddr,
}

fn at_least(name: &'static str, got: u64, min: u64) -> Result<(), ConfigError> {
    if got < min {
        return Err(ConfigError::invalid(name, format!("at least {min}"), got));
    }
    Ok(())
}

impl Args {
    pub fn validate(self, hostname: &str) -> Result<Config, ConfigError> {
        let registry_url = self
            .registry_postgres_url
            .filter(|u| !u.expose().trim().is_empty())
            .ok_or_else(|| {
                ConfigError::missing(
                    "REGISTRY_POSTGRES_URL",
                    "(the forwarding devices are read from it)",
                )
            })?;
        if registry_url
            .expose()
            .parse::<tokio_postgres::Config>()
            .is_err()
        {
            // The value holds a password: not repeated in the message.
            return Err(ConfigError::invalid(
                "REGISTRY_POSTGRES_URL",
                "a postgres:// URL or key=value connection string",
                "[redacted]",
            ));
        }
        let mqtt_login = self.mqtt_login.validate()?;
        sck_runtime::settings::not_blank("MQTT_HOST", &self.mqtt_host)?;
        sck_runtime::settings::not_blank("MQTT_CLIENT", &self.mqtt_client)?;
        at_least("FORWARD_MAX_ATTEMPTS", self.forward_max_attempts.into(), 1)?;
        at_least("FORWARD_RETRY_INITIAL_MS", self.forward_retry_initial_ms, 1)?;
        at_least(
            "FORWARD_RETRY_MAX_MS",
            self.forward_retry_max_ms,
            self.forward_retry_initial_ms,
        )?;
        at_least("FORWARD_DEVICE_QUEUE", self.forward_device_queue as u64, 1)?;
        at_least(
            "FORWARD_QUEUE_CAPACITY",
            self.forward_queue_capacity as u64,
            1,
        )?;
        at_least(
            "FORWARD_MAX_IN_FLIGHT",
            self.forward_max_in_flight as u64,
            1,
        )?;
        if self.forward_max_in_flight > u16::MAX as usize {
            return Err(ConfigError::invalid(
                "FORWARD_MAX_IN_FLIGHT",
                "at most 65535",
                self.forward_max_in_flight,
            ));
        }
        at_least("FORWARD_GATE_POLL_MS", self.forward_gate_poll_ms, 10)?;
        at_least("FORWARDER_REFRESH_SECS", self.forwarder_refresh_secs, 1)?;
        at_least(
            "FORWARDER_REGISTRY_TIMEOUT_MS",
            self.forwarder_registry_timeout_ms,
            1,
        )?;
        at_least(
            "KAFKA_FETCH_WAIT_MAX_MS",
            self.kafka_fetch_wait_max_ms.into(),
            1,
        )?;
        if self.max_future_secs < 0 {
            return Err(ConfigError::invalid(
                "MAX_FUTURE_SECS",
                "0 or more",
                self.max_future_secs,
            ));
        }
        let security = self.kafka_security.validate()?;
        let consumer_properties =
            parse_properties("KAFKA_CONSUMER_PROPERTIES", &self.kafka_consumer_properties)?;
        check_eager_rebalancing(&consumer_properties)?;
        self.kafka_brokers.check()?;
        self.kafka_topics.check()?;
        sck_runtime::settings::not_blank("KAFKA_GROUP", &self.kafka_group)?;
        let after_group =
            Some(self.forward_after_group.trim().to_string()).filter(|g| !g.is_empty());
        if after_group.as_deref() == Some(self.kafka_group.as_str()) {
            return Err(ConfigError::invalid(
                "FORWARD_AFTER_GROUP",
                "another group than KAFKA_GROUP (the decoder's)",
                self.forward_after_group,
            ));
        }
        Ok(Config {
            kafka_brokers: self.kafka_brokers.kafka_brokers,
            group: self.kafka_group,
            readings_topic: self.kafka_topics.kafka_readings_topic,
            dlq_topic: self.kafka_topics.kafka_dlq_topic,
            statistics_interval_ms: self.kafka_statistics_interval_ms,
            fetch_wait_max_ms: self.kafka_fetch_wait_max_ms,
            consumer_properties,
            security,
            client_id: format!("sck-forwarder-{hostname}"),
            after_group,
            gate_poll: Duration::from_millis(self.forward_gate_poll_ms),
            mqtt_host: self.mqtt_host,
            mqtt_port: self.mqtt_port,
            mqtt_client_id: format!("{}-{hostname}", self.mqtt_client),
            mqtt_login,
            registry_url,
            refresh: Duration::from_secs(self.forwarder_refresh_secs),
            negative_cache: self.forwarder_negative_cache,
            registry_timeout: Duration::from_millis(self.forwarder_registry_timeout_ms),
            max_attempts: self.forward_max_attempts,
            retry: Backoff {
                initial: Duration::from_millis(self.forward_retry_initial_ms),
                max: Duration::from_millis(self.forward_retry_max_ms),
            },
            device_queue: self.forward_device_queue,
            queue_capacity: self.forward_queue_capacity,
            max_in_flight: self.forward_max_in_flight,
            max_future_secs: self.max_future_secs,
            drain_timeout: self.service.drain_timeout(),
            metrics_addr: self.service.metrics_addr,
        })
    }
}

/// The loop drops every record it holds when partitions are revoked, which is safe only with
/// eager rebalancing (every partition revoked and read again from its committed offset), as in
/// the decoder.
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
                format!("an eager rebalancing setting for {key} (the forwarder drops what it holds at a rebalance)"),
                value,
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "postgres://sck_registry:hunter2@127.0.0.1:15432/sck_platform";

    fn parse(args: &[&str]) -> Result<Config, ConfigError> {
        let mut argv = vec!["sck-forwarder", "--registry-postgres-url", URL];
        argv.extend_from_slice(args);
        Args::try_parse_from(argv).expect("clap").validate("pod-1")
    }

    #[test]
    fn defaults_match_the_documentation() {
        let c = parse(&[]).expect("valid");
        assert_eq!(c.group, "sck-forwarder");
        assert_eq!(c.after_group.as_deref(), Some("sck-decoder"));
        assert_eq!(
            (c.readings_topic.as_str(), c.dlq_topic.as_str()),
            ("sck.readings", "sck.dead-letter")
        );
        assert_eq!((c.mqtt_host.as_str(), c.mqtt_port), ("127.0.0.1", 1883));
        assert_eq!(c.mqtt_client_id, "sck-forwarder-pod-1");
        assert_eq!(c.client_id, "sck-forwarder-pod-1");
        assert_eq!(c.refresh, Duration::from_secs(60));
        assert_eq!(c.negative_cache, 100_000);
        assert_eq!(c.registry_timeout, Duration::from_secs(2));
        assert_eq!(c.max_attempts, 5);
        assert_eq!(
            c.retry,
            Backoff {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(60)
            }
        );
        assert_eq!(
            (c.device_queue, c.queue_capacity, c.max_in_flight),
            (1_000, 10_000, 1_000)
        );
        assert_eq!(c.gate_poll, Duration::from_millis(500));
        assert_eq!(c.max_future_secs, 86_400);
        assert_eq!(c.drain_timeout, Duration::from_secs(20));
        assert_eq!(c.metrics_addr, "0.0.0.0:9000".parse().expect("addr"));
    }

    #[test]
    fn the_registry_url_is_required_and_never_printed() {
        let e = Args::try_parse_from(["sck-forwarder"])
            .expect("clap")
            .validate("h")
            .expect_err("no registry");
        assert_eq!(e.name(), "REGISTRY_POSTGRES_URL");
        let c = parse(&["--mqtt-username", "u", "--mqtt-password", "pw-secret"]).expect("valid");
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("pw-secret"),
            "{shown}"
        );
        let e = Args::try_parse_from([
            "sck-forwarder",
            "--registry-postgres-url",
            "postgres://u:hunter2@h:notaport/db",
        ])
        .expect("clap")
        .validate("h")
        .expect_err("bad url");
        assert_eq!(e.name(), "REGISTRY_POSTGRES_URL");
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn an_empty_after_group_turns_the_gate_off() {
        assert_eq!(
            parse(&["--forward-after-group", ""])
                .expect("valid")
                .after_group,
            None
        );
        let e = parse(&["--forward-after-group", "sck-forwarder"]).expect_err("own group");
        assert_eq!(e.name(), "FORWARD_AFTER_GROUP");
    }

    #[test]
    fn rejects_bad_values() {
        for (args, name) in [
            (vec!["--forward-max-attempts", "0"], "FORWARD_MAX_ATTEMPTS"),
            (vec!["--forward-device-queue", "0"], "FORWARD_DEVICE_QUEUE"),
            (
                vec!["--forward-queue-capacity", "0"],
                "FORWARD_QUEUE_CAPACITY",
            ),
            (
                vec!["--forward-max-in-flight", "0"],
                "FORWARD_MAX_IN_FLIGHT",
            ),
            (
                vec!["--forward-max-in-flight", "70000"],
                "FORWARD_MAX_IN_FLIGHT",
            ),
            (
                vec![
                    "--forward-retry-initial-ms",
                    "500",
                    "--forward-retry-max-ms",
                    "100",
                ],
                "FORWARD_RETRY_MAX_MS",
            ),
            (
                vec!["--forwarder-refresh-secs", "0"],
                "FORWARDER_REFRESH_SECS",
            ),
            (vec!["--forward-gate-poll-ms", "1"], "FORWARD_GATE_POLL_MS"),
            (vec!["--mqtt-username", "u"], "MQTT_PASSWORD"),
            (vec!["--mqtt-ca-file", "/ca.pem"], "MQTT_TLS"),
            (vec!["--max-future-secs=-1"], "MAX_FUTURE_SECS"),
            (vec!["--kafka-readings-topic", " "], "KAFKA_READINGS_TOPIC"),
            (
                vec!["--kafka-consumer-properties", "group.protocol=consumer"],
                "KAFKA_CONSUMER_PROPERTIES",
            ),
        ] {
            match parse(&args) {
                Err(e) => assert_eq!(e.name(), name, "{args:?}: {e}"),
                Ok(_) => panic!("{args:?} accepted"),
            }
        }
    }

    #[test]
    fn the_drain_help_is_the_forwarders() {
        use clap::CommandFactory;
        let help = Args::command().render_help().to_string();
        assert!(help.contains("dead-lettering what was consumed"), "{help}");
    }
}
