//! Forwarding one MQTT message: build its record (pure, in sck-core), produce it until Kafka
//! acknowledges it, then hand it back to the intake loop, which sends the PUBACK. The order of
//! those steps is the bridge's whole promise: a message the broker forgets is a message Kafka has.

use std::sync::Arc;
use std::time::Instant;

use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rumqttc::v5::mqttbytes::v5::Publish;
use sck_core::backoff::Backoff;
use sck_core::envelope::{envelope, Destination, Envelope, Received};
use sck_runtime::backoff_sleep;
use sck_runtime::clock::now_ms;
use sck_runtime::kafka::owned_headers;
use sck_runtime::log_limit::LogLimiter;
use tokio::sync::{mpsc, OwnedSemaphorePermit};

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

/// A message Kafka has acknowledged, with its in-flight permit, waiting for its PUBACK.
pub type Delivered = (Publish, OwnedSemaphorePermit);

pub struct Forwarder {
    pub producer: FutureProducer,
    /// To the intake loop, which owns the MQTT event loop and so sends the PUBACKs.
    pub delivered: mpsc::UnboundedSender<Delivered>,
    pub topics: Topics,
    pub bridge_id: String,
    pub max_payload_bytes: usize,
    pub metrics: Metrics,
    pub retry: Backoff,
    /// During an outage every in-flight record fails at once: one warning per interval is enough.
    pub produce_warnings: LogLimiter,
}

impl Forwarder {
    /// Forwards `publish`; `permit` (one unit of MAX_IN_FLIGHT) is held until the PUBACK is out.
    pub async fn forward(self: Arc<Self>, mut publish: Publish, permit: OwnedSemaphorePermit) {
        let rx = Received {
            received_at_ms: now_ms(),
            bridge_id: &self.bridge_id,
            max_payload_bytes: self.max_payload_bytes,
        };
        // MQTT topics are UTF-8 by protocol; anything else is routed (dead-lettered) lossily.
        let topic = String::from_utf8_lossy(&publish.topic);
        let env = envelope(&topic, &publish.payload, rx);
        let kind = env.kind.map_or(UNKNOWN_KIND, |k| k.as_str());
        self.metrics.received.with_label_values(&[kind]).inc();
        if let Some(reason) = env.error {
            // The payload is not logged: it may be large, and it is in the dead-letter record.
            tracing::warn!(
                mqtt_topic = %topic,
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
        // The PUBACK needs only the packet id and QoS: free the payload now.
        publish.payload = Default::default();
        if self.delivered.send((publish, permit)).is_err() {
            // The intake loop has ended (shutdown past the drain timeout): no PUBACK, so the
            // broker redelivers this message.
            self.metrics.ack_errors.inc();
        }
    }

    /// Produces the record until Kafka acknowledges it. librdkafka already retries within
    /// KAFKA_MESSAGE_TIMEOUT_MS; past that, this loop produces it again after a backoff, because
    /// the message must not be acknowledged to MQTT without being in Kafka.
    async fn produce_until_delivered(&self, env: &Envelope<'_>) {
        let topic = self.topics.name(env.destination);
        let mut attempt = 0;
        loop {
            let mut record: FutureRecord<'_, str, [u8]> = FutureRecord::to(topic)
                .payload(env.value)
                .headers(owned_headers(&env.headers));
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
                    if let Some(suppressed) = self.produce_warnings.allow() {
                        tracing::warn!(error = %e, topic, attempt, suppressed, "Kafka produce failed; retrying");
                    }
                    backoff_sleep(&self.retry, attempt).await;
                    attempt = attempt.saturating_add(1);
                }
            }
        }
    }
}
