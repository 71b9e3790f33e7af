//! Which devices forward, and where to: the platform's registry (PostgreSQL `devices.
//! enable_forwarding` and the owner's `users.forwarding_token`), cached in memory.
//!
//! - [`cache`]: the pure cache (forwarding set, bounded negative set, the wait after a failure);
//! - [`postgres`]: its two queries.
//!
//! [`Registry::refresh`] loads every forwarding device every FORWARDER_REFRESH_SECS (the service
//! consumes nothing before the first load succeeded: `/readyz` says `registry` until then);
//! [`Registry::lookup`] answers the record path, querying PostgreSQL at once for a token seen for
//! the first time.

pub mod cache;
pub mod postgres;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sck_runtime::http::Readiness;

use crate::metrics::Metrics;
use cache::{Cache, Lookup, Target};
use postgres::{Postgres, RegistryError};

/// Readiness check name: the first load of the forwarding devices succeeded.
pub const READINESS_CHECK: &str = "registry";

/// How long unknown tokens are not looked up after a failed lookup; it doubles with each failure
/// in a row (a lookup that times out stalls the loop for FORWARDER_REGISTRY_TIMEOUT_MS) …
const LOOKUP_RETRY: Duration = Duration::from_secs(5);
/// … up to this.
const LOOKUP_RETRY_MAX: Duration = Duration::from_secs(60);
/// How soon a failed load is tried again (a refresh interval may be long).
const LOAD_RETRY: Duration = Duration::from_secs(5);

/// What to do with a device token's readings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Forward(Target),
    NotForwarding,
    /// Not known, and PostgreSQL cannot say now: not forwarded.
    Unavailable,
}

pub struct Registry {
    pub cache: Mutex<Cache>,
    pub postgres: Postgres,
    pub refresh: Duration,
    pub metrics: Metrics,
    /// Lookups failed in a row.
    pub lookup_failures: AtomicU32,
}

impl Registry {
    /// Loads every forwarding device into the cache.
    pub async fn load(&self) -> Result<usize, RegistryError> {
        let rows = self.postgres.forwarding().await;
        let rows = self.observed(rows)?;
        let Ok(mut cache) = self.cache.lock() else {
            return Ok(0);
        };
        let unusable = cache.replace(rows);
        if unusable > 0 {
            tracing::warn!(
                devices = unusable,
                "forwarding devices whose owner's forwarding token cannot stand in an MQTT topic \
                 (empty, or with / + # NUL): not forwarded"
            );
        }
        let n = cache.forwarding();
        self.metrics.registry_devices.set(n as i64);
        Ok(n)
    }

    /// Loads at once, then every refresh interval; a failed load is retried sooner.
    pub async fn refresh(self: Arc<Self>, readiness: Arc<Readiness>) {
        let mut was_ok = None;
        loop {
            let result = self.load().await;
            let ok = result.is_ok();
            match &result {
                Ok(n) if was_ok != Some(true) => {
                    tracing::info!(forwarding_devices = n, "registry loaded")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "registry load failed; keeping the cache"),
            }
            if ok {
                readiness.set(READINESS_CHECK, true);
            }
            was_ok = Some(ok);
            tokio::time::sleep(if ok { self.refresh } else { LOAD_RETRY }).await;
        }
    }

    /// True once a load succeeded.
    pub fn loaded(&self) -> bool {
        self.cache.lock().map(|c| c.loaded()).unwrap_or(false)
    }

    /// The decision for `token`: from the cache, or from PostgreSQL when first seen.
    pub async fn lookup(&self, token: &str) -> Decision {
        let now = Instant::now();
        match self.cache.lock().map(|c| decision(c.get(token, now))) {
            Ok(Some(d)) => return d,
            Ok(None) => {}
            Err(_) => return Decision::Unavailable,
        }
        let found = self.postgres.lookup(token).await;
        let found = self.observed(found);
        let Ok(mut cache) = self.cache.lock() else {
            return Decision::Unavailable;
        };
        match found {
            Ok(row) => {
                self.lookup_failures.store(0, Ordering::Relaxed);
                cache.found(token, row);
                self.metrics.registry_devices.set(cache.forwarding() as i64);
                decision(cache.get(token, now)).unwrap_or(Decision::Unavailable)
            }
            Err(e) => {
                let failures = self.lookup_failures.fetch_add(1, Ordering::Relaxed);
                let retry = lookup_retry(failures);
                tracing::warn!(
                    error = %e, retry_in_secs = retry.as_secs(),
                    "registry lookup failed; tokens not in the cache are not forwarded meanwhile"
                );
                cache.failed(now, retry);
                Decision::Unavailable
            }
        }
    }

    /// Counts a query's outcome and keeps `registry_up` current.
    fn observed<T>(&self, r: Result<T, RegistryError>) -> Result<T, RegistryError> {
        let label = if r.is_ok() { "ok" } else { "error" };
        self.metrics
            .registry_queries
            .with_label_values(&[label])
            .inc();
        self.metrics.registry_up.set(r.is_ok() as i64);
        r
    }
}

/// The wait after `failures` earlier failures in a row.
fn lookup_retry(failures: u32) -> Duration {
    LOOKUP_RETRY
        .saturating_mul(1 << failures.min(8))
        .min(LOOKUP_RETRY_MAX)
}

/// The decision the cache alone can make (`None`: ask PostgreSQL).
fn decision(l: Lookup<'_>) -> Option<Decision> {
    match l {
        Lookup::Forward(t) => Some(Decision::Forward(t.clone())),
        Lookup::NotForwarding => Some(Decision::NotForwarding),
        Lookup::Unavailable => Some(Decision::Unavailable),
        Lookup::Unknown => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lookup_wait_doubles_then_caps() {
        let secs: Vec<u64> = (0..7).map(|n| lookup_retry(n).as_secs()).collect();
        assert_eq!(secs, [5, 10, 20, 40, 60, 60, 60]);
        assert_eq!(lookup_retry(u32::MAX), LOOKUP_RETRY_MAX);
    }
}
