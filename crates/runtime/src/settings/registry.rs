//! Device registry settings: where the platform's PostgreSQL is (`REGISTRY_POSTGRES_URL`, the
//! decoder's least-privilege user) and how its device table is cached. Declared here so every
//! service that needs the registry (the decoder, a forwarder) flattens the same variables.
//!
//! The URL is optional: without it a service works without a registry (the decoder stores
//! `device_id` 0). Connecting is the services' job (this crate has no PostgreSQL client).

use std::time::Duration;

use super::ConfigError;
use crate::secret::Secret;

/// `#[command(flatten)]` into a binary's arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct RegistryArgs {
    /// The platform's PostgreSQL, as a least-privilege user (never logged), e.g.
    /// postgres://sck_registry:…@host:5432/db; add ?sslmode=require for TLS (the certificate is
    /// checked against the web PKI roots) [default: none: no registry, device_id 0].
    #[arg(long, env = "REGISTRY_POSTGRES_URL", hide_env_values = true)]
    pub registry_postgres_url: Option<Secret>,

    /// How often the whole device table (and the sensor keys) is read again, seconds. A token
    /// seen for the first time is looked up at once, whatever this says.
    #[arg(long, env = "REGISTRY_REFRESH_SECS", default_value_t = 60)]
    pub registry_refresh_secs: u64,

    /// How long a token found to have no device is not looked up again, seconds (a refresh that
    /// finds it registered ends this early).
    #[arg(long, env = "REGISTRY_NEGATIVE_TTL_SECS", default_value_t = 300)]
    pub registry_negative_ttl_secs: u64,

    /// Most tokens remembered as having no device; the oldest is forgotten first.
    #[arg(long, env = "REGISTRY_NEGATIVE_MAX", default_value_t = 100_000)]
    pub registry_negative_max: usize,

    /// Time limit of connecting to PostgreSQL and of one registry query, milliseconds; a
    /// message waits at most this long for its token's first lookup.
    #[arg(long, env = "REGISTRY_QUERY_TIMEOUT_MS", default_value_t = 2_000)]
    pub registry_query_timeout_ms: u64,
}

/// The registry settings once checked; `None` from [`RegistryArgs::validate`] when no URL is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrySettings {
    pub url: Secret,
    pub refresh: Duration,
    pub negative_ttl: Duration,
    pub negative_max: usize,
    pub query_timeout: Duration,
}

impl RegistryArgs {
    /// Checks the bounds; `Ok(None)` when no registry is configured (an empty URL counts as
    /// unset, so a chart can leave the variable empty).
    pub fn validate(&self) -> Result<Option<RegistrySettings>, ConfigError> {
        let positive = |name: &'static str, value: u64| {
            if value == 0 {
                Err(ConfigError::invalid(name, "at least 1", value))
            } else {
                Ok(())
            }
        };
        positive("REGISTRY_REFRESH_SECS", self.registry_refresh_secs)?;
        positive(
            "REGISTRY_NEGATIVE_TTL_SECS",
            self.registry_negative_ttl_secs,
        )?;
        positive("REGISTRY_NEGATIVE_MAX", self.registry_negative_max as u64)?;
        positive("REGISTRY_QUERY_TIMEOUT_MS", self.registry_query_timeout_ms)?;
        let Some(url) = self
            .registry_postgres_url
            .as_ref()
            .filter(|u| !u.expose().trim().is_empty())
        else {
            return Ok(None);
        };
        let scheme_ok = ["postgres://", "postgresql://"]
            .iter()
            .any(|s| url.expose().starts_with(s));
        if !scheme_ok {
            // The value is never printed: it may hold a password.
            return Err(ConfigError::invalid(
                "REGISTRY_POSTGRES_URL",
                "a postgres:// or postgresql:// URL",
                url,
            ));
        }
        Ok(Some(RegistrySettings {
            url: url.clone(),
            refresh: Duration::from_secs(self.registry_refresh_secs),
            negative_ttl: Duration::from_secs(self.registry_negative_ttl_secs),
            negative_max: self.registry_negative_max,
            query_timeout: Duration::from_millis(self.registry_query_timeout_ms),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        registry: RegistryArgs,
    }

    fn parse(args: &[&str]) -> Result<Option<RegistrySettings>, ConfigError> {
        let mut argv = vec!["test"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).expect("clap").registry.validate()
    }

    #[test]
    fn no_url_no_registry() {
        assert_eq!(parse(&[]), Ok(None));
        assert_eq!(parse(&["--registry-postgres-url", " "]), Ok(None));
    }

    #[test]
    fn defaults_match_the_documentation() {
        let s = parse(&["--registry-postgres-url", "postgres://u:pw@h/db"])
            .unwrap()
            .unwrap();
        assert_eq!(s.url.expose(), "postgres://u:pw@h/db");
        assert_eq!(s.refresh, Duration::from_secs(60));
        assert_eq!(s.negative_ttl, Duration::from_secs(300));
        assert_eq!(s.negative_max, 100_000);
        assert_eq!(s.query_timeout, Duration::from_millis(2_000));
    }

    #[test]
    fn rejects_bad_values_without_printing_the_url() {
        for (args, name) in [
            (
                vec!["--registry-refresh-secs", "0"],
                "REGISTRY_REFRESH_SECS",
            ),
            (
                vec!["--registry-negative-ttl-secs", "0"],
                "REGISTRY_NEGATIVE_TTL_SECS",
            ),
            (
                vec!["--registry-negative-max", "0"],
                "REGISTRY_NEGATIVE_MAX",
            ),
            (
                vec!["--registry-query-timeout-ms", "0"],
                "REGISTRY_QUERY_TIMEOUT_MS",
            ),
            (
                vec!["--registry-postgres-url", "mysql://u:hunter2@h/db"],
                "REGISTRY_POSTGRES_URL",
            ),
        ] {
            let e = parse(&args).expect_err("rejected");
            assert_eq!(e.name(), name, "{args:?}");
            assert!(!e.to_string().contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn the_url_is_never_printed() {
        let s = parse(&["--registry-postgres-url", "postgres://u:hunter2@h/db"]).unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
