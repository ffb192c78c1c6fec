//! openraft's view of the other replicas: one `Link` per target. As in
//! ZooKeeper, a server finds its peers through its own zoo.cfg; a member
//! it does not list (added by reconfig) is found by the spec in the
//! membership (`BasicNode::addr`). A standalone server never dials anyone.

use crate::peer::{Link, PeerReply, PeerRequest, Peers, SNAPSHOT_CHUNK_BYTES};
use crate::state_machine::SnapshotFile;
use crate::types::{Snapshot, TypeConfig, Vote};
use openraft::error::{RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, RaftNetworkFactory, RaftNetworkV2};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tracing::{info, warn};

/// Installing a snapshot may take longer than a heartbeat's timeout.
const SNAPSHOT_DONE_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Network {
    pub peers: Peers,
    /// Whether each peer answers, shared by every client openraft makes
    /// for it (heartbeats, replication, votes).
    pub reachability: Arc<Mutex<BTreeMap<u64, Reachability>>>,
}

/// How often, at most, an unreachable peer is reported again.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// What to log about a peer after a call to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    Nothing,
    /// It stopped answering.
    Unreachable,
    /// Still not answering: this many failed calls since the last report.
    Still {
        failed: u64,
    },
    /// Answering again after this many failed calls over this long.
    Back {
        failed: u64,
        down: Duration,
    },
}

/// One line when a peer stops answering, one per `REPORT_EVERY` while it
/// stays down (with a count), one when it is back; a peer that fails now
/// and then (a slow call under load) is reported at most once per
/// `REPORT_EVERY` too. openraft's own warning on every failed heartbeat
/// (every 20 ms) is filtered out. Pure: the caller passes the time.
#[derive(Debug, Default)]
pub struct Reachability {
    /// When the current run of failures began.
    failing_since: Option<Instant>,
    /// When it was last reported down, if the report still stands.
    reported_down: Option<Instant>,
    /// When anything was last reported.
    last_report: Option<Instant>,
    failed: u64,
    failed_since_report: u64,
}

impl Reachability {
    pub fn record(&mut self, ok: bool, now: Instant) -> Report {
        let quiet = self
            .last_report
            .is_some_and(|at| now.duration_since(at) < REPORT_EVERY);
        if ok {
            let Some(since) = self.failing_since.take() else {
                return Report::Nothing;
            };
            let failed = std::mem::take(&mut self.failed);
            self.failed_since_report = 0;
            if self.reported_down.take().is_none() {
                return Report::Nothing;
            }
            self.last_report = Some(now);
            return Report::Back {
                failed,
                down: now.duration_since(since),
            };
        }
        self.failing_since.get_or_insert(now);
        self.failed += 1;
        self.failed_since_report += 1;
        if quiet {
            return Report::Nothing;
        }
        self.last_report = Some(now);
        if self.reported_down.replace(now).is_none() {
            self.failed_since_report = 0;
            Report::Unreachable
        } else {
            Report::Still {
                failed: std::mem::take(&mut self.failed_since_report),
            }
        }
    }
}

pub struct PeerClient {
    link: Link,
    target: u64,
    reachability: Arc<Mutex<BTreeMap<u64, Reachability>>>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> PeerClient {
        PeerClient {
            link: self.peers.link_to(target, &node.addr),
            target,
            reachability: self.reachability.clone(),
        }
    }
}

fn unreachable(e: &io::Error) -> Unreachable<TypeConfig> {
    Unreachable::new(e)
}

fn unexpected(reply: PeerReply) -> io::Error {
    match reply {
        PeerReply::Failed(reason) => io::Error::other(reason),
        other => io::Error::other(format!("unexpected reply {other:?}")),
    }
}

impl PeerClient {
    async fn call(&mut self, req: PeerRequest, timeout: Duration) -> io::Result<PeerReply> {
        let result = self.link.call(&req, timeout).await;
        let report = self
            .reachability
            .lock()
            .entry(self.target)
            .or_default()
            .record(result.is_ok(), Instant::now());
        let peer = self.target;
        match (report, &result) {
            (Report::Unreachable, Err(e)) => warn!(peer, "peer unreachable: {e}"),
            (Report::Still { failed }, Err(e)) => warn!(
                peer,
                failed,
                "peer still unreachable ({failed} failed calls in the last {}s): {e}",
                REPORT_EVERY.as_secs()
            ),
            (Report::Back { failed, down }, _) => info!(
                peer,
                failed,
                "peer reachable again after {:.1}s",
                down.as_secs_f64()
            ),
            _ => {}
        }
        result
    }

    /// Sends `req` and takes the reply `pick` accepts; anything else, or
    /// no reply in time, makes the peer unreachable for openraft.
    async fn rpc<T>(
        &mut self,
        req: PeerRequest,
        option: RPCOption,
        pick: impl FnOnce(PeerReply) -> Result<T, PeerReply>,
    ) -> Result<T, RPCError<TypeConfig>> {
        // Our own deadline, before openraft's hard one abandons the call.
        match self.call(req, option.soft_ttl()).await {
            Ok(reply) => {
                pick(reply).map_err(|other| RPCError::Unreachable(unreachable(&unexpected(other))))
            }
            Err(e) => Err(RPCError::Unreachable(unreachable(&e))),
        }
    }

    async fn stream_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot<SnapshotFile>,
    ) -> io::Result<SnapshotResponse<TypeConfig>> {
        let mut file = tokio::fs::File::open(&snapshot.snapshot.0).await?;
        self.link.send(&PeerRequest::SnapshotBegin).await?;
        let mut buf = vec![0u8; SNAPSHOT_CHUNK_BYTES];
        loop {
            let n = file.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            let chunk = bytes::Bytes::copy_from_slice(&buf[..n]);
            self.link.send(&PeerRequest::SnapshotChunk(chunk)).await?;
        }
        let done = PeerRequest::SnapshotDone {
            vote,
            meta: snapshot.meta,
        };
        match self.link.call(&done, SNAPSHOT_DONE_TIMEOUT).await? {
            PeerReply::Snapshot(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }
}

fn vote_reply(reply: PeerReply) -> Result<VoteResponse<TypeConfig>, PeerReply> {
    match reply {
        PeerReply::Vote(r) => Ok(r),
        other => Err(other),
    }
}

impl RaftNetworkV2<TypeConfig> for PeerClient {
    type SnapshotData = SnapshotFile;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.rpc(PeerRequest::Append(rpc), option, |r| match r {
            PeerReply::Append(r) => Ok(r),
            other => Err(other),
        })
        .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.rpc(PeerRequest::Vote(rpc), option, vote_reply).await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.rpc(PeerRequest::PreVote(rpc), option, vote_reply)
            .await
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.rpc(PeerRequest::TransferLeader(req), option, |r| match r {
            PeerReply::TransferLeader(r) => Ok(r),
            other => Err(other),
        })
        .await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot<SnapshotFile>,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let result = tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            sent = self.stream_snapshot(vote, snapshot) => {
                sent.map_err(|e| StreamingError::Unreachable(unreachable(&e)))
            }
        };
        if result.is_err() {
            // A half-sent snapshot must not be mistaken for the next one.
            self.link.reset();
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_peer_is_reported_once_then_every_interval_then_when_back() {
        let mut r = Reachability::default();
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        assert_eq!(r.record(true, at(0)), Report::Nothing);
        assert_eq!(r.record(false, at(20)), Report::Unreachable);
        for ms in (40..10_020).step_by(20) {
            assert_eq!(r.record(false, at(ms)), Report::Nothing, "at {ms} ms");
        }
        assert_eq!(r.record(false, at(10_020)), Report::Still { failed: 500 });
        assert_eq!(r.record(false, at(10_040)), Report::Nothing);
        assert_eq!(
            r.record(true, at(12_020)),
            Report::Back {
                failed: 502,
                down: Duration::from_secs(12)
            }
        );
        assert_eq!(r.record(true, at(12_040)), Report::Nothing);
    }

    #[test]
    fn a_peer_that_fails_now_and_then_is_reported_at_most_once_an_interval() {
        let mut r = Reachability::default();
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        assert_eq!(r.record(false, at(0)), Report::Unreachable);
        assert!(matches!(
            r.record(true, at(20)),
            Report::Back { failed: 1, .. }
        ));
        for ms in (40..10_020).step_by(40) {
            assert_eq!(r.record(false, at(ms)), Report::Nothing, "at {ms} ms");
            assert_eq!(r.record(true, at(ms + 20)), Report::Nothing, "at {ms} ms");
        }
        assert_eq!(r.record(false, at(10_040)), Report::Unreachable);
    }
}
