//! The settings of every long-running service: where it serves `/metrics` and the probes, how it
//! logs, and how long it drains on SIGTERM.
//!
//! The variables are the same in every service but their `--help` lines need not be (what a
//! drain waits for differs), and a clap default or help text is fixed where the struct is
//! declared. So [`ServiceArgs`] is generic over a [`Service`] marker type: each service's marker
//! supplies its DRAIN_TIMEOUT_SECS help line and may override a default, while the variable
//! names, types and parsing stay declared once here.

use std::marker::PhantomData;
use std::net::SocketAddr;
use std::time::Duration;

use crate::telemetry::LogFormat;

/// What one service says about its [`ServiceArgs`].
pub trait Service: Clone + std::fmt::Debug + Send + Sync + 'static {
    /// The `--help` line of DRAIN_TIMEOUT_SECS: what the service finishes on SIGTERM.
    const DRAIN_HELP: &'static str;
    /// Default of DRAIN_TIMEOUT_SECS, seconds (a string: clap's `default_value`).
    const DRAIN_TIMEOUT_SECS: &'static str = "20";
    /// Default of METRICS_ADDR.
    const METRICS_ADDR: &'static str = "0.0.0.0:9000";
}

/// `#[command(flatten)]` into a service's arguments as `ServiceArgs<TheService>`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServiceArgs<S: Service> {
    /// Address of the /metrics, /healthz and /readyz endpoints.
    #[arg(long, env = "METRICS_ADDR", default_value = S::METRICS_ADDR)]
    pub metrics_addr: SocketAddr,

    /// Log format: text or json (filter with RUST_LOG, default info).
    #[arg(long, env = "LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,

    #[arg(
        long,
        env = "DRAIN_TIMEOUT_SECS",
        default_value = S::DRAIN_TIMEOUT_SECS,
        help = S::DRAIN_HELP
    )]
    pub drain_timeout_secs: u64,

    #[arg(skip)]
    service: PhantomData<S>,
}

impl<S: Service> ServiceArgs<S> {
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_secs(self.drain_timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Debug, Clone)]
    struct Plain;
    impl Service for Plain {
        const DRAIN_HELP: &'static str = "On SIGTERM, finish plainly, seconds.";
    }

    #[derive(Debug, Clone)]
    struct Other;
    impl Service for Other {
        const DRAIN_HELP: &'static str = "On SIGTERM, finish otherwise, seconds.";
        const DRAIN_TIMEOUT_SECS: &'static str = "7";
        const METRICS_ADDR: &'static str = "127.0.0.1:9100";
    }

    #[derive(Debug, Parser)]
    struct Cli<S: Service> {
        #[command(flatten)]
        service: ServiceArgs<S>,
    }

    #[test]
    fn each_service_keeps_its_defaults_and_help() {
        let plain = Cli::<Plain>::try_parse_from(["x"]).expect("parse").service;
        assert_eq!(plain.metrics_addr, "0.0.0.0:9000".parse().expect("addr"));
        assert_eq!(plain.log_format, LogFormat::Text);
        assert_eq!(plain.drain_timeout(), Duration::from_secs(20));
        let other = Cli::<Other>::try_parse_from(["x", "--log-format", "json"])
            .expect("parse")
            .service;
        assert_eq!(other.metrics_addr, "127.0.0.1:9100".parse().expect("addr"));
        assert_eq!(other.log_format, LogFormat::Json);
        assert_eq!(other.drain_timeout(), Duration::from_secs(7));

        let help = Cli::<Other>::command().render_help().to_string();
        assert!(help.contains("finish otherwise"), "{help}");
        assert!(!help.contains("finish plainly"), "{help}");
    }

    #[test]
    fn bad_values_are_refused_by_clap() {
        assert!(Cli::<Plain>::try_parse_from(["x", "--metrics-addr", "9000"]).is_err());
        assert!(Cli::<Plain>::try_parse_from(["x", "--log-format", "xml"]).is_err());
    }
}
