//! The listener and the server's background tasks: accept loop with
//! per-IP limits, session expiry, container/TTL reaping, shutdown.

use crate::admission::{Full, IpSlot, PerIpMap};
use crate::config::ServerConfig;
use crate::conn;
use crate::pipeline::{self, QUEUE_DEPTH};
use crate::proposal::{Proposal, Proposed};
use crate::recovery::{recover_state, DataLock, RecoveryError};
use crate::session::{initial_session_id, Expiry, ExpiryGate, SessionTracker};
use crate::shared::Shared;
use crate::socket::Socket;
use crate::tls::ClientTls;
use bytes::Bytes;
use paddock_proto::{DeleteContainerRequest, Request};
use paddock_replication::{Replica, ReplicationError, Role, Status, CONTACT_LOST_MS};
use paddock_storage::{Disk, FsDisk};
use paddock_tree::{Txn, TxnOp, SYSTEM_SESSION};
use parking_lot::RwLock;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr} ({what})")]
    Bind {
        addr: SocketAddr,
        what: &'static str,
        source: std::io::Error,
    },
    #[error(transparent)]
    Recovery(#[from] RecoveryError),
    #[error(transparent)]
    Replication(#[from] ReplicationError),
    #[error("secureClientPort: {0}")]
    Tls(paddock_tls::TlsError),
}

/// The server did not finish stopping within [`STOP_WITHIN`]; what it
/// was waiting for is named. Nothing acknowledged is lost: every write
/// was on disk before its reply.
#[derive(Debug, thiserror::Error)]
#[error("did not stop within {STOP_WITHIN:?}: stuck {0}")]
pub struct StuckStopping(&'static str);

/// How long a stop may take once the listener is closed.
const STOP_WITHIN: Duration = Duration::from_secs(15);

/// What an HTTP listener serves.
#[derive(Clone, Copy)]
enum Http {
    /// The admin commands (and /metrics).
    Admin,
    /// /metrics only.
    Metrics,
}

impl Http {
    fn serves(self) -> &'static str {
        match self {
            Http::Admin => "admin HTTP and /metrics",
            Http::Metrics => "/metrics",
        }
    }
}

/// A bound, not yet running, server.
pub struct Server {
    /// `clientPort`, unless the server is TLS-only.
    listener: Option<TcpListener>,
    /// `secureClientPort` and its TLS configuration.
    secure: Option<(TcpListener, Arc<ClientTls>)>,
    /// The admin HTTP and Prometheus listeners, when configured.
    http: Vec<(TcpListener, Http)>,
    shared: Arc<Shared>,
    proposals: mpsc::Receiver<Proposal>,
    replica: Arc<Replica>,
    _lock: DataLock,
}

async fn listen(addr: SocketAddr, what: &'static str) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, what, source })
}

impl Server {
    /// Binds the client port and prepares the state.
    pub async fn bind(config: ServerConfig) -> Result<Server, StartError> {
        Self::bind_on(config, Arc::new(FsDisk)).await
    }

    /// Like `bind`, with the storage on `disk` (tests inject faults here).
    pub async fn bind_on(config: ServerConfig, disk: Arc<dyn Disk>) -> Result<Server, StartError> {
        let reading = std::time::Instant::now();
        let recovered = recover_state(&config, disk.clone())?;
        let listener = match config.plain_client_port {
            true => Some(listen(config.client_addr, "clientPort").await?),
            false => None,
        };
        let secure = match config.secure_client_addr {
            Some(addr) => {
                let tls = ClientTls::new(config.client_tls.clone(), config.x509_super_user.clone())
                    .map_err(StartError::Tls)?;
                Some((listen(addr, "secureClientPort").await?, Arc::new(tls)))
            }
            None => None,
        };
        let mut http = Vec::new();
        if let Some(addr) = config.admin_addr {
            http.push((listen(addr, "admin.serverPort").await?, Http::Admin));
        }
        if let Some(addr) = config.metrics_addr {
            http.push((
                listen(addr, "metricsProvider.httpPort").await?,
                Http::Metrics,
            ));
        }
        let mut config = config;
        // Port 0 asks for any free port: record the one we got (conf shows it).
        if let Some(Ok(bound)) = listener.as_ref().map(TcpListener::local_addr) {
            config.client_addr = bound;
        }
        if let Some(Ok(bound)) = secure.as_ref().map(|(l, _)| l.local_addr()) {
            config.secure_client_addr = Some(bound);
        }
        let (tx, proposals) = mpsc::channel(QUEUE_DEPTH);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let sessions = SessionTracker::new(initial_session_id(now, config.server_id));
        let tree = Arc::new(RwLock::new(recovered.tree));
        let shared = Shared::new(config, tree.clone(), sessions, tx);
        let replica = Arc::new(recovered.opened.start(tree, shared.clone()).await?);
        shared.publish_last_zxid(shared.tree.read().last_zxid());
        {
            let tree = shared.tree.read();
            info!(
                zxid = format_args!("0x{:x}", tree.last_zxid()),
                nodes = tree.node_count(),
                sessions = tree.sessions().len(),
                ms = reading.elapsed().as_millis() as u64,
                "recovered: the snapshot and the log after it"
            );
        }
        // Sessions that survived the restart get a full timeout to come back.
        let live: Vec<(i64, i32)> = shared
            .tree
            .read()
            .sessions()
            .iter()
            .map(|(id, s)| (*id, s.timeout_ms))
            .collect();
        shared.sessions.resync(&live, shared.mono_ms());
        let status = replica.status().borrow().clone();
        shared.set_status(status);
        Ok(Server {
            listener,
            secure,
            http,
            shared,
            proposals,
            replica,
            _lock: recovered.lock,
        })
    }

    /// The client port's address (the secure one for a TLS-only server).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match (&self.listener, &self.secure) {
            (Some(l), _) | (None, Some((l, _))) => l.local_addr(),
            (None, None) => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }

    /// The secure client port's address, when there is one.
    pub fn secure_addr(&self) -> Option<SocketAddr> {
        self.secure.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// Serves until `shutdown` is cancelled, then closes every connection.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), StuckStopping> {
        let Server {
            listener,
            secure,
            http,
            shared,
            proposals,
            replica,
            _lock,
        } = self;
        let tasks = TaskTracker::new();
        let stop_write_path = CancellationToken::new();
        let write_path = tokio::spawn(pipeline::run(
            shared.clone(),
            proposals,
            replica.clone(),
            stop_write_path.clone(),
        ));
        tasks.spawn(follow_status(
            shared.clone(),
            replica.status(),
            shutdown.clone(),
        ));
        tasks.spawn(keep_config(
            shared.clone(),
            replica.clone(),
            replica.status(),
            shutdown.clone(),
        ));
        tasks.spawn(expire_sessions(
            shared.clone(),
            replica.clone(),
            shutdown.clone(),
        ));
        tasks.spawn(report_sessions(
            shared.clone(),
            replica.clone(),
            shutdown.clone(),
        ));
        tasks.spawn(reap_nodes(shared.clone(), shutdown.clone()));
        for (l, kind) in http {
            let app = match kind {
                Http::Admin => crate::admin::router(shared.clone()),
                Http::Metrics => crate::admin::metrics_router(shared.clone()),
            };
            if let Ok(addr) = l.local_addr() {
                info!(%addr, "{}", kind.serves());
            }
            tasks.spawn(crate::admin::serve(l, app, shutdown.clone()));
        }
        if let Some(Ok(addr)) = listener.as_ref().map(TcpListener::local_addr) {
            info!(%addr, "serving");
        }
        if let Some((l, tls)) = &secure {
            if let Ok(addr) = l.local_addr() {
                info!(%addr, stores = ?crate::tls::files(&shared.config.client_tls), "serving TLS");
            }
            tasks.spawn(reload_tls(tls.clone(), shutdown.clone()));
        }
        let per_ip: PerIpMap = Arc::default();
        let mut next_id = 0u64;
        loop {
            let (stream, peer, tls) = tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = accept(listener.as_ref()) => match accepted {
                    Ok((stream, peer)) => (stream, peer, None),
                    Err(e) => {
                        warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                accepted = accept(secure.as_ref().map(|(l, _)| l)) => match accepted {
                    Ok((stream, peer)) => (stream, peer, secure.as_ref().map(|(_, t)| t.clone())),
                    Err(e) => {
                        warn!("accept failed on the secure client port: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let c = &shared.config;
            let slot = match IpSlot::take(&per_ip, peer.ip(), c.max_client_cnxns, c.max_cnxns) {
                Ok(slot) => slot,
                Err(Full::ThisAddress) => {
                    warn!(%peer, limit = c.max_client_cnxns, "too many connections from this address (maxClientCnxns); closing");
                    continue;
                }
                Err(Full::Server) => {
                    warn!(%peer, limit = c.max_cnxns, "too many connections (maxCnxns); closing");
                    continue;
                }
            };
            next_id += 1;
            match tls {
                Some(tls) => tasks.spawn(crate::tls::serve(
                    shared.clone(),
                    tls,
                    stream,
                    peer,
                    next_id,
                    slot,
                )),
                None => {
                    let _ = stream.set_nodelay(true);
                    let socket = Socket::Tcp(stream);
                    tasks.spawn(conn::serve(
                        shared.clone(),
                        socket,
                        peer,
                        next_id,
                        slot,
                        Vec::new(),
                    ))
                }
            };
        }
        shared.stop_serving();
        let mut stage = "";
        let stop = tokio::time::timeout(STOP_WITHIN, async {
            if shared.config.ensemble.is_some() {
                stage = "handing leadership over";
                if let Some(to) = replica.hand_over(Duration::from_secs(2)).await {
                    info!(to, "handed leadership over before stopping");
                }
            }
            stage = "closing connections and background tasks";
            tasks.close();
            tasks.wait().await;
            stage = "ending the write path";
            stop_write_path.cancel();
            let _ = write_path.await;
            stage = "stopping consensus";
            replica.shutdown().await;
        })
        .await;
        match stop {
            Ok(()) => {
                info!("stopped");
                Ok(())
            }
            Err(_) => Err(StuckStopping(stage)),
        }
    }
}

/// The next connection on `listener`; never, without one.
async fn accept(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// Rebuilds the secure client port's TLS configuration when its key or
/// trust store changes (as ZooKeeper 3.8 does for its quorum's).
async fn reload_tls(tls: Arc<ClientTls>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            () = tokio::time::sleep(crate::tls::RELOAD_CHECK) => tls.reload_if_changed(),
        }
    }
}

fn leads(role: Role) -> bool {
    matches!(role, Role::Leader | Role::Standalone)
}

/// Follows consensus: a new epoch closes every connection, so does the
/// end of read-only mode (its sessions are forgotten).
async fn follow_status(
    shared: Arc<Shared>,
    mut status: watch::Receiver<Status>,
    shutdown: CancellationToken,
) {
    loop {
        let now = status.borrow_and_update().clone();
        let before = shared.status();
        let read_only_ends = shared.config.read_only_mode && now.serving && !before.serving;
        if now.epoch != before.epoch || read_only_ends {
            shared.restart_service();
        }
        if read_only_ends {
            shared.sessions.drop_local();
        }
        shared.set_status(now);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = status.changed() => if changed.is_err() { return },
        }
    }
}

/// How long the leader waits for its /zookeeper/config transaction.
const CONFIG_WRITE_LIMIT: Duration = Duration::from_secs(10);

/// While this server leads, `/zookeeper/config` follows the membership:
/// once a change has settled, the leader commits the transaction that
/// writes the new `server.N=` lines there (ZooKeeper's reconfig
/// transaction; `version=` is its zxid). The first leader of a new
/// ensemble writes the first one; a leader elected half-way through a
/// change finishes it.
async fn keep_config(
    shared: Arc<Shared>,
    replica: Arc<Replica>,
    mut status: watch::Receiver<Status>,
    shutdown: CancellationToken,
) {
    let mut reconfigs = replica.last_change();
    let mut config = shared.config_changed.subscribe();
    loop {
        let now = status.borrow_and_update().clone();
        let last = reconfigs.borrow_and_update().clone();
        // A reconfig under way here writes when it ends (knowing what
        // was asked gives ZooKeeper's order of the lines).
        let stale = now.role == Role::Leader
            && now.serving
            && now.settled
            && !replica.reconfiguring()
            && !paddock_replication::shows(&now.members, &shared.tree.read());
        let term = replica.leading_term();
        if let (true, Some(term)) = (stale, term) {
            let shown = shared.tree.read().config_data();
            let servers = crate::reconfig::config_lines(&shown, &now.members, last.as_ref());
            let txn = Txn {
                session_id: paddock_tree::SYSTEM_SESSION,
                time_ms: shared.wall_ms(),
                auth: Vec::new(),
                op: TxnOp::SetConfig { servers },
            };
            // Void if this server no longer leads when it is appended
            // (a newer leader writes its own view); a void entry is
            // never answered, hence the time limit. Once applied, the
            // node shows these lines.
            let done = tokio::select! {
                _ = shutdown.cancelled() => return,
                done = tokio::time::timeout(CONFIG_WRITE_LIMIT, shared.commit_in_term(txn, term)) => done,
            };
            let Ok(done) = done else {
                warn!("writing /zookeeper/config took over {CONFIG_WRITE_LIMIT:?}; trying again");
                continue;
            };
            match done {
                Ok(done) if done.result.is_ok() => {
                    info!(
                        zxid = format_args!("0x{:x}", done.zxid),
                        "wrote the membership to /zookeeper/config"
                    );
                    continue;
                }
                Ok(done) => warn!("writing /zookeeper/config failed: {:?}", done.result),
                Err(_) => return,
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = status.changed() => if changed.is_err() { return },
            changed = reconfigs.changed() => if changed.is_err() { return },
            changed = config.changed() => if changed.is_err() { return },
        }
    }
}

/// A follower tells the leader, every half tick, which sessions its
/// clients were heard from and how long ago; the leader takes in what the
/// others report.
async fn report_sessions(shared: Arc<Shared>, replica: Arc<Replica>, shutdown: CancellationToken) {
    let Some(mut touches) = replica.take_touches() else {
        return;
    };
    let mut every = tokio::time::interval(half_tick(&shared));
    let mut since = 0;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            Some(heard) = touches.recv() => {
                let now = shared.mono_ms();
                for (id, ago_ms) in heard {
                    shared.sessions.touch(id, now - i64::from(ago_ms));
                }
            }
            _ = every.tick() => {
                let now = shared.mono_ms();
                if !leads(shared.status().role) {
                    replica.report_sessions(shared.sessions.heard_since(since, now));
                }
                since = now;
            }
        }
    }
}

fn half_tick(shared: &Shared) -> Duration {
    Duration::from_millis(u64::from(shared.config.tick_time_ms / 2).max(1))
}

/// Closes proposed per check at most; more wait for the next check.
const MAX_EXPIRIES_PER_CHECK: usize = 1000;

/// The leader closes sessions not heard from within their timeout,
/// checking every half tick, but only while its view of liveness holds
/// (`ExpiryGate`); a close that has not been applied a second (or two
/// ticks) later is proposed again. Every server forgets its own
/// read-only-mode sessions the same way.
async fn expire_sessions(shared: Arc<Shared>, replica: Arc<Replica>, shutdown: CancellationToken) {
    let every = half_tick(&shared);
    let retry_ms = i64::from(shared.config.tick_time_ms)
        .saturating_mul(2)
        .max(CONTACT_LOST_MS as i64);
    let mut gate = ExpiryGate::new(every.as_millis() as i64);
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let now = shared.mono_ms();
        for session_id in shared.sessions.expire_local(now) {
            info!(
                session = format_args!("0x{session_id:x}"),
                "read-only session expired"
            );
        }
        let term = replica.leading_term();
        let term = match gate.check(now, term) {
            Expiry::Idle => continue,
            Expiry::StepDown => {
                shared.sessions.forget_closing();
                continue;
            }
            Expiry::Rebuild => {
                info!(
                    term,
                    sessions = shared.sessions.len(),
                    "leading: every session gets a full timeout from now"
                );
                shared.sessions.rebuild(now);
                continue;
            }
            Expiry::Extend(late_ms) => {
                warn!(
                    late_ms,
                    "the session expiry check ran late; the delay does not count against sessions"
                );
                shared.sessions.extend(late_ms, now);
                continue;
            }
            Expiry::Expire => term.unwrap_or_default(),
        };
        for session_id in shared
            .sessions
            .expire(now, retry_ms, MAX_EXPIRIES_PER_CHECK)
        {
            info!(
                session = format_args!("0x{session_id:x}"),
                term, "session expired"
            );
            let txn = Txn {
                session_id,
                time_ms: shared.wall_ms(),
                auth: Vec::new(),
                op: TxnOp::CloseSession,
            };
            if shared
                .propose(Proposed::InTerm { txn, term }, None)
                .await
                .is_err()
            {
                return;
            }
        }
        gate.done(shared.mono_ms());
    }
}

/// Deletes empty containers and expired TTL nodes every check interval.
async fn reap_nodes(shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_millis(
        shared.config.container_check_interval_ms.max(1),
    ));
    every.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        if !leads(shared.status().role) {
            continue;
        }
        let due = shared.tree.read().reapable_at(shared.wall_ms());
        for path in due {
            let txn = Txn {
                session_id: SYSTEM_SESSION,
                time_ms: shared.wall_ms(),
                auth: Vec::new(),
                op: TxnOp::Write(Request::DeleteContainer(DeleteContainerRequest {
                    path: Some(Bytes::from(path.into_bytes())),
                })),
            };
            if shared.submit(txn, None).await.is_err() {
                return;
            }
        }
    }
}
