//! MQTT from the tests' side (MQTT 3.1.1, as devices speak it): connection options for the stack
//! (TLS and a login on a secure stack), a QoS 1 publisher that waits for PUBACKs, the readings
//! payloads of a run, and clearing persistent sessions.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS, Transport};
use sck_core::encode::{self, Spaced};

use crate::*;

/// Options for a client of the stack's broker: over TLS trusting the stack's CA and logged in
/// as `login` on a secure stack (where a client without a login is refused), plain otherwise.
pub fn mqtt_options(client_id: &str, login: Option<&Login>) -> MqttOptions {
    let s = stack();
    let mut o = MqttOptions::new(client_id, &s.mqtt_host, s.mqtt_port);
    if let Some(l) = login {
        o.set_credentials(&l.user, &l.password);
    }
    if let Some(secure) = &s.secure {
        o.set_transport(tls_transport(&secure.ca_file));
    }
    o
}

/// A TLS transport trusting the CA certificates of `ca_file` (rustls with the ring provider,
/// as the services use).
pub fn tls_transport(ca_file: &std::path::Path) -> Transport {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca = std::fs::read(ca_file).unwrap_or_else(|e| panic!("read {}: {e}", ca_file.display()));
    Transport::tls(ca, None, None)
}

/// Ends a test's bridges: stops them and removes their MQTT sessions. Kafka topics are left in
/// place: every test has its own uniquely named ones ([`Topics::unique`]), `make test` starts
/// from a fresh tansu database, and tansu 0.6.0's DeleteTopics deletes *every* topic, so no test
/// may call it.
pub async fn retire(bridges: Vec<Bridge>) {
    let ids: Vec<String> = bridges.iter().map(Bridge::client_id).collect();
    drop(bridges);
    forget_sessions(&ids).await;
}

/// Removes the broker's persistent sessions of these client ids, so dead test bridges do not
/// keep a share of later tests' messages queued in Mosquitto.
pub async fn forget_sessions(client_ids: &[String]) {
    // On a secure stack, as the bridges' user (any user may take over a client id).
    let login = stack().secure.as_ref().map(|s| &s.mqtt_bridge);
    for id in client_ids {
        let mut o = mqtt_options(id, login);
        o.set_clean_session(true);
        let (client, mut el) = AsyncClient::new(o, 10);
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = client.disconnect().await;
                    }
                    Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => break,
                    _ => {}
                }
            }
        })
        .await;
    }
}

/// A QoS 1 publisher that counts the broker's PUBACKs.
pub struct Publisher {
    pub client: AsyncClient,
    pub client_id: String,
    pub acked: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Publisher {
    /// A publisher with a clean session: what it had not yet got acknowledged when the
    /// connection broke is dropped at the reconnect (rumqttc keeps it only for a resumed session).
    pub async fn connect() -> Publisher {
        Publisher::connect_session(true, None).await
    }

    /// A publisher with a persistent session, as a device that must not lose readings: across a
    /// broker restart that kept its session it sends again what was not acknowledged. Remove
    /// the session afterwards ([`forget_sessions`] with its `client_id`).
    pub async fn connect_persistent() -> Publisher {
        Publisher::connect_session(false, None).await
    }

    /// A clean-session publisher logged in as `login` (on a secure stack: a device, whose user
    /// is its token).
    pub async fn connect_as(login: Option<&Login>) -> Publisher {
        Publisher::connect_session(true, login).await
    }

    async fn connect_session(clean: bool, login: Option<&Login>) -> Publisher {
        let client_id = unique("pub");
        let mut o = mqtt_options(&client_id, login);
        o.set_clean_session(clean)
            .set_inflight(200)
            .set_max_packet_size(1 << 21, 1 << 21)
            .set_keep_alive(Duration::from_secs(30));
        let (client, mut el) = AsyncClient::new(o, 1000);
        let acked = Arc::new(AtomicUsize::new(0));
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let counter = acked.clone();
        let task = tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        if let Some(tx) = ready.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        eprintln!("publisher connection error: {e}");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), ready_rx)
            .await
            .expect("publisher connected in time")
            .expect("publisher task alive");
        Publisher {
            client,
            client_id,
            acked,
            task,
        }
    }

    pub async fn publish(&self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .expect("queue publish");
    }

    /// Waits until the broker acknowledged `n` publishes in total.
    pub async fn wait_acked(&self, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.acked.load(Ordering::Relaxed) < n {
            assert!(
                Instant::now() < deadline,
                "broker acked {} of {n} publishes",
                self.acked.load(Ordering::Relaxed)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Payload of test message `seq` of run `run`: a realistic JSON readings message (sensor 1
/// reads `seq` at 2024-01-01 00:00:00) marked with `"run"` and `"seq"` fields after `data`,
/// which the decoder ignores and [`seq_of`] reads back.
pub fn reading_payload(run: &str, seq: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    encode::json(&mut out, [(Spaced(1_704_067_200), [(1, seq as f64)])]);
    out.pop(); // the message's closing brace: the markers go inside it
    out.extend_from_slice(format!(r#","run":"{run}","seq":{seq}}}"#).as_bytes());
    out
}

/// The `seq` of a payload made by [`reading_payload`] for this run, if it is one.
pub fn seq_of(run: &str, payload: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(payload).ok()?;
    if !text.contains(&format!(r#""run":"{run}""#)) {
        return None;
    }
    let rest = text.split(r#""seq":"#).nth(1)?;
    rest.trim_end_matches('}').parse().ok()
}
