//! The schema migrations (`sck-store`'s DDL) run by the decoder: once for `sck-decoder migrate`,
//! or at start until they succeed, since ClickHouse may start after the decoder (a fresh stack,
//! a rolling restart). A refusal for good (wrong password, missing grant) makes the decoder
//! say so as a refused insert does (see [`Blocked`], table `schema_migrations`).

use std::time::Duration;

use anyhow::Context;
use sck_core::backoff::Backoff;
use sck_store::tables::SCHEMA_MIGRATIONS;

use super::blocked::{Blocked, RETRY_INTERVAL};
use crate::config::Config;

/// `sck-decoder migrate`: one attempt. Returns the server version.
pub async fn once(cfg: &Config) -> anyhow::Result<String> {
    let version = sck_store::migrate(&super::client(cfg, false)?, &cfg.database)
        .await
        .with_context(|| format!("migrating the ClickHouse schema at {}", cfg.clickhouse_url))?;
    tracing::info!(server = %version, database = %cfg.database, "ClickHouse schema up to date");
    Ok(version)
}

/// At start: retries until the migrations succeeded. Fails only when the client cannot be built.
pub async fn until_done(cfg: &Config, blocked: &Blocked) -> Result<(), super::tls::TlsError> {
    let client = super::client(cfg, false)?;
    let retry = Backoff {
        initial: Duration::from_millis(500),
        max: Duration::from_secs(15),
    };
    let mut attempt = 0;
    loop {
        match sck_store::migrate(&client, &cfg.database).await {
            Ok(version) => {
                blocked.clear(SCHEMA_MIGRATIONS);
                tracing::info!(server = %version, database = %cfg.database, "ClickHouse schema up to date");
                return Ok(());
            }
            Err(e) => {
                let class = sck_store::classify(&e.source);
                if blocked.failed(SCHEMA_MIGRATIONS, class, &e.source) {
                    tokio::time::sleep(RETRY_INTERVAL).await;
                } else {
                    // The whole chain: the clickhouse crate's own text hides a refused
                    // certificate behind "network error: client error (Connect)".
                    let error = sck_runtime::error_chain(&e);
                    tracing::warn!(%error, attempt, "migration failed; retrying");
                    sck_runtime::backoff_sleep(&retry, attempt).await;
                }
                attempt += 1;
            }
        }
    }
}
