//! State from disk: lock the data directory, load the newest good snapshot,
//! replay the log after it, and open the log for appending. The same
//! rebuild, read-only and up to a chosen zxid, makes new snapshots in the
//! background (compaction), so the live tree never pauses for one.

use crate::config::ServerConfig;
use bytes::BytesMut;
use paddock_proto::Reader;
use paddock_storage::snapshot::{list_snapshots, read_snapshot, write_snapshot};
use paddock_storage::wal::list_segments;
use paddock_storage::{read_log, recover, Disk, Wal, WalError};
use paddock_tree::{DataTree, TreeConfig, Txn};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tracing::{info, warn};

#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error("cannot use data directory {dir}: {source}")]
    DataDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("data directory {0} is in use by another server (lock file held)")]
    Locked(PathBuf),
    #[error("the stored state is damaged, refusing to start: {0}")]
    Storage(#[from] WalError),
    #[error("the log is damaged, refusing to start: record zxid 0x{zxid:x}: {reason}")]
    Record { zxid: i64, reason: String },
    #[error("refusing to start: {0}")]
    Gap(String),
    #[error("{0} already holds Paddock data")]
    NotEmpty(PathBuf),
}

/// Holds the data directory's lock for as long as the server runs.
pub struct DataLock {
    _file: File,
}

/// Where the files live: snapshots under the data directory, the log under
/// dataLogDir (or the data directory).
#[derive(Debug, Clone)]
pub struct Dirs {
    pub snapshots: PathBuf,
    pub log: PathBuf,
}

impl Dirs {
    pub fn of(config: &ServerConfig) -> Dirs {
        Dirs {
            snapshots: config.data_dir.join("snap"),
            log: config
                .data_log_dir
                .as_ref()
                .unwrap_or(&config.data_dir)
                .join("wal"),
        }
    }
}

/// The state a server starts with.
pub struct Recovered {
    pub lock: DataLock,
    pub tree: DataTree,
    pub wal: Wal,
}

/// Creates the directories and takes the data directory's lock.
fn lock_dirs(config: &ServerConfig) -> Result<(Dirs, DataLock), RecoveryError> {
    let dirs = Dirs::of(config);
    for dir in [&dirs.snapshots, &dirs.log] {
        std::fs::create_dir_all(dir).map_err(|source| RecoveryError::DataDir {
            dir: dir.clone(),
            source,
        })?;
    }
    let lock_path = config.data_dir.join("paddock.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|source| RecoveryError::DataDir {
            dir: config.data_dir.clone(),
            source,
        })?;
    if file.try_lock().is_err() {
        return Err(RecoveryError::Locked(config.data_dir.clone()));
    }
    Ok((dirs, DataLock { _file: file }))
}

/// Seeds a new data directory with `tree` as its only snapshot (`paddock
/// import`). A directory that already holds a snapshot or log is refused.
pub fn seed(config: &ServerConfig, tree: &DataTree) -> Result<PathBuf, RecoveryError> {
    let (dirs, _lock) = lock_dirs(config)?;
    let disk = paddock_storage::FsDisk;
    if !list_snapshots(&disk, &dirs.snapshots)?.is_empty()
        || !list_segments(&disk, &dirs.log)?.is_empty()
    {
        return Err(RecoveryError::NotEmpty(config.data_dir.clone()));
    }
    let mut payload = BytesMut::new();
    tree.encode_snapshot(&mut payload);
    Ok(write_snapshot(
        &disk,
        &dirs.snapshots,
        tree.last_zxid(),
        &payload,
    )?)
}

pub fn recover_state(
    config: &ServerConfig,
    disk: Arc<dyn Disk>,
) -> Result<Recovered, RecoveryError> {
    let (dirs, lock) = lock_dirs(config)?;
    // A snapshot being written when the server died is only a temporary
    // file; it was never renamed into place, so it can go.
    for path in disk
        .list(&dirs.snapshots)
        .map_err(|source| RecoveryError::DataDir {
            dir: dirs.snapshots.clone(),
            source,
        })?
    {
        if path.extension().is_some_and(|e| e == "tmp") {
            disk.remove(&path)
                .map_err(|source| RecoveryError::DataDir {
                    dir: dirs.snapshots.clone(),
                    source,
                })?;
        }
    }
    let tree = rebuild(&*disk, &dirs, tree_config(config), None)?;
    info!(
        zxid = format_args!("0x{:x}", tree.last_zxid()),
        nodes = tree.node_count(),
        sessions = tree.sessions().len(),
        "recovered"
    );
    Ok(Recovered {
        lock,
        tree,
        wal: Wal::new(disk, &dirs.log, config.wal_segment_bytes),
    })
}

pub fn tree_config(config: &ServerConfig) -> TreeConfig {
    TreeConfig {
        extended_types: config.extended_types,
    }
}

/// The newest snapshot that reads back intact, then the log after it.
/// `upto: None` is start-up: the log's torn tail is cut and every record is
/// applied. `Some(z)` is compaction: nothing on disk changes and replay
/// stops at z. Either way the result must reach every snapshot's zxid, so
/// a damaged snapshot is only skipped when the log still covers it.
fn rebuild(
    disk: &dyn Disk,
    dirs: &Dirs,
    config: TreeConfig,
    upto: Option<i64>,
) -> Result<DataTree, RecoveryError> {
    let snapshots = list_snapshots(disk, &dirs.snapshots)?;
    let mut damaged: Option<(i64, WalError)> = None;
    let mut tree = None;
    for (zxid, path) in &snapshots {
        match read_snapshot(disk, path).and_then(|bytes| {
            DataTree::decode_snapshot(&mut Reader::new(bytes), config).map_err(|e| {
                WalError::Corrupt {
                    path: path.clone(),
                    offset: 0,
                    reason: e.to_string(),
                }
            })
        }) {
            Ok(t) => {
                tree = Some(t);
                break;
            }
            Err(e) => {
                warn!("{e}; trying an older snapshot");
                damaged.get_or_insert((*zxid, e));
            }
        }
    }
    let mut tree = tree.unwrap_or_else(|| DataTree::new(config));
    let log = match upto {
        None => recover(disk, &dirs.log)?,
        Some(_) => read_log(disk, &dirs.log)?,
    };
    if let Some((path, offset)) = &log.truncated {
        if upto.is_none() {
            warn!(file = %path.display(), offset, "cut an unfinished write off the end of the log");
        }
    }
    let base = tree.last_zxid();
    if let Some(first) = log.records.first() {
        if first.zxid > base + 1 {
            let why = match &damaged {
                Some((_, e)) => format!("{e}; "),
                None => String::new(),
            };
            return Err(RecoveryError::Gap(format!(
                "{why}the log starts at zxid 0x{:x} but the newest usable snapshot ends at 0x{base:x}",
                first.zxid
            )));
        }
    }
    let end = upto.unwrap_or(i64::MAX);
    for record in log
        .records
        .iter()
        .filter(|r| r.zxid > base && r.zxid <= end)
    {
        let bad = |reason: String| RecoveryError::Record {
            zxid: record.zxid,
            reason,
        };
        let txn = Txn::decode(record.txn.clone()).map_err(|e| bad(e.to_string()))?;
        tree.apply(&txn);
    }
    if let Some((zxid, e)) = damaged {
        if tree.last_zxid() < zxid {
            return Err(RecoveryError::Gap(format!(
                "{e}, and the log does not cover up to its zxid 0x{zxid:x}"
            )));
        }
    }
    Ok(tree)
}

/// Writes a snapshot at `upto` (a durable zxid) rebuilt from disk, then
/// deletes snapshots beyond the newest `retain` and log segments that only
/// hold transactions older than the oldest snapshot kept.
pub fn compact(
    disk: &dyn Disk,
    dirs: &Dirs,
    config: TreeConfig,
    upto: i64,
    retain: usize,
) -> Result<PathBuf, RecoveryError> {
    let tree = rebuild(disk, dirs, config, Some(upto))?;
    let mut payload = BytesMut::new();
    tree.encode_snapshot(&mut payload);
    let path = write_snapshot(disk, &dirs.snapshots, tree.last_zxid(), &payload)?;
    let snapshots = list_snapshots(disk, &dirs.snapshots)?;
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| RecoveryError::Storage(WalError::Io { path, source })
    };
    for (_, old) in snapshots.iter().skip(retain) {
        disk.remove(old).map_err(io(old))?;
    }
    if let Some((oldest_kept, _)) = snapshots.get(retain.min(snapshots.len()).saturating_sub(1)) {
        purge_log(disk, &dirs.log, *oldest_kept)?;
    }
    Ok(path)
}

/// Deletes log segments whose every transaction is at or below `zxid`
/// (a segment ends where the next one begins; the newest is never deleted).
fn purge_log(disk: &dyn Disk, dir: &Path, zxid: i64) -> Result<(), RecoveryError> {
    let segments = list_segments(disk, dir)?;
    for pair in segments.windows(2) {
        let (next_first, _) = pair[1];
        if next_first - 1 <= zxid {
            disk.remove(&pair[0].1).map_err(|source| WalError::Io {
                path: pair[0].1.clone(),
                source,
            })?;
        }
    }
    Ok(())
}
