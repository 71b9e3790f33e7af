//! The dead-letter side: the producer (acks=all, idempotent, like the bridge's) and the writer
//! that produces a batch's dead-letter records before the batch's offsets may be committed.

use anyhow::Context;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use sck_core::backoff::Backoff;
use sck_runtime::backoff_sleep;
use sck_runtime::kafka::owned_headers;
use sck_runtime::log_limit::LogLimiter;

use super::client_config;
use crate::batch::DeadLetter;
use crate::config::Config;
use crate::metrics::Metrics;

pub fn producer(cfg: &Config) -> anyhow::Result<FutureProducer> {
    let mut c = client_config(cfg);
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
