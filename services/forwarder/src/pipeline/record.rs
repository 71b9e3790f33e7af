//! What one consumed readings record becomes: nothing to forward (not a forwarding device, or
//! no valid reading), or a [`Job`]: the device's forward topic and one JSON message per
//! timestamp, decoded with the decoder's own code and limits so what is forwarded is what is
//! stored. Counts it in `sck_forwarder_records_total` by outcome.

use std::sync::Arc;

use rdkafka::message::{BorrowedMessage, Headers, Message};
use sck_core::decode::{Decoder, Outcome};
use sck_core::envelope::RecordHeaders;
use sck_core::reading::{Decoded, Limits};
use sck_runtime::clock::now_secs;

use super::state::{Job, Original, RecordKey, State};
use crate::metrics::{
    Metrics, OUTCOME_FORWARDING, OUTCOME_NOT_FORWARDING, OUTCOME_NO_READINGS,
    OUTCOME_REGISTRY_UNAVAILABLE,
};
use crate::payload;
use crate::registry::{Decision, Registry};

pub struct Intake {
    pub registry: Arc<Registry>,
    pub metrics: Metrics,
    pub max_future_secs: i64,
    decoder: Decoder,
    decoded: Decoded,
}

impl Intake {
    pub fn new(registry: Arc<Registry>, metrics: Metrics, max_future_secs: i64) -> Self {
        Intake {
            registry,
            metrics,
            max_future_secs,
            decoder: Decoder::default(),
            decoded: Decoded::default(),
        }
    }

    /// Adds the record to `state` (as a job, or as done).
    pub async fn take(&mut self, state: &mut State, m: &BorrowedMessage<'_>) {
        let record = RecordKey {
            partition: m.partition(),
            offset: m.offset(),
        };
        let headers = RecordHeaders::read(header_pairs(m));
        // The bridge keys a readings record by its device token; the topic says it too.
        let token = m
            .key()
            .and_then(|k| std::str::from_utf8(k).ok())
            .or_else(|| {
                headers
                    .mqtt_topic
                    .and_then(|t| sck_core::topic::route(t).ok())
                    .and_then(|r| r.token)
            })
            .unwrap_or("");
        if token.is_empty() {
            return self.skip(state, record, OUTCOME_NOT_FORWARDING);
        }
        let target = match self.registry.lookup(token).await {
            Decision::Forward(t) => t,
            Decision::Unavailable => return self.skip(state, record, OUTCOME_REGISTRY_UNAVAILABLE),
            _ => return self.skip(state, record, OUTCOME_NOT_FORWARDING),
        };
        let payload = m.payload().unwrap_or_default();
        let limits = Limits {
            now: now_secs(),
            max_future_secs: self.max_future_secs,
        };
        let outcome = self
            .decoder
            .decode(headers.mqtt_topic, payload, &limits, &mut self.decoded);
        let messages = match outcome {
            Outcome::Readings { .. } => payload::messages(target.device_id, &self.decoded.readings),
            _ => Vec::new(),
        };
        if messages.is_empty() {
            return self.skip(state, record, OUTCOME_NO_READINGS);
        }
        self.metrics
            .records
            .with_label_values(&[OUTCOME_FORWARDING])
            .inc();
        state.add(Job {
            record,
            device_id: target.device_id,
            topic: target.topic,
            messages,
            original: Original {
                key: m.key().map(<[u8]>::to_vec),
                payload: payload.to_vec(),
                headers: header_pairs(m)
                    .map(|(k, v)| (k.to_string(), v.unwrap_or_default().to_vec()))
                    .collect(),
            },
            received_at_ms: headers
                .received_at_ms
                .or_else(|| m.timestamp().to_millis())
                .unwrap_or(0),
        });
    }

    fn skip(&self, state: &mut State, record: RecordKey, outcome: &str) {
        self.metrics.records.with_label_values(&[outcome]).inc();
        state.skip(record);
    }
}

/// A consumed record's headers as (name, value) pairs, the form the record contract reads.
fn header_pairs<'m>(
    m: &'m BorrowedMessage<'_>,
) -> impl Iterator<Item = (&'m str, Option<&'m [u8]>)> {
    m.headers()
        .into_iter()
        .flat_map(|hs| hs.iter().map(|h| (h.key, h.value)))
}
