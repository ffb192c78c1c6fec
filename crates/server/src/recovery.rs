//! Start-up from disk: lock the data directory, replay the log into a
//! fresh tree, and open the log for appending.

use crate::config::ServerConfig;
use paddock_storage::{recover, Disk, Wal, WalError};
use paddock_tree::{DataTree, TreeConfig, Txn};
use std::fs::{File, OpenOptions};
use std::path::PathBuf;
use std::sync::Arc;
use tracing::{info, warn};

/// Bytes reserved per log segment.
pub const SEGMENT_BYTES: u64 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error("cannot use data directory {dir}: {source}")]
    DataDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("data directory {0} is in use by another server (lock file held)")]
    Locked(PathBuf),
    #[error("the log is damaged, refusing to start: {0}")]
    Log(#[from] WalError),
    #[error("the log is damaged, refusing to start: record zxid 0x{zxid:x}: {reason}")]
    Record { zxid: i64, reason: String },
}

/// Holds the data directory's lock for as long as the server runs.
pub struct DataLock {
    _file: File,
}

/// The state a server starts with.
pub struct Recovered {
    pub lock: DataLock,
    pub tree: DataTree,
    pub wal: Wal,
}

pub fn recover_state(
    config: &ServerConfig,
    disk: Arc<dyn Disk>,
) -> Result<Recovered, RecoveryError> {
    let data_dir = &config.data_dir;
    let log_dir = config.data_log_dir.as_ref().unwrap_or(data_dir).join("wal");
    let dir_err = |dir: &PathBuf| {
        let dir = dir.clone();
        move |source| RecoveryError::DataDir { dir, source }
    };
    std::fs::create_dir_all(&log_dir).map_err(dir_err(&log_dir))?;
    let lock_path = data_dir.join("paddock.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(dir_err(data_dir))?;
    if file.try_lock().is_err() {
        return Err(RecoveryError::Locked(data_dir.clone()));
    }
    let log = recover(&*disk, &log_dir)?;
    if let Some((path, offset)) = &log.truncated {
        warn!(file = %path.display(), offset, "cut an unfinished write off the end of the log");
    }
    let mut tree = DataTree::new(TreeConfig {
        extended_types: config.extended_types,
    });
    for record in &log.records {
        let bad = |reason: String| RecoveryError::Record {
            zxid: record.zxid,
            reason,
        };
        if record.zxid != tree.last_zxid() + 1 {
            return Err(bad(format!("expected zxid 0x{:x}", tree.last_zxid() + 1)));
        }
        let txn = Txn::decode(record.txn.clone()).map_err(|e| bad(e.to_string()))?;
        tree.apply(&txn);
    }
    info!(
        transactions = log.records.len(),
        zxid = format_args!("0x{:x}", tree.last_zxid()),
        nodes = tree.node_count(),
        sessions = tree.sessions().len(),
        "recovered"
    );
    Ok(Recovered {
        lock: DataLock { _file: file },
        tree,
        wal: Wal::new(disk, &log_dir, SEGMENT_BYTES),
    })
}
