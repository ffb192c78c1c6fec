//! What the server needs to know about consensus, in ZooKeeper's terms: the
//! role (leader, follower, observer, standalone, looking), whether clients
//! may be served, and an epoch that changes whenever writes in flight may
//! have been lost, so connections start over as they do in ZooKeeper.

use crate::types::TypeConfig;
use crate::StateMachine;
use openraft::async_runtime::WatchReceiver;
use openraft::{BasicNode, ChangeMembers, Raft, RaftMetrics, ServerState};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tracing::{info, warn};

/// A follower that has not heard from its leader for this long, or a
/// leader that has not heard from a quorum, stops serving clients.
pub const CONTACT_LOST_MS: u64 = 1000;
const POLL: Duration = Duration::from_millis(25);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Standalone,
    Leader,
    Follower,
    Observer,
    /// No leader known: an election is going on or no quorum is reachable.
    Looking,
}

impl Role {
    /// The name srvr and mntr report.
    pub fn name(self) -> &'static str {
        match self {
            Role::Standalone => "standalone",
            Role::Leader => "leader",
            Role::Follower => "follower",
            Role::Observer => "observer",
            Role::Looking => "looking",
        }
    }
}

/// One member of the ensemble as ZooKeeper writes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Member {
    pub id: u64,
    /// `host:peerPort:electionPort:role;clientAddr:clientPort`.
    pub spec: String,
    pub voter: bool,
}

impl Member {
    /// Its `server.N=spec` line of `/zookeeper/config`.
    pub fn line(&self) -> String {
        format!("server.{}={}", self.id, self.spec)
    }

    /// Whether its spec names the role it has (a voter is a participant).
    fn in_role(&self) -> bool {
        let servers = self.spec.split(';').next().unwrap_or_default();
        servers.ends_with(":observer") != self.voter
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub role: Role,
    pub leader: Option<u64>,
    /// The leader's term (ZooKeeper's epoch).
    pub term: u64,
    /// Clients may be served: a leader in touch with a quorum, or a
    /// follower or observer in touch with its leader and caught up.
    pub serving: bool,
    /// Changes when writes in flight may have been lost: a new leader,
    /// serving stopped, or forwarding to the leader failed.
    pub epoch: u64,
    pub members: Vec<Member>,
    /// The log index of the membership in force.
    pub membership_index: u64,
    /// The membership is committed and no change is half-way (`settled`).
    pub settled: bool,
}

impl Status {
    /// Before consensus has said anything: looking, not serving.
    pub fn initial() -> Status {
        Status {
            role: Role::Looking,
            leader: None,
            term: 0,
            serving: false,
            epoch: 0,
            members: Vec::new(),
            membership_index: 0,
            settled: false,
        }
    }
}

pub(crate) struct Monitor {
    pub raft: Raft<TypeConfig, StateMachine>,
    pub me: u64,
    pub standalone: bool,
    pub leader_contact_ms: Arc<AtomicU64>,
    /// Set while the leader does not acknowledge this server's session
    /// reports (`forward`): it hears the leader, but the leader does not
    /// hear it, so it must not serve (the leader would expire its
    /// clients' sessions), as ZooKeeper's leader drops such a follower.
    pub reports_failing: Arc<AtomicBool>,
    pub started: Instant,
    pub status: Arc<watch::Sender<Status>>,
    /// Observers to add as learners whenever this server leads.
    pub observers: BTreeMap<u64, String>,
}

impl Monitor {
    /// Recomputes the status when the role, leader or membership changes
    /// and every `POLL` (contact, quorum and catching up are measured in
    /// time). Not on every write: the full metrics change with each one,
    /// and waking for them would cost every write a task switch.
    pub async fn run(self) {
        self.follow().await;
        // Consensus stopped (shut down, or its log failed): nothing will
        // be applied here again. An ensemble member stops serving so its
        // clients move to servers that keep up (ZooKeeper's server exits);
        // a standalone server keeps serving reads.
        if !self.standalone {
            self.status.send_modify(|s| {
                if s.serving {
                    warn!(
                        me = self.me,
                        "consensus stopped; not serving clients any more"
                    );
                }
                s.role = Role::Looking;
                s.leader = None;
                s.serving = false;
                s.epoch += 1;
            });
        }
    }

    /// Keeps the status up to date until consensus stops.
    async fn follow(&self) {
        let metrics = self.raft.metrics();
        let mut changes = self.raft.server_metrics();
        let mut last_try: Option<Instant> = None;
        loop {
            let m = metrics.borrow_watched().clone();
            if m.running_state.is_err() {
                return;
            }
            let now_ms = self.started.elapsed().as_millis() as u64;
            let contact_ms = if self.reports_failing.load(Ordering::Relaxed) {
                u64::MAX
            } else {
                now_ms.saturating_sub(self.leader_contact_ms.load(Ordering::Relaxed))
            };
            let changed = self
                .status
                .send_if_modified(|s| update(s, &m, self.me, self.standalone, contact_ms));
            if changed {
                // openraft's clock (every 4 ms) only times elections and
                // heartbeats; a standalone server's one voter, once it
                // leads, needs neither.
                let standalone = self.status.borrow().role == Role::Standalone;
                self.raft.runtime_config().tick(!standalone);
            }
            if m.state == ServerState::Leader {
                self.add_observers(&m, &mut last_try);
            }
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// Adds the observers zoo.cfg lists, in one change, while the
    /// membership is still the one the ensemble formed with (log index 0):
    /// after that, only reconfig changes who is in it. Retried every
    /// second until it is in the log.
    fn add_observers(&self, m: &RaftMetrics<TypeConfig>, last_try: &mut Option<Instant>) {
        let formed_with = m.membership_config.log_id().as_ref().map(|l| l.index) == Some(0);
        if self.observers.is_empty()
            || !formed_with
            || m.membership_config.log_id() != m.committed_membership_config.log_id()
            || last_try.is_some_and(|at| at.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        *last_try = Some(Instant::now());
        let nodes: BTreeMap<u64, BasicNode> = self
            .observers
            .iter()
            .map(|(id, spec)| (*id, BasicNode::new(spec)))
            .collect();
        let raft = self.raft.clone();
        tokio::spawn(async move {
            let ids: Vec<u64> = nodes.keys().copied().collect();
            match raft
                .change_membership(ChangeMembers::AddNodes(nodes), true)
                .await
            {
                Ok(_) => info!(?ids, "added the observers"),
                Err(e) => warn!(?ids, "adding the observers failed: {e}"),
            }
        });
    }
}

/// The membership in force, as ZooKeeper lists it, and its version (the
/// log index of its entry).
pub(crate) fn membership_of(m: &RaftMetrics<TypeConfig>) -> (Vec<Member>, u64) {
    let membership = m.membership_config.membership();
    let voters: BTreeSet<u64> = membership.voter_ids().collect();
    let members = membership
        .nodes()
        .map(|(id, node)| Member {
            id: *id,
            spec: node.addr.clone(),
            voter: voters.contains(id),
        })
        .collect();
    let version = m.membership_config.log_id().as_ref().map_or(0, |l| l.index);
    (members, version)
}

/// Whether the membership in force is committed, not joint, and names
/// each member's role as it is: no reconfig is half-way (a server being
/// added as a participant is a learner first; one leaving stays a learner
/// until it is removed).
pub(crate) fn settled(m: &RaftMetrics<TypeConfig>) -> bool {
    let (members, _) = membership_of(m);
    m.membership_config.log_id() == m.committed_membership_config.log_id()
        && m.membership_config.membership().get_joint_config().len() == 1
        && members.iter().all(Member::in_role)
}

/// The term this server leads in, if it leads and a quorum acknowledged
/// it within `CONTACT_LOST_MS` (a group of one voter is its own quorum).
pub(crate) fn quorum_term(m: &RaftMetrics<TypeConfig>) -> Option<u64> {
    let mut voters = m.membership_config.membership().voter_ids();
    let alone = voters.next() == Some(m.id) && voters.next().is_none();
    let heard = m.last_quorum_acked.as_ref().is_some_and(|at| {
        openraft::Instant::elapsed(&**at) < Duration::from_millis(CONTACT_LOST_MS)
    });
    (m.state == ServerState::Leader && (alone || heard)).then(|| m.vote.leader_id().term)
}

/// Recomputes the status from openraft's metrics; true if it changed.
fn update(
    s: &mut Status,
    m: &RaftMetrics<TypeConfig>,
    me: u64,
    standalone: bool,
    contact_ms: u64,
) -> bool {
    let (members, membership_index) = membership_of(m);
    let role = match m.state {
        ServerState::Leader if standalone => Role::Standalone,
        ServerState::Leader => Role::Leader,
        ServerState::Follower if m.current_leader.is_some() => Role::Follower,
        ServerState::Learner if m.current_leader.is_some() => Role::Observer,
        _ => Role::Looking,
    };
    let caught_up = m.last_applied.map(|l| l.index) >= m.cluster_committed.map(|l| l.index);
    let serving = match role {
        Role::Standalone => true,
        Role::Leader => quorum_term(m).is_some(),
        Role::Follower | Role::Observer => contact_ms < CONTACT_LOST_MS && (s.serving || caught_up),
        Role::Looking => false,
    };
    let leader = if role == Role::Looking {
        None
    } else {
        m.current_leader
    };
    let term = m.vote.leader_id().term;
    let mut next = Status {
        role,
        leader,
        term,
        serving,
        epoch: s.epoch,
        settled: settled(m),
        members,
        membership_index,
    };
    if (next.leader, next.term) != (s.leader, s.term) || (s.serving && !next.serving) {
        next.epoch += 1;
        info!(
            me,
            role = role.name(),
            leader = ?next.leader,
            term,
            serving,
            "consensus role changed"
        );
    }
    if next == *s {
        return false;
    }
    *s = next;
    true
}
