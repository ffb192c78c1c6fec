//! The replica's files: snapshots, the log and the raft-state file, read at
//! start-up; new snapshots are written from a frozen tree on a blocking
//! thread, so the live tree never pauses for one.

use crate::codec::{self, RaftState, Record};
use crate::types::{Command, Entry, Payload, SnapshotMeta, StoredMembership};
use bytes::BytesMut;
use paddock_proto::Reader;
use paddock_storage::snapshot::{list_snapshots, read_snapshot, write_snapshot};
use paddock_storage::{list_segments, recover, Disk, WalError};
use paddock_tree::{Applied, DataTree, FrozenTree, TreeConfig, Txn};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tracing::{info, warn};

/// Bytes of a tree's snapshot encoding handed on at a time.
const SNAPSHOT_PART: usize = 1 << 20;

/// Where the files live.
#[derive(Debug, Clone)]
pub struct Dirs {
    pub snapshots: PathBuf,
    pub log: PathBuf,
}

impl Dirs {
    fn state_file(&self) -> PathBuf {
        self.log.join("raft-state")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("{}", storage_problem(.0))]
    Storage(WalError),
    #[error("the log is damaged, refusing to start: record {index}: {reason}")]
    Record { index: i64, reason: String },
    #[error("refusing to start: {0}")]
    Gap(String),
    #[error("{0} already holds Paddock data")]
    NotEmpty(PathBuf),
}

/// A file that cannot be read or written (missing permissions, say) is
/// not damage.
fn storage_problem(e: &WalError) -> String {
    match e {
        WalError::Io { .. } => format!("cannot use the stored state, refusing to start: {e}"),
        _ => format!("the stored state is damaged, refusing to start: {e}"),
    }
}

impl From<WalError> for FilesError {
    fn from(e: WalError) -> FilesError {
        FilesError::Storage(e)
    }
}

/// The state of the files: a tree at some log position, and the log.
pub struct Loaded {
    pub tree: DataTree,
    /// The last log entry the tree includes, and the membership then.
    pub applied: SnapshotMeta,
    /// The log's entries as they stand after any replacements, by index.
    pub entries: BTreeMap<u64, Entry>,
    pub state: RaftState,
    /// The newest intact snapshot and what it covers.
    pub snapshot: Option<(SnapshotMeta, PathBuf)>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FilesError + '_ {
    move |source| {
        FilesError::Storage(WalError::Io {
            path: path.to_owned(),
            source,
        })
    }
}

pub fn read_state(disk: &dyn Disk, dirs: &Dirs) -> Result<RaftState, FilesError> {
    let path = dirs.state_file();
    match disk.read(&path) {
        Ok(bytes) => codec::decode_state(&bytes).map_err(|reason| {
            FilesError::Storage(WalError::Corrupt {
                path,
                offset: 0,
                reason,
            })
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RaftState::default()),
        Err(e) => Err(io(&path)(e)),
    }
}

pub fn write_state(disk: &dyn Disk, dirs: &Dirs, state: &RaftState) -> std::io::Result<()> {
    disk.write_atomic(&dirs.state_file(), &codec::encode_state(state))
}

/// Decodes the log's records into the entries that stand, from index
/// `from` on. A record below `from` is not decoded; it only drops what it
/// replaces (everything from its index on).
pub(crate) fn standing_entries(
    records: Vec<paddock_storage::Record>,
    from: u64,
) -> Result<BTreeMap<u64, Entry>, FilesError> {
    let mut out = BTreeMap::new();
    for record in records {
        let bad = |reason: String| FilesError::Record {
            index: record.index,
            reason,
        };
        let index = u64::try_from(record.index).map_err(|_| bad("negative index".into()))?;
        if index < from {
            cut_from(&mut out, index);
            continue;
        }
        match codec::decode_record(index, record.body.clone()).map_err(|e| bad(e.to_string()))? {
            Record::Entry(e) => {
                cut_from(&mut out, index);
                out.insert(index, e);
            }
            Record::TruncateFrom(i) => cut_from(&mut out, i),
        }
    }
    Ok(out)
}

/// Drops the entries from `index` on. Almost every record follows the last
/// one, and `split_off` would rebuild the tree's right edge even then.
fn cut_from(entries: &mut BTreeMap<u64, Entry>, index: u64) {
    if entries
        .last_key_value()
        .is_some_and(|(&last, _)| last >= index)
    {
        entries.split_off(&index);
    }
}

/// What applying one command gave.
pub(crate) enum Outcome<'a> {
    Txn(&'a Txn, Applied),
    /// A barrier was reached with the tree at `zxid`; with `claim`, that
    /// session's client reattached to the barrier's proposer.
    Barrier {
        zxid: i64,
        claim: Option<i64>,
    },
}

/// Applies one log entry: a transaction to the tree, handing its outcome
/// to `done`; a barrier (a command without a transaction, for `sync`) to
/// `done` as None; a membership to `applied`. The live state machine and
/// start-up share it, so they cannot disagree.
///
/// A committed transaction that does not decode is an error: the log's
/// checksums held, so it was proposed so, a bug no replica may guess past.
pub(crate) fn apply_entry(
    tree: &mut DataTree,
    applied: &mut SnapshotMeta,
    entry: &Entry,
    mut done: impl FnMut(&Command, Outcome<'_>),
) -> Result<(), String> {
    match &entry.payload {
        Payload::Blank => {}
        Payload::Normal(cmd) if cmd.txn.is_empty() => done(
            cmd,
            Outcome::Barrier {
                zxid: tree.last_zxid(),
                claim: cmd.claim,
            },
        ),
        // A leader's decision (an expiry, a membership for
        // /zookeeper/config) appended in another term than it was decided
        // in: that leader's view is void (every replica sees the same
        // terms, so every one skips it).
        Payload::Normal(cmd)
            if cmd
                .expiry_term
                .is_some_and(|t| t != entry.log_id.leader_id.term) =>
        {
            info!(
                index = entry.log_id.index,
                "skipping a leader's decision from another term"
            );
        }
        Payload::Normal(cmd) => {
            let txn = Txn::decode(cmd.txn.clone()).map_err(|e| {
                format!(
                    "the committed entry {} holds an undecodable transaction: {e}",
                    entry.log_id.index
                )
            })?;
            let outcome = tree.apply(&txn);
            done(cmd, Outcome::Txn(&txn, outcome));
        }
        Payload::Membership(m) => {
            applied.last_membership = StoredMembership::new(Some(entry.log_id), m.clone());
        }
    }
    applied.last_log_id = Some(entry.log_id);
    Ok(())
}

/// The newest snapshot that reads back intact, then the log, at start-up:
/// the log's torn tail is cut, and entries are applied up to the last one
/// known to be committed (covered by a snapshot or purged); the rest is
/// left to consensus. The result must reach every snapshot's position, so
/// a damaged snapshot is only skipped when the log still covers it.
pub fn load(disk: &dyn Disk, dirs: &Dirs, config: TreeConfig) -> Result<Loaded, FilesError> {
    let snapshots = list_snapshots(disk, &dirs.snapshots)?;
    let Newest {
        mut applied,
        mut tree,
        snapshot,
        damaged,
    } = newest_snapshot(disk, &snapshots, config);
    let base = codec::snapshot_position(applied.last_log_id.as_ref());
    // Only what follows the snapshot is replayed: segments wholly before
    // it are not read (a whole log of them would cost seconds and hundreds
    // of MiB at start-up).
    let log = recover(disk, &dirs.log, base)?;
    if let Some((path, offset)) = &log.truncated {
        warn!(file = %path.display(), offset, "cut an unfinished write off the end of the log");
    }
    // The whole log goes to the log store.
    let entries = standing_entries(log.records, 0)?;
    let state = read_state(disk, dirs)?;
    let base = base as u64;
    if let Some(&first) = entries.keys().next() {
        if first > base {
            let why = match &damaged {
                Some((_, e)) => format!("{e}; "),
                None => String::new(),
            };
            return Err(FilesError::Gap(format!(
                "{why}the log starts at index {first} but the newest usable snapshot ends before index {base}"
            )));
        }
    }
    let committed = |pos: i64| (pos as u64).checked_sub(1);
    let purged = state.last_purged.map(|l| l.index);
    let end = purged.max(snapshots.first().and_then(|(pos, _)| committed(*pos)));
    if let Some(end) = end.filter(|e| *e >= base) {
        apply_range(&mut tree, &mut applied, &entries, base..=end)?;
    }
    let reached = codec::snapshot_position(applied.last_log_id.as_ref());
    if let Some((position, e)) = damaged {
        if reached < position {
            return Err(FilesError::Gap(format!(
                "{e}, and the log does not cover what it held (up to index {})",
                position - 1
            )));
        }
    }
    Ok(Loaded {
        tree,
        applied,
        entries,
        state,
        snapshot,
    })
}

/// The tree as of the end of the log (the newest intact snapshot, then
/// every entry after it), read without changing anything on disk, for
/// inspection. On an ensemble member the last entries may not have been
/// committed yet. Returns the tree and the index of its last entry.
pub fn read_to_end(
    disk: &dyn Disk,
    dirs: &Dirs,
    config: TreeConfig,
) -> Result<(DataTree, Option<u64>), FilesError> {
    let snapshots = list_snapshots(disk, &dirs.snapshots)?;
    let Newest {
        mut applied,
        mut tree,
        damaged,
        ..
    } = newest_snapshot(disk, &snapshots, config);
    let base = codec::snapshot_position(applied.last_log_id.as_ref());
    let log = paddock_storage::wal::read_log_from(disk, &dirs.log, base)?;
    let entries = standing_entries(log.records, base as u64)?;
    // The log must go on from the snapshot: a purge (a server may be
    // running) or a damaged newest snapshot can leave a hole.
    let first = entries.range(base as u64..).next().map(|(&i, _)| i);
    if let Some(first) = first.filter(|&f| f > base as u64) {
        let why = damaged.map(|(_, e)| format!("{e}; ")).unwrap_or_default();
        return Err(FilesError::Gap(format!(
            "{why}the log goes on at index {first} but the newest usable snapshot ends before index {base}"
        )));
    }
    apply_range(&mut tree, &mut applied, &entries, base as u64..=u64::MAX)?;
    Ok((tree, applied.last_log_id.map(|l| l.index)))
}

/// Applies the entries in `range` to `tree`.
fn apply_range(
    tree: &mut DataTree,
    applied: &mut SnapshotMeta,
    entries: &BTreeMap<u64, Entry>,
    range: std::ops::RangeInclusive<u64>,
) -> Result<(), FilesError> {
    for (&index, entry) in entries.range(range) {
        apply_entry(tree, applied, entry, |_, _| {}).map_err(|reason| FilesError::Record {
            index: index as i64,
            reason,
        })?;
    }
    Ok(())
}

/// The newest snapshot that reads back intact (or an empty tree), and the
/// newest damaged one passed over on the way.
struct Newest {
    applied: SnapshotMeta,
    tree: DataTree,
    snapshot: Option<(SnapshotMeta, PathBuf)>,
    damaged: Option<(i64, WalError)>,
}

fn newest_snapshot(disk: &dyn Disk, snapshots: &[(i64, PathBuf)], config: TreeConfig) -> Newest {
    let mut damaged: Option<(i64, WalError)> = None;
    let mut found = None;
    for (position, path) in snapshots {
        let decoded = read_snapshot(disk, path).and_then(|bytes| {
            let corrupt = |reason: String| WalError::Corrupt {
                path: path.clone(),
                offset: 0,
                reason,
            };
            let (meta, tree) = codec::decode_snapshot(bytes).map_err(|e| corrupt(e.to_string()))?;
            let tree = DataTree::decode_snapshot(&mut Reader::new(tree), config)
                .map_err(|e| corrupt(e.to_string()))?;
            Ok((meta, tree))
        });
        match decoded {
            Ok((meta, tree)) => {
                found = Some((meta, tree, path.clone()));
                break;
            }
            Err(e) => {
                warn!("{e}; trying an older snapshot");
                damaged.get_or_insert((*position, e));
            }
        }
    }
    let (applied, tree, snapshot) = match found {
        Some((meta, tree, path)) => (meta.clone(), tree, Some((meta, path))),
        None => (SnapshotMeta::default(), DataTree::new(config), None),
    };
    Newest {
        applied,
        tree,
        snapshot,
        damaged,
    }
}

/// Writes the snapshot of `tree` at `meta`'s position. The tree is
/// encoded into the compressor a part at a time, never held encoded
/// whole, and dropped as soon as it is encoded (before the file is
/// synced): a frozen tree makes the live one copy what it changes.
pub fn write_tree(
    disk: &dyn Disk,
    dirs: &Dirs,
    meta: &SnapshotMeta,
    tree: FrozenTree,
) -> Result<PathBuf, FilesError> {
    let mut head = BytesMut::new();
    codec::encode_snapshot_meta(meta, &mut head);
    let position = codec::snapshot_position(meta.last_log_id.as_ref());
    // The compressed frame records its length, which is counted first.
    let payload_len = (head.len() + tree.snapshot_len()) as u64;
    Ok(write_snapshot(
        disk,
        &dirs.snapshots,
        position,
        payload_len,
        |out| {
            out.write_all(&head)?;
            let mut written = Ok(());
            let mut buf = BytesMut::new();
            tree.encode_snapshot_in_parts(&mut buf, SNAPSHOT_PART, |part| {
                if written.is_ok() {
                    written = out.write_all(part);
                }
                part.clear();
            });
            drop(tree);
            written
        },
    )?)
}

/// Writes the snapshot of `tree` at `meta`'s position, then retires and
/// slowly removes snapshots beyond the newest `retain`.
pub fn save(
    disk: &dyn Disk,
    dirs: &Dirs,
    meta: &SnapshotMeta,
    tree: FrozenTree,
    retain: usize,
) -> Result<PathBuf, FilesError> {
    let path = write_tree(disk, dirs, meta, tree)?;
    retire_beyond(disk, dirs, retain)?;
    Ok(path)
}

fn retire_beyond(disk: &dyn Disk, dirs: &Dirs, retain: usize) -> Result<(), FilesError> {
    let old = list_snapshots(disk, &dirs.snapshots)?
        .into_iter()
        .skip(retain.max(1))
        .map(|(_, path)| path);
    retire(disk, old.collect())?;
    free_retired(disk, &dirs.snapshots)
}

/// Renames `doomed` to their retiring names: nothing reads them from then
/// on, and [`free_retired`] removes them.
fn retire(disk: &dyn Disk, doomed: Vec<PathBuf>) -> Result<(), FilesError> {
    doomed
        .iter()
        .try_for_each(|path| disk.retire(path).map_err(io(path)))
}

/// Removes, slowly (see [`Disk::remove_slowly`]), the retired files of
/// `dir`, including any a crash left behind.
pub fn free_retired(disk: &dyn Disk, dir: &Path) -> Result<(), FilesError> {
    for path in disk.list(dir).map_err(io(dir))? {
        if path == paddock_storage::retiring_name(&path) {
            disk.remove_slowly(&path).map_err(io(&path))?;
        }
    }
    Ok(())
}

/// Retires log segments whose every entry is at or below `index` and
/// older than the oldest snapshot kept (a segment ends where the next one
/// is named; the newest segment is never retired); [`free_retired`]
/// removes them.
pub fn purge_log(disk: &dyn Disk, dirs: &Dirs, index: u64) -> Result<(), FilesError> {
    let oldest_kept = list_snapshots(disk, &dirs.snapshots)?
        .last()
        .map_or(0, |(pos, _)| *pos);
    let bound = (index as i64 + 1).min(oldest_kept);
    let segments = list_segments(disk, &dirs.log)?;
    let doomed = segments
        .windows(2)
        .filter(|pair| pair[1].0 <= bound)
        .map(|pair| pair[0].1.clone());
    retire(disk, doomed.collect())
}

/// Seeds a new data directory with `tree` as its only snapshot (`paddock
/// import`). A directory that already holds a snapshot or log is refused.
pub fn seed(disk: &dyn Disk, dirs: &Dirs, tree: &DataTree) -> Result<PathBuf, FilesError> {
    if !list_snapshots(disk, &dirs.snapshots)?.is_empty()
        || !list_segments(disk, &dirs.log)?.is_empty()
    {
        return Err(FilesError::NotEmpty(dirs.snapshots.clone()));
    }
    write_tree(disk, dirs, &SnapshotMeta::default(), tree.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_cannot_be_read_is_not_called_damaged() {
        let denied = FilesError::Storage(WalError::Io {
            path: "/data/wal/wal-0000000000000001.log".into(),
            source: std::io::ErrorKind::PermissionDenied.into(),
        });
        assert_eq!(
            denied.to_string(),
            "cannot use the stored state, refusing to start: \
             /data/wal/wal-0000000000000001.log: permission denied"
        );
        let damaged = FilesError::Storage(WalError::Corrupt {
            path: "/data/wal/raft-state".into(),
            offset: 0,
            reason: "checksum mismatch".into(),
        });
        assert!(damaged
            .to_string()
            .starts_with("the stored state is damaged"));
    }
    use crate::types::LogId;

    /// A log record at `index`: an entry of `term`, or with no term a
    /// truncation marker.
    fn record(index: u64, term: Option<u64>) -> paddock_storage::Record {
        let mut body = BytesMut::new();
        match term {
            Some(term) => codec::encode_entry(
                &Entry {
                    log_id: LogId::new_term_index(term, index),
                    payload: Payload::Blank,
                },
                &mut body,
            ),
            None => codec::encode_truncate(&mut body),
        }
        paddock_storage::Record {
            index: index as i64,
            body: body.freeze(),
        }
    }

    fn standing_terms(records: &[(u64, Option<u64>)], from: u64) -> Vec<(u64, u64)> {
        let records = records.iter().map(|&(i, t)| record(i, t)).collect();
        standing_entries(records, from)
            .expect("decodes")
            .values()
            .map(|e| (e.log_id.index, e.log_id.leader_id.term))
            .collect()
    }

    /// A data directory whose log holds blank entries at `indexes`
    /// (term 1) and no snapshot.
    fn log_only(indexes: std::ops::RangeInclusive<u64>) -> (tempfile::TempDir, Dirs) {
        let dir = tempfile::tempdir().unwrap();
        let dirs = Dirs {
            snapshots: dir.path().join("snap"),
            log: dir.path().join("wal"),
        };
        std::fs::create_dir_all(&dirs.snapshots).unwrap();
        std::fs::create_dir_all(&dirs.log).unwrap();
        let disk: std::sync::Arc<dyn Disk> = std::sync::Arc::new(paddock_storage::FsDisk);
        let mut wal = paddock_storage::Wal::new(disk, &dirs.log, 1 << 16).unwrap();
        let records: Vec<_> = indexes.map(|i| record(i, Some(1))).collect();
        let batch: Vec<(i64, &[u8])> = records.iter().map(|r| (r.index, &r.body[..])).collect();
        wal.append(&batch).unwrap();
        (dir, dirs)
    }

    #[test]
    fn the_tree_at_the_logs_end_needs_the_log_to_go_on_from_the_snapshot() {
        // A log begins at index 0 (openraft's first entry).
        let (_dir, dirs) = log_only(0..=3);
        let (_, last) =
            read_to_end(&paddock_storage::FsDisk, &dirs, TreeConfig::default()).unwrap();
        assert_eq!(last, Some(3), "every entry applied");
        // Purged up to 4 with no snapshot to cover it: a hole, refused.
        let (_dir, dirs) = log_only(5..=7);
        let err = read_to_end(&paddock_storage::FsDisk, &dirs, TreeConfig::default())
            .err()
            .expect("a hole is refused");
        assert!(
            err.to_string().contains("the log goes on at index 5"),
            "{err}"
        );
    }

    #[test]
    fn a_later_record_at_an_earlier_index_replaces_what_followed() {
        let log = [(1, 1), (2, 1), (3, 1), (4, 1), (2, 2), (3, 2)]
            .map(|(i, t)| (i, Some(t)))
            .into_iter()
            .chain([(3, None), (4, Some(3))])
            .collect::<Vec<_>>();
        assert_eq!(standing_terms(&log, 0), [(1, 1), (2, 2), (4, 3)]);
        assert_eq!(standing_terms(&log, 2), [(2, 2), (4, 3)]);
        assert_eq!(standing_terms(&log, 4), [(4, 3)]);
    }

    #[test]
    fn a_record_before_the_start_still_drops_what_it_replaces() {
        let log = [(1, Some(1)), (2, Some(1)), (3, Some(1)), (2, Some(2))];
        assert_eq!(standing_terms(&log, 2), [(2, 2)]);
        assert_eq!(standing_terms(&log, 3), []);
        let truncated = [(3, Some(1)), (4, Some(1)), (2, None), (3, Some(2))];
        assert_eq!(standing_terms(&truncated, 3), [(3, 2)]);
    }

    #[test]
    fn a_leaders_expiry_applies_only_in_the_term_it_was_decided_in() {
        let mut tree = DataTree::new(TreeConfig::default());
        let mut applied = SnapshotMeta::default();
        let txn = |op| {
            let mut buf = BytesMut::new();
            Txn {
                session_id: 0x77,
                time_ms: 1,
                auth: Vec::new(),
                op,
            }
            .encode(&mut buf);
            buf.freeze()
        };
        let entry = |index, term, txn, expiry_term| Entry {
            log_id: LogId::new_term_index(term, index),
            payload: Payload::Normal(Command {
                origin: 1,
                seq: index,
                txn,
                claim: None,
                expiry_term,
            }),
        };
        let mut seen = Vec::new();
        let create = txn(paddock_tree::TxnOp::CreateSession { timeout_ms: 4000 });
        let close = txn(paddock_tree::TxnOp::CloseSession);
        for e in [
            entry(1, 2, create, None),
            entry(2, 3, close.clone(), Some(2)),
            entry(3, 3, close, Some(3)),
        ] {
            apply_entry(&mut tree, &mut applied, &e, |cmd, _| seen.push(cmd.seq)).unwrap();
            if e.log_id.index == 2 {
                assert!(
                    tree.session_exists(0x77),
                    "decided in term 2, appended in 3"
                );
            }
        }
        assert_eq!(seen, [1, 3], "the stale expiry is not applied");
        assert!(!tree.session_exists(0x77));
        assert_eq!(tree.last_zxid(), 2, "the skipped entry takes no zxid");
        assert_eq!(applied.last_log_id.map(|l| l.index), Some(3));
    }

    #[test]
    fn a_committed_transaction_that_does_not_decode_stops_the_apply() {
        let mut tree = DataTree::new(TreeConfig::default());
        let mut applied = SnapshotMeta::default();
        let entry = Entry {
            log_id: LogId::new_term_index(1, 5),
            payload: Payload::Normal(Command {
                origin: 1,
                seq: 1,
                txn: bytes::Bytes::from_static(b"\x00\x01"),
                claim: None,
                expiry_term: None,
            }),
        };
        let err = apply_entry(&mut tree, &mut applied, &entry, |_, _| {
            panic!("nothing is handed on")
        })
        .unwrap_err();
        assert!(err.contains("committed entry 5"), "{err}");
        assert_eq!(applied.last_log_id, None, "not counted as applied");
    }
}
