//! Property tests.
//!
//! 1. Any valid payload we generate, in either format and in any of the allowed spellings,
//!    decodes to exactly the readings it was generated from. The payloads are written by
//!    [`crate::encode`] (whose own round trip is tested there); only the spellings it writes
//!    one way (where `t` stands, separators, padding, timestamps, quoted ids and values) are
//!    made here.
//! 2. No silent loss: any input at all (arbitrary bytes, near-payloads, valid payloads mutated)
//!    that yields no reading yields at least one problem, unless it holds no reading at all.
//!    Whether it holds one is decided by small oracles written independently of the parsers.

use proptest::prelude::*;

use crate::decode::Decoder;
use crate::encode::{self, Spell};
use crate::json::{decode_with_serde_json, JsonDecoder};
use crate::oracle::{json_holds_no_reading, raw_holds_no_reading};
use crate::raw;
use crate::reading::{Decoded, Limits, Reading};
use crate::timestamp::format_utc;

pub(crate) const LIMITS: Limits = Limits {
    now: 1_800_000_000,
    max_future_secs: 86_400,
};

/// A sensor value: `None` is written as `null` (and must be skipped).
fn value() -> impl Strategy<Value = Option<f64>> {
    prop_oneof![
        1 => Just(None),
        8 => (-10_000_000i64..10_000_000, 0u32..4).prop_map(|(m, k)| Some(m as f64 / 10f64.powi(k as i32))),
    ]
}

/// (sensor id, value) pairs of one timestamp.
type Sensors = Vec<(u32, Option<f64>)>;

fn sensors() -> impl Strategy<Value = Sensors> {
    prop::collection::vec((any::<u32>(), value()), 0..16)
}

/// How a timestamp is spelled: (space between date and time, fraction, zone form, offset).
type Style = (bool, bool, u8, i32);

fn style() -> impl Strategy<Value = Style> {
    (
        any::<bool>(),
        any::<bool>(),
        any::<u8>(),
        -(23 * 60 + 59)..=(23 * 60 + 59),
    )
}

/// Spells `secs` as a timestamp in one of the accepted forms. `spaces_ok`: the form may contain
/// spaces (JSON strings; a raw `t` value ends at a space).
fn spell(secs: i64, style: Style, spaces_ok: bool) -> String {
    let (space, fraction, zone, offset_min) = style;
    let zone = match zone % 8 {
        4 | 5 if !spaces_ok => 0,
        z => z,
    };
    let offset_min = match zone {
        2 | 4 => offset_min,
        6 => offset_min / 60 * 60, // ±HH
        _ => 0,
    };
    let mut s = format_utc(secs + i64::from(offset_min) * 60);
    s.pop(); // the Z
    if space && spaces_ok {
        s.replace_range(10..11, " ");
    }
    if fraction {
        s.push_str(".125");
    }
    let sign = if offset_min < 0 { '-' } else { '+' };
    let (h, m) = (
        offset_min.unsigned_abs() / 60,
        offset_min.unsigned_abs() % 60,
    );
    match zone {
        0 => s.push('Z'),
        1 => {}
        2 => s.push_str(&format!("{sign}{h:02}:{m:02}")),
        3 => s.push('z'),
        4 => s.push_str(&format!(" {sign}{h:02}{m:02}")), // Ruby's Time#to_s
        5 => s.push_str(" UTC"),
        6 => s.push_str(&format!("{sign}{h:02}")),
        _ => s.push_str(&format!("{sign}{h:02}{m:02}")),
    }
    s
}

fn expected(entries: &[(i64, Sensors)]) -> Vec<Reading> {
    entries
        .iter()
        .flat_map(|(t, s)| {
            s.iter().filter_map(move |(id, v)| {
                v.map(|value| Reading {
                    sensor_id: *id,
                    recorded_at: *t as u32,
                    value,
                })
            })
        })
        .collect()
}

/// A valid raw message in any allowed spelling, and the readings it holds. The pairs are
/// written by [`encode::raw_pair`]; what is spelled here is only what [`encode::raw`] writes
/// one way: where `t` stands, separators, a pair glued to the `Z`, padding, the timestamp.
fn raw_message() -> impl Strategy<Value = (String, Vec<Reading>)> {
    (
        0i64..=LIMITS.now,
        style(),
        sensors(),
        any::<prop::sample::Index>(),
        prop::collection::vec(
            prop::sample::select(vec![",", " ", ", ", " , ", "\n  ", ",\n", "\t", ",,"]),
            17,
        ),
        any::<bool>(),
        any::<bool>(),
        prop::sample::select(vec!["", " ", "\n", " \t ", "\0", "\r\n\0"]),
    )
        .prop_map(|(t, style, sensors, t_at, seps, trailing, glue, pad)| {
            let at = t_at.index(sensors.len() + 1);
            let time = spell(t, style, false);
            // A pair may be glued to the timestamp's Z, as the firmware sometimes writes it.
            let glued = glue && time.ends_with(['Z', 'z']) && at < sensors.len();
            let mut s = format!("{pad}{{{}", pad.replace('\0', "")).into_bytes();
            let mut pairs = sensors.iter().copied();
            for i in 0..=sensors.len() {
                if i > 0 && !(glued && i == at + 1) {
                    s.extend_from_slice(seps[i - 1].as_bytes());
                }
                if i == at {
                    encode::raw_pair(&mut s, "t", &time);
                } else if let Some((id, v)) = pairs.next() {
                    encode::raw_pair(&mut s, id, v);
                }
            }
            if trailing {
                s.push(b',');
            }
            s.extend_from_slice(format!("{}}}{pad}", pad.replace('\0', "")).as_bytes());
            (text(s), expected(&[(t, sensors)]))
        })
}

/// Generated payloads as text, so that failures show them readably.
fn text(payload: Vec<u8>) -> String {
    String::from_utf8(payload).expect("generated payloads are UTF-8")
}

/// A sensor id as a number, or as a string of digits (`"007"`).
struct Id(u32, bool);

impl Spell for Id {
    fn spell(&self, out: &mut Vec<u8>) {
        match self {
            Id(id, true) => out.extend_from_slice(format!("\"{id:03}\"").as_bytes()),
            Id(id, false) => id.spell(out),
        }
    }
}

/// How a JSON message spells its values: plain decimals (`21`, as [`encode`] writes them),
/// floats (`21.0`, as serde_json writes them), or strings holding a number (`"48.45"`).
#[derive(Debug, Clone, Copy)]
enum Form {
    Plain,
    Float,
    Text,
}

/// A value in one of the [`Form`]s; `null` in all of them.
struct Value(Option<f64>, Form);

impl Spell for Value {
    fn spell(&self, out: &mut Vec<u8>) {
        match *self {
            Value(None, _) | Value(Some(_), Form::Plain) => self.0.spell(out),
            Value(Some(v), Form::Float) => out.extend_from_slice(format!("{v:?}").as_bytes()),
            Value(Some(v), Form::Text) => {
                out.push(b'"');
                v.spell(out);
                out.push(b'"');
            }
        }
    }
}

/// A valid JSON message in any allowed spelling, and the readings it holds. Written by
/// [`encode::json`]; spelled here: timestamps, ids given as strings, values in any [`Form`].
fn json_message() -> impl Strategy<Value = (String, Vec<Reading>)> {
    (
        prop::collection::vec((0i64..=LIMITS.now, style(), sensors()), 0..5),
        prop::sample::select(vec![Form::Plain, Form::Float, Form::Text]),
        any::<bool>(),
    )
        .prop_map(|(entries, form, text_ids)| {
            let mut payload = Vec::new();
            encode::json(
                &mut payload,
                entries.iter().map(|(t, style, sensors)| {
                    let pairs = sensors
                        .iter()
                        .map(move |&(id, v)| (Id(id, text_ids), Value(v, form)));
                    (spell(*t, *style, true), pairs)
                }),
            );
            let want = expected(
                &entries
                    .iter()
                    .map(|(t, _, s)| (*t, s.clone()))
                    .collect::<Vec<_>>(),
            );
            (text(payload), want)
        })
}

/// Bytes that matter to the parsers, mixed with arbitrary ones.
fn nasty_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        3 => prop::sample::select(b"{}[]:,\"tZz0123456789.-+e \t\n\0\\".to_vec()),
        1 => any::<u8>(),
    ]
}

/// Near-payloads: fragments of both formats, glued at random.
fn near_payload() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        nasty_byte().prop_map(|b| vec![b]),
        prop::sample::select(vec![
            "{",
            "}",
            "t:",
            "t:2017-03-24T13:35:14Z",
            "2017-03-24T13:35:14Z",
            "1:",
            "21",
            "null",
            ",",
            " ",
            "-",
            ".5",
            "4:114",
            "{\"data\":[",
            "{\"recorded_at\":",
            "\"2016-06-08 10:30:00\"",
            ",\"sensors\":[",
            "{\"id\":",
            "\"7\"",
            ",\"value\":",
            "1e400",
            "]}",
            "💣",
            "\u{feff}",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
    ];
    prop::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

#[derive(Debug, Clone)]
enum Mutation {
    Delete(prop::sample::Index, u8),
    Insert(prop::sample::Index, Vec<u8>),
    Replace(prop::sample::Index, u8),
    Duplicate(prop::sample::Index, prop::sample::Index),
    Truncate(prop::sample::Index),
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    let index = any::<prop::sample::Index>;
    let m = prop_oneof![
        (index(), 1u8..8).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (index(), prop::collection::vec(nasty_byte(), 1..4))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        (index(), nasty_byte()).prop_map(|(i, b)| Mutation::Replace(i, b)),
        (index(), index()).prop_map(|(a, b)| Mutation::Duplicate(a, b)),
        index().prop_map(Mutation::Truncate),
    ];
    prop::collection::vec(m, 1..5)
}

fn mutate(mut b: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let n = b.len();
        match m {
            Mutation::Delete(i, k) if n > 0 => {
                let i = i.index(n);
                b.drain(i..(i + usize::from(*k)).min(n));
            }
            Mutation::Insert(i, bytes) => {
                let i = i.index(n + 1);
                b.splice(i..i, bytes.iter().copied());
            }
            Mutation::Replace(i, c) if n > 0 => b[i.index(n)] = *c,
            Mutation::Duplicate(a, z) if n > 0 => {
                let (a, z) = (a.index(n), z.index(n));
                let piece = b[a.min(z)..a.max(z)].to_vec();
                b.splice(a.max(z)..a.max(z), piece);
            }
            Mutation::Truncate(i) if n > 0 => b.truncate(i.index(n)),
            _ => {}
        }
    }
    b
}

/// [`nothing_silently_lost`] for tests outside proptest (the seeded corpus): the failure text.
pub(crate) fn check_nothing_silently_lost(payload: &[u8]) -> Result<(), String> {
    nothing_silently_lost(payload).map_err(|e| e.to_string())
}

/// The invariant, through the whole decode path of both topics.
fn nothing_silently_lost(payload: &[u8]) -> Result<(), TestCaseError> {
    let mut decoder = Decoder::default();
    let mut out = Decoded::default();
    for (topic, holds_none) in [
        (
            "device/sck/tok/readings/raw",
            raw_holds_no_reading(payload, &LIMITS),
        ),
        ("device/sck/tok/readings", json_holds_no_reading(payload)),
    ] {
        decoder.decode(Some(topic), payload, &LIMITS, &mut out);
        prop_assert!(
            !out.readings.is_empty() || !out.problems.is_empty() || holds_none,
            "{topic}: {:?} yielded neither a reading nor a problem",
            String::from_utf8_lossy(payload)
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn raw_payloads_decode_to_what_was_generated((s, want) in raw_message()) {
        let mut out = Decoded::default();
        let r = raw::decode(s.as_bytes(), &LIMITS, &mut out);
        prop_assert!(r.is_ok(), "{:?}: {:?}", s, r);
        prop_assert!(out.problems.is_empty(), "{:?}: {:?}", s, out.problems);
        prop_assert_eq!(out.readings, want);
    }

    #[test]
    fn json_payloads_decode_to_what_was_generated((payload, want) in json_message()) {
        let mut out = Decoded::default();
        let r = JsonDecoder::default().decode(payload.as_bytes(), &LIMITS, &mut out);
        prop_assert!(r.is_ok(), "{}: {:?}", payload, r);
        prop_assert!(out.problems.is_empty(), "{}: {:?}", payload, out.problems);
        prop_assert_eq!(&out.readings, &want);

        let mut out2 = Decoded::default();
        prop_assert!(decode_with_serde_json(payload.as_bytes(), &LIMITS, &mut out2).is_ok());
        prop_assert_eq!(out2.readings, want);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn arbitrary_bytes_are_never_lost_silently(payload in prop::collection::vec(any::<u8>(), 0..256)) {
        nothing_silently_lost(&payload)?;
    }

    #[test]
    fn near_payloads_are_never_lost_silently(payload in near_payload()) {
        nothing_silently_lost(&payload)?;
    }

    #[test]
    fn mutated_raw_payloads_are_never_lost_silently((s, _) in raw_message(), m in mutations()) {
        nothing_silently_lost(&mutate(s.into_bytes(), &m))?;
    }

    #[test]
    fn mutated_json_payloads_are_never_lost_silently((s, _) in json_message(), m in mutations()) {
        nothing_silently_lost(&mutate(s.into_bytes(), &m))?;
    }
}

#[test]
fn the_oracles_know_an_empty_message_from_a_full_one() {
    for empty in [
        "{}",
        " {t:2024-09-25T13:19:38Z}\0",
        "{1:null, 2 : null ,t:2024-09-25T13:19:38Z}",
        "{t:2024-09-25T13:19:38Z1:null}",
    ] {
        assert!(raw_holds_no_reading(empty.as_bytes(), &LIMITS), "{empty:?}");
    }
    for full in [
        "{t:2017-03-24T13:35:14Z4:114}",
        "{1:2}",
        "{t:bad}",
        "{t:2024-09-25T13:19:38Z,t:2024-09-25T13:19:38Z}",
        "x",
    ] {
        assert!(!raw_holds_no_reading(full.as_bytes(), &LIMITS), "{full:?}");
    }
    assert!(json_holds_no_reading(
        br#"{"data":[{"sensors":[{"id":1,"value":null}]},{}]}"#
    ));
    assert!(!json_holds_no_reading(
        br#"{"data":[{"sensors":[{"id":1}]}]}"#
    ));
    assert!(!json_holds_no_reading(br#"{"data":[1]}"#));
    assert!(!json_holds_no_reading(b"{t:2017-03-24T13:35:14Z,1:1}"));
}
