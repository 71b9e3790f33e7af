//! The consumer: the readings topic only, in the forwarder's own consumer group (so its lag,
//! its pace and its failures are its own, never the decoder's), offsets committed only by the
//! forwarder, explicitly, once every message before them was acknowledged. Also how it leaves
//! the group on shutdown, and the metadata probe behind `/readyz`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rdkafka::consumer::{Consumer, StreamConsumer};

use super::{client_config, Ctx};
use crate::config::Config;

pub type ForwarderConsumer = StreamConsumer<Ctx>;

pub fn consumer(cfg: &Config, ctx: Ctx) -> anyhow::Result<Arc<ForwarderConsumer>> {
    let mut c = client_config(cfg, &cfg.client_id);
    c.set("group.id", &cfg.group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set(
            "statistics.interval.ms",
            cfg.statistics_interval_ms.to_string(),
        )
        // Bounds what librdkafka prefetches while consumption is paused.
        .set("queued.max.messages.kbytes", "16384")
        .set("topic.metadata.refresh.interval.ms", "30000")
        .set("fetch.wait.max.ms", cfg.fetch_wait_max_ms.to_string());
    for (k, v) in &cfg.consumer_properties {
        c.set(k, v);
    }
    let consumer: ForwarderConsumer = c
        .create_with_context(ctx)
        .context("creating the Kafka consumer")?;
    consumer
        .subscribe(&[cfg.readings_topic.as_str()])
        .context("subscribing to the readings topic")?;
    Ok(Arc::new(consumer))
}

/// Closes the consumer once this is its last handle, so it leaves the group at once (10 s at
/// most; past that the process exit closes it).
pub async fn leave_group(mut consumer: Arc<ForwarderConsumer>) {
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
pub fn probe(consumer: &ForwarderConsumer) -> Result<(), String> {
    consumer
        .fetch_metadata(None, Duration::from_secs(5))
        .map(|_| ())
        .map_err(|e| format!("metadata request failed: {e}"))
}
