//! The forwarder's Prometheus metrics. Names are a contract with the dashboards and alert rules
//! (a forwarding alert reads `sck_forwarder_dead_lettered_total`, `sck_forwarder_consumer_lag`,
//! `sck_forwarder_mqtt_connected`): keep them stable.

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

use crate::pipeline::state::REASONS;

/// `outcome` label values of `sck_forwarder_records_total`.
pub const RECORD_OUTCOMES: [&str; 4] = [
    OUTCOME_FORWARDING,
    OUTCOME_NOT_FORWARDING,
    OUTCOME_NO_READINGS,
    OUTCOME_REGISTRY_UNAVAILABLE,
];
/// A forwarding device's record with readings: its messages are published.
pub const OUTCOME_FORWARDING: &str = "forwarding";
/// Not a forwarding device (or no device).
pub const OUTCOME_NOT_FORWARDING: &str = "not_forwarding";
/// A forwarding device's record without a valid reading (nothing stored, nothing to publish).
pub const OUTCOME_NO_READINGS: &str = "no_readings";
/// A token the cache did not know while PostgreSQL could not say: not forwarded.
pub const OUTCOME_REGISTRY_UNAVAILABLE: &str = "registry_unavailable";

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// Readings records consumed, by outcome.
    pub records: IntCounterVec,
    /// MQTT messages the broker acknowledged.
    pub forwarded: IntCounter,
    /// Failed publish attempts (retried, or dead-lettered after the last), by reason.
    pub failed: IntCounterVec,
    /// Records dead-lettered, by reason.
    pub dead_lettered: IntCounterVec,
    /// Failed dead-letter produce attempts (retried until Kafka has it).
    pub dead_letter_failures: IntCounter,
    /// Records consumed and not done: waiting for the decoder, queued, in flight, being
    /// dead-lettered (FORWARD_QUEUE_CAPACITY bounds it).
    pub queued: IntGauge,
    /// Of those, the records waiting for the decoder's group to commit past them.
    pub gated: IntGauge,
    /// From the bridge receiving a record to the last PUBACK of its messages.
    pub latency: Histogram,
    /// Records not yet committed by this group, per assigned partition.
    pub consumer_lag: IntGaugeVec,
    pub commit_errors: IntCounter,
    /// 1 while consumption is paused (MQTT down, or the queue at capacity).
    pub paused: IntGauge,
    pub mqtt_connected: IntGauge,
    pub mqtt_connection_errors: IntCounter,
    pub kafka_up: IntGauge,
    /// 1 while the last registry query succeeded.
    pub registry_up: IntGauge,
    /// Registry queries, by result (ok, error).
    pub registry_queries: IntCounterVec,
    /// Forwarding devices in the cache.
    pub registry_devices: IntGauge,
}

impl Metrics {
    pub fn new() -> prometheus::Result<Self> {
        let m = Metrics {
            records: IntCounterVec::new(
                Opts::new("sck_forwarder_records_total", "Readings records consumed, by outcome"),
                &["outcome"],
            )?,
            forwarded: IntCounter::new(
                "sck_forwarder_messages_forwarded_total",
                "MQTT messages published and acknowledged by the broker (PUBACK)",
            )?,
            failed: IntCounterVec::new(
                Opts::new(
                    "sck_forwarder_publish_failures_total",
                    "Failed MQTT publish attempts (retried, then dead-lettered), by reason",
                ),
                &["reason"],
            )?,
            dead_lettered: IntCounterVec::new(
                Opts::new(
                    "sck_forwarder_dead_lettered_total",
                    "Records written to the dead-letter topic instead of being forwarded, by reason",
                ),
                &["reason"],
            )?,
            dead_letter_failures: IntCounter::new(
                "sck_forwarder_dead_letter_failures_total",
                "Failed dead-letter produce attempts (retried until Kafka has the record)",
            )?,
            queued: IntGauge::new(
                "sck_forwarder_queued_records",
                "Records consumed and not yet forwarded or dead-lettered (waiting for the decoder, queued, in flight)",
            )?,
            gated: IntGauge::new(
                "sck_forwarder_gated_records",
                "Records waiting for the decoder's group to commit past them (stored in ClickHouse)",
            )?,
            latency: Histogram::with_opts(
                HistogramOpts::new(
                    "sck_forwarder_latency_seconds",
                    "Bridge receive time (received_at_ms header) to the last PUBACK of a record's messages",
                )
                .buckets(vec![0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0]),
            )?,
            consumer_lag: IntGaugeVec::new(
                Opts::new(
                    "sck_forwarder_consumer_lag",
                    "Records behind the partition's high watermark (committed offsets), per assigned partition",
                ),
                &["topic", "partition"],
            )?,
            commit_errors: IntCounter::new(
                "sck_forwarder_commit_errors_total",
                "Kafka offset commits that failed",
            )?,
            paused: IntGauge::new(
                "sck_forwarder_paused",
                "1 while consumption is paused (MQTT disconnected, or FORWARD_QUEUE_CAPACITY reached)",
            )?,
            mqtt_connected: IntGauge::new(
                "sck_forwarder_mqtt_connected",
                "1 while connected to the MQTT broker",
            )?,
            mqtt_connection_errors: IntCounter::new(
                "sck_forwarder_mqtt_connection_errors_total",
                "MQTT connection errors (each followed by a reconnect)",
            )?,
            kafka_up: IntGauge::new("sck_forwarder_kafka_up", "1 while Kafka answers metadata requests")?,
            registry_up: IntGauge::new(
                "sck_forwarder_registry_up",
                "1 while the last query of the platform's PostgreSQL succeeded",
            )?,
            registry_queries: IntCounterVec::new(
                Opts::new(
                    "sck_forwarder_registry_queries_total",
                    "Queries of the platform's PostgreSQL (loads and lookups), by result",
                ),
                &["result"],
            )?,
            registry_devices: IntGauge::new(
                "sck_forwarder_registry_forwarding_devices",
                "Forwarding devices in the cache",
            )?,
            registry: Registry::new(),
        };
        let r = &m.registry;
        r.register(Box::new(m.records.clone()))?;
        r.register(Box::new(m.forwarded.clone()))?;
        r.register(Box::new(m.failed.clone()))?;
        r.register(Box::new(m.dead_lettered.clone()))?;
        r.register(Box::new(m.dead_letter_failures.clone()))?;
        r.register(Box::new(m.queued.clone()))?;
        r.register(Box::new(m.gated.clone()))?;
        r.register(Box::new(m.latency.clone()))?;
        r.register(Box::new(m.consumer_lag.clone()))?;
        r.register(Box::new(m.commit_errors.clone()))?;
        r.register(Box::new(m.paused.clone()))?;
        r.register(Box::new(m.mqtt_connected.clone()))?;
        r.register(Box::new(m.mqtt_connection_errors.clone()))?;
        r.register(Box::new(m.kafka_up.clone()))?;
        r.register(Box::new(m.registry_up.clone()))?;
        r.register(Box::new(m.registry_queries.clone()))?;
        r.register(Box::new(m.registry_devices.clone()))?;
        // The label values dashboards and alerts expect exist at zero.
        for o in RECORD_OUTCOMES {
            m.records.with_label_values(&[o]);
        }
        for reason in REASONS {
            m.dead_lettered.with_label_values(&[reason]);
        }
        m.failed.with_label_values(&[crate::mqtt::CONNECTION_LOST]);
        for result in ["ok", "error"] {
            m.registry_queries.with_label_values(&[result]);
        }
        Ok(m)
    }
}
