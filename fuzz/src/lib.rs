//! What the fuzz targets assert, shared by the three of them (`fuzz_targets/`).
//!
//! Every check panics with the input (shortened) in its message, so libFuzzer records the input
//! as a crash. Beyond "no panic inside sck-core", the targets assert:
//!
//! - no silent loss: a readings message that yields neither a reading nor a problem holds no
//!   reading at all, as an oracle written independently of the parsers says
//!   ([`raw_holds_no_reading`], [`json_holds_no_reading`]);
//! - every reading is one the decoder may store ([`check_readings`]);
//! - the readings read back: written again by `sck_core::encode` and decoded, they are the same
//!   readings, with no problem ([`raw_round_trip`], [`json_round_trip`]).
//!
//! The two oracles are sck-core's own (`sck_core::oracle`, public with its `oracle` feature),
//! the ones its property tests and seeded stand-in use.

use std::fmt::Write as _;

use sck_core::encode::{self, Utc};
use sck_core::json::{self, JsonDecoder};
use sck_core::oracle;
use sck_core::raw;
use sck_core::reading::{Decoded, Limits, Reading};

/// The decoder's clock, as in sck-core's property tests: readings up to one day after
/// 2027-01-15 are in the window.
pub const LIMITS: Limits = Limits {
    now: 1_800_000_000,
    max_future_secs: 86_400,
};

/// The start of a payload for a panic message: at most 300 bytes, escaped, and its length.
pub fn shown(payload: &[u8]) -> String {
    let mut s = String::new();
    for &c in payload.iter().take(300) {
        let _ = write!(s, "{}", std::ascii::escape_default(c));
    }
    if payload.len() > 300 {
        s.push('…');
    }
    format!("{} bytes: \"{s}\"", payload.len())
}

/// How many bytes of `payload` are not ASCII (the most the parsers may drop).
pub fn non_ascii(payload: &[u8]) -> usize {
    payload.iter().filter(|c| !c.is_ascii()).count()
}

/// Every reading is storable: a finite value and a `recorded_at` inside the window (no later
/// than `now + max_future_secs`; a `u32` cannot be before 1970). No more bytes were dropped
/// than the payload has non-ASCII bytes.
pub fn check_readings(what: &str, payload: &[u8], out: &Decoded) {
    let latest = LIMITS.now + LIMITS.max_future_secs;
    for r in &out.readings {
        assert!(
            r.value.is_finite() && i64::from(r.recorded_at) <= latest,
            "{what}: unstorable reading {r:?} from {}",
            shown(payload)
        );
    }
    assert!(
        out.dropped_bytes <= non_ascii(payload),
        "{what}: {} bytes dropped, the payload has {} non-ASCII bytes: {}",
        out.dropped_bytes,
        non_ascii(payload),
        shown(payload)
    );
}

/// No silent loss: `out` has a reading or a problem, unless the oracle says the payload holds
/// no reading (`holds_none` is only evaluated then: the oracles are slow).
pub fn check_not_lost(
    what: &str,
    payload: &[u8],
    out: &Decoded,
    holds_none: impl FnOnce() -> bool,
) {
    assert!(
        !out.readings.is_empty() || !out.problems.is_empty() || holds_none(),
        "{what}: yielded neither a reading nor a problem, and the oracle says it holds one: {}",
        shown(payload)
    );
}

/// The readings of a raw message, written again with [`encode::raw`] and decoded: the same
/// readings, no problem. They all carry the message's one `t`.
pub fn raw_round_trip(payload: &[u8], readings: &[Reading]) {
    let Some(first) = readings.first() else {
        return;
    };
    assert!(
        readings.iter().all(|r| r.recorded_at == first.recorded_at),
        "raw: readings with different timestamps from one t: {}",
        shown(payload)
    );
    let mut again = Vec::new();
    encode::raw(
        &mut again,
        Utc(i64::from(first.recorded_at)),
        readings.iter().map(|r| (r.sensor_id, r.value)),
    );
    let mut out = Decoded::default();
    let result = raw::decode(&again, &LIMITS, &mut out);
    assert!(
        result.is_ok() && out.problems.is_empty() && out.readings == readings,
        "raw: the readings of {} written again as {} decode to {result:?} {out:?}",
        shown(payload),
        shown(&again)
    );
}

/// The readings of a JSON message, written again with [`encode::json`] (one entry per run of
/// equal timestamps) and decoded: the same readings, no problem.
pub fn json_round_trip(payload: &[u8], readings: &[Reading]) {
    if readings.is_empty() {
        return;
    }
    let entries: Vec<(Utc, Vec<(u32, f64)>)> = readings
        .chunk_by(|a, b| a.recorded_at == b.recorded_at)
        .map(|run| {
            let t = Utc(i64::from(run[0].recorded_at));
            (t, run.iter().map(|r| (r.sensor_id, r.value)).collect())
        })
        .collect();
    let mut again = Vec::new();
    encode::json(&mut again, entries);
    let mut out = Decoded::default();
    let result = JsonDecoder::default().decode(&again, &LIMITS, &mut out);
    assert!(
        result.is_ok() && out.problems.is_empty() && out.readings == readings,
        "json: the readings of {} written again as {} decode to {result:?} {out:?}",
        shown(payload),
        shown(&again)
    );
}

/// The JSON decoder's path with serde_json instead of simd-json (sck-core's, through its
/// `oracle` feature), on the fuzz clock.
pub fn decode_with_serde_json(payload: &[u8], out: &mut Decoded) -> Result<(), String> {
    json::decode_with_serde_json(payload, &LIMITS, out).map_err(|e| e.to_string())
}

/// sck-core's raw oracle on the fuzz clock: the payload holds no reading at all.
pub fn raw_holds_no_reading(payload: &[u8]) -> bool {
    oracle::raw_holds_no_reading(payload, &LIMITS)
}

pub use sck_core::oracle::json_holds_no_reading;
