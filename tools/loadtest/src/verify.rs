//! Verification against ClickHouse: how many of the run's readings are stored, which are
//! missing, which did not collapse, and how late they became visible.
//!
//! Latency is "publish → visible": every 250 ms the tracker asks for each device's newest
//! stored `recorded_at`; every message of that device up to it is visible now (a device's
//! messages keep their order: one MQTT connection, one Kafka partition, batches in order), so
//! its latency is now − its publish time. Resolution is the poll interval plus the query time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clickhouse::{Client, Row};
use sck_runtime::settings::clickhouse::ClickHouseArgs;
use sck_store::tables::READINGS;
use serde::Deserialize;

use crate::publish::Sent;

/// What ClickHouse holds of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Rows as stored (redeliveries included until merges collapse them).
    pub rows: u64,
    /// Distinct (device, sensor, recorded_at): readings that arrived.
    pub distinct: u64,
    /// Rows under FINAL: what users query.
    pub final_rows: u64,
}

#[derive(Row, Deserialize)]
struct DeviceMax {
    device_token: String,
    max_t: u32,
    rows: u64,
}

/// A client of the ClickHouse settings (no database applied: the queries name it).
pub fn client(settings: &ClickHouseArgs) -> Client {
    let c = Client::default()
        .with_url(&settings.clickhouse_url)
        .with_user(&settings.clickhouse_user)
        .with_validation(false);
    match &settings.clickhouse_password {
        Some(p) => c.with_password(p.expose()),
        None => c,
    }
}

fn run_filter(run_id: &str) -> String {
    format!("device_token LIKE '{run_id}d%'")
}

pub async fn counts(ch: &Client, db: &str, run_id: &str) -> anyhow::Result<Counts> {
    let filter = run_filter(run_id);
    let (rows, distinct): (u64, u64) = ch
        .query(&format!(
            "SELECT count(), uniqExact(device_token, sensor_id, recorded_at) FROM {db}.{READINGS} WHERE {filter}"
        ))
        .fetch_one()
        .await
        .context("counting the run's readings")?;
    let final_rows: u64 = ch
        .query(&format!(
            "SELECT count() FROM {db}.{READINGS} FINAL WHERE {filter}"
        ))
        .fetch_one()
        .await
        .context("counting the run's readings under FINAL")?;
    Ok(Counts {
        rows,
        distinct,
        final_rows,
    })
}

/// What a poll needs to know about the run.
pub struct Probe<'a> {
    pub ch: &'a Client,
    pub db: &'a str,
    pub run_id: &'a str,
    pub sent: &'a Arc<Sent>,
    pub started: Instant,
}

/// Latency samples (ms) and the stored-rows timeline, filled while the run goes on.
#[derive(Debug, Default)]
pub struct Tracker {
    pub latencies_ms: Vec<u64>,
    /// (seconds since start, rows stored) at each poll.
    pub stored: Vec<(f64, u64)>,
}

impl Tracker {
    /// One poll: pops every message now visible and records its latency.
    pub async fn poll(&mut self, p: &Probe<'_>) -> anyhow::Result<()> {
        let Probe {
            ch,
            db,
            run_id,
            sent,
            started,
        } = *p;
        let rows: Vec<DeviceMax> = ch
            .query(&format!(
                "SELECT device_token, toUInt32(max(recorded_at)) AS max_t, count() AS rows FROM {db}.{READINGS} WHERE {} GROUP BY device_token",
                run_filter(run_id)
            ))
            .fetch_all()
            .await
            .context("polling the run's newest readings")?;
        let now_ms = started.elapsed().as_millis() as u64;
        let prefix = format!("{run_id}d");
        let mut total = 0;
        if let Ok(mut pending) = sent.pending.lock() {
            for r in &rows {
                total += r.rows;
                let Some(idx) = r
                    .device_token
                    .strip_prefix(&prefix)
                    .and_then(|i| i.parse::<usize>().ok())
                else {
                    continue;
                };
                let Some(queue) = pending.get_mut(idx) else {
                    continue;
                };
                while let Some(&(last_t, published_ms)) = queue.front() {
                    if last_t > i64::from(r.max_t) {
                        break;
                    }
                    self.latencies_ms.push(now_ms.saturating_sub(published_ms));
                    queue.pop_front();
                }
            }
        }
        self.stored.push((now_ms as f64 / 1000.0, total));
        Ok(())
    }
}

/// Polls until `done()` or the deadline, every 250 ms.
pub async fn track_until(
    tracker: &mut Tracker,
    probe: &Probe<'_>,
    deadline: Instant,
    mut done: impl FnMut(&Tracker) -> bool,
) {
    let mut errors = 0u32;
    while Instant::now() < deadline && !done(tracker) {
        if let Err(e) = tracker.poll(probe).await {
            errors += 1;
            if errors.is_power_of_two() {
                eprintln!("ClickHouse poll failed ({errors}): {e:#}");
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The q-quantile (0..=1) of sorted values, nearest rank.
pub fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), 50);
        assert_eq!(quantile(&v, 0.99), 99);
        assert_eq!(quantile(&v, 1.0), 100);
        assert_eq!(quantile(&v, 0.0), 1);
        assert_eq!(quantile(&[], 0.5), 0);
        assert_eq!(quantile(&[7], 0.9), 7);
    }
}
