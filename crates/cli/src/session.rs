//! The shell's ZooKeeper session. One task owns the connection: it numbers
//! requests, matches replies (which come back in request order), pings
//! while idle, turns notifications into events, and when the connection
//! is lost moves on to the next server with the same session, sending its
//! credentials and watches again.

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use paddock_proto::consts::xid;
use paddock_proto::frame::{Frame, FrameCodec};
use paddock_proto::{
    AuthPacket, ConnectRequest, ConnectResponse, ErrorCode, Jute, Reader, ReplyHeader, Request,
    Response, SetWatches2, WatcherEvent,
};
use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::codec::Framed;

/// Replies larger than this are refused (ZooKeeper's client default).
const MAX_FRAME_BYTES: usize = 0xfffff + 1024;

/// Where the session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Connecting,
    Connected,
    Expired,
    Closed,
}

/// What the shell prints as `WatchedEvent ...`: a state change (type None)
/// or a node event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub state: KeeperState,
    /// 0 (None) for state changes, else a NodeCreated.. type.
    pub event_type: i32,
    pub path: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeeperState {
    SyncConnected,
    Disconnected,
    Expired,
    AuthFailed,
    Closed,
}

impl KeeperState {
    pub fn name(self) -> &'static str {
        match self {
            KeeperState::SyncConnected => "SyncConnected",
            KeeperState::Disconnected => "Disconnected",
            KeeperState::Expired => "Expired",
            KeeperState::AuthFailed => "AuthFailed",
            KeeperState::Closed => "Closed",
        }
    }
}

impl Event {
    fn state(state: KeeperState) -> Event {
        Event {
            state,
            event_type: 0,
            path: None,
        }
    }
}

struct Call {
    req: Request,
    reply: oneshot::Sender<Result<Response, ErrorCode>>,
}

/// A handle on the session; cheap to clone.
#[derive(Clone)]
pub struct Session {
    calls: mpsc::UnboundedSender<Call>,
    state: watch::Receiver<State>,
    /// The server currently connected to, and the session id.
    info: watch::Receiver<(String, i64)>,
    /// Why the last round over every server connected to none (each
    /// server and its error), until a connection succeeds.
    unreachable: watch::Receiver<Option<String>>,
}

impl Session {
    /// Starts connecting to `hosts` (comma separated host:port, tried in
    /// turn); events arrive on the returned receiver.
    pub fn start(hosts: &str, timeout_ms: i32) -> (Session, mpsc::UnboundedReceiver<Event>) {
        let hosts = crate::server_list(hosts);
        let (calls, calls_rx) = mpsc::unbounded_channel();
        let (events_tx, events) = mpsc::unbounded_channel();
        let (state_tx, state) = watch::channel(State::Connecting);
        let (info_tx, info) = watch::channel((String::new(), 0));
        let (unreachable_tx, unreachable) = watch::channel(None);
        let driver = Driver {
            hosts,
            timeout_ms,
            calls: calls_rx,
            events: events_tx,
            state: state_tx,
            info: info_tx,
            unreachable: unreachable_tx,
            session_id: 0,
            passwd: Bytes::from_static(&[0; 16]),
            last_zxid: 0,
            auths: Vec::new(),
            watches: Registered::default(),
            queued: VecDeque::new(),
        };
        tokio::spawn(driver.run());
        (
            Session {
                calls,
                state,
                info,
                unreachable,
            },
            events,
        )
    }

    pub fn state(&self) -> State {
        *self.state.borrow()
    }

    /// The server this session is connected to and the session id.
    pub fn endpoint(&self) -> (String, i64) {
        self.info.borrow().clone()
    }

    /// Why no server could be reached, while none can: each server tried
    /// and its error, e.g. `127.0.0.1:2181: Connection refused (os error 111)`.
    pub fn unreachable(&self) -> Option<String> {
        self.unreachable.borrow().clone()
    }

    /// Waits until connected (or expired/closed), at most `limit`, and no
    /// longer than one failed round over every server.
    pub async fn wait_connected(&self, limit: Duration) -> State {
        let mut state = self.state.clone();
        let mut unreachable = self.unreachable.clone();
        let settled = async {
            tokio::select! {
                _ = state.wait_for(|s| !matches!(s, State::Connecting)) => {}
                _ = unreachable.wait_for(Option::is_some) => {}
            }
        };
        let _ = tokio::time::timeout(limit, settled).await;
        self.state()
    }

    /// Sends one request and waits for its outcome (an error code is the
    /// server's, or ConnectionLoss / SessionExpired from the client side).
    pub async fn call(&self, req: Request) -> Result<Response, ErrorCode> {
        let (tx, rx) = oneshot::channel();
        self.calls
            .send(Call { req, reply: tx })
            .map_err(|_| ErrorCode::ConnectionLoss)?;
        rx.await.unwrap_or(Err(ErrorCode::ConnectionLoss))
    }

    /// Closes the session on the server and stops the connection task.
    pub async fn close(&self) {
        if self.state() == State::Connected {
            let _ = tokio::time::timeout(Duration::from_secs(2), self.call(Request::CloseSession))
                .await;
        }
    }
}

/// Watches the session holds on the server, sent again after a reconnect.
#[derive(Default)]
struct Registered {
    data: BTreeSet<String>,
    exist: BTreeSet<String>,
    child: BTreeSet<String>,
    persistent: BTreeSet<String>,
    recursive: BTreeSet<String>,
}

impl Registered {
    fn is_empty(&self) -> bool {
        self.data.is_empty()
            && self.exist.is_empty()
            && self.child.is_empty()
            && self.persistent.is_empty()
            && self.recursive.is_empty()
    }

    /// Records a watch the server set while answering `req` with `err`.
    fn note(&mut self, req: &Request, err: i32) {
        let ok = err == 0;
        match req {
            Request::GetData(r) | Request::Exists(r) if r.watch && ok => {
                self.data.insert(r.path.clone());
            }
            Request::Exists(r) if r.watch && err == ErrorCode::NoNode.code() => {
                self.exist.insert(r.path.clone());
            }
            Request::GetChildren(r) | Request::GetChildren2(r) if r.watch && ok => {
                self.child.insert(r.path.clone());
            }
            Request::AddWatch(r) if ok => {
                let set = if r.mode == 1 {
                    &mut self.recursive
                } else {
                    &mut self.persistent
                };
                set.insert(r.path.clone());
            }
            Request::RemoveWatches(r) if ok => {
                // 1 children, 2 data, 3 any.
                if r.watcher_type != 2 {
                    self.child.remove(&r.path);
                }
                if r.watcher_type != 1 {
                    self.data.remove(&r.path);
                    self.exist.remove(&r.path);
                }
                if r.watcher_type == 3 {
                    self.persistent.remove(&r.path);
                    self.recursive.remove(&r.path);
                }
            }
            _ => {}
        }
    }

    /// A one-shot watch is gone once it fired.
    fn fired(&mut self, event_type: i32, path: &str) {
        use paddock_proto::consts::event::*;
        match event_type {
            NODE_CHILDREN_CHANGED => {
                self.child.remove(path);
            }
            NODE_DELETED => {
                self.child.remove(path);
                self.data.remove(path);
                self.exist.remove(path);
            }
            _ => {
                self.data.remove(path);
                self.exist.remove(path);
            }
        }
    }

    fn request(&self, zxid: i64) -> SetWatches2 {
        let list = |s: &BTreeSet<String>| s.iter().cloned().collect();
        SetWatches2 {
            relative_zxid: zxid,
            data_watches: list(&self.data),
            exist_watches: list(&self.exist),
            child_watches: list(&self.child),
            persistent_watches: list(&self.persistent),
            persistent_recursive_watches: list(&self.recursive),
        }
    }
}

struct InFlight {
    xid: i32,
    req: Request,
    reply: oneshot::Sender<Result<Response, ErrorCode>>,
}

struct Driver {
    hosts: Vec<String>,
    timeout_ms: i32,
    calls: mpsc::UnboundedReceiver<Call>,
    events: mpsc::UnboundedSender<Event>,
    state: watch::Sender<State>,
    info: watch::Sender<(String, i64)>,
    unreachable: watch::Sender<Option<String>>,
    session_id: i64,
    passwd: Bytes,
    last_zxid: i64,
    /// addauth credentials, sent again on every new connection.
    auths: Vec<AuthPacket>,
    watches: Registered,
    /// Calls made while no connection was up.
    queued: VecDeque<Call>,
}

/// Why a connection ended.
enum End {
    Lost,
    Expired,
    Closed,
}

impl Driver {
    async fn run(mut self) {
        if self.hosts.is_empty() {
            self.finish(State::Closed, KeeperState::Closed);
            return;
        }
        let mut next = 0usize;
        let mut failures = 0usize;
        let mut errors = Vec::new();
        loop {
            let host = self.hosts[next % self.hosts.len()].clone();
            next += 1;
            match self.connect(&host).await {
                Ok(Some(framed)) => {
                    failures = 0;
                    errors.clear();
                    let _ = self.unreachable.send(None);
                    match self.serve(framed).await {
                        End::Lost => {
                            let _ = self.state.send(State::Connecting);
                            let _ = self.events.send(Event::state(KeeperState::Disconnected));
                        }
                        End::Expired => {
                            self.finish(State::Expired, KeeperState::Expired);
                            return;
                        }
                        End::Closed => {
                            self.finish(State::Closed, KeeperState::Closed);
                            return;
                        }
                    }
                }
                Ok(None) => {
                    self.finish(State::Expired, KeeperState::Expired);
                    return;
                }
                Err(error) => {
                    failures += 1;
                    errors.push(format!("{host}: {error}"));
                    // A whole round of servers failed: fail what waits.
                    if failures.is_multiple_of(self.hosts.len()) {
                        let _ = self.unreachable.send(Some(errors.join("; ")));
                        errors.clear();
                        for call in self.queued.drain(..) {
                            let _ = call.reply.send(Err(ErrorCode::ConnectionLoss));
                        }
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
            // Take in calls made meanwhile; stop when the shell is gone.
            loop {
                match self.calls.try_recv() {
                    Ok(call) => self.queued.push_back(call),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => return,
                }
            }
        }
    }

    fn finish(&mut self, state: State, event: KeeperState) {
        let _ = self.state.send(state);
        let _ = self.events.send(Event::state(event));
        let code = if state == State::Expired {
            ErrorCode::SessionExpired
        } else {
            ErrorCode::ConnectionLoss
        };
        for call in self.queued.drain(..) {
            let _ = call.reply.send(Err(code));
        }
        // Answer later calls until the shell drops its handle.
        let mut calls = std::mem::replace(&mut self.calls, mpsc::unbounded_channel().1);
        tokio::spawn(async move {
            while let Some(call) = calls.recv().await {
                let _ = call.reply.send(Err(code));
            }
        });
    }

    /// Opens a connection and (re)establishes the session. `Ok(None)`:
    /// the server says the session is expired; `Err`: why it failed.
    async fn connect(
        &mut self,
        host: &str,
    ) -> Result<Option<Framed<TcpStream, FrameCodec>>, String> {
        const HANDSHAKE: &str = "the connection closed during the handshake";
        // As ZooKeeper's client: the session timeout shared among the servers.
        let hosts = self.hosts.len().max(1) as u64;
        let limit = Duration::from_millis((self.timeout_ms.max(0) as u64 / hosts).max(1000));
        let attempt = async {
            let stream = TcpStream::connect(host).await.map_err(|e| e.to_string())?;
            let _ = stream.set_nodelay(true);
            let mut framed = Framed::new(stream, FrameCodec::plain(MAX_FRAME_BYTES));
            let req = ConnectRequest {
                protocol_version: 0,
                last_zxid_seen: self.last_zxid,
                timeout_ms: self.timeout_ms,
                session_id: self.session_id,
                passwd: Some(self.passwd.clone()),
                read_only: Some(false),
            };
            framed
                .send(req.to_bytes())
                .await
                .map_err(|_| HANDSHAKE.to_owned())?;
            let Some(Ok(Frame::Message(body))) = framed.next().await else {
                return Err(HANDSHAKE.to_owned());
            };
            let resp = ConnectResponse::from_bytes(body)
                .map_err(|_| "not a ZooKeeper server (bad handshake answer)".to_owned())?;
            Ok((framed, resp))
        };
        let (mut framed, resp) = tokio::time::timeout(limit, attempt)
            .await
            .map_err(|_| format!("no answer within {} ms", limit.as_millis()))??;
        if resp.timeout_ms <= 0 {
            return Ok(None);
        }
        self.session_id = resp.session_id;
        self.passwd = resp.passwd;
        self.timeout_ms = resp.timeout_ms;
        for auth in &self.auths {
            let frame = Request::Auth(auth.clone()).encode_with_header(xid::AUTH);
            framed.send(frame).await.map_err(|_| HANDSHAKE.to_owned())?;
        }
        if !self.watches.is_empty() {
            let set = Request::SetWatches {
                v2: true,
                req: self.watches.request(self.last_zxid),
            };
            framed
                .send(set.encode_with_header(xid::SET_WATCHES))
                .await
                .map_err(|_| HANDSHAKE.to_owned())?;
        }
        let _ = self.info.send((host.to_owned(), self.session_id));
        let _ = self.state.send(State::Connected);
        let _ = self.events.send(Event::state(KeeperState::SyncConnected));
        Ok(Some(framed))
    }

    async fn serve(&mut self, mut framed: Framed<TcpStream, FrameCodec>) -> End {
        let mut in_flight: VecDeque<InFlight> = VecDeque::new();
        let mut next_xid = 1i32;
        let idle = Duration::from_millis((self.timeout_ms / 3).max(100) as u64);
        let read_limit = Duration::from_millis((self.timeout_ms * 2 / 3).max(200) as u64);
        let mut ping = tokio::time::interval(idle);
        ping.tick().await;
        let mut last_heard = tokio::time::Instant::now();
        let mut closing = false;
        let mut pending: VecDeque<Call> = std::mem::take(&mut self.queued);
        let end = loop {
            while let Some(call) = pending.pop_front() {
                let x = match call.req {
                    Request::CloseSession => {
                        closing = true;
                        0
                    }
                    _ => {
                        let x = next_xid;
                        next_xid = next_xid.wrapping_add(1).max(1);
                        x
                    }
                };
                if let Request::Auth(a) = &call.req {
                    self.auths.push(a.clone());
                }
                if framed.send(call.req.encode_with_header(x)).await.is_err() {
                    let _ = call.reply.send(Err(ErrorCode::ConnectionLoss));
                    break;
                }
                in_flight.push_back(InFlight {
                    xid: x,
                    req: call.req,
                    reply: call.reply,
                });
            }
            tokio::select! {
                call = self.calls.recv() => match call {
                    Some(call) => pending.push_back(call),
                    None => break End::Closed,
                },
                _ = ping.tick() => {
                    if last_heard.elapsed() > read_limit {
                        break End::Lost;
                    }
                    if framed.send(Request::Ping.encode_with_header(xid::PING)).await.is_err() {
                        break End::Lost;
                    }
                }
                frame = framed.next() => {
                    let Some(Ok(Frame::Message(body))) = frame else {
                        break if closing { End::Closed } else { End::Lost };
                    };
                    last_heard = tokio::time::Instant::now();
                    match self.reply(body, &mut in_flight) {
                        Ok(Some(End::Closed)) => break End::Closed,
                        Ok(Some(end)) => break end,
                        Ok(None) => {}
                        Err(()) => break End::Lost,
                    }
                }
            }
        };
        for f in in_flight {
            let code = match end {
                End::Expired => ErrorCode::SessionExpired,
                _ => ErrorCode::ConnectionLoss,
            };
            if f.xid == 0 {
                let _ = f.reply.send(Ok(Response::Empty));
            } else {
                let _ = f.reply.send(Err(code));
            }
        }
        end
    }

    /// Handles one frame from the server.
    fn reply(
        &mut self,
        body: Bytes,
        in_flight: &mut VecDeque<InFlight>,
    ) -> Result<Option<End>, ()> {
        let mut r = Reader::new(body);
        let header = ReplyHeader::read(&mut r).map_err(|_| ())?;
        if header.zxid > 0 {
            self.last_zxid = self.last_zxid.max(header.zxid);
        }
        match header.xid {
            xid::PING | xid::SET_WATCHES => return Ok(None),
            xid::AUTH => {
                if header.err == ErrorCode::AuthFailed.code() {
                    let _ = self.events.send(Event::state(KeeperState::AuthFailed));
                }
                return Ok(None);
            }
            xid::NOTIFICATION => {
                let ev = WatcherEvent::read(&mut r).map_err(|_| ())?;
                self.watches.fired(ev.event_type, &ev.path);
                let _ = self.events.send(Event {
                    state: KeeperState::SyncConnected,
                    event_type: ev.event_type,
                    path: Some(ev.path),
                });
                return Ok(None);
            }
            _ => {}
        }
        let Some(f) = in_flight.pop_front() else {
            return Err(());
        };
        if f.xid != header.xid {
            let _ = f.reply.send(Err(ErrorCode::ConnectionLoss));
            return Err(());
        }
        if header.err == ErrorCode::SessionExpired.code() {
            let _ = f.reply.send(Err(ErrorCode::SessionExpired));
            return Ok(Some(End::Expired));
        }
        self.watches.note(&f.req, header.err);
        if let Request::CloseSession = f.req {
            let _ = f.reply.send(Ok(Response::Empty));
            return Ok(Some(End::Closed));
        }
        let outcome = if header.err != 0 {
            Err(ErrorCode::from_code(header.err).unwrap_or(ErrorCode::SystemError))
        } else {
            Response::read(f.req.opcode(), &mut r).map_err(|_| ErrorCode::MarshallingError)
        };
        let _ = f.reply.send(outcome);
        Ok(None)
    }
}
