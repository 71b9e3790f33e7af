//! Fuzz target `raw`: the raw readings parser, `sck_core::raw::decode`, on any bytes.
//!
//! The raw format (`{t:2017-03-24T13:35:14Z,1:21,13:66,}`) is parsed by hand from whatever a
//! device sends: truncated messages, line noise, firmware bugs. Besides no panic (built with
//! overflow checks and AddressSanitizer), it checks:
//! - no silent loss: a message that yields neither a reading nor a problem holds none, as the
//!   independent oracle says (the invariant of sck-core's property tests and seeded stand-in);
//! - a message rejected whole points at a byte of the payload as sent: `RawError::at` is inside
//!   it (or its end), `found` is the ASCII byte there, and so do the `at byte N` of its pairs'
//!   problems (positions are mapped back over the dropped non-ASCII bytes);
//! - exactly the payload's non-ASCII bytes are dropped, every reading is storable, and all carry
//!   the one `t`;
//! - the readings, written again by `sck_core::encode::raw` and decoded, are the same readings.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sck_core::raw;
use sck_core::reading::Decoded;
use sck_fuzz::{
    check_not_lost, check_readings, non_ascii, raw_holds_no_reading, raw_round_trip, shown, LIMITS,
};

fuzz_target!(|payload: &[u8]| {
    let mut out = Decoded::default();
    match raw::decode(payload, &LIMITS, &mut out) {
        Ok(()) => {
            check_not_lost("raw", payload, &out, || raw_holds_no_reading(payload));
            raw_round_trip(payload, &out.readings);
        }
        Err(e) => assert!(
            e.at <= payload.len()
                && e.found == payload.get(e.at).copied()
                && e.found.is_none_or(|c| c.is_ascii()),
            "raw: {e} does not point at the payload's byte: {}",
            shown(payload)
        ),
    }
    check_readings("raw", payload, &out);
    assert_eq!(
        out.dropped_bytes,
        non_ascii(payload),
        "raw: dropped bytes of {}",
        shown(payload)
    );
    for p in &out.problems {
        let Some(at) = p.message.strip_prefix("at byte ") else {
            continue;
        };
        let at: usize = at
            .split(':')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("raw: problem {p} has no byte position"));
        assert!(
            payload.get(at).is_some_and(u8::is_ascii),
            "raw: problem {p} points at no ASCII byte of {}",
            shown(payload)
        );
    }
});
