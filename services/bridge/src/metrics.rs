//! The bridge's Prometheus metrics. Names are a contract with the dashboards and alert rules:
//! keep them stable (`sck_bridge_*`, counters end in `_total`, durations in seconds).

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use sck_core::topic::Kind;

/// Label value for messages whose topic could not be routed to a kind.
pub const UNKNOWN_KIND: &str = "unknown";

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// Messages received from MQTT, by kind.
    pub received: IntCounterVec,
    /// Messages forwarded to the readings/events topics and acknowledged, by kind.
    pub forwarded: IntCounterVec,
    /// Messages sent to the dead-letter topic, by reason.
    pub dead_lettered: IntCounterVec,
    /// Messages received and not yet acknowledged to MQTT.
    pub in_flight: IntGauge,
    /// Messages received while the in-flight window was full, not yet being produced.
    pub waiting: IntGauge,
    /// Time from produce call to Kafka's acknowledgement.
    pub produce_seconds: Histogram,
    /// Produce attempts that failed (then retried).
    pub produce_errors: IntCounter,
    /// 1 while the MQTT connection is up.
    pub mqtt_connected: IntGauge,
    /// Successful MQTT reconnections after a lost connection.
    pub mqtt_reconnects: IntCounter,
    /// MQTT connection errors.
    pub mqtt_connection_errors: IntCounter,
    /// 1 while Kafka answers metadata requests for all three topics.
    pub kafka_up: IntGauge,
    /// PUBACKs that could not be queued (the broker will redeliver the message).
    pub ack_errors: IntCounter,
}

impl Metrics {
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let m = Metrics {
            received: IntCounterVec::new(
                Opts::new(
                    "sck_bridge_messages_received_total",
                    "MQTT messages received, by kind",
                ),
                &["kind"],
            )?,
            forwarded: IntCounterVec::new(
                Opts::new(
                    "sck_bridge_messages_forwarded_total",
                    "Messages written to Kafka and acknowledged to MQTT, by kind",
                ),
                &["kind"],
            )?,
            dead_lettered: IntCounterVec::new(
                Opts::new(
                    "sck_bridge_dead_lettered_total",
                    "Messages written to the dead-letter topic, by reason",
                ),
                &["reason"],
            )?,
            in_flight: IntGauge::new(
                "sck_bridge_in_flight_messages",
                "Messages being produced to Kafka or waiting for their PUBACK to be written",
            )?,
            waiting: IntGauge::new(
                "sck_bridge_waiting_messages",
                "Messages received while MAX_IN_FLIGHT was reached, waiting to be produced",
            )?,
            produce_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "sck_bridge_kafka_produce_duration_seconds",
                    "Kafka produce latency: call to delivery acknowledgement",
                )
                .buckets(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    30.0, 60.0,
                ]),
            )?,
            produce_errors: IntCounter::new(
                "sck_bridge_kafka_produce_errors_total",
                "Kafka produce attempts that failed and were retried",
            )?,
            mqtt_connected: IntGauge::new(
                "sck_bridge_mqtt_connected",
                "1 while connected to the MQTT broker",
            )?,
            mqtt_reconnects: IntCounter::new(
                "sck_bridge_mqtt_reconnects_total",
                "MQTT reconnections after a lost connection",
            )?,
            mqtt_connection_errors: IntCounter::new(
                "sck_bridge_mqtt_connection_errors_total",
                "MQTT connection errors",
            )?,
            kafka_up: IntGauge::new(
                "sck_bridge_kafka_up",
                "1 while Kafka answers metadata requests for the bridge's topics",
            )?,
            ack_errors: IntCounter::new(
                "sck_bridge_mqtt_ack_errors_total",
                "PUBACKs that could not be sent (the broker redelivers those messages)",
            )?,
            registry,
        };
        m.registry.register(Box::new(m.received.clone()))?;
        m.registry.register(Box::new(m.forwarded.clone()))?;
        m.registry.register(Box::new(m.dead_lettered.clone()))?;
        m.registry.register(Box::new(m.in_flight.clone()))?;
        m.registry.register(Box::new(m.waiting.clone()))?;
        m.registry.register(Box::new(m.produce_seconds.clone()))?;
        m.registry.register(Box::new(m.produce_errors.clone()))?;
        m.registry.register(Box::new(m.mqtt_connected.clone()))?;
        m.registry.register(Box::new(m.mqtt_reconnects.clone()))?;
        m.registry
            .register(Box::new(m.mqtt_connection_errors.clone()))?;
        m.registry.register(Box::new(m.kafka_up.clone()))?;
        m.registry.register(Box::new(m.ack_errors.clone()))?;
        // Series exist from the start (at 0), so rate() and absent() behave in alerts.
        for kind in Kind::ALL.iter().map(|k| k.as_str()).chain([UNKNOWN_KIND]) {
            m.received.with_label_values(&[kind]);
            m.forwarded.with_label_values(&[kind]);
        }
        for reason in ["too_large", "unknown_topic", "empty_token"] {
            m.dead_lettered.with_label_values(&[reason]);
        }
        Ok(m)
    }
}
