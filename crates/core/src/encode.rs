//! Payload writers, the inverse of [`crate::raw`] and [`crate::json`]: readings to the bytes a
//! device sends.
//!
//! They live beside the parsers (as mini-redis keeps `write_frame` by `Frame::parse`) so that
//! the load test, the decode benchmark, the test harness and the property tests all write the
//! one format the parsers read, and a change on either side meets the round-trip tests below.
//!
//! The messages, in the spellings of the device docs:
//! ```text
//! raw   {t:2017-03-24T13:35:14Z,1:21,13:66,}
//! JSON  {"data":[{"recorded_at":"2017-03-24 13:35:14","sensors":[{"id":1,"value":21}]}]}
//! ```
//! Every field is written through [`Spell`]: ids (`u32`), values (`f64`, or `Option<f64>` where
//! `None` is `null`) and timestamps ([`Utc`], [`Spaced`]) have their canonical spelling here,
//! and a caller that needs another one the parsers accept (a quoted id, a zone offset) spells
//! that field itself and keeps the rest. The writers append to the caller's buffer and allocate
//! nothing else (a load generator reuses or presizes one buffer per message).

use std::fmt;
use std::io::Write;

use crate::timestamp::civil_from_days;

/// A field as it stands in a payload. Ids and values spell the same in both formats; a
/// timestamp spells what goes after `t:` (raw) or between the quotes of `recorded_at` (JSON).
pub trait Spell {
    fn spell(&self, out: &mut Vec<u8>);
}

/// Fields that spell as they display.
macro_rules! spelled_as_displayed {
    ($($t:ty),*) => {
        $(impl Spell for $t {
            fn spell(&self, out: &mut Vec<u8>) {
                put(out, format_args!("{self}"));
            }
        })*
    };
}

// A sensor id: its digits. A value: the shortest decimal that reads back as the same `f64`,
// never an exponent (the raw grammar has none); it must be finite, as every stored value is
// (`NaN` and `inf` are written as Rust displays them, which neither parser takes for a number).
spelled_as_displayed!(u32, f64, Utc, Spaced);

/// A value or `null`, a sensor that measured nothing (the parsers skip it).
impl Spell for Option<f64> {
    fn spell(&self, out: &mut Vec<u8>) {
        match self {
            Some(v) => v.spell(out),
            None => out.extend_from_slice(b"null"),
        }
    }
}

/// Text the caller spelled itself, written as is: it must be what the format takes at that
/// place (no `"` inside a JSON string).
impl Spell for str {
    fn spell(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
}

impl Spell for String {
    fn spell(&self, out: &mut Vec<u8>) {
        self.as_str().spell(out);
    }
}

impl<T: Spell + ?Sized> Spell for &T {
    fn spell(&self, out: &mut Vec<u8>) {
        (**self).spell(out);
    }
}

/// Unix seconds as `2017-03-24T13:35:14Z`, the raw format's form (a raw `t` value ends at a
/// space, so this is the one both formats take).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utc(pub i64);

/// Unix seconds as `2017-03-24 13:35:14`, the form the kits' JSON messages use (no zone: UTC).
/// JSON only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spaced(pub i64);

impl fmt::Display for Utc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        date_time(f, self.0, 'T')?;
        f.write_str("Z")
    }
}

impl fmt::Display for Spaced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        date_time(f, self.0, ' ')
    }
}

/// `YYYY-MM-DD<sep>HH:MM:SS` of Unix seconds, UTC.
fn date_time(f: &mut fmt::Formatter<'_>, secs: i64, sep: char) -> fmt::Result {
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    write!(
        f,
        "{year:04}-{month:02}-{day:02}{sep}{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Appends one raw message, `{t:…,id:value,…,}` (the trailing comma as in the device docs).
pub fn raw<I: Spell, V: Spell>(
    out: &mut Vec<u8>,
    recorded_at: impl Spell,
    sensors: impl IntoIterator<Item = (I, V)>,
) {
    out.push(b'{');
    raw_pair(out, "t", recorded_at);
    for (id, value) in sensors {
        out.push(b',');
        raw_pair(out, id, value);
    }
    out.extend_from_slice(b",}");
}

/// Appends one raw pair, `key:value`, for callers that arrange the pairs themselves.
pub fn raw_pair(out: &mut Vec<u8>, key: impl Spell, value: impl Spell) {
    key.spell(out);
    out.push(b':');
    value.spell(out);
}

/// Appends one JSON message: one `data` entry per `(recorded_at, sensors)`.
pub fn json<T, S, I, V>(out: &mut Vec<u8>, entries: impl IntoIterator<Item = (T, S)>)
where
    T: Spell,
    S: IntoIterator<Item = (I, V)>,
    I: Spell,
    V: Spell,
{
    out.extend_from_slice(b"{\"data\":[");
    comma_separated(out, entries, |out, (recorded_at, sensors)| {
        out.extend_from_slice(b"{\"recorded_at\":\"");
        recorded_at.spell(out);
        out.extend_from_slice(b"\",\"sensors\":[");
        comma_separated(out, sensors, |out, (id, value)| {
            out.extend_from_slice(b"{\"id\":");
            id.spell(out);
            out.extend_from_slice(b",\"value\":");
            value.spell(out);
            out.push(b'}');
        });
        out.extend_from_slice(b"]}");
    });
    out.extend_from_slice(b"]}");
}

/// Writes each item with `write`, a comma between two.
fn comma_separated<T>(
    out: &mut Vec<u8>,
    items: impl IntoIterator<Item = T>,
    mut write: impl FnMut(&mut Vec<u8>, T),
) {
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write(out, item);
    }
}

/// Appends formatted text; writing to a `Vec` cannot fail.
fn put(out: &mut Vec<u8>, args: fmt::Arguments<'_>) {
    let _ = out.write_fmt(args);
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::decode::{Decoder, Outcome};
    use crate::reading::{Decoded, Limits, Reading};
    use crate::timestamp::format_utc;

    const LIMITS: Limits = Limits {
        now: 1_800_000_000,
        max_future_secs: 86_400,
    };
    const T: i64 = 1_490_362_514; // 2017-03-24T13:35:14Z

    fn text(b: &[u8]) -> &str {
        std::str::from_utf8(b).expect("ASCII")
    }

    #[test]
    fn the_device_docs_spellings() {
        let mut out = Vec::new();
        raw(&mut out, Utc(T), [(1, 21.0), (13, 66.0)]);
        assert_eq!(text(&out), "{t:2017-03-24T13:35:14Z,1:21,13:66,}");

        out.clear();
        json(&mut out, [(Spaced(T), [(1, Some(21.5)), (2, None)])]);
        assert_eq!(
            text(&out),
            r#"{"data":[{"recorded_at":"2017-03-24 13:35:14","sensors":[{"id":1,"value":21.5},{"id":2,"value":null}]}]}"#
        );

        out.clear();
        let no_sensors: [(u32, f64); 0] = [];
        json(&mut out, [(Utc(T), no_sensors), (Utc(T + 1), no_sensors)]);
        assert_eq!(
            text(&out),
            r#"{"data":[{"recorded_at":"2017-03-24T13:35:14Z","sensors":[]},{"recorded_at":"2017-03-24T13:35:15Z","sensors":[]}]}"#
        );
        out.clear();
        json(&mut out, std::iter::empty::<(Utc, [(u32, f64); 0])>());
        assert_eq!(text(&out), r#"{"data":[]}"#);
    }

    #[test]
    fn writers_append_to_the_buffer() {
        let mut out = b"x".to_vec();
        raw(&mut out, "2017-03-24T15:35:14+02:00", [(7u32, None::<f64>)]);
        raw_pair(&mut out, "007", "-.5");
        assert_eq!(text(&out), "x{t:2017-03-24T15:35:14+02:00,7:null,}007:-.5");
    }

    #[test]
    fn numbers_are_plain_decimals() {
        let spelled = |v: f64| {
            let mut out = Vec::new();
            v.spell(&mut out);
            String::from_utf8(out).expect("ASCII")
        };
        assert_eq!(spelled(21.0), "21");
        assert_eq!(spelled(-0.5), "-0.5");
        assert_eq!(spelled(1e21), "1000000000000000000000");
        assert_eq!(spelled(1.5e-7), "0.00000015");
    }

    fn stamp() -> impl Strategy<Value = i64> {
        // The whole range the decoder stores: 1970 up to the allowed future.
        0..=LIMITS.now + LIMITS.max_future_secs
    }

    #[test]
    fn timestamps_spell_as_the_timestamp_module_formats_them() {
        for secs in [0, T, 951_782_400, 4_294_967_295] {
            assert_eq!(Utc(secs).to_string(), format_utc(secs));
            assert_eq!(
                Spaced(secs).to_string(),
                format_utc(secs)[..19].replace('T', " ")
            );
        }
    }

    /// Any finite value, including the extremes (whose plain decimals run to 300 digits).
    fn value() -> impl Strategy<Value = Option<f64>> {
        prop_oneof![
            1 => Just(None),
            3 => any::<f64>().prop_filter("finite", |v| v.is_finite()).prop_map(Some),
            3 => (-100_000i32..100_000, 0i32..4).prop_map(|(m, k)| Some(f64::from(m) / 10f64.powi(k))),
        ]
    }

    type Entry = (i64, Vec<(u32, Option<f64>)>);

    fn entries() -> impl Strategy<Value = Vec<Entry>> {
        prop::collection::vec(
            (
                stamp(),
                prop::collection::vec((any::<u32>(), value()), 0..8),
            ),
            0..4,
        )
    }

    fn expected(entries: &[Entry]) -> Vec<Reading> {
        let mut want = Vec::new();
        for (t, sensors) in entries {
            for &(sensor_id, value) in sensors {
                if let Some(value) = value {
                    want.push(Reading {
                        sensor_id,
                        recorded_at: *t as u32,
                        value,
                    });
                }
            }
        }
        want
    }

    /// Decodes through the decoder's own path (topic routing included).
    fn decoded(topic: &str, payload: &[u8]) -> Result<Vec<Reading>, TestCaseError> {
        let mut out = Decoded::default();
        let outcome = Decoder::default().decode(Some(topic), payload, &LIMITS, &mut out);
        let shown = String::from_utf8_lossy(payload);
        prop_assert!(
            matches!(outcome, Outcome::Readings { .. }),
            "{shown}: {outcome:?}"
        );
        prop_assert!(out.problems.is_empty(), "{shown}: {:?}", out.problems);
        prop_assert_eq!(out.dropped_bytes, 0);
        Ok(out.readings)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn raw_messages_decode_to_what_was_written(entries in entries()) {
            let mut out = Vec::new();
            let mut got = Vec::new();
            for (t, sensors) in &entries {
                out.clear();
                raw(&mut out, Utc(*t), sensors.iter().copied());
                got.extend(decoded("device/sck/tok/readings/raw", &out)?);
            }
            prop_assert_eq!(got, expected(&entries));
        }

        #[test]
        fn json_messages_decode_to_what_was_written(entries in entries(), spaced: bool) {
            let mut out = Vec::new();
            if spaced {
                json(&mut out, entries.iter().map(|(t, s)| (Spaced(*t), s.iter().copied())));
            } else {
                json(&mut out, entries.iter().map(|(t, s)| (Utc(*t), s.iter().copied())));
            }
            prop_assert_eq!(decoded("device/sck/tok/readings", &out)?, expected(&entries));
        }
    }
}
