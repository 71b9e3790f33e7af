//! What ClickHouse holds of a drill's run, and a tracker that records how the stored count grew,
//! from which the recovery time is read.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::collections::HashSet;

use sck_testkit::clickhouse_at;
use sck_testkit::tables::READINGS;

use crate::stream::StreamSpec;

/// Where a run's readings are: a ClickHouse HTTP interface (`host:port`), a database, a run.
#[derive(Debug, Clone)]
pub struct Target {
    pub http: String,
    pub db: String,
    pub run: String,
}

/// A run's readings as stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Rows before merges (redeliveries included until ReplacingMergeTree collapses them).
    pub rows: u64,
    /// Distinct (device, sensor, recorded_at): readings that arrived.
    pub distinct: u64,
    /// Rows under FINAL: what users see.
    pub final_rows: u64,
}

impl Target {
    fn filter(&self) -> String {
        format!("device_token LIKE '{}d%'", self.run)
    }

    /// Distinct readings stored so far (None while ClickHouse does not answer).
    pub fn distinct(&self) -> Option<u64> {
        let sql = format!(
            "SELECT uniqExact(device_token, sensor_id, recorded_at) FROM {}.{READINGS} WHERE {}",
            self.db,
            self.filter()
        );
        clickhouse_at(&self.http, &sql).ok()?.trim().parse().ok()
    }

    pub fn counts(&self) -> anyhow::Result<Counts> {
        let one = |sql: String| -> anyhow::Result<u64> {
            let out = clickhouse_at(&self.http, &sql).map_err(|e| anyhow::anyhow!("{sql}: {e}"))?;
            out.trim()
                .parse()
                .map_err(|_| anyhow::anyhow!("{sql}: not a number: {out:?}"))
        };
        let (db, filter) = (&self.db, self.filter());
        Ok(Counts {
            rows: one(format!(
                "SELECT count() FROM {db}.{READINGS} WHERE {filter}"
            ))?,
            distinct: self
                .distinct()
                .ok_or_else(|| anyhow::anyhow!("ClickHouse did not answer"))?,
            final_rows: one(format!(
                "SELECT count() FROM {db}.{READINGS} FINAL WHERE {filter}"
            ))?,
        })
    }
}

impl Target {
    /// The stream's messages not wholly stored, as index ranges (`"300-318, 411"`): where in
    /// the stream a loss happened tells which fault caused it.
    pub fn missing_messages(&self, spec: &StreamSpec) -> anyhow::Result<String> {
        let sql = format!(
            "SELECT device_token, toUInt32(recorded_at), uniqExact(sensor_id) FROM {}.{READINGS} \
             WHERE {} GROUP BY device_token, recorded_at",
            self.db,
            self.filter()
        );
        let out = clickhouse_at(&self.http, &sql).map_err(|e| anyhow::anyhow!("{sql}: {e}"))?;
        let prefix = format!("{}d", spec.run);
        let mut complete = HashSet::new();
        for line in out.lines() {
            let mut cells = line.split('\t');
            let (Some(token), Some(t), Some(n)) = (cells.next(), cells.next(), cells.next()) else {
                continue;
            };
            let device = token
                .strip_prefix(&prefix)
                .and_then(|d| d.parse::<usize>().ok());
            let t = t.parse::<i64>().ok();
            if let (Some(device), Some(t)) = (device, t) {
                if n.parse::<u32>().ok() == Some(spec.sensors) {
                    complete.insert((device, t));
                }
            }
        }
        let missing = (0..spec.messages).filter(|&i| {
            let t = spec.start + (i / spec.devices) as i64;
            !complete.contains(&(i % spec.devices, t))
        });
        Ok(ranges(missing))
    }
}

/// `[1, 2, 3, 7]` as `"1-3, 7"`.
fn ranges(items: impl Iterator<Item = usize>) -> String {
    let mut out: Vec<(usize, usize)> = Vec::new();
    for i in items {
        match out.last_mut() {
            Some((_, end)) if *end + 1 == i => *end = i,
            _ => out.push((i, i)),
        }
    }
    let count: usize = out.iter().map(|(a, b)| b - a + 1).sum();
    let mut parts: Vec<String> = out
        .iter()
        .take(MAX_RANGES)
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect();
    if out.len() > MAX_RANGES {
        parts.push(format!("… ({count} messages in {} ranges)", out.len()));
    }
    parts.join(", ")
}

/// Ranges shown before the rest is summed up.
const MAX_RANGES: usize = 12;

/// Polls the distinct count every 250 ms in a thread of its own, keeping every sample.
pub struct Tracker {
    samples: Arc<Mutex<Vec<(Instant, u64)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Tracker {
    pub fn start(target: Target) -> Tracker {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (samples.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                if let Some(n) = target.distinct() {
                    s.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((Instant::now(), n));
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        });
        Tracker {
            samples,
            stop,
            thread: Some(thread),
        }
    }

    /// The newest sample's count.
    pub fn latest(&self) -> u64 {
        let s = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        s.last().map(|(_, n)| *n).unwrap_or(0)
    }

    /// How long after `from` the stored count first reached `want` (None if it never did).
    pub fn reached_after(&self, from: Instant, want: u64) -> Option<Duration> {
        let s = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        first_reaching(&s, from, want)
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn first_reaching(samples: &[(Instant, u64)], from: Instant, want: u64) -> Option<Duration> {
    samples
        .iter()
        .find(|(at, n)| *at >= from && *n >= want)
        .map(|(at, _)| at.duration_since(from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_messages_read_as_ranges() {
        assert_eq!(ranges([1, 2, 3, 7, 9, 10].into_iter()), "1-3, 7, 9-10");
        assert_eq!(ranges(std::iter::empty()), "");
        let every_other = ranges((0..100).step_by(2));
        assert!(every_other.starts_with("0, 2, 4,"), "{every_other}");
        assert!(
            every_other.ends_with("… (50 messages in 50 ranges)"),
            "{every_other}"
        );
    }

    #[test]
    fn recovery_is_the_first_sample_after_the_heal_that_holds_everything_before_it() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let samples = [
            (at(0), 50),
            (at(1_000), 100),
            (at(2_000), 80),
            (at(3_000), 120),
        ];
        // A sample before the heal does not count, even when it already held enough.
        assert_eq!(
            first_reaching(&samples, at(1_500), 100),
            Some(Duration::from_millis(1_500))
        );
        assert_eq!(
            first_reaching(&samples, at(0), 100),
            Some(Duration::from_secs(1))
        );
        assert_eq!(first_reaching(&samples, at(0), 121), None);
    }
}
