//! Consensus for Paddock. Transactions are ordered by openraft, made
//! durable in our write-ahead log (one fdatasync per batch), and applied to
//! the tree in log order on every replica; a standalone server is a group
//! of one voter. No openraft type leaves this crate: the server proposes
//! `Txn`s and hears about each applied one through `Applier`.

pub mod codec;
pub mod files;
mod log_store;
mod network;
mod state_machine;
mod types;

pub use files::{seed, Dirs, FilesError};

use crate::files::Loaded;
use crate::log_store::LogStore;
use crate::network::NoPeers;
use crate::state_machine::{SnapshotFiles, StateMachine};
use crate::types::{Command, TypeConfig};
use bytes::BytesMut;
use openraft::async_runtime::WatchReceiver;
use openraft::{BasicNode, Config, Raft, SnapshotPolicy};
use paddock_storage::{Disk, Wal};
use paddock_tree::{Applied, DataTree, TreeConfig, Txn};
use parking_lot::{Mutex, RwLock};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tracing::warn;

/// What the server does with each applied transaction. Called in log
/// order with the tree still locked, so watches and replies leave in the
/// order of the changes they describe.
pub trait Applier: Send + Sync + 'static {
    /// `seq` is the number this server proposed it under, if it did.
    fn applied(&self, seq: Option<u64>, txn: &Txn, outcome: Applied);
}

#[derive(Debug, Clone)]
pub struct Options {
    pub node_id: u64,
    pub dirs: Dirs,
    pub segment_bytes: u64,
    /// Log entries between snapshots.
    pub snap_count: u64,
    /// Snapshots kept (with the log needed to recover from the oldest).
    pub snap_retain: usize,
    pub tree_config: TreeConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    #[error(transparent)]
    Files(#[from] FilesError),
    #[error("consensus did not start: {0}")]
    Start(String),
}

/// The consensus group has stopped (shut down, or its log failed).
#[derive(Debug, thiserror::Error)]
#[error("the write path has stopped")]
pub struct Stopped;

/// The files read, before consensus starts.
pub struct Opened {
    options: Options,
    disk: Arc<dyn Disk>,
    wal: Wal,
    loaded: Loaded,
}

/// Reads the data directory (newest good snapshot, the log after it) and
/// returns the tree as of the last entry known to be committed.
pub fn open(options: Options, disk: Arc<dyn Disk>) -> Result<(DataTree, Opened), FilesError> {
    let mut loaded = files::load(&*disk, &options.dirs, options.tree_config, None)?;
    let covered = loaded.snapshot.as_ref().and_then(|(m, _)| m.last_log_id);
    if loaded.state.last_purged.is_some() && covered < loaded.state.last_purged {
        // The newest snapshot was damaged and the state was rebuilt from an
        // older one and the log: write it down again, so a snapshot covers
        // everything purged from the log.
        let path = files::write_tree(&*disk, &options.dirs, &loaded.applied, &loaded.tree)?;
        warn!(snapshot = %path.display(), "rewrote the newest snapshot from an older one and the log");
        loaded.snapshot = Some((loaded.applied.clone(), path));
    }
    let wal = Wal::new(disk.clone(), &options.dirs.log, options.segment_bytes)?;
    let tree = std::mem::replace(&mut loaded.tree, DataTree::new(options.tree_config));
    Ok((
        tree,
        Opened {
            options,
            disk,
            wal,
            loaded,
        },
    ))
}

pub struct Replica {
    raft: Raft<TypeConfig, StateMachine>,
    node_id: u64,
}

impl Opened {
    /// Starts consensus over `tree` (the one `open` returned, now shared
    /// with readers) and waits until every entry of the log is applied.
    pub async fn start(
        self,
        tree: Arc<RwLock<DataTree>>,
        applier: Arc<dyn Applier>,
    ) -> Result<Replica, ReplicationError> {
        let Opened {
            options,
            disk,
            wal,
            loaded,
        } = self;
        let node_id = options.node_id;
        let last_index = loaded.entries.keys().next_back().copied();
        let (log, flushed) = LogStore::open(
            disk.clone(),
            options.dirs.clone(),
            wal,
            loaded.entries,
            loaded.state,
        );
        let files = Arc::new(SnapshotFiles {
            disk,
            dirs: options.dirs.clone(),
            tree_config: options.tree_config,
            retain: options.snap_retain,
            current: Mutex::new(loaded.snapshot),
        });
        let machine = StateMachine {
            node_id,
            tree,
            applier,
            applied: loaded.applied,
            files,
            flushed,
            log: log.clone(),
        };
        let config = Config {
            cluster_name: "paddock".into(),
            election_timeout_min: 150,
            election_timeout_max: 300,
            heartbeat_interval: 50,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(options.snap_count.max(1)),
            max_in_snapshot_log_to_keep: 0,
            ..Default::default()
        }
        .validate()
        .map_err(|e| ReplicationError::Start(e.to_string()))?;
        let raft = Raft::new(node_id, Arc::new(config), NoPeers, log, machine)
            .await
            .map_err(|e| ReplicationError::Start(e.to_string()))?;
        let initialized = raft
            .is_initialized()
            .await
            .map_err(|e| ReplicationError::Start(e.to_string()))?;
        if !initialized {
            let members = BTreeMap::from([(node_id, BasicNode::default())]);
            raft.initialize(members)
                .await
                .map_err(|e| ReplicationError::Start(e.to_string()))?;
        }
        raft.wait(Some(Duration::from_secs(60)))
            .metrics(
                |m| {
                    m.current_leader == Some(node_id)
                        && m.last_applied.map(|l| l.index) >= last_index
                        && m.last_applied.map(|l| l.index) >= m.last_log_index
                },
                "leader with the whole log applied",
            )
            .await
            .map_err(|e| ReplicationError::Start(e.to_string()))?;
        Ok(Replica { raft, node_id })
    }
}

impl Replica {
    /// Proposes `txn`; once it is committed and applied, the `Applier`
    /// hears of it with this `seq`.
    pub async fn propose(&self, seq: u64, txn: &Txn) -> Result<(), Stopped> {
        let mut buf = BytesMut::new();
        txn.encode(&mut buf);
        let command = Command {
            origin: self.node_id,
            seq,
            txn: buf.freeze(),
        };
        self.raft
            .client_write_ff(command, None)
            .await
            .map_err(|_| Stopped)
    }

    /// Completes when the group stops: after shutdown, or when the log
    /// failed and nothing more can be committed.
    pub async fn stopped(&self) {
        let mut metrics = self.raft.metrics();
        loop {
            if metrics.borrow_watched().running_state.is_err() {
                return;
            }
            if metrics.changed().await.is_err() {
                return;
            }
        }
    }

    pub async fn shutdown(&self) {
        let _ = self.raft.shutdown().await;
    }
}
