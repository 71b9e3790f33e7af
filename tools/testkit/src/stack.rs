//! The local stack: where it is (`.stack/env`, started when not running), unique names, free
//! ports, serialising tests that stop servers, and waiting on conditions instead of sleeping.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

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
    /// The platform's PostgreSQL as the tables' owner (tests, seeds).
    pub platform_postgres_url: String,
    /// The same database as the decoder's least-privilege user.
    pub registry_postgres_url: String,
    pub redis_url: String,
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
            platform_postgres_url: vars["PLATFORM_POSTGRES_URL"].clone(),
            registry_postgres_url: vars["REGISTRY_POSTGRES_URL"].clone(),
            redis_url: vars["REDIS_URL"].clone(),
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
