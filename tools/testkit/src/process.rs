//! The service binaries as child processes (bridge, decoder, forwarder) with their own settings, logs,
//! `/metrics` and `/readyz` probes, killed when dropped.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::*;

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
    // Test executables live in target/<profile>/deps, the binaries one level up (a tool such
    // as sck-drills is one of them).
    let exe = std::env::current_exe().expect("current exe");
    let mut dir = exe.parent().expect("target dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
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
        if let Some(secure) = &s.secure {
            env.extend(secure.bridge_env());
        }
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
        if let Some(secure) = &s.secure {
            all.extend(secure.decoder_env());
        }
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

/// A running sck-forwarder on a test's topics and group, reading the local stack's registry as
/// the least-privilege user, publishing to the local Mosquitto.
pub struct Forwarder {
    pub svc: Service,
}

impl std::ops::Deref for Forwarder {
    type Target = Service;
    fn deref(&self) -> &Service {
        &self.svc
    }
}

impl std::ops::DerefMut for Forwarder {
    fn deref_mut(&mut self) -> &mut Service {
        &mut self.svc
    }
}

impl Forwarder {
    /// Starts a forwarder (without waiting for readiness) in consumer group `group`, forwarding
    /// once `after_group` (the decoder's, or a test's stand-in) committed past a record; `env`
    /// adds or overrides settings.
    pub fn spawn(
        topics: &Topics,
        group: &str,
        after_group: &str,
        env: &[(&str, &str)],
    ) -> Forwarder {
        let s = stack();
        let mut all: Vec<(String, String)> = [
            ("KAFKA_BROKERS", s.kafka_brokers.clone()),
            ("KAFKA_GROUP", group.to_string()),
            ("KAFKA_READINGS_TOPIC", topics.readings.clone()),
            ("KAFKA_EVENTS_TOPIC", topics.events.clone()),
            ("KAFKA_DLQ_TOPIC", topics.dlq.clone()),
            ("FORWARD_AFTER_GROUP", after_group.to_string()),
            ("FORWARD_GATE_POLL_MS", "200".into()),
            ("MQTT_HOST", s.mqtt_host.clone()),
            ("MQTT_PORT", s.mqtt_port.to_string()),
            ("MQTT_CLIENT", unique("forwarder")),
            ("REGISTRY_POSTGRES_URL", s.registry_postgres_url.clone()),
            ("KAFKA_STATISTICS_INTERVAL_MS", "1000".into()),
            (
                "KAFKA_CONSUMER_PROPERTIES",
                "session.timeout.ms=10000;heartbeat.interval.ms=1000".into(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        if let Some(secure) = &s.secure {
            all.extend(secure.forwarder_env());
        }
        all.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Forwarder {
            svc: Service::spawn("sck-forwarder", &unique("forwarder"), &all),
        }
    }

    /// Starts a forwarder and waits until it is ready (registry loaded, MQTT and Kafka up).
    pub fn start(
        topics: &Topics,
        group: &str,
        after_group: &str,
        env: &[(&str, &str)],
    ) -> Forwarder {
        let f = Forwarder::spawn(topics, group, after_group, env);
        f.wait_ready(Duration::from_secs(60));
        f
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
