//! The Kafka record contract between sck-bridge (writer) and sck-decoder (reader).
//!
//! One MQTT message becomes one Kafka record: key = device token (per-device ordering), value =
//! the MQTT payload byte for byte, and headers that carry what the payload does not: the MQTT
//! topic (the decoder derives the format from it), when the bridge received it, and which bridge.
//! Messages that cannot be forwarded as data go to the dead-letter topic with an `error` header.
//!
//! Both sides live here: [`envelope`] writes a record (the bridge, the test kit, the Kafka
//! ceiling), [`RecordHeaders::read`] reads one (the decoder, the forwarder), and
//! [`dead_letter_headers`] / [`dead_letter_headers_by`] write the headers of the dead letters of
//! the decoder and of the forwarder.

use crate::topic::{self, Kind};

pub const HEADER_MQTT_TOPIC: &str = "mqtt_topic";
pub const HEADER_RECEIVED_AT_MS: &str = "received_at_ms";
pub const HEADER_BRIDGE_ID: &str = "bridge_id";
/// Dead-letter records only: the reason (`too_large`, `unknown_topic`, `empty_token`, …).
pub const HEADER_ERROR: &str = "error";
/// Dead-letter records of `too_large` payloads: the original size in bytes (the value is cut).
pub const HEADER_PAYLOAD_BYTES: &str = "payload_bytes";

/// The decoder's dead letters: the human-readable reason of the `error` kind.
pub const HEADER_ERROR_MESSAGE: &str = "error_message";
/// The decoder's dead letters: where the record was consumed from.
pub const HEADER_SOURCE_TOPIC: &str = "source_topic";
pub const HEADER_SOURCE_PARTITION: &str = "source_partition";
pub const HEADER_SOURCE_OFFSET: &str = "source_offset";
/// The decoder's and the forwarder's dead letters are marked, so a decoder reading the
/// dead-letter topic skips them (only the bridge's become `ingest_errors` rows there).
pub const HEADER_DEAD_LETTERED_BY: &str = "dead_lettered_by";
pub const DEAD_LETTERED_BY_DECODER: &str = "sck-decoder";
/// sck-forwarder's dead letters: stored readings it could not publish to MQTT.
pub const DEAD_LETTERED_BY_FORWARDER: &str = "sck-forwarder";

/// The dead-letter reason for a payload over the size limit.
pub const REASON_TOO_LARGE: &str = "too_large";

/// Every reason the bridge dead-letters with; anything else found in an `error` header is
/// reported as `other` (keeps metric label values bounded).
pub const BRIDGE_REASONS: [&str; 3] = [REASON_TOO_LARGE, "unknown_topic", "empty_token"];

/// A dead-letter reason as a bounded label value.
pub fn bridge_reason(header: Option<&str>) -> &'static str {
    match header {
        Some(h) => BRIDGE_REASONS
            .iter()
            .find(|r| **r == h)
            .copied()
            .unwrap_or("other"),
        None => "other",
    }
}

/// Which of the three Kafka topics a record goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    Readings,
    Events,
    DeadLetter,
}

/// A Kafka record ready to be produced, borrowing from the MQTT message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope<'a> {
    pub destination: Destination,
    /// The routed kind, when the topic could be routed (a `too_large` payload may still have one).
    pub kind: Option<Kind>,
    pub key: Option<&'a str>,
    pub value: &'a [u8],
    /// Set for dead-letter records.
    pub error: Option<&'static str>,
    pub headers: Vec<(&'static str, String)>,
}

/// What the bridge knows about a message besides its topic and payload.
#[derive(Debug, Clone, Copy)]
pub struct Received<'a> {
    pub received_at_ms: i64,
    pub bridge_id: &'a str,
    /// Payloads longer than this are dead-lettered as `too_large`, cut to this length.
    pub max_payload_bytes: usize,
}

/// Builds the record for one MQTT message. Pure: the bridge's only decision about a message.
pub fn envelope<'a>(topic: &'a str, payload: &'a [u8], rx: Received<'_>) -> Envelope<'a> {
    let routed = topic::route(topic);
    let kind = routed.ok().map(|r| r.kind);
    let key = routed.ok().and_then(|r| r.token);
    let mut headers = vec![
        (HEADER_MQTT_TOPIC, topic.to_string()),
        (HEADER_RECEIVED_AT_MS, rx.received_at_ms.to_string()),
        (HEADER_BRIDGE_ID, rx.bridge_id.to_string()),
    ];
    let (destination, error, value) = if payload.len() > rx.max_payload_bytes {
        headers.push((HEADER_PAYLOAD_BYTES, payload.len().to_string()));
        (
            Destination::DeadLetter,
            Some(REASON_TOO_LARGE),
            &payload[..rx.max_payload_bytes],
        )
    } else {
        match routed {
            Ok(r) if r.kind.is_reading() => (Destination::Readings, None, payload),
            Ok(_) => (Destination::Events, None, payload),
            Err(e) => (Destination::DeadLetter, Some(e.reason()), payload),
        }
    };
    if let Some(reason) = error {
        headers.push((HEADER_ERROR, reason.to_string()));
    }
    Envelope {
        destination,
        kind,
        key,
        value,
        error,
        headers,
    }
}

/// What a consumed record's headers say, read once at the Kafka edge. Unknown headers are
/// ignored; a header that is not UTF-8 (or a `received_at_ms` that is not a number) reads as
/// absent.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeaders<'a> {
    pub mqtt_topic: Option<&'a str>,
    pub received_at_ms: Option<i64>,
    /// The dead-letter reason (`error`).
    pub error: Option<&'a str>,
    /// True on the dead letters of a pipeline service (the decoder's own, and the forwarder's):
    /// records the decoder skips on the dead-letter topic (they are not the bridge's).
    pub dead_lettered_by_decoder: bool,
}

impl<'a> RecordHeaders<'a> {
    pub fn read<I>(headers: I) -> Self
    where
        I: IntoIterator<Item = (&'a str, Option<&'a [u8]>)>,
    {
        let mut h = RecordHeaders::default();
        for (k, v) in headers {
            let v = v.and_then(|v| std::str::from_utf8(v).ok());
            match k {
                HEADER_MQTT_TOPIC => h.mqtt_topic = v,
                HEADER_RECEIVED_AT_MS => h.received_at_ms = v.and_then(|v| v.parse().ok()),
                HEADER_ERROR => h.error = v,
                HEADER_DEAD_LETTERED_BY => {
                    h.dead_lettered_by_decoder = matches!(
                        v,
                        Some(DEAD_LETTERED_BY_DECODER | DEAD_LETTERED_BY_FORWARDER)
                    )
                }
                _ => {}
            }
        }
        h
    }
}

/// Where a consumed record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
}

/// The headers of a record the decoder dead-letters: the original ones, then why (`error` = the
/// problem kind, `error_message`), where it was consumed from (`source_*`) and who dead-lettered
/// it (`dead_lettered_by`).
pub fn dead_letter_headers<'h, I>(
    original: I,
    error: &str,
    error_message: &str,
    source: Source<'_>,
) -> Vec<(String, Vec<u8>)>
where
    I: IntoIterator<Item = (&'h str, Option<&'h [u8]>)>,
{
    dead_letter_headers_by(
        original,
        error,
        error_message,
        source,
        DEAD_LETTERED_BY_DECODER,
    )
}

/// [`dead_letter_headers`] of another service: `by` is its `dead_lettered_by` value
/// ([`DEAD_LETTERED_BY_DECODER`], [`DEAD_LETTERED_BY_FORWARDER`]).
pub fn dead_letter_headers_by<'h, I>(
    original: I,
    error: &str,
    error_message: &str,
    source: Source<'_>,
    by: &str,
) -> Vec<(String, Vec<u8>)>
where
    I: IntoIterator<Item = (&'h str, Option<&'h [u8]>)>,
{
    let mut headers: Vec<(String, Vec<u8>)> = original
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.unwrap_or_default().to_vec()))
        .collect();
    for (k, v) in [
        (HEADER_ERROR, error.to_string()),
        (HEADER_ERROR_MESSAGE, error_message.to_string()),
        (HEADER_SOURCE_TOPIC, source.topic.to_string()),
        (HEADER_SOURCE_PARTITION, source.partition.to_string()),
        (HEADER_SOURCE_OFFSET, source.offset.to_string()),
        (HEADER_DEAD_LETTERED_BY, by.to_string()),
    ] {
        headers.push((k.to_string(), v.into_bytes()));
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    const RX: Received<'static> = Received {
        received_at_ms: 1_700_000_000_123,
        bridge_id: "sck-bridge-pod-1",
        max_payload_bytes: 16,
    };

    fn header_of<'e>(e: &'e Envelope<'_>, name: &str) -> Option<&'e str> {
        e.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn readings_go_to_the_readings_topic_keyed_by_token_payload_unchanged() {
        for topic in [
            "device/sck/tok1/readings",
            "bridge/device/sck/tok1/readings/raw",
        ] {
            let payload = b"{t:x,1:2}";
            let e = envelope(topic, payload, RX);
            assert_eq!(e.destination, Destination::Readings);
            assert_eq!(e.key, Some("tok1"));
            assert_eq!(e.value, payload);
            assert_eq!(e.error, None);
            assert_eq!(header_of(&e, HEADER_MQTT_TOPIC), Some(topic));
            assert_eq!(header_of(&e, HEADER_RECEIVED_AT_MS), Some("1700000000123"));
            assert_eq!(header_of(&e, HEADER_BRIDGE_ID), Some("sck-bridge-pod-1"));
            assert_eq!(header_of(&e, HEADER_ERROR), None);
        }
    }

    #[test]
    fn bridge_reasons_are_bounded_and_match_the_router() {
        assert!(BRIDGE_REASONS.contains(&crate::topic::RouteError::UnknownTopic.reason()));
        assert!(BRIDGE_REASONS.contains(&crate::topic::RouteError::EmptyToken.reason()));
        assert_eq!(bridge_reason(Some("too_large")), "too_large");
        assert_eq!(bridge_reason(Some("anything; else")), "other");
        assert_eq!(bridge_reason(None), "other");
    }

    #[test]
    fn hello_info_inventory_are_events() {
        let e = envelope("device/sck/tok2/hello", b"hi", RX);
        assert_eq!(
            (e.destination, e.key, e.kind),
            (Destination::Events, Some("tok2"), Some(Kind::Hello))
        );
        let e = envelope("device/sck/tok2/info", b"{}", RX);
        assert_eq!(
            (e.destination, e.kind),
            (Destination::Events, Some(Kind::Info))
        );
        let e = envelope("device/inventory", b"{}", RX);
        assert_eq!(
            (e.destination, e.key, e.kind),
            (Destination::Events, None, Some(Kind::Inventory))
        );
    }

    #[test]
    fn unroutable_topics_are_dead_lettered_with_a_reason() {
        let e = envelope("device/sck//readings", b"x", RX);
        assert_eq!(e.destination, Destination::DeadLetter);
        assert_eq!(e.error, Some("empty_token"));
        assert_eq!(header_of(&e, HEADER_ERROR), Some("empty_token"));
        assert_eq!(e.value, b"x");

        let e = envelope("somewhere/else", b"y", RX);
        assert_eq!(
            (e.destination, e.error, e.key),
            (Destination::DeadLetter, Some("unknown_topic"), None)
        );
    }

    #[test]
    fn payload_at_the_limit_passes_and_over_it_is_dead_lettered_cut() {
        let at = [b'a'; 16];
        assert_eq!(
            envelope("device/sck/t/readings", &at, RX).destination,
            Destination::Readings
        );

        let over = [b'b'; 17];
        let e = envelope("device/sck/t/readings", &over, RX);
        assert_eq!(e.destination, Destination::DeadLetter);
        assert_eq!(e.error, Some(REASON_TOO_LARGE));
        assert_eq!(e.value.len(), 16);
        assert_eq!(e.key, Some("t"));
        assert_eq!(header_of(&e, HEADER_PAYLOAD_BYTES), Some("17"));
    }

    #[test]
    fn the_decoder_reads_what_the_bridge_writes() {
        let e = envelope("bridge/device/sck/tok/readings/raw", b"{}", RX);
        let hs: Vec<(&str, Option<&[u8]>)> = e
            .headers
            .iter()
            .map(|(k, v)| (*k, Some(v.as_bytes())))
            .collect();
        let h = RecordHeaders::read(hs.iter().copied());
        assert_eq!(
            h,
            RecordHeaders {
                mqtt_topic: Some("bridge/device/sck/tok/readings/raw"),
                received_at_ms: Some(RX.received_at_ms),
                error: None,
                dead_lettered_by_decoder: false,
            }
        );
        assert_eq!(e.key, Some("tok"));
        let odd = [
            (HEADER_RECEIVED_AT_MS, Some(&b"soon"[..])),
            (HEADER_MQTT_TOPIC, Some(&b"\xff"[..])),
            (HEADER_ERROR, Some(&b"too_large"[..])),
            ("other", None),
        ];
        let h = RecordHeaders::read(odd);
        assert_eq!((h.mqtt_topic, h.received_at_ms), (None, None));
        assert_eq!(h.error, Some("too_large"));
    }

    #[test]
    fn dead_letter_headers_keep_the_original_and_say_why_where_and_who() {
        let original = [
            (HEADER_MQTT_TOPIC, Some(&b"device/sck/t/readings"[..])),
            ("n", None),
        ];
        let source = Source {
            topic: "sck.readings",
            partition: 3,
            offset: 42,
        };
        let hs = dead_letter_headers(original, "malformed_json", "at byte 0", source);
        let text: Vec<(&str, &str)> = hs
            .iter()
            .map(|(k, v)| (k.as_str(), std::str::from_utf8(v).unwrap_or("?")))
            .collect();
        assert_eq!(
            text,
            vec![
                ("mqtt_topic", "device/sck/t/readings"),
                ("n", ""),
                ("error", "malformed_json"),
                ("error_message", "at byte 0"),
                ("source_topic", "sck.readings"),
                ("source_partition", "3"),
                ("source_offset", "42"),
                ("dead_lettered_by", "sck-decoder"),
            ]
        );
        let back = RecordHeaders::read(hs.iter().map(|(k, v)| (k.as_str(), Some(v.as_slice()))));
        assert!(back.dead_lettered_by_decoder);
        assert_eq!(back.error, Some("malformed_json"));
    }

    #[test]
    fn the_forwarders_dead_letters_say_so_and_the_decoder_skips_them() {
        let source = Source {
            topic: "sck.readings",
            partition: 0,
            offset: 7,
        };
        let hs = dead_letter_headers_by(
            [(HEADER_MQTT_TOPIC, Some(&b"device/sck/t/readings"[..]))],
            "forward_failed",
            "refused: not_authorized",
            source,
            DEAD_LETTERED_BY_FORWARDER,
        );
        let by = hs
            .iter()
            .find(|(k, _)| k == HEADER_DEAD_LETTERED_BY)
            .map(|(_, v)| v.as_slice());
        assert_eq!(by, Some(&b"sck-forwarder"[..]));
        let back = RecordHeaders::read(hs.iter().map(|(k, v)| (k.as_str(), Some(v.as_slice()))));
        assert!(
            back.dead_lettered_by_decoder,
            "skipped like the decoder's own"
        );
        assert_eq!(back.error, Some("forward_failed"));
        let other = RecordHeaders::read([(HEADER_DEAD_LETTERED_BY, Some(&b"someone"[..]))]);
        assert!(
            !other.dead_lettered_by_decoder,
            "only the pipeline's services"
        );
    }
}
