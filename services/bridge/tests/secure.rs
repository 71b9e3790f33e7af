//! sck-bridge against the secured stack (`STACK_SECURE=1`, started by
//! scripts/check-secure-stack.sh): Mosquitto over TLS only with users and an ACL, tansu with
//! SASL/SCRAM. Built only with the `secure` feature, so the integration run on the plain stack
//! never sees these tests.
//!
//! - a reading flows over TLS, logged in, to Kafka over SASL;
//! - a wrong password or an untrusted CA leaves the bridge up, not ready, saying why in its
//!   log, and retrying with backoff (no hot loop, no crash);
//! - anonymous clients, wrong passwords and plaintext clients are refused by the broker;
//! - a device publishes only under its own token, and can neither subscribe to other devices'
//!   topics nor join the bridge's shared subscription to take its messages.
#![cfg(feature = "secure")]

use std::time::{Duration, Instant};

use rumqttc::v5::mqttbytes::v5::{Packet as Packet5, PubAckReason, SubscribeReasonCode as Sub5};
use rumqttc::v5::{AsyncClient as Client5, Event as Event5, MqttOptions as Options5};
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, Packet, QoS, SubscribeReasonCode,
};
use sck_testkit::*;

/// Device `i` of the secure stack (user = token).
fn device(i: usize) -> Login {
    stack().secure().mqtt_devices[i].clone()
}

/// A CA that did not sign the broker's certificate (the decoder's TLS test fixture).
fn other_ca() -> std::path::PathBuf {
    repo_root().join("services/decoder/tests/fixtures/ca.pem")
}

/// The first CONNACK outcome of an MQTT 3.1.1 client with these options.
async fn connect_outcome(o: rumqttc::MqttOptions) -> Result<(), ConnectionError> {
    let (_client, mut el) = AsyncClient::new(o, 10);
    let outcome = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
    })
    .await;
    outcome.expect("an answer from the broker within 10 s")
}

/// An MQTT 3.1.1 client (as devices speak it) that records what the broker sends it.
struct Probe {
    client: AsyncClient,
    events: tokio::sync::mpsc::UnboundedReceiver<Packet>,
    task: tokio::task::JoinHandle<()>,
}

impl Probe {
    async fn connect(login: &Login) -> Probe {
        let mut o = mqtt_options(&unique("probe"), Some(login));
        o.set_clean_session(true);
        let (client, mut el) = AsyncClient::new(o, 100);
        let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(p)) => {
                        if tx.send(p).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => panic!("probe connection error: {e}"),
                }
            }
        });
        let connected = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(p) = events.recv().await {
                if matches!(p, Packet::ConnAck(_)) {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(connected, Ok(true), "{} could not connect", login.user);
        Probe {
            client,
            events,
            task,
        }
    }

    /// The next packet the broker sends (10 s at most).
    async fn next(&mut self) -> Packet {
        tokio::time::timeout(Duration::from_secs(10), self.events.recv())
            .await
            .expect("a packet from the broker within 10 s")
            .expect("probe task alive")
    }

    /// Subscribes to `filter`; the SUBACK's code, and every PUBLISH that arrived before it.
    async fn subscribe(&mut self, filter: &str) -> (SubscribeReasonCode, Vec<String>) {
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .expect("queue subscribe");
        let mut before = Vec::new();
        loop {
            match self.next().await {
                Packet::SubAck(ack) => return (ack.return_codes[0], before),
                Packet::Publish(p) => before.push(String::from_utf8_lossy(&p.payload).into()),
                _ => {}
            }
        }
    }

    /// Publishes at QoS 1 and waits for the broker's PUBACK.
    async fn publish(&mut self, topic: &str, payload: &[u8]) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.to_vec())
            .await
            .expect("queue publish");
        loop {
            if let Packet::PubAck(_) = self.next().await {
                return;
            }
        }
    }

    /// The next PUBLISH this client receives.
    async fn received(&mut self) -> String {
        loop {
            if let Packet::Publish(p) = self.next().await {
                return String::from_utf8_lossy(&p.payload).into();
            }
        }
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An MQTT 5 client; its event loop is polled by the caller.
fn client5(login: &Login) -> (Client5, rumqttc::v5::EventLoop) {
    let s = stack();
    let mut o = Options5::new(unique("probe5"), &s.mqtt_host, s.mqtt_port);
    o.set_credentials(&login.user, &login.password)
        .set_clean_start(true)
        .set_transport(tls_transport(&s.secure().ca_file));
    Client5::new(o, 10)
}

/// Polls an MQTT 5 event loop until `want` picks a value out of an incoming packet.
async fn until5<T>(
    el: &mut rumqttc::v5::EventLoop,
    mut want: impl FnMut(&Packet5) -> Option<T>,
) -> T {
    let got = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match el.poll().await {
                Ok(Event5::Incoming(p)) => {
                    if let Some(t) = want(&p) {
                        return t;
                    }
                }
                Ok(_) => {}
                Err(e) => panic!("MQTT 5 connection error: {e}"),
            }
        }
    })
    .await;
    got.expect("the expected packet within 10 s")
}

/// The bridge's log, without terminal colours.
fn plain_log(svc: &Service) -> String {
    let text = svc.log_text();
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(i) = rest.find("\x1b[") {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        rest = rest.find('m').map_or("", |m| &rest[m + 1..]);
    }
    out.push_str(rest);
    out
}

fn not_ready(svc: &Service) -> bool {
    matches!(svc.get("/readyz"), Some((code, _)) if code != 200)
}

/// A bridge refused by the broker stays up and unready, logs `says`, and retries with backoff:
/// five connection attempts take at least the backoff's 0.1 + 0.2 + 0.4 + 0.8 s (jitter
/// halves delays at most; 200 ms of polling slack), where a hot loop would take milliseconds.
fn refused_with_backoff(bridge: &mut Bridge, says: &str) {
    let errors = |b: &Bridge| {
        b.metric("sck_bridge_mqtt_connection_errors_total")
            .unwrap_or(0.0)
    };
    assert!(
        wait_for(Duration::from_secs(30), || errors(bridge) >= 1.0),
        "no connection error counted\n{}",
        bridge.log_text()
    );
    let first = Instant::now();
    assert!(
        wait_for(Duration::from_secs(30), || errors(bridge) >= 5.0),
        "fewer than 5 attempts in 30 s\n{}",
        bridge.log_text()
    );
    let took = first.elapsed();
    assert!(
        took >= Duration::from_millis(1200),
        "5 attempts in {took:?}: no backoff\n{}",
        bridge.log_text()
    );
    assert!(not_ready(bridge), "{:?}", bridge.get("/readyz"));
    assert_eq!(
        bridge.metric("sck_bridge_mqtt_connected"),
        Some(0.0),
        "connected while refused"
    );
    assert!(
        matches!(bridge.child.try_wait(), Ok(None)),
        "the bridge exited: {:?}\n{}",
        bridge.child.try_wait(),
        bridge.log_text()
    );
    let log = plain_log(bridge);
    assert!(log.contains(says), "the log does not say {says:?}:\n{log}");
}

#[test]
fn a_reading_flows_over_tls_with_logins_to_kafka_over_sasl() {
    serial(async {
        let topics = Topics::unique();
        let bridge = Bridge::start(&BridgeSpec::new(&topics, &unique("g")));
        let dev = device(0);
        let publisher = Publisher::connect_as(Some(&dev)).await;
        let run = unique("tls");
        let n = 50;
        for seq in 0..n {
            publisher
                .publish(
                    &format!("device/sck/{}/readings", dev.user),
                    reading_payload(&run, seq),
                )
                .await;
        }
        publisher.wait_acked(n, Duration::from_secs(30)).await;
        let records = read_until(&[&topics.readings], Duration::from_secs(60), |rs| {
            rs.iter()
                .filter(|r| seq_of(&run, &r.payload).is_some())
                .count()
                >= n
        })
        .await;
        let mine: Vec<&Record> = records
            .iter()
            .filter(|r| seq_of(&run, &r.payload).is_some())
            .collect();
        assert_eq!(mine.len(), n, "records of this run in Kafka");
        assert!(mine
            .iter()
            .all(|r| r.key.as_deref() == Some(dev.user.as_bytes())));
        let mut seqs: Vec<usize> = mine
            .iter()
            .filter_map(|r| seq_of(&run, &r.payload))
            .collect();
        seqs.sort_unstable();
        assert_eq!(seqs, (0..n).collect::<Vec<_>>());
        assert_eq!(bridge.metric("sck_bridge_mqtt_connected"), Some(1.0));
        assert_eq!(bridge.metric("sck_bridge_kafka_up"), Some(1.0));
        retire(vec![bridge]).await;
    });
}

#[test]
fn the_broker_refuses_anonymous_wrong_password_and_plaintext_clients() {
    serial(async {
        let s = stack();
        let anonymous = connect_outcome(mqtt_options(&unique("anon"), None)).await;
        assert!(
            matches!(
                anonymous,
                Err(ConnectionError::ConnectionRefused(
                    ConnectReturnCode::NotAuthorized
                ))
            ),
            "{anonymous:?}"
        );
        let mut wrong = device(0);
        wrong.password.push('x');
        let refused = connect_outcome(mqtt_options(&unique("wrong"), Some(&wrong))).await;
        assert!(
            matches!(
                refused,
                Err(ConnectionError::ConnectionRefused(
                    ConnectReturnCode::NotAuthorized | ConnectReturnCode::BadUserNamePassword
                ))
            ),
            "{refused:?}"
        );
        // Plain MQTT to the TLS listener: no CONNACK, the connection fails.
        let mut plain = rumqttc::MqttOptions::new(unique("plain"), &s.mqtt_host, s.mqtt_port);
        let d = device(0);
        plain.set_credentials(&d.user, &d.password);
        assert!(connect_outcome(plain).await.is_err());
        // The right login over TLS works (the control).
        connect_outcome(mqtt_options(&unique("ok"), Some(&d)))
            .await
            .expect("a device's login is accepted");
    });
}

#[test]
fn a_wrong_password_leaves_the_bridge_up_unready_and_retrying_with_backoff() {
    serial(async {
        let topics = Topics::unique();
        let spec = BridgeSpec::new(&topics, &unique("g")).with("MQTT_PASSWORD", "not-the-password");
        let mut bridge = Bridge::spawn(&spec);
        refused_with_backoff(&mut bridge, "the MQTT broker refused the credentials");
        retire(vec![bridge]).await;
    });
}

#[test]
fn an_untrusted_ca_leaves_the_bridge_up_unready_and_retrying_with_backoff() {
    serial(async {
        let topics = Topics::unique();
        let ca = other_ca();
        let spec =
            BridgeSpec::new(&topics, &unique("g")).with("MQTT_CA_FILE", &ca.to_string_lossy());
        let mut bridge = Bridge::spawn(&spec);
        refused_with_backoff(&mut bridge, "TLS certificate is not trusted");
        // Refused during the handshake: the broker never saw the login.
        assert!(
            plain_log(&bridge).contains("UnknownIssuer"),
            "{}",
            plain_log(&bridge)
        );
        retire(vec![bridge]).await;
    });
}

#[test]
fn a_bridge_whose_subscriptions_are_refused_is_connected_but_not_ready() {
    serial(async {
        // Logged in as a device: the login is accepted, every subscription refused.
        let d = device(2);
        let spec = BridgeSpec::new(&Topics::unique(), &unique("g"))
            .with("MQTT_USERNAME", &d.user)
            .with("MQTT_PASSWORD", &d.password);
        let mut bridge = Bridge::spawn(&spec);
        let said = wait_for(Duration::from_secs(30), || {
            plain_log(&bridge).contains("the MQTT broker refused subscriptions")
        });
        assert!(said, "{}", bridge.log_text());
        assert_eq!(bridge.metric("sck_bridge_mqtt_connected"), Some(1.0));
        assert!(
            matches!(bridge.get("/readyz"), Some((503, body)) if body.contains("mqtt")),
            "{:?}",
            bridge.get("/readyz")
        );
        let log = plain_log(&bridge);
        assert!(
            log.contains("device/sck/+/readings (NotAuthorized)"),
            "{log}"
        );
        assert!(matches!(bridge.child.try_wait(), Ok(None)), "{log}");
        retire(vec![bridge]).await;
    });
}

#[test]
fn a_device_publishes_only_under_its_own_token() {
    serial(async {
        let topics = Topics::unique();
        let bridge = Bridge::start(&BridgeSpec::new(&topics, &unique("g")));
        let (me, other) = (device(0), device(1));
        let run = unique("acl");
        let mut d = Probe::connect(&me).await;
        // MQTT 3.1.1: Mosquitto acknowledges a denied publish and drops it.
        let denied = [
            format!("device/sck/{}/readings", other.user),
            format!("device/sck/{}/hello", other.user),
            format!("bridge/device/sck/{}/readings", me.user),
            "device/inventory".to_string(),
        ];
        for (i, topic) in denied.iter().enumerate() {
            d.publish(topic, &reading_payload(&run, 100 + i)).await;
        }
        // Then two of its own, the last one published after everything denied.
        d.publish(
            &format!("device/sck/{}/readings", me.user),
            &reading_payload(&run, 0),
        )
        .await;
        d.publish(
            &format!("device/sck/{}/readings", me.user),
            &reading_payload(&run, 1),
        )
        .await;
        let records = read_until(
            &[&topics.readings, &topics.events, &topics.dlq],
            Duration::from_secs(60),
            |rs| (0..2).all(|seq| rs.iter().any(|r| seq_of(&run, &r.payload) == Some(seq))),
        )
        .await;
        let mut seen: Vec<usize> = records
            .iter()
            .filter_map(|r| seq_of(&run, &r.payload))
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, [0, 1], "only the device's own topic reaches Kafka");
        assert!(records
            .iter()
            .filter(|r| seq_of(&run, &r.payload).is_some())
            .all(|r| r.key.as_deref() == Some(me.user.as_bytes())));

        // MQTT 5 says so: PUBACK 0x87 Not authorized under another token, 0x00 under its own.
        let (c5, mut el5) = client5(&me);
        until5(&mut el5, |p| matches!(p, Packet5::ConnAck(_)).then_some(())).await;
        for (topic, want) in [
            (
                format!("device/sck/{}/readings", other.user),
                PubAckReason::NotAuthorized,
            ),
            (
                format!("device/sck/{}/readings", me.user),
                PubAckReason::Success,
            ),
        ] {
            c5.publish(
                &topic,
                rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                false,
                reading_payload(&run, 200),
            )
            .await
            .expect("queue publish");
            let reason = until5(&mut el5, |p| match p {
                Packet5::PubAck(ack) => Some(ack.reason),
                _ => None,
            })
            .await;
            assert_eq!(reason, want, "{topic}");
        }
        retire(vec![bridge]).await;
    });
}

#[test]
fn the_forwarders_user_publishes_forward_topics_only() {
    serial(async {
        let f = stack().secure().mqtt_forwarder.clone();
        let (c5, mut el5) = client5(&f);
        until5(&mut el5, |p| matches!(p, Packet5::ConnAck(_)).then_some(())).await;
        // Accepted (nobody subscribes on this stack: 0x10 "no matching subscribers"); refused
        // (0x87) under a device's topic or the bridge's.
        for (topic, allowed) in [
            (
                "/forward/fwdDemoToken2xA7/device/2/readings".to_string(),
                true,
            ),
            (format!("device/sck/{}/readings", device(0).user), false),
            ("bridge/device/sck/x/readings".to_string(), false),
            ("forward/x".to_string(), false),
        ] {
            c5.publish(
                &topic,
                rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                false,
                b"{}".to_vec(),
            )
            .await
            .expect("queue publish");
            let reason = until5(&mut el5, |p| match p {
                Packet5::PubAck(ack) => Some(ack.reason),
                _ => None,
            })
            .await;
            let want = if allowed {
                PubAckReason::NoMatchingSubscribers
            } else {
                PubAckReason::NotAuthorized
            };
            assert_eq!(reason, want, "{topic}");
        }
        // And it reads nothing.
        c5.subscribe("/forward/#", rumqttc::v5::mqttbytes::QoS::AtLeastOnce)
            .await
            .expect("queue subscribe");
        let codes = until5(&mut el5, |p| match p {
            Packet5::SubAck(ack) => Some(ack.return_codes.clone()),
            _ => None,
        })
        .await;
        assert_eq!(codes, [Sub5::NotAuthorized]);
    });
}

#[test]
fn a_device_can_neither_read_other_devices_nor_join_the_bridges_shared_subscription() {
    serial(async {
        let topics = Topics::unique();
        let group = unique("g");
        let bridge = Bridge::start(&BridgeSpec::new(&topics, &group));
        let (thief, victim) = (device(0), device(1));
        let run = unique("sub");
        let mut t = Probe::connect(&thief).await;
        // Mosquitto's dynamic-security plugin refuses each: SUBACK 0x80.
        for filter in [
            format!("device/sck/{}/readings", victim.user),
            "device/#".to_string(),
            "#".to_string(),
            format!("$share/{group}/device/#"),
            format!("$share/{group}/device/sck/+/readings"),
            format!("device/sck/{}/#", thief.user),
        ] {
            let (code, _) = t.subscribe(&filter).await;
            assert_eq!(code, SubscribeReasonCode::Failure, "{filter}");
        }
        // The victim publishes: the bridge gets every message (none went to the thief's share).
        let mut v = Probe::connect(&victim).await;
        let n = 20;
        for seq in 0..n {
            v.publish(
                &format!("device/sck/{}/readings", victim.user),
                &reading_payload(&run, seq),
            )
            .await;
        }
        let records = read_until(&[&topics.readings], Duration::from_secs(60), |rs| {
            rs.iter()
                .filter(|r| seq_of(&run, &r.payload).is_some())
                .count()
                >= n
        })
        .await;
        let mut seen: Vec<usize> = records
            .iter()
            .filter_map(|r| seq_of(&run, &r.payload))
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..n).collect::<Vec<_>>(), "the bridge lost messages");
        // Nothing reached the thief: a last SUBACK comes after anything queued for it before.
        let (_, leaked) = t.subscribe("device/sck/nothing/readings").await;
        assert!(leaked.is_empty(), "the thief received {leaked:?}");
        // The same refusals in MQTT 5: 0x87 Not authorized.
        let (c5, mut el5) = client5(&thief);
        until5(&mut el5, |p| matches!(p, Packet5::ConnAck(_)).then_some(())).await;
        c5.subscribe(
            format!("$share/{group}/device/#"),
            rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
        )
        .await
        .expect("queue subscribe");
        let codes = until5(&mut el5, |p| match p {
            Packet5::SubAck(ack) => Some(ack.return_codes.clone()),
            _ => None,
        })
        .await;
        assert_eq!(codes, [Sub5::NotAuthorized]);
        // A legitimate reader (the bridge's user) can subscribe to its shared filters only.
        let mut reader = Probe::connect(&stack().secure().mqtt_bridge).await;
        let (code, _) = reader
            .subscribe(&format!("$share/{}/device/sck/+/readings", unique("other")))
            .await;
        assert_eq!(code, SubscribeReasonCode::Success(QoS::AtLeastOnce));
        let (code, _) = reader.subscribe("device/#").await;
        assert_eq!(code, SubscribeReasonCode::Failure, "a plain subscription");
        v.publish(
            &format!("device/sck/{}/readings", victim.user),
            &reading_payload(&run, n),
        )
        .await;
        assert_eq!(
            seq_of(&run, reader.received().await.as_bytes()),
            Some(n),
            "the bridge's user reads devices' readings"
        );
        retire(vec![bridge]).await;
    });
}
