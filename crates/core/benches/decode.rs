//! Decode-path benchmark: payload bytes -> validated readings ready for insert, for both formats
//! on realistic payloads (1 x 12 and 10 x 12 readings), and the JSON path once more with
//! serde_json instead of simd-json. Throughput is reported in readings (criterion "elements").
//!
//! `make bench` runs it; docs/performance.md ("Decode benchmark") records the numbers as ratios.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sck_core::encode::{self, Spaced, Utc};
use sck_core::json::{push_payload, JsonDecoder, Payload};
use sck_core::raw;
use sck_core::reading::{Decoded, Limits};

/// The same structs and validation as the decoder, parsed by serde_json instead of simd-json.
fn decode_with_serde_json(
    payload: &[u8],
    limits: &Limits,
    out: &mut Decoded,
) -> Result<(), String> {
    let parsed: Payload<'_> = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
    push_payload(&parsed, limits, out);
    Ok(())
}

const SENSORS: [u32; 12] = [10, 14, 55, 56, 53, 58, 87, 88, 89, 112, 113, 114];
const START: i64 = 1_700_000_000;

fn value(i: usize, j: usize) -> f64 {
    ((i * 37 + j * 11) % 1000) as f64 / 10.0 + 0.05
}

/// The time of entry `i`: a minute apart.
fn recorded_at(i: usize) -> i64 {
    START + i as i64 * 60
}

/// The 12 (sensor, value) pairs of entry `i`.
fn values(i: usize) -> impl Iterator<Item = (u32, f64)> {
    SENSORS
        .iter()
        .enumerate()
        .map(move |(j, &id)| (id, value(i, j)))
}

/// The JSON form devices send: `entries` timestamps of 12 sensors each.
fn json_payload(entries: usize) -> Vec<u8> {
    let mut out = Vec::new();
    encode::json(
        &mut out,
        (0..entries).map(|i| (Spaced(recorded_at(i)), values(i))),
    );
    out
}

/// The raw form: one message per timestamp (the format has a single `t`).
fn raw_payloads(entries: usize) -> Vec<Vec<u8>> {
    (0..entries)
        .map(|i| {
            let mut out = Vec::new();
            encode::raw(&mut out, Utc(recorded_at(i)), values(i));
            out
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let limits = Limits {
        now: START + 86_400,
        max_future_secs: 86_400,
    };
    let mut g = c.benchmark_group("decode");
    for entries in [1usize, 10] {
        let readings = (entries * SENSORS.len()) as u64;
        g.throughput(Throughput::Elements(readings));

        let json = json_payload(entries);
        let mut dec = JsonDecoder::default();
        let mut out = Decoded::default();
        g.bench_function(format!("json_simd/{entries}x12"), |b| {
            b.iter(|| {
                out.clear();
                dec.decode(black_box(&json), &limits, &mut out)
                    .expect("valid");
                assert_eq!(out.readings.len() as u64, readings);
            })
        });
        g.bench_function(format!("json_serde/{entries}x12"), |b| {
            b.iter(|| {
                out.clear();
                decode_with_serde_json(black_box(&json), &limits, &mut out).expect("valid");
                assert_eq!(out.readings.len() as u64, readings);
            })
        });

        let raws = raw_payloads(entries);
        g.bench_function(format!("raw/{entries}x12"), |b| {
            b.iter(|| {
                out.clear();
                for p in &raws {
                    raw::decode(black_box(p), &limits, &mut out).expect("valid");
                }
                assert_eq!(out.readings.len() as u64, readings);
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
