//! Which partitions a consumer owns, and a generation bumped on every revocation so the service's
//! loop can tell that the records it holds may no longer be its to commit. Written by the
//! rebalance callbacks ([`super::context`]), read by the loop and the lag gauge. Shared by every
//! consumer-group service (sck-decoder, sck-forwarder).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct Assignment {
    generation: AtomicU64,
    partitions: Mutex<BTreeSet<(String, i32)>>,
}

impl Assignment {
    pub fn owns(&self, topic: &str, partition: i32) -> bool {
        self.partitions
            .lock()
            .map(|p| p.contains(&(topic.to_string(), partition)))
            .unwrap_or(false)
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// The partitions owned now.
    pub fn owned(&self) -> BTreeSet<(String, i32)> {
        self.partitions
            .lock()
            .map(|p| p.clone())
            .unwrap_or_default()
    }

    /// Partitions revoked (before the group hands them out): a new generation, bumped before
    /// the partitions are dropped from the owned set.
    pub fn revoke<S: AsRef<str>>(&self, partitions: impl IntoIterator<Item = (S, i32)>) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut p) = self.partitions.lock() {
            for (topic, partition) in partitions {
                p.remove(&(topic.as_ref().to_string(), partition));
            }
        }
    }

    /// Partitions assigned: owned from now on (the generation does not move).
    pub fn assign<S: AsRef<str>>(&self, partitions: impl IntoIterator<Item = (S, i32)>) {
        if let Ok(mut p) = self.partitions.lock() {
            for (topic, partition) in partitions {
                p.insert((topic.as_ref().to_string(), partition));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revocation_moves_the_generation_and_drops_ownership_an_assignment_does_not() {
        let a = Assignment::default();
        assert_eq!(a.generation(), 0);
        a.assign([("sck.readings", 0), ("sck.readings", 1)]);
        assert_eq!(a.generation(), 0, "an assignment keeps the generation");
        assert!(a.owns("sck.readings", 1));
        assert!(!a.owns("sck.device-events", 1));
        a.revoke([("sck.readings", 1)]);
        assert_eq!(a.generation(), 1);
        assert!(!a.owns("sck.readings", 1));
        assert!(a.owns("sck.readings", 0));
        a.revoke::<&str>([]);
        assert_eq!(
            a.generation(),
            2,
            "every revocation counts, even an empty one"
        );
        a.assign([("sck.readings", 1)]);
        assert_eq!(
            a.owned().into_iter().collect::<Vec<_>>(),
            [
                ("sck.readings".to_string(), 0),
                ("sck.readings".to_string(), 1)
            ]
        );
    }
}
