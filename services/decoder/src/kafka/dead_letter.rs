//! The dead-letter side: the producer (acks=all, idempotent, like the bridge's) and the writer
//! that produces a batch's dead-letter records before the batch's offsets may be committed.
//! A record is produced again until Kafka has it: quickly (with backoff) after a retryable
//! failure, every [`PERMANENT_RETRY`] after a permanent one ([`super::produce_error`]).

use std::time::Duration;

use anyhow::Context;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use sck_core::backoff::Backoff;
use sck_runtime::backoff_sleep;
use sck_runtime::kafka::owned_headers;
use sck_runtime::log_limit::LogLimiter;

use super::client_config;
use super::produce_error::{FailureClass, ProduceError};
use crate::batch::DeadLetter;
use crate::config::Config;
use crate::metrics::Metrics;

/// How often a dead letter that failed permanently is tried again.
pub const PERMANENT_RETRY: Duration = Duration::from_secs(30);

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
                let class = e.class();
                self.metrics
                    .dead_letter_failures
                    .with_label_values(&[class.as_str()])
                    .inc();
                if let Some(suppressed) = self.warnings.allow() {
                    match class {
                        FailureClass::Retryable => tracing::warn!(
                            error = %e, attempt, suppressed, "dead-letter produce failed; retrying"
                        ),
                        FailureClass::Permanent => tracing::error!(
                            error = %e, topic = %self.topic, attempt, suppressed,
                            retry_every_secs = PERMANENT_RETRY.as_secs(),
                            "dead-letter produce fails until the topic, its limits or the \
                             permissions are fixed; retrying, nothing is committed past it"
                        ),
                    }
                }
                match class {
                    FailureClass::Retryable => backoff_sleep(&self.retry, attempt).await,
                    FailureClass::Permanent => tokio::time::sleep(PERMANENT_RETRY).await,
                }
                attempt += 1;
                result = deliver(self.enqueue(r)).await;
            }
            self.metrics
                .dead_lettered
                .with_label_values(&[r.reason])
                .inc();
        }
    }

    fn enqueue(&self, r: &DeadLetter) -> Result<DeliveryFuture, ProduceError> {
        // The headers come whole from sck_core::envelope::dead_letter_headers.
        let mut record = FutureRecord::<[u8], [u8]>::to(&self.topic)
            .payload(&r.payload)
            .headers(owned_headers(&r.headers));
        if let Some(k) = &r.key {
            record = record.key(k);
        }
        self.producer.send_result(record).map_err(|(e, _)| e.into())
    }
}

async fn deliver(pending: Result<DeliveryFuture, ProduceError>) -> Result<(), ProduceError> {
    match pending?.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, _))) => Err(e.into()),
        Err(_) => Err(ProduceError::ReportLost),
    }
}
