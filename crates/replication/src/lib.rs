//! Consensus for Paddock. Transactions are ordered by openraft, made
//! durable in our write-ahead log (one fdatasync per batch), and applied to
//! the tree in log order on every replica; a standalone server is a group
//! of one voter. No openraft type leaves this crate: the server proposes
//! `Txn`s and hears about each applied one through `Applier`.

mod auth;
pub mod codec;
#[cfg(test)]
mod crashes;
mod files;
mod forward;
mod log_store;
mod membership;
mod network;
mod peer;
mod rebuild;
mod receive;
mod state_machine;
mod status;
mod types;
mod wire;

pub use files::{read_to_end, seed, Dirs, FilesError};
pub use membership::{shows, Change, Reconfig, ReconfigError};
pub use rebuild::set_aside;
pub use status::{Member, Role, Status, CONTACT_LOST_MS};

use crate::auth::Secret;
use crate::files::Loaded;
use crate::forward::Outgoing;
use crate::log_store::LogStore;
use crate::membership::Reconfigurer;
use crate::network::Network;
pub use crate::peer::QuorumTls;
use crate::peer::{PeerContext, PeerReply, PeerRequest, Peers};
use crate::state_machine::{SnapshotFiles, StateMachine};
use crate::status::Monitor;
use crate::types::{Command, TypeConfig};
use bytes::{Bytes, BytesMut};
use openraft::async_runtime::WatchReceiver;
use openraft::{BasicNode, Config, Raft, SnapshotPolicy};
use paddock_storage::{Disk, Wal};
use paddock_tree::{Applied, DataTree, TreeConfig, Txn};
use parking_lot::{Mutex, RwLock};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::warn;

/// What the server does with what consensus applies. Called in log order
/// with the tree still locked, so watches and replies leave in the order
/// of the changes they describe.
pub trait Applier: Send + Sync + 'static {
    /// `seq` is the number this server proposed it under, if it did.
    fn applied(&self, seq: Option<u64>, txn: &Txn, outcome: Applied);
    /// A barrier this server proposed (`sync`) was reached; `zxid` is the
    /// tree's last.
    fn barrier(&self, seq: u64, zxid: i64);
    /// The tree was replaced by a snapshot from the leader.
    fn replaced(&self, tree: &mut DataTree);
    /// A session's client reattached to a server (this one if `here`):
    /// any other server's connection of it is stale ("session moved").
    fn claimed(&self, session_id: i64, here: bool);
    /// A batch of entries has been applied and the tree unlocked: time for
    /// what should not be done under the lock (writing to sockets).
    fn settled(&self);
    /// The log wrote and synced one frame (every entry waiting when it
    /// began) in `took`.
    fn log_written(&self, took: Duration);
}

/// A leader tells its followers of each commit at once with a heartbeat
/// (it carries the commit index), as ZooKeeper's leader sends COMMIT to
/// every follower when a quorum has acknowledged. Otherwise a follower
/// whose own append was still in flight when the quorum formed learns of
/// the commit only after answering it and being sent the index, a round
/// trip later, and reads there miss a write already acknowledged through
/// another server more often. A follower applies what is committed as
/// soon as it has accepted it, without waiting for its own fsync. The
/// notifications coalesce: at most one heartbeat round is asked for per
/// applied batch, and a round in flight absorbs the ones behind it.
async fn announce_commits(raft: Raft<TypeConfig, StateMachine>, applied: Arc<tokio::sync::Notify>) {
    loop {
        applied.notified().await;
        if raft.is_leader() && raft.trigger().heartbeat().await.is_err() {
            return;
        }
    }
}

/// A session whose client was heard from, and how many ms ago (a duration,
/// so it means the same on every server's clock; a report held back while
/// the leader could not be reached says how old it is).
pub type Heard = (i64, u32);

/// The other servers of an ensemble, as zoo.cfg lists them.
#[derive(Debug, Clone)]
pub struct Ensemble {
    /// Voting members by id: ZooKeeper server specs.
    pub voters: BTreeMap<u64, String>,
    /// Observers (non-voting learners) by id.
    pub observers: BTreeMap<u64, String>,
    /// Where this server listens for its peers.
    pub listen: SocketAddr,
    /// The secret every peer connection proves (`auth.rs`), if any.
    pub secret: Option<Vec<u8>>,
    /// Mutual TLS on every peer connection (`sslQuorum`), if set.
    pub tls: Option<QuorumTls>,
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
    /// None: standalone, a group of one voter.
    pub ensemble: Option<Ensemble>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    #[error(transparent)]
    Files(#[from] FilesError),
    #[error("consensus did not start: {0}")]
    Start(String),
    #[error("cannot rebuild from the ensemble: {0}")]
    Rebuild(String),
    #[error("cannot listen for peers on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Why a proposal was not taken.
#[derive(Debug, thiserror::Error)]
pub enum ProposeError {
    /// The group has stopped (shut down, or its log failed).
    #[error("the write path has stopped")]
    Stopped,
    /// No leader can take it now; the epoch moves on.
    #[error("no leader")]
    NoLeader,
}

/// The files read, before consensus starts.
pub struct Opened {
    options: Options,
    disk: Arc<dyn Disk>,
    wal: Wal,
    loaded: Loaded,
    /// A rebuild from the ensemble is under way (`rebuild`).
    rebuilding: bool,
}

/// Reads the data directory (newest good snapshot, the log after it) and
/// returns the tree as of the last entry known to be committed.
pub fn open(options: Options, disk: Arc<dyn Disk>) -> Result<(DataTree, Opened), FilesError> {
    let mut loaded = files::load(&*disk, &options.dirs, options.tree_config)?;
    let covered = loaded.snapshot.as_ref().and_then(|(m, _)| m.last_log_id);
    if loaded.state.last_purged.is_some() && covered < loaded.state.last_purged {
        // The newest snapshot was damaged and the state was rebuilt from an
        // older one and the log: write it down again, so a snapshot covers
        // everything purged from the log.
        let path = files::write_tree(&*disk, &options.dirs, &loaded.applied, loaded.tree.freeze())?;
        warn!(snapshot = %path.display(), "rewrote the newest snapshot from an older one and the log");
        loaded.snapshot = Some((loaded.applied.clone(), path));
    }
    let wal = Wal::new(disk.clone(), &options.dirs.log, options.segment_bytes)?;
    let tree = std::mem::replace(&mut loaded.tree, DataTree::new(options.tree_config));
    let rebuilding = rebuild::underway(&*disk, &options.dirs);
    Ok((
        tree,
        Opened {
            options,
            disk,
            wal,
            loaded,
            rebuilding,
        },
    ))
}

pub struct Replica {
    raft: Raft<TypeConfig, StateMachine>,
    node_id: u64,
    status: watch::Receiver<Status>,
    forward: mpsc::UnboundedSender<Outgoing>,
    touches: Mutex<Option<mpsc::UnboundedReceiver<Vec<Heard>>>>,
    touches_tx: mpsc::UnboundedSender<Vec<Heard>>,
    reconfigurer: Arc<Reconfigurer>,
    peers: Peers,
    tasks: Vec<JoinHandle<()>>,
}

impl Opened {
    /// Starts consensus over `tree` (the one `open` returned, now shared
    /// with readers). A standalone server waits until it leads with every
    /// entry of its log applied; an ensemble member returns at once and
    /// reports through `status` when it can serve.
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
            rebuilding,
        } = self;
        let node_id = options.node_id;
        let start_err = |e: &dyn std::fmt::Display| ReplicationError::Start(e.to_string());
        let listener =
            match &options.ensemble {
                Some(e) => Some(tokio::net::TcpListener::bind(e.listen).await.map_err(
                    |source| ReplicationError::Bind {
                        addr: e.listen,
                        source,
                    },
                )?),
                None => None,
            };
        let voter_spec = options
            .ensemble
            .as_ref()
            .and_then(|e| e.voters.get(&node_id).cloned());
        let peers = Peers::new(
            options
                .ensemble
                .iter()
                .flat_map(|e| e.voters.iter().chain(&e.observers))
                .map(|(id, spec)| (*id, spec.clone()))
                .collect(),
            options
                .ensemble
                .as_ref()
                .and_then(|e| e.secret.clone())
                .map(|s| Arc::new(Secret::new(s))),
            options.ensemble.as_ref().and_then(|e| e.tls.clone()),
        );
        // A rebuilding server stops counting as a voter, and the leader
        // expects its log to start again, before it runs at all.
        if rebuilding {
            let Some(spec) = peers.get(node_id) else {
                return Err(ReplicationError::Rebuild(
                    "this server is not in its own ensemble's server list".into(),
                ));
            };
            rebuild::step_aside(node_id, spec, &peers).await?;
        }
        let last_index = loaded.entries.keys().next_back().copied();
        let (log, flushed) = LogStore::open(
            disk.clone(),
            options.dirs.clone(),
            wal,
            loaded.entries,
            loaded.state,
            applier.clone(),
        )
        .map_err(|e| start_err(&e))?;
        let files = Arc::new(SnapshotFiles {
            disk: disk.clone(),
            dirs: options.dirs.clone(),
            tree_config: options.tree_config,
            retain: options.snap_retain,
            current: Mutex::new(loaded.snapshot),
        });
        let applied_batch = options
            .ensemble
            .as_ref()
            .map(|_| Arc::new(tokio::sync::Notify::new()));
        let machine = StateMachine {
            node_id,
            tree: tree.clone(),
            applier,
            applied: loaded.applied,
            files,
            flushed,
            log: log.clone(),
            applied_batch: applied_batch.clone(),
        };
        let config = Config {
            cluster_name: "paddock".into(),
            // A follower waits out the leader's lease (the max timeout) and
            // then its own timeout before it campaigns: 180-240 ms after
            // the last heartbeat from a dead leader.
            election_timeout_min: 60,
            election_timeout_max: 120,
            heartbeat_interval: 20,
            install_snapshot_timeout: 2000,
            backoff: "50ms".into(),
            enable_pre_vote: Some(true),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(options.snap_count.max(1)),
            // Keep a snapshot interval of log so a follower a little behind
            // catches up from the log rather than a whole snapshot.
            max_in_snapshot_log_to_keep: match options.ensemble {
                Some(_) => options.snap_count,
                None => 0,
            },
            max_payload_entries: 64,
            ..Default::default()
        }
        .validate()
        .map_err(|e| start_err(&e))?;
        let network = Network {
            peers: peers.clone(),
            reachability: Default::default(),
        };
        let raft = Raft::new(node_id, Arc::new(config), network, log, machine)
            .await
            .map_err(|e| start_err(&e))?;
        let initialized = raft.is_initialized().await.map_err(|e| start_err(&e))?;
        let voters: BTreeMap<u64, BasicNode> = match &options.ensemble {
            Some(e) => e
                .voters
                .iter()
                .map(|(id, spec)| (*id, BasicNode::new(spec)))
                .collect(),
            None => BTreeMap::from([(node_id, BasicNode::default())]),
        };
        // Every voter of a new ensemble initializes with the same members;
        // observers wait for the leader to add them, and so does a server
        // joining a running ensemble (it is added by reconfig).
        if !initialized
            && !rebuilding
            && voters.contains_key(&node_id)
            && !joining(node_id, &peers).await
        {
            raft.initialize(voters).await.map_err(|e| start_err(&e))?;
        }
        let reconfigurer = Arc::new(Reconfigurer {
            raft: raft.clone(),
            me: node_id,
            busy: AtomicBool::new(false),
            tree: tree.clone(),
            last: watch::Sender::new(None),
        });

        let started = Instant::now();
        let leader_contact_ms = Arc::new(AtomicU64::new(0));
        let reports_failing = Arc::new(AtomicBool::new(false));
        let (status_tx, status) = watch::channel(Status::initial());
        let status_tx = Arc::new(status_tx);
        let (touches_tx, touches) = mpsc::unbounded_channel();
        let (forward, queue) = mpsc::unbounded_channel();
        let mut tasks = vec![
            tokio::spawn(
                Monitor {
                    raft: raft.clone(),
                    me: node_id,
                    standalone: options.ensemble.is_none(),
                    leader_contact_ms: leader_contact_ms.clone(),
                    reports_failing: reports_failing.clone(),
                    started,
                    status: status_tx.clone(),
                    observers: options
                        .ensemble
                        .as_ref()
                        .map(|e| e.observers.clone())
                        .unwrap_or_default(),
                }
                .run(),
            ),
            tokio::spawn(forward::run(
                queue,
                status_tx,
                peers.clone(),
                reports_failing,
            )),
        ];
        if let Some(applied) = applied_batch {
            tasks.push(tokio::spawn(announce_commits(raft.clone(), applied)));
        }
        if rebuilding {
            tasks.push(tokio::spawn(rebuild::rejoin(
                status.clone(),
                node_id,
                voter_spec,
                peers.clone(),
                disk.clone(),
                options.dirs.clone(),
            )));
        }
        if let Some(listener) = listener {
            let ctx = Arc::new(PeerContext {
                raft: raft.clone(),
                disk: disk.clone(),
                snapshot_dir: options.dirs.snapshots.clone(),
                leader_contact_ms,
                started,
                touches: touches_tx.clone(),
                reconfigurer: reconfigurer.clone(),
                secret: peers.secret(),
                tls: peers.tls(),
            });
            tasks.push(tokio::spawn(peer::serve(listener, ctx)));
        }
        if options.ensemble.is_none() {
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
                .map_err(|e| start_err(&e))?;
            let mut serving = status.clone();
            tokio::time::timeout(Duration::from_secs(10), serving.wait_for(|s| s.serving))
                .await
                .map_err(|e| start_err(&e))?
                .map_err(|e| start_err(&e))?;
        }
        Ok(Replica {
            raft,
            node_id,
            status,
            forward,
            touches: Mutex::new(Some(touches)),
            touches_tx,
            reconfigurer,
            peers,
            tasks,
        })
    }
}

/// How long a reconfig may take, end to end.
const RECONFIG_TIMEOUT: Duration = Duration::from_secs(20);

/// Whether another configured server has joined an ensemble already: then
/// this one, starting with no state, is joining and must not form one.
async fn joining(me: u64, peers: &Peers) -> bool {
    let asks = peers.iter().filter(|(id, _)| **id != me).map(|(_, spec)| {
        let mut link = peers.link(spec);
        async move {
            let reply = link
                .call(&PeerRequest::Initialized, Duration::from_millis(500))
                .await;
            matches!(reply, Ok(PeerReply::Initialized(true)))
        }
    });
    futures::future::join_all(asks)
        .await
        .into_iter()
        .any(|yes| yes)
}

/// What a server puts through the log.
#[derive(Debug, Clone, Copy)]
pub enum Work<'a> {
    Txn(&'a Txn),
    /// A barrier (for `sync`): nothing is applied.
    Barrier,
    /// A barrier that tells every server this session's client is now
    /// connected to the proposer.
    Claim(i64),
    /// A transaction the leader decided on while leading in `term` (the
    /// closeSession of a session it found expired, the membership for
    /// /zookeeper/config): proposed only by a leader, never passed on,
    /// and applied only if appended in that term.
    InTerm {
        txn: &'a Txn,
        term: u64,
    },
}

impl Replica {
    /// Proposes a transaction or a barrier; once it is committed and
    /// applied, the `Applier` hears of it with this `seq`.
    /// A follower passes it to the leader.
    pub async fn propose(&self, seq: u64, work: Work<'_>) -> Result<(), ProposeError> {
        let encode = |txn: &Txn| {
            let mut buf = BytesMut::new();
            txn.encode(&mut buf);
            buf.freeze()
        };
        let (txn, claim, expiry_term) = match work {
            Work::Txn(txn) => (encode(txn), None, None),
            Work::Barrier => (Bytes::new(), None, None),
            Work::Claim(session_id) => (Bytes::new(), Some(session_id), None),
            Work::InTerm { txn, term } => (encode(txn), None, Some(term)),
        };
        let command = Command {
            origin: self.node_id,
            seq,
            txn,
            claim,
            expiry_term,
        };
        let leads = self.raft.is_leader();
        if expiry_term.is_some() && !leads {
            return Err(ProposeError::NoLeader);
        }
        if leads {
            return self
                .raft
                .client_write_ff(command, None)
                .await
                .map_err(|_| ProposeError::Stopped);
        }
        if !self.status.borrow().serving {
            return Err(ProposeError::NoLeader);
        }
        self.forward
            .send(Outgoing::Command(command))
            .map_err(|_| ProposeError::Stopped)
    }

    /// A leader about to stop names the voter with the most of the log as
    /// its successor and waits (at most `limit`) until another server
    /// leads, so writes pause for a handover instead of an election
    /// timeout. Returns the new leader; None when this server does not
    /// lead or nobody took over in time.
    pub async fn hand_over(&self, limit: Duration) -> Option<u64> {
        if !self.raft.is_leader() {
            return None;
        }
        let to = {
            let metrics = self.raft.metrics();
            let m = metrics.borrow_watched();
            let voters: Vec<u64> = m.membership_config.membership().voter_ids().collect();
            m.replication
                .as_ref()?
                .iter()
                .filter(|(id, _)| **id != self.node_id && voters.contains(id))
                .max_by_key(|(_, matched)| matched.as_ref().map(|l| l.index))
                .map(|(id, _)| *id)?
        };
        self.raft.trigger().transfer_leader(to).await.ok()?;
        let mut status = self.status.clone();
        let me = self.node_id;
        let moved = async {
            let s = status.wait_for(|s| s.leader.is_some_and(|l| l != me)).await;
            s.ok().and_then(|s| s.leader)
        };
        tokio::time::timeout(limit, moved).await.ok().flatten()
    }

    /// Changes the membership (ZooKeeper's reconfig): the leader does it,
    /// another server passes it on. Returns once this server knows the new
    /// membership, with its version.
    pub async fn reconfigure(&self, req: Reconfig) -> Result<u64, ReconfigError> {
        let version = if self.raft.is_leader() {
            self.reconfigurer.run(req).await?
        } else {
            let leader = {
                let s = self.status.borrow();
                s.leader
                    .and_then(|l| s.members.iter().find(|m| m.id == l))
                    .map(|m| self.peers.link_to(m.id, &m.spec))
            };
            let mut leader = leader.ok_or(ReconfigError::NoLeader)?;
            let reply = leader
                .call(&PeerRequest::Reconfig(req), RECONFIG_TIMEOUT)
                .await;
            match reply {
                Ok(PeerReply::Reconfigured(result)) => result?,
                _ => return Err(ReconfigError::NoLeader),
            }
        };
        let mut status = self.status.clone();
        let known = status.wait_for(|s| s.membership_index >= version);
        let known = matches!(
            tokio::time::timeout(RECONFIG_TIMEOUT, known).await,
            Ok(Ok(_))
        );
        if known {
            Ok(version)
        } else {
            Err(ReconfigError::NoLeader)
        }
    }

    /// The last membership change this server carried out as leader; it
    /// changes (for watchers) each time a change here ends.
    pub fn last_change(&self) -> watch::Receiver<Option<Change>> {
        self.reconfigurer.last.subscribe()
    }

    /// Whether a reconfig is being carried out here now.
    pub fn reconfiguring(&self) -> bool {
        self.reconfigurer
            .busy
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Reports sessions whose clients were heard from to the leader, which
    /// decides expiry.
    pub fn report_sessions(&self, heard: Vec<Heard>) {
        if heard.is_empty() {
            return;
        }
        if self.raft.is_leader() {
            let _ = self.touches_tx.send(heard);
        } else {
            let _ = self.forward.send(Outgoing::Touch(heard, Instant::now()));
        }
    }

    /// Sessions other servers' clients were heard from, as the leader
    /// learns of them. Taken once.
    pub fn take_touches(&self) -> Option<mpsc::UnboundedReceiver<Vec<Heard>>> {
        self.touches.lock().take()
    }

    /// The term this server leads in with a quorum, read from consensus
    /// now (not the last status, which may be a poll behind).
    pub fn leading_term(&self) -> Option<u64> {
        status::quorum_term(&self.raft.metrics().borrow_watched())
    }

    /// The role, leader, epoch and members, as they change.
    pub fn status(&self) -> watch::Receiver<Status> {
        self.status.clone()
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
        for task in &self.tasks {
            task.abort();
        }
        let _ = self.raft.shutdown().await;
    }
}

/// The decoders of untrusted bytes this crate holds, for the fuzz targets
/// (`crates/fuzz`): each runs on anything without panicking, and what
/// decodes encodes back to the same message.
#[doc(hidden)]
pub mod fuzzing {
    use bytes::Bytes;

    pub fn peer_message(data: Bytes) {
        if let Ok(req) = crate::wire::decode_request(data.clone()) {
            let back = crate::wire::decode_request(crate::wire::encode_request(&req))
                .expect("what decoded encodes to what decodes");
            assert_eq!(format!("{back:?}"), format!("{req:?}"));
        }
        if let Ok(reply) = crate::wire::decode_reply(data) {
            let back = crate::wire::decode_reply(crate::wire::encode_reply(&reply));
            assert_eq!(back, Ok(reply));
        }
    }

    pub fn log_record(index: i64, body: Bytes) {
        if let Ok(index) = u64::try_from(index) {
            let _ = crate::codec::decode_record(index, body.clone());
            let _ = crate::codec::inspect_record(index, body);
        }
    }

    pub fn snapshot_payload(payload: Bytes) {
        if let Ok((_, tree)) = crate::codec::decode_snapshot(payload) {
            let _ = paddock_tree::DataTree::decode_snapshot(
                &mut paddock_proto::Reader::new(tree),
                paddock_tree::TreeConfig::default(),
            );
        }
    }

    pub fn state_file(data: &[u8]) {
        if let Ok(state) = crate::codec::decode_state(data) {
            let back = crate::codec::decode_state(&crate::codec::encode_state(&state));
            assert_eq!(back, Ok(state));
        }
    }
}
