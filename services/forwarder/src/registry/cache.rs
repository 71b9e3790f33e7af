//! Which device tokens forward, in memory: the forwarding devices (loaded whole every
//! FORWARDER_REFRESH_SECS), and a bounded set of tokens known not to forward (filled by the
//! immediate lookups of tokens seen for the first time), so a steady stream of readings costs no
//! query. Pure: the clock is a parameter, the queries are [`super::postgres`]'s.
//!
//! - A token in the forwarding set forwards (a device whose forwarding was turned off leaves the
//!   set at the next refresh).
//! - A token in the negative set does not (a device that turns forwarding on enters the
//!   forwarding set at the next refresh, which is checked first). When the negative set is full
//!   the oldest entry is forgotten (it is looked up again when seen).
//! - Any other token is [`Lookup::Unknown`]: look it up now and report with [`Cache::found`].
//! - After a failed lookup ([`Cache::failed`]) unknown tokens are [`Lookup::Unavailable`] until
//!   the retry time, so an unreachable PostgreSQL costs one timeout per interval, not one per
//!   record. Those records are not forwarded (they are stored all the same; see the crate doc).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use crate::payload;

/// A device that forwards, as the registry has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub device_token: String,
    pub device_id: i32,
    /// The owner's forwarding token.
    pub forwarding_token: String,
}

/// Where a forwarding device's readings go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub device_id: i32,
    /// `/forward/<owner forwarding_token>/device/<device id>/readings`.
    pub topic: String,
}

/// What the cache knows of a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup<'a> {
    Forward(&'a Target),
    NotForwarding,
    /// Never seen (or forgotten): look it up.
    Unknown,
    /// Never seen, and the registry failed a moment ago: do not ask again yet.
    Unavailable,
}

#[derive(Debug)]
pub struct Cache {
    forwarding: HashMap<String, Target>,
    negative: HashSet<String>,
    /// The negative set's tokens, oldest first.
    order: VecDeque<String>,
    negative_capacity: usize,
    loaded: bool,
    retry_at: Option<Instant>,
}

/// The target of a row, unless its forwarding token cannot be a topic level.
fn target(row: &Row) -> Option<Target> {
    payload::topic(&row.forwarding_token, row.device_id).map(|topic| Target {
        device_id: row.device_id,
        topic,
    })
}

impl Cache {
    pub fn new(negative_capacity: usize) -> Self {
        Cache {
            forwarding: HashMap::new(),
            negative: HashSet::new(),
            order: VecDeque::new(),
            negative_capacity,
            loaded: false,
            retry_at: None,
        }
    }

    pub fn get(&self, token: &str, now: Instant) -> Lookup<'_> {
        if let Some(t) = self.forwarding.get(token) {
            return Lookup::Forward(t);
        }
        if self.negative.contains(token) {
            return Lookup::NotForwarding;
        }
        match self.retry_at {
            Some(at) if now < at => Lookup::Unavailable,
            _ => Lookup::Unknown,
        }
    }

    /// A full load of the forwarding devices: replaces the forwarding set. Returns the rows left
    /// out because their forwarding token cannot be a topic level.
    pub fn replace(&mut self, rows: impl IntoIterator<Item = Row>) -> usize {
        let mut unusable = 0;
        self.forwarding.clear();
        for row in rows {
            match target(&row) {
                Some(t) => {
                    self.forwarding.insert(row.device_token, t);
                }
                None => unusable += 1,
            }
        }
        self.loaded = true;
        self.retry_at = None;
        unusable
    }

    /// The answer of an immediate lookup of `token`: its row when it forwards.
    pub fn found(&mut self, token: &str, row: Option<Row>) {
        self.retry_at = None;
        match row.as_ref().and_then(target) {
            Some(t) => {
                self.forwarding.insert(token.to_string(), t);
            }
            None => self.remember_negative(token),
        }
    }

    /// A lookup failed: unknown tokens are [`Lookup::Unavailable`] for `retry`.
    pub fn failed(&mut self, now: Instant, retry: Duration) {
        self.retry_at = Some(now + retry);
    }

    /// True once a full load succeeded.
    pub fn loaded(&self) -> bool {
        self.loaded
    }

    /// Forwarding devices known.
    pub fn forwarding(&self) -> usize {
        self.forwarding.len()
    }

    fn remember_negative(&mut self, token: &str) {
        if self.negative_capacity == 0 || self.negative.contains(token) {
            return;
        }
        while self.negative.len() >= self.negative_capacity {
            match self.order.pop_front() {
                Some(old) => {
                    self.negative.remove(&old);
                }
                None => break,
            }
        }
        self.negative.insert(token.to_string());
        self.order.push_back(token.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(token: &str, id: i32, fwd: &str) -> Row {
        Row {
            device_token: token.into(),
            device_id: id,
            forwarding_token: fwd.into(),
        }
    }

    fn forward(c: &Cache, token: &str, now: Instant) -> Option<(i32, String)> {
        match c.get(token, now) {
            Lookup::Forward(t) => Some((t.device_id, t.topic.clone())),
            _ => None,
        }
    }

    #[test]
    fn a_load_replaces_the_forwarding_set_and_skips_unusable_tokens() {
        let now = Instant::now();
        let mut c = Cache::new(10);
        assert!(!c.loaded());
        assert_eq!(c.get("demo02", now), Lookup::Unknown);
        let unusable = c.replace([row("demo02", 2, "fwdA"), row("bad", 9, "a/b")]);
        assert_eq!(unusable, 1);
        assert!(c.loaded());
        assert_eq!(
            forward(&c, "demo02", now),
            Some((2, "/forward/fwdA/device/2/readings".into()))
        );
        assert_eq!(c.get("bad", now), Lookup::Unknown);
        assert_eq!(c.forwarding(), 1);
        // Forwarding turned off: gone at the next load.
        c.replace([row("demo05", 5, "fwdB")]);
        assert_eq!(c.get("demo02", now), Lookup::Unknown);
        assert_eq!(forward(&c, "demo05", now).map(|f| f.0), Some(5));
    }

    #[test]
    fn lookups_fill_both_sets_and_a_load_wins_over_a_negative() {
        let now = Instant::now();
        let mut c = Cache::new(10);
        c.found("new1", Some(row("new1", 11, "fwdC")));
        c.found("plain", None);
        c.found("badfwd", Some(row("badfwd", 12, "")));
        assert_eq!(forward(&c, "new1", now).map(|f| f.0), Some(11));
        assert_eq!(c.get("plain", now), Lookup::NotForwarding);
        assert_eq!(c.get("badfwd", now), Lookup::NotForwarding);
        // The device turned forwarding on since: the next load says so.
        c.replace([row("plain", 13, "fwdD")]);
        assert_eq!(forward(&c, "plain", now).map(|f| f.0), Some(13));
    }

    #[test]
    fn the_negative_set_is_bounded_oldest_out() {
        let now = Instant::now();
        let mut c = Cache::new(2);
        c.found("a", None);
        c.found("b", None);
        c.found("a", None); // already known: no reordering, no growth
        c.found("c", None);
        assert_eq!(c.get("a", now), Lookup::Unknown, "the oldest is forgotten");
        assert_eq!(c.get("b", now), Lookup::NotForwarding);
        assert_eq!(c.get("c", now), Lookup::NotForwarding);
        let mut none = Cache::new(0);
        none.found("a", None);
        assert_eq!(none.get("a", now), Lookup::Unknown);
    }

    #[test]
    fn after_a_failure_unknown_tokens_wait_for_the_retry_time_known_ones_do_not() {
        let now = Instant::now();
        let mut c = Cache::new(10);
        c.replace([row("fw", 1, "t")]);
        c.found("no", None);
        c.failed(now, Duration::from_secs(5));
        assert_eq!(c.get("x", now), Lookup::Unavailable);
        assert_eq!(
            c.get("x", now + Duration::from_secs(4)),
            Lookup::Unavailable
        );
        assert_eq!(c.get("x", now + Duration::from_secs(5)), Lookup::Unknown);
        assert!(forward(&c, "fw", now).is_some());
        assert_eq!(c.get("no", now), Lookup::NotForwarding);
        // A success (a load or a lookup) ends the wait at once.
        c.found("y", None);
        assert_eq!(c.get("x", now), Lookup::Unknown);
        c.failed(now, Duration::from_secs(5));
        c.replace([]);
        assert_eq!(c.get("x", now), Lookup::Unknown);
    }
}
