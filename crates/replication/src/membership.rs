//! Changing who is in the ensemble (ZooKeeper's `reconfig`), done by the
//! leader. New servers are first added as learners; once a majority of
//! the new voters is caught up, one joint-consensus change moves the
//! voters, drops the servers that leave and rewrites changed specs. A
//! change that could not reach a quorum is undone and refused, as
//! ZooKeeper refuses it with NEWCONFIGNOQUORUM.

use crate::status::{membership_of, settled, Member};
use crate::types::TypeConfig;
use crate::StateMachine;
use openraft::async_runtime::WatchReceiver;
use openraft::{BasicNode, ChangeMembers, Raft};
use paddock_tree::DataTree;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::info;

/// How long the new voters may take to catch up before the change is
/// refused. It matters only when the servers joining are needed for a
/// quorum of the new membership.
const SYNC_LIMIT: Duration = Duration::from_secs(3);
/// How long a reconfig waits for the previous membership change to be
/// committed; after that it answers that a reconfig is in progress.
const SETTLE_LIMIT: Duration = Duration::from_secs(1);

/// What a `reconfig` asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// Add (or re-spec) these servers and remove these ids.
    Incremental {
        joining: Vec<Member>,
        leaving: Vec<u64>,
    },
    /// The whole new membership.
    Replace(Vec<Member>),
    /// A request that could not be read, and why: refused (BADARGUMENTS)
    /// where ZooKeeper checks the arguments, after the version.
    Unreadable(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reconfig {
    pub change: Change,
    /// The config version the client based it on (the `version=` of
    /// `/zookeeper/config`); None for any.
    pub expected_version: Option<u64>,
    /// Voters the new membership must keep.
    pub min_voters: usize,
    /// Whether the caller may WRITE `/zookeeper/config` (checked where it
    /// is connected, which knows its identities); ZooKeeper checks it
    /// after the version and the arguments.
    pub authorized: bool,
}

/// Why a reconfig was refused; each is one of ZooKeeper's error codes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ReconfigError {
    #[error("not allowed to change /zookeeper/config")]
    NoAuth,
    #[error("another reconfiguration is in progress")]
    InProgress,
    #[error("the configuration version is not the one expected")]
    BadVersion,
    #[error("no quorum of the new configuration is connected and caught up")]
    NoQuorum,
    #[error("{0}")]
    BadArguments(String),
    #[error("no leader can take it now")]
    NoLeader,
}

/// The membership `change` leads to from `current`, with at least
/// `min_voters` voters.
pub fn target(
    current: &[Member],
    change: &Change,
    min_voters: usize,
) -> Result<Vec<Member>, ReconfigError> {
    let mut next: BTreeMap<u64, Member> = match change {
        Change::Unreadable(why) => return Err(ReconfigError::BadArguments(why.clone())),
        Change::Replace(members) => members.iter().map(|m| (m.id, m.clone())).collect(),
        Change::Incremental { joining, leaving } => {
            let mut next: BTreeMap<u64, Member> =
                current.iter().map(|m| (m.id, m.clone())).collect();
            for id in leaving {
                next.remove(id);
            }
            for m in joining {
                next.insert(m.id, m.clone());
            }
            next
        }
    };
    if next.values().filter(|m| m.voter).count() < min_voters.max(1) {
        return Err(ReconfigError::BadArguments(format!(
            "the new configuration must keep at least {} voting members",
            min_voters.max(1)
        )));
    }
    let mut seen = BTreeMap::new();
    for m in next.values() {
        let Some(addr) = crate::peer::peer_addr(&m.spec) else {
            return Err(ReconfigError::BadArguments(format!(
                "server.{} has no peer address",
                m.id
            )));
        };
        if let Some(other) = seen.insert(addr.clone(), m.id) {
            return Err(ReconfigError::BadArguments(format!(
                "server.{} and server.{other} share the address {addr}",
                m.id
            )));
        }
    }
    Ok(std::mem::take(&mut next).into_values().collect())
}

/// Carries out reconfigs on the leader, one at a time.
pub(crate) struct Reconfigurer {
    pub raft: Raft<TypeConfig, StateMachine>,
    pub me: u64,
    /// Set while a change is carried out here (one at a time).
    pub busy: AtomicBool,
    /// The replicated tree, whose `/zookeeper/config` holds the version.
    pub tree: Arc<RwLock<DataTree>>,
    /// The last change made here that succeeded; whoever watches is told
    /// each time a change here has ended.
    pub last: tokio::sync::watch::Sender<Option<Change>>,
}

/// Clears `Reconfigurer::busy` when dropped, and tells whoever watches
/// `last` (who may have waited for the change to end).
struct Busy<'a>(&'a Reconfigurer);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.busy.store(false, Ordering::SeqCst);
        self.0.last.send_modify(|_| {});
    }
}

impl Reconfigurer {
    fn one_at_a_time(&self) -> Result<Busy<'_>, ReconfigError> {
        if self.busy.swap(true, Ordering::SeqCst) {
            return Err(ReconfigError::InProgress);
        }
        Ok(Busy(self))
    }

    /// Carries out `req` on this server, which must lead. Returns the new
    /// config version (the log index of the membership now in force).
    pub async fn run(&self, req: Reconfig) -> Result<u64, ReconfigError> {
        let _one = self.one_at_a_time()?;
        self.change(req).await
    }

    /// Carries out `req` (see `change`) and tells watchers of `last`.
    async fn change(&self, req: Reconfig) -> Result<u64, ReconfigError> {
        let asked = req.change.clone();
        let result = change(&self.raft, self.me, &self.tree, req).await;
        self.last.send_modify(|last| {
            if result.is_ok() {
                *last = Some(asked);
            }
        });
        result
    }

    /// Makes member `id` a learner (`voter` false) or, once it holds this
    /// leader's whole log, a voter again, with `spec`'s addresses; asked
    /// by a server rebuilding its files (`crate::rebuild`).
    pub async fn set_voter(&self, id: u64, spec: &str, voter: bool) -> Result<u64, ReconfigError> {
        let _one = self.one_at_a_time()?;
        if !self.raft.is_leader() {
            return Err(ReconfigError::NoLeader);
        }
        let (current, version) = membership_of(&self.raft.metrics().borrow_watched());
        let Some(now) = current.iter().find(|m| m.id == id) else {
            return Err(ReconfigError::BadArguments(format!(
                "server.{id} is not a member of the ensemble"
            )));
        };
        let wanted = Member {
            id,
            spec: with_role(spec, voter),
            voter,
        };
        let version = if *now == wanted {
            version
        } else {
            if voter && !caught_up(&self.raft, self.me, &BTreeSet::from([id]), 1).await {
                return Err(ReconfigError::NoQuorum);
            }
            let req = Reconfig {
                change: Change::Incremental {
                    joining: vec![wanted],
                    leaving: Vec::new(),
                },
                expected_version: None,
                min_voters: 1,
                authorized: true,
            };
            self.change(req).await?
        };
        if !voter {
            // It comes back with less than it had: replicate to it from
            // the start (otherwise openraft takes the shorter log for a
            // bug).
            let allowed = self.raft.trigger().allow_next_revert(&id, true).await;
            if !matches!(allowed, Ok(Ok(()))) {
                return Err(ReconfigError::NoLeader);
            }
        }
        Ok(version)
    }
}

/// A server spec with its role (`:participant` or `:observer`) set.
fn with_role(spec: &str, voter: bool) -> String {
    let (servers, client) = match spec.split_once(';') {
        Some((servers, client)) => (servers, Some(client)),
        None => (spec, None),
    };
    let base = servers
        .strip_suffix(":participant")
        .or_else(|| servers.strip_suffix(":observer"))
        .unwrap_or(servers);
    let role = if voter { "participant" } else { "observer" };
    match client {
        Some(client) => format!("{base}:{role};{client}"),
        None => format!("{base}:{role}"),
    }
}

/// Checks `req` in ZooKeeper's order (in progress, version, arguments,
/// then the caller's right) before changing anything, then carries it
/// out. Returns the log index of the new membership.
async fn change(
    raft: &Raft<TypeConfig, StateMachine>,
    me: u64,
    tree: &RwLock<DataTree>,
    req: Reconfig,
) -> Result<u64, ReconfigError> {
    if !raft.is_leader() {
        return Err(ReconfigError::NoLeader);
    }
    // The answer to the last change can come back before openraft's
    // metrics show it committed (they are published after), so a reconfig
    // right behind another would be told one is still in progress.
    let m = raft
        .wait(Some(SETTLE_LIMIT))
        .metrics(
            |m| m.membership_config.log_id() == m.committed_membership_config.log_id(),
            "the last membership change committed",
        )
        .await
        .map_err(|_| ReconfigError::InProgress)?;
    let (current, index) = membership_of(&m);
    let shown = tree.read().config_version();
    if !settled(&m) || !shows(&current, &tree.read()) {
        return Err(ReconfigError::InProgress);
    }
    if req.expected_version.is_some_and(|v| v != shown) {
        return Err(ReconfigError::BadVersion);
    }
    let next = target(&current, &req.change, req.min_voters)?;
    if !req.authorized {
        return Err(ReconfigError::NoAuth);
    }
    if next == current {
        return Ok(index);
    }
    let known: BTreeMap<u64, &Member> = current.iter().map(|m| (m.id, m)).collect();
    let added: BTreeMap<u64, BasicNode> = next
        .iter()
        .filter(|m| !known.contains_key(&m.id))
        .map(|m| (m.id, BasicNode::new(&m.spec)))
        .collect();
    let failed = |e: &dyn std::fmt::Display| ReconfigError::BadArguments(e.to_string());
    if !added.is_empty() {
        raft.change_membership(ChangeMembers::AddNodes(added.clone()), true)
            .await
            .map_err(|e| failed(&e))?;
    }
    let next_voters: BTreeSet<u64> = next.iter().filter(|m| m.voter).map(|m| m.id).collect();
    let need = next_voters.len() / 2 + 1;
    if !caught_up(raft, me, &next_voters, need).await {
        if !added.is_empty() {
            let ids = added.keys().copied().collect();
            let _ = raft
                .change_membership(ChangeMembers::RemoveNodes(ids), false)
                .await;
        }
        return Err(ReconfigError::NoQuorum);
    }
    let gone: BTreeSet<u64> = current
        .iter()
        .map(|m| m.id)
        .filter(|id| !next.iter().any(|m| m.id == *id))
        .collect();
    let respecced: BTreeMap<u64, BasicNode> = next
        .iter()
        .filter(|m| known.get(&m.id).is_some_and(|k| k.spec != m.spec))
        .map(|m| (m.id, BasicNode::new(&m.spec)))
        .collect();
    // Voters that leave stay learners through the joint change (a voter
    // of the old half cannot lose its node), then go.
    let mut steps = vec![ChangeMembers::ReplaceAllVoters(next_voters)];
    if !respecced.is_empty() {
        steps.push(ChangeMembers::SetNodes(respecced));
    }
    let mut done = raft
        .change_membership(ChangeMembers::Batch(steps), true)
        .await
        .map_err(|e| failed(&e))?;
    if !gone.is_empty() {
        done = raft
            .change_membership(ChangeMembers::RemoveNodes(gone), true)
            .await
            .map_err(|e| failed(&e))?;
    }
    info!(
        version = done.log_id.index,
        "membership changed by reconfig"
    );
    Ok(done.log_id.index)
}

/// Whether `/zookeeper/config` lists exactly `members` (in any order),
/// written by the transaction that follows each membership change (its
/// Stat version is -1; a data directory of an earlier release holds the
/// text each server wrote itself, which the leader writes once more).
pub fn shows(members: &[Member], tree: &DataTree) -> bool {
    if tree
        .stat("/zookeeper/config")
        .is_none_or(|s| s.version != -1)
    {
        return false;
    }
    let data = tree.config_data();
    let mut shown: Vec<&[u8]> = paddock_tree::tree::config_servers(&data)
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    shown.sort_unstable();
    let mut lines: Vec<String> = members.iter().map(Member::line).collect();
    lines.sort_unstable();
    shown.len() == lines.len() && shown.iter().zip(&lines).all(|(a, b)| *a == b.as_bytes())
}

/// Waits (a few seconds at most) until `need` of `servers` have the
/// leader's log as of now.
async fn caught_up(
    raft: &Raft<TypeConfig, StateMachine>,
    me: u64,
    servers: &BTreeSet<u64>,
    need: usize,
) -> bool {
    let mut metrics = raft.metrics();
    let goal = metrics.borrow_watched().last_log_index;
    let until = Instant::now() + SYNC_LIMIT;
    loop {
        let synced = {
            let m = metrics.borrow_watched();
            servers
                .iter()
                .filter(|id| {
                    **id == me
                        || m.replication.as_ref().is_some_and(|r| {
                            r.get(*id)
                                .is_some_and(|l| l.as_ref().map(|l| l.index) >= goal)
                        })
                })
                .count()
        };
        if synced >= need {
            return true;
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() || tokio::time::timeout(left, metrics.changed()).await.is_err() {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: u64, voter: bool) -> Member {
        let role = if voter { "participant" } else { "observer" };
        Member {
            id,
            spec: format!(
                "127.0.0.1:{}:{}:{role};127.0.0.1:{}",
                2000 + id,
                3000 + id,
                4000 + id
            ),
            voter,
        }
    }

    #[test]
    fn incremental_changes_add_respec_and_remove() {
        let current = vec![member(1, true), member(2, true), member(3, true)];
        let change = Change::Incremental {
            joining: vec![member(4, true), member(3, false)],
            leaving: vec![2],
        };
        assert_eq!(
            target(&current, &change, 1),
            Ok(vec![member(1, true), member(3, false), member(4, true)])
        );
        let replace = Change::Replace(vec![member(5, true)]);
        assert_eq!(target(&current, &replace, 1), Ok(vec![member(5, true)]));
    }

    #[test]
    fn a_spec_takes_the_role_asked_for() {
        assert_eq!(
            with_role("h:1:2:participant;127.0.0.1:2181", false),
            "h:1:2:observer;127.0.0.1:2181"
        );
        assert_eq!(with_role("h:1:2;2181", true), "h:1:2:participant;2181");
        assert_eq!(with_role("h:1:2:observer", true), "h:1:2:participant");
    }

    #[test]
    fn a_configuration_without_voters_or_with_a_shared_address_is_refused() {
        let current = vec![member(1, true)];
        let none = Change::Incremental {
            joining: vec![],
            leaving: vec![1],
        };
        assert!(matches!(
            target(&current, &none, 1),
            Err(ReconfigError::BadArguments(_))
        ));
        let mut twin = member(2, true);
        twin.spec = member(1, true).spec;
        let shared = Change::Incremental {
            joining: vec![twin],
            leaving: vec![],
        };
        let err = target(&current, &shared, 1).unwrap_err();
        assert!(err.to_string().contains("share the address"), "{err}");
    }
}
