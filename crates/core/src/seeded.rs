//! A bounded, deterministic stand-in for fuzzing, run by every `cargo test`: 300,000 inputs from
//! a fixed seed (random bytes, mutated valid payloads of both formats, numbers of hundreds of
//! digits and huge exponents, nesting thousands deep, invalid UTF-8, and a few 1 MB payloads)
//! through the whole decode path of every device topic. It asserts no panic and the decoder's
//! invariant: a readings message that yields no reading yields a problem, unless the oracles of
//! [`crate::proptests`] say it holds none. Same seed, same inputs: a failure reproduces.

use crate::decode::Decoder;
use crate::encode::{self, Utc};
use crate::proptests::{check_nothing_silently_lost, LIMITS};
use crate::reading::Decoded;

const SEED: u64 = 0x5c_4b_1e_55_d0_0d_f0_0d;

/// xorshift64*: small, fast, and the same sequence everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

fn valid(rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    let t = 1_500_000_000 + rng.below(200_000_000) as i64;
    let sensors: Vec<(u32, Option<f64>)> = (0..rng.below(14))
        .map(|_| {
            let v = (rng.next() as i64 % 100_000) as f64 / 100.0;
            (rng.below(200) as u32, (rng.below(10) > 0).then_some(v))
        })
        .collect();
    if rng.below(2) == 0 {
        encode::raw(&mut out, Utc(t), sensors.iter().copied());
    } else {
        let entries: Vec<_> = (0..1 + rng.below(3))
            .map(|i| (Utc(t + i as i64), sensors.clone()))
            .collect();
        encode::json(
            &mut out,
            entries.iter().map(|(t, s)| (*t, s.iter().copied())),
        );
    }
    out
}

fn mutate(rng: &mut Rng, mut b: Vec<u8>) -> Vec<u8> {
    for _ in 0..1 + rng.below(8) {
        let at = rng.below(b.len() + 1);
        match rng.below(5) {
            0 if at < b.len() => b[at] = rng.byte(),
            1 => b.insert(at, rng.byte()),
            2 if at < b.len() => {
                b.remove(at);
            }
            3 => {
                let end = (at + rng.below(16)).min(b.len());
                let piece = b[at..end].to_vec();
                b.splice(at..at, piece);
            }
            _ => {
                // Invalid UTF-8 and control bytes.
                let bad: &[u8] =
                    [&b"\xff"[..], b"\xc3", b"\xe2\x82", b"\0", b"\xef\xbb\xbf"][rng.below(5)];
                b.splice(at..at, bad.iter().copied());
            }
        }
    }
    b
}

fn huge_numbers(rng: &mut Rng) -> Vec<u8> {
    let digits: String = (0..1 + rng.below(400))
        .map(|_| char::from(b'0' + rng.below(10) as u8))
        .collect();
    let exp = format!("1e{}{}", ["", "-", "+"][rng.below(3)], rng.next() % 100_000);
    if rng.below(2) == 0 {
        format!("{{t:2017-03-24T13:35:14Z,1:{digits},2:{exp},3:-{digits}.{digits},}}").into_bytes()
    } else {
        format!(
            r#"{{"data":[{{"recorded_at":"2017-03-24 13:35:14","sensors":[{{"id":{digits},"value":{exp}}},{{"id":1,"value":-{digits}}}]}}]}}"#
        )
        .into_bytes()
    }
}

fn deep(rng: &mut Rng) -> Vec<u8> {
    let depth = 1 + rng.below(5_000);
    let (open, close) = [("[", "]"), ("{\"a\":", "}"), ("{", "}")][rng.below(3)];
    let inner = format!("{}1{}", open.repeat(depth), close.repeat(depth));
    if rng.below(2) == 0 {
        format!(r#"{{"data":[{{"recorded_at":"2017-03-24 13:35:14","sensors":[{{"id":1,"value":{inner}}}]}}]}}"#)
            .into_bytes()
    } else {
        inner.into_bytes()
    }
}

fn megabyte(rng: &mut Rng, kind: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 << 20);
    match kind {
        0 => {
            let sensors: Vec<(u32, Option<f64>)> = (0..12).map(|i| (i, Some(i as f64))).collect();
            let entries: Vec<_> = (0..6_000)
                .map(|i| (Utc(1_600_000_000 + i), sensors.clone()))
                .collect();
            encode::json(
                &mut out,
                entries.iter().map(|(t, s)| (*t, s.iter().copied())),
            );
        }
        1 => {
            out.extend_from_slice(b"{t:2017-03-24T13:35:14Z,");
            while out.len() < 1 << 20 {
                out.extend_from_slice(
                    format!("{}:{},", rng.below(1000), rng.below(1000)).as_bytes(),
                );
            }
            out.push(b'}');
        }
        _ => out.extend((0..1 << 20).map(|_| rng.byte())),
    }
    out
}

#[test]
fn three_hundred_thousand_seeded_inputs_never_panic_nor_vanish() {
    let mut rng = Rng(SEED);
    let mut decoder = Decoder::default();
    let mut out = Decoded::default();
    let topics = [
        "device/sck/tok/hello",
        "device/sck/tok/info",
        "device/inventory",
        "bridge/device/sck/tok/readings",
    ];
    let mut checked = 0;
    for i in 0..300_000 {
        let payload = match i % 10 {
            0..=2 => (0..rng.below(512)).map(|_| rng.byte()).collect(),
            3..=6 => {
                let v = valid(&mut rng);
                mutate(&mut rng, v)
            }
            7 => huge_numbers(&mut rng),
            8 if i % 100 == 8 => deep(&mut rng),
            _ => valid(&mut rng),
        };
        if let Err(e) = check_nothing_silently_lost(&payload) {
            panic!("input {i} (seed {SEED:#x}): {e}");
        }
        let topic = topics[rng.below(topics.len())];
        decoder.decode(Some(topic), &payload, &LIMITS, &mut out);
        checked += 1;
    }
    for kind in 0..3 {
        let payload = megabyte(&mut rng, kind);
        assert!(payload.len() >= 1 << 20);
        check_nothing_silently_lost(&payload).unwrap_or_else(|e| panic!("1 MB input {kind}: {e}"));
        checked += 1;
    }
    assert_eq!(checked, 300_003);
}
