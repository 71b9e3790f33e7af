//! The forwarder's dead letters: records it could not publish (after FORWARD_MAX_ATTEMPTS, or
//! because their device's queue was full) go to the dead-letter topic, the original record with
//! `error` = the reason, `error_message`, `source_*` and `dead_lettered_by=sck-forwarder`
//! (`sck_core::envelope::dead_letter_headers_by`; the decoder skips them there). A dead letter is
//! produced again until Kafka has it; only then is its offset done.

use std::time::Duration;

use anyhow::Context;
use rdkafka::producer::{FutureProducer, FutureRecord};
use sck_core::backoff::Backoff;
use sck_runtime::backoff_sleep;
use sck_runtime::kafka::owned_headers;
use sck_runtime::log_limit::LogLimiter;

use super::client_config;
use crate::config::Config;
use crate::metrics::Metrics;

pub fn producer(cfg: &Config) -> anyhow::Result<FutureProducer> {
    let mut c = client_config(cfg, &cfg.client_id);
    c.set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5");
    c.create().context("creating the dead-letter producer")
}

pub struct DeadLetterWriter {
    pub producer: FutureProducer,
    pub topic: String,
    pub metrics: Metrics,
    pub retry: Backoff,
    pub warnings: LogLimiter,
}

/// A dead-letter record, headers complete.
pub struct Record {
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub reason: &'static str,
}

impl DeadLetterWriter {
    /// Produces `r` until Kafka acknowledges it.
    pub async fn write(&self, r: &Record) {
        let mut attempt = 0;
        loop {
            let mut record = FutureRecord::<[u8], [u8]>::to(&self.topic)
                .payload(&r.payload)
                .headers(owned_headers(&r.headers));
            if let Some(k) = &r.key {
                record = record.key(k);
            }
            match self.producer.send(record, Duration::from_secs(30)).await {
                Ok(_) => {
                    self.metrics
                        .dead_lettered
                        .with_label_values(&[r.reason])
                        .inc();
                    return;
                }
                Err((e, _)) => {
                    self.metrics.dead_letter_failures.inc();
                    if let Some(suppressed) = self.warnings.allow() {
                        tracing::warn!(
                            error = %e, attempt, suppressed, topic = %self.topic,
                            "dead-letter produce failed; retrying (its offset stays uncommitted)"
                        );
                    }
                }
            }
            backoff_sleep(&self.retry, attempt).await;
            attempt = attempt.saturating_add(1);
        }
    }
}
