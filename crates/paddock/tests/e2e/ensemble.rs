//! Ensembles of real `paddock server` processes on 127.0.0.1: writes
//! through every server, leader and follower crashes, restarts that catch
//! up by log or snapshot, a paused leader, and a partition made with TCP
//! proxies the test owns. After each: no acknowledged write lost, every
//! replica's digest (`hash`) equal, and sessions that could reach a quorum
//! alive.

use crate::common::{create_request, free_port, Raw};
use bytes::Bytes;
use paddock_proto::{
    AuthPacket, ConnectRequest, ErrorCode, PathWatchRequest, ReconfigRequest, ReplyHeader, Request,
    Response,
};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Member {
    id: u64,
    client: u16,
    peer: u16,
    /// ZooKeeper's leader-election port: unused by Paddock, but part of a
    /// server's spec, so the same in every server's config.
    election: u16,
    observer: bool,
}

/// A TCP proxy that can cut every connection through it, or hold what
/// goes through it one way or both (a blackhole: nothing arrives, nothing
/// is reset, and what was held flows once released, as after a healed
/// partition).
pub(crate) struct Proxy {
    port: u16,
    cut: Arc<AtomicBool>,
    /// Holds what the dialling server sends.
    pub(crate) hold_out: Arc<AtomicBool>,
    /// Holds what the dialled server sends back.
    pub(crate) hold_back: Arc<AtomicBool>,
}

/// Copies one direction of a proxied connection, a chunk at a time,
/// waiting while `hold` is set.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    hold: Arc<AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while hold.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

impl Proxy {
    async fn start(target: u16) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let hold_out = Arc::new(AtomicBool::new(false));
        let hold_back = Arc::new(AtomicBool::new(false));
        let (flag, out, back) = (cut.clone(), hold_out.clone(), hold_back.clone());
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if flag.load(Ordering::SeqCst) {
                    continue;
                }
                let (flag, out, back) = (flag.clone(), out.clone(), back.clone());
                tokio::spawn(async move {
                    let Ok(outbound) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                    else {
                        return;
                    };
                    let (a_read, a_write) = inbound.into_split();
                    let (b_read, b_write) = outbound.into_split();
                    let copy = async {
                        tokio::join!(pump(a_read, b_write, out), pump(b_read, a_write, back))
                    };
                    let watch = async {
                        while !flag.load(Ordering::SeqCst) {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    };
                    tokio::select! { _ = copy => {}, _ = watch => {} }
                });
            }
        });
        Proxy {
            port,
            cut,
            hold_out,
            hold_back,
        }
    }
}

pub(crate) struct Ensemble {
    dir: tempfile::TempDir,
    members: Vec<Member>,
    procs: BTreeMap<u64, Child>,
    /// (from, to) -> proxy, when the ensemble is built for partitions.
    pub(crate) proxies: BTreeMap<(u64, u64), Proxy>,
    extra: String,
}

impl Ensemble {
    /// Writes each server's zoo.cfg and myid and starts them all.
    pub(crate) async fn start(
        voters: usize,
        observers: usize,
        extra: &str,
        proxied: bool,
    ) -> Ensemble {
        let members: Vec<Member> = (1..=voters + observers)
            .map(|i| Member {
                id: i as u64,
                client: free_port(),
                peer: free_port(),
                election: free_port(),
                observer: i > voters,
            })
            .collect();
        let mut proxies = BTreeMap::new();
        if proxied {
            for from in &members {
                for to in members.iter().filter(|m| m.id != from.id) {
                    proxies.insert((from.id, to.id), Proxy::start(to.peer).await);
                }
            }
        }
        let mut e = Ensemble {
            dir: tempfile::tempdir().unwrap(),
            members,
            procs: BTreeMap::new(),
            proxies,
            extra: extra.to_owned(),
        };
        for m in &e.members {
            let data = e.data_dir(m.id);
            std::fs::create_dir_all(&data).unwrap();
            std::fs::write(data.join("myid"), format!("{}\n", m.id)).unwrap();
            std::fs::write(e.cfg_path(m.id), e.config_for(m.id)).unwrap();
        }
        let ids: Vec<u64> = e.members.iter().map(|m| m.id).collect();
        for id in ids {
            e.launch(id);
        }
        e
    }

    fn data_dir(&self, id: u64) -> PathBuf {
        self.dir.path().join(format!("server{id}"))
    }

    fn cfg_path(&self, id: u64) -> PathBuf {
        self.dir.path().join(format!("zoo{id}.cfg"))
    }

    fn log_path(&self, id: u64) -> PathBuf {
        self.dir.path().join(format!("server{id}.log"))
    }

    /// Server `me`'s view: itself at its real peer port, the others at
    /// the proxies in front of them (when there are proxies).
    fn config_for(&self, me: u64) -> String {
        let mut cfg = format!(
            "tickTime=200\ndataDir={}\nclientPortAddress=127.0.0.1\n4lw.commands.whitelist=*\n{}\n",
            self.data_dir(me).display(),
            self.extra
        );
        for m in &self.members {
            let peer = match self.proxies.get(&(me, m.id)) {
                Some(p) => p.port,
                None => m.peer,
            };
            let role = if m.observer { ":observer" } else { "" };
            cfg.push_str(&format!(
                "server.{}=127.0.0.1:{peer}:{}{role};127.0.0.1:{}\n",
                m.id, m.election, m.client
            ));
        }
        cfg
    }

    fn launch(&mut self, id: u64) {
        self.launch_with(id, &[]);
    }

    /// Starts server `id` with extra `paddock server` options.
    fn launch_with(&mut self, id: u64, options: &[&str]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(id))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_paddock"))
            .args(["server", "--config"])
            .arg(self.cfg_path(id))
            .args(options)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.procs.insert(id, child);
    }

    fn kill9(&mut self, id: u64) {
        if let Some(mut c) = self.procs.remove(&id) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub(crate) fn signal(&self, id: u64, sig: &str) {
        let pid = self.procs[&id].id().to_string();
        let ok = Command::new("kill").args([sig, &pid]).status().unwrap();
        assert!(ok.success(), "kill {sig} {pid}");
    }

    /// Waits for a signalled server to exit; it is no longer running.
    async fn wait_exit(&mut self, id: u64, limit: Duration) -> std::process::ExitStatus {
        let child = self.procs.get_mut(&id).unwrap();
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.procs.remove(&id);
                return status;
            }
            assert!(
                start.elapsed() < limit,
                "server {id} still running after {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub(crate) fn addr(&self, id: u64) -> SocketAddr {
        let m = self.members.iter().find(|m| m.id == id).unwrap();
        SocketAddr::from(([127, 0, 0, 1], m.client))
    }

    pub(crate) fn addrs(&self) -> Vec<SocketAddr> {
        self.members.iter().map(|m| self.addr(m.id)).collect()
    }

    pub(crate) fn running(&self) -> Vec<u64> {
        self.procs.keys().copied().collect()
    }

    pub(crate) fn log(&self, id: u64) -> String {
        std::fs::read_to_string(self.log_path(id)).unwrap_or_default()
    }

    pub(crate) fn four_letter(&self, id: u64, word: &str) -> Option<String> {
        let mut s = TcpStream::connect_timeout(&self.addr(id), Duration::from_secs(1)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        s.write_all(word.as_bytes()).ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out)
    }

    /// Each running server's mode and the end of its log, for a test
    /// that gave up waiting on the ensemble.
    fn report(&self) -> String {
        let mut out = String::new();
        for id in self.running() {
            let log = self.log(id);
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(40)..].join("\n");
            out.push_str(&format!(
                "--- server {id}: mode {:?}\n{tail}\n",
                self.mode(id)
            ));
        }
        out
    }

    pub(crate) fn mode(&self, id: u64) -> Option<String> {
        let srvr = self.four_letter(id, "srvr")?;
        let line = srvr.lines().find(|l| l.starts_with("Mode: "))?;
        Some(line["Mode: ".len()..].to_owned())
    }

    /// The one running server that says it leads, once every running
    /// server serves.
    pub(crate) async fn wait_for_leader(&self) -> u64 {
        let ids = self.running();
        wait_until_or(
            Duration::from_secs(20),
            "a leader and every server serving",
            || {
                let modes: Vec<Option<String>> = ids.iter().map(|id| self.mode(*id)).collect();
                let leaders: Vec<u64> = ids
                    .iter()
                    .zip(&modes)
                    .filter(|(_, m)| m.as_deref() == Some("leader"))
                    .map(|(id, _)| *id)
                    .collect();
                let all_serving = modes.iter().all(|m| m.is_some());
                (leaders.len() == 1 && all_serving).then(|| leaders[0])
            },
            || self.report(),
        )
        .await
    }

    /// Waits until every running server reports the same digest.
    pub(crate) async fn wait_converged(&self) -> String {
        let ids = self.running();
        wait_until_or(
            Duration::from_secs(30),
            "identical replicas",
            || {
                let hashes: BTreeSet<Option<String>> =
                    ids.iter().map(|id| self.four_letter(*id, "hash")).collect();
                match hashes.into_iter().collect::<Vec<_>>().as_slice() {
                    [Some(h)] if !h.is_empty() => Some(h.clone()),
                    _ => None,
                }
            },
            || self.report(),
        )
        .await
    }
}

impl Drop for Ensemble {
    fn drop(&mut self) {
        for (_, mut c) in std::mem::take(&mut self.procs) {
            let _ = Command::new("kill")
                .args(["-CONT", &c.id().to_string()])
                .status();
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub(crate) async fn wait_until<T>(
    limit: Duration,
    what: &str,
    check: impl FnMut() -> Option<T>,
) -> T {
    wait_until_or(limit, what, check, String::new).await
}

/// Waits for `check` to give a value; a timeout panics with `report()`.
async fn wait_until_or<T>(
    limit: Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
    report: impl FnOnce() -> String,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        if start.elapsed() >= limit {
            panic!("timed out waiting for {what}\n{}", report());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A session a test keeps across servers.
#[derive(Clone)]
pub(crate) struct Session {
    id: i64,
    passwd: Bytes,
    last_zxid: i64,
}

/// Connects to the first server (trying them in turn from `from`) that
/// takes the session (a new one with None). Panics if the session expired.
pub(crate) async fn connect(
    addrs: &[SocketAddr],
    session: Option<&Session>,
    from: usize,
) -> (Raw, Session, usize) {
    let start = Instant::now();
    for attempt in 0.. {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no server took the session"
        );
        let i = (from + attempt) % addrs.len();
        let Ok(Ok(stream)) = tokio::time::timeout(
            Duration::from_secs(1),
            tokio::net::TcpStream::connect(addrs[i]),
        )
        .await
        else {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        let mut raw = Raw::on(stream);
        let req = ConnectRequest {
            timeout_ms: 4000,
            session_id: session.map_or(0, |s| s.id),
            passwd: Some(session.map_or(Bytes::from_static(&[0; 16]), |s| s.passwd.clone())),
            last_zxid_seen: session.map_or(0, |s| s.last_zxid),
            read_only: Some(false),
            ..Default::default()
        };
        let Some(resp) = tokio::time::timeout(Duration::from_secs(2), raw.connect(&req))
            .await
            .ok()
            .flatten()
        else {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        assert!(
            resp.timeout_ms > 0 || session.is_none(),
            "the session expired (server {})",
            addrs[i]
        );
        if resp.timeout_ms == 0 {
            continue;
        }
        let s = Session {
            id: resp.session_id,
            passwd: resp.passwd.clone(),
            last_zxid: session.map_or(0, |s| s.last_zxid),
        };
        return (raw, s, i);
    }
    unreachable!()
}

/// A client that follows its session from server to server.
pub(crate) struct Client {
    addrs: Vec<SocketAddr>,
    pub(crate) raw: Raw,
    pub(crate) session: Session,
    at: usize,
}

impl Client {
    pub(crate) async fn open(addrs: Vec<SocketAddr>, at: usize) -> Client {
        let (raw, session, at) = connect(&addrs, None, at).await;
        Client {
            addrs,
            raw,
            session,
            at,
        }
    }

    async fn reconnect(&mut self) {
        let (raw, session, at) = connect(&self.addrs, Some(&self.session), self.at + 1).await;
        (self.raw, self.session, self.at) = (raw, session, at);
    }

    /// One request, retried on other servers until some server answers.
    pub(crate) async fn call(&mut self, req: &Request) -> ReplyHeader {
        loop {
            match tokio::time::timeout(Duration::from_secs(5), self.raw.try_call(req)).await {
                Ok(Some((h, _))) if h.err != ErrorCode::ConnectionLoss.code() => {
                    self.session.last_zxid = self.session.last_zxid.max(h.zxid);
                    return h;
                }
                _ => self.reconnect().await,
            }
        }
    }

    pub(crate) async fn exists(&mut self, path: &str) -> bool {
        let h = self
            .call(&Request::Exists(PathWatchRequest {
                path: path.into(),
                watch: false,
            }))
            .await;
        h.err == 0
    }

    pub(crate) async fn sync(&mut self) {
        let h = self
            .call(&Request::Sync(paddock_proto::PathRequest {
                path: "/".into(),
            }))
            .await;
        assert_eq!(h.err, 0, "sync");
    }
}

/// Creates `/w/<tag>-<i>` one by one through `client` until told to stop;
/// returns the paths acknowledged (a retry after a lost connection that
/// finds the node is an acknowledgement too).
async fn write_until(client: &mut Client, tag: &str, stop: &AtomicBool) -> Vec<String> {
    let mut acked = Vec::new();
    for i in 0.. {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let path = format!("/w/{tag}-{i}");
        let h = client.call(&create_request(&path, 0, b"v")).await;
        if h.err == 0 || h.err == ErrorCode::NodeExists.code() {
            acked.push(path);
        } else {
            panic!("create {path}: error {}", h.err);
        }
    }
    acked
}

async fn assert_all_present(e: &Ensemble, paths: &[String]) {
    for id in e.running() {
        let mut c = Client::open(vec![e.addr(id)], 0).await;
        c.sync().await;
        for p in paths {
            assert!(c.exists(p).await, "server {id} lost acknowledged {p}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_every_server_are_read_on_all_and_replicas_agree() {
    let e = Ensemble::start(3, 1, "", false).await;
    let leader = e.wait_for_leader().await;
    let mut modes: Vec<String> = e.running().iter().filter_map(|id| e.mode(*id)).collect();
    modes.sort();
    assert_eq!(modes, ["follower", "follower", "leader", "observer"]);
    let mut clients = Vec::new();
    for id in e.running() {
        clients.push(Client::open(vec![e.addr(id)], 0).await);
    }
    assert_eq!(clients[0].call(&create_request("/w", 0, b"")).await.err, 0);
    for round in 0..25 {
        for (i, c) in clients.iter_mut().enumerate() {
            let h = c
                .call(&create_request(&format!("/w/s{i}-{round}"), 0, b"x"))
                .await;
            assert_eq!(h.err, 0);
        }
    }
    // Each server answers a read after sync with everything written anywhere.
    for c in clients.iter_mut() {
        c.sync().await;
        for i in 0..4 {
            assert!(c.exists(&format!("/w/s{i}-24")).await);
        }
    }
    e.wait_converged().await;
    let config = e.four_letter(leader, "conf").unwrap();
    for m in &e.members {
        assert!(
            config.contains(&format!("server.{}=127.0.0.1:{}", m.id, m.peer)),
            "{config}"
        );
    }
    assert!(config.contains(":observer;127.0.0.1:"), "{config}");
    let mntr = e.four_letter(leader, "mntr").unwrap();
    assert!(mntr.contains("zk_server_state\tleader"), "{mntr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_moves_to_another_server_is_closed_on_the_old_one() {
    let e = Ensemble::start(3, 0, "", false).await;
    e.wait_for_leader().await;
    let ids = e.running();
    let exists = Request::Exists(PathWatchRequest {
        path: "/moving".into(),
        watch: false,
    });
    let (mut old, session, _) = connect(&[e.addr(ids[0])], None, 0).await;
    let (h, _) = old.call(&create_request("/moving", 1, b"")).await;
    assert_eq!(h.err, 0);
    let (mut new, moved, _) = connect(&[e.addr(ids[1])], Some(&session), 0).await;
    assert_eq!(moved.id, session.id);
    // The first server learns through the log that the session moved and
    // closes its connection, as ZooKeeper does, so a stale client cannot
    // act for the session there.
    closed_soon(&mut old, &exists).await;
    let (h, _) = new.call(&exists).await;
    assert_eq!(h.err, 0, "the session and its ephemeral moved");
    // Coming back to the first server works the same way.
    let (mut back, _, _) = connect(&[e.addr(ids[0])], Some(&moved), 0).await;
    closed_soon(&mut new, &exists).await;
    assert_eq!(back.call(&exists).await.0.err, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_moves_to_a_follower_that_has_not_yet_applied_its_creation() {
    let e = Ensemble::start(3, 0, "", false).await;
    let leader = e.wait_for_leader().await;
    let follower = e.running().into_iter().find(|id| *id != leader).unwrap();
    // The leader answers once a quorum has the session; a follower learns
    // that it is committed a round trip later, so a client that moves at
    // once usually reaches a follower that has not applied it yet.
    let exists = Request::Exists(PathWatchRequest {
        path: "/".into(),
        watch: false,
    });
    for _ in 0..20 {
        let (_first, session, _) = connect(&[e.addr(leader)], None, 0).await;
        let (mut moved, at_follower, _) = connect(&[e.addr(follower)], Some(&session), 0).await;
        assert_eq!(at_follower.id, session.id);
        assert_eq!(moved.call(&exists).await.0.err, 0);
    }
}

/// The server closes `raw` within a few seconds (until it learns that the
/// session moved it may still answer reads).
async fn closed_soon(raw: &mut Raw, probe: &Request) {
    let start = Instant::now();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), raw.try_call(probe)).await {
            Ok(None) => return,
            Ok(Some((h, _))) => assert!(
                start.elapsed() < Duration::from_secs(5),
                "the old connection still answers: {h:?}"
            ),
            Err(_) => panic!("the old connection neither answers nor closes"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_loses_no_acknowledged_write_and_keeps_sessions() {
    let mut e = Ensemble::start(3, 0, "", false).await;
    let leader = e.wait_for_leader().await;
    let follower = e.running().into_iter().find(|id| *id != leader).unwrap();
    let addrs = e.addrs();
    let mut setup = Client::open(vec![e.addr(follower)], 0).await;
    assert_eq!(setup.call(&create_request("/w", 0, b"")).await.err, 0);
    // An ephemeral owned by a session on the leader itself.
    let leader_at = addrs.iter().position(|a| *a == e.addr(leader)).unwrap();
    let mut owner = Client::open(addrs.clone(), leader_at).await;
    assert_eq!(owner.at, leader_at);
    let h = owner.call(&create_request("/eph", 1, b"")).await;
    assert_eq!(h.err, 0);

    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for (n, at) in [(0usize, follower), (1, leader)] {
        let at = addrs.iter().position(|a| *a == e.addr(at)).unwrap();
        let stop = stop.clone();
        let addrs = addrs.clone();
        writers.push(tokio::spawn(async move {
            let mut c = Client::open(addrs, at).await;
            write_until(&mut c, &format!("k{n}"), &stop).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    e.kill9(leader);
    let killed = Instant::now();
    let new_leader = e.wait_for_leader().await;
    assert_ne!(new_leader, leader);
    let elected = killed.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    e.launch(leader);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    let mut acked = Vec::new();
    for w in writers {
        acked.extend(w.await.unwrap());
    }
    eprintln!(
        "{} writes acknowledged; a new leader served {elected:?} after the kill",
        acked.len()
    );
    assert!(acked.len() > 50, "writes went on: {}", acked.len());
    e.wait_for_leader().await;
    e.wait_converged().await;
    assert_all_present(&e, &acked).await;
    // The session whose server died lives on elsewhere, ephemeral included.
    owner.reconnect().await;
    assert_ne!(owner.at, leader_at);
    assert!(owner.exists("/eph").await, "the ephemeral survived");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restarted_far_behind_catches_up_from_a_snapshot() {
    let mut e = Ensemble::start(3, 0, "snapCount=40", false).await;
    let leader = e.wait_for_leader().await;
    let follower = e.running().into_iter().find(|id| *id != leader).unwrap();
    e.kill9(follower);
    let mut c = Client::open(vec![e.addr(leader)], 0).await;
    assert_eq!(c.call(&create_request("/w", 0, b"")).await.err, 0);
    let mut written = Vec::new();
    for i in 0..300 {
        let p = format!("/w/behind-{i}");
        assert_eq!(c.call(&create_request(&p, 0, b"data")).await.err, 0);
        written.push(p);
    }
    // The leader purges its log behind each snapshot, but not while a
    // replication attempt to the dead follower still covers the entries;
    // relaunch once the log it keeps no longer reaches back that far.
    wait_until(
        Duration::from_secs(20),
        "the leader to purge past 100",
        || {
            e.log(leader)
                .lines()
                .filter(|l| l.contains("log purged"))
                .filter_map(|l| {
                    l.split("upto=")
                        .nth(1)?
                        .split_whitespace()
                        .next()?
                        .parse::<u64>()
                        .ok()
                })
                .any(|upto| upto >= 100)
                .then_some(())
        },
    )
    .await;
    e.launch(follower);
    e.wait_for_leader().await;
    e.wait_converged().await;
    assert!(
        e.log(follower)
            .contains("installed a snapshot from the leader"),
        "the follower caught up by snapshot:\n{}",
        e.log(follower)
    );
    assert_all_present(&e, &written).await;
    // The installed tree shows this server's view of the membership.
    let leader = e.wait_for_leader().await;
    assert_eq!(config_on(&e, follower).await, config_on(&e, leader).await);
    // And it keeps up from the log afterwards.
    for i in 0..20 {
        let h = c
            .call(&create_request(&format!("/w/after-{i}"), 0, b""))
            .await;
        assert_eq!(h.err, 0);
    }
    e.wait_converged().await;
}

/// Flips one byte in the middle of server `id`'s first log segment.
fn damage_log(e: &Ensemble, id: u64) {
    let wal = e.data_dir(id).join("wal");
    let mut segments: Vec<PathBuf> = std::fs::read_dir(&wal)
        .unwrap()
        .map(|d| d.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    segments.sort();
    let mut bytes = std::fs::read(&segments[0]).unwrap();
    let end = bytes.iter().rposition(|b| *b != 0).unwrap();
    bytes[end / 2] ^= 0x10;
    std::fs::write(&segments[0], bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_log_is_damaged_is_rebuilt_from_the_ensemble_and_votes_again() {
    let mut e = Ensemble::start(3, 1, "snapCount=40", false).await;
    let leader = e.wait_for_leader().await;
    let (damaged, other) = {
        let f: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
        (f[0], f[1])
    };
    let observer = 4;
    let mut c = Client::open(vec![e.addr(leader)], 0).await;
    assert_eq!(c.call(&create_request("/w", 0, b"")).await.err, 0);
    let mut written = Vec::new();
    for i in 0..120 {
        let p = format!("/w/before-{i}");
        assert_eq!(c.call(&create_request(&p, 0, b"data")).await.err, 0);
        written.push(p);
    }
    e.wait_converged().await;
    for (id, mode, steps) in [
        (
            damaged,
            "follower",
            &["no longer a voter", "a voter again"][..],
        ),
        (observer, "observer", &[][..]),
    ] {
        e.kill9(id);
        damage_log(&e, id);
        e.launch(id);
        let status = e.wait_exit(id, Duration::from_secs(20)).await;
        assert!(!status.success());
        assert!(e.log(id).contains("damaged"), "{}", e.log(id));

        e.launch_with(id, &["--rebuild"]);
        wait_until_or(
            Duration::from_secs(60),
            "the rebuilt server to serve as before",
            || (e.mode(id).as_deref() == Some(mode)).then_some(()),
            || e.report(),
        )
        .await;
        e.wait_converged().await;
        assert_all_present(&e, &written).await;
        let log = e.log(id);
        for step in steps.iter().chain(&[
            "installed a snapshot from the leader",
            "rebuilt from the ensemble",
        ]) {
            assert!(log.contains(step), "{step}:\n{log}");
        }
        let data = e.data_dir(id);
        assert!(!data.join("wal.rebuilding").exists());
        let aside: Vec<String> = std::fs::read_dir(&data)
            .unwrap()
            .map(|d| d.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".damaged-"))
            .collect();
        assert_eq!(aside.len(), 2, "{aside:?}");
    }
    // The others ran throughout: each read its files once.
    for id in [leader, other] {
        assert_eq!(e.log(id).matches("read the data directory").count(), 1);
    }
    // It votes: with the other follower gone, the leader's writes need it.
    e.kill9(other);
    let mut raw = Raw::session(e.addr(leader), 4000).await.0;
    let reply = tokio::time::timeout(
        Duration::from_secs(10),
        raw.call(&create_request("/w/after", 0, b"")),
    )
    .await
    .expect("a write with the rebuilt server as the second vote");
    assert_eq!(reply.0.err, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_prove_the_ensemble_secret_and_a_stranger_is_dropped_unread() {
    let secrets = tempfile::tempdir().unwrap();
    let (right, wrong) = (secrets.path().join("right"), secrets.path().join("wrong"));
    std::fs::write(&right, "a secret of the ensemble, 42 bytes long..\n").unwrap();
    std::fs::write(&wrong, "another secret, just as long as the first.\n").unwrap();
    let key = |p: &std::path::Path| format!("paddock.quorum.secretFile={}", p.display());
    let mut e = Ensemble::start(3, 0, &key(&right), false).await;
    let leader = e.wait_for_leader().await;
    let mut c = Client::open(vec![e.addr(leader)], 0).await;
    assert_eq!(c.call(&create_request("/w", 0, b"")).await.err, 0);
    let before = e.wait_converged().await;

    // A connection that does not start with the handshake is dropped
    // before anything it sends is read.
    let peer = e.members.iter().find(|m| m.id == leader).unwrap().peer;
    let mut stranger = TcpStream::connect(("127.0.0.1", peer)).unwrap();
    stranger.write_all(&[0, 0, 0, 4, 1, 7, 0, 0]).unwrap();
    stranger
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut rest = Vec::new();
    let _ = stranger.read_to_end(&mut rest);
    assert!(rest.is_empty(), "{rest:?}");
    wait_until(
        Duration::from_secs(10),
        "the leader to log the drop",
        || {
            e.log(leader)
                .contains("dropped a peer connection: the peer did not authenticate")
                .then_some(())
        },
    )
    .await;
    assert_eq!(e.wait_converged().await, before);

    // A server with another secret does not get in.
    let outsider = (1..=3).find(|id| *id != leader).unwrap();
    e.kill9(outsider);
    let cfg = std::fs::read_to_string(e.cfg_path(outsider)).unwrap();
    std::fs::write(
        e.cfg_path(outsider),
        cfg.replace(&key(&right), &key(&wrong)),
    )
    .unwrap();
    e.launch(outsider);
    wait_until(
        Duration::from_secs(10),
        "the outsider to be refused",
        || {
            e.log(leader)
                .contains("the peer does not hold the ensemble's secret")
                .then_some(())
        },
    )
    .await;
    assert_eq!(c.call(&create_request("/w/without", 0, b"")).await.err, 0);
    // Replication would bring the write in milliseconds: for two seconds
    // the outsider does not have it.
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(2) {
        let (theirs, ours) = (
            e.four_letter(outsider, "hash"),
            e.four_letter(leader, "hash"),
        );
        assert_ne!(theirs, ours, "the outsider got the leader's state");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // With the right secret it joins and catches up.
    e.kill9(outsider);
    std::fs::write(e.cfg_path(outsider), cfg).unwrap();
    e.launch(outsider);
    e.wait_for_leader().await;
    let hashes = e.wait_converged().await;
    assert_ne!(hashes, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_paused_past_the_session_timeout_is_replaced_and_rejoins() {
    let e = Ensemble::start(3, 0, "", false).await;
    let leader = e.wait_for_leader().await;
    let others: Vec<u64> = e.running().into_iter().filter(|id| *id != leader).collect();
    let addrs = e.addrs();
    let at = addrs.iter().position(|a| *a == e.addr(others[0])).unwrap();
    let mut c = Client::open(addrs, at).await;
    assert_eq!(c.call(&create_request("/eph", 1, b"")).await.err, 0);
    e.signal(leader, "-STOP");
    // Longer than the session timeout (4 s): the client keeps pinging.
    let paused = Instant::now();
    while paused.elapsed() < Duration::from_secs(5) {
        let h = c.call(&Request::Ping).await;
        assert_eq!(h.err, 0);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(c.exists("/eph").await);
    let h = c.call(&create_request("/during-pause", 0, b"")).await;
    assert_eq!(h.err, 0);
    e.signal(leader, "-CONT");
    let now_leading = e.wait_for_leader().await;
    assert_ne!(
        now_leading, leader,
        "the paused leader does not lead again at once"
    );
    e.wait_converged().await;
    assert!(
        c.exists("/eph").await,
        "a session that could reach a quorum lives"
    );
    assert_eq!(e.mode(leader).as_deref(), Some("follower"));
    // The old leader woke up believing it led, with every session silent
    // past its timeout: none of that may stick.
    let (mut at_old_leader, _, _) = connect(&[e.addr(leader)], Some(&c.session), 0).await;
    let (h, _) = at_old_leader.call(&Request::Ping).await;
    assert_eq!(h.err, 0, "the session lives on at the old leader");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_server_stops_serving_and_catches_up_when_healed() {
    let e = Ensemble::start(3, 0, "", true).await;
    let leader = e.wait_for_leader().await;
    let cut = |on: bool| {
        for ((from, to), p) in &e.proxies {
            if *from == leader || *to == leader {
                p.cut.store(on, Ordering::SeqCst);
            }
        }
    };
    cut(true);
    wait_until(
        Duration::from_secs(10),
        "the cut-off leader to stop serving",
        || {
            e.four_letter(leader, "srvr")
                .filter(|s| s.contains("not currently serving"))
        },
    )
    .await;
    let majority: Vec<u64> = e.running().into_iter().filter(|id| *id != leader).collect();
    let mut c = Client::open(majority.iter().map(|id| e.addr(*id)).collect(), 0).await;
    let mut written = Vec::new();
    for i in 0..50 {
        let p = format!("/split-{i}");
        assert_eq!(c.call(&create_request(&p, 0, b"")).await.err, 0);
        written.push(p);
    }
    assert!(
        Raw::try_session(e.addr(leader), 4000).await.is_none(),
        "the minority side refuses clients"
    );
    cut(false);
    e.wait_for_leader().await;
    e.wait_converged().await;
    assert_all_present(&e, &written).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_voters_carry_on_with_two_down() {
    let mut e = Ensemble::start(5, 0, "", false).await;
    let leader = e.wait_for_leader().await;
    let follower = e.running().into_iter().find(|id| *id != leader).unwrap();
    e.kill9(leader);
    e.kill9(follower);
    e.wait_for_leader().await;
    let mut c = Client::open(e.running().iter().map(|id| e.addr(*id)).collect(), 0).await;
    let mut written = Vec::new();
    for i in 0..30 {
        let p = format!("/five-{i}");
        assert_eq!(c.call(&create_request(&p, 0, b"")).await.err, 0);
        written.push(p);
    }
    e.launch(leader);
    e.launch(follower);
    e.wait_for_leader().await;
    e.wait_converged().await;
    assert_all_present(&e, &written).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_zookeeper_client_crate_fails_over_with_its_session_and_ephemeral() {
    let mut e = Ensemble::start(3, 0, "", false).await;
    e.wait_for_leader().await;
    let hosts: Vec<String> = e.addrs().iter().map(|a| a.to_string()).collect();
    let client = zookeeper_client::Client::connector()
        .with_session_timeout(Duration::from_secs(6))
        .connect(&hosts.join(","))
        .await
        .unwrap();
    let session = client.session_id();
    let ephemeral =
        zookeeper_client::CreateMode::Ephemeral.with_acls(zookeeper_client::Acls::anyone_all());
    client.create("/zc", b"mine", &ephemeral).await.unwrap();
    // Kill whichever server holds the session, then the leader.
    for round in 0..2 {
        let victim = if round == 0 {
            let sid = format!("sid=0x{:x}", session.0);
            e.running()
                .into_iter()
                .find(|id| e.four_letter(*id, "cons").is_some_and(|c| c.contains(&sid)))
                .expect("a server holds the session")
        } else {
            e.wait_for_leader().await
        };
        e.kill9(victim);
        let start = Instant::now();
        let value = format!("round-{round}");
        loop {
            match client.set_data("/zc", value.as_bytes(), None).await {
                Ok(_) => break,
                Err(err) => {
                    assert!(
                        start.elapsed() < Duration::from_secs(20),
                        "no failover: {err}"
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        assert_eq!(client.session_id(), session, "the same session");
        let (data, stat) = client.get_data("/zc").await.unwrap();
        assert_eq!(data, value.as_bytes());
        assert_eq!(stat.ephemeral_owner, session.0);
        e.launch(victim);
    }
    e.wait_for_leader().await;
    e.wait_converged().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_on_the_leader_hands_leadership_over_and_stops_cleanly() {
    let mut e = Ensemble::start(3, 0, "", false).await;
    let leader = e.wait_for_leader().await;
    let follower = e.running().into_iter().find(|id| *id != leader).unwrap();
    let mut client = Client::open(vec![e.addr(follower)], 0).await;
    assert_eq!(client.call(&create_request("/before", 0, b"")).await.err, 0);
    e.signal(leader, "-TERM");
    let exited = e.wait_exit(leader, Duration::from_secs(10)).await;
    assert!(
        exited.success(),
        "SIGTERM ends the process cleanly: {exited:?}"
    );
    let log = e.log(leader);
    assert!(
        log.contains("handed leadership over before stopping"),
        "{log}"
    );
    let new_leader = e.wait_for_leader().await;
    assert_ne!(new_leader, leader);
    assert_eq!(client.call(&create_request("/after", 0, b"")).await.err, 0);
    e.wait_converged().await;
}

/// A reconfig: (error code, the new /zookeeper/config), or None if the
/// connection was lost before the answer.
async fn reconfig(
    raw: &mut Raw,
    joining: &str,
    leaving: &str,
    members: &str,
    version: i64,
) -> Option<(i32, String)> {
    let req = Request::Reconfig(ReconfigRequest {
        joining_servers: joining.into(),
        leaving_servers: leaving.into(),
        new_members: members.into(),
        cur_config_id: version,
    });
    let (h, r) = tokio::time::timeout(Duration::from_secs(30), raw.try_call(&req))
        .await
        .ok()??;
    Some((h.err, data_text(r)))
}

/// The data of a getData-shaped answer, as text ("" for none).
fn data_text(r: Option<Response>) -> String {
    match r {
        Some(Response::GetData { data, .. }) => {
            String::from_utf8_lossy(data.as_deref().unwrap_or_default()).into_owned()
        }
        _ => String::new(),
    }
}

/// The `version=` of a /zookeeper/config text.
fn config_version(text: &str) -> i64 {
    let hex = text
        .lines()
        .find_map(|l| l.strip_prefix("version="))
        .unwrap_or_else(|| panic!("no version in {text}"));
    i64::from_str_radix(hex, 16).unwrap()
}

async fn config_on(e: &Ensemble, id: u64) -> String {
    let mut c = Client::open(vec![e.addr(id)], 0).await;
    c.sync().await;
    let (h, r) = c
        .raw
        .call(&Request::GetData(PathWatchRequest {
            path: "/zookeeper/config".into(),
            watch: false,
        }))
        .await;
    assert_eq!(h.err, 0);
    data_text(r)
}

/// Every server writes the membership it knows into /zookeeper/config,
/// including one restarted on its data, which knows it from the start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_shows_the_membership_in_zookeeper_config() {
    let mut e = Ensemble::start(3, 0, "", false).await;
    let leader = e.wait_for_leader().await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let config = config_on(&e, leader).await;
    assert_eq!(
        config.lines().filter(|l| l.starts_with("server.")).count(),
        3
    );
    config_version(&config);
    e.kill9(follower);
    e.launch(follower);
    e.wait_for_leader().await;
    assert_eq!(config_on(&e, follower).await, config);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconfig_adds_and_removes_servers_and_refuses_what_zookeeper_refuses() {
    let digest = paddock_tree::acl::digest_id("super:secret");
    let mut e = Ensemble::start(
        3,
        0,
        &format!("reconfigEnabled=true\nsuperDigest={digest}"),
        false,
    )
    .await;
    let leader = e.wait_for_leader().await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    // This raw client does not ping while a reconfig waits (adding a
    // server waits for it to catch up), so its session must outlive that.
    let (mut admin, _) = Raw::session(e.addr(follower), 30_000).await;
    // Like ZooKeeper: WRITE on /zookeeper/config, which only the super
    // user has.
    let (err, _) = reconfig(&mut admin, "", "3", "", -1).await.unwrap();
    assert_eq!(err, ErrorCode::NoAuth.code());
    let auth = Request::Auth(AuthPacket {
        auth_type: 0,
        scheme: "digest".into(),
        auth: Some(Bytes::from_static(b"super:secret")),
    });
    assert_eq!(admin.call(&auth).await.0.err, 0);
    let (err, _) = reconfig(&mut admin, "server.9=127.0.0.1:1:2", "", "", -1)
        .await
        .unwrap();
    assert_eq!(err, ErrorCode::BadArguments.code(), "no client port");

    // A fourth server, started with a config that lists itself, waits to
    // be added instead of forming an ensemble of its own.
    e.members.push(Member {
        id: 4,
        client: free_port(),
        peer: free_port(),
        election: free_port(),
        observer: false,
    });
    let data = e.data_dir(4);
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("myid"), "4\n").unwrap();
    std::fs::write(e.cfg_path(4), e.config_for(4)).unwrap();
    e.launch(4);
    let before = config_on(&e, leader).await;
    let (peer4, client4) = (e.members[3].peer, e.members[3].client);
    let joining = format!(
        "server.4=127.0.0.1:{peer4}:{};127.0.0.1:{client4}",
        free_port()
    );
    let (err, _) = reconfig(&mut admin, &joining, "", "", config_version(&before) + 1)
        .await
        .unwrap();
    assert_eq!(err, ErrorCode::BadVersion.code(), "a stale config version");
    let (err, after) = reconfig(&mut admin, &joining, "", "", config_version(&before))
        .await
        .unwrap();
    assert_eq!(err, 0, "adding server 4");
    assert!(
        after.contains(&format!("server.4=127.0.0.1:{peer4}:")),
        "{after}"
    );
    assert!(after.contains(":participant;127.0.0.1:"), "{after}");
    assert!(config_version(&after) > config_version(&before), "{after}");
    assert_eq!(
        after.lines().filter(|l| l.starts_with("server.")).count(),
        4
    );
    wait_until(Duration::from_secs(20), "server 4 following", || {
        (e.mode(4).as_deref() == Some("follower")).then_some(())
    })
    .await;
    let mut on4 = Client::open(vec![e.addr(4)], 0).await;
    assert_eq!(on4.call(&create_request("/joined", 0, b"4")).await.err, 0);
    for id in 1..=4 {
        assert_eq!(config_on(&e, id).await, after, "server {id}");
    }

    // Removing the leader: another one takes over (a new leader means new
    // connections, so the answer may be lost, as with ZooKeeper), and
    // server 4 votes.
    let leaving = leader.to_string();
    if let Some((err, _)) = reconfig(&mut admin, "", &leaving, "", -1).await {
        assert_eq!(err, 0, "removing the leader: {}", e.log(follower));
    }
    wait_until(
        Duration::from_secs(10),
        "the removed leader to step down",
        || (e.mode(leader).as_deref() != Some("leader")).then_some(()),
    )
    .await;
    e.kill9(leader);
    let next = e.wait_for_leader().await;
    let smaller = config_on(&e, next).await;
    assert!(!smaller.contains(&format!("server.{leader}=")), "{smaller}");
    assert_eq!(
        smaller.lines().filter(|l| l.starts_with("server.")).count(),
        3
    );
    let mut c = Client::open(vec![e.addr(4)], 0).await;
    assert_eq!(c.call(&create_request("/after", 0, b"")).await.err, 0);
    assert!(c.exists("/joined").await);

    // A new membership that no quorum of running servers can form is
    // refused and leaves the membership as it was.
    let (mut admin, _) = Raw::session(e.addr(next), 30_000).await;
    assert_eq!(admin.call(&auth).await.0.err, 0);
    let dead = |id| {
        format!(
            "server.{id}=127.0.0.1:{}:{};127.0.0.1:{}",
            free_port(),
            free_port(),
            free_port()
        )
    };
    let members = format!(
        "{},{},server.4=127.0.0.1:{peer4}:1;127.0.0.1:{client4}",
        dead(7),
        dead(8)
    );
    let err = reconfig(&mut admin, "", "", &members, -1)
        .await
        .map(|(err, _)| err);
    assert_eq!(
        err,
        Some(ErrorCode::NewConfigNoQuorum.code()),
        "{}",
        e.log(next)
    );
    // The servers tried as learners are gone again (that took two
    // membership entries, so the version moved on).
    let servers = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with("server."))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(servers(&config_on(&e, next).await), servers(&smaller));
    e.wait_converged().await;
}
