//! openraft's state machine: committed entries applied to the live tree, in
//! log order, each outcome handed to the server's `Applier` while the tree
//! is still locked. A snapshot freezes the tree between two applies (a
//! copy-on-write share of its nodes, see `DataTree::freeze`) and encodes it
//! on a blocking thread, so the live tree never waits for it.

use crate::files::Outcome;
use crate::files::{self, Dirs};
use crate::log_store::{Flushed, LogStore};
use crate::types::{LogId, Snapshot, SnapshotMeta, StoredMembership, TypeConfig};
use crate::Applier;
use futures::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::RaftSnapshotBuilder;
use paddock_storage::Disk;
use paddock_tree::{DataTree, FrozenTree, TreeConfig};
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
    /// In an ensemble: told after every applied batch, so a leader tells
    /// its followers of the commit at once (`announce_commits`).
    pub(crate) applied_batch: Option<Arc<tokio::sync::Notify>>,
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
                let applied =
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
                // Every replica stops here alike: consensus halts rather
                // than guess (openraft stops on a state machine error).
                applied.map_err(io::Error::other)?;
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
        if let Some(batch) = &self.applied_batch {
            batch.notify_one();
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Builder {
        // Made between two applies, so the tree is exactly the state at
        // the last entry applied.
        Builder {
            meta: self.applied.clone(),
            tree: Some(self.tree.read().freeze()),
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
        let announced = meta.clone();
        let (loaded_meta, tree) = tokio::task::spawn_blocking(move || -> io::Result<_> {
            let bytes = paddock_storage::snapshot::read_snapshot(&*files.disk, &snapshot.0)
                .map_err(io::Error::other)?;
            let (meta, tree) = crate::codec::decode_snapshot(bytes).map_err(io::Error::other)?;
            is_announced(&meta, &announced)?;
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
            self.applier.replaced(&mut live);
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

/// Builds one snapshot of the tree frozen when the builder was made, at
/// the position the state machine had applied then.
pub struct Builder {
    meta: SnapshotMeta,
    tree: Option<FrozenTree>,
    files: Arc<SnapshotFiles>,
    flushed: Flushed,
}

impl RaftSnapshotBuilder<TypeConfig> for Builder {
    type SnapshotData = SnapshotFile;

    async fn build_snapshot(&mut self) -> Result<Snapshot<SnapshotFile>, io::Error> {
        let (Some(upto), Some(tree)) = (self.meta.last_log_id, self.tree.take()) else {
            return Err(io::Error::other("nothing applied yet to snapshot"));
        };
        // A leader may apply what a quorum of followers has made durable
        // before its own write finishes; the log is purged up to the
        // snapshot, so the snapshot waits until the local log holds it.
        self.flushed
            .wait_for(|f| f.is_some_and(|f| f >= upto.index))
            .await
            .map_err(|_| io::Error::other("the log writer has stopped"))?;
        let (files, meta) = (self.files.clone(), self.meta.clone());
        let (meta, path) = tokio::task::spawn_blocking(move || {
            files::save(&*files.disk, &files.dirs, &meta, tree, files.retain).map(|p| (meta, p))
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

/// The leader announced what a snapshot file holds: another state under
/// that name would be installed as the one agreed on.
fn is_announced(found: &SnapshotMeta, announced: &SnapshotMeta) -> io::Result<()> {
    if (&found.last_log_id, &found.last_membership)
        != (&announced.last_log_id, &announced.last_membership)
    {
        return Err(io::Error::other(format!(
            "a received snapshot holds the state at {:?}, announced as {:?}",
            found.last_log_id, announced.last_log_id
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Membership;
    use std::collections::BTreeSet;

    #[test]
    fn a_snapshot_is_installed_only_as_what_was_announced() {
        let meta = |index, voters: &[u64]| SnapshotMeta {
            last_log_id: Some(LogId::new_term_index(2, index)),
            last_membership: StoredMembership::new(
                Some(LogId::new_term_index(1, 1)),
                Membership::new_with_defaults(
                    vec![voters.iter().copied().collect::<BTreeSet<_>>()],
                    [],
                ),
            ),
        };
        assert!(is_announced(&meta(40, &[1, 2, 3]), &meta(40, &[1, 2, 3])).is_ok());
        let err = is_announced(&meta(39, &[1, 2, 3]), &meta(40, &[1, 2, 3])).unwrap_err();
        assert!(err.to_string().contains("announced as"), "{err}");
        assert!(is_announced(&meta(40, &[1, 2]), &meta(40, &[1, 2, 3])).is_err());
    }
}
