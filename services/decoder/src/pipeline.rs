//! The decoder's main loop: consume → decode → batch → insert → commit.
//!
//! One batch is being inserted (a spawned task) while the next one fills, so decoding and
//! inserting overlap. When the next batch is full too, the loop stops taking records and waits
//! for the insert (librdkafka prefetches a bounded amount meanwhile). If the insert takes longer
//! than [`PAUSE_AFTER`] (ClickHouse slow or down), the assigned partitions are paused and the
//! loop polls again, so the group membership stays alive (`max.poll.interval.ms`): memory stays
//! bounded however long ClickHouse is away, and nothing is committed meanwhile.
//!
//! Offsets are committed only for a batch whose rows are all inserted and whose dead-letter
//! records Kafka has acknowledged, and only for partitions this consumer still owns. A
//! rebalance that revokes partitions discards the batch still being filled (uninserted and
//! uncommitted: the new owner consumes those records again).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use sck_core::decode::{Decoder, Outcome};
use sck_core::envelope::{bridge_reason, dead_letter_headers, RecordHeaders, Source};
use sck_core::reading::{Decoded, Limits};
use sck_runtime::clock::{now_ms, now_secs};
use sck_runtime::log_limit::LogLimiter;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::batch::{Batch, DeadLetter, RecordMeta};
use crate::config::BatchLimits;
use crate::kafka::{Assignment, DeadLetterWriter, DecoderConsumer};
use crate::metrics::{Metrics, KIND_DEAD_LETTER, KIND_UNKNOWN};
use crate::sink::Sink;

/// How long a full buffer waits on a slow insert before partitions are paused.
pub const PAUSE_AFTER: Duration = Duration::from_secs(5);

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
}

/// Per-loop decoding state (reused buffers).
struct Work {
    decoder: Decoder,
    decoded: Decoded,
    current: Batch,
    /// The assignment generation `current` was filled under.
    generation: u64,
    /// The batch being inserted: its task, rows and start.
    inflight: Option<(JoinHandle<Batch>, usize, Instant)>,
    paused: bool,
    consume_warnings: LogLimiter,
}

impl Pipeline {
    pub async fn run(self, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
        let mut w = Work {
            decoder: Decoder::default(),
            decoded: Decoded::default(),
            current: Batch::default(),
            generation: self.assignment.generation(),
            inflight: None,
            paused: false,
            consume_warnings: LogLimiter::new(Duration::from_secs(5)),
        };
        loop {
            self.check_generation(&mut w);
            let due = !w.current.is_empty()
                && (w.current.is_full(&self.limits)
                    || w.current
                        .deadline(&self.limits)
                        .is_some_and(|d| d <= Instant::now()));
            if due && w.inflight.is_none() {
                let batch = std::mem::take(&mut w.current);
                let rows = batch.rows();
                w.inflight = Some((tokio::spawn(self.flush(batch)), rows, Instant::now()));
            }
            self.set_paused(&mut w);
            self.metrics
                .buffered_rows
                .set((w.current.rows() + w.inflight.as_ref().map_or(0, |f| f.1)) as i64);
            let deadline = w.current.deadline(&self.limits);
            let blocked = w.inflight.is_some() && w.current.is_full(&self.limits);
            let pause_at = w.inflight.as_ref().map(|f| f.2 + PAUSE_AFTER);
            tokio::select! {
                _ = stop.changed() => break,
                done = async { w.inflight.as_mut().map(|f| &mut f.0).expect("guarded").await },
                    if w.inflight.is_some() =>
                {
                    w.inflight = None;
                    match done {
                        Ok(batch) => self.commit(&batch, CommitMode::Async),
                        Err(e) => anyhow::bail!("insert task failed: {e}"),
                    }
                }
                msg = self.consumer.recv(), if !blocked || w.paused => {
                    self.check_generation(&mut w);
                    match msg {
                        Ok(m) => self.handle(&mut w, &m),
                        Err(e) => {
                            if let Some(suppressed) = w.consume_warnings.allow() {
                                tracing::warn!(error = %e, suppressed, "Kafka consume error");
                            }
                        }
                    }
                }
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now).into()),
                    if deadline.is_some() && w.inflight.is_none() => {}
                _ = tokio::time::sleep_until(pause_at.unwrap_or_else(Instant::now).into()),
                    if blocked && !w.paused => {}
            }
        }
        self.drain(w).await;
        Ok(())
    }

    /// A revocation happened since `current` started filling: drop it (uninserted, uncommitted).
    fn check_generation(&self, w: &mut Work) {
        let g = self.assignment.generation();
        if g == w.generation {
            return;
        }
        w.generation = g;
        w.paused = false; // a new assignment starts unpaused
        if !w.current.is_empty() {
            tracing::info!(
                messages = w.current.messages,
                "rebalance: discarding the uninserted batch; its records will be consumed again"
            );
            self.metrics.batches_discarded.inc();
            w.current = Batch::default();
        }
    }

    fn set_paused(&self, w: &mut Work) {
        let want = w.current.is_full(&self.limits)
            && w.inflight
                .as_ref()
                .is_some_and(|f| f.2.elapsed() >= PAUSE_AFTER);
        if want == w.paused {
            return;
        }
        let result = self.consumer.assignment().and_then(|tpl| {
            if want {
                self.consumer.pause(&tpl)
            } else {
                self.consumer.resume(&tpl)
            }
        });
        match result {
            Ok(()) => {
                w.paused = want;
                self.metrics.paused.set(want as i64);
                if want {
                    tracing::info!(
                        "insert slow and buffer full: pausing partitions until it completes"
                    );
                } else {
                    tracing::info!("resuming partitions");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot pause/resume partitions"),
        }
    }

    fn handle(&self, w: &mut Work, m: &BorrowedMessage<'_>) {
        let payload = m.payload().unwrap_or_default();
        let headers = RecordHeaders::read(header_pairs(m));
        let source = Source {
            topic: m.topic(),
            partition: m.partition(),
            offset: m.offset(),
        };
        let meta = RecordMeta {
            source,
            mqtt_topic: headers.mqtt_topic.unwrap_or(""),
            received_at_ms: headers
                .received_at_ms
                .or_else(|| m.timestamp().to_millis())
                .unwrap_or(0),
        };
        if m.topic() == self.dlq_topic {
            self.metrics
                .consumed
                .with_label_values(&[KIND_DEAD_LETTER])
                .inc();
            if headers.dead_lettered_by_decoder {
                w.current.add_skipped(meta.source);
            } else {
                let token = m
                    .key()
                    .and_then(|k| std::str::from_utf8(k).ok())
                    .unwrap_or("");
                let reason = bridge_reason(headers.error);
                self.metrics.errors.with_label_values(&[reason]).inc();
                w.current
                    .add_bridge_dead_letter(&meta, token, reason, payload);
            }
            return;
        }
        let limits = Limits {
            now: now_secs(),
            max_future_secs: self.max_future_secs,
        };
        let outcome = w
            .decoder
            .decode(headers.mqtt_topic, payload, &limits, &mut w.decoded);
        let kind = match outcome {
            Outcome::Readings { format, .. } => match format {
                sck_core::reading::Format::Json => "readings",
                sck_core::reading::Format::Raw => "readings_raw",
            },
            Outcome::Hello { .. } => "hello",
            Outcome::Info { .. } => "info",
            Outcome::Inventory => "inventory",
            Outcome::Rejected { kind, .. } => kind.map_or(KIND_UNKNOWN, |k| k.as_str()),
        };
        self.metrics.consumed.with_label_values(&[kind]).inc();
        if w.decoded.dropped_bytes > 0 {
            self.metrics
                .dropped_bytes
                .with_label_values(&[kind])
                .inc_by(w.decoded.dropped_bytes as u64);
        }
        for p in &w.decoded.problems {
            self.metrics
                .errors
                .with_label_values(&[p.kind.as_str()])
                .inc();
        }
        if w.current.add(&meta, &outcome, &w.decoded, payload) {
            let first = &w.decoded.problems[0];
            let headers =
                dead_letter_headers(header_pairs(m), first.kind.as_str(), &first.message, source);
            w.current.dead_letters.push(DeadLetter {
                key: m.key().map(<[u8]>::to_vec),
                payload: payload.to_vec(),
                headers,
                reason: first.kind.as_str(),
            });
        }
    }

    /// Inserts a batch and writes its dead letters; resolves when both are durable.
    fn flush(&self, batch: Batch) -> impl std::future::Future<Output = Batch> + Send + 'static {
        let (sink, dlq, metrics) = (
            self.sink.clone(),
            self.dead_letters.clone(),
            self.metrics.clone(),
        );
        async move {
            sink.write(&batch).await;
            dlq.write_all(&batch.dead_letters).await;
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

    /// Commits the batch's offsets for the partitions this consumer still owns.
    fn commit(&self, batch: &Batch, mode: CommitMode) {
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), next) in &batch.offsets {
            if !self.assignment.owns(topic, *partition) {
                tracing::debug!(
                    topic,
                    partition,
                    "not committing a partition no longer owned"
                );
                continue;
            }
            if let Err(e) = tpl.add_partition_offset(topic, *partition, Offset::Offset(*next)) {
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

    /// SIGTERM: finish the insert in flight, insert what is buffered, commit, leave the group.
    async fn drain(self, mut w: Work) {
        let deadline = tokio::time::Instant::now() + self.drain_timeout;
        tracing::info!(
            buffered = w.current.messages,
            inflight = w.inflight.is_some(),
            "draining: inserting and committing what was consumed"
        );
        let mut complete = true;
        if let Some((task, _, _)) = w.inflight.take() {
            match tokio::time::timeout_at(deadline, task).await {
                Ok(Ok(batch)) => self.commit(&batch, CommitMode::Sync),
                _ => complete = false,
            }
        }
        self.check_generation(&mut w);
        if complete && !w.current.is_empty() {
            let batch = std::mem::take(&mut w.current);
            match tokio::time::timeout_at(deadline, self.flush(batch)).await {
                Ok(batch) => self.commit(&batch, CommitMode::Sync),
                Err(_) => complete = false,
            }
        }
        if !complete {
            tracing::warn!(
                "drain timed out: the rest stays uncommitted and will be consumed again"
            );
        }
        // Dropping the last handle closes the consumer: it leaves the group at once instead of
        // the group waiting for its session to time out. The readiness probe may briefly hold
        // another handle.
        let mut consumer = self.consumer.clone();
        drop(self);
        for _ in 0..100 {
            match Arc::try_unwrap(consumer) {
                Ok(c) => {
                    let _ = tokio::task::spawn_blocking(move || drop(c)).await;
                    tracing::info!("left the consumer group");
                    return;
                }
                Err(c) => consumer = c,
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tracing::warn!("consumer still in use; leaving the group at process exit");
    }
}

/// A consumed record's headers as (name, value) pairs, the form the record contract reads.
fn header_pairs<'m>(
    m: &'m BorrowedMessage<'_>,
) -> impl Iterator<Item = (&'m str, Option<&'m [u8]>)> {
    m.headers()
        .into_iter()
        .flat_map(|hs| hs.iter().map(|h| (h.key, h.value)))
}
