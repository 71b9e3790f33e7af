//! The ClickHouse side of the decoder: one INSERT (RowBinary, LZ4) per table per batch, retried
//! until it succeeds. A table already inserted is not inserted again when another table's INSERT
//! failed, so a retry does not double anything (and if it did, the ReplacingMergeTree sorting
//! keys collapse the duplicate).
//!
//! Failures are classified ([`sck_store::classify`]): transient ones (network, timeouts, too
//! many parts, overload) are retried with capped backoff; permanent ones (schema, credentials)
//! block the table (see [`Blocked`]) and are retried every [`RETRY_INTERVAL`]. Either way the
//! batch is kept and nothing is committed until every table is written.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::clickhouse::Client;
use sck_core::backoff::Backoff;
use sck_core::timestamp::year_month;
use sck_runtime::backoff_sleep;
use sck_runtime::log_limit::LogLimiter;
use sck_store::tables::{self, HelloRow, InfoRow, IngestErrorRow, InventoryRow, ReadingRow};
use sck_store::{classify, insert};

use super::blocked::{Blocked, RETRY_INTERVAL};
use crate::batch::Batch;
use crate::metrics::Metrics;

/// `toYYYYMM` partitions per INSERT at most: newer servers refuse more
/// (`max_partitions_per_insert_block`, default 100), so wider batches are split.
const MAX_MONTHS_PER_INSERT: usize = 100;

pub struct Sink {
    pub client: Client,
    pub metrics: Metrics,
    pub insert_timeout: Duration,
    pub retry: Backoff,
    /// One "insert failed" warning per interval while ClickHouse is away.
    pub warnings: LogLimiter,
    /// Tables ClickHouse refuses for good (readiness, metric, log).
    pub blocked: Arc<Blocked>,
}

/// Tables of a batch, in insert order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Table {
    Readings,
    IngestErrors,
    DeviceHello,
    DeviceInfo,
    DeviceInventory,
}

impl Table {
    const ALL: [Table; 5] = [
        Table::Readings,
        Table::IngestErrors,
        Table::DeviceHello,
        Table::DeviceInfo,
        Table::DeviceInventory,
    ];

    fn name(self) -> &'static str {
        match self {
            Table::Readings => tables::READINGS,
            Table::IngestErrors => tables::INGEST_ERRORS,
            Table::DeviceHello => tables::DEVICE_HELLO,
            Table::DeviceInfo => tables::DEVICE_INFO,
            Table::DeviceInventory => tables::DEVICE_INVENTORY,
        }
    }

    fn rows(self, b: &Batch) -> usize {
        match self {
            Table::Readings => b.readings.len(),
            Table::IngestErrors => b.errors.len(),
            Table::DeviceHello => b.hellos.len(),
            Table::DeviceInfo => b.infos.len(),
            Table::DeviceInventory => b.inventory.len(),
        }
    }
}

impl Sink {
    /// Inserts every row of `batch`, retrying failed tables until all succeeded. Cancel-safe:
    /// dropping the future leaves some tables inserted and the batch uncommitted (its records
    /// are consumed again and collapse into the rows already there).
    pub async fn write(&self, batch: &Batch) {
        let mut done = BTreeSet::new();
        let mut attempt = 0u32;
        loop {
            let mut refused = None;
            for table in Table::ALL {
                if done.contains(&table) || table.rows(batch) == 0 {
                    continue;
                }
                let started = Instant::now();
                match self.insert(table, batch).await {
                    Ok(()) => {
                        done.insert(table);
                        self.inserted(table, batch, started);
                    }
                    Err(e) => {
                        refused = Some(self.failed(table, batch, attempt, &e));
                        break;
                    }
                }
            }
            match refused {
                None => {
                    if attempt > 0 {
                        tracing::info!(
                            attempts = attempt + 1,
                            "ClickHouse insert succeeded after retries"
                        );
                    }
                    return;
                }
                Some(false) => backoff_sleep(&self.retry, attempt).await,
                Some(true) => tokio::time::sleep(RETRY_INTERVAL).await,
            }
            attempt = attempt.saturating_add(1);
        }
    }

    fn inserted(&self, table: Table, batch: &Batch, started: Instant) {
        let name = table.name();
        self.metrics
            .insert_seconds
            .with_label_values(&[name])
            .observe(started.elapsed().as_secs_f64());
        self.metrics
            .rows_inserted
            .with_label_values(&[name])
            .inc_by(table.rows(batch) as u64);
        self.metrics.clickhouse_up.set(1);
        self.blocked.clear(name);
    }

    /// Counts and reports a failed INSERT; returns whether it was refused for good.
    fn failed(
        &self,
        table: Table,
        batch: &Batch,
        attempt: u32,
        e: &::clickhouse::error::Error,
    ) -> bool {
        let name = table.name();
        self.metrics.insert_errors.with_label_values(&[name]).inc();
        if self.blocked.failed(name, classify(e), e) {
            return true;
        }
        self.metrics.clickhouse_up.set(0);
        if let Some(suppressed) = self.warnings.allow() {
            tracing::warn!(
                table = name,
                rows = table.rows(batch),
                attempt,
                suppressed,
                error = %sck_runtime::error_chain(e),
                "ClickHouse insert failed; retrying (nothing is committed meanwhile)"
            );
        }
        false
    }

    async fn insert(&self, table: Table, b: &Batch) -> ::clickhouse::error::Result<()> {
        let (c, name, t) = (&self.client, table.name(), Some(self.insert_timeout));
        match table {
            Table::Readings => {
                for months in month_chunks(b) {
                    insert::<ReadingRow>(c, name, reading_rows(b, months.as_ref()), t).await?;
                }
            }
            Table::IngestErrors => {
                insert::<IngestErrorRow>(c, name, &b.errors, t).await?;
            }
            Table::DeviceHello => {
                insert::<HelloRow>(c, name, &b.hellos, t).await?;
            }
            Table::DeviceInfo => {
                insert::<InfoRow>(c, name, &b.infos, t).await?;
            }
            Table::DeviceInventory => {
                insert::<InventoryRow>(c, name, &b.inventory, t).await?;
            }
        }
        Ok(())
    }

    /// `SELECT 1`: is ClickHouse answering?
    pub async fn ping(&self) -> bool {
        self.client
            .query("SELECT 1")
            .fetch_one::<u8>()
            .await
            .is_ok()
    }
}

/// The batch's readings as rows (each with its message's token, receive time and format),
/// only those of `months` when given.
fn reading_rows<'b>(
    b: &'b Batch,
    months: Option<&'b BTreeSet<(i64, u32)>>,
) -> impl Iterator<Item = ReadingRow<'b>> + Send + 'b {
    let starts = std::iter::once(0).chain(b.groups.iter().map(|g| g.end));
    b.groups.iter().zip(starts).flat_map(move |(g, start)| {
        b.readings[start..g.end]
            .iter()
            .filter(move |r| {
                months.is_none_or(|m| m.contains(&year_month(i64::from(r.recorded_at))))
            })
            .map(move |r| ReadingRow {
                device_token: &g.device_token,
                sensor_id: r.sensor_id,
                recorded_at: r.recorded_at,
                value: r.value,
                received_at: g.received_at,
                format: g.format.as_str(),
                device_id: g.device_id,
            })
    })
}

/// The month sets to insert separately: `[None]` (everything at once) unless the batch spans
/// more than [`MAX_MONTHS_PER_INSERT`] months.
fn month_chunks(b: &Batch) -> Vec<Option<BTreeSet<(i64, u32)>>> {
    let months: BTreeSet<(i64, u32)> = b
        .readings
        .iter()
        .map(|r| year_month(i64::from(r.recorded_at)))
        .collect();
    if months.len() <= MAX_MONTHS_PER_INSERT {
        return vec![None];
    }
    let months: Vec<_> = months.into_iter().collect();
    months
        .chunks(MAX_MONTHS_PER_INSERT)
        .map(|c| Some(c.iter().copied().collect()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::ReadingsGroup;
    use sck_core::reading::{Format, Reading};

    #[test]
    fn batches_spanning_many_months_are_split() {
        let mut b = Batch::default();
        assert_eq!(month_chunks(&b), vec![None]);
        for m in 0..250u32 {
            b.readings.push(Reading {
                sensor_id: 1,
                recorded_at: 1_000_000_000 + m * 31 * 86_400,
                value: 0.0,
            });
        }
        let chunks = month_chunks(&b);
        assert_eq!(chunks.len(), 3);
        let sizes: Vec<usize> = chunks
            .iter()
            .map(|c| c.as_ref().map_or(0, |s| s.len()))
            .collect();
        assert_eq!(sizes.iter().sum::<usize>(), 250);
        assert!(sizes.iter().all(|s| *s <= MAX_MONTHS_PER_INSERT));
    }

    #[test]
    fn readings_become_rows_of_their_message() {
        let mut b = Batch::default();
        let reading = |sensor_id, recorded_at| Reading {
            sensor_id,
            recorded_at,
            value: f64::from(sensor_id),
        };
        let march = 1_490_362_514; // 2017-03
        let april = march + 31 * 86_400;
        b.readings = vec![reading(1, march), reading(2, april), reading(3, march)];
        b.groups = vec![
            ReadingsGroup {
                device_token: "a".into(),
                device_id: 1,
                received_at: 10,
                format: Format::Raw,
                end: 2,
            },
            ReadingsGroup {
                device_token: "b".into(),
                device_id: 2,
                received_at: 20,
                format: Format::Json,
                end: 3,
            },
        ];
        let all: Vec<(&str, u32, u32, u32, &str)> = reading_rows(&b, None)
            .map(|r| {
                (
                    r.device_token,
                    r.device_id,
                    r.sensor_id,
                    r.received_at,
                    r.format,
                )
            })
            .collect();
        assert_eq!(
            all,
            [
                ("a", 1, 1, 10, "raw"),
                ("a", 1, 2, 10, "raw"),
                ("b", 2, 3, 20, "json")
            ]
        );
        let only_march: BTreeSet<_> = [year_month(i64::from(march))].into();
        let ids: Vec<u32> = reading_rows(&b, Some(&only_march))
            .map(|r| r.sensor_id)
            .collect();
        assert_eq!(ids, [1, 3]);
    }
}
