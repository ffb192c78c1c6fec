//! The openraft type configuration. Nothing here leaves this crate: the
//! rest of Paddock sees transactions, log positions and roles.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::fmt;

/// What one log entry carries: an encoded `Txn` (empty for a barrier), and
/// who proposed it so the proposing server can answer its client once the
/// entry is applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// The node id of the server that proposed it.
    pub origin: u64,
    /// The proposing server's number for it (unique per server run).
    pub seq: u64,
    /// `paddock_tree::Txn::encode` bytes; empty for a barrier.
    pub txn: Bytes,
    /// On a barrier: the session whose client reattached to the proposing
    /// server, so the others close their connection of it.
    #[serde(default)]
    pub claim: Option<i64>,
    /// On a leader's own decision (the closeSession of an expired
    /// session, the membership for /zookeeper/config): the term it was
    /// decided in. Applied only if the entry was appended in that term, so
    /// a leader's decision never outlives its term (its view of who is
    /// alive is only good while it leads).
    #[serde(default)]
    pub expiry_term: Option<u64>,
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "txn({}#{}, {} bytes)",
            self.origin,
            self.seq,
            self.txn.len()
        )
    }
}

openraft::declare_raft_types!(
    pub TypeConfig:
        D = Command,
        R = (),
        NodeId = u64,
        Node = openraft::BasicNode,
        LeaderId = openraft::impls::leader_id_std::LeaderId<u64, u64>,
);

pub type LogId = openraft::LogId<openraft::vote::leader_id_std::CommittedLeaderId<u64>>;
pub type Entry = <TypeConfig as openraft::RaftTypeConfig>::Entry;
pub type Payload = openraft::EntryPayload<Command, u64, openraft::BasicNode>;
pub type Vote = <TypeConfig as openraft::RaftTypeConfig>::Vote;
pub type Membership = openraft::Membership<u64, openraft::BasicNode>;
pub type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
pub type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
pub type Snapshot<D> = openraft::alias::SnapshotOf<TypeConfig, D>;
