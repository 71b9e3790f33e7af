//! Kafka client pieces every binary builds the same way: the librdkafka properties of validated
//! settings (brokers, client id, reconnect backoff, security) as plain `(property, value)` pairs
//! the binaries hand to librdkafka, and a record's headers in rdkafka's form. The settings
//! themselves (clap `Args`) are declared in [`crate::settings::kafka`].

use crate::secret::Secret;
use std::path::PathBuf;

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

/// Validated Kafka connection security (the password prints as `[redacted]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSecurity {
    pub protocol: String,
    pub sasl_mechanism: Option<String>,
    pub sasl_username: Option<String>,
    pub sasl_password: Option<Secret>,
    pub ssl_ca_file: Option<PathBuf>,
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

    fn security(protocol: &str) -> KafkaSecurity {
        KafkaSecurity {
            protocol: protocol.into(),
            sasl_mechanism: None,
            sasl_username: None,
            sasl_password: None,
            ssl_ca_file: None,
        }
    }

    #[test]
    fn security_properties() {
        let s = KafkaSecurity {
            sasl_mechanism: Some("SCRAM-SHA-512".into()),
            sasl_username: Some("u".into()),
            sasl_password: Some("secret".into()),
            ssl_ca_file: Some("/etc/ca.pem".into()),
            ..security("sasl_ssl")
        };
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
        let plain = security("plaintext");
        assert_eq!(
            plain.properties(),
            vec![("security.protocol", "plaintext".to_string())]
        );
        let ssl = KafkaSecurity {
            ssl_ca_file: None,
            ..security("ssl")
        };
        assert_eq!(
            ssl.properties(),
            vec![("security.protocol", "ssl".to_string())],
            "no CA file: librdkafka's system roots"
        );
        let all = client_properties("k:9092", "id-1", &plain);
        assert_eq!(all[0], ("bootstrap.servers", "k:9092".to_string()));
        assert_eq!(all[1], ("client.id", "id-1".to_string()));
        assert_eq!(
            all.last(),
            Some(&("security.protocol", "plaintext".to_string()))
        );
    }

    /// This build of librdkafka (rdkafka's bundled one, with `ssl`) takes every combination the
    /// settings allow: creating a client checks the properties, the mechanism and the CA file,
    /// without a broker. (The local stack tests sasl_plaintext with SCRAM-SHA-512 against tansu,
    /// which has no TLS listener; ssl and sasl_ssl are checked here only.)
    #[test]
    fn librdkafka_takes_every_protocol_and_mechanism() {
        use rdkafka::producer::BaseProducer;
        let ca = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../services/decoder/tests/fixtures/ca.pem");
        assert!(ca.exists(), "{}", ca.display());
        let mut cases = vec![security("plaintext"), security("ssl")];
        for protocol in ["sasl_plaintext", "sasl_ssl"] {
            for mechanism in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
                cases.push(KafkaSecurity {
                    sasl_mechanism: Some(mechanism.into()),
                    sasl_username: Some("u".into()),
                    sasl_password: Some("p".into()),
                    ..security(protocol)
                });
            }
        }
        cases.push(KafkaSecurity {
            ssl_ca_file: Some(ca.clone()),
            ..security("ssl")
        });
        for s in cases {
            let mut c = rdkafka::ClientConfig::new();
            for (k, v) in client_properties("127.0.0.1:1", "unit", &s) {
                c.set(k, v);
            }
            let created: Result<BaseProducer, _> = c.create();
            assert!(created.is_ok(), "{s:?}: {:?}", created.err());
        }
        // A CA file that does not exist is refused at creation, not at the first connection.
        let mut c = rdkafka::ClientConfig::new();
        let missing = KafkaSecurity {
            ssl_ca_file: Some(ca.with_file_name("no-such-ca.pem")),
            ..security("ssl")
        };
        for (k, v) in client_properties("127.0.0.1:1", "unit", &missing) {
            c.set(k, v);
        }
        assert!(c.create::<BaseProducer>().is_err());
    }
}
