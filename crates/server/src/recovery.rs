//! The data directory: its lock, where its files are, and the state read
//! from them (through `paddock-replication`, which owns their format).

use crate::config::ServerConfig;
use paddock_replication::{Ensemble, FilesError, Opened, Options, QuorumTls};
use paddock_storage::Disk;
use paddock_tree::{DataTree, TreeConfig};
use std::fs::{File, OpenOptions};
use std::path::PathBuf;
use std::sync::Arc;
use tracing::{info, warn};

pub use paddock_replication::Dirs;

#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error("cannot use data directory {dir}: {source}")]
    DataDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("data directory {0} is in use by another server (lock file held)")]
    Locked(PathBuf),
    #[error(transparent)]
    Files(#[from] FilesError),
    #[error("--rebuild copies the state from the other servers of an ensemble; this server is standalone (no server.N lines)")]
    RebuildStandalone,
    #[error("cannot set the damaged files aside: {0}")]
    SetAside(std::io::Error),
    #[error("paddock.quorum.secretFile {path}: {why}")]
    Secret { path: PathBuf, why: String },
    #[error("sslQuorum: {0}")]
    QuorumTls(paddock_tls::TlsError),
}

/// The fewest bytes a quorum secret may have.
const MIN_SECRET_BYTES: usize = 16;

/// The quorum secret from `path` (surrounding whitespace is not part of it).
fn read_secret(path: &std::path::Path) -> Result<Vec<u8>, RecoveryError> {
    let fail = |why: String| RecoveryError::Secret {
        path: path.to_owned(),
        why,
    };
    let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let secret = bytes.trim_ascii().to_vec();
    if secret.len() < MIN_SECRET_BYTES {
        return Err(fail(format!(
            "the secret has {} bytes; it needs at least {MIN_SECRET_BYTES}",
            secret.len()
        )));
    }
    Ok(secret)
}

/// Holds the data directory's lock for as long as the server runs.
pub struct DataLock {
    _file: File,
}

/// Snapshots live under the data directory, the log under dataLogDir (or
/// the data directory).
pub fn dirs(config: &ServerConfig) -> Dirs {
    Dirs {
        snapshots: config.data_dir.join("snap"),
        log: config
            .data_log_dir
            .as_ref()
            .unwrap_or(&config.data_dir)
            .join("wal"),
    }
}

/// The state a server starts with.
pub struct Recovered {
    pub lock: DataLock,
    pub tree: DataTree,
    pub opened: Opened,
}

/// Creates the directories and takes the data directory's lock.
fn lock_dirs(config: &ServerConfig) -> Result<(Dirs, DataLock), RecoveryError> {
    let dirs = dirs(config);
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
    Ok(paddock_replication::seed(
        &paddock_storage::FsDisk,
        &dirs,
        tree,
    )?)
}

/// Locks the data directory, removes what a crash left half-made, and
/// reads the state.
pub fn recover_state(
    config: &ServerConfig,
    disk: Arc<dyn Disk>,
) -> Result<Recovered, RecoveryError> {
    if config.rebuild && config.ensemble.is_none() {
        return Err(RecoveryError::RebuildStandalone);
    }
    let (dirs, lock) = lock_dirs(config)?;
    if config.rebuild {
        let moved =
            paddock_replication::set_aside(&*disk, &dirs).map_err(RecoveryError::SetAside)?;
        for dir in moved {
            warn!(aside = %dir.display(), "moved the old files aside to rebuild from the ensemble");
        }
    }
    // A snapshot being written when the server died is only a temporary
    // file; it was never renamed into place, so it can go.
    let dir_err = |source| RecoveryError::DataDir {
        dir: dirs.snapshots.clone(),
        source,
    };
    for path in disk.list(&dirs.snapshots).map_err(dir_err)? {
        if path.extension().is_some_and(|e| e == "tmp") {
            disk.remove(&path).map_err(dir_err)?;
        }
    }
    let secret = match &config.quorum_secret_file {
        Some(path) => Some(read_secret(path)?),
        None => None,
    };
    let quorum_tls = match config.ssl_quorum {
        true => {
            let tls = &config.quorum_tls;
            if tls.client_auth != paddock_tls::ClientAuth::Need {
                return Err(RecoveryError::QuorumTls(paddock_tls::TlsError(
                    "ssl.quorum.clientAuth must be need: every peer proves a certificate".into(),
                )));
            }
            let hosts = tls.hostname_verification.then(|| {
                config
                    .ensemble
                    .iter()
                    .flat_map(|e| e.members.iter().map(|m| m.host.clone()))
                    .collect()
            });
            let (server, client) = tls
                .server_config()
                .and_then(|server| Ok((server, tls.client_config()?)))
                .map_err(RecoveryError::QuorumTls)?;
            Some(QuorumTls::new(server, client, hosts))
        }
        false => None,
    };
    let options = Options {
        node_id: u64::from(config.server_id),
        dirs,
        segment_bytes: config.wal_segment_bytes,
        snap_count: config.snap_count,
        snap_retain: config.snap_retain_count,
        tree_config: tree_config(config),
        ensemble: config.ensemble.as_ref().map(|e| {
            let specs = |observer: bool| {
                e.members
                    .iter()
                    .filter(|m| m.observer == observer)
                    .map(|m| (m.id, m.spec()))
                    .collect()
            };
            Ensemble {
                voters: specs(false),
                observers: specs(true),
                listen: e.peer_addr,
                secret: secret.clone(),
                tls: quorum_tls.clone(),
            }
        }),
    };
    let (tree, opened) = paddock_replication::open(options, disk)?;
    info!(
        snapshot_zxid = format_args!("0x{:x}", tree.last_zxid()),
        "read the data directory; replaying the log over the latest snapshot"
    );
    Ok(Recovered { lock, tree, opened })
}

pub fn tree_config(config: &ServerConfig) -> TreeConfig {
    TreeConfig {
        extended_types: config.extended_types,
    }
}
