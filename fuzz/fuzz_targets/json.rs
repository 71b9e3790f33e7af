//! Fuzz target `json`: the JSON readings decoder, `sck_core::json::JsonDecoder::decode`, on any
//! bytes.
//!
//! simd-json parses the payload in place (unsafe SIMD code; AddressSanitizer is on), and a
//! payload it refuses is repaired and parsed again (`sck_core::json::repair`: non-ASCII bytes
//! dropped, numbers no machine type holds turned into strings). Besides no panic, it checks:
//! - no silent loss: a payload that decodes to neither a reading nor a problem holds none, as
//!   the independent oracle says (the invariant of sck-core's property tests and seeded
//!   stand-in);
//! - every reading is storable, and no more bytes are dropped than are not ASCII;
//! - the readings, written again by `sck_core::encode::json` and decoded, are the same readings;
//! - serde_json agrees: when the same path with serde_json instead of simd-json also accepts
//!   the payload, both give the same readings and problems (the property tests check this for
//!   valid payloads only). Where serde_json reads differently, it is not compared: the dropped
//!   bytes (serde_json does not check that strings it skips are UTF-8, simd-json does, and then
//!   repairs), the problems' texts (serde_json reads an integer beyond u64 as a float, simd-json
//!   refuses it and the repair makes it a string), and payloads holding a `-0` (an integer 0
//!   for simd-json, as for the platform's Ruby, but the float -0.0 for serde_json: not an id).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sck_core::json::JsonDecoder;
use sck_core::reading::Decoded;
use sck_fuzz::{
    check_not_lost, check_readings, decode_with_serde_json, json_holds_no_reading, json_round_trip,
    shown, LIMITS,
};

fuzz_target!(|payload: &[u8]| {
    let mut out = Decoded::default();
    let result = JsonDecoder::default().decode(payload, &LIMITS, &mut out);
    if result.is_ok() {
        check_not_lost("json", payload, &out, || json_holds_no_reading(payload));
        json_round_trip(payload, &out.readings);
    }
    check_readings("json", payload, &out);

    let mut twin = Decoded::default();
    if let (Ok(()), Ok(())) = (&result, decode_with_serde_json(payload, &mut twin)) {
        let problems =
            |d: &Decoded| -> Vec<_> { d.problems.iter().map(|p| (p.kind, p.sensor_id)).collect() };
        // serde_json does not check UTF-8 inside strings it skips (unknown keys), so on such a
        // payload its first parse can succeed where simd-json's fails and takes the repaired
        // path (non-ASCII bytes dropped, e.g. a BOM inside the timestamp): only valid UTF-8 is
        // compared (found in CI: `"2016-06-08 \u{feff}10:30:00"` beside an invalid byte).
        assert!(
            has_minus_zero(payload)
                || std::str::from_utf8(payload).is_err()
                || (&out.readings, problems(&out)) == (&twin.readings, problems(&twin)),
            "json: simd-json decoded {out:?}, serde_json {twin:?}: {}",
            shown(payload)
        );
    }
});

/// Whether the payload holds `-0` not followed by a digit, `.` or an exponent.
fn has_minus_zero(payload: &[u8]) -> bool {
    payload
        .windows(3)
        .any(|w| w[..2] == *b"-0" && !matches!(w[2], b'0'..=b'9' | b'.' | b'e' | b'E'))
        || payload.ends_with(b"-0")
}
