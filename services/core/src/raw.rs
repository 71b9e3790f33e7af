//! The raw readings format, `{t:2017-03-24T13:35:14Z,1:21,13:66,}`: a hand-written parser.
//!
//! Grammar (whitespace = space, tab, CR, LF):
//! ```text
//! message   = ws* "{" ws* [ pair ( sep pair )* [ ws* "," ] ] ws* "}" ws*
//! sep       = ws* "," ws* | ws+
//! pair      = key ws* ":" ws* value
//! key       = "t" | digit+                       (digits: the sensor id)
//! value     = "null" | [+-]? digit+ [ "." digit+ ]   (after "t": the timestamp, up to a separator)
//! ```
//! The `t` pair may stand anywhere, so the parser makes two passes over the pairs (the first
//! checks the syntax and finds `t`, the second validates readings) instead of collecting them:
//! no allocation per pair. Syntax errors reject the whole message and say what was expected at
//! which byte; per-reading problems (id not a u32, bad timestamp) go through [`crate::reading`].

use std::fmt;

use thiserror::Error;

use crate::reading::{self, Decoded, IdInput, Limits, ValueInput};

/// A syntax error: what was expected, at which byte, and what was there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("at byte {at}: expected {expected}, found {}", Found(*.found))]
pub struct RawError {
    pub at: usize,
    pub expected: &'static str,
    pub found: Option<u8>,
}

struct Found(Option<u8>);

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("the end"),
            Some(c) if c.is_ascii_graphic() => write!(f, "'{}'", c as char),
            Some(c) => write!(f, "byte 0x{c:02x}"),
        }
    }
}

/// Decodes a raw readings payload into `out` (readings and per-reading problems).
pub fn decode(payload: &[u8], limits: &Limits, out: &mut Decoded) -> Result<(), RawError> {
    let mut time_text: Option<&str> = None;
    let mut pairs = Pairs::new(payload)?;
    while let Some(pair) = pairs.next_pair()? {
        if let Key::Time = pair.key {
            if time_text.is_some() {
                return Err(RawError {
                    at: pair.at,
                    expected: "a single t pair",
                    found: Some(b't'),
                });
            }
            time_text = Some(pair.value);
        }
    }
    let time = match time_text {
        Some(text) => reading::check_time(limits, text),
        None => Err(reading::missing_timestamp("t pair")),
    };
    let mut pairs = Pairs::new(payload)?;
    while let Some(pair) = pairs.next_pair()? {
        let id = match pair.key {
            Key::Time => continue,
            Key::Sensor(text) => text
                .parse::<u64>()
                .map(IdInput::Unsigned)
                .unwrap_or(IdInput::Other(text)),
        };
        let value = if pair.value == "null" {
            ValueInput::Null
        } else {
            // The grammar admits only decimal literals, which f64 parsing always accepts.
            ValueInput::Number(pair.value.parse::<f64>().unwrap_or(f64::NAN))
        };
        reading::push(out, &time, id, value);
    }
    Ok(())
}

enum Key<'a> {
    Time,
    Sensor(&'a str),
}

struct Pair<'a> {
    key: Key<'a>,
    value: &'a str,
    at: usize,
}

/// Iterates over the pairs of a message, checking the grammar as it goes.
struct Pairs<'a> {
    b: &'a [u8],
    i: usize,
    /// Byte index of the closing brace.
    end: usize,
    first: bool,
}

fn is_ws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_sep(c: u8) -> bool {
    is_ws(c) || c == b',' || c == b'}'
}

impl<'a> Pairs<'a> {
    fn new(b: &'a [u8]) -> Result<Self, RawError> {
        let start = b.iter().position(|&c| !is_ws(c)).unwrap_or(b.len());
        if b.get(start) != Some(&b'{') {
            return Err(err(b, start, "'{'"));
        }
        let end = b.iter().rposition(|&c| !is_ws(c)).unwrap_or(0);
        if end == start || b[end] != b'}' {
            return Err(err(b, end + 1, "'}' closing the message"));
        }
        Ok(Pairs {
            b,
            i: start + 1,
            end,
            first: true,
        })
    }

    fn skip_ws(&mut self) {
        while self.i < self.end && is_ws(self.b[self.i]) {
            self.i += 1;
        }
    }

    fn next_pair(&mut self) -> Result<Option<Pair<'a>>, RawError> {
        let before = self.i;
        self.skip_ws();
        if !self.first {
            // A separator is a comma (with optional whitespace) or whitespace alone.
            if self.i < self.end && self.b[self.i] == b',' {
                self.i += 1;
                self.skip_ws();
            } else if self.i == before && self.i < self.end {
                return Err(err(self.b, self.i, "',' or whitespace between pairs"));
            }
        }
        if self.i == self.end {
            return Ok(None);
        }
        self.first = false;
        let at = self.i;
        let key = self.token();
        let key = match key {
            "t" => Key::Time,
            k if !k.is_empty() && k.bytes().all(|c| c.is_ascii_digit()) => Key::Sensor(k),
            _ => return Err(err(self.b, at, "a sensor id (digits) or 't'")),
        };
        self.skip_ws();
        if self.i >= self.end || self.b[self.i] != b':' {
            return Err(err(self.b, self.i, "':' after the key"));
        }
        self.i += 1;
        self.skip_ws();
        let value_at = self.i;
        let value = match key {
            Key::Time => self.until_sep(),
            Key::Sensor(_) => self.token(),
        };
        let value_ok = match key {
            Key::Time => !value.is_empty(),
            Key::Sensor(_) => value == "null" || is_decimal(value.as_bytes()),
        };
        if !value_ok {
            let expected = match key {
                Key::Time => "a timestamp after 't:'",
                Key::Sensor(_) => "a decimal number or null",
            };
            return Err(err(self.b, value_at, expected));
        }
        // Only the last '}' closes the message; one inside is not a separator.
        if self.i < self.end && !(is_ws(self.b[self.i]) || self.b[self.i] == b',') {
            return Err(err(self.b, self.i, "',', whitespace or '}' after a value"));
        }
        Ok(Some(Pair { key, value, at }))
    }

    /// An ASCII-alphanumeric/number-ish token: stops at a separator or ':'.
    fn token(&mut self) -> &'a str {
        let start = self.i;
        while self.i < self.end {
            let c = self.b[self.i];
            if is_sep(c) || c == b':' || !c.is_ascii() {
                break;
            }
            self.i += 1;
        }
        ascii(&self.b[start..self.i])
    }

    /// The timestamp value: everything up to a separator (it contains ':').
    fn until_sep(&mut self) -> &'a str {
        let start = self.i;
        while self.i < self.end && !is_sep(self.b[self.i]) && self.b[self.i].is_ascii() {
            self.i += 1;
        }
        ascii(&self.b[start..self.i])
    }
}

/// Bytes known to be ASCII as a str.
fn ascii(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap_or_default()
}

fn is_decimal(b: &[u8]) -> bool {
    let b = match b.first() {
        Some(b'+' | b'-') => &b[1..],
        _ => b,
    };
    let int = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if int == 0 {
        return false;
    }
    match &b[int..] {
        [] => true,
        [b'.', frac @ ..] => !frac.is_empty() && frac.iter().all(u8::is_ascii_digit),
        _ => false,
    }
}

fn err(b: &[u8], at: usize, expected: &'static str) -> RawError {
    RawError {
        at,
        expected,
        found: b.get(at).copied(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reading::{ErrorKind, Reading};

    const LIMITS: Limits = Limits {
        now: 1_800_000_000,
        max_future_secs: 86_400,
    };
    const T: u32 = 1_490_362_514; // 2017-03-24T13:35:14Z

    fn ok(s: &str) -> Decoded {
        let mut d = Decoded::default();
        match decode(s.as_bytes(), &LIMITS, &mut d) {
            Ok(()) => d,
            Err(e) => panic!("{s:?}: {e}"),
        }
    }

    fn pairs(d: &Decoded) -> Vec<(u32, u32, f64)> {
        d.readings
            .iter()
            .map(|r| (r.sensor_id, r.recorded_at, r.value))
            .collect()
    }

    #[test]
    fn the_examples_of_the_device_docs() {
        assert_eq!(
            pairs(&ok("{t:2017-03-24T13:35:14Z,1:21,13:66,}")),
            vec![(1, T, 21.0), (13, T, 66.0)]
        );
        assert_eq!(
            pairs(&ok(
                "{ t:2017-03-24T13:35:14Z, 1:48.45, 13:66, 12:28, 10:4.45 }"
            )),
            vec![(1, T, 48.45), (13, T, 66.0), (12, T, 28.0), (10, T, 4.45)]
        );
        let multiline =
            "{\n  t:2017-03-24T13:35:14Z,\n  10:100,\n  14:3.4,\n  55:22.36,\n  56:38.72\n}\n";
        assert_eq!(
            pairs(&ok(multiline)),
            vec![(10, T, 100.0), (14, T, 3.4), (55, T, 22.36), (56, T, 38.72)]
        );
    }

    #[test]
    fn separators_whitespace_and_placement_of_t() {
        let want = vec![(1, T, 21.0), (13, T, -66.5)];
        for s in [
            "{t:2017-03-24T13:35:14Z,1:21,13:-66.5}",
            "{t:2017-03-24T13:35:14Z 1:21 13:-66.5}",
            "{t:2017-03-24T13:35:14Z\t1:21\n13:-66.5\r\n}",
            "{1:21,t:2017-03-24T13:35:14Z,13:-66.5}",
            "{1:21,13:-66.5,t:2017-03-24T13:35:14Z}",
            "{1:21,13:-66.5,t:2017-03-24T13:35:14Z,}",
            "  {1 : 21 ,13: -66.5, t :2017-03-24T13:35:14Z , }  \n",
            "{ 1:+21.0 , 13:-66.50 ,t: 2017-03-24T13:35:14Z}",
        ] {
            let d = ok(s);
            assert_eq!(pairs(&d), want, "{s:?}");
            assert!(d.problems.is_empty(), "{s:?}");
        }
    }

    #[test]
    fn null_values_are_skipped_and_empty_braces_are_fine() {
        let d = ok("{t:2017-03-24T13:35:14Z,1:null,2:5}");
        assert_eq!(pairs(&d), vec![(2, T, 5.0)]);
        assert!(d.problems.is_empty());
        assert_eq!(ok("{}"), Decoded::default());
        assert_eq!(ok(" { \n } "), Decoded::default());
        assert_eq!(ok("{t:2017-03-24T13:35:14Z}"), Decoded::default());
    }

    #[test]
    fn syntax_errors_say_what_and_where() {
        let cases: [(&str, usize, &str); 16] = [
            ("ceci n'est pas un message", 0, "'{'"),
            ("", 0, "'{'"),
            (
                "{t:2017-03-24T13:35:14Z,1:21",
                28,
                "'}' closing the message",
            ),
            ("{", 1, "'}' closing the message"),
            (
                "{t:2017-03-24T13:35:14Z,,1:21}",
                24,
                "a sensor id (digits) or 't'",
            ),
            ("{,1:21}", 1, "a sensor id (digits) or 't'"),
            ("{x:21}", 1, "a sensor id (digits) or 't'"),
            ("{-1:21}", 1, "a sensor id (digits) or 't'"),
            ("{1 21}", 3, "':' after the key"),
            ("{1:}", 3, "a decimal number or null"),
            ("{1:abc}", 3, "a decimal number or null"),
            ("{1:1e5}", 3, "a decimal number or null"),
            ("{1:.5}", 3, "a decimal number or null"),
            ("{1:5.}", 3, "a decimal number or null"),
            ("{t:}", 3, "a timestamp after 't:'"),
            ("{1:2:3}", 4, "',', whitespace or '}' after a value"),
        ];
        for (s, at, expected) in cases {
            let mut d = Decoded::default();
            let e = decode(s.as_bytes(), &LIMITS, &mut d).expect_err(s);
            assert_eq!((e.at, e.expected), (at, expected), "{s:?}: {e}");
            assert!(d.readings.is_empty());
        }
        let e = decode(
            b"{1:2,t:2017-03-24T13:35:14Z,t:2017-03-24T13:35:14Z}",
            &LIMITS,
            &mut Decoded::default(),
        );
        assert_eq!(e.map_err(|e| e.expected), Err("a single t pair"));
        let e = decode(b"{1:2}}", &LIMITS, &mut Decoded::default()).expect_err("two braces");
        assert_eq!(
            e.to_string(),
            "at byte 4: expected ',', whitespace or '}' after a value, found '}'"
        );
        let e =
            decode("{1:2\u{e9}}".as_bytes(), &LIMITS, &mut Decoded::default()).expect_err("utf8");
        assert_eq!(
            e.to_string(),
            "at byte 4: expected ',', whitespace or '}' after a value, found byte 0xc3"
        );
    }

    #[test]
    fn reading_problems_keep_the_good_readings() {
        let d = ok("{t:2017-03-24T13:35:14Z,1:21,4294967296:3,99999999999999999999999:4,2:22}");
        assert_eq!(pairs(&d), vec![(1, T, 21.0), (2, T, 22.0)]);
        let kinds: Vec<_> = d.problems.iter().map(|p| p.kind).collect();
        assert_eq!(kinds, vec![ErrorKind::InvalidSensorId; 2]);

        let d = ok("{1:21,2:null,3:4}");
        assert!(d.readings.is_empty());
        let kinds: Vec<_> = d.problems.iter().map(|p| p.kind).collect();
        assert_eq!(kinds, vec![ErrorKind::MissingTimestamp; 2]);

        let d = ok("{t:2017-02-30T00:00:00Z,1:21}");
        assert_eq!(d.problems[0].kind, ErrorKind::InvalidTimestamp);
        let d = ok("{t:2099-01-01T00:00:00Z,1:21}");
        assert_eq!(d.problems[0].kind, ErrorKind::FutureTimestamp);

        let huge = format!("{{t:2017-03-24T13:35:14Z,1:{}}}", "9".repeat(400));
        let d = ok(&huge);
        assert_eq!(d.problems[0].kind, ErrorKind::InvalidValue);
        assert!(d.readings.is_empty());
    }

    #[test]
    fn offsets_and_spaces_in_the_timestamp_follow_the_timestamp_rules() {
        // A zone offset is accepted; a space would end the value (and the rest is a bad key).
        let d = ok("{t:2017-03-24T15:35:14+02:00,1:1}");
        assert_eq!(
            d.readings,
            vec![Reading {
                sensor_id: 1,
                recorded_at: T,
                value: 1.0
            }]
        );
        assert!(decode(
            b"{t:2017-03-24 13:35:14Z,1:1}",
            &LIMITS,
            &mut Decoded::default()
        )
        .is_err());
    }
}
