//! The decoder's ClickHouse component: the client built from the settings ([`client`], with a
//! private CA in [`tls`]), the migrations at start ([`migrate`]; the DDL itself lives in
//! `sck-store`), the batch writer ([`sink`]) and what happens when ClickHouse refuses writes
//! for good ([`blocked`]).

pub mod blocked;
pub mod migrate;
pub mod sink;
pub mod tls;

pub use blocked::Blocked;
pub use sink::Sink;

use ::clickhouse::Client;

use crate::config::{ClickHouseCompression, Config};

/// Builds the ClickHouse client from the settings (database applied or not): the crate's
/// default client, or one trusting `CLICKHOUSE_CA_FILE` (which is read here, so a bad file fails
/// the start).
pub fn client(cfg: &Config, with_database: bool) -> Result<Client, tls::TlsError> {
    let base = match &cfg.clickhouse_ca_file {
        Some(ca) => tls::client_with_ca(ca)?,
        None => Client::default(),
    };
    let mut c = base
        .with_url(&cfg.clickhouse_url)
        .with_user(&cfg.clickhouse_user)
        .with_validation(cfg.validation)
        .with_compression(match cfg.compression {
            ClickHouseCompression::Lz4 => ::clickhouse::Compression::Lz4,
            ClickHouseCompression::None => ::clickhouse::Compression::None,
        });
    if let Some(p) = &cfg.clickhouse_password {
        c = c.with_password(p.expose());
    }
    if with_database {
        c = c.with_database(&cfg.database);
    }
    Ok(c)
}
