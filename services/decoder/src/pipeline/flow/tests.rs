//! Every transition of [`Flow`], table-driven where the shape allows. A fake batch stands for
//! [`Batch`] (its rows, start and offsets are all the flow reads); time is an `Instant` taken
//! once and offset by hand, so nothing here waits.

use super::*;

const LIMITS: BatchLimits = BatchLimits {
    max_rows: 10,
    max_bytes: usize::MAX,
    max_age: Duration::from_secs(1),
};

#[derive(Debug, Default, PartialEq)]
struct Fake {
    messages: usize,
    rows: usize,
    started: Option<Instant>,
    offsets: BTreeMap<(String, i32), i64>,
}

impl Fake {
    /// Adds a record as `Batch::add` would: its rows, its start, its next offset.
    fn add(&mut self, topic: &str, partition: i32, offset: i64, rows: usize, at: Instant) {
        self.messages += 1;
        self.rows += rows;
        self.started.get_or_insert(at);
        let next = self
            .offsets
            .entry((topic.to_string(), partition))
            .or_default();
        *next = (*next).max(offset + 1);
    }
}

impl Buffer for Fake {
    fn is_empty(&self) -> bool {
        self.messages == 0
    }
    fn is_full(&self, limits: &BatchLimits) -> bool {
        self.rows >= limits.max_rows
    }
    fn deadline(&self, limits: &BatchLimits) -> Option<Instant> {
        self.started.map(|s| s + limits.max_age)
    }
    fn rows(&self) -> usize {
        self.rows
    }
    fn offsets(&self) -> &BTreeMap<(String, i32), i64> {
        &self.offsets
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A state to start from, times in ms after `t0`.
#[derive(Debug, Clone, Copy)]
struct Given {
    /// Records in the batch being filled (started at t0), and their rows.
    messages: usize,
    rows: usize,
    /// An insert in flight, started at this time.
    insert_at: Option<u64>,
    paused: bool,
}

const EMPTY: Given = Given {
    messages: 0,
    rows: 0,
    insert_at: None,
    paused: false,
};

fn flow(g: Given, t0: Instant) -> Flow<Fake> {
    let mut f: Flow<Fake> = Flow::new(LIMITS, 0);
    for i in 0..g.messages {
        let rows = if i == 0 { g.rows } else { 0 };
        f.current_mut().add("sck.readings", 0, i as i64, rows, t0);
    }
    f.insert = g.insert_at.map(|at| Insert {
        rows: 7,
        started: t0 + ms(at),
    });
    f.paused = g.paused;
    f
}

/// Actions as short words ("flush 10" = a batch of 10 rows handed out), applied as a shell whose
/// pause and resume succeed would.
fn perform(f: &mut Flow<Fake>, actions: Vec<Action<Fake>>) -> Vec<String> {
    actions
        .into_iter()
        .map(|a| match a {
            Action::Discard(b) => format!("discard {}", b.messages),
            Action::Flush(b) => format!("flush {}", b.rows),
            Action::Pause => {
                f.set_paused(true);
                "pause".to_string()
            }
            Action::Resume => {
                f.set_paused(false);
                "resume".to_string()
            }
        })
        .collect()
}

#[test]
fn each_turn_decides_flush_pause_resume_discard_and_what_to_wait_for() {
    struct Case {
        name: &'static str,
        given: Given,
        now: u64,
        generation: u64,
        actions: &'static [&'static str],
        /// Then: insert awaited, records taken, wake-up time (ms after t0).
        wait: (bool, bool, Option<u64>),
        paused: bool,
    }
    let batch = |messages, rows| Given {
        messages,
        rows,
        ..EMPTY
    };
    let behind = |rows, insert_at, paused| Given {
        messages: 1,
        rows,
        insert_at: Some(insert_at),
        paused,
    };
    let cases = [
        Case {
            name: "empty, no insert: take records, no wake-up",
            given: EMPTY,
            now: 60_000,
            generation: 0,
            actions: &[],
            wait: (false, true, None),
            paused: false,
        },
        Case {
            name: "young batch: wake at its age deadline",
            given: batch(2, 3),
            now: 999,
            generation: 0,
            actions: &[],
            wait: (false, true, Some(1_000)),
            paused: false,
        },
        Case {
            name: "age deadline reached: flush, keep taking records",
            given: batch(2, 3),
            now: 1_000,
            generation: 0,
            actions: &["flush 3"],
            wait: (true, true, None),
            paused: false,
        },
        Case {
            name: "only skipped records (no rows) at the deadline: flushed so the offsets commit",
            given: batch(4, 0),
            now: 1_000,
            generation: 0,
            actions: &["flush 0"],
            wait: (true, true, None),
            paused: false,
        },
        Case {
            name: "full batch: flush at once",
            given: batch(1, 10),
            now: 0,
            generation: 0,
            actions: &["flush 10"],
            wait: (true, true, None),
            paused: false,
        },
        Case {
            name: "due batch behind an insert: waits for it, no deadline wake-up",
            given: behind(3, 0, false),
            now: 5_000,
            generation: 0,
            actions: &[],
            wait: (true, true, None),
            paused: false,
        },
        Case {
            name: "full batch behind a young insert: blocked, wake at the pause time",
            given: behind(10, 200, false),
            now: 1_000,
            generation: 0,
            actions: &[],
            wait: (true, false, Some(5_200)),
            paused: false,
        },
        Case {
            name: "full batch behind an insert just short of PAUSE_AFTER: still blocked",
            given: behind(10, 200, false),
            now: 5_199,
            generation: 0,
            actions: &[],
            wait: (true, false, Some(5_200)),
            paused: false,
        },
        Case {
            name: "insert slow past PAUSE_AFTER: pause, then poll again",
            given: behind(10, 200, false),
            now: 5_200,
            generation: 0,
            actions: &["pause"],
            wait: (true, true, None),
            paused: true,
        },
        Case {
            name: "paused, insert still slow: nothing new",
            given: behind(10, 200, true),
            now: 600_000,
            generation: 0,
            actions: &[],
            wait: (true, true, None),
            paused: true,
        },
        Case {
            name: "slow insert but the batch not full: no pause",
            given: behind(9, 0, false),
            now: 600_000,
            generation: 0,
            actions: &[],
            wait: (true, true, None),
            paused: false,
        },
        Case {
            name: "paused and the insert ended: the full batch goes out, resume",
            given: Given {
                insert_at: None,
                ..behind(12, 0, true)
            },
            now: 9_000,
            generation: 0,
            actions: &["flush 12", "resume"],
            wait: (true, true, None),
            paused: false,
        },
        Case {
            name: "revocation: the batch is discarded",
            given: batch(3, 5),
            now: 10,
            generation: 1,
            actions: &["discard 3"],
            wait: (false, true, None),
            paused: false,
        },
        Case {
            name: "revocation with a due batch: discarded, not flushed",
            given: batch(1, 10),
            now: 2_000,
            generation: 1,
            actions: &["discard 1"],
            wait: (false, true, None),
            paused: false,
        },
        Case {
            name: "revocation with an empty batch: nothing to discard",
            given: EMPTY,
            now: 0,
            generation: 3,
            actions: &[],
            wait: (false, true, None),
            paused: false,
        },
        Case {
            name: "revocation while paused: discard, unpaused without a resume call",
            given: behind(10, 0, true),
            now: 6_000,
            generation: 1,
            actions: &["discard 1"],
            wait: (true, true, None),
            paused: false,
        },
    ];
    let t0 = Instant::now();
    for c in cases {
        let mut f = flow(c.given, t0);
        let actions = f.step(t0 + ms(c.now), c.generation);
        assert_eq!(perform(&mut f, actions), c.actions, "{}", c.name);
        let (insert, records, wake) = c.wait;
        let want = Wait {
            insert,
            records,
            wake_at: wake.map(|w| t0 + ms(w)),
        };
        assert_eq!(f.wait(), want, "{}", c.name);
        assert_eq!(f.is_paused(), c.paused, "{}", c.name);
        assert_eq!(
            f.step(t0 + ms(c.now), c.generation),
            vec![],
            "{}: a second turn at the same time changes nothing",
            c.name
        );
    }
}

#[test]
fn a_pause_or_resume_that_failed_is_asked_for_again() {
    let t0 = Instant::now();
    let mut f = flow(
        Given {
            messages: 1,
            rows: 10,
            insert_at: Some(0),
            paused: false,
        },
        t0,
    );
    let at = t0 + PAUSE_AFTER;
    assert_eq!(f.step(at, 0), vec![Action::Pause]);
    assert!(!f.wait().records, "not paused yet: still blocked");
    assert_eq!(f.step(at, 0), vec![Action::Pause], "asked again");
    f.set_paused(true);
    assert_eq!(f.step(at, 0), vec![]);
    f.insert = None;
    let actions = f.step(at, 0);
    assert_eq!(actions.last(), Some(&Action::Resume));
    assert_eq!(
        f.step(at, 0),
        vec![Action::Resume],
        "resume failed: asked again"
    );
}

#[test]
fn a_poll_that_ran_a_revocation_discards_the_old_batch_before_its_record_is_added() {
    let t0 = Instant::now();
    let mut f = flow(
        Given {
            messages: 2,
            rows: 4,
            ..EMPTY
        },
        t0,
    );
    assert!(f.polled(0).is_none(), "same generation: keep the batch");
    assert_eq!(f.current().messages, 2);
    let old = f.polled(1).expect("the old batch");
    assert_eq!(old.messages, 2);
    assert!(f.current().is_empty());
    f.current_mut().add("sck.readings", 0, 2, 1, t0);
    assert_eq!(
        f.step(t0, 1),
        vec![],
        "the new record stays: same generation"
    );
    assert_eq!(f.current().messages, 1);
}

#[test]
fn commits_only_the_partitions_still_owned_when_the_insert_ends() {
    struct Case {
        name: &'static str,
        owned: &'static [(&'static str, i32)],
        commit: &'static [(&'static str, i32, i64)],
        not_owned: &'static [(&'static str, i32)],
    }
    let cases = [
        Case {
            name: "all owned",
            owned: &[
                ("sck.readings", 0),
                ("sck.readings", 1),
                ("sck.device-events", 0),
            ],
            commit: &[
                ("sck.device-events", 0, 4),
                ("sck.readings", 0, 11),
                ("sck.readings", 1, 6),
            ],
            not_owned: &[],
        },
        Case {
            name: "partition 1 revoked during the insert",
            owned: &[("sck.readings", 0), ("sck.device-events", 0)],
            commit: &[("sck.device-events", 0, 4), ("sck.readings", 0, 11)],
            not_owned: &[("sck.readings", 1)],
        },
        Case {
            name: "everything revoked: nothing to send",
            owned: &[],
            commit: &[],
            not_owned: &[
                ("sck.device-events", 0),
                ("sck.readings", 0),
                ("sck.readings", 1),
            ],
        },
    ];
    let t0 = Instant::now();
    for c in cases {
        let mut f: Flow<Fake> = Flow::new(LIMITS, 0);
        f.current_mut().add("sck.readings", 0, 10, 6, t0);
        f.current_mut().add("sck.readings", 0, 9, 2, t0);
        f.current_mut().add("sck.readings", 1, 5, 2, t0);
        f.current_mut().add("sck.device-events", 0, 3, 1, t0);
        let mut actions = f.step(t0, 0);
        let Some(Action::Flush(batch)) = actions.pop() else {
            panic!("{}: the full batch is not flushed", c.name);
        };
        // The revocation happens while the insert runs: the next record of the new assignment
        // starts a batch of its own.
        assert_eq!(
            f.polled(1),
            None,
            "{}: the batch being filled is empty",
            c.name
        );
        assert_eq!(f.buffered_rows(), 11, "{}", c.name);
        let commit = f.inserted(&batch, |t, p| {
            c.owned.iter().any(|&(ot, op)| ot == t && op == p)
        });
        let offsets: Vec<_> = commit
            .offsets
            .iter()
            .map(|(t, p, o)| (t.as_str(), *p, *o))
            .collect();
        assert_eq!(offsets, c.commit, "{}", c.name);
        let not_owned: Vec<_> = commit
            .not_owned
            .iter()
            .map(|(t, p)| (t.as_str(), *p))
            .collect();
        assert_eq!(not_owned, c.not_owned, "{}", c.name);
        assert_eq!(commit.mode, CommitMode::Async, "{}", c.name);
        assert!(!f.insert_in_flight(), "{}", c.name);
        assert_eq!(f.buffered_rows(), 0, "{}", c.name);
    }
}

#[test]
fn a_slow_insert_pauses_and_its_end_resumes_with_the_next_batch_in_flight() {
    let t0 = Instant::now();
    let mut f: Flow<Fake> = Flow::new(LIMITS, 0);
    f.current_mut().add("sck.readings", 0, 0, 10, t0);
    let mut actions = f.step(t0, 0);
    let Some(Action::Flush(first)) = actions.pop() else {
        panic!("full batch not flushed");
    };
    f.current_mut().add("sck.readings", 0, 1, 10, t0 + ms(10));
    assert_eq!(f.buffered_rows(), 20);
    assert_eq!(f.wait().wake_at, Some(t0 + PAUSE_AFTER));
    assert_eq!(f.step(t0 + PAUSE_AFTER, 0), vec![Action::Pause]);
    f.set_paused(true);
    // A record still arrives while paused: taken, past full.
    assert!(f.wait().records);
    f.current_mut()
        .add("sck.readings", 0, 2, 1, t0 + PAUSE_AFTER);
    let commit = f.inserted(&first, |_, _| true);
    assert_eq!(commit.offsets, vec![("sck.readings".to_string(), 0, 1)]);
    let actions = f.step(t0 + ms(30_000), 0);
    assert!(
        matches!(&actions[..], [Action::Flush(b), Action::Resume] if b.rows == 11 && b.offsets[&("sck.readings".to_string(), 0)] == 3),
        "{actions:?}"
    );
    f.set_paused(false);
    assert_eq!(
        f.wait(),
        Wait {
            insert: true,
            records: true,
            wake_at: None
        }
    );
    assert_eq!(
        f.step(t0 + ms(30_000) + PAUSE_AFTER, 0),
        vec![],
        "the new insert is slow but the buffer is empty: no pause"
    );
}

/// Runs the drain to its end: `inserts` says how each awaited or flushed insert ends (true:
/// inserted), the generation moves to `generation` when the drain starts. Returns the steps as
/// words and whether it completed.
fn drain(f: &mut Flow<Fake>, generation: u64, inserts: &[bool], t: Instant) -> (Vec<String>, bool) {
    f.stop();
    let mut inserts = inserts.iter();
    let mut steps = Vec::new();
    let mut inflight: Option<Fake> = None;
    loop {
        let step = f.drain_next(t, generation);
        let outcome = |f: &mut Flow<Fake>, batch: Fake, ok: bool, steps: &mut Vec<String>| {
            if ok {
                let c = f.inserted(&batch, |_, _| true);
                assert_eq!(c.mode, CommitMode::Sync, "the drain commits synchronously");
                steps.push(format!("commit {}", c.offsets.len()));
            } else {
                f.insert_failed();
                steps.push("failed".to_string());
            }
        };
        match step {
            DrainStep::AwaitInsert => {
                steps.push("await".to_string());
                let ok = *inserts.next().expect("an outcome for the insert in flight");
                outcome(f, inflight.take().unwrap_or_default(), ok, &mut steps);
            }
            DrainStep::Discard(b) => steps.push(format!("discard {}", b.messages)),
            DrainStep::Flush(b) => {
                steps.push(format!("flush {}", b.rows));
                let ok = *inserts.next().expect("an outcome for the flush");
                outcome(f, b, ok, &mut steps);
            }
            DrainStep::Done { complete } => {
                assert!(inserts.next().is_none(), "unused insert outcomes");
                return (steps, complete);
            }
        }
        assert!(steps.len() < 20, "the drain does not end: {steps:?}");
    }
}

#[test]
fn sigterm_drains_in_order_and_never_commits_past_an_unfinished_insert() {
    struct Case {
        name: &'static str,
        given: Given,
        generation: u64,
        inserts: &'static [bool],
        steps: &'static [&'static str],
        complete: bool,
    }
    let cases = [
        Case {
            name: "nothing buffered: done at once",
            given: EMPTY,
            generation: 0,
            inserts: &[],
            steps: &[],
            complete: true,
        },
        Case {
            name: "full batch: flush, commit, done",
            given: Given {
                messages: 1,
                rows: 10,
                ..EMPTY
            },
            generation: 0,
            inserts: &[true],
            steps: &["flush 10", "commit 1"],
            complete: true,
        },
        Case {
            name: "young batch, neither full nor due: flushed all the same",
            given: Given {
                messages: 2,
                rows: 1,
                ..EMPTY
            },
            generation: 0,
            inserts: &[true],
            steps: &["flush 1", "commit 1"],
            complete: true,
        },
        Case {
            name: "insert in flight and a full batch: await, commit, flush, commit",
            given: Given {
                messages: 1,
                rows: 10,
                insert_at: Some(0),
                paused: true,
            },
            generation: 0,
            inserts: &[true, true],
            steps: &["await", "commit 0", "flush 10", "commit 1"],
            complete: true,
        },
        Case {
            name: "the insert in flight fails or times out: the buffered batch is not flushed",
            given: Given {
                messages: 1,
                rows: 10,
                insert_at: Some(0),
                paused: false,
            },
            generation: 0,
            inserts: &[false],
            steps: &["await", "failed"],
            complete: false,
        },
        Case {
            name: "the final flush times out: incomplete",
            given: Given {
                messages: 3,
                rows: 4,
                ..EMPTY
            },
            generation: 0,
            inserts: &[false],
            steps: &["flush 4", "failed"],
            complete: false,
        },
        Case {
            name: "a revocation before the drain: the buffered batch is discarded, not flushed",
            given: Given {
                messages: 3,
                rows: 4,
                insert_at: Some(0),
                paused: false,
            },
            generation: 1,
            inserts: &[true],
            steps: &["await", "commit 0", "discard 3"],
            complete: true,
        },
    ];
    let t0 = Instant::now();
    for c in cases {
        let mut f = flow(c.given, t0);
        let (steps, complete) = drain(&mut f, c.generation, c.inserts, t0);
        assert_eq!(steps, c.steps, "{}", c.name);
        assert_eq!(complete, c.complete, "{}", c.name);
        assert_eq!(
            f.drain_next(t0, c.generation),
            DrainStep::Done {
                complete: c.complete
            },
            "{}: done stays done",
            c.name
        );
    }
}
