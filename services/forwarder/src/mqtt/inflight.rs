//! Which PUBACK belongs to which publish. Pure bookkeeping over the events rumqttc reports.
//!
//! rumqttc assigns packet ids itself and tells them only through events, in order: each publish
//! request handed to the client becomes, when the event loop takes it, an
//! `Outgoing::Publish(pkid)` (written) or an `Outgoing::AwaitAck(pkid)` (its id collides with a
//! publish not yet acknowledged: the loop holds it and writes it, as `Outgoing::Publish(pkid)`,
//! once that PUBACK came). So the requests are matched to packet ids first in, first out, and
//! the PUBACKs of one packet id to its publishes first written, first acknowledged.
//!
//! The publisher hands requests to the client only while connected; when the connection breaks,
//! rumqttc keeps what was unacknowledged for a resumed session, which a clean start discards, so
//! [`Inflight::lost`] gives back everything: none of it will be acknowledged.

use std::collections::{HashMap, VecDeque};

#[derive(Debug)]
pub struct Inflight<Id> {
    /// Handed to the client, no packet id yet.
    queued: VecDeque<Id>,
    /// Held by the event loop until the PUBACK of its packet id.
    collided: Option<(u16, Id)>,
    /// Written, waiting for their PUBACK, per packet id (oldest first).
    sent: HashMap<u16, VecDeque<Id>>,
    len: usize,
}

impl<Id> Default for Inflight<Id> {
    fn default() -> Self {
        Inflight {
            queued: VecDeque::new(),
            collided: None,
            sent: HashMap::new(),
            len: 0,
        }
    }
}

impl<Id> Inflight<Id> {
    /// A publish request was handed to the client.
    pub fn queued(&mut self, id: Id) {
        self.queued.push_back(id);
        self.len += 1;
    }

    /// `Outgoing::Publish(pkid)`.
    pub fn written(&mut self, pkid: u16) {
        let id = match self.collided.take() {
            Some((held, id)) if held == pkid => Some(id),
            other => {
                self.collided = other;
                self.queued.pop_front()
            }
        };
        if let Some(id) = id {
            self.sent.entry(pkid).or_default().push_back(id);
        }
    }

    /// `Outgoing::AwaitAck(pkid)`: the next request waits for `pkid`'s PUBACK.
    pub fn collided(&mut self, pkid: u16) {
        if let Some(id) = self.queued.pop_front() {
            self.collided = Some((pkid, id));
        }
    }

    /// The PUBACK of `pkid`: the publish it acknowledges.
    pub fn acked(&mut self, pkid: u16) -> Option<Id> {
        let q = self.sent.get_mut(&pkid)?;
        let id = q.pop_front();
        if q.is_empty() {
            self.sent.remove(&pkid);
        }
        if id.is_some() {
            self.len -= 1;
        }
        id
    }

    /// The connection broke: every publish not acknowledged, to try again.
    pub fn lost(&mut self) -> Vec<Id> {
        let mut out: Vec<Id> = self.queued.drain(..).collect();
        out.extend(self.collided.take().map(|(_, id)| id));
        out.extend(self.sent.drain().flat_map(|(_, q)| q));
        self.len = 0;
        out
    }

    /// Publishes handed to the client and not acknowledged.
    pub fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_take_packet_ids_in_order_and_pubacks_find_them() {
        let mut f = Inflight::default();
        for id in ["a", "b", "c"] {
            f.queued(id);
        }
        f.written(1);
        f.written(2);
        assert_eq!(f.len(), 3);
        assert_eq!(f.acked(2), Some("b"));
        assert_eq!(f.acked(2), None, "a PUBACK acknowledges one publish");
        f.written(1); // packet id 1 again, while "a" waits: a second publish on it
        assert_eq!(f.acked(1), Some("a"), "oldest first");
        assert_eq!(f.acked(1), Some("c"));
        assert_eq!(f.len(), 0);
        assert_eq!(f.acked(9), None);
    }

    #[test]
    fn a_collided_request_is_written_with_its_packet_id_after_the_puback() {
        let mut f = Inflight::default();
        f.queued("a");
        f.queued("b");
        f.queued("c");
        f.written(1);
        f.collided(1); // "b" waits for pkid 1
        f.written(1); // written on pkid 1 once the PUBACK came (reported before or after it)
        assert_eq!(f.acked(1), Some("a"));
        assert_eq!(f.acked(1), Some("b"));
        f.written(2);
        assert_eq!(f.acked(2), Some("c"));
        assert_eq!(f.len(), 0);
    }

    #[test]
    fn a_broken_connection_gives_back_everything_unacknowledged() {
        let mut f = Inflight::default();
        for id in 1..=4 {
            f.queued(id);
        }
        f.written(1);
        f.collided(1);
        f.written(2); // not the collided one's pkid: the next queued request ("3")
        let mut lost = f.lost();
        lost.sort();
        assert_eq!(lost, [1, 2, 3, 4]);
        assert_eq!(f.len(), 0);
        assert_eq!(f.acked(1), None);
    }
}
