//! Property tests: any valid payload we generate, in either format and in any of the allowed
//! spellings, decodes to exactly the readings it was generated from.

use proptest::prelude::*;

use crate::json::{decode_with_serde_json, JsonDecoder};
use crate::raw;
use crate::reading::{Decoded, Limits, Reading};
use crate::timestamp::format_utc;

const LIMITS: Limits = Limits {
    now: 1_800_000_000,
    max_future_secs: 86_400,
};

/// A sensor value: `None` is written as `null` (and must be skipped).
fn value() -> impl Strategy<Value = Option<f64>> {
    prop_oneof![
        1 => Just(None),
        8 => (-10_000_000i64..10_000_000, 0u32..4).prop_map(|(m, k)| Some(m as f64 / 10f64.powi(k as i32))),
    ]
}

/// (sensor id, value) pairs of one timestamp.
type Sensors = Vec<(u32, Option<f64>)>;

fn sensors() -> impl Strategy<Value = Sensors> {
    prop::collection::vec((any::<u32>(), value()), 0..16)
}

/// Spells `secs` as a timestamp: `T` or space (when allowed), fraction, zone.
fn spell(secs: i64, style: (bool, bool, u8, i32), space_ok: bool) -> String {
    let (space, fraction, zone, offset_min) = style;
    let zone = zone % 3;
    let local = if zone == 2 {
        secs + i64::from(offset_min) * 60
    } else {
        secs
    };
    let mut s = format_utc(local);
    s.pop(); // the Z
    if space && space_ok {
        s.replace_range(10..11, " ");
    }
    if fraction {
        s.push_str(".125");
    }
    match zone {
        0 => s.push('Z'),
        1 => {}
        _ => {
            let sign = if offset_min < 0 { '-' } else { '+' };
            let a = offset_min.unsigned_abs();
            s.push_str(&format!("{sign}{:02}:{:02}", a / 60, a % 60));
        }
    }
    s
}

fn style() -> impl Strategy<Value = (bool, bool, u8, i32)> {
    (
        any::<bool>(),
        any::<bool>(),
        any::<u8>(),
        -(23 * 60 + 59)..=(23 * 60 + 59),
    )
}

fn expected(entries: &[(i64, Sensors)]) -> Vec<Reading> {
    entries
        .iter()
        .flat_map(|(t, s)| {
            s.iter().filter_map(move |(id, v)| {
                v.map(|value| Reading {
                    sensor_id: *id,
                    recorded_at: *t as u32,
                    value,
                })
            })
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn raw_payloads_decode_to_what_was_generated(
        t in 0i64..=LIMITS.now,
        style in style(),
        sensors in sensors(),
        t_at in any::<prop::sample::Index>(),
        seps in prop::collection::vec(prop::sample::select(vec![",", " ", ", ", " , ", "\n  ", ",\n", "\t"]), 17),
        trailing in any::<bool>(),
        pad in prop::sample::select(vec!["", " ", "\n", " \t "]),
    ) {
        let mut pairs: Vec<String> = sensors
            .iter()
            .map(|(id, v)| match v {
                Some(v) => format!("{id}:{v}"),
                None => format!("{id}:null"),
            })
            .collect();
        let at = t_at.index(pairs.len() + 1);
        pairs.insert(at, format!("t:{}", spell(t, style, false)));
        let mut s = format!("{pad}{{{pad}");
        for (i, p) in pairs.iter().enumerate() {
            if i > 0 {
                s.push_str(seps[i - 1]);
            }
            s.push_str(p);
        }
        if trailing {
            s.push(',');
        }
        s.push_str(&format!("{pad}}}{pad}"));

        let mut out = Decoded::default();
        let r = raw::decode(s.as_bytes(), &LIMITS, &mut out);
        prop_assert!(r.is_ok(), "{:?}: {:?}", s, r);
        prop_assert!(out.problems.is_empty(), "{:?}: {:?}", s, out.problems);
        prop_assert_eq!(out.readings, expected(&[(t, sensors)]));
    }

    #[test]
    fn json_payloads_decode_to_what_was_generated(
        entries in prop::collection::vec((0i64..=LIMITS.now, style(), sensors()), 0..5),
        text_values in any::<bool>(),
    ) {
        let mut data = Vec::new();
        for (t, style, sensors) in &entries {
            let sensors: Vec<serde_json::Value> = sensors
                .iter()
                .map(|(id, v)| {
                    let value = match v {
                        None => serde_json::Value::Null,
                        Some(v) if text_values => serde_json::Value::String(v.to_string()),
                        Some(v) => serde_json::json!(v),
                    };
                    serde_json::json!({"id": id, "value": value})
                })
                .collect();
            data.push(serde_json::json!({"recorded_at": spell(*t, *style, true), "sensors": sensors}));
        }
        let payload = serde_json::json!({"data": data}).to_string();
        let want = expected(
            &entries.iter().map(|(t, _, s)| (*t, s.clone())).collect::<Vec<_>>(),
        );

        let mut out = Decoded::default();
        let r = JsonDecoder::default().decode(payload.as_bytes(), &LIMITS, &mut out);
        prop_assert!(r.is_ok(), "{}: {:?}", payload, r);
        prop_assert!(out.problems.is_empty(), "{}: {:?}", payload, out.problems);
        prop_assert_eq!(&out.readings, &want);

        let mut out2 = Decoded::default();
        prop_assert!(decode_with_serde_json(payload.as_bytes(), &LIMITS, &mut out2).is_ok());
        prop_assert_eq!(out2.readings, want);
    }
}
