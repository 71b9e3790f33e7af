//! The raw readings format, `{t:2017-03-24T13:35:14Z,1:21,13:66,}`: a hand-written parser.
//!
//! Grammar (ws = space, tab, CR, LF):
//! ```text
//! message   = junk* "{" ( sep | pair )* "}" junk*    junk: ASCII whitespace and control bytes
//! sep       = ws | ","
//! pair      = key ws* ":" ws* value
//! key       = "t" | digit+                            (digits: the sensor id)
//! value     = "null" | [+-]? ( digit+ [ "." digit+ ] | "." digit+ )
//!             after "t": a timestamp, up to a separator or up to and including its "Z"
//! ```
//! Tolerant where the platform's original handler is, so that one bad byte costs no reading:
//! - non-ASCII bytes are dropped before parsing ([`crate::ascii`]; counted in
//!   [`Decoded::dropped_bytes`]), and junk around the braces (a C string's trailing NUL) ignored;
//! - a pair glued to the timestamp's `Z` (`{t:2017-03-24T13:35:14Z4:114}`) is a pair of its own;
//! - a pair that breaks the grammar (`1:-`, `-1:5`, `x`) is that pair's problem, with its byte
//!   position; the other pairs are kept.
//!
//! The message is rejected whole ([`RawError`]) only when it is not enclosed in braces, or when
//! it holds two `t` pairs (which time would its readings have?). A timestamp that cannot be read
//! is a problem of every reading it stamps, and a problem of its own when it stamps none, so a
//! message that yields no reading always says why, unless it holds none (`{}`, only `null`s).
//!
//! The `t` pair may stand anywhere, so the parser makes two passes over the pairs (the first
//! finds `t`, the second validates readings) instead of collecting them: no allocation per pair.

use std::fmt;

use thiserror::Error;

use crate::ascii::Ascii;
use crate::reading::{self, Decoded, ErrorKind, IdInput, Limits, Problem, ValueInput};

/// Why a message was rejected whole: what was expected, at which byte, and what was there.
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

/// Decodes a raw readings payload into `out` (readings and per-pair problems).
pub fn decode(payload: &[u8], limits: &Limits, out: &mut Decoded) -> Result<(), RawError> {
    let text = Ascii::new(payload);
    out.dropped_bytes += text.dropped();
    let at = |i: usize| text.original(i);
    let b: &[u8] = &text.bytes;
    let (start, end) = braces(b).map_err(|(i, expected)| RawError {
        at: at(i),
        expected,
        found: payload.get(at(i)).copied(),
    })?;
    let body = Body { b, start, end };

    let mut time: Option<&str> = None;
    for item in body.items() {
        if let Item::Time { value, at: t_at } = item {
            if time.is_some() {
                return Err(RawError {
                    at: at(t_at),
                    expected: "a single t pair",
                    found: Some(b't'),
                });
            }
            time = Some(value);
        }
    }
    let time_check = match time {
        Some(value) => reading::check_time(limits, value),
        None => Err(reading::missing_timestamp("t pair")),
    };

    let mut stamped = false;
    for item in body.items() {
        match item {
            Item::Time { .. } => {}
            Item::Sensor { key, value, at: p } => {
                let id = IdInput::digits(key).unwrap_or(IdInput::Other(key));
                let value = if value == "null" {
                    ValueInput::Null
                } else if is_decimal(value.as_bytes()) {
                    // Decimal literals always parse; too many digits give ±inf, refused as
                    // not finite.
                    ValueInput::Number(value.parse::<f64>().unwrap_or(f64::NAN))
                } else {
                    ValueInput::NotANumber(value)
                };
                let before = out.problems.len();
                stamped |= reading::push(out, &time_check, id, value);
                // A problem of the pair itself (not of the shared timestamp) says where it is.
                if let Some(p_last) = out.problems.get_mut(before) {
                    if matches!(
                        p_last.kind,
                        ErrorKind::InvalidSensorId | ErrorKind::InvalidValue
                    ) {
                        p_last.message = format!("at byte {}: {}", at(p), p_last.message);
                    }
                }
            }
            Item::Junk { text: j, at: p } => out.problems.push(Problem::new(
                ErrorKind::MalformedRaw,
                format!(
                    "at byte {}: expected a pair key:value, found {:?}",
                    at(p),
                    j
                ),
            )),
        }
    }
    if let (Some(_), Err(p), false) = (time, &time_check, stamped) {
        out.problems.push(p.clone());
    }
    Ok(())
}

/// Finds the braces: `(index of '{', index of '}')`, or where it failed and what was expected.
fn braces(b: &[u8]) -> Result<(usize, usize), (usize, &'static str)> {
    let start = b.iter().position(|&c| !is_junk(c)).unwrap_or(b.len());
    if b.get(start) != Some(&b'{') {
        return Err((start, "'{'"));
    }
    let end = b.iter().rposition(|&c| !is_junk(c)).unwrap_or(0);
    if end == start || b[end] != b'}' {
        return Err((end + 1, "'}' closing the message"));
    }
    Ok((start, end))
}

/// What may surround the braces: ASCII whitespace and control bytes.
fn is_junk(c: u8) -> bool {
    c <= b' ' || c == 0x7f
}

fn is_ws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_sep(c: u8) -> bool {
    is_ws(c) || c == b','
}

/// What stands between the braces, one item at a time.
enum Item<'a> {
    Time {
        value: &'a str,
        at: usize,
    },
    Sensor {
        key: &'a str,
        value: &'a str,
        at: usize,
    },
    /// Text that is not a pair (no ':' after the key, or no key before it).
    Junk {
        text: &'a str,
        at: usize,
    },
}

/// The text between the braces at `start` and `end` of `b` (ASCII).
#[derive(Clone, Copy)]
struct Body<'a> {
    b: &'a [u8],
    start: usize,
    end: usize,
}

impl<'a> Body<'a> {
    fn items(self) -> Items<'a> {
        Items {
            b: &self.b[..self.end],
            i: self.start + 1,
        }
    }
}

struct Items<'a> {
    /// The message up to (excluding) its closing brace.
    b: &'a [u8],
    i: usize,
}

impl<'a> Items<'a> {
    /// Bytes while `keep`, from the current position.
    fn take(&mut self, keep: impl Fn(u8) -> bool) -> &'a str {
        let start = self.i;
        while self.i < self.b.len() && keep(self.b[self.i]) {
            self.i += 1;
        }
        ascii(&self.b[start..self.i])
    }

    fn skip_ws(&mut self) {
        self.take(is_ws);
    }

    /// A timestamp: up to a separator, or up to and including a `Z` (something glued to the
    /// `Z` is the next pair, as the original grammar reads it).
    fn take_time(&mut self) -> &'a str {
        let start = self.i;
        while self.i < self.b.len() && !is_sep(self.b[self.i]) {
            self.i += 1;
            if matches!(self.b[self.i - 1], b'Z' | b'z') {
                break;
            }
        }
        ascii(&self.b[start..self.i])
    }
}

impl<'a> Iterator for Items<'a> {
    type Item = Item<'a>;

    fn next(&mut self) -> Option<Item<'a>> {
        self.take(is_sep);
        if self.i == self.b.len() {
            return None;
        }
        let at = self.i;
        let key = self.take(|c| !is_sep(c) && c != b':');
        let after_key = self.i;
        self.skip_ws();
        if self.b.get(self.i) != Some(&b':') {
            self.i = after_key;
            return Some(Item::Junk { text: key, at });
        }
        self.i += 1;
        self.skip_ws();
        if key == "t" {
            return Some(Item::Time {
                value: self.take_time(),
                at,
            });
        }
        let value = self.take(|c| !is_sep(c));
        if key.is_empty() {
            return Some(Item::Junk {
                text: ascii(&self.b[at..self.i]),
                at,
            });
        }
        Some(Item::Sensor { key, value, at })
    }
}

/// Bytes known to be ASCII as a str.
fn ascii(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap_or_default()
}

/// `[+-]? ( digit+ [ "." digit+ ] | "." digit+ )`
fn is_decimal(b: &[u8]) -> bool {
    let b = match b.first() {
        Some(b'+' | b'-') => &b[1..],
        _ => b,
    };
    let int = b.iter().take_while(|c| c.is_ascii_digit()).count();
    match &b[int..] {
        [] => int > 0,
        [b'.', frac @ ..] => !frac.is_empty() && frac.iter().all(u8::is_ascii_digit),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reading::Reading;

    const LIMITS: Limits = Limits {
        now: 1_800_000_000,
        max_future_secs: 86_400,
    };
    const T: u32 = 1_490_362_514; // 2017-03-24T13:35:14Z
    const T2: u32 = 1_727_270_378; // 2024-09-25T13:19:38Z

    fn ok(s: &str) -> Decoded {
        ok_bytes(s.as_bytes())
    }

    fn ok_bytes(s: &[u8]) -> Decoded {
        let mut d = Decoded::default();
        match decode(s, &LIMITS, &mut d) {
            Ok(()) => d,
            Err(e) => panic!("{:?}: {e}", String::from_utf8_lossy(s)),
        }
    }

    fn pairs(d: &Decoded) -> Vec<(u32, u32, f64)> {
        d.readings
            .iter()
            .map(|r| (r.sensor_id, r.recorded_at, r.value))
            .collect()
    }

    fn kinds(d: &Decoded) -> Vec<ErrorKind> {
        d.problems.iter().map(|p| p.kind).collect()
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

    /// The original handler's own spec examples (smartcitizen-api
    /// spec/lib/raw_mqtt_message_parser_spec.rb): input -> stored (sensor, value) pairs.
    #[test]
    fn the_original_handlers_spec_examples() {
        let cases: [(&str, &[(u32, f64)]); 13] = [
            ("{}", &[]),
            ("{t:2024-09-25T13:19:38Z}", &[]),
            ("{t:2024-09-25T13:19:38Z,1:2}", &[(1, 2.0)]),
            ("{t:2024-09-25T13:19:38Z,2:-3}", &[(2, -3.0)]),
            ("{t:2024-09-25T13:19:38Z,10:3.12345}", &[(10, 3.12345)]),
            (
                "{t:2024-09-25T13:19:38Z,100:-2000.12345}",
                &[(100, -2000.12345)],
            ),
            (
                "{t:2024-09-25T13:19:38Z,100:-2000.12345,21:12345.23450}",
                &[(100, -2000.12345), (21, 12345.2345)],
            ),
            (
                "{t:2024-09-25T13:19:38Z💣💣💣💣,100:-2000.12345,21:12345.23450}",
                &[(100, -2000.12345), (21, 12345.2345)],
            ),
            (
                "{t:2024-09-25T13:19:38Z,100:-2000.12345,21:null}",
                &[(100, -2000.12345)],
            ),
            (
                "{100:-2000.12345,t:2024-09-25T13:19:38Z,21:12345.23450}",
                &[(100, -2000.12345), (21, 12345.2345)],
            ),
            (
                "{t:2024-09-25T13:19:38Z, 100 : -2000.12345, 21 : 12345.23450}",
                &[(100, -2000.12345), (21, 12345.2345)],
            ),
            (
                "{  t:2024-09-25T13:19:38Z,100:-2000.12345,21:12345.23450  }",
                &[(100, -2000.12345), (21, 12345.2345)],
            ),
            (
                "   {t:2024-09-25T13:19:38Z,100:-2000.12345,21:12345.23450}  ",
                &[(100, -2000.12345), (21, 12345.2345)],
            ),
        ];
        for (s, want) in cases {
            let d = ok(s);
            assert!(d.problems.is_empty(), "{s:?}: {:?}", d.problems);
            let want: Vec<_> = want.iter().map(|&(id, v)| (id, T2, v)).collect();
            assert_eq!(pairs(&d), want, "{s:?}");
        }
        let e = decode(
            b"ceci n'est pas un message",
            &LIMITS,
            &mut Decoded::default(),
        )
        .expect_err("not a message");
        assert_eq!(
            e.to_string(),
            "at byte 0: expected '{', found 'c'",
            "the byte position stays in the message"
        );
    }

    #[test]
    fn a_pair_glued_to_the_z_is_its_own_pair() {
        let d = ok("{t:2017-03-24T13:35:14Z4:114}");
        assert_eq!(pairs(&d), vec![(4, T, 114.0)]);
        assert!(d.problems.is_empty());
        let d = ok("{1:2,t:2017-03-24T13:35:14z4:114 5:6}");
        assert_eq!(pairs(&d), vec![(1, T, 2.0), (4, T, 114.0), (5, T, 6.0)]);
        // Anything else glued to the Z is a problem, never swallowed.
        let d = ok("{t:2017-03-24T13:35:14Zjunk,1:1}");
        assert_eq!(pairs(&d), vec![(1, T, 1.0)]);
        assert_eq!(kinds(&d), vec![ErrorKind::MalformedRaw]);
        assert!(
            d.problems[0].message.contains("at byte 23"),
            "{}",
            d.problems[0]
        );
    }

    #[test]
    fn non_ascii_bytes_are_dropped_and_counted() {
        let d = ok("{t:2017-03-24T13:35:14Z,1:2\u{e9}1,\u{feff}2:5}");
        assert_eq!(pairs(&d), vec![(1, T, 21.0), (2, T, 5.0)]);
        assert_eq!(d.dropped_bytes, 2 + 3);
        let d = ok_bytes(b"\xff{t:2017-03-24T13:35:14Z,\xc3(1:7}");
        assert_eq!(pairs(&d), vec![]);
        assert_eq!(kinds(&d), vec![ErrorKind::InvalidSensorId]);
        assert_eq!(d.dropped_bytes, 2);
        // Positions in messages are those of the payload as sent.
        assert!(
            d.problems[0]
                .message
                .starts_with("at byte 26: sensor id (1 "),
            "{}",
            d.problems[0]
        );
        assert_eq!(ok("{t:2017-03-24T13:35:14Z,1:21}").dropped_bytes, 0);
    }

    #[test]
    fn whitespace_and_control_bytes_around_the_braces_are_ignored() {
        for s in [
            &b"{t:2017-03-24T13:35:14Z,1:21}\0"[..],
            b"\0\0{t:2017-03-24T13:35:14Z,1:21}\0\0\0",
            b"\x0b\x0c {t:2017-03-24T13:35:14Z,1:21}\r\n\x7f",
            b"\t{t:2017-03-24T13:35:14Z,1:21}\x1b",
        ] {
            let d = ok_bytes(s);
            assert_eq!(pairs(&d), vec![(1, T, 21.0)], "{s:?}");
            assert!(d.problems.is_empty(), "{s:?}");
        }
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
            "{t:2017-03-24T13:35:14Z,,1:21,,,13:-66.5,}",
            "{,1:21,13:-66.5,t:2017-03-24T13:35:14Z}",
        ] {
            let d = ok(s);
            assert_eq!(pairs(&d), want, "{s:?}");
            assert!(d.problems.is_empty(), "{s:?}: {:?}", d.problems);
        }
    }

    #[test]
    fn numbers_signs_and_leading_dots() {
        let d = ok("{t:2017-03-24T13:35:14Z,1:-.5,2:.5,3:+.25,4:007,5:-0}");
        assert_eq!(
            pairs(&d),
            vec![
                (1, T, -0.5),
                (2, T, 0.5),
                (3, T, 0.25),
                (4, T, 7.0),
                (5, T, 0.0)
            ]
        );
        assert!(d.problems.is_empty());
    }

    #[test]
    fn null_values_are_skipped_and_empty_braces_are_fine() {
        let d = ok("{t:2017-03-24T13:35:14Z,1:null,2:5}");
        assert_eq!(pairs(&d), vec![(2, T, 5.0)]);
        assert!(d.problems.is_empty());
        assert_eq!(ok("{}"), Decoded::default());
        assert_eq!(ok(" { \n } "), Decoded::default());
        assert_eq!(ok("{t:2017-03-24T13:35:14Z}"), Decoded::default());
        assert_eq!(ok("{1:null,2:null}"), Decoded::default());
        assert_eq!(ok("{-1:null}"), Decoded::default());
    }

    #[test]
    fn one_bad_pair_costs_no_other_reading() {
        // (payload, stored sensors, problems as (kind, sensor, text in the message))
        type Want = &'static [(ErrorKind, Option<u32>, &'static str)];
        let cases: [(&str, &[u32], Want); 12] = [
            (
                "{t:2017-03-24T13:35:14Z,1:-,2:5}",
                &[2],
                &[(
                    ErrorKind::InvalidValue,
                    Some(1),
                    "at byte 24: sensor 1: value \"-\"",
                )],
            ),
            (
                "{t:2017-03-24T13:35:14Z,1:1-2,2:5}",
                &[2],
                &[(
                    ErrorKind::InvalidValue,
                    Some(1),
                    "value \"1-2\" is not a number",
                )],
            ),
            (
                "{t:2017-03-24T13:35:14Z,-1:5,2:5}",
                &[2],
                &[(ErrorKind::InvalidSensorId, None, "at byte 24: sensor id -1")],
            ),
            (
                "{t:2017-03-24T13:35:14Z,x:5,2:5}",
                &[2],
                &[(ErrorKind::InvalidSensorId, None, "sensor id x")],
            ),
            (
                "{t:2017-03-24T13:35:14Z,1:,2:5}",
                &[2],
                &[(ErrorKind::InvalidValue, Some(1), "sensor 1: no value")],
            ),
            (
                "{t:2017-03-24T13:35:14Z,1:abc,2:5,3:1e5,4:5.}",
                &[2],
                &[
                    (ErrorKind::InvalidValue, Some(1), "\"abc\""),
                    (ErrorKind::InvalidValue, Some(3), "\"1e5\""),
                    (ErrorKind::InvalidValue, Some(4), "\"5.\""),
                ],
            ),
            (
                "{t:2017-03-24T13:35:14Z,1:2:3,2:5}",
                &[2],
                &[(ErrorKind::InvalidValue, Some(1), "\"2:3\"")],
            ),
            (
                "{t:2017-03-24T13:35:14Z,1 21,2:5}",
                &[2],
                &[
                    (
                        ErrorKind::MalformedRaw,
                        None,
                        "at byte 24: expected a pair key:value, found \"1\"",
                    ),
                    (
                        ErrorKind::MalformedRaw,
                        None,
                        "at byte 26: expected a pair key:value, found \"21\"",
                    ),
                ],
            ),
            (
                "{t:2017-03-24T13:35:14Z,:7,2:5}",
                &[2],
                &[(ErrorKind::MalformedRaw, None, "found \":7\"")],
            ),
            (
                "{t:2017-03-24T13:35:14Z,1:2}},2:5}",
                &[2],
                &[(ErrorKind::InvalidValue, Some(1), "\"2}}\"")],
            ),
            (
                "{t:2017-03-24T13:35:14Z,1:21,4294967296:3,99999999999999999999999:4,2:22}",
                &[1, 2],
                &[
                    (ErrorKind::InvalidSensorId, None, "sensor id 4294967296"),
                    (
                        ErrorKind::InvalidSensorId,
                        None,
                        "sensor id 99999999999999999999999",
                    ),
                ],
            ),
            (
                "{t:2017-03-24T13:35:14Z,1:\x002,2:5}",
                &[2],
                &[(ErrorKind::InvalidValue, Some(1), "\"\\02\"")],
            ),
        ];
        for (s, stored, problems) in cases {
            let d = ok(s);
            let ids: Vec<u32> = d.readings.iter().map(|r| r.sensor_id).collect();
            assert_eq!(ids, stored, "{s:?}");
            assert_eq!(d.problems.len(), problems.len(), "{s:?}: {:?}", d.problems);
            for (p, (kind, sensor, text)) in d.problems.iter().zip(problems) {
                assert_eq!((p.kind, p.sensor_id), (*kind, *sensor), "{s:?}: {p}");
                assert!(p.message.contains(text), "{s:?}: {p} lacks {text:?}");
            }
        }
        let huge = format!("{{t:2017-03-24T13:35:14Z,1:{},2:1}}", "9".repeat(400));
        let d = ok(&huge);
        assert_eq!(kinds(&d), vec![ErrorKind::InvalidValue]);
        assert_eq!(pairs(&d), vec![(2, T, 1.0)]);
    }

    #[test]
    fn timestamp_problems_stamp_every_reading_and_never_go_unsaid() {
        let d = ok("{1:21,2:null,3:4}");
        assert!(d.readings.is_empty());
        assert_eq!(kinds(&d), vec![ErrorKind::MissingTimestamp; 2]);
        assert_eq!(d.problems[0].sensor_id, Some(1));

        let d = ok("{t:2017-02-30T00:00:00Z,1:21}");
        assert_eq!(kinds(&d), vec![ErrorKind::InvalidTimestamp]);
        let d = ok("{t:2099-01-01T00:00:00Z,1:21,2:22}");
        assert_eq!(kinds(&d), vec![ErrorKind::FutureTimestamp; 2]);

        // A timestamp that stamps no reading is still reported when it cannot be read, so a
        // pair hidden in it (after an offset, say) never disappears silently.
        for (s, kind) in [
            ("{t:}", ErrorKind::InvalidTimestamp),
            ("{t:garbage}", ErrorKind::InvalidTimestamp),
            (
                "{t:2017-03-24T15:35:14+02:004:114}",
                ErrorKind::InvalidTimestamp,
            ),
            (
                "{t:2099-01-01T00:00:00Z,1:null}",
                ErrorKind::FutureTimestamp,
            ),
        ] {
            let d = ok(s);
            assert_eq!(kinds(&d), vec![kind], "{s:?}");
            assert!(d.readings.is_empty());
        }
    }

    #[test]
    fn message_errors_say_what_and_where() {
        let cases: [(&[u8], usize, &str); 8] = [
            (b"ceci n'est pas un message", 0, "'{'"),
            (b"", 0, "'{'"),
            (b"\0", 1, "'{'"),
            (
                b"{t:2017-03-24T13:35:14Z,1:21",
                28,
                "'}' closing the message",
            ),
            (b"{", 1, "'}' closing the message"),
            (b"{1:2}{3:4", 9, "'}' closing the message"),
            ("\u{e9}x{1:2}".as_bytes(), 2, "'{'"),
            (
                b"{1:2,t:2017-03-24T13:35:14Z,t:2017-03-24T13:35:14Z}",
                28,
                "a single t pair",
            ),
        ];
        for (s, at, expected) in cases {
            let mut d = Decoded::default();
            let e = decode(s, &LIMITS, &mut d).expect_err("rejected");
            assert_eq!((e.at, e.expected), (at, expected), "{s:?}: {e}");
            assert!(d.readings.is_empty());
        }
    }

    #[test]
    fn offsets_in_the_timestamp_follow_the_timestamp_rules() {
        // A zone offset is accepted; a space ends the value (and the rest is reported).
        let d = ok("{t:2017-03-24T15:35:14+02:00,1:1}");
        assert_eq!(
            d.readings,
            vec![Reading {
                sensor_id: 1,
                recorded_at: T,
                value: 1.0
            }]
        );
        let d = ok("{t:2017-03-24T15:35:14+0200,1:1}");
        assert_eq!(pairs(&d), vec![(1, T, 1.0)]);
        let d = ok("{t:2017-03-24 13:35:14Z,1:1}");
        assert!(d.readings.is_empty());
        assert!(!d.problems.is_empty());
    }
}
