//! ClickHouse connection settings: where and as whom ([`ClickHouseArgs`], every binary that talks
//! to ClickHouse) and how the bytes travel ([`ClickHouseTransportArgs`], the decoder: a private
//! CA and the INSERT compression). Building the client from them is the binaries' job (this crate
//! does not depend on the clickhouse crate).

use std::path::PathBuf;
use std::str::FromStr;

use super::{not_blank, ConfigError};
use crate::secret::Secret;

/// `#[command(flatten)]` into a binary's arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct ClickHouseArgs {
    /// ClickHouse HTTP(S) endpoint.
    #[arg(long, env = "CLICKHOUSE_URL", default_value = "http://127.0.0.1:8123")]
    pub clickhouse_url: String,

    /// ClickHouse database of the readings tables (the decoder's migrations create it).
    #[arg(long, env = "CLICKHOUSE_DATABASE", default_value = "sck")]
    pub clickhouse_database: String,

    /// ClickHouse user.
    #[arg(long, env = "CLICKHOUSE_USER", default_value = "default")]
    pub clickhouse_user: String,

    /// ClickHouse password (never logged) [default: none].
    #[arg(long, env = "CLICKHOUSE_PASSWORD", hide_env_values = true)]
    pub clickhouse_password: Option<Secret>,
}

impl ClickHouseArgs {
    /// The URL is given and the database name is a plain identifier (it is written into SQL).
    pub fn check(&self) -> Result<(), ConfigError> {
        not_blank("CLICKHOUSE_URL", &self.clickhouse_url)?;
        let db = &self.clickhouse_database;
        if db.is_empty()
            || !db.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
            || db.as_bytes()[0].is_ascii_digit()
        {
            return Err(ConfigError::invalid(
                "CLICKHOUSE_DATABASE",
                "letters, digits and '_' (not starting with a digit)",
                db,
            ));
        }
        Ok(())
    }
}

/// `#[command(flatten)]` into the arguments of a binary that inserts.
#[derive(Debug, Clone, clap::Args)]
pub struct ClickHouseTransportArgs {
    /// PEM bundle of the CA(s) that signed ClickHouse's certificate, for an https:// URL served
    /// with a private CA [default: the public web PKI roots].
    #[arg(long, env = "CLICKHOUSE_CA_FILE")]
    pub clickhouse_ca_file: Option<PathBuf>,

    /// Insert compression: lz4 or none.
    #[arg(long, env = "CLICKHOUSE_COMPRESSION", default_value = "lz4")]
    pub clickhouse_compression: ClickHouseCompression,
}

impl ClickHouseTransportArgs {
    /// A CA file only makes sense with TLS: `url` (CLICKHOUSE_URL) must be https:// then.
    pub fn check(&self, url: &str) -> Result<(), ConfigError> {
        if self.clickhouse_ca_file.is_some() && !url.starts_with("https://") {
            return Err(ConfigError::invalid(
                "CLICKHOUSE_URL",
                "an https:// URL when CLICKHOUSE_CA_FILE is set",
                url,
            ));
        }
        Ok(())
    }
}

/// Compression of the INSERT bodies sent to ClickHouse; clap reads it with [`FromStr`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClickHouseCompression {
    None,
    Lz4,
}

/// Reads a setting value, case-insensitively.
impl FromStr for ClickHouseCompression {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "lz4" => Ok(ClickHouseCompression::Lz4),
            "none" => Ok(ClickHouseCompression::None),
            _ => Err("expected lz4 or none".to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(url: &str, db: &str) -> ClickHouseArgs {
        ClickHouseArgs {
            clickhouse_url: url.into(),
            clickhouse_database: db.into(),
            clickhouse_user: "default".into(),
            clickhouse_password: None,
        }
    }

    #[test]
    fn database_names_are_plain_identifiers() {
        for ok in ["sck", "sck_2", "_x", "S"] {
            assert_eq!(args("http://h", ok).check(), Ok(()), "{ok}");
        }
        for bad in ["", "1db", "sck; DROP", "a-b", "é"] {
            assert_eq!(
                args("http://h", bad).check().map_err(|e| e.name()),
                Err("CLICKHOUSE_DATABASE"),
                "{bad:?}"
            );
        }
        assert_eq!(
            args(" ", "sck").check().map_err(|e| e.name()),
            Err("CLICKHOUSE_URL")
        );
    }

    #[test]
    fn a_ca_file_needs_https() {
        let mut t = ClickHouseTransportArgs {
            clickhouse_ca_file: None,
            clickhouse_compression: ClickHouseCompression::Lz4,
        };
        assert_eq!(t.check("http://h:8123"), Ok(()));
        t.clickhouse_ca_file = Some("/ca.pem".into());
        assert_eq!(t.check("https://h:8443"), Ok(()));
        assert_eq!(
            t.check("http://h:8123").map_err(|e| e.name()),
            Err("CLICKHOUSE_URL")
        );
    }

    #[test]
    fn compression_values() {
        assert_eq!("LZ4".parse(), Ok(ClickHouseCompression::Lz4));
        assert_eq!("none".parse(), Ok(ClickHouseCompression::None));
        assert!("zip".parse::<ClickHouseCompression>().is_err());
    }
}
