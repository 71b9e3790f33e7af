//! What one consumed Kafka record adds to the batch: its decoded rows and error rows, a dead
//! letter when it has problems, one error row when it is the bridge's dead letter, or only its
//! offset when it is the decoder's own dead letter. Counts it in the metrics by kind.
//!
//! The device a record's token belongs to is resolved before (by the shell, which may ask the
//! registry: [`RecordDecoder::device_token`] says which records need it) and passed in: a token
//! with no device (or that could not be looked up) is not decoded, its record becomes one
//! `ingest_errors` row with the whole payload.

use std::sync::Arc;

use rdkafka::message::{BorrowedMessage, Headers, Message};
use sck_core::decode::{Decoder, Outcome};
use sck_core::envelope::{bridge_reason, dead_letter_headers, RecordHeaders, Source};
use sck_core::reading::{Decoded, ErrorKind, Format, Limits};
use sck_core::registry::SensorKeys;
use sck_core::topic;
use sck_runtime::clock::now_secs;

use crate::batch::{Batch, DeadLetter, RecordMeta};
use crate::metrics::{Metrics, KIND_DEAD_LETTER, KIND_UNKNOWN};
use crate::platform::writer::Hello;
use crate::platform::Resolved;

/// Decodes records into a batch, reusing its buffers from one record to the next.
pub struct RecordDecoder {
    metrics: Metrics,
    dlq_topic: String,
    max_future_secs: i64,
    decoder: Decoder,
    decoded: Decoded,
}

impl RecordDecoder {
    pub fn new(metrics: Metrics, dlq_topic: String, max_future_secs: i64) -> Self {
        RecordDecoder {
            metrics,
            dlq_topic,
            max_future_secs,
            decoder: Decoder::default(),
            decoded: Decoded::default(),
        }
    }

    /// The sensor catalogue's keys, for JSON readings that name a sensor by key.
    pub fn set_sensor_keys(&mut self, keys: Arc<SensorKeys>) {
        self.decoder.set_sensor_keys(keys);
    }

    /// The device token of a record that needs its device resolved (readings, hello, info),
    /// `None` for the others (dead letters, inventory, records that do not route).
    pub fn device_token<'m>(&self, m: &'m BorrowedMessage<'_>) -> Option<&'m str> {
        if m.topic() == self.dlq_topic {
            return None;
        }
        let mqtt_topic = RecordHeaders::read(header_pairs(m)).mqtt_topic?;
        topic::route(mqtt_topic).ok()?.token
    }

    /// Adds a record; `device` is its token's device, as resolved for [`Self::device_token`]
    /// (any device when that was `None`: such records have no readings).
    pub fn add(&mut self, batch: &mut Batch, m: &BorrowedMessage<'_>, device: Resolved) {
        let payload = m.payload().unwrap_or_default();
        let headers = RecordHeaders::read(header_pairs(m));
        let source = Source {
            topic: m.topic(),
            partition: m.partition(),
            offset: m.offset(),
        };
        let meta = RecordMeta {
            source,
            mqtt_topic: headers.mqtt_topic.unwrap_or(""),
            received_at_ms: headers
                .received_at_ms
                .or_else(|| m.timestamp().to_millis())
                .unwrap_or(0),
        };
        if m.topic() == self.dlq_topic {
            self.metrics
                .consumed
                .with_label_values(&[KIND_DEAD_LETTER])
                .inc();
            if headers.dead_lettered_by_decoder {
                batch.add_skipped(meta.source);
            } else {
                let token = m
                    .key()
                    .and_then(|k| std::str::from_utf8(k).ok())
                    .unwrap_or("");
                let reason = bridge_reason(headers.error);
                self.metrics.errors.with_label_values(&[reason]).inc();
                batch.add_bridge_dead_letter(&meta, token, reason, payload);
            }
            return;
        }
        if let Some(token) = hello_token(meta.mqtt_topic) {
            batch.hello_events.push(Hello {
                token: token.to_string(),
                received_at_ms: meta.received_at_ms,
            });
        }
        let device_id = match device {
            Resolved::Device(d) => d.id,
            Resolved::Unknown => {
                return self.unresolved(batch, &meta, ErrorKind::UnknownDevice, payload);
            }
            Resolved::Unavailable => {
                return self.unresolved(batch, &meta, ErrorKind::RegistryUnavailable, payload);
            }
        };
        let limits = Limits {
            now: now_secs(),
            max_future_secs: self.max_future_secs,
        };
        let outcome = self
            .decoder
            .decode(headers.mqtt_topic, payload, &limits, &mut self.decoded);
        let kind = match outcome {
            Outcome::Readings { format, .. } => match format {
                Format::Json => "readings",
                Format::Raw => "readings_raw",
            },
            Outcome::Hello { .. } => "hello",
            Outcome::Info { .. } => "info",
            Outcome::Inventory => "inventory",
            Outcome::Rejected { kind, .. } => kind.map_or(KIND_UNKNOWN, |k| k.as_str()),
        };
        self.metrics.consumed.with_label_values(&[kind]).inc();
        if self.decoded.dropped_bytes > 0 {
            self.metrics
                .dropped_bytes
                .with_label_values(&[kind])
                .inc_by(self.decoded.dropped_bytes as u64);
        }
        for p in &self.decoded.problems {
            self.metrics
                .errors
                .with_label_values(&[p.kind.as_str()])
                .inc();
        }
        if batch.add(&meta, &outcome, &self.decoded, payload, device_id) {
            let first = &self.decoded.problems[0];
            let headers =
                dead_letter_headers(header_pairs(m), first.kind.as_str(), &first.message, source);
            batch.dead_letters.push(DeadLetter {
                key: m.key().map(<[u8]>::to_vec),
                payload: payload.to_vec(),
                headers,
                reason: first.kind.as_str(),
            });
        }
    }
}

impl RecordDecoder {
    /// A record of a token without a (known) device: one error row, counted by its topic's kind.
    fn unresolved(
        &self,
        batch: &mut Batch,
        meta: &RecordMeta<'_>,
        kind: ErrorKind,
        payload: &[u8],
    ) {
        let (consumed_kind, token) = match topic::route(meta.mqtt_topic) {
            Ok(r) => (r.kind.as_str(), r.token.unwrap_or("")),
            Err(_) => (KIND_UNKNOWN, ""),
        };
        self.metrics
            .consumed
            .with_label_values(&[consumed_kind])
            .inc();
        self.metrics
            .errors
            .with_label_values(&[kind.as_str()])
            .inc();
        batch.add_unresolved(meta, token, kind, payload);
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

/// The token of a hello message's topic.
fn hello_token(mqtt_topic: &str) -> Option<&str> {
    match sck_core::topic::route(mqtt_topic) {
        Ok(sck_core::topic::Route {
            kind: sck_core::topic::Kind::Hello,
            token,
        }) => token,
        _ => None,
    }
}
