//! Test harness of sck-ingest against the real local stack (Mosquitto, tansu, ClickHouse).
//!
//! Starts the stack when it is not running (`scripts/stack.sh up`), runs the service binaries as
//! child processes with their own topics, groups, client ids and databases, publishes with a real
//! MQTT client, reads back with a real Kafka consumer (assigned partitions, no group join to wait
//! for) and queries ClickHouse over HTTP.

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
    /// `host:port` of ClickHouse's HTTP interface.
    pub clickhouse_http: String,
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
            clickhouse_http: vars["CLICKHOUSE_URL"]
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_string(),
        }
    })
}

/// Runs one integration test: one at a time per test binary (some stop servers the others
/// use), with the stack up, on a two-worker runtime.
pub fn serial<F: std::future::Future>(f: F) -> F::Output {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    stack();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
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

/// A service binary of this workspace (`sck-bridge`, `sck-decoder`), built when missing
/// (`cargo test --workspace` builds them all; a single package's tests may not).
pub fn bin_path(name: &str) -> PathBuf {
    // Test executables live in target/<profile>/deps; the binaries one level up.
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf();
    let path = dir.join(name);
    // `cargo test --workspace` builds every binary; a narrower run may not have this one.
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(repo_root()).args(["build", "--bin", name]);
        if dir.ends_with("release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build");
        assert!(status.success(), "cargo build --bin {name} failed");
    }
    path
}

/// A running service process with its HTTP port and log file.
pub struct Service {
    pub name: String,
    pub child: Child,
    pub metrics_port: u16,
    pub log: PathBuf,
}

impl Service {
    /// Starts `bin` with a clean environment plus `env`, logging to target/test-logs/`log_name`.
    pub fn spawn(bin: &str, log_name: &str, env: &[(String, String)]) -> Service {
        let metrics_port = free_port();
        let dir = repo_root().join("target/test-logs");
        std::fs::create_dir_all(&dir).expect("log dir");
        let log = dir.join(format!("{log_name}.log"));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let mut cmd = Command::new(bin_path(bin));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .env("METRICS_ADDR", format!("127.0.0.1:{metrics_port}"))
            .stdout(Stdio::from(out.try_clone().expect("clone log")))
            .stderr(Stdio::from(out));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {bin}: {e}"));
        Service {
            name: bin.to_string(),
            child,
            metrics_port,
            log,
        }
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
            "{} not ready within {timeout:?}; log:\n{}",
            self.name,
            self.log_text()
        );
    }

    /// GET on the service's HTTP port: (status, body).
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

    /// SIGKILL, and reap.
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

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A running sck-bridge.
pub struct Bridge {
    pub spec: BridgeSpec,
    pub svc: Service,
}

impl std::ops::Deref for Bridge {
    type Target = Service;
    fn deref(&self) -> &Service {
        &self.svc
    }
}

impl std::ops::DerefMut for Bridge {
    fn deref_mut(&mut self) -> &mut Service {
        &mut self.svc
    }
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
        let mut env: Vec<(String, String)> = [
            ("MQTT_HOST", s.mqtt_host.clone()),
            ("MQTT_PORT", s.mqtt_port.to_string()),
            ("MQTT_CLIENT", spec.client.clone()),
            ("MQTT_CLIENT_SUFFIX", spec.suffix.clone()),
            ("MQTT_SHARED_GROUP", spec.group.clone()),
            ("KAFKA_BROKERS", s.kafka_brokers.clone()),
            ("KAFKA_READINGS_TOPIC", spec.topics.readings.clone()),
            ("KAFKA_EVENTS_TOPIC", spec.topics.events.clone()),
            ("KAFKA_DLQ_TOPIC", spec.topics.dlq.clone()),
            ("KAFKA_CREATE_TOPICS", "true".into()),
            ("KAFKA_TOPIC_PARTITIONS", "3".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        env.extend(spec.env.iter().cloned());
        let svc = Service::spawn(
            "sck-bridge",
            &format!("{}-{}", spec.client, spec.suffix),
            &env,
        );
        Bridge {
            spec: spec.clone(),
            svc,
        }
    }

    pub fn client_id(&self) -> String {
        format!("{}-{}", self.spec.client, self.spec.suffix)
    }
}

/// A running sck-decoder on a test's topics, group and database.
pub struct Decoder {
    pub svc: Service,
}

impl std::ops::Deref for Decoder {
    type Target = Service;
    fn deref(&self) -> &Service {
        &self.svc
    }
}

impl std::ops::DerefMut for Decoder {
    fn deref_mut(&mut self) -> &mut Service {
        &mut self.svc
    }
}

impl Decoder {
    /// Starts a decoder (without waiting for readiness); `env` adds or overrides settings.
    pub fn spawn(topics: &Topics, group: &str, database: &str, env: &[(&str, &str)]) -> Decoder {
        let s = stack();
        let mut all: Vec<(String, String)> = [
            ("KAFKA_BROKERS", s.kafka_brokers.clone()),
            ("KAFKA_GROUP", group.to_string()),
            ("KAFKA_READINGS_TOPIC", topics.readings.clone()),
            ("KAFKA_EVENTS_TOPIC", topics.events.clone()),
            ("KAFKA_DLQ_TOPIC", topics.dlq.clone()),
            ("CLICKHOUSE_URL", format!("http://{}", s.clickhouse_http)),
            ("CLICKHOUSE_DATABASE", database.to_string()),
            ("BATCH_MAX_AGE_MS", "300".into()),
            ("KAFKA_STATISTICS_INTERVAL_MS", "1000".into()),
            // A SIGKILLed member holds its partitions until its session expires (librdkafka's
            // default 45 s); tests kill decoders, so they use a short session.
            (
                "KAFKA_CONSUMER_PROPERTIES",
                "session.timeout.ms=10000;heartbeat.interval.ms=1000".into(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        all.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Decoder {
            svc: Service::spawn("sck-decoder", &unique("decoder"), &all),
        }
    }

    /// Starts a decoder and waits until it is ready (migrated, Kafka and ClickHouse reachable).
    pub fn start(topics: &Topics, group: &str, database: &str, env: &[(&str, &str)]) -> Decoder {
        let d = Decoder::spawn(topics, group, database, env);
        d.wait_ready(Duration::from_secs(60));
        d
    }
}

/// Runs a ClickHouse query over HTTP; the body (TabSeparated by default), or the error text.
pub fn clickhouse(sql: &str) -> Result<String, String> {
    let mut s = TcpStream::connect(&stack().clickhouse_http).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "POST / HTTP/1.0\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{sql}",
        sql.len()
    )
    .map_err(|e| e.to_string())?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).map_err(|e| e.to_string())?;
    let code: u16 = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    if code == 200 {
        Ok(body)
    } else {
        Err(format!("HTTP {code}: {body}"))
    }
}

/// A query returning one number.
pub fn clickhouse_count(sql: &str) -> u64 {
    let out = clickhouse(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    out.trim()
        .parse()
        .unwrap_or_else(|_| panic!("{sql}: not a number: {out:?}"))
}

/// Drops a test database.
pub fn drop_database(db: &str) {
    let _ = clickhouse(&format!("DROP DATABASE IF EXISTS {db}"));
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

/// Creates a test's three topics with `partitions` partitions each (tansu does not auto-create).
pub async fn create_topics(topics: &Topics, partitions: i32) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &stack().kafka_brokers)
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
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &stack().kafka_brokers)
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("log_level", "3")
        .create()
        .expect("producer");
    let rx = sck_core::envelope::Received {
        received_at_ms: sck_core::clock::now_ms(),
        bridge_id: "test",
        max_payload_bytes: usize::MAX,
    };
    for chunk in records.chunks(2_000) {
        let mut pending = Vec::with_capacity(chunk.len());
        for r in chunk {
            let env = sck_core::envelope::envelope(&r.mqtt_topic, &r.payload, rx);
            let mut record = FutureRecord::to(topic)
                .payload(env.value)
                .headers(sck_core::runtime::kafka::owned_headers(&env.headers));
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
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &stack().kafka_brokers)
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
    let c: rdkafka::consumer::BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &stack().kafka_brokers)
        .set("log_level", "3")
        .create()
        .ok()?;
    let list = c
        .fetch_group_list(Some(group), Duration::from_secs(5))
        .ok()?;
    list.groups().first().map(|g| g.members().len())
}

/// Waits until `f` returns true, polling every 200 ms; false on timeout.
pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
