//! The JSON readings format, `{"data":[{"recorded_at":"…","sensors":[{"id":1,"value":21}]}]}`.
//!
//! Parsed with simd-json into borrowed serde structs whose leaf fields accept any JSON value
//! ([`Field`]), so a wrong type in one reading is that reading's error, not the message's: only a
//! payload that is not JSON or not of the `{"data":[…]}` shape is rejected whole. The structs are
//! public so the benchmark can run the same path with serde_json for comparison.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::reading::{self, Decoded, IdInput, Limits, ValueInput};

/// The whole message.
#[derive(Debug, Deserialize)]
pub struct Payload<'a> {
    #[serde(borrow)]
    pub data: Vec<Entry<'a>>,
}

/// One timestamp and the sensor values measured then.
#[derive(Debug, Deserialize)]
pub struct Entry<'a> {
    #[serde(borrow, default)]
    pub recorded_at: Field<'a>,
    #[serde(borrow, default)]
    pub sensors: Vec<Sensor<'a>>,
}

#[derive(Debug, Deserialize)]
pub struct Sensor<'a> {
    #[serde(borrow, default)]
    pub id: Field<'a>,
    #[serde(borrow, default)]
    pub value: Field<'a>,
}

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
pub fn push_payload(payload: &Payload<'_>, limits: &Limits, out: &mut Decoded) {
    for entry in &payload.data {
        let time = match &entry.recorded_at {
            Field::Str(s) => reading::check_time(limits, s),
            Field::Missing | Field::Null => Err(reading::missing_timestamp("recorded_at")),
            other => Err(reading::Problem::new(
                reading::ErrorKind::InvalidTimestamp,
                format!("recorded_at is {}, not a string", describe(other)),
            )),
        };
        for sensor in &entry.sensors {
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
                Field::Str(s) => {
                    id_text = format!("{s:?}");
                    IdInput::Other(&id_text)
                }
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
            reading::push(out, &time, id, value);
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
}

impl fmt::Debug for JsonDecoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonDecoder").finish_non_exhaustive()
    }
}

impl JsonDecoder {
    /// Decodes a JSON readings payload into `out`.
    pub fn decode(
        &mut self,
        payload: &[u8],
        limits: &Limits,
        out: &mut Decoded,
    ) -> Result<(), JsonError> {
        self.buf.clear();
        self.buf.extend_from_slice(payload);
        let parsed: Payload<'_> =
            simd_json::serde::from_slice_with_buffers(&mut self.buf, &mut self.buffers)
                .map_err(|e| JsonError(e.to_string()))?;
        push_payload(&parsed, limits, out);
        Ok(())
    }

    /// Checks that a payload is JSON (info / inventory messages are stored as text).
    pub fn check(&mut self, payload: &[u8]) -> Result<(), JsonError> {
        self.buf.clear();
        self.buf.extend_from_slice(payload);
        simd_json::serde::from_slice_with_buffers::<IgnoredAny>(&mut self.buf, &mut self.buffers)
            .map(|_| ())
            .map_err(|e| JsonError(e.to_string()))
    }
}

/// The serde_json path for the same structs (benchmark comparison and tests).
pub fn decode_with_serde_json(
    payload: &[u8],
    limits: &Limits,
    out: &mut Decoded,
) -> Result<(), JsonError> {
    let parsed: Payload<'_> =
        serde_json::from_slice(payload).map_err(|e| JsonError(e.to_string()))?;
    push_payload(&parsed, limits, out);
    Ok(())
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
        assert_eq!(d.readings, vec![r(1, T, 21.0), r(7, T, 22.0)]);
        use ErrorKind::*;
        assert_eq!(
            kinds(&d),
            vec![
                InvalidSensorId,
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
