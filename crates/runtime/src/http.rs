//! The operational HTTP endpoints every service serves: `/metrics` (Prometheus text),
//! `/healthz` (the process is alive) and `/readyz` (connected to everything it needs).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus::{Encoder, Registry, TextEncoder};

/// Named readiness checks, flipped by the tasks that own each connection.
#[derive(Debug)]
pub struct Readiness {
    checks: Vec<(&'static str, AtomicBool)>,
    stopping: AtomicBool,
}

impl Readiness {
    pub fn new(names: &[&'static str]) -> Arc<Self> {
        Arc::new(Readiness {
            checks: names.iter().map(|n| (*n, AtomicBool::new(false))).collect(),
            stopping: AtomicBool::new(false),
        })
    }

    /// Sets a check; unknown names are a programming error and are ignored in release builds.
    pub fn set(&self, name: &str, ok: bool) {
        let found = self.checks.iter().find(|(n, _)| *n == name);
        debug_assert!(found.is_some(), "unknown readiness check {name}");
        if let Some((_, flag)) = found {
            flag.store(ok, Ordering::Relaxed);
        }
    }

    /// Marks the service as shutting down: not ready from now on, whatever the checks say.
    pub fn stopping(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// The names of the checks that fail (plus `stopping`), empty when ready.
    pub fn failing(&self) -> Vec<&'static str> {
        let mut out: Vec<_> = self
            .checks
            .iter()
            .filter(|(_, ok)| !ok.load(Ordering::Relaxed))
            .map(|(n, _)| *n)
            .collect();
        if self.stopping.load(Ordering::Relaxed) {
            out.push("stopping");
        }
        out
    }
}

#[derive(Clone)]
struct AppState {
    registry: Registry,
    readiness: Arc<Readiness>,
}

/// The router, separate from [`serve`] so it can be exercised without a socket.
pub fn router(registry: Registry, readiness: Arc<Readiness>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(AppState {
            registry,
            readiness,
        })
}

/// Binds `addr` and serves the endpoints until the process ends.
/// Binding is done before returning so a taken port fails start-up with a clear error.
pub async fn serve(
    addr: SocketAddr,
    registry: Registry,
    readiness: Arc<Readiness>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        std::io::Error::new(e.kind(), format!("cannot bind METRICS_ADDR {addr}: {e}"))
    })?;
    let app = router(registry, readiness);
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics server stopped");
        }
    }))
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    let mut buf = Vec::new();
    match TextEncoder::new().encode(&s.registry.gather(), &mut buf) {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
            buf,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn ready(State(s): State<AppState>) -> impl IntoResponse {
    let failing = s.readiness.failing();
    if failing.is_empty() {
        (StatusCode::OK, "ready\n".to_string())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", failing.join(", ")),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_lists_failing_checks_and_stopping() {
        let r = Readiness::new(&["mqtt", "kafka"]);
        assert_eq!(r.failing(), ["mqtt", "kafka"]);
        r.set("mqtt", true);
        assert_eq!(r.failing(), ["kafka"]);
        r.set("kafka", true);
        assert!(r.failing().is_empty());
        r.stopping();
        assert_eq!(r.failing(), ["stopping"]);
    }
}
