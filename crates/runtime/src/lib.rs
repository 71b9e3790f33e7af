//! sck-runtime: what every service binary needs around the pure domain of `sck-core`.
//!
//! Kept apart from the domain on purpose: this crate is the one that knows about tokio, axum,
//! prometheus, clap, rdkafka's client settings, rumqttc's connection errors or tracing-subscriber,
//! and the wall clock. `sck-core`
//! depends on none of it (`make lint` builds it alone to prove so).

pub mod clock;
pub mod consumer;
pub mod http;
pub mod kafka;
pub mod log_limit;
pub mod mqtt;
pub mod secret;
pub mod settings;
pub mod telemetry;

use sck_core::backoff::Backoff;

/// Sleeps for the jittered backoff delay of `attempt`.
pub async fn backoff_sleep(backoff: &Backoff, attempt: u32) {
    tokio::time::sleep(backoff.delay(attempt, fastrand::f64())).await;
}

/// This host's name: `HOSTNAME` (set in every Kubernetes pod) or the kernel's.
pub fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops this process");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
