//! The decoder's Prometheus metrics. Names are a contract with the dashboards, alert rules and
//! the autoscaler (`sck_decoder_consumer_lag`): keep them stable.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};
use sck_core::envelope::BRIDGE_REASONS;
use sck_core::reading::ErrorKind;
use sck_core::topic::Kind;
use sck_store::tables;
use sck_store::ErrorClass;

use crate::kafka::FailureClass;

/// Kind label of records read from the dead-letter topic.
pub const KIND_DEAD_LETTER: &str = "dead_letter";
/// Kind label of records whose topic header is missing or does not route.
pub const KIND_UNKNOWN: &str = "unknown";

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// Kafka records consumed, by kind.
    pub consumed: IntCounterVec,
    /// Rows inserted (the insert succeeded), by table.
    pub rows_inserted: IntCounterVec,
    /// Rejected messages / readings (`ingest_errors` rows), by reason.
    pub errors: IntCounterVec,
    /// Records written to the dead-letter topic, by reason.
    pub dead_lettered: IntCounterVec,
    /// Failed dead-letter produce attempts (retried), by class: retryable or permanent.
    pub dead_letter_failures: IntCounterVec,
    /// Rows per inserted batch (all tables).
    pub batch_rows: Histogram,
    /// Duration of one successful INSERT, by table.
    pub insert_seconds: HistogramVec,
    /// Failed INSERT attempts (retried), by table.
    pub insert_errors: IntCounterVec,
    /// 1 while ClickHouse refuses writes to the table for good, by table and reason (`schema`,
    /// `access`); `schema_migrations` stands for the migrations at start.
    pub insert_blocked: IntGaugeVec,
    /// From the bridge receiving a message (`received_at_ms`) to its rows being inserted.
    pub end_to_end_seconds: Histogram,
    /// Records not yet committed by this group, per assigned partition (clamped at 0).
    pub consumer_lag: IntGaugeVec,
    /// Offset commits that failed (the next commit covers them; a restart re-reads).
    pub commit_errors: IntCounter,
    /// Platform updates (latest state, hardware info, handshake) that failed and were retried.
    pub platform_update_errors: IntCounter,
    /// Onboarding sessions published on Redis (one per orphan device's hello message).
    pub handshakes_published: IntCounter,
    /// Rows buffered and not yet inserted.
    pub buffered_rows: IntGauge,
    /// 1 while consumption is paused because the buffer is full (ClickHouse slow or down).
    pub paused: IntGauge,
    /// Batches discarded uninserted and uncommitted because their partitions were revoked.
    pub batches_discarded: IntCounter,
    /// 1 while Kafka answers metadata requests.
    pub kafka_up: IntGauge,
    /// 1 while ClickHouse answers queries.
    pub clickhouse_up: IntGauge,
    /// Payload bytes dropped before parsing (non-ASCII, a BOM, invalid UTF-8), by kind.
    pub dropped_bytes: IntCounterVec,
    /// 1 while the device registry (PostgreSQL) answers. Registered only with a registry
    /// ([`Metrics::register_registry`]), so a decoder without one does not look down.
    pub registry_up: IntGauge,
    /// Devices in the registry cache (after the last full refresh).
    pub registry_devices: IntGauge,
    /// Token lookups by result: known / unknown (from the cache), found / not_found (asked
    /// PostgreSQL), unavailable (not in the cache, PostgreSQL not answering).
    pub registry_lookups: IntCounterVec,
}

/// The `result` labels of `sck_decoder_registry_lookups_total`.
pub const REGISTRY_LOOKUP_RESULTS: [&str; 5] =
    ["known", "unknown", "found", "not_found", "unavailable"];

impl Metrics {
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let m = Metrics {
            consumed: IntCounterVec::new(
                Opts::new("sck_decoder_messages_consumed_total", "Kafka records consumed, by kind"),
                &["kind"],
            )?,
            rows_inserted: IntCounterVec::new(
                Opts::new("sck_decoder_rows_inserted_total", "Rows inserted into ClickHouse, by table"),
                &["table"],
            )?,
            errors: IntCounterVec::new(
                Opts::new(
                    "sck_decoder_errors_total",
                    "Rejected messages or readings (ingest_errors rows), by reason",
                ),
                &["reason"],
            )?,
            dead_lettered: IntCounterVec::new(
                Opts::new(
                    "sck_decoder_dead_lettered_total",
                    "Records written to the dead-letter topic, by reason",
                ),
                &["reason"],
            )?,
            dead_letter_failures: IntCounterVec::new(
                Opts::new(
                    "sck_decoder_dead_letter_failures_total",
                    "Failed dead-letter produce attempts (retried), by class: retryable or permanent",
                ),
                &["class"],
            )?,
            batch_rows: Histogram::with_opts(
                HistogramOpts::new("sck_decoder_batch_rows", "Rows per inserted batch").buckets(
                    vec![1.0, 10.0, 100.0, 500.0, 1_000.0, 5_000.0, 10_000.0, 25_000.0, 50_000.0, 100_000.0],
                ),
            )?,
            insert_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "sck_decoder_insert_duration_seconds",
                    "Duration of successful INSERTs, by table",
                )
                .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
                &["table"],
            )?,
            insert_errors: IntCounterVec::new(
                Opts::new("sck_decoder_insert_errors_total", "Failed INSERT attempts, by table"),
                &["table"],
            )?,
            insert_blocked: IntGaugeVec::new(
                Opts::new(
                    "sck_decoder_insert_blocked",
                    "1 while ClickHouse refuses writes to the table until an operator acts, by reason (schema, access); the batch is kept uncommitted",
                ),
                &["table", "reason"],
            )?,
            end_to_end_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "sck_decoder_end_to_end_latency_seconds",
                    "Bridge receive time (received_at_ms header) to rows inserted, per message",
                )
                .buckets(vec![
                    0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0,
                ]),
            )?,
            consumer_lag: IntGaugeVec::new(
                Opts::new(
                    "sck_decoder_consumer_lag",
                    "Records behind the partition's high watermark (committed offsets), per assigned partition",
                ),
                &["topic", "partition"],
            )?,
            commit_errors: IntCounter::new(
                "sck_decoder_commit_errors_total",
                "Kafka offset commits that failed",
            )?,
            platform_update_errors: IntCounter::new(
                "sck_decoder_platform_update_errors_total",
                "Platform PostgreSQL/Redis updates of an inserted batch that failed (retried; offsets wait)",
            )?,
            handshakes_published: IntCounter::new(
                "sck_decoder_handshakes_published_total",
                "Onboarding sessions published on Redis (token-received), one per orphan device's hello",
            )?,
            buffered_rows: IntGauge::new(
                "sck_decoder_buffered_rows",
                "Rows decoded and waiting to be inserted",
            )?,
            paused: IntGauge::new(
                "sck_decoder_paused",
                "1 while consumption is paused because the insert buffer is full",
            )?,
            batches_discarded: IntCounter::new(
                "sck_decoder_batches_discarded_total",
                "Uninserted batches dropped uncommitted because a rebalance revoked their partitions",
            )?,
            kafka_up: IntGauge::new("sck_decoder_kafka_up", "1 while Kafka answers metadata requests")?,
            clickhouse_up: IntGauge::new("sck_decoder_clickhouse_up", "1 while ClickHouse answers queries")?,
            dropped_bytes: IntCounterVec::new(
                Opts::new(
                    "sck_decoder_payload_bytes_dropped_total",
                    "Payload bytes dropped before parsing (non-ASCII, BOM, invalid UTF-8), by kind",
                ),
                &["kind"],
            )?,
            registry_up: IntGauge::new(
                "sck_decoder_registry_up",
                "1 while the device registry (the platform's PostgreSQL) answers",
            )?,
            registry_devices: IntGauge::new(
                "sck_decoder_registry_devices",
                "Devices in the registry cache after the last full refresh",
            )?,
            registry_lookups: IntCounterVec::new(
                Opts::new(
                    "sck_decoder_registry_lookups_total",
                    "Device token lookups, by result: known, unknown (cache), found, not_found (asked PostgreSQL), unavailable",
                ),
                &["result"],
            )?,
            registry,
        };
        let r = &m.registry;
        r.register(Box::new(m.consumed.clone()))?;
        r.register(Box::new(m.rows_inserted.clone()))?;
        r.register(Box::new(m.errors.clone()))?;
        r.register(Box::new(m.dead_lettered.clone()))?;
        r.register(Box::new(m.dead_letter_failures.clone()))?;
        r.register(Box::new(m.batch_rows.clone()))?;
        r.register(Box::new(m.insert_seconds.clone()))?;
        r.register(Box::new(m.insert_errors.clone()))?;
        r.register(Box::new(m.insert_blocked.clone()))?;
        r.register(Box::new(m.end_to_end_seconds.clone()))?;
        r.register(Box::new(m.consumer_lag.clone()))?;
        r.register(Box::new(m.commit_errors.clone()))?;
        r.register(Box::new(m.platform_update_errors.clone()))?;
        r.register(Box::new(m.handshakes_published.clone()))?;
        r.register(Box::new(m.buffered_rows.clone()))?;
        r.register(Box::new(m.paused.clone()))?;
        r.register(Box::new(m.batches_discarded.clone()))?;
        r.register(Box::new(m.kafka_up.clone()))?;
        r.register(Box::new(m.clickhouse_up.clone()))?;
        r.register(Box::new(m.dropped_bytes.clone()))?;
        // Pre-create the label values dashboards and alerts expect, so series exist at zero.
        for kind in [
            Kind::Readings,
            Kind::ReadingsRaw,
            Kind::Hello,
            Kind::Info,
            Kind::Inventory,
        ] {
            m.consumed.with_label_values(&[kind.as_str()]);
        }
        for kind in [Kind::Readings, Kind::ReadingsRaw] {
            m.dropped_bytes.with_label_values(&[kind.as_str()]);
        }
        for class in FailureClass::ALL {
            m.dead_letter_failures.with_label_values(&[class.as_str()]);
        }
        m.consumed.with_label_values(&[KIND_DEAD_LETTER]);
        m.consumed.with_label_values(&[KIND_UNKNOWN]);
        for t in tables::DATA {
            m.rows_inserted.with_label_values(&[t]);
            m.insert_errors.with_label_values(&[t]);
            m.insert_seconds.with_label_values(&[t]);
        }
        for t in tables::DATA.iter().chain(&[tables::SCHEMA_MIGRATIONS]) {
            for reason in ErrorClass::PERMANENT {
                m.insert_blocked.with_label_values(&[t, reason.as_str()]);
            }
        }
        for k in ErrorKind::ALL {
            m.errors.with_label_values(&[k.as_str()]);
            m.dead_lettered.with_label_values(&[k.as_str()]);
        }
        for r in BRIDGE_REASONS.iter().chain(&["other"]) {
            m.errors.with_label_values(&[r]);
        }
        Ok(m)
    }

    /// Exposes the registry's metrics (a decoder with `REGISTRY_POSTGRES_URL`).
    pub fn register_registry(&self) -> prometheus::Result<()> {
        let r = &self.registry;
        r.register(Box::new(self.registry_up.clone()))?;
        r.register(Box::new(self.registry_devices.clone()))?;
        r.register(Box::new(self.registry_lookups.clone()))?;
        for result in REGISTRY_LOOKUP_RESULTS {
            self.registry_lookups.with_label_values(&[result]);
        }
        Ok(())
    }
}
