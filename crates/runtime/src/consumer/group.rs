//! The group consumer both consumer-group services run (`StreamConsumer` with the shared
//! [`Ctx`]), leaving its group on shutdown, and the Kafka probe behind `/readyz`.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};

use super::Ctx;

/// A consumer-group member with the shared rebalance/commit/statistics context.
pub type GroupConsumer = StreamConsumer<Ctx>;

/// Closes the consumer once this is its last handle: it leaves the group at once instead of the
/// group waiting for its session to time out. The readiness probe may briefly hold another
/// handle, so this waits for it (10 s at most; past that the process exit closes it).
pub async fn leave_group(mut consumer: Arc<GroupConsumer>) {
    for _ in 0..100 {
        match Arc::try_unwrap(consumer) {
            Ok(c) => {
                let _ = tokio::task::spawn_blocking(move || drop(c)).await;
                tracing::info!("left the consumer group");
                return;
            }
            Err(c) => consumer = c,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tracing::warn!("consumer still in use; leaving the group at process exit");
}

/// Probes Kafka (cluster metadata through the consumer) for `/readyz`; blocking, up to 5 s.
pub fn probe(consumer: &GroupConsumer) -> Result<(), String> {
    consumer
        .fetch_metadata(None, Duration::from_secs(5))
        .map(|_| ())
        .map_err(|e| format!("metadata request failed: {e}"))
}
