//! The decoder's Kafka side: the consumer (manual commits only), its context (rebalance
//! bookkeeping and the consumer-lag gauge from librdkafka statistics), the dead-letter producer
//! and the reachability probe behind `/readyz`.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaResult;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::statistics::Statistics;
use rdkafka::TopicPartitionList;
use sck_core::backoff::Backoff;
use sck_runtime::backoff_sleep;
use sck_runtime::kafka::{client_properties, owned_headers};
use sck_runtime::log_limit::LogLimiter;

use crate::batch::DeadLetter;
use crate::config::Config;
use crate::metrics::Metrics;

/// Which partitions this consumer owns, and a counter bumped on every revocation so the main
/// loop can tell that its buffered records may no longer be its to commit.
#[derive(Debug, Default)]
pub struct Assignment {
    pub generation: AtomicU64,
    pub partitions: Mutex<BTreeSet<(String, i32)>>,
}

impl Assignment {
    pub fn owns(&self, topic: &str, partition: i32) -> bool {
        self.partitions
            .lock()
            .map(|p| p.contains(&(topic.to_string(), partition)))
            .unwrap_or(false)
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }
}

pub struct Ctx {
    pub assignment: Arc<Assignment>,
    pub metrics: Metrics,
}

impl ClientContext for Ctx {
    fn stats(&self, stats: Statistics) {
        let owned = self
            .assignment
            .partitions
            .lock()
            .map(|p| p.clone())
            .unwrap_or_default();
        self.metrics.consumer_lag.reset();
        for (topic, t) in &stats.topics {
            for (partition, p) in &t.partitions {
                if !owned.contains(&(topic.clone(), *partition)) {
                    continue;
                }
                self.metrics
                    .consumer_lag
                    .with_label_values(&[topic.as_str(), &partition.to_string()])
                    .set(lag(p.hi_offset, p.committed_offset, p.lo_offset));
            }
        }
    }
}

/// Records between the committed offset (or the log start, when nothing is committed) and the
/// high watermark, clamped at 0 (brokers such as tansu may under-report the watermark).
pub fn lag(hi: i64, committed: i64, lo: i64) -> i64 {
    if hi < 0 {
        return 0;
    }
    let from = if committed >= 0 { committed } else { lo.max(0) };
    (hi - from).max(0)
}

impl ConsumerContext for Ctx {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            self.assignment.generation.fetch_add(1, Ordering::SeqCst);
            if let Ok(mut p) = self.assignment.partitions.lock() {
                for e in tpl.elements() {
                    p.remove(&(e.topic().to_string(), e.partition()));
                }
            }
            tracing::info!(partitions = tpl.count(), "partitions revoked");
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                if let Ok(mut p) = self.assignment.partitions.lock() {
                    for e in tpl.elements() {
                        p.insert((e.topic().to_string(), e.partition()));
                    }
                }
                let list: Vec<String> = tpl
                    .elements()
                    .iter()
                    .map(|e| format!("{}/{}", e.topic(), e.partition()))
                    .collect();
                tracing::info!(partitions = ?list, "partitions assigned");
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(e) = result {
            self.metrics.commit_errors.inc();
            tracing::warn!(error = %e, "offset commit failed (the next commit covers it)");
        }
    }
}

pub type DecoderConsumer = StreamConsumer<Ctx>;

fn base_config(cfg: &Config) -> ClientConfig {
    let mut c = ClientConfig::new();
    for (k, v) in client_properties(&cfg.kafka_brokers, &cfg.client_id, &cfg.security) {
        c.set(k, v);
    }
    c
}

/// The consumer: offsets are committed by the decoder, explicitly, after each insert.
pub fn consumer(cfg: &Config, ctx: Ctx) -> anyhow::Result<Arc<DecoderConsumer>> {
    let mut c = base_config(cfg);
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

/// The dead-letter producer: acks=all, idempotent, like the bridge's.
pub fn producer(cfg: &Config) -> anyhow::Result<FutureProducer> {
    let mut c = base_config(cfg);
    c.set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5");
    c.create().context("creating the dead-letter producer")
}

/// Writes dead-letter records; each is produced again until Kafka has it.
pub struct DeadLetterWriter {
    pub producer: FutureProducer,
    pub topic: String,
    pub metrics: Metrics,
    pub retry: Backoff,
    /// One "produce failed" warning per interval while Kafka is away.
    pub warnings: LogLimiter,
}

impl DeadLetterWriter {
    pub async fn write_all(&self, records: &[DeadLetter]) {
        // Enqueue everything first (librdkafka batches them), then wait for each delivery.
        let pending: Vec<_> = records.iter().map(|r| self.enqueue(r)).collect();
        for (r, p) in records.iter().zip(pending) {
            let mut result = deliver(p).await;
            let mut attempt = 0;
            while let Err(e) = result {
                if let Some(suppressed) = self.warnings.allow() {
                    tracing::warn!(error = %e, attempt, suppressed, "dead-letter produce failed; retrying");
                }
                backoff_sleep(&self.retry, attempt).await;
                attempt += 1;
                result = deliver(self.enqueue(r)).await;
            }
            self.metrics
                .dead_lettered
                .with_label_values(&[r.reason])
                .inc();
        }
    }

    fn enqueue(&self, r: &DeadLetter) -> Result<DeliveryFuture, String> {
        // The headers come whole from sck_core::envelope::dead_letter_headers.
        let mut record = FutureRecord::<[u8], [u8]>::to(&self.topic)
            .payload(&r.payload)
            .headers(owned_headers(&r.headers));
        if let Some(k) = &r.key {
            record = record.key(k);
        }
        self.producer
            .send_result(record)
            .map_err(|(e, _)| e.to_string())
    }
}

async fn deliver(pending: Result<DeliveryFuture, String>) -> Result<(), String> {
    match pending?.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, _))) => Err(e.to_string()),
        Err(_) => Err("delivery report lost (producer closed)".to_string()),
    }
}

/// Probes Kafka (cluster metadata through the consumer) every few seconds for `/readyz`.
pub fn probe(consumer: &DecoderConsumer) -> Result<(), String> {
    consumer
        .fetch_metadata(None, Duration::from_secs(5))
        .map(|_| ())
        .map_err(|e| format!("metadata request failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_from_the_committed_offset_and_never_negative() {
        assert_eq!(lag(100, 40, 0), 60);
        assert_eq!(
            lag(100, -1001, 10),
            90,
            "nothing committed: from the log start"
        );
        assert_eq!(lag(100, 120, 0), 0, "under-reported watermark clamps at 0");
        assert_eq!(lag(-1, 5, 0), 0, "unknown watermark");
    }
}
