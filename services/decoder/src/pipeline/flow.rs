//! The decoder loop's decisions, as a pure state machine: when a batch is due, when the loop
//! stops taking records, when to pause and resume the partitions, what to discard after a
//! rebalance, which offsets to commit, and how the drain on SIGTERM proceeds.
//!
//! [`Flow`] holds the batch being filled and what it knows of the insert in flight; the shell
//! ([`super::shell`]) tells it what happened (a loop turn, a poll, an insert's end, SIGTERM) and
//! performs the [`Action`]s it returns. No I/O, no async runtime, no clock: the time is a
//! parameter, so every transition is unit-tested below.
//!
//! # The rules (each one kept from the loop this module was taken out of)
//!
//! 1. **One insert at a time.** A due batch is handed out ([`Action::Flush`]) only when no
//!    insert is in flight; the next batch fills meanwhile, so decoding and inserting overlap.
//!    Commits therefore happen in order: a batch's offsets (per partition, the next offset to
//!    read) are never committed before the earlier batch's insert is confirmed, as they would
//!    cover its records.
//! 2. **Due** = not empty, and full (rows or bytes bound) or past its age deadline. An empty
//!    batch is never flushed. A due batch waits while an insert is in flight and goes out at the
//!    first turn after it ends.
//! 3. **Blocked** = an insert in flight *and* the current batch full: the loop stops taking
//!    records (librdkafka prefetches a bounded amount meanwhile) and waits for the insert.
//! 4. **Pause** when the batch is full and the insert in flight started at least
//!    [`PAUSE_AFTER`] ago (measured from the insert's start, not from when the batch became
//!    full). While paused the loop polls again ([`Wait::records`]), so the group membership
//!    stays alive (`max.poll.interval.ms`) and rebalances are served; a record that still
//!    arrives is taken (the batch grows past full; memory stays bounded by what was prefetched).
//! 5. **Resume** as soon as that condition no longer holds: the insert ended and the full batch
//!    went out as the next insert (which starts young), or a rebalance discarded the batch.
//! 6. A pause or resume is applied only once the shell reports it done ([`Flow::set_paused`]);
//!    one that failed is asked for again at the next turn.
//! 7. **Rebalance.** The consumer context bumps a generation on every revocation. When the
//!    generation moved since the current batch started filling, that batch is discarded whole
//!    ([`Action::Discard`]): uninserted and uncommitted, even its records of partitions still
//!    owned. That loses nothing under an eager rebalance protocol (librdkafka's default
//!    `range,roundrobin` assignors): every partition is revoked, and a reassigned one is read
//!    again from its committed offset. (A cooperative assignor set through
//!    `KAFKA_CONSUMER_PROPERTIES` would keep a partition's fetch position across the rebalance,
//!    and its discarded records would be skipped.) The paused flag is reset without a resume
//!    call, as before this module: the loop treats a new assignment as unpaused.
//! 8. The generation is checked at each turn **and after each poll, before the polled record is
//!    added** (the rebalance callback runs inside the poll): a record of the new assignment
//!    never joins a batch of the old one. A poll that returned an error is checked too.
//! 9. **Revoke during an insert.** The insert in flight is not cancelled: its rows are inserted
//!    (the new owner may insert them again; the tables collapse duplicates, at-least-once).
//!    Its offsets are committed only for the partitions this member owns *when the insert ends*
//!    (a partition revoked and assigned back to it in the meantime counts as owned: its rows
//!    are inserted). The others are left to their new owner.
//! 10. Commits are asynchronous in the loop (a failure is counted; the next commit covers it)
//!     and synchronous during the drain. A commit with no owned partition is not sent.
//! 11. The age deadline wakes the loop only while no insert is in flight (the insert's end
//!     wakes it otherwise); a blocked loop wakes at the pause time unless already paused.
//! 12. **Drain (SIGTERM).** No more polling, pausing or resuming. First the insert in flight is
//!     awaited and committed; then the generation is checked; then the buffered batch is
//!     flushed whether due or not and committed, but only when the insert in flight completed
//!     (rule 1: otherwise its records would be committed uninserted). One deadline covers both
//!     waits (`DRAIN_TIMEOUT_SECS`, kept by the shell); what it cuts off stays uncommitted and
//!     is consumed again.
//!
//! Left to the shell: the insert itself (rows, then the dead letters, both durable before the
//! batch comes back as inserted), the clock, the drain deadline, the commit call, and an
//! insert task that panics in the loop (the run ends with an error, without a drain).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::batch::Batch;
use crate::config::BatchLimits;

/// How long a full buffer waits on a slow insert before partitions are paused.
pub const PAUSE_AFTER: Duration = Duration::from_secs(5);

/// What the flow reads of a batch.
pub trait Buffer: Default {
    fn is_empty(&self) -> bool;
    fn is_full(&self, limits: &BatchLimits) -> bool;
    /// When the age bound falls due (`None` while empty).
    fn deadline(&self, limits: &BatchLimits) -> Option<Instant>;
    fn rows(&self) -> usize;
    /// Next offset to commit, per (topic, partition).
    fn offsets(&self) -> &BTreeMap<(String, i32), i64>;
}

impl Buffer for Batch {
    fn is_empty(&self) -> bool {
        Batch::is_empty(self)
    }
    fn is_full(&self, limits: &BatchLimits) -> bool {
        Batch::is_full(self, limits)
    }
    fn deadline(&self, limits: &BatchLimits) -> Option<Instant> {
        Batch::deadline(self, limits)
    }
    fn rows(&self) -> usize {
        Batch::rows(self)
    }
    fn offsets(&self) -> &BTreeMap<(String, i32), i64> {
        &self.offsets
    }
}

/// What the shell does for the flow.
#[derive(Debug, PartialEq)]
pub enum Action<B> {
    /// Drop this batch, uninserted and uncommitted (a rebalance revoked partitions since it
    /// started filling): its records will be consumed again.
    Discard(B),
    /// Insert this batch, then report [`Flow::inserted`].
    Flush(B),
    /// Pause the assigned partitions; report success with [`Flow::set_paused`]`(true)`.
    Pause,
    /// Resume the assigned partitions; report success with [`Flow::set_paused`]`(false)`.
    Resume,
}

/// What the loop waits for until its next turn (any one of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait {
    /// The insert in flight ending.
    pub insert: bool,
    /// A record (or a consume error) from the consumer.
    pub records: bool,
    /// A time: the batch's age deadline, or when a blocked loop pauses.
    pub wake_at: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitMode {
    Async,
    Sync,
}

/// Offsets to commit after an insert.
#[derive(Debug, PartialEq, Eq)]
pub struct Commit {
    /// (topic, partition, next offset) of the partitions this member owns.
    pub offsets: Vec<(String, i32, i64)>,
    /// Partitions of the batch this member no longer owns: not committed.
    pub not_owned: Vec<(String, i32)>,
    pub mode: CommitMode,
}

/// The next step of the drain.
#[derive(Debug, PartialEq)]
pub enum DrainStep<B> {
    /// Wait for the insert in flight (until the drain deadline), then report
    /// [`Flow::inserted`] or [`Flow::insert_failed`].
    AwaitInsert,
    /// As [`Action::Discard`].
    Discard(B),
    /// Insert what is buffered (until the drain deadline), then report as for `AwaitInsert`.
    Flush(B),
    /// Nothing left to do: leave the group. `complete` is false when an insert failed or was
    /// cut off by the deadline (the rest stays uncommitted).
    Done { complete: bool },
}

#[derive(Debug, Clone, Copy)]
struct Insert {
    rows: usize,
    started: Instant,
}

/// The loop's state: the batch being filled, the insert in flight, the pause, the drain.
#[derive(Debug)]
pub struct Flow<B> {
    limits: BatchLimits,
    current: B,
    /// The assignment generation `current` was filled under.
    generation: u64,
    insert: Option<Insert>,
    paused: bool,
    /// `Some(complete)` once draining.
    draining: Option<bool>,
}

impl<B: Buffer> Flow<B> {
    pub fn new(limits: BatchLimits, generation: u64) -> Self {
        Flow {
            limits,
            current: B::default(),
            generation,
            insert: None,
            paused: false,
            draining: None,
        }
    }

    /// A loop turn: the rebalance check (rule 7), the due batch (rules 1, 2), then pause or
    /// resume (rules 4, 5). Call [`Flow::wait`] after performing the actions.
    pub fn step(&mut self, now: Instant, generation: u64) -> Vec<Action<B>> {
        let mut actions = Vec::new();
        if let Some(b) = self.observe(generation) {
            actions.push(Action::Discard(b));
        }
        let current = &self.current;
        let due = !current.is_empty()
            && (current.is_full(&self.limits)
                || current.deadline(&self.limits).is_some_and(|d| d <= now));
        if due && self.insert.is_none() {
            actions.push(Action::Flush(self.take(now)));
        }
        let want = self.current.is_full(&self.limits)
            && self
                .insert
                .is_some_and(|i| now.saturating_duration_since(i.started) >= PAUSE_AFTER);
        if want != self.paused {
            actions.push(if want { Action::Pause } else { Action::Resume });
        }
        actions
    }

    /// The shell paused (`true`) or resumed (`false`) the partitions.
    pub fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
    }

    /// What to wait for until the next turn (rules 3, 4, 11).
    pub fn wait(&self) -> Wait {
        let blocked = self.insert.is_some() && self.current.is_full(&self.limits);
        let wake_at = match self.insert {
            None => self.current.deadline(&self.limits),
            Some(i) if blocked && !self.paused => Some(i.started + PAUSE_AFTER),
            Some(_) => None,
        };
        Wait {
            insert: self.insert.is_some(),
            records: !blocked || self.paused,
            wake_at,
        }
    }

    /// A poll returned (a record or an error): the batch to discard if the poll ran a
    /// revocation (rule 8). Call before adding the record to [`Flow::current_mut`].
    pub fn polled(&mut self, generation: u64) -> Option<B> {
        self.observe(generation)
    }

    /// The batch being filled.
    pub fn current(&self) -> &B {
        &self.current
    }

    pub fn current_mut(&mut self) -> &mut B {
        &mut self.current
    }

    /// The insert handed out by [`Action::Flush`] or [`DrainStep::Flush`] succeeded (rows and
    /// dead letters durable): the offsets to commit, for the partitions `owns` still says this
    /// member has (rule 9).
    pub fn inserted(&mut self, batch: &B, owns: impl Fn(&str, i32) -> bool) -> Commit {
        self.insert = None;
        let mut commit = Commit {
            offsets: Vec::new(),
            not_owned: Vec::new(),
            mode: if self.draining.is_some() {
                CommitMode::Sync
            } else {
                CommitMode::Async
            },
        };
        for ((topic, partition), next) in batch.offsets() {
            if owns(topic, *partition) {
                commit.offsets.push((topic.clone(), *partition, *next));
            } else {
                commit.not_owned.push((topic.clone(), *partition));
            }
        }
        commit
    }

    /// During the drain: the insert failed or ran past the deadline (nothing to commit).
    pub fn insert_failed(&mut self) {
        self.insert = None;
        self.draining = Some(false);
    }

    pub fn insert_in_flight(&self) -> bool {
        self.insert.is_some()
    }

    /// Rows buffered and not yet inserted: the batch being filled and the insert in flight.
    pub fn buffered_rows(&self) -> usize {
        self.current.rows() + self.insert.map_or(0, |i| i.rows)
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// SIGTERM: from now on only [`Flow::drain_next`] (rule 12).
    pub fn stop(&mut self) {
        self.draining.get_or_insert(true);
    }

    /// The next drain step; call again after performing it until [`DrainStep::Done`].
    pub fn drain_next(&mut self, now: Instant, generation: u64) -> DrainStep<B> {
        let complete = *self.draining.get_or_insert(true);
        if self.insert.is_some() {
            return DrainStep::AwaitInsert;
        }
        if let Some(b) = self.observe(generation) {
            return DrainStep::Discard(b);
        }
        if complete && !self.current.is_empty() {
            return DrainStep::Flush(self.take(now));
        }
        DrainStep::Done { complete }
    }

    /// Rule 7: a revocation happened since `current` started filling.
    fn observe(&mut self, generation: u64) -> Option<B> {
        if generation == self.generation {
            return None;
        }
        self.generation = generation;
        self.paused = false;
        if self.current.is_empty() {
            return None;
        }
        Some(std::mem::take(&mut self.current))
    }

    fn take(&mut self, now: Instant) -> B {
        let batch = std::mem::take(&mut self.current);
        self.insert = Some(Insert {
            rows: batch.rows(),
            started: now,
        });
        batch
    }
}

#[cfg(test)]
mod tests;
