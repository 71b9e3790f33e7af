//! `sck-decoder decode`: what a payload decodes to, with exactly the pipeline's code.
//!
//! For operators debugging a device ("why are this kit's readings missing?") and for tests that
//! check thousands of cases in one process. It runs [`sck_core::decode::Decoder`] as the
//! pipeline does and prints, as JSON lines, each row that would be stored, each problem that
//! would become an `ingest_errors` row, and a summary. No Kafka, ClickHouse or network.
//!
//! Everything here is pure (bytes in, lines out); `main.rs` only wires stdin/stdout.

use std::io::{self, Write};

use sck_core::decode::{Decoder, Outcome};
use sck_core::reading::{Decoded, Limits};
use sck_core::timestamp::{self, format_utc};
use sck_store::tables;
use serde::Serialize;

/// What one payload (or a whole `--lines` run) came to.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub payloads: usize,
    pub rows: usize,
    pub problems: usize,
    /// Payloads with at least one problem.
    pub failed: usize,
}

impl Tally {
    /// The exit status: 0 when everything decoded (rows or a legitimately empty message),
    /// 1 when anything produced problems.
    pub fn exit_code(&self) -> u8 {
        u8::from(self.failed > 0)
    }
}

/// One output line: `type` first, then the fields of its kind, then `line` in `--lines` mode.
#[derive(Serialize)]
struct Line<T: Serialize> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(flatten)]
    fields: T,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<usize>,
}

#[derive(Serialize)]
struct RowLine<'a> {
    table: &'static str,
    device_token: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sensor_id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recorded_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    format: Option<&'static str>,
}

#[derive(Serialize)]
struct ProblemLine<'a> {
    kind: &'static str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sensor_id: Option<u32>,
}

#[derive(Serialize)]
struct SummaryLine<'a> {
    topic: &'a str,
    outcome: &'static str,
    rows: usize,
    problems: usize,
    dropped_bytes: usize,
}

#[derive(Serialize)]
struct TotalLine {
    payloads: usize,
    rows: usize,
    problems: usize,
    payloads_with_problems: usize,
}

fn emit<T: Serialize>(
    out: &mut impl Write,
    kind: &'static str,
    fields: T,
    line: Option<usize>,
) -> io::Result<()> {
    serde_json::to_writer(&mut *out, &Line { kind, fields, line })?;
    out.write_all(b"\n")
}

/// Decodes one payload and writes its lines. `line` numbers the payload in `--lines` mode.
pub fn decode_one(
    out: &mut impl Write,
    decoder: &mut Decoder,
    topic: &str,
    payload: &[u8],
    limits: &Limits,
    line: Option<usize>,
) -> io::Result<Tally> {
    let mut decoded = Decoded::default();
    let outcome = decoder.decode(Some(topic), payload, limits, &mut decoded);
    let device_token = outcome.token();
    let mut rows = 0;
    let event = |table| RowLine {
        table,
        device_token,
        sensor_id: None,
        recorded_at: None,
        value: None,
        format: None,
    };
    let (outcome_name, events) = match outcome {
        Outcome::Readings { .. } => ("readings", None),
        Outcome::Hello { .. } => ("hello", Some(event(tables::DEVICE_HELLO))),
        Outcome::Info { .. } => ("info", Some(event(tables::DEVICE_INFO))),
        Outcome::Inventory => ("inventory", Some(event(tables::DEVICE_INVENTORY))),
        Outcome::Rejected { .. } => ("rejected", None),
    };
    if let Outcome::Readings { format, .. } = outcome {
        for r in &decoded.readings {
            let row = RowLine {
                table: tables::READINGS,
                device_token,
                sensor_id: Some(r.sensor_id),
                recorded_at: Some(format_utc(i64::from(r.recorded_at))),
                value: Some(r.value),
                format: Some(format.as_str()),
            };
            emit(out, "row", row, line)?;
            rows += 1;
        }
    }
    if let Some(row) = events {
        emit(out, "row", row, line)?;
        rows += 1;
    }
    for p in &decoded.problems {
        let problem = ProblemLine {
            kind: p.kind.as_str(),
            message: &p.message,
            sensor_id: p.sensor_id,
        };
        emit(out, "problem", problem, line)?;
    }
    let summary = SummaryLine {
        topic,
        outcome: outcome_name,
        rows,
        problems: decoded.problems.len(),
        dropped_bytes: decoded.dropped_bytes,
    };
    emit(out, "summary", summary, line)?;
    Ok(Tally {
        payloads: 1,
        rows,
        problems: decoded.problems.len(),
        failed: usize::from(!decoded.problems.is_empty()),
    })
}

/// `--lines`: one payload per input line, each numbered from 1, then a `total` line.
pub fn decode_lines(
    out: &mut impl Write,
    topic: &str,
    input: &[u8],
    limits: &Limits,
) -> Result<Tally, LinesError> {
    let mut decoder = Decoder::default();
    let mut total = Tally::default();
    let mut lines: Vec<&[u8]> = input.split(|&c| c == b'\n').collect();
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop(); // the newline ending the last line
    }
    for (i, line) in lines.into_iter().enumerate() {
        let payload = unescape(line).map_err(|e| LinesError::Escape { line: i + 1, e })?;
        let t = decode_one(out, &mut decoder, topic, &payload, limits, Some(i + 1))?;
        total.payloads += 1;
        total.rows += t.rows;
        total.problems += t.problems;
        total.failed += t.failed;
    }
    let line = TotalLine {
        payloads: total.payloads,
        rows: total.rows,
        problems: total.problems,
        payloads_with_problems: total.failed,
    };
    emit(out, "total", line, None)?;
    Ok(total)
}

#[derive(Debug, thiserror::Error)]
pub enum LinesError {
    #[error("line {line}: {e}")]
    Escape { line: usize, e: String },
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// One `--lines` line to payload bytes: `\n` `\r` `\t` `\0` `\\` and `\xHH` are escapes (so a
/// payload may hold newlines, NULs or any byte); every other byte stands for itself.
pub fn unescape(line: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(line.len());
    let mut i = 0;
    while i < line.len() {
        if line[i] != b'\\' {
            out.push(line[i]);
            i += 1;
            continue;
        }
        let (byte, len) = match line.get(i + 1) {
            Some(b'n') => (b'\n', 2),
            Some(b'r') => (b'\r', 2),
            Some(b't') => (b'\t', 2),
            Some(b'0') => (0, 2),
            Some(b'\\') => (b'\\', 2),
            Some(b'x') => {
                let hex = line
                    .get(i + 2..i + 4)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("at byte {i}: \\x needs two hex digits"))?;
                (hex, 4)
            }
            Some(&c) => {
                return Err(format!(
                    "at byte {i}: unknown escape \\{} (use \\\\ for a backslash)",
                    c.escape_ascii()
                ))
            }
            None => return Err(format!("at byte {i}: a line cannot end in a lone \\")),
        };
        out.push(byte);
        i += len;
    }
    Ok(out)
}

/// `--now`: Unix seconds, or a timestamp in any form the decoder accepts.
pub fn parse_now(s: &str) -> Result<i64, String> {
    s.trim()
        .parse::<i64>()
        .or_else(|_| timestamp::parse(s.trim()).map_err(|e| e.to_string()))
        .map_err(|e| format!("--now {s:?}: not Unix seconds nor a timestamp ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    const LIMITS: Limits = Limits {
        now: 1_800_000_000,
        max_future_secs: 86_400,
    };

    fn lines(topic: &str, payload: &[u8]) -> (Vec<Value>, Tally) {
        let mut out = Vec::new();
        let t = decode_one(
            &mut out,
            &mut Decoder::default(),
            topic,
            payload,
            &LIMITS,
            None,
        )
        .unwrap();
        let v = out
            .split(|&c| c == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        (v, t)
    }

    #[test]
    fn rows_then_problems_then_a_summary() {
        let (v, t) = lines(
            "device/sck/abc/readings/raw",
            b"{t:2017-03-24T13:35:14Z,1:21,2:-,3:null}",
        );
        assert_eq!(
            v[0],
            json!({"type":"row","table":"readings","device_token":"abc","sensor_id":1,
                   "recorded_at":"2017-03-24T13:35:14Z","value":21.0,"format":"raw"})
        );
        assert_eq!(v[1]["type"], "problem");
        assert_eq!(v[1]["kind"], "invalid_value");
        assert_eq!(v[1]["sensor_id"], 2);
        assert_eq!(
            v[2],
            json!({"type":"summary","topic":"device/sck/abc/readings/raw","outcome":"readings",
                   "rows":1,"problems":1,"dropped_bytes":0})
        );
        assert_eq!(v.len(), 3);
        assert_eq!((t.rows, t.problems, t.failed, t.exit_code()), (1, 1, 1, 1));
    }

    #[test]
    fn empty_messages_and_events_exit_zero_rejections_one() {
        let (v, t) = lines("device/sck/abc/readings/raw", b"{}");
        assert_eq!((v.len(), t.exit_code()), (1, 0));
        let (v, t) = lines("bridge/device/sck/abc/info", br#"{"hw_ver":"2.1"}"#);
        assert_eq!(v[0]["table"], "device_info");
        assert_eq!(t.exit_code(), 0);
        let (v, t) = lines("device/sck/abc/readings", b"ceci n'est pas un message");
        assert_eq!(v[0]["kind"], "malformed_json");
        assert!(v[0].get("sensor_id").is_none());
        assert_eq!(v[1]["outcome"], "rejected");
        assert_eq!(t.exit_code(), 1);
    }

    #[test]
    fn lines_mode_numbers_each_payload_and_totals() {
        let mut out = Vec::new();
        let input =
            b"{t:2017-03-24T13:35:14Z,1:21}\n{t:2017-03-24T13:35:14Z,\\n 2:5,\\x003:x}\n{}\n";
        let t = decode_lines(&mut out, "device/sck/abc/readings/raw", input, &LIMITS).unwrap();
        assert_eq!(
            t,
            Tally {
                payloads: 3,
                rows: 2,
                problems: 1,
                failed: 1
            }
        );
        let v: Vec<Value> = out
            .split(|&c| c == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        let at_line = |n: u64| v.iter().filter(move |x| x["line"] == n).count();
        assert_eq!((at_line(1), at_line(2), at_line(3)), (2, 3, 1));
        assert_eq!(v.last().unwrap()["type"], "total");
        assert_eq!(v.last().unwrap()["payloads_with_problems"], 1);
    }

    #[test]
    fn escapes() {
        assert_eq!(
            unescape(br"a\nb\\n\t\r\0\xff\x7B").unwrap(),
            b"a\nb\\n\t\r\0\xff{"
        );
        assert!(unescape(br"\q").is_err());
        assert!(unescape(br"\x4").is_err());
        assert!(unescape(b"ends\\").is_err());
        let mut out = Vec::new();
        let e = decode_lines(&mut out, "device/sck/a/readings", b"ok\n\\z\n", &LIMITS)
            .expect_err("bad escape");
        assert!(e.to_string().starts_with("line 2:"), "{e}");
    }

    #[test]
    fn now_is_seconds_or_a_timestamp() {
        assert_eq!(parse_now("1490362514"), Ok(1_490_362_514));
        assert_eq!(parse_now("2017-03-24T13:35:14Z"), Ok(1_490_362_514));
        assert!(parse_now("soon").is_err());
    }
}
