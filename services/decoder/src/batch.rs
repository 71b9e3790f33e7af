//! A batch: the rows decoded from a run of Kafka records, the offsets those records reach,
//! and the dead-letter records they caused. A batch is inserted whole, and only then are its
//! offsets committed.
//!
//! Pure bookkeeping (no I/O), so the bounds, the offset arithmetic and the row accounting are
//! unit-tested here.

use std::collections::BTreeMap;
use std::time::Instant;

use sck_core::decode::Outcome;
use sck_core::reading::{Decoded, ErrorKind, Format, Reading};
use sck_store::tables::{HelloRow, InfoRow, IngestErrorRow, InventoryRow};

use crate::config::BatchLimits;
use crate::platform::writer::Hello;

/// Where a record came from in Kafka (the record contract's type).
pub use sck_core::envelope::Source;

/// What the record carried besides its payload.
#[derive(Debug, Clone, Copy)]
pub struct RecordMeta<'a> {
    pub source: Source<'a>,
    pub mqtt_topic: &'a str,
    /// Bridge receive time, ms since the epoch (0 when the header is missing).
    pub received_at_ms: i64,
}

impl RecordMeta<'_> {
    /// Receive time as a ClickHouse `DateTime`.
    pub fn received_at(&self) -> u32 {
        u32::try_from(self.received_at_ms.div_euclid(1000)).unwrap_or(0)
    }
}

/// The readings of one message: `readings[start..end]` of the batch.
#[derive(Debug, Clone)]
pub struct ReadingsGroup {
    pub device_token: String,
    /// The platform's device id (0 without a registry).
    pub device_id: u32,
    pub received_at: u32,
    pub format: Format,
    pub end: usize,
}

/// A rejected record to be written to the dead-letter topic before the batch commits.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub reason: &'static str,
}

#[derive(Debug, Default)]
pub struct Batch {
    pub readings: Vec<Reading>,
    pub groups: Vec<ReadingsGroup>,
    pub errors: Vec<IngestErrorRow>,
    pub hellos: Vec<HelloRow>,
    pub infos: Vec<InfoRow>,
    pub inventory: Vec<InventoryRow>,
    /// Every hello message of the batch, registered device or not (an orphan device's hello
    /// is the onboarding handshake), for the platform writer.
    pub hello_events: Vec<Hello>,
    pub dead_letters: Vec<DeadLetter>,
    /// Next offset to commit, per (topic, partition).
    pub offsets: BTreeMap<(String, i32), i64>,
    /// Bridge receive times (ms) of the messages that produced rows, for end-to-end latency.
    pub received_ms: Vec<i64>,
    pub messages: usize,
    pub bytes: usize,
    pub started: Option<Instant>,
}

impl Batch {
    pub fn rows(&self) -> usize {
        self.readings.len()
            + self.errors.len()
            + self.hellos.len()
            + self.infos.len()
            + self.inventory.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages == 0
    }

    /// Full: insert now (rows or bytes bound reached).
    pub fn is_full(&self, limits: &BatchLimits) -> bool {
        self.rows() >= limits.max_rows || self.bytes >= limits.max_bytes
    }

    /// When the age bound falls due, if the batch has anything.
    pub fn deadline(&self, limits: &BatchLimits) -> Option<Instant> {
        self.started.map(|s| s + limits.max_age)
    }

    /// Accounts for a record that was consumed (whatever it produced): its offset becomes
    /// committable with this batch.
    fn consumed(&mut self, source: Source<'_>, payload_len: usize) {
        self.started.get_or_insert_with(Instant::now);
        self.messages += 1;
        self.bytes += payload_len + 64;
        let next = source.offset + 1;
        match self
            .offsets
            .get_mut(&(source.topic.to_string(), source.partition))
        {
            Some(o) => *o = (*o).max(next),
            None => {
                self.offsets
                    .insert((source.topic.to_string(), source.partition), next);
            }
        }
    }

    /// A record that only moves the offset (e.g. the decoder's own dead-letter records).
    pub fn add_skipped(&mut self, source: Source<'_>) {
        self.consumed(source, 0);
    }

    /// Adds a decoded record of device `device_id`. Returns true when it must be dead-lettered
    /// (it has problems).
    pub fn add(
        &mut self,
        meta: &RecordMeta<'_>,
        outcome: &Outcome<'_>,
        decoded: &Decoded,
        payload: &[u8],
        device_id: u32,
    ) -> bool {
        self.consumed(meta.source, payload.len());
        let received_at = meta.received_at();
        let device_token = || outcome.token().to_string();
        let json = || String::from_utf8_lossy(payload).into_owned();
        match *outcome {
            Outcome::Readings { token, format } if !decoded.readings.is_empty() => {
                self.readings.extend_from_slice(&decoded.readings);
                self.groups.push(ReadingsGroup {
                    device_token: token.to_string(),
                    device_id,
                    received_at,
                    format,
                    end: self.readings.len(),
                });
            }
            Outcome::Readings { .. } | Outcome::Rejected { .. } => {}
            Outcome::Hello { .. } => self.hellos.push(HelloRow {
                device_token: device_token(),
                last_seen: received_at,
            }),
            Outcome::Info { .. } => self.infos.push(InfoRow {
                device_token: device_token(),
                received_at,
                info: json(),
            }),
            Outcome::Inventory => self.inventory.push(InventoryRow {
                received_at,
                report: json(),
                kafka_partition: meta.source.partition as u32,
                kafka_offset: meta.source.offset as u64,
            }),
        }
        for (i, p) in decoded.problems.iter().enumerate() {
            self.add_error(
                meta,
                outcome.token(),
                p.kind.as_str(),
                &p.message,
                payload,
                i,
            );
        }
        if meta.received_at_ms > 0 {
            self.received_ms.push(meta.received_at_ms);
        }
        !decoded.problems.is_empty()
    }

    /// A record whose token has no device, or could not be looked up (`kind` says which):
    /// not decoded, one `ingest_errors` row keeping the whole payload for a replay.
    pub fn add_unresolved(
        &mut self,
        meta: &RecordMeta<'_>,
        token: &str,
        kind: ErrorKind,
        payload: &[u8],
    ) {
        self.consumed(meta.source, payload.len());
        let message = match kind {
            ErrorKind::UnknownDevice => "no platform device has this token",
            _ => "the device registry could not be asked about this token",
        };
        self.add_error(meta, token, kind.as_str(), message, payload, 0);
        if meta.received_at_ms > 0 {
            self.received_ms.push(meta.received_at_ms);
        }
    }

    /// Adds one `ingest_errors` row.
    pub fn add_error(
        &mut self,
        meta: &RecordMeta<'_>,
        token: &str,
        kind: &str,
        message: &str,
        payload: &[u8],
        index: usize,
    ) {
        self.errors.push(IngestErrorRow {
            received_at: meta.received_at(),
            mqtt_topic: meta.mqtt_topic.to_string(),
            device_token: token.to_string(),
            error_kind: kind.to_string(),
            error_message: message.to_string(),
            payload: payload.to_vec(),
            kafka_topic: meta.source.topic.to_string(),
            kafka_partition: meta.source.partition as u32,
            kafka_offset: meta.source.offset as u64,
            error_index: index as u32,
        });
    }

    /// A record consumed from the dead-letter topic that the bridge wrote: one error row.
    pub fn add_bridge_dead_letter(
        &mut self,
        meta: &RecordMeta<'_>,
        token: &str,
        reason: &str,
        payload: &[u8],
    ) {
        self.consumed(meta.source, payload.len());
        self.add_error(
            meta,
            token,
            reason,
            "dead-lettered by sck-bridge",
            payload,
            0,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sck_core::reading::Problem;
    use std::time::Duration;

    const LIMITS: BatchLimits = BatchLimits {
        max_rows: 5,
        max_bytes: 4096,
        max_age: Duration::from_millis(1000),
    };

    fn meta(partition: i32, offset: i64) -> RecordMeta<'static> {
        RecordMeta {
            source: Source {
                topic: "sck.readings",
                partition,
                offset,
            },
            mqtt_topic: "device/sck/tok/readings/raw",
            received_at_ms: 1_700_000_000_999,
        }
    }

    fn reading(id: u32) -> Reading {
        Reading {
            sensor_id: id,
            recorded_at: 1_600_000_000,
            value: 1.5,
        }
    }

    #[test]
    fn readings_rows_offsets_and_bounds() {
        let mut b = Batch::default();
        assert!(b.is_empty() && b.deadline(&LIMITS).is_none());
        let out = Decoded {
            readings: vec![reading(1), reading(2)],
            problems: vec![],
            dropped_bytes: 0,
        };
        let o = Outcome::Readings {
            token: "tok",
            format: Format::Raw,
        };
        assert!(!b.add(&meta(0, 10), &o, &out, b"{...}", 7));
        assert!(!b.add(&meta(0, 11), &o, &out, b"{...}", 7));
        assert!(!b.is_full(&LIMITS));
        assert!(!b.add(&meta(3, 7), &o, &out, b"{...}", 8));
        assert!(b.is_full(&LIMITS), "6 rows >= 5");
        assert_eq!(b.groups.len(), 3);
        assert_eq!(b.groups[1].end, 4);
        assert_eq!(b.groups[0].received_at, 1_700_000_000);
        assert_eq!((b.groups[0].device_id, b.groups[2].device_id), (7, 8));
        assert_eq!(
            b.offsets.into_iter().collect::<Vec<_>>(),
            vec![
                (("sck.readings".to_string(), 0), 12),
                (("sck.readings".to_string(), 3), 8)
            ]
        );
        assert_eq!(b.received_ms.len(), 3);
    }

    #[test]
    fn problems_become_error_rows_and_ask_for_a_dead_letter() {
        let mut b = Batch::default();
        let out = Decoded {
            readings: vec![reading(1)],
            problems: vec![
                Problem::new(ErrorKind::InvalidSensorId, "sensor id -1"),
                Problem::new(ErrorKind::InvalidValue, "NaN"),
            ],
            dropped_bytes: 0,
        };
        let o = Outcome::Readings {
            token: "tok",
            format: Format::Json,
        };
        assert!(b.add(&meta(1, 5), &o, &out, b"payload", 0));
        assert_eq!(b.readings.len(), 1);
        assert_eq!(b.errors.len(), 2);
        assert_eq!(b.errors[1].error_kind, "invalid_value");
        assert_eq!(b.errors[1].error_index, 1);
        assert_eq!(b.errors[0].payload, b"payload");
        assert_eq!(b.errors[0].device_token, "tok");
        assert_eq!(b.errors[0].kafka_offset, 5);
    }

    #[test]
    fn device_events_become_their_tables_rows() {
        let mut b = Batch::default();
        let none = Decoded::default();
        b.add(
            &meta(0, 1),
            &Outcome::Hello { token: "tok" },
            &none,
            b"hi",
            1,
        );
        b.add(
            &meta(0, 2),
            &Outcome::Info { token: "tok" },
            &none,
            b"{\"hw\":1}",
            1,
        );
        b.add(
            &meta(2, 3),
            &Outcome::Inventory,
            &none,
            b"{\"report\":2}",
            0,
        );
        assert_eq!(
            b.hellos,
            [HelloRow {
                device_token: "tok".into(),
                last_seen: 1_700_000_000
            }]
        );
        assert_eq!(
            b.infos,
            [InfoRow {
                device_token: "tok".into(),
                received_at: 1_700_000_000,
                info: "{\"hw\":1}".into()
            }]
        );
        assert_eq!(
            b.inventory,
            [InventoryRow {
                received_at: 1_700_000_000,
                report: "{\"report\":2}".into(),
                kafka_partition: 2,
                kafka_offset: 3
            }]
        );
        assert_eq!(b.rows(), 3);
        assert_eq!(b.offsets[&("sck.readings".to_string(), 2)], 4);
    }

    #[test]
    fn bytes_bound_and_skipped_records() {
        let mut b = Batch::default();
        let big = vec![b'x'; 5000];
        b.add(
            &meta(0, 1),
            &Outcome::Hello { token: "tok" },
            &Decoded::default(),
            &big,
            0,
        );
        assert!(b.is_full(&LIMITS));
        let mut b = Batch::default();
        b.add_skipped(Source {
            topic: "sck.dead-letter",
            partition: 2,
            offset: 41,
        });
        assert_eq!(b.rows(), 0);
        assert!(!b.is_empty());
        assert_eq!(b.offsets[&("sck.dead-letter".to_string(), 2)], 42);
    }

    #[test]
    fn unresolved_records_keep_their_payload_and_move_the_offset() {
        let mut b = Batch::default();
        b.add_unresolved(&meta(1, 9), "tok", ErrorKind::UnknownDevice, b"{t:1,1:2}");
        b.add_unresolved(&meta(1, 10), "tok", ErrorKind::RegistryUnavailable, b"hi");
        assert!(b.readings.is_empty() && b.groups.is_empty() && b.dead_letters.is_empty());
        let kinds: Vec<(&str, &[u8], u32)> = b
            .errors
            .iter()
            .map(|e| (e.error_kind.as_str(), e.payload.as_slice(), e.error_index))
            .collect();
        assert_eq!(
            kinds,
            [
                ("unknown_device", &b"{t:1,1:2}"[..], 0),
                ("registry_unavailable", &b"hi"[..], 0)
            ]
        );
        assert_eq!(b.errors[0].device_token, "tok");
        assert_eq!(b.errors[1].kafka_offset, 10);
        assert_eq!(b.offsets[&("sck.readings".to_string(), 1)], 11);
        assert_eq!((b.messages, b.received_ms.len()), (2, 2));
    }
}
