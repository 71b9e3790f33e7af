//! Fuzz target `decode`: one Kafka record through the whole decode, as sck-decoder does it:
//! `sck_core::decode::Decoder::decode(mqtt_topic header, payload)`.
//!
//! The first input byte picks the record's `mqtt_topic` header, the rest is the payload:
//! bits 0-3 index [`TOPICS`] (every device topic, with and without the `bridge/` prefix, no
//! header, and two that do not route); 13-15 take the topic from the input instead, up to its
//! first newline (not UTF-8: no header, as `RecordHeaders` reads it). Bit 7 gives the decoder
//! the sensor keys `temp` = 55 and `hum` = 56. Seed files start with that byte.
//!
//! Besides no panic, it checks what the seeded stand-in (`crates/core/src/seeded.rs`) and the
//! `Decoder` docs promise:
//! - the outcome matches the topic's route (`sck_core::topic::route`): its kind, format and
//!   token; a record without a header or a route is rejected with that single problem;
//! - no silent loss: a readings message that yields neither a reading nor a problem holds none,
//!   as the oracle of its format says;
//! - a rejected record has exactly one problem of its kind and no reading; hello, info and
//!   inventory events have neither; every reading is storable;
//! - the decoder's scratch buffers carry nothing over: the same record decoded again by the
//!   same decoder into the used `Decoded` gives the same outcome and output.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use sck_core::decode::{Decoder, Outcome};
use sck_core::envelope::{RecordHeaders, HEADER_MQTT_TOPIC};
use sck_core::reading::{Decoded, ErrorKind, Format};
use sck_core::registry::SensorKeys;
use sck_core::topic::{self, Kind};
use sck_fuzz::{check_not_lost, check_readings, json_holds_no_reading, raw_holds_no_reading};
use sck_fuzz::{shown, LIMITS};

/// The `mqtt_topic` headers picked by the first byte's bits 0-3 (`None`: no header).
const TOPICS: [Option<&str>; 13] = [
    Some("device/sck/tok/readings"),
    Some("device/sck/tok/readings/raw"),
    Some("device/sck/tok/hello"),
    Some("device/sck/tok/info"),
    Some("device/inventory"),
    Some("bridge/device/sck/tok/readings"),
    Some("bridge/device/sck/tok/readings/raw"),
    Some("bridge/device/sck/tok/hello"),
    Some("bridge/device/sck/tok/info"),
    Some("bridge/device/inventory"),
    None,
    Some("device/sck//readings"),
    Some("device/sck/tok/readings/json"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let (mqtt_topic, payload) = match TOPICS.get(usize::from(selector & 0x0f)) {
        Some(&t) => (t, rest),
        None => {
            let (t, p) = match rest.iter().position(|&c| c == b'\n') {
                Some(nl) => (&rest[..nl], &rest[nl + 1..]),
                None => (rest, &[][..]),
            };
            (
                RecordHeaders::read([(HEADER_MQTT_TOPIC, Some(t))]).mqtt_topic,
                p,
            )
        }
    };
    let mut decoder = Decoder::default();
    if selector & 0x80 != 0 {
        let keys = [("temp".to_string(), 55), ("hum".to_string(), 56)];
        decoder.set_sensor_keys(Arc::new(SensorKeys::new(keys)));
    }
    let mut out = Decoded::default();
    let outcome = decoder.decode(mqtt_topic, payload, &LIMITS, &mut out);
    check(mqtt_topic, payload, outcome, &out);

    let first = out.clone();
    let again = decoder.decode(mqtt_topic, payload, &LIMITS, &mut out);
    assert!(
        again == outcome && out == first,
        "decode {mqtt_topic:?}: decoded again, {again:?} {out:?} instead of {outcome:?} {first:?}: {}",
        shown(payload)
    );
});

fn check(mqtt_topic: Option<&str>, payload: &[u8], outcome: Outcome<'_>, out: &Decoded) {
    let what = format!("decode {mqtt_topic:?}");
    check_readings(&what, payload, out);
    let only_problem = |kind: ErrorKind| {
        assert!(
            out.readings.is_empty() && out.problems.len() == 1 && out.problems[0].kind == kind,
            "{what}: {outcome:?} with {out:?} instead of one {kind:?} problem: {}",
            shown(payload)
        );
    };
    let unrouted = Outcome::Rejected {
        token: "",
        kind: None,
    };
    let route = match mqtt_topic.map(topic::route) {
        None => {
            assert_eq!(outcome, unrouted, "{what}");
            return only_problem(ErrorKind::MissingHeader);
        }
        Some(Err(_)) => {
            assert_eq!(outcome, unrouted, "{what}");
            return only_problem(ErrorKind::UnknownTopic);
        }
        Some(Ok(route)) => route,
    };
    assert_eq!(outcome.token(), route.token.unwrap_or(""), "{what}");
    match (route.kind, outcome) {
        (Kind::Readings | Kind::ReadingsRaw, Outcome::Readings { format, .. }) => {
            let raw = route.kind == Kind::ReadingsRaw;
            let want = if raw { Format::Raw } else { Format::Json };
            assert_eq!(format, want, "{what}");
            check_not_lost(&what, payload, out, || {
                if raw {
                    raw_holds_no_reading(payload)
                } else {
                    json_holds_no_reading(payload)
                }
            });
        }
        (Kind::Hello, Outcome::Hello { .. })
        | (Kind::Info, Outcome::Info { .. })
        | (Kind::Inventory, Outcome::Inventory) => assert!(
            out.readings.is_empty() && out.problems.is_empty(),
            "{what}: an event with {out:?}: {}",
            shown(payload)
        ),
        (kind, Outcome::Rejected { kind: Some(k), .. }) if k == kind => match kind {
            Kind::Readings => only_problem(ErrorKind::MalformedJson),
            Kind::ReadingsRaw => only_problem(ErrorKind::MalformedRaw),
            Kind::Info | Kind::Inventory => only_problem(ErrorKind::MalformedEvent),
            Kind::Hello => panic!("{what}: a hello rejected: {}", shown(payload)),
        },
        (kind, outcome) => panic!("{what}: routes to {kind} but decoded to {outcome:?}"),
    }
}
