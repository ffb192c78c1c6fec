//! Rebuilding a replica from the ensemble (`paddock server --rebuild`), for
//! a server whose files are damaged. Starting it empty as a voter is not
//! safe: its acknowledgements may have counted for commits the others
//! lack, and an empty voter would vote for a candidate without them. So
//! the server marks the rebuild as under way, moves its files aside, and
//! before consensus runs on it asks the leader to make it a learner (a
//! joint change the other voters commit without it); it catches up from
//! the leader (by snapshot and log) as any learner does, and asks to be a
//! voter again once it holds the leader's whole log. The marker keeps the
//! rebuild going across restarts until it is a voter again; it is written
//! before anything moves, so a crash half-way never leaves an empty
//! server that thinks it may vote.

use crate::peer::{PeerReply, PeerRequest, Peers};
use crate::status::Status;
use crate::{Dirs, ReconfigError, ReplicationError};
use paddock_storage::Disk;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tracing::{info, warn};

/// Beside the log directory (`wal.rebuilding`) while a rebuild is under way.
const MARKER: &str = "rebuilding";
/// How long a rebuilding server looks for a leader to make it a learner
/// before it gives up (and refuses to start).
const STEP_ASIDE_LIMIT: Duration = Duration::from_secs(30);
const RETRY: Duration = Duration::from_millis(500);

fn marker(dirs: &Dirs) -> PathBuf {
    dirs.log.with_extension(MARKER)
}

/// Marks the rebuild as under way, then moves the snapshot and log
/// directories aside (each renamed in place to `<name>.damaged-<unix
/// seconds>`, kept for whoever wants to look at them) and makes them
/// anew. Returns where the old files went.
pub fn set_aside(disk: &dyn Disk, dirs: &Dirs) -> io::Result<Vec<PathBuf>> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    disk.write_atomic(&marker(dirs), b"rebuilding from the ensemble\n")?;
    let mut moved = Vec::new();
    for dir in [&dirs.snapshots, &dirs.log] {
        if !dir.exists() {
            continue;
        }
        let mut name = dir.as_os_str().to_owned();
        name.push(format!(".damaged-{stamp}"));
        let aside = PathBuf::from(name);
        std::fs::rename(dir, &aside)?;
        std::fs::create_dir_all(dir)?;
        sync_parent(dir)?;
        moved.push(aside);
    }
    Ok(moved)
}

fn sync_parent(dir: &Path) -> io::Result<()> {
    match dir.parent() {
        Some(parent) => std::fs::File::open(parent)?.sync_all(),
        None => Ok(()),
    }
}

/// Whether a rebuild is under way in these files.
pub(crate) fn underway(disk: &dyn Disk, dirs: &Dirs) -> bool {
    disk.read(&marker(dirs)).is_ok()
}

/// Before consensus starts on a rebuilding server: the leader makes it a
/// learner (an observer already is one) and expects its log to start
/// again from nothing. Every other configured server is asked until the leader
/// answers; a refusal, or no leader within `STEP_ASIDE_LIMIT`, stops
/// start-up.
pub(crate) async fn step_aside(me: u64, spec: &str, peers: &Peers) -> Result<(), ReplicationError> {
    let until = Instant::now() + STEP_ASIDE_LIMIT;
    let ask = PeerRequest::SetVoter {
        id: me,
        spec: spec.to_owned(),
        voter: false,
    };
    loop {
        for (id, peer) in peers.iter().filter(|(id, _)| **id != me) {
            match peers.link(peer).call(&ask, Duration::from_secs(10)).await {
                Ok(PeerReply::Reconfigured(Ok(version))) => {
                    info!(leader = id, version, "no longer a voter while rebuilding");
                    return Ok(());
                }
                Ok(PeerReply::Reconfigured(Err(e @ ReconfigError::BadArguments(_)))) => {
                    return Err(ReplicationError::Rebuild(format!(
                        "server.{id} refused to make this server a learner: {e}"
                    )));
                }
                _ => {}
            }
        }
        if Instant::now() >= until {
            return Err(ReplicationError::Rebuild(format!(
                "no leader of the ensemble made this server a learner within {} s; \
                 rebuilding needs a quorum of the other servers running",
                STEP_ASIDE_LIMIT.as_secs()
            )));
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// Once consensus runs: when this learner has caught up, a voter asks the
/// leader to count it again (the leader checks it holds its whole log);
/// then the marker goes. Retried until done or the task is aborted.
pub(crate) async fn rejoin(
    mut status: watch::Receiver<Status>,
    me: u64,
    voter_spec: Option<String>,
    peers: Peers,
    disk: std::sync::Arc<dyn Disk>,
    dirs: Dirs,
) {
    loop {
        if status
            .wait_for(|s| s.serving && s.leader.is_some())
            .await
            .is_err()
        {
            return;
        }
        let leader = {
            let s = status.borrow();
            s.leader
                .and_then(|l| s.members.iter().find(|m| m.id == l))
                .map(|m| peers.link_to(m.id, &m.spec))
        };
        let done = match (&voter_spec, leader) {
            (None, _) => true,
            (Some(spec), Some(mut leader)) => {
                let ask = PeerRequest::SetVoter {
                    id: me,
                    spec: spec.clone(),
                    voter: true,
                };
                match leader.call(&ask, Duration::from_secs(10)).await {
                    Ok(PeerReply::Reconfigured(Ok(version))) => {
                        info!(version, "a voter again");
                        true
                    }
                    Ok(PeerReply::Reconfigured(Err(e))) => {
                        info!("not a voter yet: {e}");
                        false
                    }
                    _ => false,
                }
            }
            (Some(_), None) => false,
        };
        if done {
            match disk.remove(&marker(&dirs)) {
                Ok(()) => info!("rebuilt from the ensemble"),
                Err(e) => warn!("the rebuild is done, but its marker stays: {e}"),
            }
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
