//! The ClickHouse side: one INSERT (RowBinary, LZ4) per table per batch, retried with capped
//! backoff until it succeeds. A table already inserted is not inserted again when another
//! table's INSERT failed, so a retry does not double anything (and if it did, the
//! ReplacingMergeTree sorting keys collapse the duplicate).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use clickhouse::{Client, Row};
use sck_core::backoff::Backoff;
use sck_core::timestamp::year_month;
use sck_runtime::backoff_sleep;
use sck_runtime::log_limit::LogLimiter;
use serde::{Serialize, Serializer};

use crate::batch::Batch;
use crate::config::{ClickHouseCompression, Config};
use crate::metrics::Metrics;

/// `toYYYYMM` partitions per INSERT at most: newer servers refuse more
/// (`max_partitions_per_insert_block`, default 100), so wider batches are split.
const MAX_MONTHS_PER_INSERT: usize = 100;

#[derive(Row, Serialize)]
struct ReadingRow<'a> {
    device_token: &'a str,
    sensor_id: u32,
    recorded_at: u32,
    value: f64,
    received_at: u32,
    format: &'static str,
}

#[derive(Row, Serialize)]
struct ErrorRow<'a> {
    received_at: u32,
    mqtt_topic: &'a str,
    device_token: &'a str,
    error_kind: &'a str,
    error_message: &'a str,
    /// Raw bytes: payloads need not be UTF-8 and a ClickHouse String is bytes.
    #[serde(serialize_with = "as_bytes")]
    payload: &'a [u8],
    kafka_topic: &'a str,
    kafka_partition: u32,
    kafka_offset: u64,
    error_index: u32,
}

fn as_bytes<S: Serializer>(v: &&[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bytes(v)
}

#[derive(Row, Serialize)]
struct HelloRow<'a> {
    device_token: &'a str,
    last_seen: u32,
}

#[derive(Row, Serialize)]
struct InfoRow<'a> {
    device_token: &'a str,
    received_at: u32,
    info: &'a str,
}

#[derive(Row, Serialize)]
struct InventoryRow<'a> {
    received_at: u32,
    report: &'a str,
    kafka_partition: u32,
    kafka_offset: u64,
}

/// Builds the ClickHouse client from the settings (database applied or not): the crate's
/// default client, or one trusting `CLICKHOUSE_CA_FILE` (which is read here, so a bad file fails
/// the start).
pub fn client(cfg: &Config, with_database: bool) -> Result<Client, crate::tls::TlsError> {
    let base = match &cfg.clickhouse_ca_file {
        Some(ca) => crate::tls::client_with_ca(ca)?,
        None => Client::default(),
    };
    let mut c = base
        .with_url(&cfg.clickhouse_url)
        .with_user(&cfg.clickhouse_user)
        .with_validation(cfg.validation)
        .with_compression(match cfg.compression {
            ClickHouseCompression::Lz4 => clickhouse::Compression::Lz4,
            ClickHouseCompression::None => clickhouse::Compression::None,
        });
    if let Some(p) = &cfg.clickhouse_password {
        c = c.with_password(p.expose());
    }
    if with_database {
        c = c.with_database(&cfg.database);
    }
    Ok(c)
}

pub struct Sink {
    pub client: Client,
    pub metrics: Metrics,
    pub insert_timeout: Duration,
    pub retry: Backoff,
    /// One "insert failed" warning per interval while ClickHouse is away.
    pub warnings: LogLimiter,
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
            Table::Readings => "readings",
            Table::IngestErrors => "ingest_errors",
            Table::DeviceHello => "device_hello",
            Table::DeviceInfo => "device_info",
            Table::DeviceInventory => "device_inventory",
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
            let mut failed = false;
            for table in Table::ALL {
                if done.contains(&table) || table.rows(batch) == 0 {
                    continue;
                }
                let started = Instant::now();
                match self.insert(table, batch).await {
                    Ok(()) => {
                        done.insert(table);
                        self.metrics
                            .insert_seconds
                            .with_label_values(&[table.name()])
                            .observe(started.elapsed().as_secs_f64());
                        self.metrics
                            .rows_inserted
                            .with_label_values(&[table.name()])
                            .inc_by(table.rows(batch) as u64);
                        self.metrics.clickhouse_up.set(1);
                    }
                    Err(e) => {
                        failed = true;
                        self.metrics
                            .insert_errors
                            .with_label_values(&[table.name()])
                            .inc();
                        self.metrics.clickhouse_up.set(0);
                        if let Some(suppressed) = self.warnings.allow() {
                            tracing::warn!(
                                table = table.name(),
                                rows = table.rows(batch),
                                attempt,
                                suppressed,
                                error = %e,
                                "ClickHouse insert failed; retrying (nothing is committed meanwhile)"
                            );
                        }
                        break;
                    }
                }
            }
            if !failed {
                if attempt > 0 {
                    tracing::info!(
                        attempts = attempt + 1,
                        "ClickHouse insert succeeded after retries"
                    );
                }
                return;
            }
            backoff_sleep(&self.retry, attempt).await;
            attempt = attempt.saturating_add(1);
        }
    }

    async fn insert(&self, table: Table, b: &Batch) -> clickhouse::error::Result<()> {
        let t = Some(self.insert_timeout);
        match table {
            Table::Readings => {
                for months in month_chunks(b) {
                    let mut ins = self
                        .client
                        .insert::<ReadingRow<'_>>(table.name())
                        .await?
                        .with_timeouts(t, t);
                    let mut start = 0;
                    for g in &b.groups {
                        for r in &b.readings[start..g.end] {
                            if let Some(m) = &months {
                                if !m.contains(&year_month(i64::from(r.recorded_at))) {
                                    continue;
                                }
                            }
                            ins.write(&ReadingRow {
                                device_token: &g.device_token,
                                sensor_id: r.sensor_id,
                                recorded_at: r.recorded_at,
                                value: r.value,
                                received_at: g.received_at,
                                format: g.format.as_str(),
                            })
                            .await?;
                        }
                        start = g.end;
                    }
                    ins.end().await?;
                }
            }
            Table::IngestErrors => {
                let mut ins = self
                    .client
                    .insert::<ErrorRow<'_>>(table.name())
                    .await?
                    .with_timeouts(t, t);
                for e in &b.errors {
                    ins.write(&ErrorRow {
                        received_at: e.received_at,
                        mqtt_topic: &e.mqtt_topic,
                        device_token: &e.device_token,
                        error_kind: &e.error_kind,
                        error_message: &e.error_message,
                        payload: &e.payload,
                        kafka_topic: &e.kafka_topic,
                        kafka_partition: e.kafka_partition,
                        kafka_offset: e.kafka_offset,
                        error_index: e.error_index,
                    })
                    .await?;
                }
                ins.end().await?;
            }
            Table::DeviceHello => {
                let mut ins = self
                    .client
                    .insert::<HelloRow<'_>>(table.name())
                    .await?
                    .with_timeouts(t, t);
                for e in &b.hellos {
                    ins.write(&HelloRow {
                        device_token: &e.device_token,
                        last_seen: e.received_at,
                    })
                    .await?;
                }
                ins.end().await?;
            }
            Table::DeviceInfo => {
                let mut ins = self
                    .client
                    .insert::<InfoRow<'_>>(table.name())
                    .await?
                    .with_timeouts(t, t);
                for e in &b.infos {
                    ins.write(&InfoRow {
                        device_token: &e.device_token,
                        received_at: e.received_at,
                        info: &e.json,
                    })
                    .await?;
                }
                ins.end().await?;
            }
            Table::DeviceInventory => {
                let mut ins = self
                    .client
                    .insert::<InventoryRow<'_>>(table.name())
                    .await?
                    .with_timeouts(t, t);
                for e in &b.inventory {
                    ins.write(&InventoryRow {
                        received_at: e.received_at,
                        report: &e.json,
                        kafka_partition: e.kafka_partition,
                        kafka_offset: e.kafka_offset,
                    })
                    .await?;
                }
                ins.end().await?;
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
    use sck_core::reading::Reading;

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
}
