//! The reading row model and the validation rules every decoded reading passes through.
//!
//! Both parsers ([`crate::raw`], [`crate::json`]) only find candidate (timestamp, sensor id,
//! value) triples; this module decides which are readings and which are errors, so the two
//! formats cannot drift apart on what counts as valid.

use std::fmt;

use crate::timestamp::{self, TimestampError};

/// The payload format of a readings message (from its MQTT topic, never sniffed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Raw,
}

impl Format {
    /// The value stored in the `format` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Raw => "raw",
        }
    }
}

/// One valid reading: the row of `readings` minus what the message envelope adds
/// (device token, received_at, format).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    pub sensor_id: u32,
    /// Unix seconds, UTC (ClickHouse `DateTime` is a u32 of this).
    pub recorded_at: u32,
    pub value: f64,
}

/// What went wrong, as stored in `ingest_errors.error_kind` and the dead-letter `error` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The JSON readings payload is not JSON or not of the `{"data":[…]}` shape.
    MalformedJson,
    /// The raw readings payload does not follow the `{t:…,id:value,…}` grammar.
    MalformedRaw,
    /// An info / inventory payload that is not JSON.
    MalformedEvent,
    MissingTimestamp,
    InvalidTimestamp,
    FutureTimestamp,
    InvalidSensorId,
    /// A JSON sensor given by a key (`"id": "temp"`) that is no sensor's `default_key` (or the
    /// decoder has no sensor catalogue): recorded (with the key) instead of stored.
    UnknownSensorKey,
    InvalidValue,
    /// A Kafka record without the headers the bridge always writes.
    MissingHeader,
    /// A Kafka record whose `mqtt_topic` header does not route.
    UnknownTopic,
    /// A message (readings, hello, info) of a token no platform device has: kept whole, to be
    /// replayed once the device is registered.
    UnknownDevice,
    /// A message of a token the cache does not know, while the device registry (PostgreSQL)
    /// cannot be asked: kept whole, to be replayed.
    RegistryUnavailable,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::MalformedJson => "malformed_json",
            ErrorKind::MalformedRaw => "malformed_raw",
            ErrorKind::MalformedEvent => "malformed_event",
            ErrorKind::MissingTimestamp => "missing_timestamp",
            ErrorKind::InvalidTimestamp => "invalid_timestamp",
            ErrorKind::FutureTimestamp => "future_timestamp",
            ErrorKind::InvalidSensorId => "invalid_sensor_id",
            ErrorKind::UnknownSensorKey => "unknown_sensor_key",
            ErrorKind::InvalidValue => "invalid_value",
            ErrorKind::MissingHeader => "missing_header",
            ErrorKind::UnknownTopic => "unknown_topic",
            ErrorKind::UnknownDevice => "unknown_device",
            ErrorKind::RegistryUnavailable => "registry_unavailable",
        }
    }

    /// Every kind, for pre-registering metric labels.
    pub const ALL: [ErrorKind; 13] = [
        ErrorKind::MalformedJson,
        ErrorKind::MalformedRaw,
        ErrorKind::MalformedEvent,
        ErrorKind::MissingTimestamp,
        ErrorKind::InvalidTimestamp,
        ErrorKind::FutureTimestamp,
        ErrorKind::InvalidSensorId,
        ErrorKind::UnknownSensorKey,
        ErrorKind::InvalidValue,
        ErrorKind::MissingHeader,
        ErrorKind::UnknownTopic,
        ErrorKind::UnknownDevice,
        ErrorKind::RegistryUnavailable,
    ];
}

/// A rejected message or reading: one `ingest_errors` row.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub kind: ErrorKind,
    pub message: String,
    /// The sensor the problem is about, when its id is known.
    pub sensor_id: Option<u32>,
}

impl Problem {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Problem {
            kind,
            message: message.into(),
            sensor_id: None,
        }
    }

    /// The same problem, about sensor `id`.
    pub fn for_sensor(mut self, id: u32) -> Self {
        self.sensor_id = Some(id);
        self
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.message)
    }
}

/// The result of decoding one message: its valid readings and its problems. Reused across
/// messages ([`Decoded::clear`]) so the hot path does not allocate per message.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Decoded {
    pub readings: Vec<Reading>,
    pub problems: Vec<Problem>,
    /// Bytes dropped before parsing (non-ASCII bytes, a BOM, invalid UTF-8), as the original
    /// handler drops them; counted in a metric.
    pub dropped_bytes: usize,
}

impl Decoded {
    pub fn clear(&mut self) {
        self.readings.clear();
        self.problems.clear();
        self.dropped_bytes = 0;
    }
}

/// A sensor id as a parser found it, before the u32 check.
#[derive(Debug, Clone, Copy)]
pub enum IdInput<'a> {
    Unsigned(u64),
    /// A sensor key (`"temp"`): needs a sensor catalogue to become an id.
    Key(&'a str),
    /// Anything else (negative, fractional, too many digits, not a number), as written.
    Other(&'a str),
}

impl<'a> IdInput<'a> {
    /// A sensor id written as digits (`"7"`, `"007"`): the number, or [`IdInput::Other`] when
    /// it has too many digits. `None` when the text is not all digits.
    pub fn digits(text: &'a str) -> Option<Self> {
        if text.is_empty() || !text.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        Some(
            text.parse::<u64>()
                .map(IdInput::Unsigned)
                .unwrap_or(IdInput::Other(text)),
        )
    }
}

/// A value as a parser found it, before the finiteness check.
#[derive(Debug, Clone, Copy)]
pub enum ValueInput<'a> {
    Number(f64),
    /// A string that should hold a number (JSON `"21.5"`).
    Text(&'a str),
    /// `null`: skipped, neither a reading nor an error.
    Null,
    /// Not a number at all (JSON object, array, boolean), described.
    Other(&'static str),
    /// Text that is not a number (a raw value such as `-` or `1-2`), as written.
    NotANumber(&'a str),
}

/// The validation settings that depend on the clock.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The decoder's clock, Unix seconds.
    pub now: i64,
    /// How far in the future a `recorded_at` may be (device clocks drift), seconds.
    pub max_future_secs: i64,
}

impl Limits {
    /// Checks a parsed timestamp against the window and the `DateTime` range.
    pub fn recorded_at(&self, parsed: Result<i64, TimestampError>, text: &str) -> TimeCheck {
        match parsed {
            Err(e) => Err(Problem::new(
                ErrorKind::InvalidTimestamp,
                format!("recorded_at {text:?}: {e}"),
            )),
            Ok(t) if t > self.now.saturating_add(self.max_future_secs) => Err(Problem::new(
                ErrorKind::FutureTimestamp,
                format!(
                    "recorded_at {text:?} is more than {}s in the future",
                    self.max_future_secs
                ),
            )),
            Ok(t) => u32::try_from(t).map_err(|_| {
                Problem::new(
                    ErrorKind::InvalidTimestamp,
                    format!("recorded_at {text:?} is outside 1970..2106"),
                )
            }),
        }
    }
}

/// A validated timestamp, or why every reading stamped with it is an error.
pub type TimeCheck = Result<u32, Problem>;

/// The problem for readings that carry no timestamp at all.
pub fn missing_timestamp(what: &str) -> Problem {
    Problem::new(ErrorKind::MissingTimestamp, format!("no {what}"))
}

/// Validates one (timestamp, id, value) triple into `out`: a reading or a problem. A `null`
/// value adds nothing. Returns whether the triple was stamped (its value was not `null`), so a
/// parser can tell a timestamp that stamped nothing.
pub fn push(out: &mut Decoded, time: &TimeCheck, id: IdInput<'_>, value: ValueInput<'_>) -> bool {
    if matches!(value, ValueInput::Null) {
        return false;
    }
    push_stamped(out, time, id, value);
    true
}

fn push_stamped(out: &mut Decoded, time: &TimeCheck, id: IdInput<'_>, value: ValueInput<'_>) {
    let value = match value {
        ValueInput::Null => return,
        ValueInput::Number(v) if v.is_finite() => Ok(v),
        ValueInput::Number(v) => Err(format!("value {v} is not finite")),
        ValueInput::Text(s) => match s.trim().parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(v),
            Ok(_) => Err(format!("value {s:?} is not a finite number")),
            Err(_) => Err(format!("value {s:?} is not a number")),
        },
        ValueInput::Other(what) => Err(format!("value is {what}, not a number")),
        ValueInput::NotANumber("") => Err("no value".to_string()),
        ValueInput::NotANumber(s) => Err(format!("value {s:?} is not a number")),
    };
    let not_u32 = |what: &dyn fmt::Display| {
        Problem::new(
            ErrorKind::InvalidSensorId,
            format!("sensor id {what} is not an unsigned 32-bit integer"),
        )
    };
    let sensor_id = match id {
        IdInput::Unsigned(n) => u32::try_from(n).map_err(|_| not_u32(&n)),
        IdInput::Other(s) => Err(not_u32(&s)),
        IdInput::Key(key) => Err(Problem::new(
            ErrorKind::UnknownSensorKey,
            format!("sensor key {key:?} is no sensor's default_key"),
        )),
    };
    // A timestamp problem comes first: it is the same for every reading it stamps.
    let recorded_at = match (time, &sensor_id) {
        (Ok(t), _) => *t,
        (Err(p), Ok(id)) => return out.problems.push(p.clone().for_sensor(*id)),
        (Err(p), Err(_)) => return out.problems.push(p.clone()),
    };
    let sensor_id = match sensor_id {
        Ok(id) => id,
        Err(p) => return out.problems.push(p),
    };
    match value {
        Ok(value) => out.readings.push(Reading {
            sensor_id,
            recorded_at,
            value,
        }),
        Err(what) => out.problems.push(
            Problem::new(
                ErrorKind::InvalidValue,
                format!("sensor {sensor_id}: {what}"),
            )
            .for_sensor(sensor_id),
        ),
    }
}

/// Convenience for parsers: parse + check a timestamp text.
pub fn check_time(limits: &Limits, text: &str) -> TimeCheck {
    limits.recorded_at(timestamp::parse(text), text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        now: 1_700_000_000,
        max_future_secs: 86_400,
    };

    fn one(time: &str, id: IdInput<'_>, value: ValueInput<'_>) -> Decoded {
        let mut d = Decoded::default();
        push(&mut d, &check_time(&LIMITS, time), id, value);
        d
    }

    fn kinds(d: &Decoded) -> Vec<ErrorKind> {
        d.problems.iter().map(|p| p.kind).collect()
    }

    #[test]
    fn a_valid_reading() {
        let d = one(
            "2016-06-08 10:30:00",
            IdInput::Unsigned(1),
            ValueInput::Text(" 21.5"),
        );
        assert_eq!(
            d.readings,
            vec![Reading {
                sensor_id: 1,
                recorded_at: 1_465_381_800,
                value: 21.5
            }]
        );
        assert!(d.problems.is_empty());
    }

    #[test]
    fn null_is_skipped_even_with_a_bad_timestamp() {
        let d = one("garbage", IdInput::Unsigned(1), ValueInput::Null);
        assert_eq!(d, Decoded::default());
    }

    #[test]
    fn each_rule_gives_its_error_kind() {
        let ok_t = "2016-06-08 10:30:00";
        let cases = [
            (
                "2016-06-08",
                IdInput::Unsigned(1),
                ValueInput::Number(1.0),
                ErrorKind::InvalidTimestamp,
            ),
            (
                "2023-11-16T22:13:21Z", // now + 1 day + 1 s
                IdInput::Unsigned(1),
                ValueInput::Number(1.0),
                ErrorKind::FutureTimestamp,
            ),
            (
                "1969-12-31 23:59:59",
                IdInput::Unsigned(1),
                ValueInput::Number(1.0),
                ErrorKind::InvalidTimestamp,
            ),
            (
                ok_t,
                IdInput::Unsigned(4_294_967_296),
                ValueInput::Number(1.0),
                ErrorKind::InvalidSensorId,
            ),
            (
                ok_t,
                IdInput::Other("-1"),
                ValueInput::Number(1.0),
                ErrorKind::InvalidSensorId,
            ),
            (
                ok_t,
                IdInput::Unsigned(1),
                ValueInput::Number(f64::NAN),
                ErrorKind::InvalidValue,
            ),
            (
                ok_t,
                IdInput::Unsigned(1),
                ValueInput::Number(f64::NEG_INFINITY),
                ErrorKind::InvalidValue,
            ),
            (
                ok_t,
                IdInput::Unsigned(1),
                ValueInput::Text("NaN"),
                ErrorKind::InvalidValue,
            ),
            (
                ok_t,
                IdInput::Unsigned(1),
                ValueInput::Text("inf"),
                ErrorKind::InvalidValue,
            ),
            (
                ok_t,
                IdInput::Unsigned(1),
                ValueInput::Text("21 C"),
                ErrorKind::InvalidValue,
            ),
            (
                ok_t,
                IdInput::Unsigned(1),
                ValueInput::Other("a boolean"),
                ErrorKind::InvalidValue,
            ),
        ];
        for (t, id, v, kind) in cases {
            let d = one(t, id, v);
            assert!(d.readings.is_empty(), "{t} {id:?} {v:?}");
            assert_eq!(kinds(&d), vec![kind], "{t} {id:?} {v:?}");
        }
    }

    #[test]
    fn the_future_limit_is_inclusive_and_configurable() {
        let edge = "2023-11-15T22:13:20Z"; // exactly now + 1 day
        assert_eq!(
            one(edge, IdInput::Unsigned(7), ValueInput::Number(0.0))
                .readings
                .len(),
            1
        );
        let strict = Limits {
            max_future_secs: 0,
            ..LIMITS
        };
        assert_eq!(
            strict
                .recorded_at(Ok(LIMITS.now + 1), "x")
                .map_err(|p| p.kind),
            Err(ErrorKind::FutureTimestamp)
        );
    }

    #[test]
    fn problems_name_their_sensor_when_its_id_is_known() {
        let ok_t = "2016-06-08 10:30:00";
        let d = one(ok_t, IdInput::Unsigned(5), ValueInput::NotANumber("1-2"));
        assert_eq!(
            (kinds(&d), d.problems[0].sensor_id),
            (vec![ErrorKind::InvalidValue], Some(5))
        );
        assert!(d.problems[0].message.contains("\"1-2\""));
        let d = one(ok_t, IdInput::Unsigned(5), ValueInput::NotANumber(""));
        assert_eq!(d.problems[0].message, "sensor 5: no value");
        let d = one("2016-06-08", IdInput::Unsigned(6), ValueInput::Number(1.0));
        assert_eq!(
            d.problems[0].sensor_id,
            Some(6),
            "a timestamp problem names the sensor"
        );
        let d = one(ok_t, IdInput::Key("temp"), ValueInput::Number(1.0));
        assert_eq!(
            (kinds(&d), d.problems[0].sensor_id),
            (vec![ErrorKind::UnknownSensorKey], None)
        );
        let d = one(ok_t, IdInput::Key("temp"), ValueInput::Null);
        assert_eq!(d, Decoded::default(), "null is skipped whatever the id");
        let d = one(ok_t, IdInput::Unsigned(1), ValueInput::Text("1e400"));
        assert_eq!(kinds(&d), vec![ErrorKind::InvalidValue]);
        assert!(
            d.problems[0].message.contains("not a finite number"),
            "{}",
            d.problems[0]
        );
    }

    #[test]
    fn u32_max_is_a_valid_sensor_id() {
        let d = one(
            "2016-06-08 10:30:00",
            IdInput::Unsigned(u64::from(u32::MAX)),
            ValueInput::Number(-3.25),
        );
        assert_eq!(d.readings[0].sensor_id, u32::MAX);
        assert_eq!(d.readings[0].value, -3.25);
    }
}
