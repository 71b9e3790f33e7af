//! "After they are stored": the decoder commits a partition's offsets only once the ClickHouse
//! insert holding its records succeeded, so a record below the decoder group's committed offset
//! is stored. This module reads those committed offsets (OffsetFetch for FORWARD_AFTER_GROUP,
//! through a consumer that has the decoder's group id but never subscribes, assigns or commits:
//! it neither joins that group nor moves its offsets) for the readings partitions this
//! forwarder owns, every FORWARD_GATE_POLL_MS, and publishes them to the loop, which releases
//! the records below them ([`crate::pipeline::state::State::open_gate`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;

use super::{client_config, Assignment};
use crate::config::Config;

/// Committed offsets of the decoder's group: partition → next offset it reads.
pub type Gates = BTreeMap<i32, i64>;

/// A consumer holding the decoder's group id, for reading its committed offsets only.
pub fn watcher(cfg: &Config, group: &str) -> anyhow::Result<BaseConsumer> {
    let mut c = client_config(cfg, &format!("{}-gate", cfg.client_id));
    c.set("group.id", group)
        // Never commit anything for the decoder's group.
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false");
    c.create()
        .context("creating the decoder-group offset reader")
}

/// Polls the decoder group's committed offsets of the owned partitions every `interval`.
pub async fn poll(
    watcher: Arc<BaseConsumer>,
    topic: String,
    assignment: Arc<Assignment>,
    interval: Duration,
    tx: watch::Sender<Gates>,
) {
    let mut failing = false;
    loop {
        let partitions: Vec<i32> = assignment
            .owned()
            .into_iter()
            .filter(|(t, _)| *t == topic)
            .map(|(_, p)| p)
            .collect();
        if !partitions.is_empty() {
            let mut tpl = TopicPartitionList::new();
            for p in &partitions {
                tpl.add_partition(&topic, *p);
            }
            let w = watcher.clone();
            let got = tokio::task::spawn_blocking(move || {
                w.committed_offsets(tpl, Duration::from_secs(5))
            })
            .await;
            match got {
                Ok(Ok(tpl)) => {
                    if failing {
                        tracing::info!("reading the decoder group's offsets again");
                    }
                    failing = false;
                    let gates: Gates = tpl
                        .elements()
                        .iter()
                        .filter_map(|e| match e.offset() {
                            Offset::Offset(o) => Some((e.partition(), o)),
                            _ => None,
                        })
                        .collect();
                    tx.send_if_modified(|old| {
                        let changed = *old != gates;
                        *old = gates;
                        changed
                    });
                }
                Ok(Err(e)) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "cannot read the decoder group's committed offsets");
                }
                Ok(Err(_)) => {}
                Err(_) => return,
            }
        }
        tokio::time::sleep(interval).await;
    }
}
