//! The Kafka ceilings: how fast this Kafka takes and gives back the bridge's records, measured
//! with bare rdkafka clients and nothing else.
//!
//! - produce: one producer configured as the bridge's (acks=all, idempotent, the same
//!   compression and linger) writes `messages` records exactly as the bridge builds them (key =
//!   device token, the payload byte for byte, the bridge's three headers, built by
//!   [`sck_core::envelope::envelope`]) as fast as librdkafka accepts them;
//! - consume: a new consumer group reads them back from the earliest offset and counts them.
//!
//! The records stay in the topic, so `scripts/ceilings.sh` then points a decoder at it: the
//! decoder's backlog rate is measured on the very records both ceilings moved.
//! Each ceiling prints one `CEILING …` line.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use sck_core::envelope::{envelope, Received};
use sck_runtime::kafka::owned_headers;
use sck_runtime::settings::kafka::KafkaCompression;

use crate::config::Args;
use crate::payload::{sensor_ids, Device};

/// What the ceiling measures, from the command line.
#[derive(Debug, Clone)]
pub struct Spec {
    pub brokers: String,
    pub topic: String,
    pub partitions: i32,
    pub messages: usize,
    pub compression: KafkaCompression,
    pub linger_ms: u32,
}

/// Counts delivery reports (the producer's only work besides sending).
#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    failed: AtomicU64,
}

#[derive(Clone, Default)]
struct Counted(Arc<Counts>);

impl ClientContext for Counted {}

impl ProducerContext for Counted {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.0.ok.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.0.failed.fetch_add(1, Ordering::Relaxed),
        };
    }
}

pub fn run(args: &Args, spec: &Spec) -> anyhow::Result<()> {
    let readings = produce(args, spec)?;
    consume(spec, readings)
}

fn create_topic(spec: &Spec) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &spec.brokers)
        .create()
        .context("Kafka admin client")?;
    let topic = NewTopic::new(&spec.topic, spec.partitions, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    for r in rt.block_on(admin.create_topics([&topic], &opts))? {
        if let Err((name, code)) = r {
            bail!("cannot create topic {name}: {code}");
        }
    }
    Ok(())
}

/// Produces the records; returns how many readings they hold.
fn produce(args: &Args, spec: &Spec) -> anyhow::Result<u64> {
    create_topic(spec)?;
    // The records first, so that building them is not part of the measurement.
    let run_id = args.run_id();
    let sensors = sensor_ids(args.sensors);
    let start_t = crate::now_secs() - (spec.messages / args.devices.max(1)) as i64 * 5 - 60;
    let mut devices: Vec<Device> = (0..args.devices)
        .map(|i| Device::new(&run_id, i, start_t))
        .collect();
    let mut rng = fastrand::Rng::with_seed(7);
    let mut readings = 0u64;
    let messages: Vec<(String, Vec<u8>)> = (0..spec.messages)
        .map(|i| {
            let raw = rng.f64() < args.raw_share;
            let entries = if !raw && rng.f64() < args.multi_share {
                rng.usize(2..=5)
            } else {
                1
            };
            let n = devices.len();
            let m = devices[i % n].next_message(&sensors, raw, entries);
            readings += m.readings as u64;
            (m.topic, m.payload)
        })
        .collect();

    let counted = Counted::default();
    let counts = counted.0.clone();
    let producer: ThreadedProducer<Counted> = ClientConfig::new()
        .set("bootstrap.servers", &spec.brokers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("compression.type", spec.compression.as_str())
        .set("linger.ms", spec.linger_ms.to_string())
        .set("queue.buffering.max.messages", "1000000")
        .create_with_context(counted.clone())
        .context("Kafka producer")?;
    let started = Instant::now();
    for (topic, payload) in &messages {
        let env = envelope(
            topic,
            payload,
            Received {
                received_at_ms: crate::now_secs() * 1000,
                bridge_id: "sck-loadtest-ceiling",
                max_payload_bytes: usize::MAX,
            },
        );
        let mut record: BaseRecord<'_, str, [u8]> = BaseRecord::to(&spec.topic)
            .payload(env.value)
            .headers(owned_headers(&env.headers));
        if let Some(key) = env.key {
            record = record.key(key);
        }
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((e, r)) => {
                    if e.rdkafka_error_code() != Some(rdkafka::types::RDKafkaErrorCode::QueueFull) {
                        bail!("produce failed: {e}");
                    }
                    record = r;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }
    let total = spec.messages as u64;
    let deadline = Instant::now() + Duration::from_secs(600);
    while counts.ok.load(Ordering::Relaxed) + counts.failed.load(Ordering::Relaxed) < total {
        if Instant::now() > deadline {
            bail!("not every record was acknowledged within 600 s");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let seconds = started.elapsed().as_secs_f64();
    let failed = counts.failed.load(Ordering::Relaxed);
    producer.flush(Duration::from_secs(10))?;
    if failed > 0 {
        bail!("{failed} records failed to be delivered");
    }
    println!(
        "CEILING kind=kafka_produce topic={} records={total} readings={readings} seconds={seconds:.2} records_per_s={:.1}",
        spec.topic,
        total as f64 / seconds.max(1e-9)
    );
    Ok(readings)
}

fn consume(spec: &Spec, readings: u64) -> anyhow::Result<()> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &spec.brokers)
        .set(
            "group.id",
            format!("sck-loadtest-ceiling-{:08x}", fastrand::u32(..)),
        )
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        // As the decoder's (KAFKA_FETCH_WAIT_MAX_MS): tansu holds a fetch for the whole wait.
        .set("fetch.wait.max.ms", "100")
        .create()
        .context("Kafka consumer")?;
    consumer.subscribe(&[&spec.topic])?;
    let total = spec.messages as u64;
    let joined = Instant::now();
    let mut first: Option<Instant> = None;
    let mut count = 0u64;
    let mut bytes = 0u64;
    let deadline = Instant::now() + Duration::from_secs(600);
    while count < total {
        if Instant::now() > deadline {
            bail!("read {count} of {total} records in 600 s");
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                first.get_or_insert_with(Instant::now);
                count += 1;
                bytes += m.payload().map_or(0, |p| p.len() as u64);
            }
            Some(Err(e)) => eprintln!("consume error: {e}"),
            None => {}
        }
    }
    let first = first.unwrap_or(joined);
    let seconds = first.elapsed().as_secs_f64();
    println!(
        "CEILING kind=kafka_consume topic={} records={count} readings={readings} bytes={bytes} join_seconds={:.2} seconds={seconds:.2} records_per_s={:.1}",
        spec.topic,
        (first - joined).as_secs_f64(),
        count as f64 / seconds.max(1e-9)
    );
    Ok(())
}
