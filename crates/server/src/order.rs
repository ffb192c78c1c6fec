//! The order a connection answers in, as pure bookkeeping (no I/O, no
//! locks): requests wait in a FIFO of slots, and
//! - replies leave in request order: only the head is answered, and a
//!   write at the head waits for its outcome;
//! - a read runs when it reaches the head, so it sees every earlier write
//!   of the connection;
//! - a write is handed to the write path only when no read (nor an
//!   unanswered reconfig) waits ahead of it, so a read sees none of the
//!   connection's later writes, as in ZooKeeper;
//! - outcomes come back in the order the writes were handed over, and each
//!   fills the oldest handed-over write still without one.
//!
//! `conn` drives it: `push` on each request, `releasable`/`release` to
//! propose, `committed` for each outcome, `next_turn` to answer.

use crate::outbox::Committed;
use crate::proposal::Proposed;
use bytes::Bytes;
use paddock_proto::{op, Id, Request};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

/// A request waiting for its turn to be answered.
pub(crate) enum Slot {
    /// Answer already known (ping, auth, errors found on arrival).
    Ready { reply: Bytes, close_after: bool },
    /// A read, run when it reaches the head of the queue.
    Read {
        xid: i32,
        req: Request,
        ids: Arc<Vec<Id>>,
    },
    /// A write (or sync); `result` is filled when it commits. It keeps
    /// its `proposal` until it is released to the write path.
    Write {
        xid: i32,
        opcode: i32,
        proposal: Option<Proposed>,
        result: Option<Committed>,
    },
}

impl Slot {
    /// Later writes of the connection wait while this is unanswered: a
    /// read must not see them, and a reconfig's answer comes apart from
    /// the write path's, so nothing may overtake it.
    fn holds_writes(&self) -> bool {
        match self {
            Slot::Read { .. } => true,
            Slot::Write { opcode, result, .. } => *opcode == op::RECONFIG && result.is_none(),
            Slot::Ready { .. } => false,
        }
    }
}

/// The head of the queue, now answerable.
pub(crate) enum Turn {
    /// Its reply, known on arrival.
    Ready { reply: Bytes, close_after: bool },
    /// A write with its outcome.
    Written {
        xid: i32,
        opcode: i32,
        committed: Committed,
    },
    /// A read, to run now.
    Read {
        xid: i32,
        req: Request,
        ids: Arc<Vec<Id>>,
    },
}

struct Queued {
    slot: Slot,
    received: Instant,
}

#[derive(Default)]
pub(crate) struct OrderQueue {
    items: VecDeque<Queued>,
    /// Writes in the queue not yet released to the write path.
    unproposed: usize,
}

impl OrderQueue {
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub(crate) fn push(&mut self, slot: Slot, received: Instant) {
        if let Slot::Write {
            proposal: Some(_), ..
        } = slot
        {
            self.unproposed += 1;
        }
        self.items.push_back(Queued { slot, received });
    }

    /// The position of the next write that may go to the write path: the
    /// first not yet released, with nothing ahead of it that holds writes.
    /// `from`: a position every slot before which is known not to hold
    /// writes (where the last release was).
    pub(crate) fn releasable(&self, from: usize) -> Option<usize> {
        if self.unproposed == 0 {
            return None;
        }
        for (at, q) in self.items.iter().enumerate().skip(from) {
            match &q.slot {
                Slot::Write {
                    proposal: Some(_), ..
                } => return Some(at),
                slot if slot.holds_writes() => return None,
                _ => {}
            }
        }
        None
    }

    /// Takes the proposal of the write at `at` (as `releasable` found it).
    pub(crate) fn release(&mut self, at: usize) -> Option<Proposed> {
        let Some(Slot::Write { proposal, .. }) = self.items.get_mut(at).map(|q| &mut q.slot) else {
            return None;
        };
        let taken = proposal.take();
        if taken.is_some() {
            self.unproposed -= 1;
        }
        taken
    }

    /// An outcome from the write path: it belongs to the oldest released
    /// write still without one. False if there is none (a fail-stop
    /// matter for the caller: the write path answered what was not asked).
    pub(crate) fn committed(&mut self, c: Committed) -> bool {
        let slot = self.items.iter_mut().find_map(|q| match &mut q.slot {
            Slot::Write {
                result: result @ None,
                proposal: None,
                ..
            } => Some(result),
            _ => None,
        });
        match slot {
            Some(result) => {
                *result = Some(c);
                true
            }
            None => false,
        }
    }

    /// The head, taken off the queue, if it can be answered now, with when
    /// it was received.
    pub(crate) fn next_turn(&mut self) -> Option<(Turn, Instant)> {
        if let Slot::Write { result: None, .. } = self.items.front()?.slot {
            return None;
        }
        let Queued { slot, received } = self.items.pop_front()?;
        let turn = match slot {
            Slot::Ready { reply, close_after } => Turn::Ready { reply, close_after },
            Slot::Read { xid, req, ids } => Turn::Read { xid, req, ids },
            Slot::Write {
                xid,
                opcode,
                result: Some(committed),
                ..
            } => Turn::Written {
                xid,
                opcode,
                committed,
            },
            Slot::Write { result: None, .. } => unreachable!("checked above"),
        };
        Some((turn, received))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paddock_proto::Response;
    use proptest::prelude::*;

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Kind {
        Ready,
        Read,
        Write,
        Reconfig,
    }

    fn slot(kind: Kind, xid: i32) -> Slot {
        let write = |opcode| Slot::Write {
            xid,
            opcode,
            proposal: Some(Proposed::Sync(format!("/{xid}"))),
            result: None,
        };
        match kind {
            Kind::Ready => Slot::Ready {
                reply: Bytes::from(xid.to_be_bytes().to_vec()),
                close_after: false,
            },
            Kind::Read => Slot::Read {
                xid,
                req: Request::Ping,
                ids: Arc::default(),
            },
            Kind::Write => write(op::SET_DATA),
            Kind::Reconfig => write(op::RECONFIG),
        }
    }

    fn xid_of(turn: &Turn) -> i32 {
        match turn {
            Turn::Ready { reply, .. } => {
                i32::from_be_bytes(reply[..4].try_into().expect("4 bytes"))
            }
            Turn::Read { xid, .. } | Turn::Written { xid, .. } => *xid,
        }
    }

    /// Releases every write that may go, as `conn::propose_released` does;
    /// the released xids.
    fn release_all(q: &mut OrderQueue) -> Vec<i32> {
        let mut out = Vec::new();
        let mut at = 0;
        while let Some(next) = q.releasable(at) {
            match q.release(next) {
                Some(Proposed::Sync(path)) => out.push(path[1..].parse().expect("xid")),
                _ => panic!("released nothing at {next}"),
            }
            at = next;
        }
        out
    }

    fn commit(q: &mut OrderQueue, xid: i32) {
        let c = Committed {
            zxid: i64::from(xid),
            result: Ok(Response::Empty),
        };
        assert!(q.committed(c), "an outcome for {xid} had a slot");
    }

    #[test]
    fn a_read_holds_back_the_writes_behind_it_until_it_has_run() {
        let mut q = OrderQueue::default();
        let now = Instant::now();
        for (xid, kind) in [Kind::Write, Kind::Read, Kind::Write]
            .into_iter()
            .enumerate()
        {
            q.push(slot(kind, xid as i32), now);
        }
        assert_eq!(release_all(&mut q), [0]);
        // The read waits for the write ahead of it...
        assert!(q.next_turn().is_none());
        commit(&mut q, 0);
        assert!(matches!(
            q.next_turn(),
            Some((Turn::Written { xid: 0, .. }, _))
        ));
        // ...and the write behind it waits for the read.
        assert_eq!(release_all(&mut q), Vec::<i32>::new());
        assert!(matches!(
            q.next_turn(),
            Some((Turn::Read { xid: 1, .. }, _))
        ));
        assert_eq!(release_all(&mut q), [2]);
        assert!(q.next_turn().is_none());
        commit(&mut q, 2);
        assert!(matches!(
            q.next_turn(),
            Some((Turn::Written { xid: 2, .. }, _))
        ));
        assert!(q.is_empty());
    }

    #[test]
    fn a_reconfig_holds_back_later_writes_until_it_is_answered() {
        let mut q = OrderQueue::default();
        let now = Instant::now();
        q.push(slot(Kind::Reconfig, 0), now);
        q.push(slot(Kind::Ready, 1), now);
        q.push(slot(Kind::Write, 2), now);
        assert_eq!(release_all(&mut q), [0]);
        assert_eq!(release_all(&mut q), Vec::<i32>::new());
        commit(&mut q, 0);
        assert_eq!(release_all(&mut q), [2]);
        let turns: Vec<i32> = std::iter::from_fn(|| q.next_turn())
            .map(|(t, _)| xid_of(&t))
            .collect();
        assert_eq!(turns, [0, 1], "the write behind waits for its outcome");
    }

    #[test]
    fn an_outcome_goes_to_the_oldest_released_write_and_not_to_one_held_back() {
        let mut q = OrderQueue::default();
        let now = Instant::now();
        q.push(slot(Kind::Write, 0), now);
        q.push(slot(Kind::Read, 1), now);
        q.push(slot(Kind::Write, 2), now);
        assert_eq!(release_all(&mut q), [0]);
        commit(&mut q, 0);
        let held = Committed {
            zxid: 99,
            result: Ok(Response::Empty),
        };
        assert!(!q.committed(held), "no released write is waiting");
    }

    proptest! {
        /// Any interleaving of requests arriving, writes released, outcomes
        /// coming back (in release order) and heads answered: replies leave
        /// in request order, each write's outcome is its own, a write is
        /// released only when no read or unanswered reconfig is ahead of it,
        /// and in the end everything is answered.
        #[test]
        fn the_queue_keeps_zookeepers_order(
            steps in proptest::collection::vec((0u8..7, 0u8..4), 1..200)
        ) {
            let mut q = OrderQueue::default();
            let now = Instant::now();
            let mut kinds: Vec<Kind> = Vec::new();
            let mut answered: Vec<i32> = Vec::new();
            let mut in_flight: VecDeque<i32> = VecDeque::new();
            let mut released: Vec<i32> = Vec::new();
            // Releases `xids` in order, checking each against what was
            // answered, released and committed before it: a read ahead of
            // it has run, a reconfig ahead of it has its outcome, a write
            // ahead of it was released.
            let release = |xids: &[i32], kinds: &[Kind], answered: &[i32], in_flight: &VecDeque<i32>,
                           released: &mut Vec<i32>| {
                for &x in xids {
                    for earlier in 0..x {
                        let was_released = released.contains(&earlier);
                        match kinds[earlier as usize] {
                            Kind::Read => assert!(answered.contains(&earlier),
                                "{x} released before the read {earlier} ran"),
                            Kind::Reconfig => assert!(was_released && !in_flight.contains(&earlier),
                                "{x} released before the reconfig {earlier} had its outcome"),
                            Kind::Write => assert!(was_released, "{x} released before {earlier}"),
                            Kind::Ready => {}
                        }
                    }
                    released.push(x);
                }
            };
            let step = |action: u8, kind: u8, q: &mut OrderQueue, kinds: &mut Vec<Kind>,
                            answered: &mut Vec<i32>, in_flight: &mut VecDeque<i32>,
                            released: &mut Vec<i32>| {
                match action {
                    0..=2 => {
                        let k = [Kind::Ready, Kind::Read, Kind::Write, Kind::Reconfig][kind as usize];
                        q.push(slot(k, kinds.len() as i32), now);
                        kinds.push(k);
                    }
                    3 => {
                        let xids = release_all(q);
                        release(&xids, kinds, answered, in_flight, released);
                        in_flight.extend(xids);
                    }
                    4 => {
                        if let Some(x) = in_flight.pop_front() {
                            commit(q, x);
                        }
                    }
                    _ => {
                        while let Some((turn, _)) = q.next_turn() {
                            if let Turn::Written { xid, committed, .. } = &turn {
                                assert_eq!(committed.zxid, i64::from(*xid), "its own outcome");
                            }
                            answered.push(xid_of(&turn));
                        }
                    }
                }
            };
            for (action, kind) in steps {
                step(action, kind, &mut q, &mut kinds, &mut answered, &mut in_flight, &mut released);
            }
            // Drain: release, commit and answer until nothing is left.
            for _ in 0..=2 * kinds.len() {
                step(3, 0, &mut q, &mut kinds, &mut answered, &mut in_flight, &mut released);
                while !in_flight.is_empty() {
                    step(4, 0, &mut q, &mut kinds, &mut answered, &mut in_flight, &mut released);
                }
                step(5, 0, &mut q, &mut kinds, &mut answered, &mut in_flight, &mut released);
                if q.is_empty() {
                    break;
                }
            }
            prop_assert!(q.is_empty(), "left: {}", q.len());
            let expected: Vec<i32> = (0..kinds.len() as i32).collect();
            prop_assert_eq!(answered, expected);
        }
    }
}
