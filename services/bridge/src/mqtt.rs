//! The bridge's MQTT side: session options, and the intake loop that reads messages only while
//! fewer than MAX_IN_FLIGHT are unacknowledged, then drains on shutdown.
//!
//! Back-pressure is "stop polling": when every permit is taken the event loop is not polled, the
//! socket is not read, and the broker keeps the backlog in the persistent session. Permits come
//! back when Kafka acknowledges and the PUBACK is queued ([`crate::forward`]).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rumqttc::{
    AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS, SubscribeFilter,
    SubscribeReasonCode, Transport,
};
use sck_core::backoff::Backoff;
use sck_core::runtime::backoff_sleep;
use sck_core::runtime::http::Readiness;
use tokio::sync::{watch, Semaphore};

use crate::config::Config;
use crate::forward::Forwarder;
use crate::metrics::Metrics;

/// MQTT's own packet size limit: accepting anything the broker sends means an oversized
/// message is dead-lettered instead of breaking the connection in a redelivery loop.
const MQTT_MAX_PACKET: usize = 268_435_455;
/// CA bundle used for MQTT TLS when MQTT_CA_FILE is not set (Debian / distroless path).
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

pub fn options(cfg: &Config) -> anyhow::Result<MqttOptions> {
    let mut o = MqttOptions::new(&cfg.client_id, &cfg.mqtt_host, cfg.mqtt_port);
    o.set_keep_alive(cfg.mqtt_keep_alive)
        // Persistent session + stable client id: a restarted bridge resumes where it stopped.
        .set_clean_session(false)
        .set_manual_acks(true)
        .set_max_packet_size(MQTT_MAX_PACKET, MQTT_MAX_PACKET);
    if let Some((user, pass)) = &cfg.mqtt_credentials {
        o.set_credentials(user, pass);
    }
    if cfg.mqtt_tls {
        let path = cfg
            .mqtt_ca_file
            .clone()
            .unwrap_or_else(|| SYSTEM_CA_BUNDLE.into());
        let ca = std::fs::read(&path)
            .with_context(|| format!("reading MQTT CA file {}", path.display()))?;
        o.set_transport(Transport::tls(ca, None, None));
    }
    Ok(o)
}

/// Request-channel capacity: every in-flight message may queue one PUBACK while the event loop
/// is not polled (back-pressure), plus room for subscriptions and the disconnect.
pub fn channel_capacity(cfg: &Config) -> usize {
    cfg.max_in_flight + cfg.subscriptions.len() * 4 + 16
}

pub struct Intake {
    pub client: AsyncClient,
    pub eventloop: EventLoop,
    pub subscriptions: Vec<String>,
    pub forwarder: Arc<Forwarder>,
    pub permits: Arc<Semaphore>,
    pub max_in_flight: u32,
    pub drain_timeout: Duration,
    pub readiness: Arc<Readiness>,
    pub metrics: Metrics,
    pub reconnect: Backoff,
}

impl Intake {
    /// Runs until `shutdown` flips to true, then drains (see [`Intake::drain`]).
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        let mut connected_once = false;
        let mut failures: u32 = 0;
        'intake: loop {
            let permit = tokio::select! {
                biased;
                _ = shutdown.wait_for(|s| *s) => break 'intake,
                p = self.permits.clone().acquire_owned() => p.context("in-flight semaphore closed")?,
            };
            let publish = loop {
                let event = tokio::select! {
                    biased;
                    _ = shutdown.wait_for(|s| *s) => break 'intake,
                    e = self.eventloop.poll() => e,
                };
                match event {
                    Ok(Event::Incoming(Packet::Publish(p))) => break p,
                    Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                        if connected_once {
                            self.metrics.mqtt_reconnects.inc();
                        }
                        connected_once = true;
                        failures = 0;
                        self.metrics.mqtt_connected.set(1);
                        self.readiness.set("mqtt", true);
                        tracing::info!(session_present = ack.session_present, "connected to MQTT");
                        self.subscribe()?;
                    }
                    Ok(Event::Incoming(Packet::SubAck(ack))) => {
                        let refused = ack
                            .return_codes
                            .iter()
                            .filter(|c| matches!(c, SubscribeReasonCode::Failure))
                            .count();
                        if refused > 0 {
                            tracing::error!(
                                refused,
                                "the MQTT broker refused subscriptions (ACL?)"
                            );
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        self.metrics.mqtt_connected.set(0);
                        self.metrics.mqtt_connection_errors.inc();
                        self.readiness.set("mqtt", false);
                        tracing::warn!(error = %e, attempt = failures, "MQTT connection error; reconnecting");
                        tokio::select! {
                            _ = shutdown.wait_for(|s| *s) => break 'intake,
                            _ = backoff_sleep(&self.reconnect, failures) => {}
                        }
                        failures = failures.saturating_add(1);
                    }
                }
            };
            tokio::spawn(self.forwarder.clone().forward(publish, permit));
        }
        self.drain().await;
        Ok(())
    }

    fn subscribe(&self) -> anyhow::Result<()> {
        let filters = self
            .subscriptions
            .iter()
            .map(|f| SubscribeFilter::new(f.clone(), QoS::AtLeastOnce));
        self.client
            .try_subscribe_many(filters)
            .context("queueing MQTT subscriptions")
    }

    /// Shutdown: take no new message (those the broker sends now stay unacknowledged and are
    /// redelivered), wait up to DRAIN_TIMEOUT for in-flight records to reach Kafka while still
    /// polling so their PUBACKs go out, then disconnect cleanly.
    async fn drain(mut self) {
        self.readiness.stopping();
        let in_flight = self.max_in_flight as usize - self.permits.available_permits();
        tracing::info!(in_flight, "stopping: draining in-flight messages");
        let mut not_taken = 0u64;
        let drained = tokio::time::timeout(self.drain_timeout, async {
            loop {
                tokio::select! {
                    biased;
                    all = self.permits.acquire_many(self.max_in_flight) => {
                        // Hold the permits: nothing may start forwarding from here on.
                        if let Ok(p) = all { p.forget(); }
                        break;
                    }
                    e = self.eventloop.poll() => match e {
                        Ok(Event::Incoming(Packet::Publish(_))) => not_taken += 1,
                        Ok(_) => {}
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    },
                }
            }
        })
        .await;
        match drained {
            Ok(()) => tracing::info!(not_taken, "all in-flight messages acknowledged"),
            Err(_) => tracing::warn!(
                still_in_flight = self.max_in_flight as usize - self.permits.available_permits(),
                "drain timeout: unacknowledged messages will be redelivered by the broker"
            ),
        }
        // PUBACKs queued before the DISCONNECT are written before it.
        if self.client.try_disconnect().is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(5), async {
                loop {
                    match self.eventloop.poll().await {
                        Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
            })
            .await;
        }
        self.metrics.mqtt_connected.set(0);
        tracing::info!("disconnected from MQTT");
    }
}
