//! Migration from Apache ZooKeeper: reads a ZooKeeper data directory
//! (`version-2/snapshot.*` and `log.*`) into a Paddock [`DataTree`] with the
//! same nodes, Stats, ACLs, sessions and zxids.
//!
//! Parsing and replay are pure ([`read_snapshot`], [`read_log`],
//! [`ZkState::apply`]); [`import_dir`] only lists and reads the files.

mod log;
mod snapshot;
mod state;

pub use log::{read_log, LogRecord};
pub use snapshot::read_snapshot;
pub use state::ZkState;

use paddock_tree::{DataTree, TreeConfig};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: at offset {offset}: {what}")]
    Damaged {
        path: PathBuf,
        offset: usize,
        what: String,
    },
    #[error("{path}: {what}")]
    Unsupported { path: PathBuf, what: String },
    #[error("{0}")]
    Invalid(String),
}

/// What an import found, for the report.
pub struct Imported {
    pub tree: DataTree,
    pub snapshot: PathBuf,
    pub logs: Vec<PathBuf>,
    pub replayed: usize,
}

/// The `version-2` directory of a ZooKeeper dataDir (or dataLogDir); the
/// directory itself if it holds the files directly.
fn version_dir(dir: &Path) -> PathBuf {
    let v2 = dir.join("version-2");
    if v2.is_dir() {
        v2
    } else {
        dir.to_owned()
    }
}

/// Files named `<prefix>.<hex zxid>`, sorted by zxid.
fn zxid_files(dir: &Path, prefix: &str) -> Result<Vec<(i64, PathBuf)>, ImportError> {
    let io = |source| ImportError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
            continue;
        };
        let Some(rest) = name.strip_prefix(prefix).and_then(|r| r.strip_prefix('.')) else {
            continue;
        };
        if let Some((_, suffix)) = rest.split_once('.') {
            return Err(ImportError::Unsupported {
                path,
                what: format!(
                    "compressed snapshots (.{suffix}) are not supported; restart ZooKeeper \
                     with zookeeper.snapshot.compression.method unset to write a plain one"
                ),
            });
        }
        if let Ok(zxid) = i64::from_str_radix(rest, 16) {
            found.push((zxid, path));
        }
    }
    found.sort();
    Ok(found)
}

fn read(path: &Path) -> Result<Vec<u8>, ImportError> {
    std::fs::read(path).map_err(|source| ImportError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Imports ZooKeeper's newest intact snapshot plus every logged transaction
/// after it. `log_dir` is ZooKeeper's dataLogDir when it differs.
pub fn import_dir(
    data_dir: &Path,
    log_dir: Option<&Path>,
    config: TreeConfig,
) -> Result<Imported, ImportError> {
    let snap_dir = version_dir(data_dir);
    let log_dir = version_dir(log_dir.unwrap_or(data_dir));
    let snapshots = zxid_files(&snap_dir, "snapshot")?;
    let mut problems = Vec::new();
    let mut chosen = None;
    for (zxid, path) in snapshots.iter().rev() {
        match read_snapshot(&read(path)?, *zxid) {
            Ok(state) => {
                chosen = Some((state, path.clone()));
                break;
            }
            Err((offset, what)) => {
                problems.push(format!("{}: offset {offset}: {what}", path.display()))
            }
        }
    }
    let Some((mut state, snapshot)) = chosen else {
        return Err(ImportError::Invalid(if problems.is_empty() {
            format!(
                "no ZooKeeper snapshot (snapshot.<zxid>) in {}",
                snap_dir.display()
            )
        } else {
            format!("no intact ZooKeeper snapshot: {}", problems.join("; "))
        }));
    };
    let start = state.last_zxid;
    let logs = zxid_files(&log_dir, "log")?;
    // The log holding `start + 1` is the last one starting at or before it.
    let first = logs
        .iter()
        .rposition(|(zxid, _)| *zxid <= start + 1)
        .unwrap_or(0);
    let mut used = Vec::new();
    let mut replayed = 0;
    for (_, path) in &logs[first.min(logs.len())..] {
        let file = std::fs::File::open(path).map_err(|source| ImportError::Io {
            path: path.clone(),
            source,
        })?;
        let records = read_log(std::io::BufReader::new(file)).map_err(|(offset, what)| {
            ImportError::Damaged {
                path: path.clone(),
                offset,
                what,
            }
        })?;
        for record in &records {
            if record.zxid <= state.last_zxid {
                continue;
            }
            state.apply(record).map_err(|what| ImportError::Damaged {
                path: path.clone(),
                offset: record.offset,
                what,
            })?;
            replayed += 1;
        }
        used.push(path.clone());
    }
    let tree = state.into_tree(config).map_err(ImportError::Invalid)?;
    Ok(Imported {
        tree,
        snapshot,
        logs: used,
        replayed,
    })
}
