//! The local stack: where it is (`.stack/env`, started when not running; or `$STACK_DIR/env` of
//! a stack started by a check script), unique names, free ports, serialising tests that stop
//! servers, and waiting on conditions instead of sleeping.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Endpoints of the local stack, from its env file.
#[derive(Debug, Clone)]
pub struct Stack {
    pub mqtt_host: String,
    pub mqtt_port: u16,
    pub kafka_brokers: String,
    /// `host:port` of ClickHouse's plain HTTP interface (the tests' own queries).
    pub clickhouse_http: String,
    /// The platform's PostgreSQL as the tables' owner (tests, seeds); empty without PostgreSQL.
    pub platform_postgres_url: String,
    /// The same database as the decoder's least-privilege user; empty without PostgreSQL.
    pub registry_postgres_url: String,
    /// Empty without Redis.
    pub redis_url: String,
    /// The identities of a stack started with `STACK_SECURE=1`; None for the plain stack.
    pub secure: Option<Secure>,
}

/// A user name and its password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    pub user: String,
    pub password: String,
}

impl Login {
    fn from(vars: &HashMap<String, String>, user: &str, password: &str) -> Login {
        Login {
            user: var(vars, user).to_string(),
            password: var(vars, password).to_string(),
        }
    }
}

/// What a secured stack (`STACK_SECURE=1 scripts/stack.sh up`) requires of its clients.
#[derive(Debug, Clone)]
pub struct Secure {
    /// The CA that signed Mosquitto's and ClickHouse's certificates.
    pub ca_file: PathBuf,
    /// MQTT (TLS): the bridge's user, the forwarder's, and the devices' (user = token).
    pub mqtt_bridge: Login,
    pub mqtt_forwarder: Login,
    pub mqtt_devices: Vec<Login>,
    /// Kafka SASL: security.protocol, sasl.mechanism and the services' user.
    pub kafka_protocol: String,
    pub kafka_mechanism: String,
    pub kafka: Login,
    /// ClickHouse over HTTPS for the decoder (`https://host:port`) and its user.
    pub clickhouse_url: String,
    pub clickhouse_decoder: Login,
    /// ClickHouse's administrator (the tests' own queries) and its read-only user.
    pub clickhouse_admin: Login,
    pub clickhouse_reader: Login,
}

impl Secure {
    /// The librdkafka security properties of the services' Kafka user.
    pub fn kafka_properties(&self) -> [(&'static str, String); 4] {
        [
            ("security.protocol", self.kafka_protocol.clone()),
            ("sasl.mechanism", self.kafka_mechanism.clone()),
            ("sasl.username", self.kafka.user.clone()),
            ("sasl.password", self.kafka.password.clone()),
        ]
    }

    /// The same as the services' settings (KAFKA_SECURITY_PROTOCOL, …).
    pub fn kafka_env(&self) -> Vec<(String, String)> {
        pairs(&[
            ("KAFKA_SECURITY_PROTOCOL", &self.kafka_protocol),
            ("KAFKA_SASL_MECHANISM", &self.kafka_mechanism),
            ("KAFKA_SASL_USERNAME", &self.kafka.user),
            ("KAFKA_SASL_PASSWORD", &self.kafka.password),
        ])
    }

    /// The secure settings of a bridge (over `MQTT_PORT`, the TLS listener): TLS, the bridge's
    /// MQTT user, the Kafka user.
    pub fn bridge_env(&self) -> Vec<(String, String)> {
        let mut env = pairs(&[
            ("MQTT_TLS", "true"),
            ("MQTT_CA_FILE", &self.ca_file.to_string_lossy()),
            ("MQTT_USERNAME", &self.mqtt_bridge.user),
            ("MQTT_PASSWORD", &self.mqtt_bridge.password),
        ]);
        env.extend(self.kafka_env());
        env
    }

    /// The secure settings of a decoder: the Kafka user, ClickHouse over HTTPS as its user.
    pub fn decoder_env(&self) -> Vec<(String, String)> {
        let mut env = pairs(&[
            ("CLICKHOUSE_URL", &self.clickhouse_url),
            ("CLICKHOUSE_CA_FILE", &self.ca_file.to_string_lossy()),
            ("CLICKHOUSE_USER", &self.clickhouse_decoder.user),
            ("CLICKHOUSE_PASSWORD", &self.clickhouse_decoder.password),
        ]);
        env.extend(self.kafka_env());
        env
    }

    /// The secure settings of a forwarder: TLS, the forwarder's MQTT user, the Kafka user.
    pub fn forwarder_env(&self) -> Vec<(String, String)> {
        let mut env = pairs(&[
            ("MQTT_TLS", "true"),
            ("MQTT_CA_FILE", &self.ca_file.to_string_lossy()),
            ("MQTT_USERNAME", &self.mqtt_forwarder.user),
            ("MQTT_PASSWORD", &self.mqtt_forwarder.password),
        ]);
        env.extend(self.kafka_env());
        env
    }

    /// Every password of the stack (to look for where none may appear).
    pub fn passwords(&self) -> Vec<&str> {
        let mut all = vec![
            self.mqtt_bridge.password.as_str(),
            self.mqtt_forwarder.password.as_str(),
            self.kafka.password.as_str(),
            self.clickhouse_decoder.password.as_str(),
            self.clickhouse_admin.password.as_str(),
            self.clickhouse_reader.password.as_str(),
        ];
        all.extend(self.mqtt_devices.iter().map(|d| d.password.as_str()));
        all
    }
}

fn pairs(kv: &[(&str, &str)]) -> Vec<(String, String)> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn optional(vars: &HashMap<String, String>, name: &str) -> String {
    vars.get(name).cloned().unwrap_or_default()
}

fn var<'a>(vars: &'a HashMap<String, String>, name: &str) -> &'a str {
    vars.get(name)
        .unwrap_or_else(|| panic!("the stack's env file lacks {name}"))
}

/// `export NAME=value` lines (the value possibly in double quotes), later lines winning.
pub fn parse_env(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            (k.to_string(), v.to_string())
        })
        .collect()
}

impl Stack {
    /// The stack described by an env file of `scripts/stack.sh`.
    pub fn from_env(vars: &HashMap<String, String>) -> Stack {
        let secure = (vars.get("MQTT_TLS").map(String::as_str) == Some("true")).then(|| Secure {
            ca_file: PathBuf::from(var(vars, "MQTT_CA_FILE")),
            mqtt_bridge: Login::from(vars, "MQTT_USERNAME", "MQTT_PASSWORD"),
            mqtt_forwarder: Login::from(
                vars,
                "STACK_FORWARDER_MQTT_USERNAME",
                "STACK_FORWARDER_MQTT_PASSWORD",
            ),
            mqtt_devices: var(vars, "STACK_MQTT_DEVICE_LOGINS")
                .split_whitespace()
                .filter_map(|l| l.split_once(':'))
                .map(|(user, password)| Login {
                    user: user.to_string(),
                    password: password.to_string(),
                })
                .collect(),
            kafka_protocol: var(vars, "KAFKA_SECURITY_PROTOCOL").to_string(),
            kafka_mechanism: var(vars, "KAFKA_SASL_MECHANISM").to_string(),
            kafka: Login::from(vars, "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"),
            clickhouse_url: var(vars, "CLICKHOUSE_URL")
                .trim_end_matches('/')
                .to_string(),
            clickhouse_decoder: Login::from(vars, "CLICKHOUSE_USER", "CLICKHOUSE_PASSWORD"),
            clickhouse_admin: Login::from(
                vars,
                "STACK_CLICKHOUSE_ADMIN_USER",
                "STACK_CLICKHOUSE_ADMIN_PASSWORD",
            ),
            clickhouse_reader: Login::from(
                vars,
                "STACK_CLICKHOUSE_READER_USER",
                "STACK_CLICKHOUSE_READER_PASSWORD",
            ),
        });
        // The tests query ClickHouse over plain HTTP; a secure stack keeps that port (with
        // passwords) and names it apart from the services' https:// URL.
        let clickhouse_http = vars
            .get("STACK_CLICKHOUSE_HTTP_URL")
            .map_or_else(|| var(vars, "CLICKHOUSE_URL"), String::as_str)
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        Stack {
            mqtt_host: var(vars, "MQTT_HOST").to_string(),
            mqtt_port: var(vars, "MQTT_PORT").parse().expect("MQTT_PORT"),
            kafka_brokers: var(vars, "KAFKA_BROKERS").to_string(),
            clickhouse_http,
            // Empty when the stack runs without PostgreSQL / Redis (STACK_COMPONENTS).
            platform_postgres_url: optional(vars, "PLATFORM_POSTGRES_URL"),
            registry_postgres_url: optional(vars, "REGISTRY_POSTGRES_URL"),
            redis_url: optional(vars, "REDIS_URL"),
            secure,
        }
    }

    /// The secure stack's identities; panics on a plain stack (a secure test run against it).
    pub fn secure(&self) -> &Secure {
        self.secure.as_ref().expect(
            "this test needs the secure stack (scripts/check-secure-stack.sh), not the plain one",
        )
    }
}

/// The stack the tests run against. With `STACK_DIR` set (an absolute path: a check script's
/// own stack, e.g. scripts/check-secure-stack.sh), its `env`, and that stack must be up (it is
/// never started here). Otherwise `.stack/env`, the default stack being started when it is not
/// running.
pub fn stack() -> &'static Stack {
    static STACK: OnceLock<Stack> = OnceLock::new();
    STACK.get_or_init(|| {
        let root = repo_root();
        let script = root.join("scripts/stack.sh");
        let is_up = || {
            Command::new("bash")
                .arg(&script)
                .arg("is-up")
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        };
        let env_file = match std::env::var_os("STACK_DIR").filter(|d| !d.is_empty()) {
            Some(dir) => {
                let dir = PathBuf::from(dir);
                assert!(
                    dir.is_absolute(),
                    "STACK_DIR must be an absolute path, not {}",
                    dir.display()
                );
                let env_file = dir.join("env");
                assert!(
                    is_up() && env_file.exists(),
                    "the stack in STACK_DIR={} is not up (its check script starts it)",
                    dir.display()
                );
                env_file
            }
            None => {
                let env_file = root.join(".stack/env");
                if !is_up() || !env_file.exists() {
                    let status = Command::new("bash")
                        .arg(&script)
                        .arg("up")
                        .status()
                        .expect("run scripts/stack.sh up");
                    assert!(status.success(), "scripts/stack.sh up failed");
                }
                env_file
            }
        };
        let text = std::fs::read_to_string(&env_file)
            .unwrap_or_else(|e| panic!("read {}: {e}", env_file.display()));
        Stack::from_env(&parse_env(&text))
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

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: &str = "# comment\nexport MQTT_HOST=127.0.0.1\nexport MQTT_PORT=1883\n\
        export KAFKA_BROKERS=127.0.0.1:9092\nexport CLICKHOUSE_URL=http://127.0.0.1:8123\n\
        export PLATFORM_POSTGRES_URL=postgres://o:p@h/db\nexport REGISTRY_POSTGRES_URL=postgres://r:q@h/db\n\
        export REDIS_URL=redis://127.0.0.1:16379\n";

    #[test]
    fn a_plain_env_file() {
        let s = Stack::from_env(&parse_env(PLAIN));
        assert_eq!((s.mqtt_host.as_str(), s.mqtt_port), ("127.0.0.1", 1883));
        assert_eq!(s.clickhouse_http, "127.0.0.1:8123");
        assert!(s.secure.is_none());
    }

    #[test]
    fn a_secure_env_file() {
        let text = format!(
            "{PLAIN}export MQTT_PORT=8883\nexport CLICKHOUSE_URL=https://127.0.0.1:8443\n\
             export MQTT_TLS=true\nexport MQTT_CA_FILE=/s/tls/ca.pem\n\
             export MQTT_USERNAME=sck-bridge\nexport MQTT_PASSWORD=b1\n\
             export KAFKA_SECURITY_PROTOCOL=sasl_plaintext\nexport KAFKA_SASL_MECHANISM=SCRAM-SHA-512\n\
             export KAFKA_SASL_USERNAME=sck-ingest\nexport KAFKA_SASL_PASSWORD=k1\n\
             export CLICKHOUSE_CA_FILE=/s/tls/ca.pem\nexport CLICKHOUSE_USER=sck_decoder\nexport CLICKHOUSE_PASSWORD=c1\n\
             export STACK_FORWARDER_MQTT_USERNAME=sck-forwarder\nexport STACK_FORWARDER_MQTT_PASSWORD=f1\n\
             export STACK_MQTT_DEVICE_LOGINS=\"demo01:d1 demo02:d2\"\n\
             export STACK_CLICKHOUSE_HTTP_URL=http://127.0.0.1:8123\n\
             export STACK_CLICKHOUSE_ADMIN_USER=default\nexport STACK_CLICKHOUSE_ADMIN_PASSWORD=a1\n\
             export STACK_CLICKHOUSE_READER_USER=sck_reader\nexport STACK_CLICKHOUSE_READER_PASSWORD=r1\n"
        );
        let s = Stack::from_env(&parse_env(&text));
        assert_eq!(s.mqtt_port, 8883, "the later line wins");
        let without_platform: String = text
            .lines()
            .filter(|l| !l.contains("POSTGRES") && !l.contains("REDIS"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(Stack::from_env(&parse_env(&without_platform)).redis_url, "");
        assert_eq!(s.clickhouse_http, "127.0.0.1:8123");
        let sec = s.secure();
        assert_eq!(sec.clickhouse_url, "https://127.0.0.1:8443");
        assert_eq!(sec.mqtt_devices.len(), 2);
        assert_eq!(sec.mqtt_devices[1].user, "demo02");
        assert_eq!(sec.mqtt_devices[1].password, "d2");
        let mut pw = sec.passwords();
        pw.sort();
        assert_eq!(pw, ["a1", "b1", "c1", "d1", "d2", "f1", "k1", "r1"]);
        assert!(sec
            .decoder_env()
            .contains(&("CLICKHOUSE_PASSWORD".into(), "c1".into())));
        assert!(sec
            .bridge_env()
            .contains(&("KAFKA_SASL_PASSWORD".into(), "k1".into())));
    }
}
