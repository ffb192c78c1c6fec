//! State every task of a server shares.

use crate::config::ServerConfig;
use crate::outbox::Committed;
use crate::proposal::{Proposal, Proposed, ReplyTo};
use crate::session::SessionTracker;
use crate::stats::Stats;
use crate::watches::Watches;
use paddock_proto::ErrorCode;
use paddock_replication::Status;
use paddock_tree::{DataTree, Txn};
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// What `stat` lists for one connection, updated by the connection itself.
#[derive(Debug)]
pub struct ConnectionInfo {
    pub peer: SocketAddr,
    /// 0 until the handshake gives the connection a session.
    pub session_id: AtomicI64,
    pub received: AtomicU64,
    pub sent: AtomicU64,
    pub queued: AtomicU64,
}

pub struct Shared {
    pub config: ServerConfig,
    /// The tree, shared with consensus, which applies to it.
    pub tree: Arc<RwLock<DataTree>>,
    pub sessions: SessionTracker,
    pub stats: Stats,
    pub connections: Mutex<BTreeMap<u64, Arc<ConnectionInfo>>>,
    pub watches: Watches,
    proposals: mpsc::Sender<Proposal>,
    /// Where the outcome of each write (or sync) this server proposed
    /// goes, by the number it was proposed under.
    pub pending: Mutex<HashMap<u64, Waiting>>,
    last_zxid: AtomicI64,
    pub started: Instant,
    /// Consensus as last reported: role, leader, members.
    status: Mutex<Status>,
    /// When (`mono_ms`) the server last stopped serving.
    not_serving_since_ms: AtomicI64,
    /// ZooKeeper's trace mask (gtmk/stmk): bit 2 logs client requests
    /// and bit 8 pings, at TRACE level.
    pub trace_mask: AtomicI64,
    /// Cancelled when the service epoch ends (a new leader, or lost
    /// contact): every connection of the epoch closes, as in ZooKeeper.
    /// Each epoch's token is a child of `serving`.
    service: Mutex<CancellationToken>,
    /// Cancelled when the server stops: no epoch serves after that.
    serving: CancellationToken,
    /// Told whenever `/zookeeper/config` may have changed (a membership
    /// transaction applied, or a snapshot installed).
    pub config_changed: tokio::sync::watch::Sender<()>,
    /// Woken when the requests outstanding on all connections fall back
    /// under `globalOutstandingLimit`.
    pub unthrottled: tokio::sync::Notify,
}

/// ZooKeeper's default trace mask: client requests, server packets,
/// sessions and warnings.
pub const DEFAULT_TRACE_MASK: i64 = 306;
/// Trace-mask bits Paddock acts on.
pub const TRACE_CLIENT_REQUESTS: i64 = 1 << 1;
pub const TRACE_CLIENT_PINGS: i64 = 1 << 3;

/// A proposal waiting for its outcome.
pub struct Waiting {
    pub to: ReplyTo,
    /// For a `sync`: the path its reply names.
    pub sync_path: Option<String>,
}

/// The write path is gone: the server is shutting down.
#[derive(Debug, thiserror::Error)]
#[error("the server is shutting down")]
pub struct ShuttingDown;

impl Shared {
    pub fn new(
        config: ServerConfig,
        tree: Arc<RwLock<DataTree>>,
        sessions: SessionTracker,
        proposals: mpsc::Sender<Proposal>,
    ) -> Arc<Shared> {
        let last_zxid = tree.read().last_zxid();
        let serving = CancellationToken::new();
        Arc::new(Shared {
            config,
            tree,
            pending: Mutex::new(HashMap::new()),
            sessions,
            stats: Stats::default(),
            connections: Mutex::new(BTreeMap::new()),
            watches: Watches::default(),
            proposals,
            last_zxid: AtomicI64::new(last_zxid),
            started: Instant::now(),
            trace_mask: AtomicI64::new(DEFAULT_TRACE_MASK),
            status: Mutex::new(Status::initial()),
            not_serving_since_ms: AtomicI64::new(0),
            service: Mutex::new(serving.child_token()),
            serving,
            config_changed: tokio::sync::watch::Sender::new(()),
            unthrottled: tokio::sync::Notify::new(),
        })
    }

    /// Whether the requests outstanding on all connections reach
    /// `globalOutstandingLimit`: then no connection reads more.
    pub fn throttled(&self) -> bool {
        self.stats.outstanding.load(Ordering::Relaxed)
            >= self.config.global_outstanding_limit as u64
    }

    /// `n` requests are no longer outstanding (answered, or their
    /// connection ended); wakes the connections if that lifts the throttle.
    pub fn settle_outstanding(&self, n: u64) {
        let before = self.stats.outstanding.fetch_sub(n, Ordering::Relaxed);
        let limit = self.config.global_outstanding_limit as u64;
        if before >= limit && before - n < limit {
            self.unthrottled.notify_waiters();
        }
    }

    /// Whether the trace mask has `bit` set.
    pub fn tracing(&self, bit: i64) -> bool {
        self.trace_mask.load(Ordering::Relaxed) & bit != 0
    }

    pub fn status(&self) -> Status {
        self.status.lock().clone()
    }

    pub fn set_status(&self, status: Status) {
        let mut now = self.status.lock();
        if now.serving && !status.serving {
            self.not_serving_since_ms
                .store(self.mono_ms(), Ordering::Relaxed);
        }
        *now = status;
    }

    /// Whether clients may connect now.
    pub fn serving(&self) -> bool {
        self.status.lock().serving
    }

    /// Read-only mode: a member with `readonlymode.enabled` that has not
    /// been serving for a grace period (ZooKeeper's: two seconds or a tick,
    /// whichever is longer) serves reads to clients that ask for it.
    pub fn read_only(&self) -> bool {
        let grace = i64::from(self.config.tick_time_ms).max(2000);
        self.config.read_only_mode
            && self.config.ensemble.is_some()
            && !self.serving()
            && self.mono_ms() - self.not_serving_since_ms.load(Ordering::Relaxed) >= grace
    }

    /// The mode srvr, mntr and the admin server report.
    pub fn mode_name(&self) -> &'static str {
        if self.read_only() {
            "read-only"
        } else {
            self.status.lock().role.name()
        }
    }

    /// The token that closes the connections of the current epoch.
    pub fn service_token(&self) -> CancellationToken {
        self.service.lock().clone()
    }

    /// Ends the service epoch: every connection closes (their clients
    /// reconnect, to this or another server, keeping their sessions) and
    /// writes still waiting are forgotten; they may or may not commit.
    pub fn restart_service(&self) {
        let old = std::mem::replace(&mut *self.service.lock(), self.serving.child_token());
        old.cancel();
        self.pending.lock().clear();
    }

    /// The server is stopping: every connection closes, now and later.
    pub fn stop_serving(&self) {
        self.serving.cancel();
    }

    /// Completes once the server is stopping.
    pub async fn stopping(&self) {
        self.serving.cancelled().await;
    }

    /// Wall-clock time for transactions, in ms since the epoch.
    pub fn wall_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    }

    /// Monotonic time since start, in ms, for liveness.
    pub fn mono_ms(&self) -> i64 {
        self.started.elapsed().as_millis() as i64
    }

    /// The zxid of the last applied transaction, without taking the tree
    /// lock (the write path publishes it after each batch).
    pub fn last_zxid(&self) -> i64 {
        self.last_zxid.load(Ordering::Acquire)
    }

    pub fn publish_last_zxid(&self, zxid: i64) {
        self.last_zxid.store(zxid, Ordering::Release);
    }

    /// Answers every write still waiting for consensus with SystemError
    /// (consensus has stopped; they will never be applied by this run).
    pub fn fail_pending(&self) {
        let zxid = self.last_zxid();
        for (_, w) in self.pending.lock().drain() {
            w.to.send(Committed {
                zxid,
                result: Err(ErrorCode::SystemError),
            });
        }
    }

    /// Hands a prepared transaction to the write path; its outcome goes to
    /// `reply_to` once it is committed and applied.
    pub async fn submit(&self, txn: Txn, reply_to: Option<ReplyTo>) -> Result<(), ShuttingDown> {
        self.propose(Proposed::Txn(txn), reply_to).await
    }

    /// Hands a transaction or a sync to the write path.
    pub async fn propose(
        &self,
        op: Proposed,
        reply_to: Option<ReplyTo>,
    ) -> Result<(), ShuttingDown> {
        self.proposals
            .send(Proposal { op, reply_to })
            .await
            .map_err(|_| ShuttingDown)
    }

    /// Room for one proposal in the write path's queue, waited for when
    /// it is full; the proposal itself need not be kept while waiting.
    pub async fn room_for_proposal(&self) -> Result<mpsc::Permit<'_, Proposal>, ShuttingDown> {
        self.proposals.reserve().await.map_err(|_| ShuttingDown)
    }

    /// Submits and waits for the outcome.
    pub async fn commit(&self, txn: Txn) -> Result<Committed, ShuttingDown> {
        self.outcome_of(Proposed::Txn(txn)).await
    }

    /// Submits a transaction this leader decided while leading in `term`
    /// (void in any other) and waits for the outcome.
    pub async fn commit_in_term(&self, txn: Txn, term: u64) -> Result<Committed, ShuttingDown> {
        self.outcome_of(Proposed::InTerm { txn, term }).await
    }

    /// Tells every server that this session's client is now connected
    /// here (they close their connections of it), and waits until that is
    /// applied here.
    pub async fn claim(&self, session_id: i64) -> Result<Committed, ShuttingDown> {
        self.outcome_of(Proposed::Claim(session_id)).await
    }

    async fn outcome_of(&self, op: Proposed) -> Result<Committed, ShuttingDown> {
        let (tx, rx) = oneshot::channel();
        self.propose(op, Some(ReplyTo::Once(tx))).await?;
        rx.await.map_err(|_| ShuttingDown)
    }
}
