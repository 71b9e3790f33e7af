//! What an MQTT connection error means for an operator (the bridge and the forwarder connect the
//! same way): the broker refused the credentials, or its TLS certificate is not trusted, named
//! plainly in the log line instead of as rumqttc's nested error alone. Either way the services
//! keep retrying with backoff: a password or a CA fixed on the broker's side is picked up
//! without a restart.

use rumqttc::v5::mqttbytes::v5::ConnectReturnCode;
use rumqttc::v5::ConnectionError;
use rumqttc::TlsError;

/// Why the broker (or the TLS layer in front of it) refused the connection, when it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// CONNACK "bad user name or password" or "not authorized" (Mosquitto answers the latter to
    /// a wrong password, EMQX the former).
    Credentials,
    /// The broker's certificate does not chain to a CA the client trusts (MQTT_CA_FILE).
    UntrustedCertificate,
    /// The certificate is valid but not for the host the client connected to (MQTT_HOST).
    CertificateName,
    /// The certificate expired or is not yet valid.
    CertificateDates,
    /// Any other TLS failure (protocol versions, cipher suites, a plaintext port).
    Tls,
}

impl Refusal {
    /// The log message: what was refused and which settings to check.
    pub fn explain(self) -> &'static str {
        match self {
            Refusal::Credentials => {
                "the MQTT broker refused the credentials (check MQTT_USERNAME and MQTT_PASSWORD); retrying with backoff"
            }
            Refusal::UntrustedCertificate => {
                "the MQTT broker's TLS certificate is not trusted: it is not signed by a CA of MQTT_CA_FILE (or of the system's roots); retrying with backoff"
            }
            Refusal::CertificateName => {
                "the MQTT broker's TLS certificate is not valid for MQTT_HOST; retrying with backoff"
            }
            Refusal::CertificateDates => {
                "the MQTT broker's TLS certificate is expired or not yet valid; retrying with backoff"
            }
            Refusal::Tls => {
                "the TLS handshake with the MQTT broker failed (is MQTT_PORT its TLS port?); retrying with backoff"
            }
        }
    }

    /// A short label for the log's `refused` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Credentials => "credentials",
            Refusal::UntrustedCertificate => "untrusted_certificate",
            Refusal::CertificateName => "certificate_name",
            Refusal::CertificateDates => "certificate_dates",
            Refusal::Tls => "tls",
        }
    }
}

/// The refusal behind a connection error, if it is one (a broker that is down or a network
/// error is not: those are plain reconnects).
pub fn refusal(error: &ConnectionError) -> Option<Refusal> {
    match error {
        ConnectionError::ConnectionRefused(
            ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized,
        ) => Some(Refusal::Credentials),
        ConnectionError::Tls(TlsError::TLS(e)) => Some(tls_refusal(e)),
        ConnectionError::Tls(TlsError::Io(io)) => Some(
            io.get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .map_or(Refusal::Tls, tls_refusal),
        ),
        ConnectionError::Tls(_) => Some(Refusal::Tls),
        _ => None,
    }
}

fn tls_refusal(e: &rustls::Error) -> Refusal {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer | C::BadSignature | C::InvalidPurpose => Refusal::UntrustedCertificate,
            C::NotValidForName | C::NotValidForNameContext { .. } => Refusal::CertificateName,
            C::Expired
            | C::ExpiredContext { .. }
            | C::NotValidYet
            | C::NotValidYetContext { .. } => Refusal::CertificateDates,
            _ => Refusal::UntrustedCertificate,
        },
        _ => Refusal::Tls,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::CertificateError as C;

    fn handshake(e: rustls::Error) -> ConnectionError {
        // What tokio-rustls returns for a failed handshake: the rustls error inside an io::Error.
        ConnectionError::Tls(TlsError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            e,
        )))
    }

    #[test]
    fn refusals_are_named() {
        let cases = [
            (
                ConnectionError::ConnectionRefused(ConnectReturnCode::NotAuthorized),
                Some(Refusal::Credentials),
            ),
            (
                ConnectionError::ConnectionRefused(ConnectReturnCode::BadUserNamePassword),
                Some(Refusal::Credentials),
            ),
            (
                ConnectionError::ConnectionRefused(ConnectReturnCode::ServerBusy),
                None,
            ),
            (
                handshake(rustls::Error::InvalidCertificate(C::UnknownIssuer)),
                Some(Refusal::UntrustedCertificate),
            ),
            (
                handshake(rustls::Error::InvalidCertificate(C::NotValidForName)),
                Some(Refusal::CertificateName),
            ),
            (
                handshake(rustls::Error::InvalidCertificate(C::Expired)),
                Some(Refusal::CertificateDates),
            ),
            (
                handshake(rustls::Error::General("x".into())),
                Some(Refusal::Tls),
            ),
            (
                ConnectionError::Tls(TlsError::Io(std::io::Error::other("eof"))),
                Some(Refusal::Tls),
            ),
            (
                ConnectionError::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
                None,
            ),
        ];
        for (error, want) in cases {
            assert_eq!(refusal(&error), want, "{error}");
        }
    }

    #[test]
    fn explanations_name_the_settings() {
        assert!(Refusal::Credentials
            .explain()
            .contains("refused the credentials"));
        assert!(Refusal::Credentials.explain().contains("MQTT_PASSWORD"));
        assert!(Refusal::UntrustedCertificate
            .explain()
            .contains("MQTT_CA_FILE"));
        assert!(Refusal::CertificateName.explain().contains("MQTT_HOST"));
    }
}
