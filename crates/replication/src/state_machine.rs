//! openraft's state machine: committed entries applied to the live tree, in
//! log order, each outcome handed to the server's `Applier` while the tree
//! is still locked. A small tree is snapshotted from the live tree between
//! two applies; a bigger one is rebuilt from the files on a blocking thread
//! (see files::compact), so the live tree never waits for it.

use crate::files::Outcome;
use crate::files::{self, Dirs};
use crate::log_store::{Flushed, LogStore};
use crate::types::{LogId, Snapshot, SnapshotMeta, StoredMembership, TypeConfig};
use crate::Applier;
use bytes::{Bytes, BytesMut};
use futures::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::RaftSnapshotBuilder;
use paddock_storage::Disk;
use paddock_tree::{DataTree, TreeConfig};
use parking_lot::{Mutex, RwLock};
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use tracing::info;

/// A snapshot, as openraft hands it around: the file that holds it.
#[derive(Debug, Clone)]
pub struct SnapshotFile(pub PathBuf);

/// What snapshots need, shared by the state machine and its builders.
pub struct SnapshotFiles {
    pub disk: Arc<dyn Disk>,
    pub dirs: Dirs,
    pub tree_config: TreeConfig,
    pub retain: usize,
    /// The most znodes a tree snapshotted from the live tree may have.
    pub live_nodes: usize,
    /// The newest snapshot written or found, and what it covers.
    pub current: Mutex<Option<(SnapshotMeta, PathBuf)>>,
}

pub struct StateMachine {
    pub(crate) node_id: u64,
    pub(crate) tree: Arc<RwLock<DataTree>>,
    pub(crate) applier: Arc<dyn Applier>,
    pub(crate) applied: SnapshotMeta,
    pub(crate) files: Arc<SnapshotFiles>,
    pub(crate) flushed: Flushed,
    pub(crate) log: LogStore,
}

/// A tree of at most `SnapshotFiles::live_nodes` znodes (20 000 by
/// default) and this many bytes encoded is snapshotted from the live tree:
/// encoding it takes about a millisecond, where a rebuild from the files
/// would replay a whole snapCount of log entries (a quarter of the CPU of
/// a write-heavy load on a small tree).
const LIVE_BYTES: usize = 4 << 20;

/// `tree`'s snapshot encoding, if it has at most `max_nodes` znodes and
/// [`LIVE_BYTES`]: small enough to encode while applies wait.
fn encode_if_small(tree: &DataTree, max_nodes: usize) -> Option<Bytes> {
    if tree.node_count() > max_nodes {
        return None;
    }
    let len = tree.snapshot_len();
    if len > LIVE_BYTES {
        return None;
    }
    let mut out = BytesMut::with_capacity(len);
    tree.encode_snapshot(&mut out);
    Some(out.freeze())
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotFile;
    type SnapshotBuilder = Builder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        Ok((
            self.applied.last_log_id,
            self.applied.last_membership.clone(),
        ))
    }

    async fn apply<Strm>(&mut self, entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + Send,
    {
        let batch: Vec<EntryResponder<TypeConfig>> = entries.try_collect().await?;
        {
            let tree = self.tree.clone();
            let mut tree = tree.write();
            let (me, applier) = (self.node_id, &self.applier);
            for (entry, _) in &batch {
                files::apply_entry(&mut tree, &mut self.applied, entry, |cmd, applied| {
                    let seq = (cmd.origin == me).then_some(cmd.seq);
                    match applied {
                        Outcome::Txn(txn, outcome) => applier.applied(seq, txn, outcome),
                        Outcome::Barrier { zxid, claim } => {
                            if let Some(session_id) = claim {
                                applier.claimed(session_id, seq.is_some());
                            }
                            if let Some(seq) = seq {
                                applier.barrier(seq, zxid);
                            }
                        }
                    }
                });
            }
        }
        if let Some(last) = self.applied.last_log_id {
            self.log.applied(last.index);
        }
        for (_, responder) in batch {
            if let Some(r) = responder {
                r.send(());
            }
        }
        self.applier.settled();
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Builder {
        // Made between two applies, so the live tree is exactly the state
        // at `upto`.
        Builder {
            upto: self.applied.last_log_id,
            live: encode_if_small(&self.tree.read(), self.files.live_nodes)
                .map(|tree| (self.applied.clone(), tree)),
            files: self.files.clone(),
            flushed: self.flushed.clone(),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotFile,
    ) -> Result<(), io::Error> {
        let files = self.files.clone();
        let target = files
            .dirs
            .snapshots
            .join(paddock_storage::snapshot::snapshot_name(
                crate::codec::snapshot_position(meta.last_log_id.as_ref()),
            ));
        let copy_to = target.clone();
        let (loaded_meta, tree) = tokio::task::spawn_blocking(move || -> io::Result<_> {
            let bytes = paddock_storage::snapshot::read_snapshot(&*files.disk, &snapshot.0)
                .map_err(io::Error::other)?;
            let (meta, tree) = crate::codec::decode_snapshot(bytes).map_err(io::Error::other)?;
            let tree =
                DataTree::decode_snapshot(&mut paddock_proto::Reader::new(tree), files.tree_config)
                    .map_err(io::Error::other)?;
            if snapshot.0 != copy_to {
                let raw = files.disk.read(&snapshot.0)?;
                files.disk.write_atomic(&copy_to, &raw)?;
            }
            Ok((meta, tree))
        })
        .await
        .map_err(io::Error::other)??;
        {
            let mut live = self.tree.write();
            *live = tree;
            self.applier.replaced(&live);
        }
        self.applied = loaded_meta.clone();
        *self.files.current.lock() = Some((loaded_meta, target));
        info!(index = ?meta.last_log_id, "installed a snapshot from the leader");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<SnapshotFile>>, io::Error> {
        Ok(self
            .files
            .current
            .lock()
            .clone()
            .map(|(meta, path)| Snapshot {
                meta,
                snapshot: SnapshotFile(path),
            }))
    }
}

/// Builds one snapshot at the position the state machine had applied when
/// the builder was made: from the live tree's encoding taken then, or
/// rebuilt from the files.
pub struct Builder {
    upto: Option<LogId>,
    live: Option<(SnapshotMeta, Bytes)>,
    files: Arc<SnapshotFiles>,
    flushed: Flushed,
}

impl RaftSnapshotBuilder<TypeConfig> for Builder {
    type SnapshotData = SnapshotFile;

    async fn build_snapshot(&mut self) -> Result<Snapshot<SnapshotFile>, io::Error> {
        let Some(upto) = self.upto else {
            return Err(io::Error::other("nothing applied yet to snapshot"));
        };
        // A leader may apply what a quorum of followers has made durable
        // before its own write finishes: a rebuild reads the local log, and
        // the log is purged up to the snapshot.
        self.flushed
            .wait_for(|f| f.is_some_and(|f| f >= upto.index))
            .await
            .map_err(|_| io::Error::other("the log writer has stopped"))?;
        let files = self.files.clone();
        let live = self.live.take();
        let (meta, path) = tokio::task::spawn_blocking(move || match live {
            Some((meta, tree)) => {
                files::save_encoded(&*files.disk, &files.dirs, &meta, &tree, files.retain)
                    .map(|path| (meta, path))
            }
            None => files::compact(
                &*files.disk,
                &files.dirs,
                files.tree_config,
                upto.index,
                files.retain,
            ),
        })
        .await
        .map_err(io::Error::other)?
        .map_err(io::Error::other)?;
        info!(snapshot = %path.display(), "snapshot written");
        *self.files.current.lock() = Some((meta.clone(), path.clone()));
        Ok(Snapshot {
            meta,
            snapshot: SnapshotFile(path),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paddock_proto::{CreateRequest, Request};
    use paddock_tree::{acl, Txn, TxnOp};

    fn with_nodes(n: usize, bytes: usize) -> DataTree {
        let mut tree = DataTree::new(TreeConfig::default());
        for i in 0..n {
            tree.apply(&Txn {
                session_id: 0,
                time_ms: 0,
                auth: vec![],
                op: TxnOp::Write(Request::Create {
                    opcode: paddock_proto::op::CREATE,
                    req: CreateRequest {
                        path: format!("/n{i}"),
                        data: Some(Bytes::from(vec![b'x'; bytes])),
                        acl: acl::open_acl_unsafe(),
                        flags: 0,
                    },
                }),
            });
        }
        tree
    }

    #[test]
    fn only_a_small_tree_is_encoded_live() {
        let tree = with_nodes(10, 100);
        let mut whole = BytesMut::new();
        tree.encode_snapshot(&mut whole);
        let count = tree.node_count();
        assert_eq!(encode_if_small(&tree, count), Some(whole.freeze()));
        assert_eq!(encode_if_small(&tree, count - 1), None, "too many znodes");
        let big = with_nodes(5, 1 << 20);
        assert_eq!(encode_if_small(&big, count), None, "too many bytes");
    }
}
