//! The registry's two queries on the platform's PostgreSQL (REGISTRY_POSTGRES_URL, the
//! least-privilege user: SELECT on `devices` and `users` is all it needs): every forwarding
//! device, and one token. One connection, opened when first needed and again after it broke;
//! every call is bounded by a timeout.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio_postgres::{Client, NoTls, Statement};

use super::cache::Row;

/// A device forwards when its `enable_forwarding` is set and its owner has a forwarding token
/// (the platform's `Device#forward_readings?`).
const FORWARDING: &str = "SELECT d.device_token, d.id, u.forwarding_token \
     FROM devices d JOIN users u ON u.id = d.owner_id \
     WHERE d.enable_forwarding AND d.device_token IS NOT NULL \
     AND u.forwarding_token IS NOT NULL AND u.forwarding_token <> ''";

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("PostgreSQL did not answer within {0:?}")]
    Timeout(Duration),
}

struct Connection {
    client: Client,
    one: Statement,
}

pub struct Postgres {
    config: tokio_postgres::Config,
    timeout: Duration,
    connection: Mutex<Option<Connection>>,
}

impl Postgres {
    /// `config` holds the password: never log it (see [`describe`]).
    pub fn new(mut config: tokio_postgres::Config, timeout: Duration) -> Self {
        config.connect_timeout(timeout);
        config.application_name("sck-forwarder");
        Postgres {
            config,
            timeout,
            connection: Mutex::new(None),
        }
    }

    /// Every forwarding device.
    pub async fn forwarding(&self) -> Result<Vec<Row>, RegistryError> {
        self.bounded(async {
            let mut guard = self.connection.lock().await;
            let c = self.connected(&mut guard).await?;
            let rows = c.client.query(FORWARDING, &[]).await;
            let rows = rows.map_err(|e| self.broken(&mut guard, e))?;
            Ok(rows.iter().filter_map(row).collect())
        })
        .await
    }

    /// The device of `token`, when it forwards.
    pub async fn lookup(&self, token: &str) -> Result<Option<Row>, RegistryError> {
        self.bounded(async {
            let mut guard = self.connection.lock().await;
            let c = self.connected(&mut guard).await?;
            let rows = c.client.query(&c.one, &[&token]).await;
            let rows = rows.map_err(|e| self.broken(&mut guard, e))?;
            Ok(rows.first().and_then(row))
        })
        .await
    }

    async fn bounded<T>(
        &self,
        f: impl std::future::Future<Output = Result<T, RegistryError>>,
    ) -> Result<T, RegistryError> {
        match tokio::time::timeout(self.timeout, f).await {
            Ok(r) => r,
            Err(_) => {
                // The connection may be stuck mid-query: start over next time.
                if let Ok(mut c) = self.connection.try_lock() {
                    *c = None;
                }
                Err(RegistryError::Timeout(self.timeout))
            }
        }
    }

    async fn connected<'g>(
        &self,
        guard: &'g mut Option<Connection>,
    ) -> Result<&'g Connection, RegistryError> {
        if guard.as_ref().is_some_and(|c| c.client.is_closed()) {
            *guard = None;
        }
        if guard.is_none() {
            let (client, connection) = self.config.connect(NoTls).await?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "registry connection closed");
                }
            });
            let one = client
                .prepare(&format!("{FORWARDING} AND d.device_token = $1"))
                .await?;
            *guard = Some(Connection { client, one });
        }
        guard.as_ref().ok_or(RegistryError::Timeout(self.timeout))
    }

    fn broken(&self, guard: &mut Option<Connection>, e: tokio_postgres::Error) -> RegistryError {
        *guard = None;
        e.into()
    }
}

/// A result row as the cache takes it (`None` if the columns are not of the platform's types).
fn row(r: &tokio_postgres::Row) -> Option<Row> {
    Some(Row {
        device_token: r.try_get(0).ok()?,
        device_id: r.try_get(1).ok()?,
        forwarding_token: r.try_get(2).ok()?,
    })
}

/// Where the registry is, for the logs: hosts and database, never the user's password.
pub fn describe(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    format!(
        "{}/{}",
        hosts.join(","),
        config.get_dbname().unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_description_has_no_password() {
        let c: tokio_postgres::Config =
            "postgres://sck_registry:hunter2@db.example:5432/sck_platform"
                .parse()
                .expect("url");
        let d = describe(&c);
        assert_eq!(d, "db.example/sck_platform");
        assert!(!d.contains("hunter2"));
    }
}
