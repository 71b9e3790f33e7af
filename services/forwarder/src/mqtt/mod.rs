//! The forwarder's MQTT side (MQTT 5, QoS 1): the connection options, as the bridge connects
//! (host, port, credentials, TLS), and the [`Publisher`] task that owns the connection, publishes
//! what it is asked to and reports each publish's outcome: acknowledged, refused (a PUBACK
//! reason code), or lost with the connection.
//!
//! - A clean session: nothing unacknowledged survives a reconnect; the pipeline tries it again
//!   (counted as an attempt), so a message that keeps breaking the connection ends as a dead
//!   letter instead of looping.
//! - Requests reach the client only while connected (they wait in the publisher's backlog
//!   meanwhile, without counting as attempts), and at most FORWARD_MAX_IN_FLIGHT at a time; the
//!   client's own flow control keeps within the broker's Receive Maximum.
//! - [`inflight`] matches PUBACKs to publishes.

pub mod inflight;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use rumqttc::Outgoing;
use sck_core::backoff::Backoff;
use sck_runtime::http::Readiness;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::config::Config;
use crate::metrics::Metrics;
use inflight::Inflight;

/// Failure reason of a publish whose connection broke before its PUBACK.
pub const CONNECTION_LOST: &str = "connection_lost";
/// Readiness check name.
pub const READINESS_CHECK: &str = "mqtt";

pub fn options(cfg: &Config) -> anyhow::Result<MqttOptions> {
    let mut o = MqttOptions::new(&cfg.mqtt_client_id, &cfg.mqtt_host, cfg.mqtt_port);
    let limit = u16::try_from(cfg.max_in_flight).context("FORWARD_MAX_IN_FLIGHT over 65535")?;
    o.set_clean_start(true)
        .set_outgoing_inflight_upper_limit(limit);
    cfg.mqtt_login.apply(&mut o)?;
    Ok(o)
}

/// The client's request channel: every publish in flight, plus room for the disconnect.
pub fn channel_capacity(cfg: &Config) -> usize {
    cfg.max_in_flight + 16
}

/// What the pipeline asks of the publisher.
#[derive(Debug)]
pub enum Command<Id> {
    Publish {
        id: Id,
        topic: String,
        payload: Vec<u8>,
    },
    /// Disconnect cleanly and end.
    Disconnect,
}

/// The result of one publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    Acked,
    /// Refused (the PUBACK's reason code) or lost with the connection.
    Failed(&'static str),
}

pub struct Publisher<Id> {
    pub client: AsyncClient,
    pub eventloop: EventLoop,
    pub commands: mpsc::UnboundedReceiver<Command<Id>>,
    pub outcomes: mpsc::UnboundedSender<(Id, Published)>,
    /// True while connected (the pipeline consumes only then).
    pub connected: watch::Sender<bool>,
    pub max_in_flight: usize,
    pub reconnect: Backoff,
    pub metrics: Metrics,
    pub readiness: Arc<Readiness>,
}

impl<Id: Send + 'static> Publisher<Id> {
    pub async fn run(mut self) {
        let mut backlog: VecDeque<(Id, String, Vec<u8>)> = VecDeque::new();
        let mut inflight = Inflight::default();
        let mut connected = false;
        let mut failures: u32 = 0;
        let mut reconnect_at: Option<Instant> = None;
        loop {
            while connected && inflight.len() < self.max_in_flight {
                let Some((id, topic, payload)) = backlog.pop_front() else {
                    break;
                };
                match self
                    .client
                    .try_publish(topic, QoS::AtLeastOnce, false, payload)
                {
                    Ok(()) => inflight.queued(id),
                    // The channel holds every request in flight: it is never full.
                    Err(e) => {
                        tracing::error!(error = %e, "could not hand a publish to the MQTT client");
                        let _ = self.outcomes.send((id, Published::Failed("client_error")));
                    }
                }
            }
            // Not while a connection is being set up: a command would cancel it.
            let take_commands = connected || reconnect_at.is_some();
            tokio::select! {
                cmd = self.commands.recv(), if take_commands => match cmd {
                    Some(Command::Publish { id, topic, payload }) => {
                        backlog.push_back((id, topic, payload))
                    }
                    Some(Command::Disconnect) | None => break,
                },
                _ = tokio::time::sleep_until(reconnect_at.unwrap_or_else(Instant::now)),
                    if reconnect_at.is_some() => reconnect_at = None,
                event = self.eventloop.poll(), if reconnect_at.is_none() => match event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        if failures > 0 || connected {
                            tracing::info!("reconnected to MQTT");
                        } else {
                            tracing::info!("connected to MQTT");
                        }
                        connected = true;
                        failures = 0;
                        self.set_connected(true);
                    }
                    Ok(Event::Incoming(Packet::PubAck(ack))) => {
                        if let Some(id) = inflight.acked(ack.pkid) {
                            let _ = self.outcomes.send((id, outcome(ack.reason)));
                        }
                    }
                    Ok(Event::Outgoing(Outgoing::Publish(pkid))) => inflight.written(pkid),
                    Ok(Event::Outgoing(Outgoing::AwaitAck(pkid))) => inflight.collided(pkid),
                    Ok(_) => {}
                    Err(e) => {
                        let lost = inflight.lost();
                        match sck_runtime::mqtt::refusal(&e) {
                            Some(refused) => tracing::error!(
                                error = %e, attempt = failures, unacknowledged = lost.len(),
                                refused = refused.as_str(), "{}", refused.explain()
                            ),
                            None => tracing::warn!(
                                error = %e, attempt = failures, unacknowledged = lost.len(),
                                "MQTT connection error; reconnecting"
                            ),
                        }
                        for id in lost {
                            let _ = self.outcomes.send((id, Published::Failed(CONNECTION_LOST)));
                        }
                        self.metrics.mqtt_connection_errors.inc();
                        connected = false;
                        self.set_connected(false);
                        let delay = self.reconnect.delay(failures, fastrand::f64());
                        reconnect_at = Some(Instant::now() + delay);
                        failures = failures.saturating_add(1);
                    }
                },
            }
        }
        if connected && self.client.try_disconnect().is_ok() {
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
        self.set_connected(false);
        tracing::info!("disconnected from MQTT");
    }

    fn set_connected(&self, up: bool) {
        self.metrics.mqtt_connected.set(up as i64);
        self.readiness.set(READINESS_CHECK, up);
        let _ = self.connected.send(up);
    }
}

/// A PUBACK's reason code as an outcome (a bounded label for the failures).
pub fn outcome(reason: PubAckReason) -> Published {
    match reason {
        PubAckReason::Success | PubAckReason::NoMatchingSubscribers => Published::Acked,
        PubAckReason::UnspecifiedError => Published::Failed("unspecified_error"),
        PubAckReason::ImplementationSpecificError => {
            Published::Failed("implementation_specific_error")
        }
        PubAckReason::NotAuthorized => Published::Failed("not_authorized"),
        PubAckReason::TopicNameInvalid => Published::Failed("topic_name_invalid"),
        PubAckReason::PacketIdentifierInUse => Published::Failed("packet_identifier_in_use"),
        PubAckReason::QuotaExceeded => Published::Failed("quota_exceeded"),
        PubAckReason::PayloadFormatInvalid => Published::Failed("payload_format_invalid"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_puback_without_subscribers_is_an_ack_a_refusal_is_a_failure() {
        assert_eq!(outcome(PubAckReason::Success), Published::Acked);
        assert_eq!(
            outcome(PubAckReason::NoMatchingSubscribers),
            Published::Acked
        );
        assert_eq!(
            outcome(PubAckReason::NotAuthorized),
            Published::Failed("not_authorized")
        );
        assert_eq!(
            outcome(PubAckReason::QuotaExceeded),
            Published::Failed("quota_exceeded")
        );
    }
}
