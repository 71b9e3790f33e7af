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

/// An error and its causes, `: `-separated, each written once: many errors end their own text
/// with their source's ("network error: client error (Connect)"), and many hide the cause that
/// matters (a certificate refused, a password refused) in a source, not in their own text.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer: {0}")]
    struct Outer(#[source] Middle);

    #[derive(Debug, thiserror::Error)]
    #[error("middle")]
    struct Middle(#[source] std::io::Error);

    #[test]
    fn error_chain_names_every_cause_once() {
        let e = Outer(Middle(std::io::Error::other(
            "invalid peer certificate: UnknownIssuer",
        )));
        assert_eq!(
            error_chain(&e),
            "outer: middle: invalid peer certificate: UnknownIssuer"
        );
        assert_eq!(error_chain(&std::io::Error::other("alone")), "alone");
    }
}
