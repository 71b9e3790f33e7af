//! How the bridge and the forwarder log in to the MQTT broker: credentials, TLS and keep-alive,
//! declared once so both binaries read the same variables with the same rules, and applied to
//! rumqttc's options by one function ([`MqttLogin::apply`]).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use rumqttc::v5::MqttOptions;
use rumqttc::Transport;

use crate::secret::Secret;
use crate::settings::ConfigError;

/// CA bundle used for MQTT TLS when MQTT_CA_FILE is not set (Debian / distroless path).
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

#[derive(Debug, Clone, Args)]
pub struct MqttLoginArgs {
    /// MQTT username (optional).
    #[arg(long, env = "MQTT_USERNAME")]
    pub mqtt_username: Option<String>,

    /// MQTT password (never logged).
    #[arg(long, env = "MQTT_PASSWORD", hide_env_values = true)]
    pub mqtt_password: Option<Secret>,

    /// Connect to the MQTT broker over TLS.
    #[arg(long, env = "MQTT_TLS", default_value_t = false, action = clap::ArgAction::Set)]
    pub mqtt_tls: bool,

    /// PEM file of the CA that signed the broker's certificate [default: the system's roots].
    #[arg(long, env = "MQTT_CA_FILE")]
    pub mqtt_ca_file: Option<PathBuf>,

    /// MQTT keep-alive interval, seconds.
    #[arg(long, env = "MQTT_KEEP_ALIVE_SECS", default_value_t = 30)]
    pub mqtt_keep_alive_secs: u64,
}

/// The CA file of MQTT_CA_FILE (or the system's bundle) could not be read.
#[derive(Debug, thiserror::Error)]
#[error("reading MQTT CA file {}: {source}", path.display())]
pub struct CaFileError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// The checked login settings.
#[derive(Debug, Clone)]
pub struct MqttLogin {
    pub credentials: Option<(String, Secret)>,
    /// `Some` when connecting over TLS: the CA file, or the system's roots.
    pub tls_ca_file: Option<PathBuf>,
    pub keep_alive: Duration,
}

impl MqttLoginArgs {
    /// A username needs a password and the other way round; a CA file needs TLS on; the
    /// keep-alive is at least 5 s.
    pub fn validate(self) -> Result<MqttLogin, ConfigError> {
        let credentials = match (self.mqtt_username, self.mqtt_password) {
            (Some(u), Some(p)) => Some((u, p)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError::missing(
                    "MQTT_PASSWORD",
                    "when MQTT_USERNAME is set",
                ))
            }
            (None, Some(_)) => {
                return Err(ConfigError::missing(
                    "MQTT_USERNAME",
                    "when MQTT_PASSWORD is set",
                ))
            }
        };
        if self.mqtt_ca_file.is_some() && !self.mqtt_tls {
            return Err(ConfigError::invalid(
                "MQTT_TLS",
                "true when MQTT_CA_FILE is set",
                self.mqtt_tls,
            ));
        }
        if self.mqtt_keep_alive_secs < 5 {
            return Err(ConfigError::invalid(
                "MQTT_KEEP_ALIVE_SECS",
                "at least 5",
                self.mqtt_keep_alive_secs,
            ));
        }
        Ok(MqttLogin {
            credentials,
            tls_ca_file: self
                .mqtt_tls
                .then(|| self.mqtt_ca_file.unwrap_or_else(|| SYSTEM_CA_BUNDLE.into())),
            keep_alive: Duration::from_secs(self.mqtt_keep_alive_secs),
        })
    }
}

impl MqttLogin {
    /// Sets the keep-alive, the credentials and the TLS transport (reading the CA file).
    pub fn apply(&self, o: &mut MqttOptions) -> Result<(), CaFileError> {
        o.set_keep_alive(self.keep_alive);
        if let Some((user, pass)) = &self.credentials {
            o.set_credentials(user, pass.expose());
        }
        if let Some(path) = &self.tls_ca_file {
            let ca = std::fs::read(path).map_err(|source| CaFileError {
                path: path.clone(),
                source,
            })?;
            o.set_transport(Transport::tls(ca, None, None));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        login: MqttLoginArgs,
    }

    fn login(args: &[&str]) -> Result<MqttLogin, ConfigError> {
        let mut argv = vec!["x"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).expect("parses").login.validate()
    }

    #[test]
    fn credentials_come_in_pairs_and_a_ca_file_needs_tls() {
        let ok = login(&["--mqtt-username", "u", "--mqtt-password", "p"]).expect("valid");
        let (user, pass) = ok.credentials.expect("credentials");
        assert_eq!((user.as_str(), pass.expose()), ("u", "p"));
        assert!(ok.tls_ca_file.is_none());
        for (args, names) in [
            (vec!["--mqtt-username", "u"], "MQTT_PASSWORD"),
            (vec!["--mqtt-password", "p"], "MQTT_USERNAME"),
            (vec!["--mqtt-ca-file", "/ca.pem"], "MQTT_TLS"),
            (vec!["--mqtt-keep-alive-secs", "4"], "MQTT_KEEP_ALIVE_SECS"),
        ] {
            let e = login(&args).expect_err("refused").to_string();
            assert!(e.contains(names), "{args:?}: {e}");
            assert!(!e.contains("\"p\""), "a password in the message: {e}");
        }
    }

    #[test]
    fn tls_uses_the_ca_file_or_the_system_roots() {
        let own = login(&["--mqtt-tls", "true", "--mqtt-ca-file", "/ca.pem"]).expect("valid");
        assert_eq!(own.tls_ca_file, Some(PathBuf::from("/ca.pem")));
        let system = login(&["--mqtt-tls", "true"]).expect("valid");
        assert_eq!(system.tls_ca_file, Some(PathBuf::from(SYSTEM_CA_BUNDLE)));
        assert_eq!(system.keep_alive, Duration::from_secs(30));
    }

    #[test]
    fn an_unreadable_ca_file_is_a_clear_error() {
        let l = login(&[
            "--mqtt-tls",
            "true",
            "--mqtt-ca-file",
            "/nonexistent/ca.pem",
        ])
        .expect("valid");
        let mut o = MqttOptions::new("c", "127.0.0.1", 8883);
        let e = l.apply(&mut o).expect_err("no such file");
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
    }
}
