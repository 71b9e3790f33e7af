//! Kafka from the tests' side: topics, a reader on assigned partitions, a producer that writes
//! records exactly as the bridge does, committed offsets and group membership.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use crate::*;

/// A librdkafka configuration for the stack's brokers: on a secure stack, with the services'
/// SASL user.
pub fn kafka_client() -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &stack().kafka_brokers);
    if let Some(secure) = &stack().secure {
        for (k, v) in secure.kafka_properties() {
            c.set(k, v);
        }
    }
    c
}

/// Kafka topics of one test.
#[derive(Debug, Clone)]
pub struct Topics {
    pub readings: String,
    pub events: String,
    pub dlq: String,
}

impl Topics {
    pub fn unique() -> Self {
        let id = unique("t");
        Topics {
            readings: format!("test.{id}.readings"),
            events: format!("test.{id}.events"),
            dlq: format!("test.{id}.dlq"),
        }
    }
}

/// One Kafka record as the tests look at it.
#[derive(Debug, Clone)]
pub struct Record {
    pub topic: String,
    pub partition: i32,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: HashMap<String, String>,
}

/// Reads `topics` from the beginning (all partitions assigned, no consumer group) until
/// `done(&records)` holds or `timeout` passes; returns what it read either way.
pub async fn read_until(
    topics: &[&str],
    timeout: Duration,
    mut done: impl FnMut(&[Record]) -> bool,
) -> Vec<Record> {
    let consumer: StreamConsumer = kafka_client()
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .set("log_level", "3")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for t in topics {
        let md = consumer
            .fetch_metadata(Some(t), Duration::from_secs(10))
            .expect("metadata");
        let parts = md
            .topics()
            .first()
            .map(|t| t.partitions().len())
            .unwrap_or(0);
        assert!(parts > 0, "topic {t} has no partitions");
        for p in 0..parts as i32 {
            tpl.add_partition_offset(t, p, Offset::Beginning)
                .expect("add partition");
        }
    }
    consumer.assign(&tpl).expect("assign");
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while !done(&out) && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(500), consumer.recv()).await {
            Ok(Ok(m)) => {
                let mut headers = HashMap::new();
                if let Some(hs) = m.headers() {
                    for h in hs.iter() {
                        let v = h.value.map(|v| String::from_utf8_lossy(v).into_owned());
                        headers.insert(h.key.to_string(), v.unwrap_or_default());
                    }
                }
                out.push(Record {
                    topic: m.topic().to_string(),
                    partition: m.partition(),
                    key: m.key().map(|k| k.to_vec()),
                    payload: m.payload().unwrap_or_default().to_vec(),
                    headers,
                });
            }
            Ok(Err(e)) => eprintln!("consumer error: {e}"),
            Err(_) => {}
        }
    }
    out
}

/// Creates a test's three topics with `partitions` partitions each (tansu does not auto-create).
pub async fn create_topics(topics: &Topics, partitions: i32) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = kafka_client()
        .set("log_level", "3")
        .create()
        .expect("admin client");
    let new: Vec<NewTopic> = [&topics.readings, &topics.events, &topics.dlq]
        .iter()
        .map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(1)))
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for r in admin
        .create_topics(new.iter(), &opts)
        .await
        .expect("create topics")
    {
        if let Err((name, code)) = r {
            assert_eq!(
                code,
                rdkafka::error::RDKafkaErrorCode::TopicAlreadyExists,
                "cannot create topic {name}"
            );
        }
    }
}

/// A record as sck-bridge writes it: (MQTT topic, payload); key = the topic's device token.
pub struct BridgeRecord {
    pub mqtt_topic: String,
    pub payload: Vec<u8>,
}

/// Produces records to `topic` exactly as the bridge would: each built by the bridge's own
/// `sck_core::envelope::envelope` (key = the routed token, also under `bridge/`; the bridge's
/// headers), waiting until Kafka acknowledged every one.
pub async fn produce_as_bridge(topic: &str, records: &[BridgeRecord]) {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer = kafka_client()
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("log_level", "3")
        .create()
        .expect("producer");
    let rx = sck_core::envelope::Received {
        received_at_ms: sck_runtime::clock::now_ms(),
        bridge_id: "test",
        max_payload_bytes: usize::MAX,
    };
    for chunk in records.chunks(2_000) {
        let mut pending = Vec::with_capacity(chunk.len());
        for r in chunk {
            let env = sck_core::envelope::envelope(&r.mqtt_topic, &r.payload, rx);
            let mut record = FutureRecord::to(topic)
                .payload(env.value)
                .headers(sck_runtime::kafka::owned_headers(&env.headers));
            if let Some(key) = env.key {
                record = record.key(key);
            }
            // send_result enqueues now (send() would only enqueue when awaited, one at a time).
            pending.push(
                producer
                    .send_result(record)
                    .map_err(|(e, _)| e)
                    .expect("enqueue"),
            );
        }
        for p in pending {
            p.await
                .expect("delivery report")
                .map_err(|(e, _)| e)
                .expect("produce");
        }
    }
}

/// Sum over a topic's partitions of the offsets `group` has committed.
pub async fn committed_total(group: &str, topic: &str, partitions: i32) -> i64 {
    let consumer: StreamConsumer = kafka_client()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("log_level", "3")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = tokio::task::spawn_blocking(move || {
        consumer.committed_offsets(tpl, Duration::from_secs(10))
    })
    .await
    .expect("join")
    .expect("committed offsets");
    got.elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => o,
            _ => 0,
        })
        .sum()
}

/// Members of a consumer group as the broker reports them (None if it cannot say).
pub fn group_members(group: &str) -> Option<usize> {
    let c: rdkafka::consumer::BaseConsumer = kafka_client().set("log_level", "3").create().ok()?;
    let list = c
        .fetch_group_list(Some(group), Duration::from_secs(5))
        .ok()?;
    list.groups().first().map(|g| g.members().len())
}
