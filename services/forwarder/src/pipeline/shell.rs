//! The loop's async shell: reads the clock, the assignment generation, the decoder's committed
//! offsets and the MQTT connection state; tells the [`State`] what happened (a record, a PUBACK,
//! a dead letter in Kafka, the gate moving) and performs the [`Action`]s it returns.
//!
//! Around the state's rules it keeps the loop's own:
//! - **Pause** all assigned partitions while MQTT is disconnected or FORWARD_QUEUE_CAPACITY
//!   records are held, and keep polling meanwhile (group membership, rebalances); resume after.
//!   A record that still arrives is taken (what librdkafka had prefetched, bounded), and the
//!   pause is applied again (a partition assigned after the pause is not paused by it).
//! - **Rebalance**: a revocation (the generation moved) drops everything held, uncommitted, and
//!   starts a new epoch; with eager rebalancing every partition is read again from its committed
//!   offset by its owner. This is checked before each turn and after each poll, before the polled
//!   record is added (as in the decoder).
//! - **Commit** every [`COMMIT_INTERVAL`] (asynchronously; a failure is counted and the next one
//!   covers it), only for partitions still owned.
//! - **Drain** on SIGTERM: no more consuming; publishing, retries and dead letters go on until
//!   nothing is held or DRAIN_TIMEOUT_SECS passed; then a synchronous commit of what is done,
//!   the MQTT disconnect, and leaving the group. What was cut off is consumed again.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use sck_core::envelope::{dead_letter_headers_by, Source, DEAD_LETTERED_BY_FORWARDER};
use sck_runtime::log_limit::LogLimiter;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::record::Intake;
use super::state::{Action, DeadLetter, Limits, MsgId, Outcome, Progress, RecordKey, State};
use crate::kafka::gate::Gates;
use crate::kafka::{self, Assignment, DeadLetterRecord, DeadLetterWriter, ForwarderConsumer};
use crate::metrics::Metrics;
use crate::mqtt::{Command, Published};
use crate::registry::Registry;

/// How often the offsets of what is done are committed.
pub const COMMIT_INTERVAL: Duration = Duration::from_secs(1);

pub struct Pipeline {
    pub consumer: Arc<ForwarderConsumer>,
    pub assignment: Arc<Assignment>,
    pub registry: Arc<Registry>,
    pub dead_letters: Arc<DeadLetterWriter>,
    pub metrics: Metrics,
    pub mqtt: mpsc::UnboundedSender<Command<MsgId>>,
    pub outcomes: mpsc::UnboundedReceiver<(MsgId, Published)>,
    pub connected: watch::Receiver<bool>,
    /// The decoder group's committed offsets; `None`: no gate.
    pub gates: Option<watch::Receiver<Gates>>,
    pub limits: Limits,
    pub capacity: usize,
    pub max_future_secs: i64,
    pub readings_topic: String,
    pub drain_timeout: Duration,
}

/// The loop's state besides the configuration.
struct Work {
    state: State,
    generation: u64,
    paused: bool,
    intake: Intake,
    dead_lettered: mpsc::UnboundedSender<(u64, RecordKey)>,
    warnings: LogLimiter,
}

impl Pipeline {
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
        let (dl_tx, mut dl_rx) = mpsc::unbounded_channel();
        let mut w = Work {
            state: State::new(0, self.limits, self.gates.is_some()),
            generation: self.assignment.generation(),
            paused: false,
            intake: Intake::new(
                self.registry.clone(),
                self.metrics.clone(),
                self.max_future_secs,
            ),
            dead_lettered: dl_tx,
            warnings: LogLimiter::new(Duration::from_secs(5)),
        };
        let mut draining: Option<Instant> = None;
        let mut next_commit = Instant::now() + COMMIT_INTERVAL;
        loop {
            self.observe(&mut w);
            self.open_gates(&mut w);
            let now = Instant::now();
            for action in w.state.poll(now.into_std()) {
                self.perform(&w, action);
            }
            if now >= next_commit {
                let commits = w.state.commits();
                self.commit(&commits, CommitMode::Async);
                next_commit = now + COMMIT_INTERVAL;
            }
            self.metrics.queued.set(w.state.held() as i64);
            self.metrics.gated.set(w.state.gated() as i64);
            if let Some(deadline) = draining {
                if w.state.held() == 0 || now >= deadline {
                    break;
                }
            }
            let blocked = w.state.held() >= self.capacity || !*self.connected.borrow();
            if draining.is_none() && blocked != w.paused && self.pause_or_resume(blocked) {
                w.paused = blocked;
                self.metrics.paused.set(blocked as i64);
                if blocked {
                    tracing::info!(
                        held = w.state.held(),
                        mqtt_connected = *self.connected.borrow(),
                        "pausing consumption (MQTT disconnected, or FORWARD_QUEUE_CAPACITY held)"
                    );
                } else {
                    tracing::info!("resuming consumption");
                }
            }
            let wake = [
                Some(next_commit),
                w.state.next_retry().map(Instant::from_std),
                draining,
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(next_commit);
            let take = draining.is_none() && (!blocked || w.paused);
            tokio::select! {
                _ = stop.changed(), if draining.is_none() => {
                    tracing::info!(held = w.state.held(), "draining: forwarding what was consumed");
                    draining = Some(Instant::now() + self.drain_timeout);
                }
                msg = self.consumer.recv(), if take => {
                    self.observe(&mut w);
                    // A record while paused: a partition assigned since the pause (pausing
                    // applies to the partitions assigned then) is paused too.
                    if w.paused {
                        self.pause_or_resume(true);
                    }
                    match msg {
                        Ok(m) => w.intake.take(&mut w.state, &m).await,
                        Err(e) => {
                            if let Some(suppressed) = w.warnings.allow() {
                                tracing::warn!(error = %e, suppressed, "Kafka consume error");
                            }
                        }
                    }
                }
                Some((id, result)) = self.outcomes.recv() => self.published(&mut w, id, result),
                Some((epoch, record)) = dl_rx.recv() => w.state.dead_lettered(epoch, record),
                _ = changed(&mut self.connected) => {}
                _ = gates_changed(&mut self.gates) => {}
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
        if w.state.held() > 0 {
            tracing::warn!(
                held = w.state.held(),
                "drain timeout: records not yet forwarded stay uncommitted and will be consumed again"
            );
        }
        self.commit(&w.state.all_commits(), CommitMode::Sync);
        let _ = self.mqtt.send(Command::Disconnect);
        let consumer = self.consumer.clone();
        drop(self);
        kafka::leave_group(consumer).await;
        Ok(())
    }

    /// A revocation since the last look: drop everything held, start a new epoch.
    fn observe(&self, w: &mut Work) {
        let generation = self.assignment.generation();
        if generation == w.generation {
            return;
        }
        w.generation = generation;
        let held = w.state.held();
        if held > 0 {
            tracing::info!(
                held,
                "rebalance: dropping the records held uncommitted; they will be consumed again"
            );
        }
        w.state = State::new(w.state.epoch() + 1, self.limits, self.gates.is_some());
        // The gates are applied to the new state at the next turn (every turn applies them).
        w.paused = false;
    }

    fn open_gates(&mut self, w: &mut Work) {
        if let Some(g) = &mut self.gates {
            let gates = g.borrow_and_update().clone();
            for (partition, committed) in gates {
                w.state.open_gate(partition, committed);
            }
        }
    }

    fn perform(&self, w: &Work, action: Action) {
        match action {
            Action::Publish { id, topic, payload } => {
                let _ = self.mqtt.send(Command::Publish { id, topic, payload });
            }
            Action::DeadLetter(d) => self.dead_letter(w, d),
        }
    }

    fn dead_letter(&self, w: &Work, d: DeadLetter) {
        let source = Source {
            topic: &self.readings_topic,
            partition: d.record.partition,
            offset: d.record.offset,
        };
        if let Some(suppressed) = w.warnings.allow() {
            tracing::warn!(
                partition = d.record.partition, offset = d.record.offset, reason = d.reason,
                error = %d.message, suppressed, "dead-lettering a record not forwarded"
            );
        }
        let headers = dead_letter_headers_by(
            d.original
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), Some(v.as_slice()))),
            d.reason,
            &d.message,
            source,
            DEAD_LETTERED_BY_FORWARDER,
        );
        let record = DeadLetterRecord {
            key: d.original.key,
            payload: d.original.payload,
            headers,
            reason: d.reason,
        };
        let (writer, done) = (self.dead_letters.clone(), w.dead_lettered.clone());
        let (epoch, key) = (d.epoch, d.record);
        tokio::spawn(async move {
            writer.write(&record).await;
            let _ = done.send((epoch, key));
        });
    }

    fn published(&self, w: &mut Work, id: MsgId, result: Published) {
        let outcome = match result {
            Published::Acked => {
                self.metrics.forwarded.inc();
                Outcome::Acked
            }
            Published::Failed(reason) => {
                self.metrics.failed.with_label_values(&[reason]).inc();
                Outcome::Failed(reason)
            }
        };
        let now = std::time::Instant::now();
        match w.state.published(id, outcome, now, fastrand::f64()) {
            Progress::Forwarded { received_at_ms } if received_at_ms > 0 => {
                let ms = sck_runtime::clock::now_ms() - received_at_ms;
                self.metrics.latency.observe(ms.max(0) as f64 / 1000.0);
            }
            Progress::Retrying { attempt, at } => {
                if let Some(suppressed) = w.warnings.allow() {
                    tracing::warn!(
                        device_id = id.device_id,
                        attempt,
                        suppressed,
                        retry_in_ms = at.saturating_duration_since(now).as_millis() as u64,
                        "forwarding failed; retrying"
                    );
                }
            }
            _ => {}
        }
    }

    /// Pauses (or resumes) every assigned partition; true when done.
    fn pause_or_resume(&self, pause: bool) -> bool {
        let result = self.consumer.assignment().and_then(|tpl| {
            if pause {
                self.consumer.pause(&tpl)
            } else {
                self.consumer.resume(&tpl)
            }
        });
        match result {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "cannot pause/resume partitions");
                false
            }
        }
    }

    fn commit(&self, offsets: &[(i32, i64)], mode: CommitMode) {
        let mut tpl = TopicPartitionList::new();
        for (partition, next) in offsets {
            if !self.assignment.owns(&self.readings_topic, *partition) {
                continue;
            }
            if let Err(e) =
                tpl.add_partition_offset(&self.readings_topic, *partition, Offset::Offset(*next))
            {
                tracing::warn!(error = %e, "cannot build the commit list");
            }
        }
        if tpl.count() == 0 {
            return;
        }
        if let Err(e) = self.consumer.commit(&tpl, mode) {
            self.metrics.commit_errors.inc();
            tracing::warn!(error = %e, "offset commit failed (records will be consumed again)");
        }
    }
}

/// Resolves when the watched value changes; never, once its sender is gone.
async fn changed<T>(rx: &mut watch::Receiver<T>) {
    if rx.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn gates_changed(rx: &mut Option<watch::Receiver<Gates>>) {
    match rx {
        Some(rx) => changed(rx).await,
        None => std::future::pending().await,
    }
}
