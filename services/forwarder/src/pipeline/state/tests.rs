//! The rules of [`super`], one test each (or close): what is published when, what is committed,
//! what a failure and a full device do.

use std::time::{Duration, Instant};

use super::*;

const LIMITS: Limits = Limits {
    device_queue: 3,
    max_attempts: 3,
    retry: Backoff {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(8),
    },
};

fn key(partition: i32, offset: i64) -> RecordKey {
    RecordKey { partition, offset }
}

fn job(partition: i32, offset: i64, device_id: i32, messages: usize) -> Job {
    Job {
        record: key(partition, offset),
        device_id,
        topic: format!("/forward/t/device/{device_id}/readings"),
        messages: (0..messages)
            .map(|i| format!("{offset}.{i}").into_bytes())
            .collect(),
        original: Original {
            payload: format!("record {offset}").into_bytes(),
            ..Original::default()
        },
        received_at_ms: 1_000 + offset,
    }
}

/// The publishes among `actions`, as (device, offset, message index).
fn publishes(actions: &[Action]) -> Vec<(i32, i64, usize)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Publish { id, .. } => Some((id.device_id, id.record.offset, id.index)),
            Action::DeadLetter(_) => None,
        })
        .collect()
}

fn dead_letters(actions: &[Action]) -> Vec<(i64, &'static str)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::DeadLetter(d) => Some((d.record.offset, d.reason)),
            Action::Publish { .. } => None,
        })
        .collect()
}

fn ids(actions: &[Action]) -> Vec<MsgId> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Publish { id, .. } => Some(*id),
            Action::DeadLetter(_) => None,
        })
        .collect()
}

#[test]
fn records_with_nothing_to_forward_are_committed_at_once_a_pending_job_holds_the_commit() {
    let now = Instant::now();
    let mut s = State::new(0, LIMITS, false);
    s.skip(key(0, 10));
    s.skip(key(0, 11));
    assert_eq!(s.commits(), [(0, 12)]);
    assert_eq!(s.commits(), [], "only offsets that moved");
    s.add(job(0, 12, 7, 1));
    s.skip(key(0, 13));
    s.skip(key(1, 0));
    assert_eq!(s.commits(), [(1, 1)], "partition 0 waits for offset 12");
    assert_eq!(s.held(), 1);
    let a = s.poll(now);
    assert_eq!(publishes(&a), [(7, 12, 0)]);
    let p = s.published(ids(&a)[0], Outcome::Acked, now, 0.0);
    assert_eq!(
        p,
        Progress::Forwarded {
            received_at_ms: 1_012
        }
    );
    assert_eq!(s.commits(), [(0, 14)]);
    assert_eq!(s.held(), 0);
    assert_eq!(s.all_commits(), [(0, 14), (1, 1)]);
}

#[test]
fn a_job_is_done_only_when_every_message_is_acknowledged() {
    let now = Instant::now();
    let mut s = State::new(0, LIMITS, false);
    s.add(job(0, 0, 7, 3));
    let a = s.poll(now);
    assert_eq!(publishes(&a), [(7, 0, 0), (7, 0, 1), (7, 0, 2)]);
    let id = ids(&a);
    assert_eq!(
        s.published(id[0], Outcome::Acked, now, 0.0),
        Progress::Pending
    );
    assert_eq!(
        s.published(id[0], Outcome::Acked, now, 0.0),
        Progress::Ignored,
        "twice"
    );
    assert_eq!(
        s.published(id[2], Outcome::Acked, now, 0.0),
        Progress::Pending
    );
    assert_eq!(
        s.commits(),
        [],
        "nothing committed past a job half acknowledged"
    );
    assert!(matches!(
        s.published(id[1], Outcome::Acked, now, 0.0),
        Progress::Forwarded { .. }
    ));
    assert_eq!(s.commits(), [(0, 1)]);
}

#[test]
fn the_gate_holds_jobs_until_the_decoder_committed_past_them() {
    let now = Instant::now();
    let mut s = State::new(0, LIMITS, true);
    s.add(job(0, 5, 1, 1));
    s.add(job(0, 6, 2, 1));
    s.skip(key(0, 7));
    s.add(job(1, 3, 3, 1));
    assert!(s.poll(now).is_empty(), "nothing before the decoder commits");
    assert_eq!((s.gated(), s.held()), (3, 3));
    s.open_gate(0, 6);
    assert_eq!(
        publishes(&s.poll(now)),
        [(1, 5, 0)],
        "offset 5 is stored, 6 not yet"
    );
    s.open_gate(0, 5);
    assert!(s.poll(now).is_empty(), "a gate never moves back");
    s.open_gate(0, 100);
    assert_eq!(publishes(&s.poll(now)), [(2, 6, 0)]);
    assert_eq!(s.gated(), 1, "partition 1 has its own gate");
    s.add(job(0, 8, 4, 1));
    assert_eq!(
        publishes(&s.poll(now)),
        [(4, 8, 0)],
        "past the gate: published without waiting for the next poll of the decoder's offsets"
    );
}

#[test]
fn a_device_publishes_in_order_one_job_at_a_time_others_do_not_wait() {
    let now = Instant::now();
    let mut s = State::new(0, LIMITS, false);
    s.add(job(0, 0, 1, 1));
    s.add(job(0, 1, 1, 1));
    s.add(job(0, 2, 2, 1));
    let a = s.poll(now);
    assert_eq!(publishes(&a), [(1, 0, 0), (2, 2, 0)]);
    assert!(
        s.poll(now).is_empty(),
        "device 1's second job waits for its first"
    );
    let id = ids(&a);
    assert!(matches!(
        s.published(id[1], Outcome::Acked, now, 0.0),
        Progress::Forwarded { .. }
    ));
    assert!(s.poll(now).is_empty());
    s.published(id[0], Outcome::Acked, now, 0.0);
    assert_eq!(publishes(&s.poll(now)), [(1, 1, 0)]);
}

#[test]
fn a_failing_device_retries_with_backoff_then_dead_letters_while_others_go_on() {
    let t0 = Instant::now();
    let mut s = State::new(0, LIMITS, false);
    s.add(job(0, 0, 1, 2));
    s.add(job(0, 1, 1, 1));
    let a = s.poll(t0);
    let id = ids(&a);
    // Attempt 1: one message acknowledged, the other refused.
    s.published(id[0], Outcome::Acked, t0, 0.0);
    let p = s.published(id[1], Outcome::Failed("not_authorized"), t0, 1.0);
    assert_eq!(
        p,
        Progress::Retrying {
            attempt: 1,
            at: t0 + Duration::from_secs(1)
        }
    );
    assert_eq!(s.next_retry(), Some(t0 + Duration::from_secs(1)));
    // Meanwhile another device is not held up.
    s.add(job(1, 0, 2, 1));
    assert_eq!(publishes(&s.poll(t0)), [(2, 0, 0)]);
    assert!(
        publishes(&s.poll(t0 + Duration::from_millis(999))).is_empty(),
        "not before the backoff"
    );
    // Attempt 2: only the message not yet acknowledged is published again.
    let t1 = t0 + Duration::from_secs(1);
    let a = s.poll(t1);
    assert_eq!(publishes(&a), [(1, 0, 1)]);
    let p = s.published(ids(&a)[0], Outcome::Failed("connection_lost"), t1, 1.0);
    assert_eq!(
        p,
        Progress::Retrying {
            attempt: 2,
            at: t1 + Duration::from_secs(2)
        },
        "the delay doubles"
    );
    // Attempt 3, the last: dead letter, and the device's next job goes out.
    let t2 = t1 + Duration::from_secs(2);
    let a = s.poll(t2);
    let p = s.published(ids(&a)[0], Outcome::Failed("not_authorized"), t2, 1.0);
    assert_eq!(p, Progress::DeadLettered);
    let a = s.poll(t2);
    assert_eq!(dead_letters(&a), [(0, REASON_FAILED)]);
    assert_eq!(publishes(&a), [(1, 1, 0)]);
    let Some(Action::DeadLetter(d)) = a.iter().find(|a| matches!(a, Action::DeadLetter(_))) else {
        panic!("no dead letter in {a:?}");
    };
    assert_eq!(d.message, "3 attempts failed, the last: not_authorized");
    assert_eq!(d.original.payload, b"record 0");
    assert_eq!(
        s.all_commits(),
        [(0, 0), (1, 0)],
        "offset 0 stays until its dead letter is in Kafka"
    );
    s.dead_lettered(0, key(0, 0));
    assert_eq!(
        s.all_commits(),
        [(0, 1), (1, 0)],
        "then offset 1 (in flight) holds it"
    );
}

#[test]
fn a_full_device_gets_its_next_record_dead_lettered_at_once() {
    let now = Instant::now();
    let mut s = State::new(0, LIMITS, false);
    for offset in 0..4 {
        s.add(job(0, offset, 1, 1));
    }
    s.add(job(0, 4, 2, 1));
    let a = s.poll(now);
    assert_eq!(dead_letters(&a), [(3, REASON_QUEUE_FULL)]);
    assert_eq!(publishes(&a), [(1, 0, 0), (2, 4, 0)]);
    assert_eq!(s.held(), 5, "the dead letter is held until Kafka has it");
    s.dead_lettered(0, key(0, 3));
    assert_eq!(s.held(), 4);
}

#[test]
fn outcomes_of_another_epoch_or_an_unknown_message_are_ignored() {
    let now = Instant::now();
    let mut s = State::new(1, LIMITS, false);
    s.add(job(0, 0, 1, 1));
    let id = ids(&s.poll(now))[0];
    let stale = MsgId { epoch: 0, ..id };
    assert_eq!(
        s.published(stale, Outcome::Acked, now, 0.0),
        Progress::Ignored
    );
    let other = MsgId { index: 5, ..id };
    assert_eq!(
        s.published(other, Outcome::Acked, now, 0.0),
        Progress::Ignored
    );
    s.dead_lettered(0, key(0, 0));
    assert_eq!(s.held(), 1);
    assert!(matches!(
        s.published(id, Outcome::Acked, now, 0.0),
        Progress::Forwarded { .. }
    ));
    assert_eq!(s.epoch(), 1);
}
