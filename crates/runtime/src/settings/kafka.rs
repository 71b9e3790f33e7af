//! Kafka settings the binaries take the same way: the brokers, the pipeline's three topics,
//! security (TLS, SASL), the producer codec and the `key=value;…` librdkafka property overrides.
//! Turning them into librdkafka properties is [`crate::kafka`]'s job.

use std::path::PathBuf;
use std::str::FromStr;

use super::{not_blank, ConfigError};
use crate::kafka::KafkaSecurity;
use crate::secret::Secret;

/// Where Kafka is (`#[command(flatten)]` into a binary's arguments).
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct KafkaBrokersArgs {
    /// Kafka bootstrap servers, comma-separated host:port.
    #[arg(long, env = "KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub kafka_brokers: String,
}

impl KafkaBrokersArgs {
    pub fn check(&self) -> Result<(), ConfigError> {
        not_blank("KAFKA_BROKERS", &self.kafka_brokers)
    }
}

/// The pipeline's three topics (`#[command(flatten)]` into a service's arguments): the bridge
/// writes and the decoder reads them, so one definition keeps their names and defaults equal.
#[derive(Debug, Clone, clap::Args)]
pub struct KafkaTopicsArgs {
    /// Topic of both readings formats.
    #[arg(long, env = "KAFKA_READINGS_TOPIC", default_value = "sck.readings")]
    pub kafka_readings_topic: String,

    /// Topic of hello / info / inventory messages.
    #[arg(long, env = "KAFKA_EVENTS_TOPIC", default_value = "sck.device-events")]
    pub kafka_events_topic: String,

    /// Dead-letter topic (records carry an `error` header with the reason).
    #[arg(long, env = "KAFKA_DLQ_TOPIC", default_value = "sck.dead-letter")]
    pub kafka_dlq_topic: String,
}

impl KafkaTopicsArgs {
    /// Each topic with the variable that sets it.
    pub fn named(&self) -> [(&'static str, &String); 3] {
        [
            ("KAFKA_READINGS_TOPIC", &self.kafka_readings_topic),
            ("KAFKA_EVENTS_TOPIC", &self.kafka_events_topic),
            ("KAFKA_DLQ_TOPIC", &self.kafka_dlq_topic),
        ]
    }

    /// Every topic has a name.
    pub fn check(&self) -> Result<(), ConfigError> {
        self.named()
            .into_iter()
            .try_for_each(|(name, topic)| not_blank(name, topic))
    }
}

/// Kafka TLS / SASL settings (`#[command(flatten)]` into a service's arguments).
#[derive(Debug, Clone, clap::Args)]
pub struct KafkaSecurityArgs {
    /// Kafka security.protocol: plaintext, ssl, sasl_plaintext or sasl_ssl.
    #[arg(long, env = "KAFKA_SECURITY_PROTOCOL", default_value = "plaintext")]
    pub kafka_security_protocol: String,

    /// SASL mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) when SASL is used.
    #[arg(long, env = "KAFKA_SASL_MECHANISM")]
    pub kafka_sasl_mechanism: Option<String>,

    /// SASL username.
    #[arg(long, env = "KAFKA_SASL_USERNAME")]
    pub kafka_sasl_username: Option<String>,

    /// SASL password (never logged).
    #[arg(long, env = "KAFKA_SASL_PASSWORD", hide_env_values = true)]
    pub kafka_sasl_password: Option<Secret>,

    /// PEM file of the CA for Kafka TLS [default: the system's roots].
    #[arg(long, env = "KAFKA_SSL_CA_FILE")]
    pub kafka_ssl_ca_file: Option<PathBuf>,
}

const PROTOCOLS: [&str; 4] = ["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"];
/// The SASL mechanisms this build of librdkafka can use without further settings (no GSSAPI,
/// no OAUTHBEARER token source), as librdkafka spells them.
const MECHANISMS: [&str; 3] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

impl KafkaSecurityArgs {
    pub fn validate(self) -> Result<KafkaSecurity, ConfigError> {
        let protocol = self.kafka_security_protocol.to_ascii_lowercase();
        if !PROTOCOLS.contains(&protocol.as_str()) {
            return Err(ConfigError::invalid(
                "KAFKA_SECURITY_PROTOCOL",
                "one of plaintext, ssl, sasl_plaintext, sasl_ssl",
                self.kafka_security_protocol,
            ));
        }
        let mechanism = match self.kafka_sasl_mechanism {
            Some(m) => match MECHANISMS.iter().find(|k| k.eq_ignore_ascii_case(m.trim())) {
                Some(known) => Some(known.to_string()),
                None => {
                    return Err(ConfigError::invalid(
                        "KAFKA_SASL_MECHANISM",
                        "one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512",
                        m,
                    ))
                }
            },
            None => None,
        };
        if self.kafka_ssl_ca_file.is_some() && !protocol.ends_with("ssl") {
            return Err(ConfigError::invalid(
                "KAFKA_SECURITY_PROTOCOL",
                "ssl or sasl_ssl when KAFKA_SSL_CA_FILE is set",
                protocol,
            ));
        }
        if protocol.starts_with("sasl") {
            for (name, given) in [
                ("KAFKA_SASL_MECHANISM", mechanism.is_some()),
                ("KAFKA_SASL_USERNAME", self.kafka_sasl_username.is_some()),
                ("KAFKA_SASL_PASSWORD", self.kafka_sasl_password.is_some()),
            ] {
                if !given {
                    return Err(ConfigError::missing(
                        name,
                        format!("with KAFKA_SECURITY_PROTOCOL={protocol}"),
                    ));
                }
            }
        }
        Ok(KafkaSecurity {
            protocol,
            sasl_mechanism: mechanism,
            sasl_username: self.kafka_sasl_username,
            sasl_password: self.kafka_sasl_password,
            ssl_ca_file: self.kafka_ssl_ca_file,
        })
    }
}

/// A producer compression codec (librdkafka `compression.type`); clap reads it with [`FromStr`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KafkaCompression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl KafkaCompression {
    /// Every codec, as its setting value.
    pub const ALL: [KafkaCompression; 5] = [
        KafkaCompression::None,
        KafkaCompression::Gzip,
        KafkaCompression::Snappy,
        KafkaCompression::Lz4,
        KafkaCompression::Zstd,
    ];

    /// The value of the setting and of librdkafka's `compression.type`.
    pub fn as_str(self) -> &'static str {
        match self {
            KafkaCompression::None => "none",
            KafkaCompression::Gzip => "gzip",
            KafkaCompression::Snappy => "snappy",
            KafkaCompression::Lz4 => "lz4",
            KafkaCompression::Zstd => "zstd",
        }
    }
}

/// Reads a setting value, case-insensitively, ignoring surrounding blanks.
impl FromStr for KafkaCompression {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| "expected one of none, gzip, snappy, lz4, zstd".to_string())
    }
}

/// Parses `key=value` entries (already split at `;`) of the env var `name`; blanks are skipped.
pub fn parse_properties(
    name: &'static str,
    entries: &[String],
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut out = Vec::new();
    for e in entries.iter().filter(|e| !e.trim().is_empty()) {
        match e.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                out.push((k.trim().to_string(), v.trim().to_string()))
            }
            _ => {
                return Err(ConfigError::invalid(
                    name,
                    "key=value entries separated by `;`",
                    e,
                ))
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_codecs() {
        assert_eq!("LZ4".parse(), Ok(KafkaCompression::Lz4));
        assert_eq!(" zstd".parse(), Ok(KafkaCompression::Zstd));
        assert!("brotli".parse::<KafkaCompression>().is_err());
        for c in KafkaCompression::ALL {
            assert_eq!(c.as_str().parse(), Ok(c));
        }
    }

    fn args(protocol: &str) -> KafkaSecurityArgs {
        KafkaSecurityArgs {
            kafka_security_protocol: protocol.into(),
            kafka_sasl_mechanism: None,
            kafka_sasl_username: None,
            kafka_sasl_password: None,
            kafka_ssl_ca_file: None,
        }
    }

    #[test]
    fn protocols_and_sasl_completeness() {
        assert_eq!(
            args("tls").validate(),
            Err(ConfigError::invalid(
                "KAFKA_SECURITY_PROTOCOL",
                "one of plaintext, ssl, sasl_plaintext, sasl_ssl",
                "tls"
            ))
        );
        assert_eq!(
            args("SASL_SSL").validate(),
            Err(ConfigError::missing(
                "KAFKA_SASL_MECHANISM",
                "with KAFKA_SECURITY_PROTOCOL=sasl_ssl"
            ))
        );
        let mut a = args("SASL_SSL");
        a.kafka_sasl_mechanism = Some("SCRAM-SHA-512".into());
        a.kafka_sasl_username = Some("u".into());
        assert_eq!(
            a.clone().validate().map_err(|e| e.to_string()),
            Err("KAFKA_SASL_PASSWORD must be set with KAFKA_SECURITY_PROTOCOL=sasl_ssl".into())
        );
        a.kafka_sasl_password = Some("secret".into());
        a.kafka_ssl_ca_file = Some("/etc/ca.pem".into());
        let s = a.validate().expect("valid");
        assert_eq!(s.protocol, "sasl_ssl");
        assert_eq!(s.sasl_password.as_ref().map(Secret::expose), Some("secret"));
        assert!(args("plaintext").validate().is_ok());
    }

    #[test]
    fn mechanisms_are_librdkafkas_and_a_ca_file_needs_tls() {
        let mut a = args("sasl_plaintext");
        a.kafka_sasl_username = Some("u".into());
        a.kafka_sasl_password = Some("p".into());
        for (given, stored) in [
            ("scram-sha-512", "SCRAM-SHA-512"),
            (" SCRAM-SHA-256", "SCRAM-SHA-256"),
            ("plain", "PLAIN"),
        ] {
            a.kafka_sasl_mechanism = Some(given.into());
            let s = a.clone().validate().expect("valid");
            assert_eq!(s.sasl_mechanism.as_deref(), Some(stored), "{given}");
        }
        for bad in ["GSSAPI", "OAUTHBEARER", "SCRAM-SHA-1", ""] {
            a.kafka_sasl_mechanism = Some(bad.into());
            assert_eq!(
                a.clone().validate().map_err(|e| e.name()),
                Err("KAFKA_SASL_MECHANISM"),
                "{bad:?}"
            );
        }
        // A CA file only means something over TLS.
        for protocol in ["plaintext", "sasl_plaintext"] {
            let mut a = a.clone();
            a.kafka_security_protocol = protocol.into();
            a.kafka_sasl_mechanism = Some("SCRAM-SHA-512".into());
            a.kafka_ssl_ca_file = Some("/etc/ca.pem".into());
            assert_eq!(
                a.validate(),
                Err(ConfigError::invalid(
                    "KAFKA_SECURITY_PROTOCOL",
                    "ssl or sasl_ssl when KAFKA_SSL_CA_FILE is set",
                    protocol
                ))
            );
        }
        let mut tls = args("SSL");
        tls.kafka_ssl_ca_file = Some("/etc/ca.pem".into());
        let s = tls.validate().expect("ssl with a CA file");
        assert_eq!(
            (s.protocol.as_str(), s.sasl_mechanism),
            ("ssl", None),
            "no SASL needed over ssl"
        );
    }

    #[test]
    fn blank_brokers_and_topics_are_rejected() {
        let brokers = KafkaBrokersArgs {
            kafka_brokers: " ".into(),
        };
        assert_eq!(brokers.check().map_err(|e| e.name()), Err("KAFKA_BROKERS"));
        let mut topics = KafkaTopicsArgs {
            kafka_readings_topic: "r".into(),
            kafka_events_topic: "e".into(),
            kafka_dlq_topic: "d".into(),
        };
        assert_eq!(topics.check(), Ok(()));
        topics.kafka_events_topic.clear();
        assert_eq!(
            topics.check().map_err(|e| e.name()),
            Err("KAFKA_EVENTS_TOPIC")
        );
    }

    #[test]
    fn properties_parse() {
        let e = vec![" a.b = 1".to_string(), "".to_string(), "c=".to_string()];
        assert_eq!(
            parse_properties("X", &e),
            Ok(vec![("a.b".into(), "1".into()), ("c".into(), "".into())])
        );
        assert_eq!(
            parse_properties("X", &["novalue".to_string()]),
            Err(ConfigError::invalid(
                "X",
                "key=value entries separated by `;`",
                "novalue"
            ))
        );
        assert!(parse_properties("X", &["=v".to_string()]).is_err());
    }
}
