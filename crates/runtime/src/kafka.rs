//! Kafka settings both services take the same way: the three topics, security (TLS, SASL) and
//! the `key=value;…` librdkafka property overrides. Flattened into each service's clap `Args`, so
//! the env vars, defaults, `--help` lines and validation rules cannot drift apart. Returns plain
//! `(property, value)` pairs: the services hand them to librdkafka.

use crate::secret::Secret;
use std::path::PathBuf;

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
    /// Each topic with the variable that sets it, for the services' start-up checks.
    pub fn named(&self) -> [(&'static str, &String); 3] {
        [
            ("KAFKA_READINGS_TOPIC", &self.kafka_readings_topic),
            ("KAFKA_EVENTS_TOPIC", &self.kafka_events_topic),
            ("KAFKA_DLQ_TOPIC", &self.kafka_dlq_topic),
        ]
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

/// A record's headers as rdkafka takes them: the envelope's (`(&str, String)`) as the bridge
/// writes them, or a dead letter's (`(String, Vec<u8>)`), in order.
pub fn owned_headers<K: AsRef<str>, V: AsRef<[u8]>>(
    headers: &[(K, V)],
) -> rdkafka::message::OwnedHeaders {
    let mut owned = rdkafka::message::OwnedHeaders::new_with_capacity(headers.len());
    for (k, v) in headers {
        owned = owned.insert(rdkafka::message::Header {
            key: k.as_ref(),
            value: Some(v.as_ref()),
        });
    }
    owned
}

/// A producer compression codec (librdkafka `compression.type`).
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

    /// Reads a setting value, case-insensitively.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

/// Validated Kafka connection security (the password prints as `[redacted]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSecurity {
    pub protocol: String,
    pub sasl_mechanism: Option<String>,
    pub sasl_username: Option<String>,
    pub sasl_password: Option<Secret>,
    pub ssl_ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KafkaSettingsError {
    #[error("KAFKA_SECURITY_PROTOCOL must be one of plaintext, ssl, sasl_plaintext, sasl_ssl; got `{0}`")]
    BadSecurityProtocol(String),
    #[error(
        "KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD are required with {0}"
    )]
    SaslIncomplete(String),
    #[error("{0} entry `{1}` is not key=value")]
    BadProperty(&'static str, String),
}

impl KafkaSecurityArgs {
    pub fn validate(self) -> Result<KafkaSecurity, KafkaSettingsError> {
        let protocol = self.kafka_security_protocol.to_ascii_lowercase();
        if !["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"].contains(&protocol.as_str()) {
            return Err(KafkaSettingsError::BadSecurityProtocol(
                self.kafka_security_protocol,
            ));
        }
        if protocol.starts_with("sasl")
            && (self.kafka_sasl_mechanism.is_none()
                || self.kafka_sasl_username.is_none()
                || self.kafka_sasl_password.is_none())
        {
            return Err(KafkaSettingsError::SaslIncomplete(protocol));
        }
        Ok(KafkaSecurity {
            protocol,
            sasl_mechanism: self.kafka_sasl_mechanism,
            sasl_username: self.kafka_sasl_username,
            sasl_password: self.kafka_sasl_password,
            ssl_ca_file: self.kafka_ssl_ca_file,
        })
    }
}

impl KafkaSecurity {
    /// The librdkafka properties for these settings.
    pub fn properties(&self) -> Vec<(&'static str, String)> {
        let mut p = vec![("security.protocol", self.protocol.clone())];
        if let Some(m) = &self.sasl_mechanism {
            p.push(("sasl.mechanism", m.clone()));
        }
        if let Some(u) = &self.sasl_username {
            p.push(("sasl.username", u.clone()));
        }
        if let Some(pw) = &self.sasl_password {
            p.push(("sasl.password", pw.expose().to_string()));
        }
        if let Some(ca) = &self.ssl_ca_file {
            p.push(("ssl.ca.location", ca.to_string_lossy().into_owned()));
        }
        p
    }
}

/// The librdkafka properties every client of a service starts from: brokers, client id,
/// reconnect backoff (100 ms … 10 s, librdkafka adds jitter), warnings-and-up logging, security.
pub fn client_properties(
    brokers: &str,
    client_id: &str,
    security: &KafkaSecurity,
) -> Vec<(&'static str, String)> {
    let mut p = vec![
        ("bootstrap.servers", brokers.to_string()),
        ("client.id", client_id.to_string()),
        ("reconnect.backoff.ms", "100".to_string()),
        ("reconnect.backoff.max.ms", "10000".to_string()),
        ("log_level", "4".to_string()),
    ];
    p.extend(security.properties());
    p
}

/// Parses `key=value` entries (already split at `;`) of the env var `name`; blanks are skipped.
pub fn parse_properties(
    name: &'static str,
    entries: &[String],
) -> Result<Vec<(String, String)>, KafkaSettingsError> {
    let mut out = Vec::new();
    for e in entries.iter().filter(|e| !e.trim().is_empty()) {
        match e.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                out.push((k.trim().to_string(), v.trim().to_string()))
            }
            _ => return Err(KafkaSettingsError::BadProperty(name, e.clone())),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_headers_keep_names_values_and_order() {
        use rdkafka::message::Headers;
        let h = owned_headers(&[("mqtt_topic", "t".to_string()), ("n", String::new())]);
        let got: Vec<(&str, Option<&[u8]>)> = h.iter().map(|h| (h.key, h.value)).collect();
        assert_eq!(
            got,
            vec![("mqtt_topic", Some(&b"t"[..])), ("n", Some(&b""[..]))]
        );
    }

    #[test]
    fn compression_codecs() {
        assert_eq!(KafkaCompression::parse("LZ4"), Some(KafkaCompression::Lz4));
        assert_eq!(
            KafkaCompression::parse(" zstd"),
            Some(KafkaCompression::Zstd)
        );
        assert_eq!(KafkaCompression::parse("brotli"), None);
        for c in KafkaCompression::ALL {
            assert_eq!(KafkaCompression::parse(c.as_str()), Some(c));
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
            Err(KafkaSettingsError::BadSecurityProtocol("tls".into()))
        );
        assert_eq!(
            args("SASL_SSL").validate(),
            Err(KafkaSettingsError::SaslIncomplete("sasl_ssl".into()))
        );
        let mut a = args("SASL_SSL");
        a.kafka_sasl_mechanism = Some("SCRAM-SHA-512".into());
        a.kafka_sasl_username = Some("u".into());
        a.kafka_sasl_password = Some("secret".into());
        a.kafka_ssl_ca_file = Some("/etc/ca.pem".into());
        let s = a.validate().expect("valid");
        assert_eq!(
            s.properties(),
            vec![
                ("security.protocol", "sasl_ssl".to_string()),
                ("sasl.mechanism", "SCRAM-SHA-512".to_string()),
                ("sasl.username", "u".to_string()),
                ("sasl.password", "secret".to_string()),
                ("ssl.ca.location", "/etc/ca.pem".to_string()),
            ]
        );
        assert!(
            !format!("{s:?}").contains("secret"),
            "Debug must not show the password"
        );
        let plain = args("plaintext").validate().expect("valid");
        assert_eq!(
            plain.properties(),
            vec![("security.protocol", "plaintext".to_string())]
        );
        let all = client_properties("k:9092", "id-1", &plain);
        assert_eq!(all[0], ("bootstrap.servers", "k:9092".to_string()));
        assert_eq!(all[1], ("client.id", "id-1".to_string()));
        assert_eq!(
            all.last(),
            Some(&("security.protocol", "plaintext".to_string()))
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
            Err(KafkaSettingsError::BadProperty("X", "novalue".into()))
        );
        assert!(parse_properties("X", &["=v".to_string()]).is_err());
    }
}
