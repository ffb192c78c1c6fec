//! The write path, server side: prepared transactions go to consensus in
//! the order they were submitted (so each session's writes stay in order);
//! each applied one comes back through `Applier`, which fires its watches
//! and answers the connection that asked. Nothing is applied or answered
//! before consensus has made it durable.

use crate::outbox::Committed;
use crate::proposal::{Proposal, Proposed, ReplyTo};
use crate::shared::{Shared, Waiting};
use paddock_proto::{ErrorCode, Response};
use paddock_replication::{Applier, ProposeError, Reconfig, ReconfigError, Replica, Work};
use paddock_tree::{Applied, DataTree, Txn, TxnOp};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

/// Where the ensemble's membership is shown.
pub const CONFIG_NODE: &str = "/zookeeper/config";

/// How many queued proposals are taken at a time.
const MAX_BATCH: usize = 512;
/// Proposals that may wait for the write path before submitters block.
pub const QUEUE_DEPTH: usize = 8192;

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
    // Numbers start from the clock, so an entry proposed before a restart
    // is never taken for one of this run's.
    let mut seq = (shared.wall_ms() as u64) << 20;
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
                reply(p.reply_to, shared.last_zxid(), Err(ErrorCode::SystemError));
                continue;
            }
            seq += 1;
            let (work, sync_path) = match &p.op {
                Proposed::Txn(txn) => (Work::Txn(txn), None),
                Proposed::Sync(path) => (Work::Barrier, Some(path.clone())),
                Proposed::Claim(session_id) => (Work::Claim(*session_id), None),
                Proposed::InTerm { txn, term } => (Work::InTerm { txn, term: *term }, None),
                Proposed::Reconfig(req) => {
                    // Behind every write proposed before it; it may take
                    // seconds, so the next proposals do not wait for it.
                    tokio::spawn(reconfigure(
                        shared.clone(),
                        replica.clone(),
                        req.clone(),
                        p.reply_to,
                    ));
                    continue;
                }
            };
            if let Some(to) = p.reply_to {
                shared.pending.lock().insert(seq, Waiting { to, sync_path });
            }
            match replica.propose(seq, work).await {
                Ok(()) => {}
                Err(ProposeError::NoLeader) => {
                    let waiting = shared.pending.lock().remove(&seq);
                    let to = waiting.map(|w| w.to);
                    reply(to, shared.last_zxid(), Err(ErrorCode::ConnectionLoss));
                }
                Err(ProposeError::Stopped) => {
                    failed = true;
                    shared.fail_pending();
                }
            }
        }
    }
}

/// Runs a reconfig and answers as ZooKeeper does: the new configuration
/// as the data of /zookeeper/config, with its stat, once the transaction
/// that writes it there (the leader's, `server::keep_config`) is applied
/// here.
async fn reconfigure(
    shared: Arc<Shared>,
    replica: Arc<Replica>,
    req: Reconfig,
    reply_to: Option<ReplyTo>,
) {
    let result = match replica.reconfigure(req).await {
        Ok(_) => {
            let members = replica.status().borrow().members.clone();
            let mut changed = shared.config_changed.subscribe();
            let shown = async {
                loop {
                    let answer = {
                        let tree = shared.tree.read();
                        paddock_replication::shows(&members, &tree)
                            .then(|| tree.stat(CONFIG_NODE))
                            .map(|stat| {
                                stat.map(|stat| Response::GetData {
                                    data: Some(tree.config_data()),
                                    stat,
                                })
                            })
                    };
                    if let Some(answer) = answer {
                        return answer;
                    }
                    if changed.changed().await.is_err() {
                        return None;
                    }
                }
            };
            match tokio::time::timeout(CONFIG_SHOWN_LIMIT, shown).await {
                Ok(Some(response)) => Ok(response),
                _ => Err(ErrorCode::ConnectionLoss),
            }
        }
        Err(e) => {
            warn!("reconfig refused: {e}");
            Err(match e {
                ReconfigError::InProgress => ErrorCode::ReconfigInProgress,
                ReconfigError::BadVersion => ErrorCode::BadVersion,
                ReconfigError::NoQuorum => ErrorCode::NewConfigNoQuorum,
                ReconfigError::BadArguments(_) => ErrorCode::BadArguments,
                ReconfigError::NoAuth => ErrorCode::NoAuth,
                ReconfigError::NoLeader => ErrorCode::ConnectionLoss,
            })
        }
    };
    reply(reply_to, shared.last_zxid(), result);
}

/// How long a reconfig's answer waits for the new membership to show in
/// /zookeeper/config here.
const CONFIG_SHOWN_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

fn reply(to: Option<ReplyTo>, zxid: i64, result: Result<Response, ErrorCode>) {
    if let Some(to) = to {
        to.send(Committed { zxid, result });
    }
}

impl Applier for Shared {
    fn applied(&self, seq: Option<u64>, txn: &Txn, outcome: Applied) {
        // Before any reply: a later ping must not report an older zxid.
        self.publish_last_zxid(outcome.zxid);
        self.watches.fire(&outcome.events);
        match txn.op {
            // Every server tracks every session, so any of them can take
            // over a client or, as leader, decide its expiry.
            TxnOp::CreateSession { timeout_ms } if outcome.result.is_ok() => {
                self.sessions
                    .ensure(txn.session_id, timeout_ms, self.mono_ms())
            }
            TxnOp::CloseSession => self.sessions.remove(txn.session_id),
            TxnOp::SetConfig { .. } => {
                self.config_changed.send_replace(());
            }
            _ => {}
        }
        if let Some(seq) = seq {
            let to = self.pending.lock().remove(&seq).map(|w| w.to);
            reply(to, outcome.zxid, outcome.result);
        }
    }

    fn barrier(&self, seq: u64, zxid: i64) {
        if let Some(w) = self.pending.lock().remove(&seq) {
            let path = w.sync_path.unwrap_or_default();
            reply(Some(w.to), zxid, Ok(Response::Sync { path }));
        }
    }

    fn claimed(&self, session_id: i64, here: bool) {
        if !here {
            self.sessions.moved_away(session_id);
        }
    }

    fn settled(&self) {
        let written = self.watches.deliver() as u64;
        if written > 0 {
            self.stats
                .packets_sent
                .fetch_add(written, std::sync::atomic::Ordering::Relaxed);
        }
    }

    fn log_written(&self, took: std::time::Duration) {
        self.stats.fsync.add(took.as_micros() as u64);
    }

    fn replaced(&self, tree: &mut DataTree) {
        self.config_changed.send_replace(());
        self.publish_last_zxid(tree.last_zxid());
        let live: Vec<(i64, i32)> = tree
            .sessions()
            .iter()
            .map(|(id, s)| (*id, s.timeout_ms))
            .collect();
        self.sessions.resync(&live, self.mono_ms());
        // Watches and reads of this server's clients were against the old
        // tree: they reconnect and re-arm (setWatches reports what changed).
        self.restart_service();
    }
}
