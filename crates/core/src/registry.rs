//! The device registry's cache as pure decisions: which platform device a token belongs to, when
//! a token must be looked up in the platform's database, and what to forget.
//!
//! The shell (the decoder's `platform::registry`) reads the whole device table every refresh
//! and asks the database about single tokens; this module decides, for each message's token,
//! whether the cache answers ([`Lookup::Known`], [`Lookup::Unknown`]) or the database must be
//! asked now ([`Lookup::Ask`]), so thousands of devices cost no query per message while a newly
//! registered device is found at its first message. No I/O and no clock: `now` (milliseconds
//! on any monotonic scale) is a parameter, so every rule is tested below.
//!
//! # The rules
//!
//! 1. A token of the device table is [`Lookup::Known`].
//! 2. A token never seen, or whose negative entry has expired, is [`Lookup::Ask`]: the shell
//!    asks the database at once and reports the answer ([`Registry::answered`]).
//! 3. A token the database said has no device is [`Lookup::Unknown`] for `negative_ttl`
//!    (a negative entry), then asked again.
//! 4. The negative cache holds at most `negative_max` tokens: a new entry evicts the one that
//!    expires first (the oldest); expired entries are dropped first.
//! 5. A full refresh ([`Registry::refreshed`]) replaces the device table (a deleted device is
//!    forgotten) and drops the negative entries of tokens that are now registered.
//! 6. A question that failed ([`Registry::failed`]) makes every lookup that would ask
//!    [`Lookup::Unavailable`] for `retry_after`, so a database that does not answer costs one
//!    timeout per `retry_after`, not one per message. The cache keeps answering meanwhile
//!    (rules 1, 3); any answer (a refresh, a question) ends it.

use std::collections::{BTreeMap, HashMap};

/// A platform device, as the pipeline needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Device {
    /// `devices.id`: the platform's public id of the device (its token is a secret).
    pub id: u32,
}

/// What a token is, according to the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// A registered device.
    Known(Device),
    /// No device has this token (asked less than `negative_ttl` ago).
    Unknown,
    /// Not in the cache: ask the database now, then report [`Registry::answered`].
    Ask,
    /// Not in the cache, and the database failed to answer less than `retry_after` ago.
    Unavailable,
}

/// The cache's bounds, in the unit of `now` (milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheLimits {
    /// How long a token found to have no device is answered [`Lookup::Unknown`].
    pub negative_ttl_ms: u64,
    /// Most tokens in the negative cache.
    pub negative_max: usize,
    /// After a failed question, how long lookups that would ask are [`Lookup::Unavailable`].
    pub retry_after_ms: u64,
}

/// The token → device table and the bounded negative cache.
#[derive(Debug, Clone)]
pub struct Registry {
    limits: CacheLimits,
    devices: HashMap<String, Device>,
    /// Token → (expiry, sequence): the key of its entry in `by_expiry`.
    negative: HashMap<String, (u64, u64)>,
    /// The negative entries in eviction order: soonest expiry first, then oldest.
    by_expiry: BTreeMap<(u64, u64), String>,
    next_seq: u64,
    /// Lookups that would ask are [`Lookup::Unavailable`] before this time.
    failed_until: Option<u64>,
}

impl Registry {
    pub fn new(limits: CacheLimits) -> Self {
        Registry {
            limits,
            devices: HashMap::new(),
            negative: HashMap::new(),
            by_expiry: BTreeMap::new(),
            next_seq: 0,
            failed_until: None,
        }
    }

    /// What `token` is (rules 1, 2, 3, 6).
    pub fn lookup(&self, token: &str, now: u64) -> Lookup {
        if let Some(d) = self.devices.get(token) {
            return Lookup::Known(*d);
        }
        if let Some((expires, _)) = self.negative.get(token) {
            if now < *expires {
                return Lookup::Unknown;
            }
        }
        match self.failed_until {
            Some(until) if now < until => Lookup::Unavailable,
            _ => Lookup::Ask,
        }
    }

    /// The database's answer about one token: its device, or none (rules 3, 4).
    pub fn answered(&mut self, token: &str, device: Option<Device>, now: u64) {
        self.failed_until = None;
        self.forget_negative(token);
        match device {
            Some(d) => {
                self.devices.insert(token.to_string(), d);
            }
            None => self.remember_negative(token, now),
        }
    }

    /// A full read of the device table: it replaces the cached one (rule 5).
    pub fn refreshed(&mut self, devices: HashMap<String, Device>, now: u64) {
        self.failed_until = None;
        self.devices = devices;
        let registered: Vec<String> = self
            .negative
            .keys()
            .filter(|t| self.devices.contains_key(*t))
            .cloned()
            .collect();
        for t in registered {
            self.forget_negative(&t);
        }
        self.drop_expired(now);
    }

    /// A question (or a refresh) failed: rule 6.
    pub fn failed(&mut self, now: u64) {
        self.failed_until = Some(now.saturating_add(self.limits.retry_after_ms));
    }

    /// Devices in the table.
    pub fn devices(&self) -> usize {
        self.devices.len()
    }

    /// Tokens in the negative cache (expired ones included until dropped).
    pub fn negatives(&self) -> usize {
        self.negative.len()
    }

    fn remember_negative(&mut self, token: &str, now: u64) {
        self.drop_expired(now);
        if self.limits.negative_max == 0 {
            return;
        }
        while self.negative.len() >= self.limits.negative_max {
            let Some((_, oldest)) = self.by_expiry.pop_first() else {
                break;
            };
            self.negative.remove(&oldest);
        }
        let key = (
            now.saturating_add(self.limits.negative_ttl_ms),
            self.next_seq,
        );
        self.next_seq += 1;
        self.negative.insert(token.to_string(), key);
        self.by_expiry.insert(key, token.to_string());
    }

    fn forget_negative(&mut self, token: &str) {
        if let Some(key) = self.negative.remove(token) {
            self.by_expiry.remove(&key);
        }
    }

    fn drop_expired(&mut self, now: u64) {
        while let Some(entry) = self.by_expiry.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let token = entry.remove();
            self.negative.remove(&token);
        }
    }
}

/// The sensor catalogue's keys: `sensors.default_key` → `sensors.id`, so a JSON reading may name
/// its sensor by key (`"id": "temp"`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SensorKeys(HashMap<String, u32>);

impl SensorKeys {
    /// From (key, id) pairs; when two sensors share a key, the first pair wins (give them in
    /// id order for a stable choice).
    pub fn new(pairs: impl IntoIterator<Item = (String, u32)>) -> Self {
        let mut keys = HashMap::new();
        for (key, id) in pairs {
            keys.entry(key).or_insert(id);
        }
        SensorKeys(keys)
    }

    /// The sensor id of `key`.
    pub fn get(&self, key: &str) -> Option<u32> {
        self.0.get(key).copied()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: CacheLimits = CacheLimits {
        negative_ttl_ms: 1_000,
        negative_max: 3,
        retry_after_ms: 500,
    };

    fn table(pairs: &[(&str, u32)]) -> HashMap<String, Device> {
        pairs
            .iter()
            .map(|(t, id)| (t.to_string(), Device { id: *id }))
            .collect()
    }

    #[test]
    fn each_rule_as_a_table() {
        enum Step {
            Refresh(&'static [(&'static str, u32)]),
            Answer(&'static str, Option<Device>),
            Fail,
        }
        /// (what it checks, the steps at their times, token looked up, at, expected)
        type Case = (
            &'static str,
            &'static [(u64, Step)],
            &'static str,
            u64,
            Lookup,
        );
        use Lookup::*;
        let cases: &[Case] = &[
            ("never seen: ask", &[], "a", 0, Ask),
            (
                "in the table",
                &[(0, Step::Refresh(&[("a", 7)]))],
                "a",
                5,
                Known(Device { id: 7 }),
            ),
            (
                "asked and found",
                &[(0, Step::Answer("a", Some(Device { id: 9 })))],
                "a",
                10_000,
                Known(Device { id: 9 }),
            ),
            (
                "asked, no device: unknown within the TTL",
                &[(100, Step::Answer("a", None))],
                "a",
                1_099,
                Unknown,
            ),
            (
                "asked, no device: asked again once the TTL is over",
                &[(100, Step::Answer("a", None))],
                "a",
                1_100,
                Ask,
            ),
            (
                "a refresh that has it ends the negative entry",
                &[
                    (0, Step::Answer("a", None)),
                    (10, Step::Refresh(&[("a", 3)])),
                ],
                "a",
                20,
                Known(Device { id: 3 }),
            ),
            (
                "a refresh without it keeps the negative entry",
                &[
                    (0, Step::Answer("a", None)),
                    (10, Step::Refresh(&[("b", 3)])),
                ],
                "a",
                20,
                Unknown,
            ),
            (
                "a refresh forgets a deleted device",
                &[
                    (0, Step::Refresh(&[("a", 1)])),
                    (10, Step::Refresh(&[("b", 2)])),
                ],
                "a",
                20,
                Ask,
            ),
            (
                "an answer adds to the table, a refresh replaces it",
                &[
                    (0, Step::Refresh(&[("a", 1)])),
                    (5, Step::Answer("b", Some(Device { id: 2 }))),
                ],
                "a",
                6,
                Known(Device { id: 1 }),
            ),
            (
                "a failure: unavailable instead of asking",
                &[(0, Step::Fail)],
                "a",
                499,
                Unavailable,
            ),
            (
                "a failure: asked again after retry_after",
                &[(0, Step::Fail)],
                "a",
                500,
                Ask,
            ),
            (
                "a failure: known devices still answered",
                &[(0, Step::Refresh(&[("a", 1)])), (1, Step::Fail)],
                "a",
                2,
                Known(Device { id: 1 }),
            ),
            (
                "a failure: negative entries still answered",
                &[(0, Step::Answer("a", None)), (1, Step::Fail)],
                "a",
                2,
                Unknown,
            ),
            (
                "a failure ends with any answer",
                &[(0, Step::Fail), (1, Step::Answer("b", None))],
                "a",
                2,
                Ask,
            ),
            (
                "a failure ends with a refresh",
                &[(0, Step::Fail), (1, Step::Refresh(&[]))],
                "a",
                2,
                Ask,
            ),
            (
                "found after having had no device",
                &[
                    (0, Step::Answer("a", None)),
                    (1, Step::Answer("a", Some(Device { id: 4 }))),
                ],
                "a",
                2,
                Known(Device { id: 4 }),
            ),
        ];
        for (what, steps, token, at, want) in cases {
            let mut r = Registry::new(LIMITS);
            for (now, step) in steps.iter() {
                match step {
                    Step::Refresh(pairs) => r.refreshed(table(pairs), *now),
                    Step::Answer(t, d) => r.answered(t, *d, *now),
                    Step::Fail => r.failed(*now),
                }
            }
            assert_eq!(r.lookup(token, *at), *want, "{what}");
        }
    }

    #[test]
    fn the_negative_cache_is_bounded_and_evicts_the_oldest() {
        let mut r = Registry::new(LIMITS);
        for (i, t) in ["a", "b", "c", "d"].iter().enumerate() {
            r.answered(t, None, i as u64);
        }
        assert_eq!(r.negatives(), 3);
        assert_eq!(r.lookup("a", 10), Lookup::Ask, "the oldest was evicted");
        for t in ["b", "c", "d"] {
            assert_eq!(r.lookup(t, 10), Lookup::Unknown, "{t}");
        }
        // Asked again, "b" expires last now: "c" is the next to go.
        r.answered("b", None, 20);
        r.answered("e", None, 21);
        assert_eq!(
            ["b", "c", "d", "e"].map(|t| r.lookup(t, 30)),
            [
                Lookup::Unknown,
                Lookup::Ask,
                Lookup::Unknown,
                Lookup::Unknown
            ]
        );
        assert_eq!(r.negatives(), 3);
    }

    #[test]
    fn expired_entries_go_before_live_ones() {
        let mut r = Registry::new(LIMITS);
        r.answered("old1", None, 0);
        r.answered("old2", None, 1);
        r.answered("live", None, 900);
        // At 1_500 both old entries have expired: the new one evicts them, not "live".
        r.answered("new", None, 1_500);
        assert_eq!(r.negatives(), 2);
        assert_eq!(r.lookup("live", 1_600), Lookup::Unknown);
        assert_eq!(r.lookup("new", 1_600), Lookup::Unknown);
    }

    #[test]
    fn a_refresh_drops_expired_and_registered_negatives() {
        let mut r = Registry::new(LIMITS);
        r.answered("gone", None, 0);
        r.answered("reg", None, 500);
        r.answered("keep", None, 600);
        r.refreshed(table(&[("reg", 1), ("x", 2)]), 1_200);
        assert_eq!((r.devices(), r.negatives()), (2, 1));
        assert_eq!(r.lookup("keep", 1_200), Lookup::Unknown);
    }

    #[test]
    fn no_negative_cache_when_its_size_is_zero() {
        let mut r = Registry::new(CacheLimits {
            negative_max: 0,
            ..LIMITS
        });
        r.answered("a", None, 0);
        assert_eq!((r.lookup("a", 1), r.negatives()), (Lookup::Ask, 0));
    }

    #[test]
    fn sensor_keys_first_pair_wins() {
        let k = SensorKeys::new([
            ("temp".to_string(), 55),
            ("hum".to_string(), 56),
            ("temp".to_string(), 99),
        ]);
        assert_eq!(
            (k.get("temp"), k.get("hum"), k.get("x")),
            (Some(55), Some(56), None)
        );
        assert_eq!(k.len(), 2);
        assert!(SensorKeys::default().is_empty());
    }
}
