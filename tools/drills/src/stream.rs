//! The steady stream every drill publishes: simulated devices sending readings in both formats
//! over one QoS 1 connection at a fixed rate, pausable, counting the broker's acknowledgements.
//!
//! Every reading is unique by (token, sensor, recorded_at): device `i % devices` sends message
//! `i` recorded at `start + i / devices` seconds, so ClickHouse counts are exact and a collapsed duplicate
//! is never mistaken for a loss. Even messages are raw (`readings/raw`), odd ones JSON.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sck_core::encode::{self, Spaced, Utc};
use sck_testkit::Publisher;

/// What a drill publishes.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    /// Prefix of every device token of the run (`<run>d<n>`).
    pub run: String,
    pub devices: usize,
    pub sensors: u32,
    pub messages: usize,
    /// Messages per second.
    pub rate: usize,
    /// `recorded_at` of every device's first message, Unix seconds.
    pub start: i64,
}

impl StreamSpec {
    /// Readings the whole stream carries.
    pub fn readings(&self) -> u64 {
        (self.messages * self.sensors as usize) as u64
    }

    /// Topic and payload of message `i`.
    pub fn message(&self, i: usize) -> (String, Vec<u8>) {
        let device = i % self.devices;
        let t = self.start + (i / self.devices) as i64;
        let values = (1..=self.sensors).map(|s| (s, i as f64 + f64::from(s) / 100.0));
        let mut payload = Vec::with_capacity(32 + 16 * self.sensors as usize);
        if i.is_multiple_of(2) {
            encode::raw(&mut payload, Utc(t), values);
            (
                format!("device/sck/{}d{device}/readings/raw", self.run),
                payload,
            )
        } else {
            encode::json(&mut payload, [(Spaced(t), values)]);
            (
                format!("device/sck/{}d{device}/readings", self.run),
                payload,
            )
        }
    }
}

/// A stream being published in the background.
pub struct Stream {
    pub spec: StreamSpec,
    publisher: Arc<Publisher>,
    queued: Arc<AtomicUsize>,
    paused: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Stream {
    /// Connects (a persistent session, as a device that resends what was not acknowledged)
    /// and starts publishing at the spec's rate.
    pub async fn start(spec: StreamSpec) -> Stream {
        let publisher = Arc::new(Publisher::connect_persistent().await);
        let queued = Arc::new(AtomicUsize::new(0));
        let paused = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(publish(
            spec.clone(),
            publisher.clone(),
            queued.clone(),
            paused.clone(),
        ));
        Stream {
            spec,
            publisher,
            queued,
            paused,
            task,
        }
    }

    /// The MQTT client id (its session is removed when the drill ends).
    pub fn client_id(&self) -> &str {
        &self.publisher.client_id
    }

    /// Messages the broker has acknowledged so far.
    pub fn acked(&self) -> usize {
        self.publisher.acked.load(Ordering::Relaxed)
    }

    /// Messages handed to the MQTT client so far.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    pub fn pause(&self, on: bool) {
        self.paused.store(on, Ordering::Relaxed);
    }

    /// Waits until the broker acknowledged at least `n` messages.
    pub async fn wait_acked(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.acked() < n {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Waits until every message is published and acknowledged.
    pub async fn finish(&self, timeout: Duration) -> anyhow::Result<()> {
        let n = self.spec.messages;
        anyhow::ensure!(
            self.wait_acked(n, timeout).await,
            "the broker acknowledged {} of {n} messages within {timeout:?}",
            self.acked()
        );
        Ok(())
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Publishes message after message, keeping to the rate (catching up after a stall, as devices
/// that buffered readings do) and holding while paused.
async fn publish(
    spec: StreamSpec,
    publisher: Arc<Publisher>,
    queued: Arc<AtomicUsize>,
    paused: Arc<AtomicBool>,
) {
    let tick = Duration::from_millis(20);
    let mut sent = 0usize;
    let mut budget = 0.0f64;
    let mut last = Instant::now();
    while sent < spec.messages {
        tokio::time::sleep(tick).await;
        let now = Instant::now();
        if paused.load(Ordering::Relaxed) {
            last = now;
            continue;
        }
        budget += now.duration_since(last).as_secs_f64() * spec.rate as f64;
        last = now;
        while budget >= 1.0 && sent < spec.messages {
            let (topic, payload) = spec.message(sent);
            publisher.publish(&topic, payload).await;
            sent += 1;
            budget -= 1.0;
            queued.store(sent, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use sck_core::decode::{Decoder, Outcome};
    use sck_core::reading::{Decoded, Limits};

    use super::*;

    #[test]
    fn every_message_decodes_to_its_readings_and_every_reading_is_unique() {
        let spec = StreamSpec {
            run: "r".into(),
            devices: 3,
            sensors: 4,
            messages: 30,
            rate: 1,
            start: 1_700_000_000,
        };
        let start = spec.start;
        let limits = Limits {
            now: start + 3_600,
            max_future_secs: 0,
        };
        let (mut decoder, mut out) = (Decoder::default(), Decoded::default());
        let mut keys = std::collections::HashSet::new();
        let mut formats = std::collections::HashMap::new();
        for i in 0..spec.messages {
            let (topic, payload) = spec.message(i);
            let outcome = decoder.decode(Some(&topic), &payload, &limits, &mut out);
            let Outcome::Readings { token, format } = outcome else {
                panic!("message {i} on {topic}: {outcome:?} {:?}", out.problems);
            };
            assert!(out.problems.is_empty(), "message {i}: {:?}", out.problems);
            assert_eq!(out.readings.len(), spec.sensors as usize, "message {i}");
            *formats.entry(format!("{format:?}")).or_insert(0) += 1;
            for r in &out.readings {
                assert!(
                    keys.insert((token.to_string(), r.sensor_id, r.recorded_at)),
                    "message {i} repeats a reading"
                );
            }
        }
        assert_eq!(keys.len() as u64, spec.readings());
        assert_eq!(formats.len(), 2, "both formats: {formats:?}");
        assert!(formats.values().all(|&n| n == 15), "{formats:?}");
    }
}
