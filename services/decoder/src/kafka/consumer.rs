//! The consumer: subscribed to the readings and events topics (and the dead-letter topic when
//! asked), offsets committed only by the decoder, explicitly, after each insert. Also how it
//! leaves the group on shutdown, and the metadata probe behind `/readyz`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rdkafka::consumer::{Consumer, StreamConsumer};

use super::{client_config, Ctx};
use crate::config::Config;

pub type DecoderConsumer = StreamConsumer<Ctx>;

pub fn consumer(cfg: &Config, ctx: Ctx) -> anyhow::Result<Arc<DecoderConsumer>> {
    let mut c = client_config(cfg);
    c.set("group.id", &cfg.group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set(
            "statistics.interval.ms",
            cfg.statistics_interval_ms.to_string(),
        )
        // Bounds what librdkafka prefetches while the decoder is paused (ClickHouse down).
        .set("queued.max.messages.kbytes", "32768")
        // Partitions added to a topic are picked up (and rebalanced) within 30 s instead of
        // librdkafka's default 5 min; until then nothing reads them.
        .set("topic.metadata.refresh.interval.ms", "30000")
        // A broker that does not answer a fetch before this wait when data arrives (tansu) adds
        // it to every reading's latency; Apache Kafka answers at once either way.
        .set("fetch.wait.max.ms", cfg.fetch_wait_max_ms.to_string());
    for (k, v) in &cfg.consumer_properties {
        c.set(k, v);
    }
    let consumer: DecoderConsumer = c
        .create_with_context(ctx)
        .context("creating the Kafka consumer")?;
    let mut topics = vec![cfg.readings_topic.as_str(), cfg.events_topic.as_str()];
    if cfg.consume_dead_letter {
        topics.push(cfg.dlq_topic.as_str());
    }
    consumer
        .subscribe(&topics)
        .context("subscribing to the Kafka topics")?;
    Ok(Arc::new(consumer))
}

/// Closes the consumer once this is its last handle: it leaves the group at once instead of the
/// group waiting for its session to time out. The readiness probe may briefly hold another
/// handle, so this waits for it (10 s at most; past that the process exit closes it).
pub async fn leave_group(mut consumer: Arc<DecoderConsumer>) {
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
pub fn probe(consumer: &DecoderConsumer) -> Result<(), String> {
    consumer
        .fetch_metadata(None, Duration::from_secs(5))
        .map(|_| ())
        .map_err(|e| format!("metadata request failed: {e}"))
}
