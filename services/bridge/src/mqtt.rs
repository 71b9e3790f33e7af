//! The bridge's MQTT side (MQTT 5): session options, and the intake loop that reads messages only
//! while fewer than MAX_IN_FLIGHT are unacknowledged, then drains on shutdown.
//!
//! The hard bound comes from the protocol: the session's Receive Maximum is MAX_IN_FLIGHT, so
//! the broker never has more than that many unacknowledged QoS 1 messages out to this bridge;
//! the rest stay queued in the broker's session.
//!
//! Back-pressure is "stop polling": when every permit is taken and no PUBACK waits to be written,
//! the event loop is not polled, the socket is not read, and the broker keeps the backlog in the
//! persistent session. A permit comes back when Kafka has the record ([`crate::forward`]) and its
//! PUBACK has been written. Messages read while flushing PUBACKs wait in a small queue.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use std::collections::VecDeque;

use rumqttc::v5::mqttbytes::v5::{Filter, Packet, Publish, SubscribeReasonCode};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use rumqttc::Outgoing;
use sck_core::backoff::Backoff;
use sck_runtime::backoff_sleep;
use sck_runtime::http::Readiness;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

use crate::config::Config;
use crate::forward::{Delivered, Forwarder};
use crate::metrics::Metrics;

/// MQTT's own packet size limit: accepting anything the broker sends means an oversized
/// message is dead-lettered instead of breaking the connection in a redelivery loop.
const MQTT_MAX_PACKET: u32 = 268_435_455;

pub fn options(cfg: &Config) -> anyhow::Result<MqttOptions> {
    let mut o = MqttOptions::new(&cfg.client_id, &cfg.mqtt_host, cfg.mqtt_port);
    let receive_maximum = u16::try_from(cfg.max_in_flight).context("MAX_IN_FLIGHT over 65535")?;
    // Persistent session + stable client id: a restarted bridge resumes where it stopped, and
    // the broker keeps the session (and its queued messages) this long while it is away.
    o.set_clean_start(false)
        .set_session_expiry_interval(Some(cfg.mqtt_session_expiry_secs))
        .set_receive_maximum(Some(receive_maximum))
        .set_manual_acks(true)
        .set_max_packet_size(Some(MQTT_MAX_PACKET));
    cfg.mqtt_login.apply(&mut o)?;
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
    pub delivered: mpsc::UnboundedReceiver<Delivered>,
    pub permits: Arc<Semaphore>,
    pub max_in_flight: u32,
    pub drain_timeout: Duration,
    pub readiness: Arc<Readiness>,
    pub metrics: Metrics,
    pub reconnect: Backoff,
}

/// What the intake loop tracks between events.
#[derive(Default)]
struct Books {
    /// Received while every permit was taken; forwarded as permits come back. Each is
    /// unacknowledged at the broker, so the session's Receive Maximum (MAX_IN_FLIGHT) bounds
    /// this queue together with the in-flight ones, on brokers that honour it (EMQX does;
    /// Mosquitto 2.0.11 was seen to exceed it when flushing a stalled session).
    waiting: VecDeque<Publish>,
    /// PUBACKs queued to the event loop and not yet written, with their permits, in order.
    unflushed: VecDeque<(u16, OwnedSemaphorePermit)>,
}

impl Intake {
    /// Runs until `shutdown` flips to true, then drains (see [`Intake::drain`]).
    ///
    /// A permit is taken when a message starts forwarding and returned when its PUBACK has been
    /// written, so PUBACKs queued in the client channel never exceed MAX_IN_FLIGHT (the channel
    /// is sized for that and never blocks). The event loop is polled while a permit is free, or
    /// while PUBACKs wait to be written; otherwise it is left alone and the broker holds the rest.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        let mut books = Books::default();
        let mut connected_once = false;
        let mut failures: u32 = 0;
        loop {
            while !books.waiting.is_empty() {
                let Ok(permit) = self.permits.clone().try_acquire_owned() else {
                    break;
                };
                if let Some(p) = books.waiting.pop_front() {
                    tokio::spawn(self.forwarder.clone().forward(p, permit));
                }
            }
            self.update_gauges(&books);
            let may_poll = (books.waiting.is_empty() && self.permits.available_permits() > 0)
                || !books.unflushed.is_empty();
            let event = tokio::select! {
                biased;
                _ = shutdown.wait_for(|s| *s) => break,
                Some((publish, permit)) = self.delivered.recv() => {
                    self.ack(&mut books, publish, permit);
                    continue;
                }
                event = self.eventloop.poll(), if may_poll => event,
            };
            match event {
                Ok(Event::Incoming(Packet::Publish(p))) => books.waiting.push_back(p),
                Ok(Event::Outgoing(Outgoing::PubAck(pkid))) => flushed(&mut books, pkid),
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    if connected_once {
                        self.metrics.mqtt_reconnects.inc();
                    }
                    connected_once = true;
                    failures = 0;
                    self.metrics.mqtt_connected.set(1);
                    tracing::info!(session_present = ack.session_present, "connected to MQTT");
                    // Ready once the broker has granted the subscriptions (the SUBACK below).
                    self.subscribe()?;
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    let refused = refused_filters(&self.subscriptions, &ack.return_codes);
                    if refused.is_empty() {
                        self.readiness.set("mqtt", true);
                    } else {
                        // Connected but receiving nothing (or a part): not ready, said plainly.
                        // The broker keeps the refusal until its ACL changes; the next
                        // reconnection subscribes again.
                        self.readiness.set("mqtt", false);
                        tracing::error!(
                            refused = ?refused,
                            "the MQTT broker refused subscriptions (its ACL for MQTT_USERNAME?); not ready"
                        );
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    self.metrics.mqtt_connected.set(0);
                    self.metrics.mqtt_connection_errors.inc();
                    self.readiness.set("mqtt", false);
                    // rumqttc drops queued PUBACKs on a broken connection, and the broker
                    // redelivers every unacknowledged message on the resumed session.
                    books.unflushed.clear();
                    books.waiting.clear();
                    match sck_runtime::mqtt::refusal(&e) {
                        Some(refused) => tracing::error!(
                            error = %e, attempt = failures, refused = refused.as_str(),
                            "{}", refused.explain()
                        ),
                        None => {
                            tracing::warn!(error = %e, attempt = failures, "MQTT connection error; reconnecting")
                        }
                    }
                    tokio::select! {
                        _ = shutdown.wait_for(|s| *s) => break,
                        _ = backoff_sleep(&self.reconnect, failures) => {}
                    }
                    failures = failures.saturating_add(1);
                }
            }
        }
        self.drain(books).await;
        Ok(())
    }

    /// Queues the PUBACK of a message Kafka has; its permit returns when the PUBACK is written.
    fn ack(&self, books: &mut Books, publish: Publish, permit: OwnedSemaphorePermit) {
        if publish.qos == QoS::AtMostOnce {
            return; // nothing to acknowledge
        }
        match self.client.try_ack(&publish) {
            Ok(()) => books.unflushed.push_back((publish.pkid, permit)),
            Err(e) => {
                // Cannot happen while the channel is sized for MAX_IN_FLIGHT; if it does, the
                // message stays unacknowledged and the broker redelivers it.
                self.metrics.ack_errors.inc();
                tracing::error!(error = %e, pkid = publish.pkid, "could not queue PUBACK");
            }
        }
    }

    fn update_gauges(&self, books: &Books) {
        let taken = self.max_in_flight as usize - self.permits.available_permits();
        self.metrics.in_flight.set(taken as i64);
        self.metrics.waiting.set(books.waiting.len() as i64);
    }

    fn subscribe(&self) -> anyhow::Result<()> {
        let filters = self
            .subscriptions
            .iter()
            .map(|f| Filter::new(f.clone(), QoS::AtLeastOnce));
        self.client
            .try_subscribe_many(filters)
            .context("queueing MQTT subscriptions")
    }

    /// Shutdown: take no new message (those received from now on, and those waiting for a
    /// permit, stay unacknowledged and are redelivered), wait up to DRAIN_TIMEOUT for in-flight
    /// records to reach Kafka and their PUBACKs to be written, then disconnect cleanly.
    async fn drain(mut self, mut books: Books) {
        self.readiness.stopping();
        let not_taken = books.waiting.len();
        books.waiting.clear();
        let in_flight = self.max_in_flight as usize - self.permits.available_permits();
        tracing::info!(
            in_flight,
            not_taken,
            "stopping: draining in-flight messages"
        );
        let all_back = |s: &Self| s.permits.available_permits() == s.max_in_flight as usize;
        let drained = tokio::time::timeout(self.drain_timeout, async {
            while !all_back(&self) {
                tokio::select! {
                    Some((publish, permit)) = self.delivered.recv() => self.ack(&mut books, publish, permit),
                    e = self.eventloop.poll() => match e {
                        Ok(Event::Outgoing(Outgoing::PubAck(pkid))) => flushed(&mut books, pkid),
                        Ok(_) => {}
                        Err(_) => {
                            books.unflushed.clear();
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    },
                }
            }
        })
        .await;
        self.update_gauges(&books);
        match drained {
            Ok(()) => tracing::info!("all in-flight messages acknowledged"),
            Err(_) => tracing::warn!(
                still_in_flight = self.max_in_flight as usize - self.permits.available_permits(),
                "drain timeout: unacknowledged messages will be redelivered by the broker"
            ),
        }
        if self.client.try_disconnect().is_ok() {
            // Keep reading until the broker closes the connection after our DISCONNECT. Exiting
            // with the broker's newer PUBLISHes unread in the socket makes the kernel answer
            // with a RST, and a broker that sees the RST first discards the last PUBACKs still
            // in its receive buffer: those messages would be redelivered (duplicates). The
            // PUBLISHes read here are not acknowledged and stay in the session.
            let _ = tokio::time::timeout(Duration::from_secs(5), async {
                while self.eventloop.poll().await.is_ok() {}
            })
            .await;
        }
        self.metrics.mqtt_connected.set(0);
        tracing::info!("disconnected from MQTT");
    }
}

/// The filters a SUBACK refused, with the broker's reason (its codes are in the order of the
/// SUBSCRIBE's filters, all of them in one packet).
fn refused_filters(filters: &[String], codes: &[SubscribeReasonCode]) -> Vec<String> {
    codes
        .iter()
        .enumerate()
        .filter(|(_, c)| !matches!(c, SubscribeReasonCode::Success(_)))
        .map(|(i, c)| {
            let filter = filters.get(i).map_or("?", String::as_str);
            format!("{filter} ({c:?})")
        })
        .collect()
}

/// A PUBACK was written: return its permit. PUBACKs leave in the order they were queued.
fn flushed(books: &mut Books, pkid: u16) {
    if let Some(i) = books.unflushed.iter().position(|(p, _)| *p == pkid) {
        books.unflushed.remove(i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_filters_are_named_with_their_reason() {
        let filters = ["$share/g/a".to_string(), "$share/g/b".to_string()];
        assert!(refused_filters(
            &filters,
            &[
                SubscribeReasonCode::Success(QoS::AtLeastOnce),
                SubscribeReasonCode::Success(QoS::AtMostOnce)
            ]
        )
        .is_empty());
        assert_eq!(
            refused_filters(
                &filters,
                &[
                    SubscribeReasonCode::Success(QoS::AtLeastOnce),
                    SubscribeReasonCode::NotAuthorized
                ]
            ),
            ["$share/g/b (NotAuthorized)"]
        );
    }
}
