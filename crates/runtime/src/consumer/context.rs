//! The consumer's librdkafka context: the rebalance callbacks keep the [`Assignment`] (the
//! generation moves *before* revoked partitions are handed to another member), failed async
//! commits are counted, and librdkafka's statistics feed the consumer-lag gauge of the
//! partitions owned (the autoscaler's signal).

use std::sync::Arc;

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
use rdkafka::statistics::Statistics;
use rdkafka::TopicPartitionList;

use super::Assignment;
use prometheus::{IntCounter, IntGaugeVec};

pub struct Ctx {
    pub assignment: Arc<Assignment>,
    /// The service's consumer-lag gauge (labels `topic`, `partition`).
    pub consumer_lag: IntGaugeVec,
    /// The service's failed-commit counter.
    pub commit_errors: IntCounter,
}

impl ClientContext for Ctx {
    fn stats(&self, stats: Statistics) {
        let owned = self.assignment.owned();
        self.consumer_lag.reset();
        for (topic, t) in &stats.topics {
            for (partition, p) in &t.partitions {
                if !owned.contains(&(topic.clone(), *partition)) {
                    continue;
                }
                self.consumer_lag
                    .with_label_values(&[topic.as_str(), &partition.to_string()])
                    .set(lag(p.hi_offset, p.committed_offset, p.lo_offset));
            }
        }
    }
}

/// Records between the committed offset (or the log start, when nothing is committed) and the
/// high watermark, clamped at 0 (brokers such as tansu may under-report the watermark).
pub fn lag(hi: i64, committed: i64, lo: i64) -> i64 {
    if hi < 0 {
        return 0;
    }
    let from = if committed >= 0 { committed } else { lo.max(0) };
    (hi - from).max(0)
}

fn elements(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

impl ConsumerContext for Ctx {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            self.assignment.revoke(elements(tpl));
            tracing::info!(partitions = tpl.count(), "partitions revoked");
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let partitions = elements(tpl);
                let list: Vec<String> = partitions
                    .iter()
                    .map(|(topic, partition)| format!("{topic}/{partition}"))
                    .collect();
                self.assignment.assign(partitions);
                tracing::info!(partitions = ?list, "partitions assigned");
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(e) = result {
            self.commit_errors.inc();
            tracing::warn!(error = %e, "offset commit failed (the next commit covers it)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_from_the_committed_offset_and_never_negative() {
        assert_eq!(lag(100, 40, 0), 60);
        assert_eq!(
            lag(100, -1001, 10),
            90,
            "nothing committed: from the log start"
        );
        assert_eq!(lag(100, 120, 0), 0, "under-reported watermark clamps at 0");
        assert_eq!(lag(-1, 5, 0), 0, "unknown watermark");
    }
}
