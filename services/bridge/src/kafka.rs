//! The bridge's Kafka side: producer settings, optional topic creation, and the probe that
//! decides whether Kafka counts as reachable for `/readyz`.
//!
//! Reconnection to brokers is librdkafka's own (exponential with jitter, bounded by
//! `reconnect.backoff.max.ms`); a record it cannot deliver in time is produced again by
//! [`crate::forward`], so nothing is given up on.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{FutureProducer, Producer};
use sck_runtime::http::Readiness;

use sck_runtime::kafka::client_properties;

use crate::config::Config;
use crate::metrics::Metrics;

/// librdkafka settings shared by the producer and the admin client.
fn base_config(cfg: &Config) -> ClientConfig {
    let mut c = ClientConfig::new();
    for (k, v) in client_properties(&cfg.kafka_brokers, &cfg.client_id, &cfg.security) {
        c.set(k, v);
    }
    c
}

/// An idempotent, acks=all producer: a delivery report means every in-sync replica has it.
pub fn producer(cfg: &Config) -> anyhow::Result<FutureProducer> {
    let mut c = base_config(cfg);
    c.set("acks", "all")
        .set("enable.idempotence", "true")
        .set("compression.type", cfg.compression.as_str())
        .set("linger.ms", cfg.linger_ms.to_string())
        .set("message.timeout.ms", cfg.message_timeout_ms.to_string())
        // Room for MAX_IN_FLIGHT records plus retries; the bridge bounds itself below this.
        .set(
            "queue.buffering.max.messages",
            (cfg.max_in_flight * 2).max(100_000).to_string(),
        );
    for (k, v) in &cfg.producer_properties {
        c.set(k, v);
    }
    c.create().context("creating the Kafka producer")
}

/// Creates the readings, events and dead-letter topics when missing (KAFKA_CREATE_TOPICS).
pub async fn create_topics(cfg: &Config, partitions: i32, replication: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = base_config(cfg)
        .create()
        .context("creating the Kafka admin client")?;
    let names = [&cfg.readings_topic, &cfg.events_topic, &cfg.dlq_topic];
    let topics: Vec<NewTopic> = names
        .iter()
        .map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(replication)))
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(topics.iter(), &opts)
        .await
        .context("asking Kafka to create topics")?;
    for r in results {
        match r {
            Ok(name) => tracing::info!(topic = %name, partitions, "created Kafka topic"),
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                tracing::debug!(topic = %name, "Kafka topic exists")
            }
            Err((name, code)) => bail!("cannot create Kafka topic {name}: {code}"),
        }
    }
    Ok(())
}

/// Why Kafka is not usable right now, if it is not.
fn probe(producer: &FutureProducer, topics: &[String]) -> Result<(), String> {
    if let Some((code, reason)) = producer.client().fatal_error() {
        return Err(format!("fatal producer error {code}: {reason}"));
    }
    for t in topics {
        let md = producer
            .client()
            .fetch_metadata(Some(t), Duration::from_secs(5))
            .map_err(|e| format!("metadata request failed: {e}"))?;
        match md.topics().first() {
            Some(topic) if topic.error().is_none() && !topic.partitions().is_empty() => {}
            Some(topic) => {
                return Err(format!(
                    "topic {t} unavailable: {:?}",
                    topic.error().map(RDKafkaErrorCode::from)
                ))
            }
            None => return Err(format!("topic {t} missing from metadata")),
        }
    }
    Ok(())
}

/// Probes Kafka every few seconds, setting the `kafka` readiness check and gauge.
/// Returns only on a fatal producer error (the idempotent producer cannot continue): the
/// caller then stops the bridge, and unacknowledged messages are redelivered by the broker.
pub async fn watch(
    producer: FutureProducer,
    topics: Vec<String>,
    readiness: Arc<Readiness>,
    metrics: Metrics,
) -> String {
    let mut was_ok = None;
    loop {
        let (p, t) = (producer.clone(), topics.clone());
        let result = tokio::task::spawn_blocking(move || probe(&p, &t))
            .await
            .unwrap_or_else(|e| Err(format!("probe task failed: {e}")));
        let ok = result.is_ok();
        readiness.set("kafka", ok);
        metrics.kafka_up.set(ok as i64);
        match (&result, was_ok) {
            (Err(e), _) if e.starts_with("fatal") => return e.clone(),
            (Err(e), Some(true) | None) => tracing::warn!(error = %e, "Kafka not reachable"),
            (Ok(()), Some(false) | None) => tracing::info!("Kafka reachable"),
            _ => {}
        }
        was_ok = Some(ok);
        tokio::time::sleep(Duration::from_secs(if ok { 5 } else { 2 })).await;
    }
}
