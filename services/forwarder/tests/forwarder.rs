//! sck-forwarder on the real stack: records produced as the bridge writes them, for devices
//! registered in the platform's PostgreSQL, arrive on the forward topic of the forwarding ones
//! (a test MQTT subscriber), with the documented payload, only once a stand-in for the decoder's
//! group has committed past them; a device over its queue is dead-lettered, the others are not
//! held up.
//!
//! Each test has its own topics, consumer groups, users and devices (deleted afterwards).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use rumqttc::v5::mqttbytes::v5::{Filter, Packet};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use sck_testkit::*;
use serde_json::{json, Value};

const PARTITIONS: i32 = 3;

/// Platform rows a test inserted, deleted on drop (devices before users).
#[derive(Default)]
struct Rows {
    users: Vec<i32>,
    devices: Vec<i32>,
}

impl Rows {
    fn user(&mut self, forwarding_token: Option<&str>) -> i32 {
        let token = forwarding_token.map_or("NULL".to_string(), |t| format!("'{t}'"));
        let id = insert(&format!(
            "INSERT INTO users (role_mask, forwarding_token, forwarding_username) \
             VALUES (2, {token}, NULL) RETURNING id"
        ));
        self.users.push(id);
        id
    }

    fn device(&mut self, owner: i32, device_token: &str, forwarding: bool) -> i32 {
        let id = insert(&format!(
            "INSERT INTO devices (owner_id, device_token, state, enable_forwarding) \
             VALUES ({owner}, '{device_token}', 'never_published', {forwarding}) RETURNING id"
        ));
        self.devices.push(id);
        id
    }
}

fn insert(sql: &str) -> i32 {
    let out = platform(sql);
    out.lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("{sql}: no id in {out:?}"))
}

impl Drop for Rows {
    fn drop(&mut self) {
        let list = |ids: &[i32]| ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
        if !self.devices.is_empty() {
            let _ = platform_sql(&format!(
                "DELETE FROM components WHERE device_id IN ({0}); DELETE FROM devices WHERE id IN ({0})",
                list(&self.devices)
            ));
        }
        if !self.users.is_empty() {
            let _ = platform_sql(&format!(
                "DELETE FROM users WHERE id IN ({})",
                list(&self.users)
            ));
        }
    }
}

/// What a subscriber received: (topic, payload), in order.
type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// An MQTT subscriber to `/forward/#` keeping every (topic, payload) it receives.
struct Subscriber {
    received: Received,
    task: tokio::task::JoinHandle<()>,
}

impl Subscriber {
    async fn connect() -> Subscriber {
        let s = stack();
        let mut o = MqttOptions::new(unique("sub"), &s.mqtt_host, s.mqtt_port);
        o.set_clean_start(true)
            .set_keep_alive(Duration::from_secs(30));
        let (client, mut el) = AsyncClient::new(o, 100);
        let received: Received = Arc::default();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let sink = received.clone();
        let task = tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let filter = Filter::new("/forward/#", QoS::AtLeastOnce);
                        let _ = client.subscribe_many([filter]).await;
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(tx) = ready.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let topic = String::from_utf8_lossy(&p.topic).into_owned();
                        if let Ok(mut r) = sink.lock() {
                            r.push((topic, p.payload.to_vec()));
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        eprintln!("subscriber connection error: {e}");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), ready_rx)
            .await
            .expect("subscribed in time")
            .expect("subscriber task alive");
        Subscriber { received, task }
    }

    /// The payloads received on `topic`, as JSON.
    fn on(&self, topic: &str) -> Vec<Value> {
        self.received
            .lock()
            .map(|r| {
                r.iter()
                    .filter(|(t, _)| t == topic)
                    .map(|(_, p)| serde_json::from_slice(p).expect("JSON payload"))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Topics received about any of these device ids.
    fn about(&self, device_ids: &[i32]) -> Vec<String> {
        let suffixes: Vec<String> = device_ids
            .iter()
            .map(|id| format!("/device/{id}/readings"))
            .collect();
        self.received
            .lock()
            .map(|r| {
                r.iter()
                    .map(|(t, _)| t.clone())
                    .filter(|t| suffixes.iter().any(|s| t.ends_with(s.as_str())))
                    .collect()
            })
            .unwrap_or_default()
    }

    async fn wait_on(&self, topic: &str, n: usize) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let got = self.on(topic);
            if got.len() >= n || tokio::time::Instant::now() >= deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Commits, for `group` (the test's stand-in for the decoder's), every partition's high
/// watermark: as the decoder does once the records are stored.
fn commit_all_as(group: &str, topic: &str) {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &stack().kafka_brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("log_level", "3")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        let (_, high) = c
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .expect("watermarks");
        tpl.add_partition_offset(topic, p, Offset::Offset(high))
            .expect("add partition");
    }
    c.commit(&tpl, CommitMode::Sync).expect("commit");
}

fn record(mqtt_topic: String, payload: &str) -> BridgeRecord {
    BridgeRecord {
        mqtt_topic,
        payload: payload.as_bytes().to_vec(),
    }
}

/// Waits until the forwarder's metric reaches `want`, returning the last value.
fn wait_metric(f: &Forwarder, name: &str, labels: &str, want: f64) -> f64 {
    let mut last = 0.0;
    wait_for(Duration::from_secs(30), || {
        last = f.metric_with(name, labels).unwrap_or(0.0);
        last >= want
    });
    last
}

#[test]
fn forwards_stored_readings_of_forwarding_devices_only() {
    serial(async {
        let topics = Topics::unique();
        create_topics(&topics, PARTITIONS).await;
        let (group, decoder_group) = (unique("fwd"), unique("fakedecoder"));
        let mut rows = Rows::default();
        let fwd_token = unique("fwdtok");
        let owner = rows.user(Some(&fwd_token));
        let owner_without_token = rows.user(None);
        let (tok_a, tok_b, tok_c) = (unique("fa"), unique("fb"), unique("fc"));
        let a = rows.device(owner, &tok_a, true);
        let b = rows.device(owner, &tok_b, false);
        let c = rows.device(owner_without_token, &tok_c, true);
        let subscriber = Subscriber::connect().await;
        let forwarder = Forwarder::start(&topics, &group, &decoder_group, &[]);

        produce_as_bridge(
            &topics.readings,
            &[
                record(
                    format!("device/sck/{tok_a}/readings/raw"),
                    "{t:2024-01-01T00:00:00Z,1:48.45,13:66,bad:x}",
                ),
                record(
                    format!("device/sck/{tok_b}/readings/raw"),
                    "{t:2024-01-01T00:00:00Z,1:1}",
                ),
                record(
                    format!("bridge/device/sck/{tok_c}/readings"),
                    r#"{"data":[{"recorded_at":"2024-01-01 00:00:00","sensors":[{"id":1,"value":2}]}]}"#,
                ),
            ],
        )
        .await;
        let name = "sck_forwarder_records_total";
        assert_eq!(wait_metric(&forwarder, name, "", 3.0), 3.0);
        assert_eq!(
            forwarder.metric_with(name, r#"outcome="not_forwarding""#),
            Some(2.0),
            "B has forwarding off, C's owner has no forwarding token"
        );
        assert_eq!(
            wait_metric(&forwarder, "sck_forwarder_gated_records", "", 1.0),
            1.0
        );
        assert!(
            subscriber.about(&[a, b, c]).is_empty(),
            "nothing is forwarded before the decoder's group commits"
        );

        // The decoder stored them: A's readings are forwarded, its invalid one left out.
        commit_all_as(&decoder_group, &topics.readings);
        let topic_a = format!("/forward/{fwd_token}/device/{a}/readings");
        let got = subscriber.wait_on(&topic_a, 1).await;
        assert_eq!(
            got,
            [
                json!({"device_id": a, "recorded_at": "2024-01-01T00:00:00Z",
                    "sensors": [{"id": 1, "value": 48.45}, {"id": 13, "value": 66.0}]})
            ]
        );

        // A second record of A waits for the decoder again, then gives one message per time.
        produce_as_bridge(
            &topics.readings,
            &[record(
                format!("bridge/device/sck/{tok_a}/readings"),
                r#"{"data":[{"recorded_at":"2024-01-01 00:01:00","sensors":[{"id":1,"value":21}]},
                           {"recorded_at":"2024-01-01T01:02:00+01:00","sensors":[{"id":1,"value":22},{"id":2,"value":-1.5}]}]}"#,
            )],
        )
        .await;
        assert_eq!(wait_metric(&forwarder, name, "", 4.0), 4.0);
        assert_eq!(
            wait_metric(&forwarder, "sck_forwarder_gated_records", "", 1.0),
            1.0
        );
        assert_eq!(
            subscriber.on(&topic_a).len(),
            1,
            "not before the decoder commits"
        );
        commit_all_as(&decoder_group, &topics.readings);
        let got = subscriber.wait_on(&topic_a, 3).await;
        assert_eq!(
            got[1..],
            [
                json!({"device_id": a, "recorded_at": "2024-01-01T00:01:00Z",
                       "sensors": [{"id": 1, "value": 21.0}]}),
                json!({"device_id": a, "recorded_at": "2024-01-01T00:02:00Z",
                       "sensors": [{"id": 1, "value": 22.0}, {"id": 2, "value": -1.5}]}),
            ]
        );

        // Everything is committed by the forwarder's own group, and B's and C's never came.
        assert!(
            wait_for(Duration::from_secs(30), || {
                let total = futures_block(committed_total(&group, &topics.readings, PARTITIONS));
                total == 4
            }),
            "the forwarder's group committed every record"
        );
        assert_eq!(subscriber.about(&[b, c]), Vec::<String>::new());
        assert_eq!(subscriber.on(&topic_a).len(), 3, "no duplicate");
        assert_eq!(
            forwarder.metric("sck_forwarder_messages_forwarded_total"),
            Some(3.0)
        );
        assert_eq!(
            committed_total(&decoder_group, &topics.readings, PARTITIONS).await,
            4,
            "the decoder's group is only read, never moved"
        );
    })
}

#[test]
fn a_device_over_its_queue_is_dead_lettered_the_rest_still_forwarded() {
    serial(async {
        let topics = Topics::unique();
        create_topics(&topics, PARTITIONS).await;
        let (group, decoder_group) = (unique("fwd"), unique("fakedecoder"));
        let mut rows = Rows::default();
        let fwd_token = unique("fwdtok");
        let owner = rows.user(Some(&fwd_token));
        let tok_a = unique("qa");
        let a = rows.device(owner, &tok_a, true);
        let subscriber = Subscriber::connect().await;
        let forwarder = Forwarder::start(
            &topics,
            &group,
            &decoder_group,
            &[("FORWARD_DEVICE_QUEUE", "1")],
        );
        let first = "{t:2024-02-01T00:00:00Z,1:1}";
        let second = "{t:2024-02-01T00:01:00Z,1:2}";
        produce_as_bridge(
            &topics.readings,
            &[
                record(format!("device/sck/{tok_a}/readings/raw"), first),
                record(format!("device/sck/{tok_a}/readings/raw"), second),
            ],
        )
        .await;
        assert_eq!(
            wait_metric(&forwarder, "sck_forwarder_gated_records", "", 2.0),
            2.0
        );
        // Both leave the gate at once: the first is published, the second finds A's queue full.
        commit_all_as(&decoder_group, &topics.readings);
        let topic_a = format!("/forward/{fwd_token}/device/{a}/readings");
        let got = subscriber.wait_on(&topic_a, 1).await;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0]["recorded_at"], "2024-02-01T00:00:00Z");
        let dead = read_until(&[&topics.dlq], Duration::from_secs(30), |r| !r.is_empty()).await;
        assert_eq!(dead.len(), 1, "one dead letter");
        let d = &dead[0];
        assert_eq!(d.payload, second.as_bytes());
        assert_eq!(d.key.as_deref(), Some(tok_a.as_bytes()));
        assert_eq!(d.headers["dead_lettered_by"], "sck-forwarder");
        assert_eq!(d.headers["error"], "forward_queue_full");
        assert_eq!(d.headers["source_topic"], topics.readings);
        assert_eq!(
            d.headers["mqtt_topic"],
            format!("device/sck/{tok_a}/readings/raw")
        );
        assert_eq!(
            wait_metric(
                &forwarder,
                "sck_forwarder_dead_lettered_total",
                r#"reason="forward_queue_full""#,
                1.0
            ),
            1.0
        );
        assert!(
            wait_for(Duration::from_secs(30), || futures_block(committed_total(
                &group,
                &topics.readings,
                PARTITIONS
            )) == 2),
            "both records are done: one forwarded, one dead-lettered"
        );
        assert_eq!(subscriber.on(&topic_a).len(), 1);
        let mut forwarder = forwarder;
        let status = forwarder.terminate(Duration::from_secs(30));
        assert!(
            status.is_some_and(|s| s.success()),
            "SIGTERM: drained and exited cleanly ({status:?}); log:\n{}",
            forwarder.log_text()
        );
    })
}

/// Runs a future to completion from a synchronous closure inside the test's runtime.
fn futures_block<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}
