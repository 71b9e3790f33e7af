//! The device registry in the decoder: which platform device each message's token belongs to.
//!
//! The decisions are `sck_core::registry`'s (pure, tested there); this is their shell: it reads
//! the whole `devices` table (and the sensor keys) every `REGISTRY_REFRESH_SECS` and at every
//! reconnection, asks PostgreSQL about a token the cache does not know at once (bounded by
//! `REGISTRY_QUERY_TIMEOUT_MS`), and reports in the metrics. Thousands of devices cost one query
//! per refresh, not one per message.
//!
//! While PostgreSQL is away the cache keeps answering; a token it does not know is
//! [`Resolved::Unavailable`] (the pipeline records it as `registry_unavailable`, replayable).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use prometheus::{IntCounter, IntGauge};
use sck_core::registry::{self as cache, CacheLimits, Device, Lookup, SensorKeys};
use sck_runtime::log_limit::LogLimiter;
use sck_runtime::settings::registry::RegistrySettings;

use super::postgres::{PgError, Postgres};
use crate::metrics::Metrics;

/// One token's device (`$1`: the token).
const SELECT_DEVICE: &str = "SELECT id FROM devices WHERE device_token = $1";
/// The whole registry.
const SELECT_DEVICES: &str = "SELECT id, device_token FROM devices WHERE device_token IS NOT NULL";
/// The sensor keys, lowest id first (it wins when two sensors share a key).
const SELECT_SENSOR_KEYS: &str =
    "SELECT id, default_key FROM sensors WHERE default_key IS NOT NULL ORDER BY id";

/// After a failed query, how long tokens the cache does not know are `Unavailable` without
/// asking, and how soon a failed refresh is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// What the registry says about a message's token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolved {
    Device(Device),
    /// No platform device has this token.
    Unknown,
    /// The cache does not know the token and PostgreSQL cannot be asked.
    Unavailable,
}

/// The lookup counters, one per result, resolved once (the hot path does no label hashing).
struct Lookups {
    known: IntCounter,
    unknown: IntCounter,
    found: IntCounter,
    not_found: IntCounter,
    unavailable: IntCounter,
}

pub struct Registry {
    pg: Postgres,
    cache: Mutex<cache::Registry>,
    keys: Mutex<Arc<SensorKeys>>,
    /// Bumped each time `keys` is replaced.
    keys_version: AtomicU64,
    refresh_every: Duration,
    /// `now` of the cache: milliseconds since this instant.
    origin: Instant,
    up: IntGauge,
    devices: IntGauge,
    lookups: Lookups,
    warnings: LogLimiter,
}

impl Registry {
    pub fn new(pg: Postgres, settings: &RegistrySettings, metrics: &Metrics) -> Registry {
        let limits = CacheLimits {
            negative_ttl_ms: settings.negative_ttl.as_millis() as u64,
            negative_max: settings.negative_max,
            retry_after_ms: RETRY_AFTER.as_millis() as u64,
        };
        let by = |result: &str| metrics.registry_lookups.with_label_values(&[result]);
        Registry {
            pg,
            cache: Mutex::new(cache::Registry::new(limits)),
            keys: Mutex::new(Arc::new(SensorKeys::default())),
            keys_version: AtomicU64::new(0),
            refresh_every: settings.refresh,
            origin: Instant::now(),
            up: metrics.registry_up.clone(),
            devices: metrics.registry_devices.clone(),
            lookups: Lookups {
                known: by("known"),
                unknown: by("unknown"),
                found: by("found"),
                not_found: by("not_found"),
                unavailable: by("unavailable"),
            },
            warnings: LogLimiter::new(Duration::from_secs(30)),
        }
    }

    /// The device of `token`: from the cache, or asked at once when the cache says so.
    pub async fn resolve(&self, token: &str) -> Resolved {
        let lookup = self.cache().lookup(token, self.now());
        match lookup {
            Lookup::Known(d) => {
                self.lookups.known.inc();
                Resolved::Device(d)
            }
            Lookup::Unknown => {
                self.lookups.unknown.inc();
                Resolved::Unknown
            }
            Lookup::Unavailable => {
                self.lookups.unavailable.inc();
                Resolved::Unavailable
            }
            Lookup::Ask => match self.ask(token).await {
                Ok(device) => {
                    self.up.set(1);
                    self.cache().answered(token, device, self.now());
                    match device {
                        Some(d) => {
                            self.lookups.found.inc();
                            Resolved::Device(d)
                        }
                        None => {
                            self.lookups.not_found.inc();
                            Resolved::Unknown
                        }
                    }
                }
                Err(e) => {
                    self.up.set(0);
                    self.cache().failed(self.now());
                    self.lookups.unavailable.inc();
                    if let Some(suppressed) = self.warnings.allow() {
                        tracing::warn!(error = %e, suppressed, "device registry lookup failed; messages of tokens not in the cache are recorded as registry_unavailable");
                    }
                    Resolved::Unavailable
                }
            },
        }
    }

    /// The sensor keys, when they changed since version `seen` (which is updated).
    pub fn sensor_keys_since(&self, seen: &mut u64) -> Option<Arc<SensorKeys>> {
        let version = self.keys_version.load(Ordering::Acquire);
        if version == *seen {
            return None;
        }
        *seen = version;
        Some(self.keys.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }

    /// Reads the whole device table and the sensor keys into the cache.
    pub async fn refresh(&self) -> Result<(), PgError> {
        let client = self.pg.client().ok_or(PgError::NotConnected)?;
        let rows = self.pg.timed(client.query(SELECT_DEVICES, &[])).await?;
        let mut devices = HashMap::with_capacity(rows.len());
        for row in &rows {
            devices.insert(row.try_get::<_, String>(1)?, device(row.try_get(0)?)?);
        }
        let rows = self.pg.timed(client.query(SELECT_SENSOR_KEYS, &[])).await?;
        let mut pairs = Vec::with_capacity(rows.len());
        for row in &rows {
            pairs.push((row.try_get::<_, String>(1)?, sensor_id(row.try_get(0)?)?));
        }
        let count = devices.len();
        self.cache().refreshed(devices, self.now());
        *self.keys.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(SensorKeys::new(pairs));
        self.keys_version.fetch_add(1, Ordering::Release);
        self.devices.set(count as i64);
        self.up.set(1);
        Ok(())
    }

    /// The first refresh, at start: waits up to `within` for the connection. Decoding starts
    /// either way (without the cache, tokens are asked one by one, or `registry_unavailable`).
    pub async fn first_refresh(&self, within: Duration) {
        let result = if self.pg.connected(within).await {
            self.refresh().await
        } else {
            Err(PgError::NotConnected)
        };
        match result {
            Ok(()) => tracing::info!(
                postgres = self.pg.target(),
                devices = self.cache().devices(),
                "device registry loaded"
            ),
            Err(e) => {
                self.up.set(0);
                tracing::warn!(postgres = self.pg.target(), error = %e, "device registry not loaded at start; decoding goes on, and messages of tokens it cannot look up are recorded as registry_unavailable");
            }
        }
    }

    /// The refresh task: every `REGISTRY_REFRESH_SECS`, and at once after a reconnection.
    pub async fn keep_fresh(self: Arc<Self>) {
        let mut changes = self.pg.changes();
        changes.borrow_and_update();
        let mut wait = self.refresh_every;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                reconnected = self.reconnected(&mut changes) => if !reconnected { return },
            }
            wait = match self.refresh().await {
                Ok(()) => self.refresh_every,
                Err(e) => {
                    self.up.set(0);
                    if let Some(suppressed) = self.warnings.allow() {
                        tracing::warn!(error = %e, suppressed, "device registry refresh failed; decoding goes on with the cache");
                    }
                    RETRY_AFTER.min(self.refresh_every)
                }
            };
        }
    }

    /// Resolves when the connection comes back (false: the connection task ended). A lost
    /// connection sets the `up` gauge to 0 meanwhile.
    async fn reconnected(
        &self,
        changes: &mut tokio::sync::watch::Receiver<Option<Arc<tokio_postgres::Client>>>,
    ) -> bool {
        loop {
            if changes.changed().await.is_err() {
                return false;
            }
            if changes.borrow_and_update().is_some() {
                return true;
            }
            self.up.set(0);
        }
    }

    fn cache(&self) -> MutexGuard<'_, cache::Registry> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    async fn ask(&self, token: &str) -> Result<Option<Device>, PgError> {
        let client = self.pg.client().ok_or(PgError::NotConnected)?;
        let row = self
            .pg
            .timed(client.query_opt(SELECT_DEVICE, &[&token]))
            .await?;
        row.map(|r| device(r.try_get(0)?)).transpose()
    }
}

/// `devices.id` (an `integer`) as the u32 public id.
fn device(id: i32) -> Result<Device, PgError> {
    u32::try_from(id)
        .map(|id| Device { id })
        .map_err(|_| PgError::BadRow(format!("device id {id}")))
}

/// `sensors.id` (an `integer`) as the u32 sensor id of the readings.
fn sensor_id(id: i32) -> Result<u32, PgError> {
    u32::try_from(id).map_err(|_| PgError::BadRow(format!("sensor id {id}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_must_fit_the_readings_columns() {
        assert_eq!(device(7).unwrap(), Device { id: 7 });
        assert!(matches!(device(-1), Err(PgError::BadRow(_))));
        assert_eq!(sensor_id(55).unwrap(), 55);
        assert!(sensor_id(-5).is_err());
    }
}
