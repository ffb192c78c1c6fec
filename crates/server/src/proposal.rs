//! The write path's messages: what a connection (or the server itself)
//! proposes, and where its outcome goes.

use crate::outbox::{Committed, Outbound, Outbox};
use paddock_replication::Reconfig;
use paddock_tree::Txn;
use std::sync::Arc;
use tokio::sync::oneshot;

pub struct Proposal {
    pub op: Proposed,
    pub reply_to: Option<ReplyTo>,
}

/// Where a proposal's outcome goes.
pub enum ReplyTo {
    /// The submitting connection's outbox, which also carries its watch
    /// notifications, so both arrive in zxid order.
    Connection(Arc<Outbox>),
    /// One waiter (session set-up); it learns that the write path has
    /// gone when the proposal is dropped unanswered.
    Once(oneshot::Sender<Committed>),
}

impl ReplyTo {
    pub fn send(self, committed: Committed) {
        match self {
            ReplyTo::Connection(outbox) => outbox.send(Outbound::Committed(committed)),
            ReplyTo::Once(tx) => {
                let _ = tx.send(committed);
            }
        }
    }
}

pub enum Proposed {
    Txn(Txn),
    /// A `sync` of this path: a barrier through the log.
    Sync(String),
    /// A membership change: answered with the new /zookeeper/config.
    Reconfig(Reconfig),
    /// A session reattached here: a barrier that has every other server
    /// close its connection of the session.
    Claim(i64),
    /// A leader's own transaction, decided while leading in `term` (an
    /// expired session's closeSession, the membership for
    /// /zookeeper/config); void in any other term.
    InTerm {
        txn: Txn,
        term: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use paddock_proto::Response;

    #[tokio::test]
    async fn a_single_waiter_learns_the_outcome_or_that_it_was_dropped() {
        let (tx, rx) = oneshot::channel();
        ReplyTo::Once(tx).send(Committed {
            zxid: 5,
            result: Ok(Response::Empty),
        });
        assert_eq!(rx.await.unwrap().zxid, 5);
        let (tx, rx) = oneshot::channel::<Committed>();
        drop(ReplyTo::Once(tx));
        assert!(rx.await.is_err());
    }
}
