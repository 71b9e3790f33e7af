//! The loop's async shell: reads the clock and the assignment generation, asks the [`Flow`]
//! what to do, and does it with the consumer (poll, pause, resume, commit), the ClickHouse sink
//! and the dead-letter writer. The decisions, and the reasons for them, are in [`super::flow`].
//!
//! One batch is being inserted (a spawned task) while the next one fills. A flush resolves
//! only once the rows are inserted and the dead letters acknowledged; only then does the flow
//! hand out the offsets to commit.
//!
//! With a device registry, each record's token is resolved before it is added: from the cache,
//! or (a token seen for the first time) by a query awaited here, bounded by
//! `REGISTRY_QUERY_TIMEOUT_MS`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{CommitMode as KafkaCommitMode, Consumer};
use rdkafka::message::BorrowedMessage;
use rdkafka::{Offset, TopicPartitionList};
use sck_core::registry::Device;
use sck_runtime::clock::now_ms;
use sck_runtime::log_limit::LogLimiter;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::flow::{Action, Commit, CommitMode, DrainStep, Flow};
use super::record::RecordDecoder;
use crate::batch::Batch;
use crate::config::BatchLimits;
use crate::kafka::{self, Assignment, DeadLetterWriter, DecoderConsumer};
use crate::metrics::Metrics;
use crate::platform::writer::{PlatformBatch, PlatformWriter};
use crate::platform::{Registry, Resolved};
use crate::sink::Sink;

/// A record's device without a registry.
const NO_REGISTRY: Resolved = Resolved::Device(Device { id: 0 });

pub struct Pipeline {
    pub consumer: Arc<DecoderConsumer>,
    pub assignment: Arc<Assignment>,
    pub sink: Arc<Sink>,
    pub dead_letters: Arc<DeadLetterWriter>,
    pub metrics: Metrics,
    pub limits: BatchLimits,
    pub max_future_secs: i64,
    pub dlq_topic: String,
    pub drain_timeout: Duration,
    /// The device registry; `None`: every device is 0.
    pub registry: Option<Arc<Registry>>,
    /// The platform's latest state and handshake, written after each insert; `None`: not.
    pub platform: Option<Arc<PlatformWriter>>,
}

/// The loop's state: the flow, the insert task it has in flight, the record decoder.
struct Work {
    flow: Flow<Batch>,
    insert: Option<JoinHandle<Batch>>,
    records: RecordDecoder,
    consume_warnings: LogLimiter,
    /// The version of the registry's sensor keys `records` has.
    sensor_keys_version: u64,
}

impl Pipeline {
    pub async fn run(self, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
        let mut w = Work {
            flow: Flow::new(self.limits, self.assignment.generation()),
            insert: None,
            records: RecordDecoder::new(
                self.metrics.clone(),
                self.dlq_topic.clone(),
                self.max_future_secs,
            ),
            consume_warnings: LogLimiter::new(Duration::from_secs(5)),
            sensor_keys_version: 0,
        };
        loop {
            if let Some(keys) = self
                .registry
                .as_ref()
                .and_then(|r| r.sensor_keys_since(&mut w.sensor_keys_version))
            {
                w.records.set_sensor_keys(keys);
            }
            for action in w.flow.step(Instant::now(), self.assignment.generation()) {
                self.perform(&mut w, action);
            }
            self.metrics
                .buffered_rows
                .set(w.flow.buffered_rows() as i64);
            // The flow's flag: 0 again after a rebalance reset it (the gauge used to stay at 1).
            self.metrics.paused.set(w.flow.is_paused() as i64);
            let wait = w.flow.wait();
            tokio::select! {
                _ = stop.changed() => break,
                done = async { w.insert.as_mut().expect("the flow has an insert in flight").await },
                    if wait.insert =>
                {
                    w.insert = None;
                    match done {
                        Ok(batch) => self.committed(&mut w.flow, &batch),
                        Err(e) => anyhow::bail!("insert task failed: {e}"),
                    }
                }
                msg = self.consumer.recv(), if wait.records => {
                    if let Some(batch) = w.flow.polled(self.assignment.generation()) {
                        self.discarded(&batch);
                    }
                    match msg {
                        Ok(m) => {
                            let device = self.device_of(&w.records, &m).await;
                            w.records.add(w.flow.current_mut(), &m, device);
                        }
                        Err(e) => {
                            if let Some(suppressed) = w.consume_warnings.allow() {
                                tracing::warn!(error = %e, suppressed, "Kafka consume error");
                            }
                        }
                    }
                }
                _ = tokio::time::sleep_until(wait.wake_at.unwrap_or_else(Instant::now).into()),
                    if wait.wake_at.is_some() => {}
            }
        }
        self.drain(w).await;
        Ok(())
    }

    fn perform(&self, w: &mut Work, action: Action<Batch>) {
        match action {
            Action::Discard(batch) => self.discarded(&batch),
            Action::Flush(batch) => w.insert = Some(tokio::spawn(self.flush(batch))),
            Action::Pause => {
                if self.pause_or_resume(true) {
                    w.flow.set_paused(true);
                }
            }
            Action::Resume => {
                if self.pause_or_resume(false) {
                    w.flow.set_paused(false);
                }
            }
        }
    }

    /// The device of a record's token (see [`RecordDecoder::device_token`]).
    async fn device_of(&self, records: &RecordDecoder, m: &BorrowedMessage<'_>) -> Resolved {
        let Some(registry) = &self.registry else {
            return NO_REGISTRY;
        };
        match records.device_token(m) {
            Some(token) => registry.resolve(token).await,
            None => NO_REGISTRY,
        }
    }

    fn discarded(&self, batch: &Batch) {
        tracing::info!(
            messages = batch.messages,
            "rebalance: discarding the uninserted batch; its records will be consumed again"
        );
        self.metrics.batches_discarded.inc();
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
            Ok(()) => {
                if pause {
                    tracing::info!(
                        "insert slow and buffer full: pausing partitions until it completes"
                    );
                } else {
                    tracing::info!("resuming partitions");
                }
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot pause/resume partitions");
                false
            }
        }
    }

    /// Inserts a batch and writes its dead letters; resolves when both are durable.
    fn flush(&self, batch: Batch) -> impl std::future::Future<Output = Batch> + Send + 'static {
        let (sink, dlq, metrics, platform) = (
            self.sink.clone(),
            self.dead_letters.clone(),
            self.metrics.clone(),
            self.platform.clone(),
        );
        async move {
            sink.write(&batch).await;
            dlq.write_all(&batch.dead_letters).await;
            // After the rows are in ClickHouse, before the offsets are committed.
            if let Some(platform) = platform {
                platform.write_until_done(&PlatformBatch::of(&batch)).await;
            }
            metrics.batch_rows.observe(batch.rows() as f64);
            let now_ms = now_ms();
            for r in &batch.received_ms {
                metrics
                    .end_to_end_seconds
                    .observe((now_ms - r).max(0) as f64 / 1000.0);
            }
            batch
        }
    }

    /// Commits what the flow hands out for an inserted batch.
    fn committed(&self, flow: &mut Flow<Batch>, batch: &Batch) {
        let commit = flow.inserted(batch, |t, p| self.assignment.owns(t, p));
        self.commit(&commit);
    }

    fn commit(&self, commit: &Commit) {
        for (topic, partition) in &commit.not_owned {
            tracing::debug!(
                topic,
                partition,
                "not committing a partition no longer owned"
            );
        }
        let mut tpl = TopicPartitionList::new();
        for (topic, partition, next) in &commit.offsets {
            if let Err(e) = tpl.add_partition_offset(topic, *partition, Offset::Offset(*next)) {
                tracing::warn!(error = %e, "cannot build the commit list");
            }
        }
        if tpl.count() == 0 {
            return;
        }
        let mode = match commit.mode {
            CommitMode::Async => KafkaCommitMode::Async,
            CommitMode::Sync => KafkaCommitMode::Sync,
        };
        if let Err(e) = self.consumer.commit(&tpl, mode) {
            self.metrics.commit_errors.inc();
            tracing::warn!(error = %e, "offset commit failed (records will be consumed again)");
        }
    }

    /// SIGTERM: finish the insert in flight, insert what is buffered, commit, leave the group.
    async fn drain(self, mut w: Work) {
        let deadline = tokio::time::Instant::now() + self.drain_timeout;
        tracing::info!(
            buffered = w.flow.current().messages,
            inflight = w.flow.insert_in_flight(),
            "draining: inserting and committing what was consumed"
        );
        w.flow.stop();
        loop {
            match w
                .flow
                .drain_next(Instant::now(), self.assignment.generation())
            {
                DrainStep::AwaitInsert => {
                    let task = w.insert.take().expect("the flow has an insert in flight");
                    match tokio::time::timeout_at(deadline, task).await {
                        Ok(Ok(batch)) => self.committed(&mut w.flow, &batch),
                        _ => w.flow.insert_failed(),
                    }
                }
                DrainStep::Discard(batch) => self.discarded(&batch),
                DrainStep::Flush(batch) => {
                    match tokio::time::timeout_at(deadline, self.flush(batch)).await {
                        Ok(batch) => self.committed(&mut w.flow, &batch),
                        Err(_) => w.flow.insert_failed(),
                    }
                }
                DrainStep::Done { complete } => {
                    if !complete {
                        tracing::warn!(
                            "drain timed out: the rest stays uncommitted and will be consumed again"
                        );
                    }
                    break;
                }
            }
        }
        let consumer = self.consumer.clone();
        drop(self);
        kafka::leave_group(consumer).await;
    }
}
