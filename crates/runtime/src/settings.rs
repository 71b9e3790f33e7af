//! The settings the service binaries share, declared once as clap `Args` structs (env var,
//! default, `--help` line) and `#[command(flatten)]`ed into each binary's arguments, so a
//! variable's name, default and meaning cannot drift apart between sck-bridge, sck-decoder and
//! sck-loadtest. Their start-up checks return the one [`ConfigError`] every binary reports, and
//! [`docs`] turns any binary's clap definitions into the settings table of `docs/settings.md`.

pub mod clickhouse;
pub mod docs;
mod error;
pub mod kafka;
pub mod mqtt;
pub mod registry;
pub mod service;

pub use error::{not_blank, ConfigError};
