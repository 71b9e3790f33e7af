//! Oracles of "no silent loss", written apart from the parsers: whether a readings payload holds
//! no reading at all. A message that yields neither a reading nor a problem must be one they say
//! holds none. sck-core's property tests and seeded stand-in use them, and so do the fuzz targets
//! (`fuzz/`, through the `oracle` feature, which also makes
//! [`crate::json::decode_with_serde_json`] public): one copy, so they cannot drift apart.

use crate::json::repair;
use crate::reading::{self, Limits};

/// Oracle: a raw payload holds no reading at all. Independent of the parser: the text is
/// cut into `key:value` tokens, and only `t:<a timestamp that validates>` (once) and
/// `<key>:null` hold nothing.
pub fn raw_holds_no_reading(payload: &[u8], limits: &Limits) -> bool {
    let text: Vec<u8> = payload.iter().copied().filter(u8::is_ascii).collect();
    let junk = |c: &u8| *c <= b' ' || *c == 0x7f;
    let start = text.iter().position(|c| !junk(c)).unwrap_or(text.len());
    let end = text.iter().rposition(|c| !junk(c)).map_or(0, |e| e + 1);
    if end < start + 2 || text[start] != b'{' || text[end - 1] != b'}' {
        return false;
    }
    let inner = String::from_utf8_lossy(&text[start + 1..end - 1]).into_owned();
    // Whitespace around ':' belongs to the pair, not between pairs.
    let mut joined = String::new();
    for c in inner.chars() {
        if c == ':' {
            while joined.ends_with([' ', '\t', '\r', '\n']) {
                joined.pop();
            }
        }
        let after_colon = joined.ends_with(':');
        if !(after_colon && [' ', '\t', '\r', '\n'].contains(&c)) {
            joined.push(c);
        }
    }
    let mut times = 0;
    let mut tokens: Vec<&str> = joined.split([' ', '\t', '\r', '\n', ',']).rev().collect();
    while let Some(token) = tokens.pop() {
        match token.split_once(':') {
            None if token.is_empty() => {}
            Some(("t", ts)) => {
                // A timestamp ends at its Z; what is glued to it is the next token.
                let (ts, glued) = match ts.find(['Z', 'z']) {
                    Some(z) => ts.split_at(z + 1),
                    None => (ts, ""),
                };
                if reading::check_time(limits, ts).is_err() {
                    return false;
                }
                times += 1;
                tokens.push(glued);
            }
            Some((key, "null")) if !key.is_empty() => {}
            _ => return false,
        }
    }
    times <= 1
}

/// Oracle: a JSON payload holds no reading at all: it is `{"data":[…]}` and no sensor of any
/// entry has a value other than `null`.
pub fn json_holds_no_reading(payload: &[u8]) -> bool {
    let repaired = repair(payload).map_or_else(|| payload.to_vec(), |(r, _)| r);
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&repaired) else {
        return false;
    };
    let Some(data) = v.get("data").and_then(|d| d.as_array()) else {
        return false;
    };
    data.iter().all(|entry| match entry.as_object() {
        None => false,
        Some(entry) => match entry.get("sensors") {
            None => true,
            Some(sensors) => sensors.as_array().is_some_and(|a| {
                a.iter().all(|s| {
                    s.as_object()
                        .is_some_and(|s| s.get("value") == Some(&serde_json::Value::Null))
                })
            }),
        },
    })
}
