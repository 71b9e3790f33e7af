//! Forwarding one MQTT message: build its record (pure, in sck-core), produce it until Kafka
//! acknowledges it, then PUBACK it. The order of those two steps is the bridge's whole promise:
//! a message the broker forgets is a message Kafka has.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rumqttc::{AsyncClient, Publish};
use sck_core::backoff::Backoff;
use sck_core::envelope::{envelope, Destination, Envelope, Received};
use sck_core::runtime::backoff_sleep;
use tokio::sync::OwnedSemaphorePermit;

use crate::metrics::{Metrics, UNKNOWN_KIND};

pub struct Topics {
    pub readings: String,
    pub events: String,
    pub dead_letter: String,
}

impl Topics {
    fn name(&self, d: Destination) -> &str {
        match d {
            Destination::Readings => &self.readings,
            Destination::Events => &self.events,
            Destination::DeadLetter => &self.dead_letter,
        }
    }
}

pub struct Forwarder {
    pub producer: FutureProducer,
    pub client: AsyncClient,
    pub topics: Topics,
    pub bridge_id: String,
    pub max_payload_bytes: usize,
    pub metrics: Metrics,
    pub retry: Backoff,
}

impl Forwarder {
    /// Forwards `publish`, holding `permit` (one unit of MAX_IN_FLIGHT) until it is acknowledged.
    pub async fn forward(self: Arc<Self>, publish: Publish, permit: OwnedSemaphorePermit) {
        self.metrics.in_flight.inc();
        let rx = Received {
            received_at_ms: now_ms(),
            bridge_id: &self.bridge_id,
            max_payload_bytes: self.max_payload_bytes,
        };
        let env = envelope(&publish.topic, &publish.payload, rx);
        let kind = env.kind.map_or(UNKNOWN_KIND, |k| k.as_str());
        self.metrics.received.with_label_values(&[kind]).inc();
        if let Some(reason) = env.error {
            // The payload is not logged: it may be large, and it is in the dead-letter record.
            tracing::warn!(
                mqtt_topic = %publish.topic,
                reason,
                payload_bytes = publish.payload.len(),
                "dead-lettering message"
            );
        }

        self.produce_until_delivered(&env).await;

        match env.error {
            Some(reason) => self
                .metrics
                .dead_lettered
                .with_label_values(&[reason])
                .inc(),
            None => self.metrics.forwarded.with_label_values(&[kind]).inc(),
        }
        if let Err(e) = self.client.ack(&publish).await {
            // Only when the MQTT event loop is gone (shutting down): the broker redelivers.
            self.metrics.ack_errors.inc();
            tracing::warn!(error = %e, "could not queue PUBACK; the broker will redeliver");
        }
        self.metrics.in_flight.dec();
        drop(permit);
    }

    /// Produces the record until Kafka acknowledges it. librdkafka already retries within
    /// KAFKA_MESSAGE_TIMEOUT_MS; past that, this loop produces it again after a backoff, because
    /// the message must not be acknowledged to MQTT without being in Kafka.
    async fn produce_until_delivered(&self, env: &Envelope<'_>) {
        let topic = self.topics.name(env.destination);
        let mut attempt = 0;
        loop {
            let mut headers = OwnedHeaders::new_with_capacity(env.headers.len());
            for (k, v) in &env.headers {
                headers = headers.insert(Header {
                    key: k,
                    value: Some(v.as_str()),
                });
            }
            let mut record: FutureRecord<'_, str, [u8]> =
                FutureRecord::to(topic).payload(env.value).headers(headers);
            if let Some(key) = env.key {
                record = record.key(key);
            }
            let started = Instant::now();
            match self.producer.send(record, Timeout::Never).await {
                Ok(_) => {
                    self.metrics
                        .produce_seconds
                        .observe(started.elapsed().as_secs_f64());
                    return;
                }
                Err((e, _)) => {
                    self.metrics.produce_errors.inc();
                    tracing::warn!(error = %e, topic, attempt, "Kafka produce failed; retrying");
                    backoff_sleep(&self.retry, attempt).await;
                    attempt = attempt.saturating_add(1);
                }
            }
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
