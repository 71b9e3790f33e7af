//! The consumer: the readings topic only, in the forwarder's own consumer group (so its lag,
//! its pace and its failures are its own, never the decoder's), offsets committed only by the
//! forwarder, explicitly, once every message before them was acknowledged.
//! Leaving the group and the `/readyz` probe are `sck_runtime::consumer`'s.

use std::sync::Arc;

use anyhow::Context;
use rdkafka::consumer::Consumer;

use super::{client_config, Ctx};
use crate::config::Config;

pub type ForwarderConsumer = sck_runtime::consumer::GroupConsumer;

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
