//! The pipeline a drill runs: its own Kafka topics, consumer group and ClickHouse database, its
//! bridges and decoders as child processes (testkit's), and a sampler of their peak memory.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sck_testkit::{
    create_topics, drop_database, forget_sessions, group_members, unique, wait_for, Bridge,
    BridgeSpec, Decoder, Topics,
};

/// Settings every decoder of a drill gets: small batches, so a fault lands mid-batch.
const DECODER_SETTINGS: [(&str, &str); 2] =
    [("BATCH_MAX_ROWS", "2000"), ("INSERT_TIMEOUT_SECS", "5")];

pub struct Pipeline {
    pub topics: Topics,
    pub group: String,
    pub db: String,
    pub bridge_spec: BridgeSpec,
    pub bridges: Vec<Bridge>,
    pub decoders: Vec<Decoder>,
    /// Settings added to every decoder this pipeline starts (e.g. another CLICKHOUSE_URL).
    pub decoder_env: Vec<(String, String)>,
    peaks: Arc<Peaks>,
    sessions: Vec<String>,
}

impl Pipeline {
    /// Topics (3 partitions), a group, a database name; nothing started yet.
    pub async fn new() -> Pipeline {
        let topics = Topics::unique();
        create_topics(&topics, 3).await;
        let group = unique("drill");
        let bridge_spec = BridgeSpec::new(&topics, &unique("share"));
        Pipeline {
            topics,
            group,
            db: unique("drill_"),
            bridge_spec,
            bridges: vec![],
            decoders: vec![],
            decoder_env: vec![],
            peaks: Peaks::start(),
            sessions: vec![],
        }
    }

    /// Starts a bridge (the same MQTT client id each time: a restart resumes its session).
    pub fn start_bridge(&mut self) -> anyhow::Result<()> {
        let b = Bridge::spawn(&self.bridge_spec);
        self.peaks.watch("bridge", b.child.id());
        ready(&b, "bridge")?;
        self.sessions.push(b.client_id());
        self.bridges.push(b);
        Ok(())
    }

    /// Starts a decoder in the drill's group and waits until it is ready.
    pub fn start_decoder(&mut self) -> anyhow::Result<()> {
        let d = self.spawn_decoder();
        ready(&d, "decoder")?;
        self.decoders.push(d);
        Ok(())
    }

    /// Starts a decoder without waiting for it.
    pub fn spawn_decoder(&mut self) -> Decoder {
        let env: Vec<(&str, &str)> = DECODER_SETTINGS
            .iter()
            .copied()
            .chain(
                self.decoder_env
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            )
            .collect();
        let d = Decoder::spawn(&self.topics, &self.group, &self.db, &env);
        self.peaks.watch("decoder", d.child.id());
        d
    }

    /// Waits (up to the tests' 10 s session timeout plus a margin) until the group has no
    /// member left, so a restarted decoder is assigned every partition: tansu hands a member
    /// that joins while a dead one is still registered an empty assignment. tansu cannot list
    /// members, so on it this waits the whole time; a broker that can tell returns earlier.
    pub fn wait_group_empty(&self) {
        wait_for(Duration::from_secs(12), || {
            group_members(&self.group) == Some(0)
        });
    }

    /// Removes this MQTT client's persistent session when the drill ends.
    pub fn forget_later(&mut self, client_id: &str) {
        self.sessions.push(client_id.to_string());
    }

    /// Peak RSS of each role so far, MiB.
    pub fn peak_mib(&self, role: &str) -> f64 {
        self.peaks.peak_kib(role) as f64 / 1024.0
    }

    /// Stops every process, removes the bridges' MQTT sessions and drops the database.
    pub async fn retire(mut self) {
        self.bridges.clear();
        self.decoders.clear();
        forget_sessions(&self.sessions).await;
        drop_database(&self.db);
        self.peaks.stop.store(true, Ordering::Relaxed);
    }
}

fn ready(svc: &sck_testkit::Service, role: &str) -> anyhow::Result<()> {
    let ok = wait_for(Duration::from_secs(60), || {
        svc.get("/readyz").map(|(code, _)| code) == Some(200)
    });
    anyhow::ensure!(
        ok,
        "{role} not ready within 60 s; log:\n{}",
        tail(&svc.log_text())
    );
    Ok(())
}

/// The last lines of a log, for an error message.
pub fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// The highest VmHWM (peak resident set) seen of each role's processes, sampled every 200 ms
/// (a process killed between samples keeps its last sample).
struct Peaks {
    pids: Mutex<Vec<(&'static str, u32)>>,
    peak: Mutex<HashMap<&'static str, u64>>,
    stop: AtomicBool,
}

impl Peaks {
    fn start() -> Arc<Peaks> {
        let p = Arc::new(Peaks {
            pids: Mutex::new(vec![]),
            peak: Mutex::new(HashMap::new()),
            stop: AtomicBool::new(false),
        });
        let weak = Arc::downgrade(&p);
        std::thread::spawn(move || loop {
            let Some(p) = weak.upgrade() else { return };
            if p.stop.load(Ordering::Relaxed) {
                return;
            }
            p.sample();
            drop(p);
            std::thread::sleep(Duration::from_millis(200));
        });
        p
    }

    fn watch(&self, role: &'static str, pid: u32) {
        self.pids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((role, pid));
        self.sample();
    }

    fn sample(&self) {
        let pids = self.pids.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut peak = self.peak.lock().unwrap_or_else(|e| e.into_inner());
        for (role, pid) in pids {
            if let Some(kib) = hwm_kib(pid) {
                let e = peak.entry(role).or_insert(0);
                *e = (*e).max(kib);
            }
        }
    }

    fn peak_kib(&self, role: &str) -> u64 {
        self.sample();
        let peak = self.peak.lock().unwrap_or_else(|e| e.into_inner());
        peak.get(role).copied().unwrap_or(0)
    }
}

/// A process's peak resident set (VmHWM), KiB.
fn hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}
