//! The JSON readings format, `{"data":[{"recorded_at":"…","sensors":[{"id":1,"value":21}]}]}`.
//!
//! Parsed with simd-json into borrowed serde structs whose leaf fields accept any JSON value
//! ([`Field`]), so a wrong type in one reading is that reading's error, not the message's: only a
//! payload that is not JSON or not of the `{"data":[…]}` shape is rejected whole. The structs and
//! [`push_payload`] are public so the benchmark can run the same path with serde_json.
//!
//! A payload the parser refuses as it is gets one more try, repaired the way the platform's
//! original handler reads it ([`repair`]): non-ASCII bytes (a BOM, invalid UTF-8) dropped, and
//! numbers no machine type holds (`1e400`, `100000000000000000000`) turned into strings, so such
//! a number is one reading's problem (or its value, when it is a finite f64) instead of the
//! whole message's. A valid payload with an entry that lacks `"sensors"` takes that path too when
//! it holds a non-ASCII byte: the original drops those bytes before parsing, so a key spelled
//! with one (`"\u{80}sensors"`) is `sensors`, not an unknown key whose readings vanish
//! silently. Well-formed payloads never take the repaired path, and pay no extra scan.
//!
//! A sensor id may be a number or a string of digits (`"007"`); any other string is a sensor
//! key (`"temp"`), resolved through the sensor catalogue's keys ([`SensorKeys`], set with
//! [`JsonDecoder::set_sensor_keys`]); a key it lacks is [`ErrorKind::UnknownSensorKey`].

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::ascii::Ascii;
use crate::reading::{self, Decoded, ErrorKind, IdInput, Limits, ValueInput};
use crate::registry::SensorKeys;

/// The whole message.
#[derive(Debug, Deserialize)]
#[serde(remote = "Self")]
pub struct Payload<'a> {
    #[serde(borrow)]
    pub data: Vec<Entry<'a>>,
}

/// One timestamp and the sensor values measured then.
#[derive(Debug, Deserialize)]
#[serde(remote = "Self")]
pub struct Entry<'a> {
    #[serde(borrow, default)]
    pub recorded_at: Field<'a>,
    /// `None` when the key is absent (see [`lacks_sensors`]).
    #[serde(borrow, default)]
    pub sensors: Option<Vec<Sensor<'a>>>,
}

#[derive(Debug, Deserialize)]
#[serde(remote = "Self")]
pub struct Sensor<'a> {
    #[serde(borrow, default)]
    pub id: Field<'a>,
    #[serde(borrow, default)]
    pub value: Field<'a>,
}

/// The three structs are read from JSON objects only. serde's derived struct impls also accept an
/// array of the fields in order, so `[[]]` would be a payload of no entries (dropped without a
/// word) and `[["2016-06-08 10:30:00",[[1,21]]]]` a reading: neither is the format, nor read by
/// the original handler (found by `fuzz/`). `#[serde(remote = "Self")]` turns each derive into an
/// inherent `deserialize`, which these impls call from a visitor that takes maps alone.
trait FromObject<'de>: Sized {
    fn from_map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error>;
}

struct ObjectVisitor<T>(std::marker::PhantomData<T>);

impl<'de, T: FromObject<'de>> Visitor<'de> for ObjectVisitor<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::from_map(map)
    }
}

macro_rules! from_objects_only {
    ($($t:ident),*) => {$(
        impl<'de: 'a, 'a> FromObject<'de> for $t<'a> {
            fn from_map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
                $t::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        impl<'de: 'a, 'a> Deserialize<'de> for $t<'a> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_map(ObjectVisitor(std::marker::PhantomData))
            }
        }
    )*};
}

from_objects_only!(Payload, Entry, Sensor);

/// Any JSON value, as far as a reading's fields care.
#[derive(Debug, Default, PartialEq)]
pub enum Field<'a> {
    /// The key was absent.
    #[default]
    Missing,
    Null,
    Bool,
    U64(u64),
    I64(i64),
    F64(f64),
    Str(Cow<'a, str>),
    /// An object or an array.
    Nested,
}

impl<'de: 'a, 'a> Deserialize<'de> for Field<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FieldVisitor)
    }
}

struct FieldVisitor;

impl<'de> Visitor<'de> for FieldVisitor {
    type Value = Field<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Field::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Field::Null)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Field::Bool)
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Field::U64(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(if v >= 0 {
            Field::U64(v as u64)
        } else {
            Field::I64(v)
        })
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Field::F64(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Field::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Field::Str(Cow::Owned(v.to_string())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Field::Str(Cow::Owned(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Field::Nested)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Field::Nested)
    }
}

/// Validates a parsed payload into readings and problems.
/// Whether an entry has no `"sensors"` key: in a payload with non-ASCII bytes, a sign that one
/// of them hides the key (read again with them dropped, as the original reads every payload).
pub fn lacks_sensors(payload: &Payload<'_>) -> bool {
    payload.data.iter().any(|e| e.sensors.is_none())
}

pub fn push_payload(payload: &Payload<'_>, limits: &Limits, out: &mut Decoded) {
    push_payload_keyed(payload, limits, None, out);
}

/// [`push_payload`], resolving sensor keys through `keys`.
pub fn push_payload_keyed(
    payload: &Payload<'_>,
    limits: &Limits,
    keys: Option<&SensorKeys>,
    out: &mut Decoded,
) {
    for entry in &payload.data {
        let time = match &entry.recorded_at {
            Field::Str(s) => reading::check_time(limits, s),
            Field::Missing | Field::Null => Err(reading::missing_timestamp("recorded_at")),
            other => Err(reading::Problem::new(
                ErrorKind::InvalidTimestamp,
                format!("recorded_at is {}, not a string", describe(other)),
            )),
        };
        let mut stamped = false;
        for sensor in entry.sensors.as_deref().unwrap_or_default() {
            let id_text;
            let id = match &sensor.id {
                Field::U64(n) => IdInput::Unsigned(*n),
                Field::I64(n) => {
                    id_text = n.to_string();
                    IdInput::Other(&id_text)
                }
                Field::F64(n) => {
                    id_text = n.to_string();
                    IdInput::Other(&id_text)
                }
                Field::Str(s) => match IdInput::digits(s) {
                    Some(id) => id,
                    None if s.trim().is_empty() || s.trim().parse::<f64>().is_ok() => {
                        id_text = format!("{s:?}");
                        IdInput::Other(&id_text)
                    }
                    None => match keys.and_then(|k| k.get(s)) {
                        Some(id) => IdInput::Unsigned(u64::from(id)),
                        None => IdInput::Key(s),
                    },
                },
                other => IdInput::Other(describe(other)),
            };
            let value = match &sensor.value {
                Field::U64(n) => ValueInput::Number(*n as f64),
                Field::I64(n) => ValueInput::Number(*n as f64),
                Field::F64(n) => ValueInput::Number(*n),
                Field::Str(s) => ValueInput::Text(s),
                Field::Null => ValueInput::Null,
                other => ValueInput::Other(describe(other)),
            };
            stamped |= reading::push(out, &time, id, value);
        }
        // A timestamp that cannot be read is said even when it stamps no reading.
        let given = !matches!(entry.recorded_at, Field::Missing | Field::Null);
        if let (true, Err(p), false) = (given, &time, stamped) {
            out.problems.push(p.clone());
        }
    }
}

fn describe(f: &Field<'_>) -> &'static str {
    match f {
        Field::Missing => "missing",
        Field::Null => "null",
        Field::Bool => "a boolean",
        Field::U64(_) | Field::I64(_) | Field::F64(_) => "a number",
        Field::Str(_) => "a string",
        Field::Nested => "an object or array",
    }
}

/// A payload that is not JSON, or not `{"data":[…]}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct JsonError(pub String);

/// simd-json needs a mutable copy of the input; this keeps that copy and simd-json's scratch
/// buffers between messages so decoding does not allocate per message once warm.
#[derive(Default)]
pub struct JsonDecoder {
    buf: Vec<u8>,
    buffers: simd_json::Buffers,
    keys: Option<Arc<SensorKeys>>,
}

impl fmt::Debug for JsonDecoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonDecoder").finish_non_exhaustive()
    }
}

impl JsonDecoder {
    /// The sensor keys that resolve `"id": "<key>"` from now on.
    pub fn set_sensor_keys(&mut self, keys: Arc<SensorKeys>) {
        self.keys = Some(keys);
    }

    /// Decodes a JSON readings payload into `out`.
    pub fn decode(
        &mut self,
        payload: &[u8],
        limits: &Limits,
        out: &mut Decoded,
    ) -> Result<(), JsonError> {
        let first = match parse::<Payload<'_>>(&mut self.buf, &mut self.buffers, payload) {
            Ok(parsed) if !lacks_sensors(&parsed) || payload.is_ascii() => {
                push_payload_keyed(&parsed, limits, self.keys.as_deref(), out);
                return Ok(());
            }
            Ok(_) => None,
            Err(e) => Some(JsonError(e.to_string())),
        };
        // Refused, or an entry lacks "sensors" in a non-ASCII payload: read with those bytes dropped.
        let Some((repaired, dropped)) = repair(payload) else {
            return Err(first.unwrap_or_else(|| JsonError("not a readings payload".into())));
        };
        let parsed: Payload<'_> = match parse(&mut self.buf, &mut self.buffers, &repaired) {
            Ok(parsed) => parsed,
            // The payload as sent explains a failure better than its repaired copy.
            Err(repaired_error) => {
                return Err(first.unwrap_or_else(|| {
                    let as_sent = parse::<IgnoredAny>(&mut self.buf, &mut self.buffers, payload);
                    JsonError(as_sent.err().unwrap_or(repaired_error).to_string())
                }))
            }
        };
        out.dropped_bytes += dropped;
        push_payload_keyed(&parsed, limits, self.keys.as_deref(), out);
        Ok(())
    }

    /// Checks that a payload is JSON (info / inventory messages are stored as text).
    pub fn check(&mut self, payload: &[u8]) -> Result<(), JsonError> {
        parse::<IgnoredAny>(&mut self.buf, &mut self.buffers, payload)
            .map(|_| ())
            .map_err(|e| JsonError(e.to_string()))
    }
}

/// simd-json parses in place: `bytes` are copied into the kept buffer first.
fn parse<'b, T: Deserialize<'b>>(
    buf: &'b mut Vec<u8>,
    buffers: &mut simd_json::Buffers,
    bytes: &[u8],
) -> Result<T, simd_json::Error> {
    buf.clear();
    buf.extend_from_slice(bytes);
    simd_json::serde::from_slice_with_buffers(buf, buffers)
}

/// The serde_json path for the same structs, with the same repair fallback: the tests and the
/// fuzz targets check that both parsers agree (the benchmark has its own copy; serde_json is a
/// dependency only of the tests and of the `oracle` feature).
#[cfg(any(test, feature = "oracle"))]
pub fn decode_with_serde_json(
    payload: &[u8],
    limits: &Limits,
    out: &mut Decoded,
) -> Result<(), JsonError> {
    let first = match serde_json::from_slice::<Payload<'_>>(payload) {
        Ok(parsed) if !lacks_sensors(&parsed) || payload.is_ascii() => {
            push_payload(&parsed, limits, out);
            return Ok(());
        }
        Ok(_) => JsonError("an entry lacks sensors".to_string()),
        Err(e) => JsonError(e.to_string()),
    };
    let (repaired, dropped) = repair(payload).ok_or(first.clone())?;
    let parsed: Payload<'_> = serde_json::from_slice(&repaired).map_err(|_| first)?;
    out.dropped_bytes += dropped;
    push_payload(&parsed, limits, out);
    Ok(())
}

/// A payload the parser refused, rewritten the way the original handler reads it: non-ASCII
/// bytes dropped (their count is returned), and numbers outside every machine type written as
/// strings. `None` when there is nothing to rewrite.
pub fn repair(payload: &[u8]) -> Option<(Vec<u8>, usize)> {
    let ascii = Ascii::new(payload);
    let b: &[u8] = &ascii.bytes;
    let mut out = Vec::with_capacity(b.len() + 8);
    let mut changed = ascii.dropped() > 0;
    let mut in_string = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if in_string {
            out.push(c);
            i += 1;
            match c {
                b'\\' if i < b.len() => {
                    out.push(b[i]);
                    i += 1;
                }
                b'"' => in_string = false,
                _ => {}
            }
        } else if c == b'-' || c.is_ascii_digit() {
            let start = i;
            while i < b.len() && matches!(b[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') {
                i += 1;
            }
            let number = &b[start..i];
            if beyond_machine_types(number) {
                out.push(b'"');
                out.extend_from_slice(number);
                out.push(b'"');
                changed = true;
            } else {
                out.extend_from_slice(number);
            }
        } else {
            in_string = c == b'"';
            out.push(c);
            i += 1;
        }
    }
    changed.then_some((out, ascii.dropped()))
}

/// A JSON number literal that neither i64, u64 nor a finite f64 holds.
fn beyond_machine_types(number: &[u8]) -> bool {
    let Ok(s) = std::str::from_utf8(number) else {
        return false;
    };
    if !is_json_number(number) {
        return false;
    }
    if number.iter().all(|&c| c == b'-' || c.is_ascii_digit()) {
        s.parse::<i64>().is_err() && s.parse::<u64>().is_err()
    } else {
        !s.parse::<f64>().is_ok_and(f64::is_finite)
    }
}

/// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
fn is_json_number(b: &[u8]) -> bool {
    let digits = |b: &[u8]| b.iter().take_while(|c| c.is_ascii_digit()).count();
    let b = b.strip_prefix(b"-").unwrap_or(b);
    let int = digits(b);
    if int == 0 || (int > 1 && b[0] == b'0') {
        return false;
    }
    let mut rest = &b[int..];
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = digits(frac);
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    if let Some(exp) = rest.strip_prefix(b"e").or_else(|| rest.strip_prefix(b"E")) {
        let exp = exp
            .strip_prefix(b"+")
            .or_else(|| exp.strip_prefix(b"-"))
            .unwrap_or(exp);
        let n = digits(exp);
        return n > 0 && n == exp.len();
    }
    rest.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reading::{ErrorKind, Reading};

    const LIMITS: Limits = Limits {
        now: 1_800_000_000,
        max_future_secs: 86_400,
    };
    const T: u32 = 1_465_381_800; // 2016-06-08 10:30:00 UTC

    fn both(s: &str) -> Result<Decoded, JsonError> {
        let mut a = Decoded::default();
        let ra = JsonDecoder::default().decode(s.as_bytes(), &LIMITS, &mut a);
        let mut b = Decoded::default();
        let rb = decode_with_serde_json(s.as_bytes(), &LIMITS, &mut b);
        assert_eq!(
            ra.is_ok(),
            rb.is_ok(),
            "simd-json and serde_json disagree on {s}"
        );
        assert_eq!(a, b, "simd-json and serde_json disagree on {s}");
        ra.map(|()| a)
    }

    fn r(sensor_id: u32, recorded_at: u32, value: f64) -> Reading {
        Reading {
            sensor_id,
            recorded_at,
            value,
        }
    }

    fn kinds(d: &Decoded) -> Vec<ErrorKind> {
        d.problems.iter().map(|p| p.kind).collect()
    }

    #[test]
    fn the_example_of_the_issue() {
        let d = both(r#"{"data": [{"recorded_at": "2016-06-08 10:30:00Z","sensors": [{"id": 1,"value": 21}]}]}"#).unwrap();
        assert_eq!(d.readings, vec![r(1, T, 21.0)]);
        assert!(d.problems.is_empty());
    }

    #[test]
    fn values_numbers_strings_and_nulls() {
        let d = both(
            r#"{"data":[{"recorded_at":"2016-06-08T10:30:00","sensors":[
                {"id":1,"value":21},{"id":2,"value":-3.5},{"id":3,"value":"48.45"},
                {"id":4,"value":null},{"id":5,"value":1e3},{"id":6,"value":" 7 "}]}]}"#,
        )
        .unwrap();
        assert_eq!(
            d.readings,
            vec![
                r(1, T, 21.0),
                r(2, T, -3.5),
                r(3, T, 48.45),
                r(5, T, 1000.0),
                r(6, T, 7.0)
            ]
        );
        assert!(d.problems.is_empty());
    }

    #[test]
    fn several_entries_and_timestamp_forms() {
        let d = both(
            r#"{"data":[
                {"recorded_at":"2016-06-08 10:30:00","sensors":[{"id":1,"value":1}]},
                {"recorded_at":"2016-06-08T12:30:01.250+02:00","sensors":[{"id":1,"value":2}]},
                {"recorded_at":"2016-06-08T10:30:02Z","sensors":[]},
                {"recorded_at":"2016-06-08T10:30:03Z","sensors":[{"id":1,"value":4}],"extra":{"x":[1]}}
            ],"version":"1.5"}"#,
        )
        .unwrap();
        assert_eq!(
            d.readings,
            vec![r(1, T, 1.0), r(1, T + 1, 2.0), r(1, T + 3, 4.0)]
        );
    }

    #[test]
    fn bad_readings_are_errors_and_the_rest_is_kept() {
        let d = both(
            r#"{"data":[
                {"recorded_at":"2016-06-08 10:30:00","sensors":[
                    {"id":1,"value":21},{"id":-1,"value":1},{"id":4294967296,"value":1},
                    {"id":1.5,"value":1},{"id":"7","value":1},{"value":1},
                    {"id":2,"value":"NaN"},{"id":3,"value":"abc"},{"id":4,"value":true},
                    {"id":5,"value":[1]},{"id":6},{"id":7,"value":22}]},
                {"recorded_at":"2016-06-08","sensors":[{"id":1,"value":1}]},
                {"sensors":[{"id":1,"value":1},{"id":2,"value":null}]},
                {"recorded_at":12345,"sensors":[{"id":1,"value":1}]},
                {"recorded_at":"2099-01-01 00:00:00","sensors":[{"id":1,"value":1}]}
            ]}"#,
        )
        .unwrap();
        assert_eq!(d.readings, vec![r(1, T, 21.0), r(7, T, 1.0), r(7, T, 22.0)]);
        use ErrorKind::*;
        assert_eq!(
            kinds(&d),
            vec![
                InvalidSensorId,
                InvalidSensorId,
                InvalidSensorId,
                InvalidSensorId,
                InvalidValue,
                InvalidValue,
                InvalidValue,
                InvalidValue,
                InvalidValue,
                InvalidTimestamp,
                MissingTimestamp,
                InvalidTimestamp,
                FutureTimestamp
            ]
        );
    }

    #[test]
    fn sensor_ids_as_strings_and_sensor_keys() {
        let d = both(
            r#"{"data":[{"recorded_at":"2016-06-08 10:30:00","sensors":[
                {"id":"1","value":1},{"id":"007","value":2},{"id":"temp","value":3},
                {"id":"-1","value":4},{"id":"1.5","value":5},{"id":"","value":6},
                {"id":"99999999999999999999","value":7},{"id":"pm_avg_2.5","value":8},
                {"id":"noise","value":null}]}]}"#,
        )
        .unwrap();
        assert_eq!(d.readings, vec![r(1, T, 1.0), r(7, T, 2.0)]);
        use ErrorKind::*;
        assert_eq!(
            kinds(&d),
            vec![
                UnknownSensorKey,
                InvalidSensorId,
                InvalidSensorId,
                InvalidSensorId,
                InvalidSensorId,
                UnknownSensorKey
            ]
        );
        assert!(
            d.problems[0].message.contains("\"temp\""),
            "{}",
            d.problems[0]
        );
        assert!(
            d.problems[5].message.contains("\"pm_avg_2.5\""),
            "{}",
            d.problems[5]
        );
    }

    #[test]
    fn sensor_keys_resolve_through_the_catalogue() {
        let payload = r#"{"data":[{"recorded_at":"2016-06-08 10:30:00","sensors":[
            {"id":"temp","value":3},{"id":"pm_avg_2.5","value":8},{"id":"nope","value":1},
            {"id":"Temp","value":2},{"id":"1","value":5}]}]}"#;
        let keys = SensorKeys::new([("temp".to_string(), 55), ("pm_avg_2.5".to_string(), 87)]);
        let mut dec = JsonDecoder::default();
        dec.set_sensor_keys(Arc::new(keys));
        let mut d = Decoded::default();
        dec.decode(payload.as_bytes(), &LIMITS, &mut d).unwrap();
        assert_eq!(d.readings, vec![r(55, T, 3.0), r(87, T, 8.0), r(1, T, 5.0)]);
        assert_eq!(kinds(&d), vec![ErrorKind::UnknownSensorKey; 2]);
        assert!(d.problems[0].message.contains("\"nope\""));
        assert!(d.problems[1].message.contains("\"Temp\""), "keys are exact");
        // The repaired path (a BOM dropped) resolves them too.
        let mut d = Decoded::default();
        let with_bom = format!("\u{feff}{payload}");
        dec.decode(with_bom.as_bytes(), &LIMITS, &mut d).unwrap();
        assert_eq!((d.readings.len(), d.dropped_bytes), (3, 3));
        assert_eq!(d.readings[0], r(55, T, 3.0));
    }

    #[test]
    fn timestamps_as_ruby_and_common_clients_write_them() {
        for t in [
            "2016-06-08 12:30:00 +0200",
            "2016-06-08T12:30:00+02",
            "2016-06-08 10:30:00 UTC",
            "2016-06-08 10:30:00 GMT",
            "2016-06-08 12:30:00 +02:00",
            "2016-06-08T10:30:00z",
        ] {
            let s =
                format!(r#"{{"data":[{{"recorded_at":"{t}","sensors":[{{"id":1,"value":1}}]}}]}}"#);
            assert_eq!(both(&s).unwrap().readings, vec![r(1, T, 1.0)], "{t}");
        }
    }

    #[test]
    fn numbers_beyond_machine_types_cost_only_their_reading() {
        let d = both(
            r#"{"data":[{"recorded_at":"2016-06-08 10:30:00","sensors":[
                {"id":1,"value":100000000000000000000},{"id":2,"value":1e400},
                {"id":3,"value":-1e400},{"id":100000000000000000000,"value":4},
                {"id":5,"value":5}]}],"big":123456789012345678901234567890,"huge":1E999}"#,
        )
        .unwrap();
        assert_eq!(d.readings, vec![r(1, T, 1e20), r(5, T, 5.0)]);
        use ErrorKind::*;
        assert_eq!(kinds(&d), vec![InvalidValue, InvalidValue, InvalidSensorId]);
        assert!(d.problems[0].message.contains("1e400"), "{}", d.problems[0]);
        assert_eq!(d.problems[0].sensor_id, Some(2));
        assert_eq!(d.dropped_bytes, 0);
        // Numbers in strings are left alone; a number that is not JSON still rejects.
        let d = both(r#"{"data":[{"recorded_at":"2016-06-08 10:30:00","sensors":[{"id":1,"value":"1e400"}]}],"x":1e400}"#).unwrap();
        assert_eq!(kinds(&d), vec![InvalidValue]);
        assert!(both(r#"{"data":[],"x":01e400}"#).is_err());
        assert!(both(r#"{"data":[],"x":1e400.5}"#).is_err());
    }

    #[test]
    fn a_bom_and_invalid_utf8_are_dropped_and_counted() {
        let body =
            r#"{"data":[{"recorded_at":"2016-06-08 10:30:00","sensors":[{"id":1,"value":21}]}]}"#;
        let mut bom = b"\xef\xbb\xbf".to_vec();
        bom.extend_from_slice(body.as_bytes());
        let mut bad = body.as_bytes().to_vec();
        bad.splice(30..30, *b"\xff\xc3");
        let mut emoji = body.as_bytes().to_vec();
        emoji.extend_from_slice("💣".as_bytes());
        for (payload, dropped) in [(bom, 3), (bad, 2), (emoji, 4)] {
            let mut a = Decoded::default();
            JsonDecoder::default()
                .decode(&payload, &LIMITS, &mut a)
                .unwrap_or_else(|e| panic!("{payload:?}: {e}"));
            assert_eq!(a.readings, vec![r(1, T, 21.0)]);
            assert_eq!(a.dropped_bytes, dropped);
            let mut b = Decoded::default();
            decode_with_serde_json(&payload, &LIMITS, &mut b).unwrap();
            assert_eq!(a, b);
        }
        // Valid UTF-8 in strings of a complete payload is kept as it is: nothing dropped.
        let d = both(r#"{"data":[],"note":"21 °C"}"#).unwrap();
        assert_eq!(d.dropped_bytes, 0);
        // A key spelled with a non-ASCII character is the key without it, so its readings are
        // read, not silently skipped as an unknown key (found by the no-silent-loss property).
        let d = both(
            "{\"data\":[{\"recorded_at\":\"2016-06-08 10:30:00\",\"\u{80}sensors\":[{\"id\":1,\"value\":21}]}]}",
        )
        .unwrap();
        assert_eq!(d.readings, vec![r(1, T, 21.0)]);
        assert_eq!(d.dropped_bytes, 2);
    }

    #[test]
    fn an_unreadable_timestamp_is_said_even_without_readings() {
        let d = both(
            r#"{"data":[{"recorded_at":"yesterday","sensors":[]},
                {"recorded_at":"2099-01-01 00:00:00","sensors":[{"id":1,"value":null}]},
                {"recorded_at":null,"sensors":[]},{"sensors":[]}]}"#,
        )
        .unwrap();
        assert_eq!(
            kinds(&d),
            vec![ErrorKind::InvalidTimestamp, ErrorKind::FutureTimestamp]
        );
    }

    #[test]
    fn malformed_payloads_are_rejected_whole() {
        for s in [
            "",
            "ceci n'est pas un message",
            "{t:2017-03-24T13:35:14Z,1:21}",
            r#"{"data":[{"recorded_at":"2016-06-08 10:30:00","sensors":[{"id":1,"value":21}]}"#,
            r#"{"data":{}}"#,
            r#"{"data":[1]}"#,
            r#"{"readings":[]}"#,
            r#"[{"recorded_at":"2016-06-08 10:30:00"}]"#,
            r#"{"data":[{"sensors":{"id":1}}]}"#,
        ] {
            assert!(both(s).is_err(), "{s}");
        }
    }

    /// serde's derived struct impls read an array of the fields in order as the struct; the
    /// format is objects only (found by fuzz/: `[[]]` was a payload of no entries, dropped
    /// without a problem, and `[[{…}]]` stored readings).
    #[test]
    fn the_structs_in_array_form_are_rejected_whole() {
        for s in [
            "[[]]",
            "[ []]",
            r#"[[{"recorded_at":"2016-06-08 10:30:00","sensors":[{"id":1,"value":21}]}]]"#,
            r#"{"data":[["2016-06-08 10:30:00",[{"id":1,"value":21}]]]}"#,
            r#"{"data":[{"recorded_at":"2016-06-08 10:30:00","sensors":[[1,21],[2,null]]}]}"#,
            r#"{"data":[["2016-06-08 10:30:00",[[1,21],[2,null]]]]}"#,
        ] {
            // (simd-json says "ExpectedMap", serde_json "expected a JSON object")
            assert!(both(s).is_err(), "{s}");
        }
        // The object form of the same readings still decodes.
        let ok = both(
            r#"{"data":[{"recorded_at":"2016-06-08 10:30:00","sensors":[{"id":1,"value":21}]}]}"#,
        )
        .expect("object form");
        assert_eq!(ok.readings, vec![r(1, T, 21.0)]);
    }

    #[test]
    fn escaped_strings_work_with_both_parsers() {
        let d = both(r#"{"data":[{"recorded_at":"2016-06-08\u002010:30:00","sensors":[{"id":1,"value":"2\u0031"}]}]}"#).unwrap();
        assert_eq!(d.readings, vec![r(1, T, 21.0)]);
    }

    #[test]
    fn check_accepts_any_json_and_rejects_the_rest() {
        let mut j = JsonDecoder::default();
        assert!(j.check(br#"{"id":"abc","versions":[1,2]}"#).is_ok());
        assert!(j.check(b"[]").is_ok());
        assert!(j.check(b"{not json").is_err());
        assert!(j.check(b"").is_err());
    }
}
