//! Every decision of the forwarder, as a pure state machine: which record may be published (the
//! decoder gate), in which order (per device), what a failure does (retry with backoff, then a
//! dead letter), when a device's backlog is cut (dead letter), and which offsets may be
//! committed. No I/O, no async runtime, no clock (the time and the jitter are parameters): the
//! shell ([`super::shell`]) performs the [`Action`]s and reports back.
//!
//! # The rules
//!
//! 1. **Ledger.** Every consumed record is *seen* in its partition's ledger, in offset order. A
//!    record with nothing to forward is done at once; a forwarding record ([`Job`]) is done when
//!    every one of its MQTT messages was acknowledged (PUBACK), or when its dead letter is in
//!    Kafka. The offset to commit for a partition is its oldest record not done (or the one after
//!    the last seen): a commit never covers a record whose messages are not all acknowledged.
//! 2. **Gate.** With a gate (FORWARD_AFTER_GROUP), a job waits until the decoder's group has
//!    committed past its offset ([`State::open_gate`]), i.e. until its readings are stored.
//!    Gated jobs leave in offset order.
//! 3. **Per device, in order.** A device's jobs are published one at a time, oldest first (all
//!    the messages of the job at once); another device's jobs never wait for it.
//! 4. **Failure.** A job whose attempt had a failed message (a refused PUBACK, or the connection
//!    lost before its PUBACK) is tried again after a jittered exponential backoff, publishing
//!    only its messages not yet acknowledged; its device waits meanwhile (rule 3), the others do
//!    not. After FORWARD_MAX_ATTEMPTS attempts it is dead-lettered (`forward_failed`) and its
//!    device goes on with the next job.
//! 5. **Bounded backlog.** A device holding FORWARD_DEVICE_QUEUE jobs already gets the next one
//!    dead-lettered at once (`forward_queue_full`): a device whose forwarding keeps failing
//!    never holds more. (The shell bounds the whole: it stops consuming while [`State::held`]
//!    reaches FORWARD_QUEUE_CAPACITY, or while MQTT is disconnected.)
//! 6. **Epochs.** A rebalance makes a new state with a new epoch (the shell's job); outcomes of
//!    an older epoch are ignored: their records are consumed again by whoever owns them now.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::Instant;

use sck_core::backoff::Backoff;

/// Dead-letter reason: FORWARD_MAX_ATTEMPTS attempts failed.
pub const REASON_FAILED: &str = "forward_failed";
/// Dead-letter reason: the device already held FORWARD_DEVICE_QUEUE records.
pub const REASON_QUEUE_FULL: &str = "forward_queue_full";
pub const REASONS: [&str; 2] = [REASON_FAILED, REASON_QUEUE_FULL];

/// A record's place in the (one) consumed topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordKey {
    pub partition: i32,
    pub offset: i64,
}

/// What a dead letter keeps of the consumed record.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Original {
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}

/// A record of a forwarding device: its MQTT messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub record: RecordKey,
    pub device_id: i32,
    pub topic: String,
    pub messages: Vec<Vec<u8>>,
    pub original: Original,
    /// When the bridge received it (for the latency histogram).
    pub received_at_ms: i64,
}

/// One MQTT message of one job, as the shell hands it to MQTT and reports its outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MsgId {
    pub epoch: u64,
    pub device_id: i32,
    pub record: RecordKey,
    pub index: usize,
}

/// What became of one publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Acked,
    /// Not acknowledged; the reason is a bounded label (`connection_lost`, `not_authorized`, …).
    Failed(&'static str),
}

/// A dead letter to produce; report it with [`State::dead_lettered`] once Kafka has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub epoch: u64,
    pub record: RecordKey,
    pub reason: &'static str,
    pub message: String,
    pub original: Original,
}

/// What the shell does for the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Publish (QoS 1), then report [`State::published`].
    Publish {
        id: MsgId,
        topic: String,
        payload: Vec<u8>,
    },
    DeadLetter(DeadLetter),
}

/// What an outcome completed, for the metrics and the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Another epoch's, or no longer expected.
    Ignored,
    /// The job still waits for other messages of this attempt.
    Pending,
    /// Every message of the job acknowledged.
    Forwarded { received_at_ms: i64 },
    /// The attempt failed; tried again at this time.
    Retrying { attempt: u32, at: Instant },
    /// The attempt failed and was the last: dead-lettered.
    DeadLettered,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub device_queue: usize,
    pub max_attempts: u32,
    pub retry: Backoff,
}

#[derive(Debug)]
struct Entry {
    job: Job,
    acked: Vec<bool>,
    outstanding: usize,
    last_error: Option<&'static str>,
    attempts: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Head {
    /// Nothing queued or the head waits to be handed out (not in `ready`).
    Idle,
    /// In the ready queue.
    Ready,
    InFlight,
    RetryAt(Instant),
}

#[derive(Debug)]
struct Device {
    queue: VecDeque<Entry>,
    head: Head,
}

#[derive(Debug, Default)]
struct Ledger {
    pending: BTreeSet<i64>,
    next: Option<i64>,
    committed: Option<i64>,
}

impl Ledger {
    fn committable(&self) -> Option<i64> {
        self.pending.first().copied().or(self.next)
    }
}

#[derive(Debug)]
pub struct State {
    epoch: u64,
    limits: Limits,
    gate: bool,
    ledgers: BTreeMap<i32, Ledger>,
    gated: BTreeMap<i32, VecDeque<Job>>,
    gates: BTreeMap<i32, i64>,
    devices: HashMap<i32, Device>,
    ready: VecDeque<i32>,
    retries: BTreeSet<(Instant, i32)>,
    outbox: Vec<Action>,
}

impl State {
    /// `gate`: jobs wait for [`State::open_gate`] (rule 2).
    pub fn new(epoch: u64, limits: Limits, gate: bool) -> Self {
        State {
            epoch,
            limits,
            gate,
            ledgers: BTreeMap::new(),
            gated: BTreeMap::new(),
            gates: BTreeMap::new(),
            devices: HashMap::new(),
            ready: VecDeque::new(),
            retries: BTreeSet::new(),
            outbox: Vec::new(),
        }
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// A record with nothing to forward: done at once.
    pub fn skip(&mut self, record: RecordKey) {
        self.ledger(record).next = Some(record.offset + 1);
    }

    /// A record of a forwarding device.
    pub fn add(&mut self, job: Job) {
        let record = job.record;
        let ledger = self.ledger(record);
        ledger.next = Some(record.offset + 1);
        ledger.pending.insert(record.offset);
        let open = self
            .gates
            .get(&record.partition)
            .is_some_and(|g| record.offset < *g);
        if self.gate && !open {
            self.gated
                .entry(record.partition)
                .or_default()
                .push_back(job);
        } else {
            self.enqueue(job);
        }
    }

    /// The decoder's group committed `committed` (the next offset it reads) in `partition`.
    pub fn open_gate(&mut self, partition: i32, committed: i64) {
        let gate = self.gates.entry(partition).or_insert(committed);
        *gate = (*gate).max(committed);
        let gate = *gate;
        let mut released = Vec::new();
        if let Some(q) = self.gated.get_mut(&partition) {
            while q.front().is_some_and(|j| j.record.offset < gate) {
                released.extend(q.pop_front());
            }
        }
        for job in released {
            self.enqueue(job);
        }
    }

    /// The actions due at `now`: publishes of the devices whose turn it is, dead letters.
    pub fn poll(&mut self, now: Instant) -> Vec<Action> {
        while let Some(&(at, device)) = self.retries.first() {
            if at > now {
                break;
            }
            self.retries.pop_first();
            if let Some(d) = self.devices.get_mut(&device) {
                if d.head == Head::RetryAt(at) {
                    d.head = Head::Ready;
                    self.ready.push_back(device);
                }
            }
        }
        while let Some(device) = self.ready.pop_front() {
            let Some(d) = self.devices.get_mut(&device) else {
                continue;
            };
            let Some(e) = d.queue.front_mut() else {
                d.head = Head::Idle;
                continue;
            };
            d.head = Head::InFlight;
            e.outstanding = 0;
            e.last_error = None;
            for (index, payload) in e.job.messages.iter().enumerate() {
                if e.acked[index] {
                    continue;
                }
                e.outstanding += 1;
                self.outbox.push(Action::Publish {
                    id: MsgId {
                        epoch: self.epoch,
                        device_id: device,
                        record: e.job.record,
                        index,
                    },
                    topic: e.job.topic.clone(),
                    payload: payload.clone(),
                });
            }
        }
        std::mem::take(&mut self.outbox)
    }

    /// The outcome of a publish; `unit` is a random number in [0, 1) for the backoff jitter.
    pub fn published(&mut self, id: MsgId, outcome: Outcome, now: Instant, unit: f64) -> Progress {
        if id.epoch != self.epoch {
            return Progress::Ignored;
        }
        let Some(d) = self.devices.get_mut(&id.device_id) else {
            return Progress::Ignored;
        };
        let Some(e) = d.queue.front_mut() else {
            return Progress::Ignored;
        };
        if d.head != Head::InFlight
            || e.job.record != id.record
            || e.outstanding == 0
            || e.acked.get(id.index) != Some(&false)
        {
            return Progress::Ignored;
        }
        e.outstanding -= 1;
        match outcome {
            Outcome::Acked => e.acked[id.index] = true,
            Outcome::Failed(reason) => e.last_error = Some(reason),
        }
        if e.outstanding > 0 {
            return Progress::Pending;
        }
        let Some(error) = e.last_error else {
            let received_at_ms = e.job.received_at_ms;
            let record = e.job.record;
            self.next_job(id.device_id);
            self.done(record);
            return Progress::Forwarded { received_at_ms };
        };
        e.attempts += 1;
        if e.attempts < self.limits.max_attempts {
            let at = now + self.limits.retry.delay(e.attempts - 1, unit);
            let attempt = e.attempts;
            d.head = Head::RetryAt(at);
            self.retries.insert((at, id.device_id));
            return Progress::Retrying { attempt, at };
        }
        let message = format!("{} attempts failed, the last: {error}", e.attempts);
        if let Some(e) = self.next_job(id.device_id) {
            self.dead_letter(e.job, REASON_FAILED, message);
        }
        Progress::DeadLettered
    }

    /// Kafka has the dead letter of `record`: it is done.
    pub fn dead_lettered(&mut self, epoch: u64, record: RecordKey) {
        if epoch == self.epoch {
            self.done(record);
        }
    }

    /// Offsets that moved since the last call: (partition, next offset to read).
    pub fn commits(&mut self) -> Vec<(i32, i64)> {
        let mut out = Vec::new();
        for (p, l) in &mut self.ledgers {
            if let Some(c) = l.committable() {
                if l.committed.is_none_or(|done| c > done) {
                    l.committed = Some(c);
                    out.push((*p, c));
                }
            }
        }
        out
    }

    /// Every partition's offset to commit, moved or not (the drain's final, synchronous commit).
    pub fn all_commits(&self) -> Vec<(i32, i64)> {
        self.ledgers
            .iter()
            .filter_map(|(p, l)| l.committable().map(|c| (*p, c)))
            .collect()
    }

    /// Records consumed and not done: gated, queued, in flight, or being dead-lettered.
    pub fn held(&self) -> usize {
        self.ledgers.values().map(|l| l.pending.len()).sum()
    }

    /// Records waiting for the decoder's group (rule 2).
    pub fn gated(&self) -> usize {
        self.gated.values().map(VecDeque::len).sum()
    }

    /// When the earliest retry falls due.
    pub fn next_retry(&self) -> Option<Instant> {
        self.retries.first().map(|(at, _)| *at)
    }

    /// The partition's ledger; a new one starts as committed at its first record (where this
    /// consumer started reading: committing it would change nothing).
    fn ledger(&mut self, record: RecordKey) -> &mut Ledger {
        self.ledgers.entry(record.partition).or_insert(Ledger {
            committed: Some(record.offset),
            ..Ledger::default()
        })
    }

    fn done(&mut self, record: RecordKey) {
        if let Some(l) = self.ledgers.get_mut(&record.partition) {
            l.pending.remove(&record.offset);
        }
    }

    fn enqueue(&mut self, job: Job) {
        let limit = self.limits.device_queue;
        let d = self.devices.entry(job.device_id).or_insert(Device {
            queue: VecDeque::new(),
            head: Head::Idle,
        });
        if d.queue.len() >= limit {
            let message = format!("the device already holds {limit} records to forward");
            self.dead_letter(job, REASON_QUEUE_FULL, message);
            return;
        }
        let device = job.device_id;
        d.queue.push_back(Entry {
            acked: vec![false; job.messages.len()],
            job,
            outstanding: 0,
            last_error: None,
            attempts: 0,
        });
        if d.head == Head::Idle {
            d.head = Head::Ready;
            self.ready.push_back(device);
        }
    }

    /// Pops the device's head and hands its next job out (or forgets the idle device).
    fn next_job(&mut self, device: i32) -> Option<Entry> {
        let d = self.devices.get_mut(&device)?;
        let head = d.queue.pop_front();
        if d.queue.is_empty() {
            self.devices.remove(&device);
        } else {
            d.head = Head::Ready;
            self.ready.push_back(device);
        }
        head
    }

    fn dead_letter(&mut self, job: Job, reason: &'static str, message: String) {
        self.outbox.push(Action::DeadLetter(DeadLetter {
            epoch: self.epoch,
            record: job.record,
            reason,
            message,
            original: job.original,
        }));
    }
}

#[cfg(test)]
mod tests;
