//! The write path: prepared transactions are ordered, made durable in the
//! log, applied to the tree in order, and their outcome handed back to the
//! connection. Nothing is applied or acknowledged before it is on disk.

use crate::shared::Shared;
use bytes::{Bytes, BytesMut};
use paddock_proto::{ErrorCode, Response};
use paddock_storage::{Wal, WalError};
use paddock_tree::{Txn, TxnOp};
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::error;

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

/// Runs the write path until `stop` is cancelled: each batch of proposals
/// is written to the log as one frame and fsynced once (group commit), then
/// applied in order. If the log fails, nothing more is applied or
/// acknowledged: every write gets SystemError until the server restarts.
pub async fn run(
    shared: Arc<Shared>,
    mut proposals: mpsc::Receiver<Proposal>,
    mut wal: Wal,
    compact: watch::Sender<i64>,
    stop: CancellationToken,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut buf = BytesMut::new();
    let mut since_snapshot = 0u64;
    loop {
        tokio::select! {
            n = proposals.recv_many(&mut batch, MAX_BATCH) => if n == 0 { return },
            _ = stop.cancelled() => return,
        }
        // Only this task advances the zxid, so the batch's zxids are known.
        let first = shared.last_zxid() + 1;
        let records: Vec<(i64, Bytes)> = batch
            .iter()
            .zip(first..)
            .map(|(p, zxid)| {
                p.txn.encode(&mut buf);
                (zxid, buf.split().freeze())
            })
            .collect();
        let written = tokio::task::spawn_blocking(move || {
            let refs: Vec<(i64, &[u8])> = records.iter().map(|(z, t)| (*z, t.as_ref())).collect();
            let result = wal.append(&refs);
            (wal, result)
        })
        .await;
        let result = match written {
            Ok((back, result)) => {
                wal = back;
                result
            }
            Err(e) => {
                error!("the log writer died ({e}); no more writes are accepted");
                return;
            }
        };
        if let Err(e) = result {
            if !matches!(e, WalError::Failed) {
                error!("writing the log failed ({e}); no more writes are accepted until restart");
            }
            let zxid = shared.last_zxid();
            for p in batch.drain(..) {
                reply(&p, zxid, Err(ErrorCode::SystemError));
            }
            continue;
        }
        since_snapshot += batch.len() as u64;
        let mut tree = shared.tree.write();
        for p in batch.drain(..) {
            let applied = tree.apply(&p.txn);
            // Before any reply: a later ping must not report an older zxid.
            shared.publish_last_zxid(applied.zxid);
            shared.watches.fire(&applied.events);
            if matches!(p.txn.op, TxnOp::CloseSession) {
                shared.sessions.remove(p.txn.session_id);
            }
            reply(&p, applied.zxid, applied.result);
        }
        if since_snapshot >= shared.config.snap_count {
            since_snapshot = 0;
            let _ = compact.send(tree.last_zxid());
        }
    }
}

fn reply(p: &Proposal, zxid: i64, result: Result<Response, ErrorCode>) {
    if let Some(to) = &p.reply_to {
        let _ = to.send(Outbound::Committed(Committed { zxid, result }));
    }
}
