//! Simulated devices and the messages they send, in both formats.
//!
//! Every reading of a run is unique by (token, sensor, recorded_at): each device steps its
//! `recorded_at` by one second per reading timestamp, from a start in the recent past, so stored
//! counts are exact and a collapsed duplicate can never be mistaken for a loss. Pure and
//! deterministic given the random source, so it is unit-tested against the real decoders. The
//! bytes come from `sck_core::encode`, the writer kept beside the parsers.

use sck_core::encode::{self, Spaced, Utc};

/// The sensor ids of a Smart Citizen Kit 2.1 (temperature, humidity, noise, PM, …), cycled
/// when a run asks for more sensors.
const SCK_SENSORS: [u32; 12] = [10, 14, 55, 56, 53, 58, 87, 88, 89, 112, 113, 114];

/// One simulated device.
#[derive(Debug, Clone)]
pub struct Device {
    pub token: String,
    /// `recorded_at` of its next reading timestamp, Unix seconds.
    pub next_t: i64,
    seq: u64,
}

/// A message ready to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
    pub readings: usize,
    /// The last `recorded_at` in the message (for latency tracking).
    pub last_t: i64,
    pub raw: bool,
}

/// The sensor ids a device of a run reports.
pub fn sensor_ids(n: usize) -> Vec<u32> {
    (0..n)
        .map(|i| SCK_SENSORS[i % SCK_SENSORS.len()] + 1000 * (i / SCK_SENSORS.len()) as u32)
        .collect()
}

/// The token of the run's device `index`: the run id is its prefix, so a run's rows are found
/// with `LIKE '<run>d%'`.
pub fn token(run_id: &str, index: usize) -> String {
    format!("{run_id}d{index}")
}

impl Device {
    pub fn new(run_id: &str, index: usize, start: i64) -> Device {
        Device {
            token: token(run_id, index),
            next_t: start,
            seq: 0,
        }
    }

    /// The next message: raw (one timestamp) or JSON with `entries` timestamps.
    pub fn next_message(&mut self, sensors: &[u32], raw: bool, entries: usize) -> Message {
        let entries = if raw { 1 } else { entries.max(1) };
        let mut payload = Vec::with_capacity(64 + sensors.len() * 24 * entries);
        let first_t = self.next_t;
        let this = &*self;
        let values = |e: usize| {
            sensors
                .iter()
                .enumerate()
                .map(move |(j, &id)| (id, this.value(j, e)))
        };
        if raw {
            encode::raw(&mut payload, Utc(first_t), values(0));
        } else {
            encode::json(
                &mut payload,
                (0..entries).map(|e| (Spaced(first_t + e as i64), values(e))),
            );
        }
        self.next_t += entries as i64;
        self.seq += 1;
        Message {
            topic: format!(
                "device/sck/{}/readings{}",
                self.token,
                if raw { "/raw" } else { "" }
            ),
            payload,
            readings: sensors.len() * entries,
            last_t: self.next_t - 1,
            raw,
        }
    }

    /// A plausible sensor value, varying by sensor, message and entry (two decimals).
    fn value(&self, sensor: usize, entry: usize) -> f64 {
        let x = (self.seq as usize * 7 + sensor * 131 + entry * 17) % 10_000;
        x as f64 / 100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sck_core::decode::{Decoder, Outcome};
    use sck_core::reading::{Decoded, Limits};
    use std::collections::HashSet;

    const NOW: i64 = 1_800_000_000;

    fn decode(m: &Message) -> Decoded {
        let limits = Limits {
            now: NOW,
            max_future_secs: 0,
        };
        let mut out = Decoded::default();
        let outcome = Decoder::default().decode(Some(&m.topic), &m.payload, &limits, &mut out);
        assert!(matches!(outcome, Outcome::Readings { .. }), "{outcome:?}");
        assert!(out.problems.is_empty(), "{:?}", out.problems);
        out
    }

    #[test]
    fn messages_decode_to_unique_readings_in_both_formats() {
        let sensors = sensor_ids(12);
        let mut d = Device::new("lt0123abcd", 7, NOW - 1000);
        let mut seen = HashSet::new();
        let mut total = 0;
        for (raw, entries) in [(true, 1), (false, 1), (false, 4), (true, 3), (false, 2)] {
            let m = d.next_message(&sensors, raw, entries);
            let out = decode(&m);
            assert_eq!(out.readings.len(), m.readings);
            assert_eq!(
                out.readings.iter().map(|r| r.recorded_at as i64).max(),
                Some(m.last_t)
            );
            for r in &out.readings {
                assert!(seen.insert((r.sensor_id, r.recorded_at)), "duplicate {r:?}");
            }
            total += m.readings;
        }
        assert_eq!(seen.len(), total);
        assert_eq!(total, 12 * (1 + 1 + 4 + 1 + 2));
        assert_eq!(d.next_t, NOW - 1000 + 9);
        assert!(d
            .next_message(&sensors, true, 1)
            .topic
            .ends_with("/readings/raw"));
    }

    #[test]
    fn sensor_ids_are_distinct_beyond_twelve() {
        let ids = sensor_ids(30);
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 30);
        assert_eq!(&ids[..2], &[10, 14]);
    }
}
