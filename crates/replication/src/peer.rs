//! The wire between replicas: length-prefixed frames over TCP (or TLS
//! over it, `sslQuorum`), each one message in our own layout (`wire.rs`).
//! Each request gets one reply, in order, except the fire-and-forget ones
//! (snapshot chunks, session liveness). A `Link` is one outgoing
//! connection, redialled after any error; `serve` answers incoming ones.

use crate::auth::{self, Secret};
use crate::membership::{Reconfig, ReconfigError, Reconfigurer};
use crate::receive::{Receiving, MAX_RECEIVED_SNAPSHOT_BYTES};
use crate::state_machine::{SnapshotFile, StateMachine};
use crate::types::{Command, SnapshotMeta, TypeConfig, Vote};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use openraft::async_runtime::WatchReceiver;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::Raft;
use paddock_storage::disk::remove_if_there;
use paddock_storage::Disk;
use rustls::pki_types::ServerName;
use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_util::codec::{Framed, LengthDelimitedCodec};
use tracing::{debug, warn};

/// The largest frame a peer may send. Append batches are bounded by
/// openraft's `max_payload_entries` times `jute.maxbuffer`; snapshots
/// travel in chunks.
pub const MAX_PEER_FRAME_BYTES: usize = 256 << 20;
/// Bytes of snapshot per chunk.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

#[derive(Debug, Clone)]
pub enum PeerRequest {
    Append(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<TypeConfig>),
    PreVote(VoteRequest<TypeConfig>),
    /// A snapshot follows in chunks (no reply until `SnapshotDone`).
    SnapshotBegin,
    SnapshotChunk(Bytes),
    SnapshotDone {
        vote: Vote,
        meta: SnapshotMeta,
    },
    /// Writes a follower or observer passes to the leader, in order.
    Forward(Vec<Command>),
    /// Sessions the sender's clients were heard from; answered `Touched`
    /// by a leader (a server that does not lead says `Failed`).
    Touch(Vec<crate::Heard>),
    /// A leader stepping down names its successor.
    TransferLeader(TransferLeaderRequest<TypeConfig>),
    /// A client's reconfig, passed to the leader.
    Reconfig(Reconfig),
    /// Asked by a server starting with no state: has this one joined an
    /// ensemble already?
    Initialized,
    /// A server rebuilding its files asks the leader to make it a learner,
    /// or a voter again (`crate::rebuild`); answered `Reconfigured`.
    SetVoter {
        id: u64,
        spec: String,
        voter: bool,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum PeerReply {
    Append(AppendEntriesResponse<TypeConfig>),
    Vote(VoteResponse<TypeConfig>),
    Snapshot(SnapshotResponse<TypeConfig>),
    Forwarded,
    Touched,
    TransferLeader(TransferLeaderResponse<TypeConfig>),
    /// The new config version, or why the reconfig was refused.
    Reconfigured(Result<u64, ReconfigError>),
    Initialized(bool),
    Failed(String),
}

fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_PEER_FRAME_BYTES)
        .new_codec()
}

fn invalid(e: crate::wire::WireError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// The peer address (`host:port`) in a ZooKeeper server spec
/// (`host:peerPort:electionPort[:role][;clientAddr]`).
pub fn peer_addr(spec: &str) -> Option<String> {
    let servers = spec.split(';').next()?;
    let mut parts = servers.split(':');
    let host = parts.next().filter(|h| !h.is_empty())?;
    let port = parts.next()?.parse::<u16>().ok()?;
    Some(format!("{host}:{port}"))
}

/// What a peer connection runs over: TCP, or TLS over it.
pub trait PeerIo: AsyncRead + AsyncWrite + Send + Sync + Unpin {}
impl<S: AsyncRead + AsyncWrite + Send + Sync + Unpin> PeerIo for S {}

type Conn = Framed<Box<dyn PeerIo>, LengthDelimitedCodec>;

/// How long a TLS handshake with a peer may take.
const TLS_HANDSHAKE_LIMIT: Duration = Duration::from_secs(5);

/// TLS between peers (`sslQuorum`): every connection is mutual TLS, each
/// side's certificate checked against the ensemble's trust store.
#[derive(Clone)]
pub struct QuorumTls {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
    /// With host name verification: the members' hosts, one of which (or
    /// the address it connects from) a dialling peer's certificate must
    /// name.
    member_hosts: Option<Arc<Vec<String>>>,
}

impl QuorumTls {
    /// `server` must require client certificates, so both sides prove
    /// one; `member_hosts` (the hosts of the `server.N` lines) when a
    /// dialling peer's certificate must name where it connects from.
    pub fn new(
        server: rustls::ServerConfig,
        client: rustls::ClientConfig,
        member_hosts: Option<Vec<String>>,
    ) -> QuorumTls {
        QuorumTls {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
            member_hosts: member_hosts.map(Arc::new),
        }
    }

    /// Whether the dialling peer's certificate names the address it
    /// connects from, or a member host that resolves to that address (as
    /// ZooKeeper checks a quorum client's certificate).
    async fn names_dialler(&self, cert: &[u8], from: std::net::IpAddr) -> bool {
        let Some(hosts) = &self.member_hosts else {
            return true;
        };
        if paddock_tls::names_host(cert, &from.to_string()) {
            return true;
        }
        for host in hosts.iter() {
            if paddock_tls::names_host(cert, host) {
                if let Ok(mut addrs) = tokio::net::lookup_host((host.as_str(), 0)).await {
                    if addrs.any(|a| a.ip() == from) {
                        return true;
                    }
                }
            }
        }
        false
    }

    /// A dialled connection, once the handshake with `host` succeeds.
    async fn dial(&self, host: &str, stream: TcpStream) -> io::Result<Box<dyn PeerIo>> {
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{host}: {e}")))?;
        let handshake = self.connector.connect(name, stream);
        let stream = tokio::time::timeout(TLS_HANDSHAKE_LIMIT, handshake)
            .await
            .map_err(|_| tls_refused("no TLS handshake in time"))?
            .map_err(|e| tls_refused(&e.to_string()))?;
        Ok(Box::new(stream))
    }

    /// An accepted connection, once the handshake succeeds.
    async fn accept(&self, stream: TcpStream) -> io::Result<Box<dyn PeerIo>> {
        let from = stream.peer_addr()?.ip();
        let stream = tokio::time::timeout(TLS_HANDSHAKE_LIMIT, self.acceptor.accept(stream))
            .await
            .map_err(|_| tls_refused("no TLS handshake in time"))?
            .map_err(|e| tls_refused(&e.to_string()))?;
        let leaf = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.as_ref().to_vec())
            .ok_or_else(|| tls_refused("the peer showed no certificate"))?;
        if !self.names_dialler(&leaf, from).await {
            return Err(tls_refused(&format!(
                "the peer's certificate names neither {from} nor a member host at that address"
            )));
        }
        Ok(Box::new(stream))
    }
}

impl std::fmt::Debug for QuorumTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QuorumTls")
    }
}

fn tls_refused(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, format!("TLS: {why}"))
}

/// The other servers as this one reaches them: their specs from its
/// config by id, the secret each connection proves (if the ensemble has
/// one) and TLS (if `sslQuorum`).
#[derive(Clone, Default)]
pub struct Peers {
    specs: Arc<BTreeMap<u64, String>>,
    secret: Option<Arc<Secret>>,
    tls: Option<QuorumTls>,
}

impl Peers {
    pub fn new(
        specs: BTreeMap<u64, String>,
        secret: Option<Arc<Secret>>,
        tls: Option<QuorumTls>,
    ) -> Peers {
        Peers {
            specs: Arc::new(specs),
            secret,
            tls,
        }
    }

    pub fn tls(&self) -> Option<QuorumTls> {
        self.tls.clone()
    }

    /// Server `id`'s spec from this server's config, else the one the
    /// membership gives.
    pub fn spec(&self, id: u64, membership_spec: &str) -> String {
        self.specs
            .get(&id)
            .cloned()
            .unwrap_or_else(|| membership_spec.to_owned())
    }

    pub fn get(&self, id: u64) -> Option<&String> {
        self.specs.get(&id)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&u64, &String)> {
        self.specs.iter()
    }

    pub fn secret(&self) -> Option<Arc<Secret>> {
        self.secret.clone()
    }

    /// A connection (made when first used) to the server at `spec`.
    pub fn link(&self, spec: &str) -> Link {
        Link {
            addr: peer_addr(spec),
            conn: None,
            secret: self.secret.clone(),
            tls: self.tls.clone(),
        }
    }

    /// A connection to member `id` (`membership_spec` if this server's
    /// config does not list it).
    pub fn link_to(&self, id: u64, membership_spec: &str) -> Link {
        self.link(&self.spec(id, membership_spec))
    }
}

/// One outgoing connection to a peer.
pub struct Link {
    addr: Option<String>,
    conn: Option<Conn>,
    secret: Option<Arc<Secret>>,
    tls: Option<QuorumTls>,
}

impl Link {
    /// The open connection, taken out of the link (or a new one): a
    /// request puts it back only once its exchange completed, so a
    /// request abandoned half-way (its caller timed out and dropped it)
    /// leaves no connection behind whose late reply the next request
    /// could take for its own.
    async fn take_connection(&mut self) -> io::Result<Conn> {
        if let Some(conn) = self.conn.take() {
            return Ok(conn);
        }
        let addr = self
            .addr
            .as_deref()
            .ok_or_else(|| io::Error::other("the peer has no address"))?;
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        stream.set_nodelay(true)?;
        let io: Box<dyn PeerIo> = match &self.tls {
            Some(tls) => {
                let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
                tls.dial(host.trim_matches(['[', ']']), stream).await?
            }
            None => Box::new(stream),
        };
        let mut conn = Framed::new(io, codec());
        if let Some(secret) = &self.secret {
            auth::handshake(&mut conn, secret, true).await?;
        }
        Ok(conn)
    }

    /// Drops the connection; the next request dials again.
    pub fn reset(&mut self) {
        self.conn = None;
    }

    /// Sends a request that gets no reply.
    pub async fn send(&mut self, req: &PeerRequest) -> io::Result<()> {
        let frame = crate::wire::encode_request(req);
        let mut conn = self.take_connection().await?;
        conn.send(frame).await?;
        self.conn = Some(conn);
        Ok(())
    }

    /// Sends a request and waits up to `timeout` for its reply. After any
    /// error the connection is dropped, so a late reply cannot be taken
    /// for the next request's.
    pub async fn call(&mut self, req: &PeerRequest, timeout: Duration) -> io::Result<PeerReply> {
        let frame = crate::wire::encode_request(req);
        let exchange = async {
            let mut conn = self.take_connection().await?;
            conn.send(frame).await?;
            let reply = match conn.next().await {
                Some(Ok(reply)) => crate::wire::decode_reply(reply.freeze()).map_err(invalid)?,
                Some(Err(e)) => return Err(e),
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the peer closed the connection",
                    ))
                }
            };
            Ok((conn, reply))
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok((conn, reply))) => {
                self.conn = Some(conn);
                Ok(reply)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "no reply in time")),
        }
    }
}

/// What the peer listener needs from the rest of the replica.
pub struct PeerContext {
    pub raft: Raft<TypeConfig, StateMachine>,
    pub disk: Arc<dyn Disk>,
    /// Where received snapshots are written before they are installed.
    pub snapshot_dir: PathBuf,
    /// When the leader was last heard from, in ms since `started`.
    pub leader_contact_ms: Arc<AtomicU64>,
    pub started: Instant,
    /// Session liveness reported by other servers.
    pub touches: mpsc::UnboundedSender<Vec<crate::Heard>>,
    pub reconfigurer: Arc<Reconfigurer>,
    /// The secret a peer must prove before anything it sends is read.
    pub secret: Option<Arc<Secret>>,
    /// TLS every peer connection must complete first (`sslQuorum`).
    pub tls: Option<QuorumTls>,
}

impl PeerContext {
    fn heard_from_leader(&self) {
        self.leader_contact_ms
            .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

/// Accepts peers until the listener fails or the task is aborted.
pub async fn serve(listener: TcpListener, ctx: Arc<PeerContext>) {
    let mut next = 0u64;
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                next += 1;
                let (ctx, id) = (ctx.clone(), next);
                tokio::spawn(async move {
                    match serve_one(stream, &ctx, id).await {
                        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                            warn!(%addr, "dropped a peer connection: {e}");
                        }
                        Err(e) => debug!(%addr, "peer connection ended: {e}"),
                        Ok(()) => {}
                    }
                });
            }
            Err(e) => {
                warn!("accepting a peer failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Runs blocking file work off the runtime's threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(io::Error::other)?
}

async fn serve_one(stream: TcpStream, ctx: &PeerContext, id: u64) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let io: Box<dyn PeerIo> = match &ctx.tls {
        Some(tls) => tls.accept(stream).await?,
        None => Box::new(stream),
    };
    let mut conn = Framed::new(io, codec());
    if let Some(secret) = &ctx.secret {
        auth::handshake(&mut conn, secret, false).await?;
    }
    let mut receiving: Option<Receiving> = None;
    let result = async {
        while let Some(frame) = conn.next().await {
            let req = crate::wire::decode_request(frame?.freeze()).map_err(invalid)?;
            if let Some(reply) = handle(req, ctx, id, &mut receiving).await? {
                conn.send(crate::wire::encode_reply(&reply)).await?;
            }
        }
        Ok(())
    }
    .await;
    if let Some(part) = receiving {
        let (disk, path) = (ctx.disk.clone(), part.path().to_owned());
        if let Err(e) = blocking(move || remove_if_there(&*disk, &path)).await {
            warn!("removing a snapshot received in part: {e}");
        }
    }
    result
}

async fn handle(
    req: PeerRequest,
    ctx: &PeerContext,
    conn_id: u64,
    receiving: &mut Option<Receiving>,
) -> io::Result<Option<PeerReply>> {
    let failed = |e: &dyn std::fmt::Display| PeerReply::Failed(e.to_string());
    // Consensus here has stopped (its log failed): nothing can be handed
    // to it (openraft would log an error for every message).
    if let Err(e) = &ctx.raft.metrics().borrow_watched().running_state {
        return Ok(Some(failed(e)));
    }
    let reply = match req {
        PeerRequest::Append(rpc) => {
            ctx.heard_from_leader();
            match ctx.raft.append_entries(rpc).await {
                Ok(r) => PeerReply::Append(r),
                Err(e) => failed(&e),
            }
        }
        PeerRequest::Vote(rpc) => match ctx.raft.vote(rpc).await {
            Ok(r) => PeerReply::Vote(r),
            Err(e) => failed(&e),
        },
        PeerRequest::PreVote(rpc) => match ctx.raft.pre_vote(rpc).await {
            Ok(r) => PeerReply::Vote(r),
            Err(e) => failed(&e),
        },
        PeerRequest::TransferLeader(rpc) => match ctx.raft.handle_transfer_leader(rpc).await {
            Ok(r) => PeerReply::TransferLeader(r),
            Err(e) => failed(&e),
        },
        PeerRequest::Reconfig(req) => PeerReply::Reconfigured(ctx.reconfigurer.run(req).await),
        PeerRequest::SetVoter { id, spec, voter } => {
            PeerReply::Reconfigured(ctx.reconfigurer.set_voter(id, &spec, voter).await)
        }
        PeerRequest::Initialized => match ctx.raft.is_initialized().await {
            Ok(yes) => PeerReply::Initialized(yes),
            Err(e) => failed(&e),
        },
        PeerRequest::SnapshotBegin => {
            let path = ctx.snapshot_dir.join(format!("receiving.{conn_id}.tmp"));
            let disk = ctx.disk.clone();
            let part =
                blocking(move || Receiving::begin(disk, path, MAX_RECEIVED_SNAPSHOT_BYTES)).await?;
            *receiving = Some(part);
            return Ok(None);
        }
        PeerRequest::SnapshotChunk(bytes) => {
            ctx.heard_from_leader();
            let mut part = receiving
                .take()
                .ok_or_else(|| io::Error::other("a snapshot chunk before its start"))?;
            let (part, written) = blocking(move || {
                let written = part.chunk(&bytes);
                Ok((part, written))
            })
            .await?;
            // Kept, so that an error removes it.
            *receiving = Some(part);
            written?;
            return Ok(None);
        }
        PeerRequest::SnapshotDone { vote, meta } => {
            let part = receiving
                .take()
                .ok_or_else(|| io::Error::other("a snapshot end before its start"))?;
            let path = part.path().to_owned();
            let synced = blocking(move || part.finish()).await;
            let synced = match synced {
                Ok(synced) => synced,
                Err(e) => {
                    let disk = ctx.disk.clone();
                    blocking(move || remove_if_there(&*disk, &path)).await?;
                    return Err(e);
                }
            };
            let snapshot = openraft::alias::SnapshotOf::<TypeConfig, SnapshotFile> {
                meta,
                snapshot: SnapshotFile(synced),
            };
            let installed = ctx.raft.install_full_snapshot(vote, snapshot).await;
            let disk = ctx.disk.clone();
            blocking(move || remove_if_there(&*disk, &path)).await?;
            match installed {
                Ok(r) => PeerReply::Snapshot(r),
                Err(e) => failed(&e),
            }
        }
        PeerRequest::Forward(commands) => {
            // A deposed leader would drop them silently: say so instead,
            // and the sender's clients start over with the new leader.
            if !ctx.raft.is_leader() {
                return Ok(Some(PeerReply::Failed("not the leader".into())));
            }
            // Only a leader decides expiry, in its own term: it never
            // takes one from another server.
            if commands.iter().any(|c| c.expiry_term.is_some()) {
                return Ok(Some(PeerReply::Failed("an expiry is not forwarded".into())));
            }
            for command in commands {
                if let Err(e) = ctx.raft.client_write_ff(command, None).await {
                    return Ok(Some(failed(&e)));
                }
            }
            PeerReply::Forwarded
        }
        PeerRequest::Touch(sessions) => {
            if !ctx.raft.is_leader() {
                return Ok(Some(PeerReply::Failed("not the leader".into())));
            }
            let _ = ctx.touches.send(sessions);
            PeerReply::Touched
        }
    };
    Ok(Some(reply))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_addresses_come_from_zookeeper_server_specs() {
        assert_eq!(
            peer_addr("127.0.0.1:2888:3888;127.0.0.1:2181").as_deref(),
            Some("127.0.0.1:2888")
        );
        assert_eq!(
            peer_addr("zk1:2888:3888:observer").as_deref(),
            Some("zk1:2888")
        );
        assert_eq!(peer_addr(""), None);
        assert_eq!(peer_addr("host:notaport:3888"), None);
    }
}
