//! The write path, server side: prepared transactions go to consensus in
//! the order they were submitted (so each session's writes stay in order);
//! each applied one comes back through `Applier`, which fires its watches
//! and answers the connection that asked. Nothing is applied or answered
//! before consensus has made it durable.

use crate::shared::Shared;
use paddock_proto::{ErrorCode, Response};
use paddock_replication::{Applier, Replica};
use paddock_tree::{Applied, Txn, TxnOp};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::error;

/// How many queued proposals are taken at a time.
const MAX_BATCH: usize = 512;
/// Proposals that may wait for the write path before submitters block.
pub const QUEUE_DEPTH: usize = 8192;

pub struct Proposal {
    pub txn: Txn,
    /// Where the outcome goes: the submitting connection's outbox, which
    /// also carries its watch notifications, so both arrive in zxid order.
    pub reply_to: Option<mpsc::UnboundedSender<Outbound>>,
}

/// What the write path sends to a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    /// The outcome of this connection's oldest uncommitted write.
    Committed(Committed),
    /// An encoded watch notification, written before any later reply.
    Notification(bytes::Bytes),
}

/// The outcome of one applied transaction, for its reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub zxid: i64,
    pub result: Result<Response, ErrorCode>,
}

/// Proposes queued transactions until `stop` is cancelled. If consensus
/// stops (its log failed), every waiting and later write gets SystemError
/// until the server restarts; reads go on.
pub async fn run(
    shared: Arc<Shared>,
    mut proposals: mpsc::Receiver<Proposal>,
    replica: Arc<Replica>,
    stop: CancellationToken,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut seq = 0u64;
    let mut failed = false;
    let stopped = replica.stopped();
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            n = proposals.recv_many(&mut batch, MAX_BATCH) => if n == 0 { return },
            _ = &mut stopped, if !failed => {
                error!("consensus stopped; writes fail until restart");
                failed = true;
                shared.fail_pending();
                continue;
            }
            _ = stop.cancelled() => return,
        }
        for p in batch.drain(..) {
            if failed {
                reply(&p.reply_to, shared.last_zxid(), Err(ErrorCode::SystemError));
                continue;
            }
            seq += 1;
            if let Some(to) = p.reply_to {
                shared.pending.lock().insert(seq, to);
            }
            if replica.propose(seq, &p.txn).await.is_err() {
                failed = true;
                shared.fail_pending();
            }
        }
    }
}

fn reply(
    to: &Option<mpsc::UnboundedSender<Outbound>>,
    zxid: i64,
    result: Result<Response, ErrorCode>,
) {
    if let Some(to) = to {
        let _ = to.send(Outbound::Committed(Committed { zxid, result }));
    }
}

impl Applier for Shared {
    fn applied(&self, seq: Option<u64>, txn: &Txn, outcome: Applied) {
        // Before any reply: a later ping must not report an older zxid.
        self.publish_last_zxid(outcome.zxid);
        self.watches.fire(&outcome.events);
        if matches!(txn.op, TxnOp::CloseSession) {
            self.sessions.remove(txn.session_id);
        }
        if let Some(seq) = seq {
            let to = self.pending.lock().remove(&seq);
            reply(&to, outcome.zxid, outcome.result);
        }
    }
}
