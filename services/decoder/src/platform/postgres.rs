//! The platform's PostgreSQL: one connection, kept open by a background task that reconnects
//! with backoff whenever it drops. Whoever needs the database (the device registry; later the
//! writers of the platform's latest state) takes the current client with [`Postgres::client`]
//! and gets `None` at once while PostgreSQL is away, so no message waits on a connection that is
//! not there; [`Postgres::timed`] bounds what they do with it.
//!
//! TLS: `sslmode=require` in the URL connects through rustls (ring) and checks the server's
//! certificate against the web PKI roots; `disable` and `prefer` (the default) connect in plain
//! text (no unverified TLS).

use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sck_core::backoff::Backoff;
use sck_runtime::log_limit::LogLimiter;
use sck_runtime::secret::Secret;
use sck_runtime::{backoff_sleep, error_chain};
use tokio::sync::watch;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::{Client, Config, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

/// Reconnect delays: quick at first, then every few seconds while PostgreSQL stays away.
const RECONNECT: Backoff = Backoff {
    initial: Duration::from_millis(200),
    max: Duration::from_secs(5),
};
/// Idle time before TCP keepalive probes: a peer that vanished is noticed in about a minute.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// No connection at the moment (the task is reconnecting).
    #[error("not connected to PostgreSQL")]
    NotConnected,
    #[error("PostgreSQL did not answer within {0:?}")]
    Timeout(Duration),
    #[error("PostgreSQL: {}", error_chain(.0))]
    Db(#[from] tokio_postgres::Error),
    /// A row with a value the caller cannot use.
    #[error("PostgreSQL returned {0}")]
    BadRow(String),
}

/// The URL is not one tokio-postgres reads (the URL itself is never printed: it has a password).
#[derive(Debug, thiserror::Error)]
#[error("REGISTRY_POSTGRES_URL is not a PostgreSQL connection URL: {0}")]
pub struct BadUrl(String);

/// A handle on the connection; clones share it.
#[derive(Clone)]
pub struct Postgres {
    current: watch::Receiver<Option<Arc<Client>>>,
    timeout: Duration,
    target: Arc<str>,
}

impl Postgres {
    /// Reads the URL and starts the connection task. `timeout` bounds each connection attempt
    /// and, through [`Postgres::timed`], each query.
    pub fn start(url: &Secret, timeout: Duration) -> Result<Postgres, BadUrl> {
        let mut config = Config::from_str(url.expose()).map_err(|e| BadUrl(e.to_string()))?;
        config
            .connect_timeout(timeout)
            .keepalives(true)
            .keepalives_idle(KEEPALIVE_IDLE)
            .application_name("sck-decoder");
        let target: Arc<str> = describe(&config).into();
        let (tx, current) = watch::channel(None);
        tokio::spawn(keep_connected(config, tx, target.clone()));
        Ok(Postgres {
            current,
            timeout,
            target,
        })
    }

    /// The connected client, or `None` while reconnecting.
    pub fn client(&self) -> Option<Arc<Client>> {
        self.current
            .borrow()
            .as_ref()
            .filter(|c| !c.is_closed())
            .cloned()
    }

    /// Resolves when the connection comes up or goes down (`Some`: the new client).
    pub fn changes(&self) -> watch::Receiver<Option<Arc<Client>>> {
        self.current.clone()
    }

    /// Waits up to `within` for a connection; whether there is one.
    pub async fn connected(&self, within: Duration) -> bool {
        let mut changes = self.changes();
        tokio::time::timeout(within, changes.wait_for(Option::is_some))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Host, port, database and user (no password), for log lines.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// `query` bounded by the query timeout.
    pub async fn timed<T>(
        &self,
        query: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, PgError> {
        match tokio::time::timeout(self.timeout, query).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(PgError::Timeout(self.timeout)),
        }
    }
}

type Connection = Pin<Box<dyn Future<Output = Result<(), tokio_postgres::Error>> + Send>>;

/// Connects, publishes the client, drives the connection until it ends, and starts over.
async fn keep_connected(config: Config, tx: watch::Sender<Option<Arc<Client>>>, target: Arc<str>) {
    let warnings = LogLimiter::new(Duration::from_secs(30));
    let mut attempt = 0u32;
    loop {
        match connect(&config).await {
            Ok((client, connection)) => {
                tracing::info!(postgres = %target, "connected to PostgreSQL");
                attempt = 0;
                tx.send_replace(Some(Arc::new(client)));
                let ended = connection.await;
                tx.send_replace(None);
                match ended {
                    Ok(()) => {
                        tracing::warn!(postgres = %target, "PostgreSQL closed the connection; reconnecting")
                    }
                    Err(e) => {
                        tracing::warn!(postgres = %target, error = %e, "PostgreSQL connection lost; reconnecting")
                    }
                }
            }
            Err(e) => {
                if let Some(suppressed) = warnings.allow() {
                    tracing::warn!(postgres = %target, error = error_chain(&e), attempt, suppressed, "cannot connect to PostgreSQL; retrying");
                }
            }
        }
        if tx.is_closed() {
            return;
        }
        backoff_sleep(&RECONNECT, attempt).await;
        attempt = attempt.saturating_add(1);
    }
}

async fn connect(config: &Config) -> Result<(Client, Connection), tokio_postgres::Error> {
    match config.get_ssl_mode() {
        SslMode::Disable | SslMode::Prefer => {
            let (client, connection) = config.connect(NoTls).await?;
            Ok((client, Box::pin(connection)))
        }
        _ => {
            let (client, connection) = config.connect(rustls_connector()).await?;
            Ok((client, Box::pin(connection)))
        }
    }
}

/// TLS through rustls with the ring provider, trusting the web PKI roots.
fn rustls_connector() -> MakeRustlsConnect {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default protocol versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    MakeRustlsConnect::new(config)
}

/// `host:port/db as user`, without the password.
fn describe(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{host}:{port}/{} as {}",
        config.get_dbname().unwrap_or("-"),
        config.get_user().unwrap_or("-")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_never_shows_the_password() {
        let c =
            Config::from_str("postgres://reg:hunter2@db.example:15432/platform?sslmode=require")
                .unwrap();
        assert_eq!(describe(&c), "db.example:15432/platform as reg");
        assert_eq!(c.get_ssl_mode(), SslMode::Require);
        let c = Config::from_str("postgresql://reg@db").unwrap();
        assert_eq!(describe(&c), "db:5432/- as reg");
    }

    #[tokio::test]
    async fn a_bad_url_fails_the_start_without_printing_it() {
        let e = Postgres::start(
            &Secret::new("postgres://u:hunter2@h:notaport/db"),
            Duration::from_secs(1),
        )
        .err()
        .expect("refused");
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn the_tls_connector_builds() {
        let _ = rustls_connector();
    }
}
