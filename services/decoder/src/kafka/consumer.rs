//! The consumer: subscribed to the readings and events topics (and the dead-letter topic when
//! asked), offsets committed only by the decoder, explicitly, after each insert.
//! Leaving the group and the `/readyz` probe are `sck_runtime::consumer`'s.

use std::sync::Arc;

use anyhow::Context;
use rdkafka::consumer::Consumer;

use super::{client_config, Ctx};
use crate::config::Config;

pub type DecoderConsumer = sck_runtime::consumer::GroupConsumer;

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
