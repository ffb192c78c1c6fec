//! The network between replicas. A standalone server has no peers, so
//! every call reports the peer unreachable; the ensemble's transport goes
//! here.

use crate::state_machine::SnapshotFile;
use crate::types::Snapshot;
use crate::types::TypeConfig;
use openraft::error::{RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, RaftNetworkFactory, RaftNetworkV2};
use std::future::Future;

pub struct NoPeers;

pub struct Unconnected(u64);

impl Unconnected {
    fn unreachable(&self) -> Unreachable<TypeConfig> {
        Unreachable::from_string(format!("no transport to node {}", self.0))
    }
}

impl RaftNetworkFactory<TypeConfig> for NoPeers {
    type Network = Unconnected;

    async fn new_client(&mut self, target: u64, _node: &BasicNode) -> Unconnected {
        Unconnected(target)
    }
}

impl RaftNetworkV2<TypeConfig> for Unconnected {
    type SnapshotData = SnapshotFile;

    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        Err(RPCError::Unreachable(self.unreachable()))
    }

    async fn vote(
        &mut self,
        _rpc: VoteRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        Err(RPCError::Unreachable(self.unreachable()))
    }

    async fn full_snapshot(
        &mut self,
        _vote: crate::types::Vote,
        _snapshot: Snapshot<SnapshotFile>,
        _cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        Err(StreamingError::Unreachable(self.unreachable()))
    }
}
