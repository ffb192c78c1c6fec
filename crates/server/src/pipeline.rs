//! The write path: prepared transactions are ordered, made durable, applied
//! to the tree in order, and their outcome handed back to the connection.
//! Standalone and ensemble share this path; what changes is the log below.

use crate::shared::Shared;
use paddock_proto::{ErrorCode, Response};
use paddock_tree::{Txn, TxnOp};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How many queued proposals are taken into one batch.
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

/// Runs the write path until `stop` is cancelled.
pub async fn run(
    shared: Arc<Shared>,
    mut proposals: mpsc::Receiver<Proposal>,
    stop: CancellationToken,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        tokio::select! {
            n = proposals.recv_many(&mut batch, MAX_BATCH) => if n == 0 { return },
            _ = stop.cancelled() => return,
        }
        // The batch is ordered here. The durability issue appends it to the
        // log and fsyncs once for the whole batch before anything below runs.
        let mut tree = shared.tree.write();
        for p in batch.drain(..) {
            let applied = tree.apply(&p.txn);
            shared.watches.fire(&applied.events);
            if matches!(p.txn.op, TxnOp::CloseSession) {
                shared.sessions.remove(p.txn.session_id);
            }
            if let Some(to) = p.reply_to {
                let _ = to.send(Outbound::Committed(Committed {
                    zxid: applied.zxid,
                    result: applied.result,
                }));
            }
        }
    }
}
