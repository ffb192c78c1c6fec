//! State every task of a server shares.

use crate::config::ServerConfig;
use crate::pipeline::{Committed, Outbound, Proposal};
use crate::session::SessionTracker;
use crate::stats::Stats;
use crate::watches::Watches;
use paddock_tree::{DataTree, Txn};
use parking_lot::{Mutex, RwLock};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

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
    pub tree: RwLock<DataTree>,
    pub sessions: SessionTracker,
    pub stats: Stats,
    pub connections: Mutex<BTreeMap<u64, Arc<ConnectionInfo>>>,
    pub watches: Watches,
    proposals: mpsc::Sender<Proposal>,
    pub started: Instant,
}

/// The write path is gone: the server is shutting down.
#[derive(Debug, thiserror::Error)]
#[error("the server is shutting down")]
pub struct ShuttingDown;

impl Shared {
    pub fn new(
        config: ServerConfig,
        tree: DataTree,
        sessions: SessionTracker,
        proposals: mpsc::Sender<Proposal>,
    ) -> Arc<Shared> {
        Arc::new(Shared {
            config,
            tree: RwLock::new(tree),
            sessions,
            stats: Stats::default(),
            connections: Mutex::new(BTreeMap::new()),
            watches: Watches::default(),
            proposals,
            started: Instant::now(),
        })
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

    pub fn last_zxid(&self) -> i64 {
        self.tree.read().last_zxid()
    }

    /// Hands a prepared transaction to the write path; its outcome goes to
    /// `reply_to` once it is committed and applied.
    pub async fn submit(
        &self,
        txn: Txn,
        reply_to: Option<mpsc::UnboundedSender<Outbound>>,
    ) -> Result<(), ShuttingDown> {
        self.proposals
            .send(Proposal { txn, reply_to })
            .await
            .map_err(|_| ShuttingDown)
    }

    /// Submits and waits for the outcome.
    pub async fn commit(&self, txn: Txn) -> Result<Committed, ShuttingDown> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        self.submit(txn, Some(tx)).await?;
        loop {
            match rx.recv().await {
                Some(Outbound::Committed(c)) => return Ok(c),
                Some(Outbound::Notification(_)) => {}
                None => return Err(ShuttingDown),
            }
        }
    }
}
