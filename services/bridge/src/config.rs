//! sck-bridge settings: every one an env var with a default and a `--help` line.
//!
//! [`Args`] is what clap parses; [`Args::validate`] turns it into a [`Config`] and holds every
//! rule that can reject a start-up (production requirements, bad combinations), so those rules
//! are unit-tested without touching the process environment.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use sck_core::topic::{check_filter, check_share_group};
use sck_runtime::kafka::KafkaSecurity;
use sck_runtime::settings::docs::PrintSettingsArgs;
use sck_runtime::settings::kafka::{
    parse_properties, KafkaBrokersArgs, KafkaCompression, KafkaSecurityArgs, KafkaTopicsArgs,
};
use sck_runtime::settings::mqtt::{MqttLogin, MqttLoginArgs};
use sck_runtime::settings::service::{Service, ServiceArgs};

pub use sck_runtime::settings::ConfigError;

/// Forwards Smart Citizen Kit MQTT messages to Kafka, at least once: a message is acknowledged
/// to the MQTT broker only after Kafka has acknowledged its record.
#[derive(Debug, Clone, Parser)]
#[command(name = "sck-bridge", version)]
pub struct Args {
    /// Deployment environment. In `production`, MQTT_HOST and MQTT_CLIENT must be set explicitly.
    #[arg(long, env = "APP_ENV", default_value = "development")]
    pub app_env: String,

    /// MQTT broker host [default: 127.0.0.1; required when APP_ENV=production].
    #[arg(long, env = "MQTT_HOST")]
    pub mqtt_host: Option<String>,

    /// MQTT broker port.
    #[arg(long, env = "MQTT_PORT", default_value_t = 1883)]
    pub mqtt_port: u16,

    /// MQTT client id prefix; `-<MQTT_CLIENT_SUFFIX>` is appended so each instance has its own
    /// stable session [default: sck-bridge; required when APP_ENV=production].
    #[arg(long, env = "MQTT_CLIENT")]
    pub mqtt_client: Option<String>,

    /// Per-instance client id suffix [default: the hostname, i.e. the pod name]. Keep it stable
    /// across restarts (StatefulSet) so a restarted bridge resumes its persistent session.
    #[arg(long, env = "MQTT_CLIENT_SUFFIX")]
    pub mqtt_client_suffix: Option<String>,

    // MQTT_USERNAME, MQTT_PASSWORD, MQTT_TLS, MQTT_CA_FILE, MQTT_KEEP_ALIVE_SECS (shared with the other MQTT client).
    #[command(flatten)]
    pub mqtt_login: MqttLoginArgs,

    /// How long the broker keeps this bridge's session (and messages queued for it) while it
    /// is disconnected, seconds.
    #[arg(long, env = "MQTT_SESSION_EXPIRY_SECS", default_value_t = 3 * 24 * 3600)]
    pub mqtt_session_expiry_secs: u32,

    /// Shared-subscription group: subscriptions are `$share/<group>/<filter>`.
    #[arg(long, env = "MQTT_SHARED_GROUP", default_value = "sck-bridge")]
    pub mqtt_shared_group: String,

    /// Subscribe with EMQX's legacy `$queue/<filter>` form instead of `$share/<group>/…`.
    #[arg(long, env = "MQTT_QUEUE_SUBSCRIPTION", default_value_t = false, action = clap::ArgAction::Set)]
    pub mqtt_queue_subscription: bool,

    /// Comma-separated MQTT filters to subscribe to [default: device/sck/+/readings,
    /// device/sck/+/readings/raw, device/sck/+/hello, device/sck/+/info, device/inventory and
    /// the same five under bridge/].
    #[arg(long, env = "MQTT_TOPICS", value_delimiter = ',')]
    pub mqtt_topics: Vec<String>,

    /// Largest payload forwarded as data; larger ones are dead-lettered as `too_large`.
    #[arg(long, env = "MAX_PAYLOAD_BYTES", default_value_t = 256 * 1024)]
    pub max_payload_bytes: usize,

    /// Messages received but not yet acknowledged, at most (1..=65535; sent to the broker as
    /// the MQTT 5 Receive Maximum). When reached, the bridge stops reading from MQTT and the
    /// broker keeps the rest queued in the session.
    #[arg(long, env = "MAX_IN_FLIGHT", default_value_t = 10_000)]
    pub max_in_flight: usize,

    #[command(flatten)]
    pub kafka_brokers: KafkaBrokersArgs,

    #[command(flatten)]
    pub kafka_topics: KafkaTopicsArgs,

    /// Producer compression codec: none, gzip, snappy, lz4 or zstd.
    #[arg(long, env = "KAFKA_COMPRESSION", default_value = "lz4")]
    pub kafka_compression: KafkaCompression,

    /// Producer linger (batching delay), milliseconds.
    #[arg(long, env = "KAFKA_LINGER_MS", default_value_t = 5)]
    pub kafka_linger_ms: u64,

    /// How long librdkafka retries one record before reporting failure, milliseconds. The
    /// bridge then produces it again (with backoff): a record is never given up on.
    #[arg(long, env = "KAFKA_MESSAGE_TIMEOUT_MS", default_value_t = 60_000)]
    pub kafka_message_timeout_ms: u64,

    /// Extra librdkafka producer properties, `key=value` separated by `;` (applied last).
    #[arg(long, env = "KAFKA_PRODUCER_PROPERTIES", value_delimiter = ';')]
    pub kafka_producer_properties: Vec<String>,

    #[command(flatten)]
    pub kafka_security: KafkaSecurityArgs,

    /// Create the three topics at start if missing (brokers that do not auto-create, e.g. tansu).
    #[arg(long, env = "KAFKA_CREATE_TOPICS", default_value_t = false, action = clap::ArgAction::Set)]
    pub kafka_create_topics: bool,

    /// Partitions of topics created by KAFKA_CREATE_TOPICS (decoders scale up to this many).
    #[arg(long, env = "KAFKA_TOPIC_PARTITIONS", default_value_t = 12)]
    pub kafka_topic_partitions: i32,

    /// Replication factor of topics created by KAFKA_CREATE_TOPICS.
    #[arg(long, env = "KAFKA_TOPIC_REPLICATION", default_value_t = 1)]
    pub kafka_topic_replication: i32,

    #[command(flatten)]
    pub service: ServiceArgs<Bridge>,

    #[command(flatten)]
    pub print: PrintSettingsArgs,
}

/// sck-bridge's part of the settings every service has ([`ServiceArgs`]).
#[derive(Debug, Clone)]
pub struct Bridge;

impl Service for Bridge {
    const DRAIN_HELP: &'static str =
        "On SIGTERM, how long to wait for outstanding Kafka acks before disconnecting, seconds";
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub mqtt_host: String,
    pub mqtt_port: u16,
    pub client_id: String,
    pub mqtt_login: MqttLogin,
    pub mqtt_session_expiry_secs: u32,
    /// Full subscription filters, `$share/…` or `$queue/…` already applied.
    pub subscriptions: Vec<String>,
    pub max_payload_bytes: usize,
    pub max_in_flight: usize,
    pub drain_timeout: Duration,
    pub kafka_brokers: String,
    pub readings_topic: String,
    pub events_topic: String,
    pub dlq_topic: String,
    pub compression: KafkaCompression,
    pub linger_ms: u64,
    pub message_timeout_ms: u64,
    pub producer_properties: Vec<(String, String)>,
    pub security: KafkaSecurity,
    pub create_topics: Option<(i32, i32)>,
    pub metrics_addr: SocketAddr,
}

const DEFAULT_MQTT_HOST: &str = "127.0.0.1";
const DEFAULT_MQTT_CLIENT: &str = "sck-bridge";

impl Args {
    pub fn validate(self) -> Result<Config, ConfigError> {
        let production = self.app_env.eq_ignore_ascii_case("production");
        let mqtt_host = required(self.mqtt_host, "MQTT_HOST", DEFAULT_MQTT_HOST, production)?;
        let client = required(
            self.mqtt_client,
            "MQTT_CLIENT",
            DEFAULT_MQTT_CLIENT,
            production,
        )?;
        let suffix = self
            .mqtt_client_suffix
            .filter(|s| !s.is_empty())
            .unwrap_or_else(sck_runtime::hostname);
        let client_id = format!("{client}-{suffix}");

        let mqtt_login = self.mqtt_login.validate()?;
        let subscriptions = subscriptions(
            self.mqtt_topics,
            &self.mqtt_shared_group,
            self.mqtt_queue_subscription,
        )?;

        at_least("MAX_IN_FLIGHT", self.max_in_flight as u64, 1)?;
        if self.max_in_flight > u16::MAX as usize {
            return Err(ConfigError::invalid(
                "MAX_IN_FLIGHT",
                "at most 65535",
                self.max_in_flight,
            ));
        }
        at_least("MAX_PAYLOAD_BYTES", self.max_payload_bytes as u64, 1)?;
        at_least(
            "KAFKA_TOPIC_PARTITIONS",
            self.kafka_topic_partitions.max(0) as u64,
            1,
        )?;
        at_least(
            "KAFKA_TOPIC_REPLICATION",
            self.kafka_topic_replication.max(0) as u64,
            1,
        )?;
        self.kafka_brokers.check()?;
        self.kafka_topics.check()?;
        let security = self.kafka_security.validate()?;
        let producer_properties =
            parse_properties("KAFKA_PRODUCER_PROPERTIES", &self.kafka_producer_properties)?;

        Ok(Config {
            mqtt_host,
            mqtt_port: self.mqtt_port,
            client_id,
            mqtt_login,
            mqtt_session_expiry_secs: self.mqtt_session_expiry_secs,
            subscriptions,
            max_payload_bytes: self.max_payload_bytes,
            max_in_flight: self.max_in_flight,
            drain_timeout: self.service.drain_timeout(),
            kafka_brokers: self.kafka_brokers.kafka_brokers,
            readings_topic: self.kafka_topics.kafka_readings_topic,
            events_topic: self.kafka_topics.kafka_events_topic,
            dlq_topic: self.kafka_topics.kafka_dlq_topic,
            compression: self.kafka_compression,
            linger_ms: self.kafka_linger_ms,
            message_timeout_ms: self.kafka_message_timeout_ms,
            producer_properties,
            security,
            create_topics: self
                .kafka_create_topics
                .then_some((self.kafka_topic_partitions, self.kafka_topic_replication)),
            metrics_addr: self.service.metrics_addr,
        })
    }
}

fn required(
    value: Option<String>,
    name: &'static str,
    default: &str,
    production: bool,
) -> Result<String, ConfigError> {
    match value.filter(|v| !v.trim().is_empty()) {
        Some(v) => Ok(v),
        None if production => Err(ConfigError::missing(name, "when APP_ENV=production")),
        None => Ok(default.to_string()),
    }
}

fn at_least(name: &'static str, got: u64, min: u64) -> Result<(), ConfigError> {
    if got < min {
        return Err(ConfigError::invalid(name, format!("at least {min}"), got));
    }
    Ok(())
}

/// The full subscription filters: MQTT_TOPICS (or the default filters) under
/// `$share/<MQTT_SHARED_GROUP>/`, or `$queue/`, each checked by [`check_filter`]. The entries
/// themselves carry no `$` prefix: the bridge adds it.
fn subscriptions(
    topics: Vec<String>,
    group: &str,
    queue: bool,
) -> Result<Vec<String>, ConfigError> {
    let filters: Vec<String> = if topics.is_empty() {
        sck_core::topic::default_filters()
    } else {
        topics
            .into_iter()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect()
    };
    if filters.is_empty() {
        return Err(ConfigError::invalid(
            "MQTT_TOPICS",
            "at least one filter",
            "",
        ));
    }
    if !queue && check_share_group(group).is_err() {
        return Err(ConfigError::invalid(
            "MQTT_SHARED_GROUP",
            "a group name: not empty, without `/`, `+` or `#`",
            group,
        ));
    }
    let mut subscriptions = Vec::with_capacity(filters.len());
    for f in filters {
        if f.starts_with('$') {
            return Err(ConfigError::invalid(
                "MQTT_TOPICS",
                "filters without a `$` prefix (the bridge adds `$share/<group>/` or `$queue/`)",
                f,
            ));
        }
        let subscription = if queue {
            format!("$queue/{f}")
        } else {
            format!("$share/{group}/{f}")
        };
        if let Err(e) = check_filter(&subscription) {
            return Err(ConfigError::invalid(
                "MQTT_TOPICS",
                format!("MQTT filters ({e})"),
                f,
            ));
        }
        subscriptions.push(subscription);
    }
    Ok(subscriptions)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parsed from explicit arguments, then the env-dependent fields are reset, so these tests do
    /// not depend on the environment they run in.
    fn args(extra: &[&str]) -> Args {
        let mut argv = vec!["sck-bridge"];
        argv.extend_from_slice(extra);
        let mut a = Args::try_parse_from(argv).expect("parse");
        if !extra.iter().any(|e| e.starts_with("--app-env")) {
            a.app_env = "development".into();
        }
        for (flag, field) in [
            ("--mqtt-host", &mut a.mqtt_host),
            ("--mqtt-client", &mut a.mqtt_client),
            ("--mqtt-username", &mut a.mqtt_login.mqtt_username),
        ] {
            if !extra.iter().any(|e| e.starts_with(&format!("{flag}="))) {
                *field = None;
            }
        }
        if !extra.iter().any(|e| e.starts_with("--mqtt-password=")) {
            a.mqtt_login.mqtt_password = None;
        }
        if !extra.iter().any(|e| e.starts_with("--mqtt-topics")) {
            a.mqtt_topics.clear();
        }
        a.mqtt_client_suffix = Some("pod-0".into());
        a.mqtt_login.mqtt_ca_file = None;
        a.mqtt_login.mqtt_tls = extra.contains(&"--mqtt-tls=true");
        a.mqtt_queue_subscription = extra.contains(&"--mqtt-queue-subscription=true");
        a.kafka_security.kafka_security_protocol = "plaintext".into();
        a
    }

    #[test]
    fn passwords_are_never_printed() {
        let c = args(&["--mqtt-username=u", "--mqtt-password=hunter2"])
            .validate()
            .expect("valid");
        let (user, pass) = c.mqtt_login.credentials.clone().expect("credentials");
        assert_eq!((user.as_str(), pass.expose()), ("u", "hunter2"));
        assert!(!format!("{c:?}").contains("hunter2"), "{c:?}");
    }

    #[test]
    fn development_defaults_work() {
        let c = args(&[]).validate().expect("valid");
        assert_eq!(c.mqtt_host, "127.0.0.1");
        assert_eq!(c.client_id, "sck-bridge-pod-0");
        assert_eq!(c.subscriptions.len(), 10);
        assert!(c
            .subscriptions
            .contains(&"$share/sck-bridge/device/sck/+/readings".to_string()));
        assert!(c
            .subscriptions
            .contains(&"$share/sck-bridge/bridge/device/inventory".to_string()));
        assert_eq!(c.max_in_flight, 10_000);
        assert_eq!(c.max_payload_bytes, 256 * 1024);
        assert_eq!(c.readings_topic, "sck.readings");
        assert_eq!(c.events_topic, "sck.device-events");
        assert_eq!(c.dlq_topic, "sck.dead-letter");
        assert_eq!(c.create_topics, None);
    }

    #[test]
    fn production_requires_host_and_client() {
        let err = args(&["--app-env=production"]).validate().unwrap_err();
        assert_eq!(
            err,
            ConfigError::missing("MQTT_HOST", "when APP_ENV=production")
        );
        assert_eq!(
            err.to_string(),
            "MQTT_HOST must be set when APP_ENV=production"
        );

        let err = args(&["--app-env=production", "--mqtt-host=emqx"])
            .validate()
            .unwrap_err();
        assert_eq!(
            err,
            ConfigError::missing("MQTT_CLIENT", "when APP_ENV=production")
        );

        let c = args(&[
            "--app-env=production",
            "--mqtt-host=emqx",
            "--mqtt-client=b",
        ])
        .validate()
        .expect("valid");
        assert_eq!(
            (c.mqtt_host.as_str(), c.client_id.as_str()),
            ("emqx", "b-pod-0")
        );
    }

    #[test]
    fn queue_form_and_topic_override() {
        let c = args(&[
            "--mqtt-queue-subscription=true",
            "--mqtt-topics=device/sck/+/readings, device/inventory",
        ])
        .validate()
        .expect("valid");
        assert_eq!(
            c.subscriptions,
            ["$queue/device/sck/+/readings", "$queue/device/inventory"]
        );
        let c = args(&["--mqtt-shared-group=g2", "--mqtt-topics=a/#"])
            .validate()
            .expect("valid");
        assert_eq!(c.subscriptions, ["$share/g2/a/#"]);
    }

    #[test]
    fn rejects_bad_settings_with_clear_errors() {
        let filters = |why: &str| format!("MQTT filters ({why})");
        let cases: Vec<(Vec<&str>, ConfigError)> = vec![
            (
                vec!["--max-in-flight=0"],
                ConfigError::invalid("MAX_IN_FLIGHT", "at least 1", 0),
            ),
            (
                vec!["--max-in-flight=65536"],
                ConfigError::invalid("MAX_IN_FLIGHT", "at most 65535", 65536),
            ),
            (
                vec!["--mqtt-keep-alive-secs=1"],
                ConfigError::invalid("MQTT_KEEP_ALIVE_SECS", "at least 5", 1),
            ),
            (
                vec!["--mqtt-topics=a/#/b"],
                ConfigError::invalid(
                    "MQTT_TOPICS",
                    filters("`#` must be alone in the last level"),
                    "a/#/b",
                ),
            ),
            (
                vec!["--mqtt-topics=a+/b"],
                ConfigError::invalid(
                    "MQTT_TOPICS",
                    filters("`+` must be alone in its level"),
                    "a+/b",
                ),
            ),
            (
                vec!["--mqtt-topics=$share/x/y"],
                ConfigError::invalid(
                    "MQTT_TOPICS",
                    "filters without a `$` prefix (the bridge adds `$share/<group>/` or `$queue/`)",
                    "$share/x/y",
                ),
            ),
            (
                vec!["--mqtt-topics=a/\0"],
                ConfigError::invalid(
                    "MQTT_TOPICS",
                    filters("a filter must not contain NUL"),
                    "a/\0",
                ),
            ),
            (
                vec!["--mqtt-topics= , "],
                ConfigError::invalid("MQTT_TOPICS", "at least one filter", ""),
            ),
            (
                vec!["--mqtt-username=u"],
                ConfigError::missing("MQTT_PASSWORD", "when MQTT_USERNAME is set"),
            ),
            (
                vec!["--kafka-brokers= "],
                ConfigError::invalid("KAFKA_BROKERS", "non-empty", " "),
            ),
            (
                vec!["--kafka-dlq-topic="],
                ConfigError::invalid("KAFKA_DLQ_TOPIC", "non-empty", ""),
            ),
            (
                vec!["--mqtt-shared-group="],
                ConfigError::invalid(
                    "MQTT_SHARED_GROUP",
                    "a group name: not empty, without `/`, `+` or `#`",
                    "",
                ),
            ),
            (
                vec!["--mqtt-shared-group=a/b"],
                ConfigError::invalid(
                    "MQTT_SHARED_GROUP",
                    "a group name: not empty, without `/`, `+` or `#`",
                    "a/b",
                ),
            ),
            (
                vec!["--kafka-topic-partitions=0"],
                ConfigError::invalid("KAFKA_TOPIC_PARTITIONS", "at least 1", 0),
            ),
        ];
        for (argv, want) in cases {
            assert_eq!(args(&argv).validate().unwrap_err(), want, "{argv:?}");
        }
        let mut a = args(&[]);
        a.mqtt_login.mqtt_password = Some("hunter2".into());
        let err = a.validate().unwrap_err();
        assert_eq!(
            err,
            ConfigError::missing("MQTT_USERNAME", "when MQTT_PASSWORD is set")
        );
        assert!(!err.to_string().contains("hunter2"));
    }

    #[test]
    fn the_queue_form_needs_no_group() {
        let c = args(&["--mqtt-queue-subscription=true", "--mqtt-shared-group="])
            .validate()
            .expect("valid");
        assert_eq!(c.subscriptions.len(), 10);
    }

    #[test]
    fn compression_is_a_codec() {
        assert_eq!(
            args(&["--kafka-compression=ZSTD"])
                .validate()
                .expect("valid")
                .compression,
            KafkaCompression::Zstd
        );
        assert_eq!(
            args(&[]).validate().expect("valid").compression,
            KafkaCompression::Lz4
        );
        let err = Args::try_parse_from(["sck-bridge", "--kafka-compression=brotli"])
            .expect_err("not a codec")
            .to_string();
        assert!(err.contains("brotli") && err.contains("zstd"), "{err}");
    }

    #[test]
    fn kafka_security_rules_apply() {
        let mut a = args(&[]);
        a.kafka_security.kafka_security_protocol = "SASL_SSL".into();
        a.kafka_security.kafka_sasl_mechanism = None;
        assert_eq!(
            a.clone().validate().unwrap_err(),
            ConfigError::missing(
                "KAFKA_SASL_MECHANISM",
                "with KAFKA_SECURITY_PROTOCOL=sasl_ssl"
            )
        );
        a.kafka_security.kafka_sasl_mechanism = Some("SCRAM-SHA-512".into());
        a.kafka_security.kafka_sasl_username = Some("u".into());
        a.kafka_security.kafka_sasl_password = Some("p".into());
        assert_eq!(a.validate().expect("valid").security.protocol, "sasl_ssl");
    }

    #[test]
    fn ca_file_needs_tls() {
        let mut a = args(&[]);
        a.mqtt_login.mqtt_ca_file = Some("/ca.pem".into());
        assert_eq!(
            a.validate().unwrap_err(),
            ConfigError::invalid("MQTT_TLS", "true when MQTT_CA_FILE is set", false)
        );
    }

    #[test]
    fn create_topics_carries_partitions_and_replication() {
        let c = args(&["--kafka-create-topics=true", "--kafka-topic-partitions=6"])
            .validate()
            .expect("valid");
        assert_eq!(c.create_topics, Some((6, 1)));
    }

    #[test]
    fn help_documents_every_env_var() {
        use clap::CommandFactory;
        let help = Args::command().render_long_help().to_string();
        for var in [
            "APP_ENV",
            "MQTT_HOST",
            "MQTT_PORT",
            "MQTT_CLIENT",
            "MQTT_USERNAME",
            "MQTT_PASSWORD",
            "MQTT_TLS",
            "MQTT_CA_FILE",
            "MQTT_SHARED_GROUP",
            "MQTT_TOPICS",
            "MAX_IN_FLIGHT",
            "MAX_PAYLOAD_BYTES",
            "KAFKA_BROKERS",
            "KAFKA_READINGS_TOPIC",
            "KAFKA_EVENTS_TOPIC",
            "KAFKA_DLQ_TOPIC",
            "METRICS_ADDR",
            "LOG_FORMAT",
            "DRAIN_TIMEOUT_SECS",
        ] {
            assert!(help.contains(&format!("[env: {var}")), "--help lacks {var}");
        }
    }
}
