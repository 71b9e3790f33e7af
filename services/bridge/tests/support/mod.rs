//! Test harness for sck-bridge against the real local stack (Mosquitto, tansu, ClickHouse).
//!
//! Starts the stack when it is not running (`scripts/stack.sh up`), runs bridge binaries as
//! child processes with their own topics, group and client ids, publishes with a real MQTT client
//! and reads back with a real Kafka consumer (assigned partitions, no group join to wait for).
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Endpoints of the local stack, from `.stack/env` (started here when needed).
#[derive(Debug, Clone)]
pub struct Stack {
    pub mqtt_host: String,
    pub mqtt_port: u16,
    pub kafka_brokers: String,
}

pub fn stack() -> &'static Stack {
    static STACK: OnceLock<Stack> = OnceLock::new();
    STACK.get_or_init(|| {
        let root = repo_root();
        let env_file = root.join(".stack/env");
        let up = Command::new("bash")
            .arg(root.join("scripts/stack.sh"))
            .arg("is-up")
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !up || !env_file.exists() {
            let status = Command::new("bash")
                .arg(root.join("scripts/stack.sh"))
                .arg("up")
                .status()
                .expect("run scripts/stack.sh up");
            assert!(status.success(), "scripts/stack.sh up failed");
        }
        let text = std::fs::read_to_string(&env_file).expect("read .stack/env");
        let vars: HashMap<String, String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Stack {
            mqtt_host: vars["MQTT_HOST"].clone(),
            mqtt_port: vars["MQTT_PORT"].parse().expect("MQTT_PORT"),
            kafka_brokers: vars["KAFKA_BROKERS"].clone(),
        }
    })
}

/// Runs a stack.sh command (e.g. `stop kafka`), asserting it succeeded.
pub fn stack_cmd(args: &[&str]) {
    let status = Command::new("bash")
        .arg(repo_root().join("scripts/stack.sh"))
        .args(args)
        .status()
        .expect("run scripts/stack.sh");
    assert!(status.success(), "scripts/stack.sh {args:?} failed");
}

/// A name no other test or run uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}{:x}{:x}{}",
        std::process::id(),
        nanos % 0xffff_ffff,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
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

/// Settings of one bridge process; `env` adds or overrides variables.
#[derive(Debug, Clone)]
pub struct BridgeSpec {
    pub topics: Topics,
    pub group: String,
    pub client: String,
    pub suffix: String,
    pub env: Vec<(String, String)>,
}

impl BridgeSpec {
    pub fn new(topics: &Topics, group: &str) -> Self {
        BridgeSpec {
            topics: topics.clone(),
            group: group.to_string(),
            client: unique("bridge"),
            suffix: "a".into(),
            env: vec![],
        }
    }

    pub fn with(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }
}

pub struct Bridge {
    pub spec: BridgeSpec,
    pub child: Child,
    pub metrics_port: u16,
    pub log: PathBuf,
}

impl Bridge {
    /// Starts a bridge and waits until `/readyz` says it is connected to MQTT and Kafka.
    pub fn start(spec: &BridgeSpec) -> Bridge {
        let b = Bridge::spawn(spec);
        b.wait_ready(Duration::from_secs(60));
        b
    }

    pub fn spawn(spec: &BridgeSpec) -> Bridge {
        let s = stack();
        let metrics_port = free_port();
        let dir = repo_root().join("target/test-logs");
        std::fs::create_dir_all(&dir).expect("log dir");
        let log = dir.join(format!("{}-{}.log", spec.client, spec.suffix));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sck-bridge"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .env("MQTT_HOST", &s.mqtt_host)
            .env("MQTT_PORT", s.mqtt_port.to_string())
            .env("MQTT_CLIENT", &spec.client)
            .env("MQTT_CLIENT_SUFFIX", &spec.suffix)
            .env("MQTT_SHARED_GROUP", &spec.group)
            .env("KAFKA_BROKERS", &s.kafka_brokers)
            .env("KAFKA_READINGS_TOPIC", &spec.topics.readings)
            .env("KAFKA_EVENTS_TOPIC", &spec.topics.events)
            .env("KAFKA_DLQ_TOPIC", &spec.topics.dlq)
            .env("KAFKA_CREATE_TOPICS", "true")
            .env("KAFKA_TOPIC_PARTITIONS", "3")
            .env("METRICS_ADDR", format!("127.0.0.1:{metrics_port}"))
            .stdout(Stdio::from(out.try_clone().expect("clone log")))
            .stderr(Stdio::from(out));
        for (k, v) in &spec.env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn sck-bridge");
        Bridge {
            spec: spec.clone(),
            child,
            metrics_port,
            log,
        }
    }

    pub fn client_id(&self) -> String {
        format!("{}-{}", self.spec.client, self.spec.suffix)
    }

    pub fn wait_ready(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.get("/readyz").map(|(code, _)| code) == Some(200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "bridge not ready within {timeout:?}; log:\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    /// GET on the bridge's HTTP port: (status, body).
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.metrics_port, path)
    }

    /// A metric's value summed over its label sets, from `/metrics`.
    pub fn metric(&self, name: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics")?;
        metric_sum(&body, name, "")
    }

    /// A metric's value for the series whose labels contain `labels` (e.g. `kind="hello"`).
    pub fn metric_with(&self, name: &str, labels: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics")?;
        metric_sum(&body, name, labels)
    }

    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then the exit status (or None if it did not exit within `timeout`).
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Deletes a test's Kafka topics, so test runs do not pile up topics in the local broker
/// (tansu's SQLite storage slows down with hundreds of them).
pub async fn delete_topics(topics: &Topics) {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = match ClientConfig::new()
        .set("bootstrap.servers", &stack().kafka_brokers)
        .set("log_level", "3")
        .create()
    {
        Ok(a) => a,
        Err(e) => return eprintln!("cannot create admin client: {e}"),
    };
    let names = [
        topics.readings.as_str(),
        topics.events.as_str(),
        topics.dlq.as_str(),
    ];
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    if let Err(e) = admin.delete_topics(&names, &opts).await {
        eprintln!("cannot delete test topics: {e}");
    }
}

/// Removes the broker's persistent sessions of these client ids, so dead test bridges do not
/// keep a share of later tests' messages queued in Mosquitto.
pub async fn forget_sessions(client_ids: &[String]) {
    let s = stack();
    for id in client_ids {
        let mut o = MqttOptions::new(id, &s.mqtt_host, s.mqtt_port);
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

fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let code = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((code, body))
}

fn metric_sum(body: &str, name: &str, labels: &str) -> Option<f64> {
    let mut found = None;
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ')?;
        let series_name = series.split('{').next().unwrap_or(series);
        if series_name == name && series.contains(labels) {
            *found.get_or_insert(0.0) += value.parse::<f64>().ok()?;
        }
    }
    found
}

/// A QoS 1 publisher that counts the broker's PUBACKs.
pub struct Publisher {
    pub client: AsyncClient,
    pub acked: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Publisher {
    pub async fn connect() -> Publisher {
        let s = stack();
        let mut o = MqttOptions::new(unique("pub"), &s.mqtt_host, s.mqtt_port);
        o.set_clean_session(true)
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
    let s = stack();
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &s.kafka_brokers)
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

/// Payload of test message `seq` of run `run` (a realistic JSON readings message).
pub fn reading_payload(run: &str, seq: usize) -> String {
    format!(
        r#"{{"data":[{{"recorded_at":"2024-01-01 00:00:00","sensors":[{{"id":1,"value":{seq}}}]}}],"run":"{run}","seq":{seq}}}"#
    )
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
