//! One client connection: handshake, then requests in, replies out in
//! request order. Reads run against the local tree when every earlier
//! request of the connection is answered; writes go through the write path.

use crate::admission::IpSlot;
use crate::fourlw;
use crate::frames::{FrameReader, Next};
use crate::order::{OrderQueue, Slot, Turn};
use crate::outbox::{Outbound, Outbox};
use crate::pipeline::CONFIG_NODE;
use crate::proposal::{Proposal, Proposed, ReplyTo};
use crate::sasl::{DigestMd5, Outcome};
use crate::session::{password, Holder, Liveness};
use crate::shared::{ConnectionInfo, Shared, TRACE_CLIENT_PINGS, TRACE_CLIENT_REQUESTS};
use crate::socket::{Socket, WriteHalf};
use crate::stats::{Served, Stats};
use crate::watches;
use bytes::{BufMut, Bytes, BytesMut};
use paddock_proto::consts::{event, perms};
use paddock_proto::frame::{Frame, FrameCodec};
use paddock_proto::{
    encode_reply, op, ClientInfo, ConnectRequest, ConnectResponse, DecodeError, ErrorCode, Id,
    Jute, Reader, ReconfigRequest, ReplyHeader, Request, RequestHeader, Response, SetWatches2,
};
use paddock_replication::{Reconfig, Role};
use paddock_tree::{acl, watch, DataTree, Txn, TxnOp};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, trace};

/// A reply buffer grown past this is dropped once written.
const KEEP_WRITE_BUFFER_BYTES: usize = 64 * 1024;

/// Why the connection stops.
enum Stop {
    /// Peer closed, protocol error, or the session was taken over/expired.
    Closed,
}

struct Connection {
    shared: Arc<Shared>,
    id: u64,
    info: Arc<ConnectionInfo>,
    session_id: i64,
    liveness: Arc<Liveness>,
    ids: Arc<Vec<Id>>,
    queue: OrderQueue,
    outbox: Arc<Outbox>,
    out: BytesMut,
    /// No more requests are read; stop once the queue is answered.
    closing: bool,
    /// Accepted in read-only mode: updates are refused with NotReadOnly.
    read_only: bool,
    frames: FrameReader,
    /// The SASL exchange under way, once the client starts one.
    sasl: Option<Box<DigestMd5>>,
    /// Cancelled when the session is taken over or expires, the service
    /// epoch ends, or the server stops.
    close: CancellationToken,
}

/// Serves one accepted connection until it closes; `ip_slot` is its
/// place in the per-address count, `proven` the identities its TLS
/// certificate gave (none for plain TCP).
pub async fn serve(
    shared: Arc<Shared>,
    stream: Socket,
    peer: SocketAddr,
    id: u64,
    ip_slot: IpSlot,
    proven: Vec<Id>,
) {
    let info = Arc::new(ConnectionInfo {
        peer,
        session_id: Default::default(),
        received: Default::default(),
        sent: Default::default(),
        queued: Default::default(),
    });
    let mut ids = ip_slot.ids();
    if !proven.is_empty() {
        Arc::make_mut(&mut ids).extend(proven);
    }
    let _listed = Listed::new(&shared, id, info.clone(), ip_slot);
    // Boxed: what setting up needs is freed once the session is set up;
    // inline, it would enlarge every connection's task for good.
    let Some(mut conn) = Box::pin(open(&shared, stream, peer, id, info, ids)).await else {
        return;
    };
    conn.run().await;
}

/// A connection's place in the server's list (`cons`, `mntr`), given up
/// when the connection ends.
struct Listed {
    shared: Arc<Shared>,
    id: u64,
    _ip_slot: IpSlot,
}

impl Listed {
    fn new(shared: &Arc<Shared>, id: u64, info: Arc<ConnectionInfo>, ip_slot: IpSlot) -> Listed {
        shared.connections.lock().insert(id, info);
        Stats::bump(&shared.stats.connections);
        Listed {
            shared: shared.clone(),
            id,
            _ip_slot: ip_slot,
        }
    }
}

impl Drop for Listed {
    fn drop(&mut self) {
        self.shared.connections.lock().remove(&self.id);
        self.shared
            .stats
            .connections
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Takes the first frame: a four-letter word is answered, and a
/// ConnectRequest sets up the session. None ends the connection.
async fn open(
    shared: &Arc<Shared>,
    stream: Socket,
    peer: SocketAddr,
    id: u64,
    info: Arc<ConnectionInfo>,
    ids: Arc<Vec<Id>>,
) -> Option<Connection> {
    let (rd, wr) = stream.into_split();
    let mut frames = FrameReader::new(rd, FrameCodec::server(shared.config.max_frame_bytes));
    let deadline = Duration::from_millis(shared.config.handshake_timeout_ms);
    let first = tokio::select! {
        first = tokio::time::timeout(deadline, frames.next()) => first,
        () = shared.stopping() => return None,
    };
    let first = match first {
        Ok(Some(Ok(frame))) => frame,
        Ok(Some(Err(e))) => {
            debug!(%peer, "bad first frame: {e}");
            return None;
        }
        Ok(None) => return None,
        Err(_) => {
            debug!(%peer, "no ConnectRequest within {deadline:?}; closing");
            return None;
        }
    };
    let connect = match first {
        Frame::FourLetterWord(word) => {
            let word = std::str::from_utf8(&word).unwrap_or("");
            let text = if word == "stmk" && shared.config.four_letter_allowed(word) {
                // The new mask follows as 8 bytes, big-endian.
                let Ok(Ok(Some(buf))) = tokio::time::timeout(deadline, frames.raw(8)).await else {
                    return None;
                };
                let mask = i64::from_be_bytes(std::array::from_fn(|i| buf[i]));
                fourlw::set_trace_mask(shared, mask)
            } else {
                fourlw::respond(shared, word)
            };
            let _ = wr.write_all(text.as_bytes()).await;
            wr.shutdown();
            return None;
        }
        Frame::Message(body) => body,
    };
    Stats::bump(&shared.stats.packets_received);
    // Taken before the check, so an epoch that ends from here on closes us.
    let service = shared.service_token();
    let read_only = if shared.serving() {
        false
    } else if shared.read_only() {
        true
    } else {
        debug!(%peer, "not serving (no leader, or out of touch with it); closing so the client tries another server");
        return None;
    };
    let close = service.child_token();
    let (session_id, liveness) = handshake(shared, connect, id, read_only, &close, &wr).await?;
    info.session_id
        .store(session_id, std::sync::atomic::Ordering::Relaxed);
    Some(Connection {
        shared: shared.clone(),
        id,
        info,
        session_id,
        liveness,
        ids,
        queue: OrderQueue::default(),
        outbox: Arc::new(Outbox::new(wr)),
        out: BytesMut::new(),
        closing: false,
        read_only,
        frames,
        sasl: None,
        close,
    })
}

/// Answers the ConnectRequest: a new session, a reattached one, or the
/// "expired" answer. None closes the connection. In read-only mode only
/// clients that asked for it are served, and their sessions are this
/// server's own: a session of the replicated tree is refused, as in
/// ZooKeeper, so its client looks for a server with a quorum.
async fn handshake(
    shared: &Arc<Shared>,
    body: Bytes,
    conn_id: u64,
    read_only: bool,
    close: &CancellationToken,
    wr: &WriteHalf,
) -> Option<(i64, Arc<Liveness>)> {
    let req = ConnectRequest::read(&mut Reader::new(body)).ok()?;
    if read_only && req.read_only != Some(true) {
        debug!("read-only mode: refusing a client that did not ask for read-only");
        return None;
    }
    if read_only
        && !shared.sessions.is_local(req.session_id)
        && shared.tree.read().session_exists(req.session_id)
    {
        debug!(
            session = format_args!("0x{:x}", req.session_id),
            "read-only mode: refusing to renew a session of the quorum"
        );
        return None;
    }
    if req.last_zxid_seen > shared.last_zxid() {
        debug!(
            "client has seen zxid 0x{:x}, ahead of us; refusing so it tries another server",
            req.last_zxid_seen
        );
        return None;
    }
    let timeout_ms = shared.config.negotiate_timeout(req.timeout_ms);
    let read_only_flag = req.read_only.map(|_| read_only);
    let holder = Holder {
        connection_id: conn_id,
        close: close.clone(),
    };
    let now = shared.mono_ms();
    let session = if req.session_id == 0 && read_only {
        let session_id = shared.sessions.next_id();
        let liveness = shared
            .sessions
            .add(session_id, timeout_ms, now, holder, true);
        Some((session_id, liveness))
    } else if req.session_id == 0 {
        let session_id = shared.sessions.next_id();
        let liveness = shared
            .sessions
            .add(session_id, timeout_ms, now, holder, false);
        let txn = Txn {
            session_id,
            time_ms: shared.wall_ms(),
            auth: Vec::new(),
            op: TxnOp::CreateSession { timeout_ms },
        };
        if shared.commit(txn).await.ok()?.result.is_err() {
            shared.sessions.remove(session_id);
            return None;
        }
        Some((session_id, liveness))
    } else {
        let password_ok = req.passwd.as_deref() == Some(&password(req.session_id)[..]);
        // In an ensemble the other servers must drop their connections of
        // the session ("session moved"): that goes through the log first,
        // so a later claim by yet another server closes this connection.
        // The claim is ordered after every write committed before it, so
        // once it is applied here this server knows any session a client
        // can hold, even one created elsewhere a moment ago (ZooKeeper asks
        // the leader to revalidate the session for the same reason).
        let claim = password_ok && shared.config.ensemble.is_some() && !read_only;
        if claim && shared.claim(req.session_id).await.ok()?.result.is_err() {
            return None;
        }
        let known = shared.sessions.is_local(req.session_id)
            || shared.tree.read().session_exists(req.session_id);
        (password_ok && known)
            .then(|| {
                shared
                    .sessions
                    .attach(req.session_id, timeout_ms, shared.mono_ms(), holder)
            })
            .flatten()
            .map(|l| (req.session_id, l))
    };
    if let Some((id, _)) = &session {
        debug!(
            session = format_args!("0x{id:x}"),
            timeout_ms,
            zxid = format_args!("0x{:x}", shared.last_zxid()),
            new = req.session_id == 0,
            "session established"
        );
    }
    let resp = match &session {
        Some((id, _)) => ConnectResponse {
            protocol_version: 0,
            timeout_ms,
            session_id: *id,
            passwd: Bytes::copy_from_slice(&password(*id)),
            read_only: read_only_flag,
        },
        None => ConnectResponse {
            protocol_version: 0,
            timeout_ms: 0,
            session_id: 0,
            passwd: Bytes::from_static(&[0; 16]),
            read_only: read_only_flag,
        },
    };
    let mut out = BytesMut::new();
    put_frame(&mut out, &resp.to_bytes());
    wr.write_all(&out).await.ok()?;
    Stats::bump(&shared.stats.packets_sent);
    if session.is_none() {
        wr.shutdown();
    }
    session
}

fn put_frame(out: &mut BytesMut, payload: &[u8]) {
    out.put_u32(payload.len() as u32);
    out.put_slice(payload);
}

impl Connection {
    /// Serves the session until the connection ends.
    async fn run(&mut self) {
        self.shared
            .watches
            .connect(self.id, self.outbox.clone(), self.ids.clone());
        let _ = self.serve().await;
        self.outbox.close();
        self.shared.watches.disconnect(self.id);
        self.shared.sessions.detach(self.session_id, self.id);
    }

    async fn serve(&mut self) -> Result<(), Stop> {
        let max_outstanding = self.shared.config.max_outstanding_per_connection;
        let shared = self.shared.clone();
        loop {
            self.absorb();
            let done = self.answer_ready();
            self.propose_released().await?;
            if !self.out.is_empty() {
                self.outbox
                    .write_all(&self.out)
                    .await
                    .map_err(|_| Stop::Closed)?;
                if self.out.capacity() > KEEP_WRITE_BUFFER_BYTES {
                    // A burst (a large getChildren, a pipelined batch) is
                    // over: do not keep its buffer for an idle connection.
                    self.out = BytesMut::new();
                } else {
                    self.out.clear();
                }
            }
            if done || (self.closing && self.queue.is_empty()) {
                return Ok(());
            }
            if !self.outbox.rest() {
                // Sent to since the last take: take it in first.
                continue;
            }
            // Throttled: wait to be told it lifted, registered before a
            // second look so a release in between is not missed (boxed, and
            // only then: an idle connection's task stays small).
            let mut unthrottled = None;
            let throttled = shared.throttled() && {
                let mut wait = Box::pin(shared.unthrottled.notified());
                wait.as_mut().enable();
                unthrottled = Some(wait);
                shared.throttled()
            };
            let can_read = !self.closing && self.queue.len() < max_outstanding && !throttled;
            tokio::select! {
                _ = self.close.cancelled() => return Err(Stop::Closed),
                // Taken in at the top of the loop.
                _ = self.outbox.sent() => {}
                _ = async {
                    if let Some(wait) = unthrottled.as_mut() {
                        wait.await;
                    }
                }, if throttled => {}
                f = self.frames.next(), if can_read => {
                    self.on_frame(f)?;
                    // Take every request already received before replying,
                    // so a pipelining client gets its replies in one write.
                    while !self.closing
                        && self.queue.len() < max_outstanding
                        && !self.shared.throttled()
                    {
                        match self.frames.try_next() {
                            Some(f) => self.on_frame(f)?,
                            None => break,
                        }
                    }
                }
            }
        }
    }

    fn on_frame(&mut self, f: Next) -> Result<(), Stop> {
        match f {
            Some(Ok(Frame::Message(body))) => self.on_request(body),
            Some(Ok(Frame::FourLetterWord(_))) | Some(Err(_)) | None => Err(Stop::Closed),
        }
    }

    /// Takes everything the write path and the watches have sent so far.
    fn absorb(&mut self) {
        for m in self.outbox.take() {
            self.take(m);
        }
    }

    fn take(&mut self, m: Outbound) {
        match m {
            Outbound::Notification(bytes) => {
                put_frame(&mut self.out, &bytes);
                Stats::bump(&self.shared.stats.packets_sent);
            }
            Outbound::Rest(bytes) => self.out.extend_from_slice(&bytes),
            Outbound::Committed(c) => {
                let placed = self.queue.committed(c);
                debug_assert!(
                    placed,
                    "an outcome for a write this connection did not send"
                );
            }
        }
    }

    /// Writes the replies at the head of the queue that are answerable now.
    /// True when a reply that ends the connection was written.
    fn answer_ready(&mut self) -> bool {
        while let Some((turn, received)) = self.queue.next_turn() {
            let (reply, close_after, kind) = match turn {
                Turn::Ready { reply, close_after } => (reply, close_after, Served::Other),
                Turn::Written {
                    xid,
                    opcode,
                    committed: c,
                } => (
                    encode_reply(xid, c.zxid, c.result.as_ref().map_err(|e| e.code())),
                    opcode == op::CLOSE_SESSION,
                    Served::Update,
                ),
                Turn::Read { xid, req, ids } => {
                    let reply = self.read(xid, &req, &ids);
                    // Notifications for changes this read may reflect were
                    // queued before the tree lock was released: send them first.
                    self.absorb();
                    (reply, false, Served::Read)
                }
            };
            let done = received;
            put_frame(&mut self.out, &reply);
            self.shared
                .stats
                .record_latency(kind, done.elapsed().as_micros() as u64);
            Stats::bump(&self.shared.stats.packets_sent);
            Stats::bump(&self.info.sent);
            self.shared.settle_outstanding(1);
            self.info.queued.store(
                self.queue.len() as u64,
                std::sync::atomic::Ordering::Relaxed,
            );
            if close_after {
                return true;
            }
        }
        false
    }

    /// Runs a read-side request (reads, watch management, whoAmI) and
    /// encodes its reply. Watches are registered under the tree's read lock,
    /// so no change can slip between the read and the registration.
    fn read(&self, xid: i32, req: &Request, ids: &[Id]) -> Bytes {
        let tree = self.shared.tree.read();
        let watches = &self.shared.watches;
        let result = match req {
            Request::WhoAmI => Ok(Response::WhoAmI(who_am_i(ids))),
            Request::AddWatch(w) => match w.mode {
                0 => Ok(watch::PERSISTENT),
                1 => Ok(watch::RECURSIVE),
                _ => Err(ErrorCode::BadArguments),
            }
            .map(|bits| {
                watches.add(self.id, &w.path, bits);
                Response::ErrorBody { err: 0 }
            }),
            Request::CheckWatches(w) | Request::RemoveWatches(w) => {
                match watch::watcher_type_bits(w.watcher_type) {
                    None => Err(ErrorCode::BadArguments),
                    Some(bits) => {
                        let found = if matches!(req, Request::CheckWatches(_)) {
                            watches.contains(self.id, &w.path, bits)
                        } else {
                            watches.remove(self.id, &w.path, bits)
                        };
                        if found {
                            Ok(Response::Empty)
                        } else {
                            Err(ErrorCode::NoWatcher)
                        }
                    }
                }
            }
            Request::SetWatches { req: w, .. } => {
                self.rearm(&tree, w);
                Ok(Response::Empty)
            }
            _ => {
                let r = tree.read(self.session_id, req, ids);
                if let Some((path, bits)) = watch_to_arm(req, &r) {
                    watches.add(self.id, path, bits);
                }
                r
            }
        };
        encode_reply(xid, tree.last_zxid(), result.as_ref().map_err(|e| e.code()))
    }

    /// setWatches after a reconnect: changes the client missed since
    /// `relative_zxid` are reported at once, the other watches are armed.
    fn rearm(&self, tree: &DataTree, w: &SetWatches2) {
        let rel = w.relative_zxid;
        let watches = &self.shared.watches;
        let tell = |event_type: i32, path: &str| {
            self.outbox.send(watches::immediate(event_type, path));
        };
        for p in &w.data_watches {
            match tree.stat(p) {
                None => tell(event::NODE_DELETED, p),
                Some(st) if st.mzxid > rel => tell(event::NODE_DATA_CHANGED, p),
                Some(_) => watches.add(self.id, p, watch::DATA),
            }
        }
        for p in &w.exist_watches {
            match tree.stat(p) {
                None => watches.add(self.id, p, watch::DATA),
                Some(_) => tell(event::NODE_CREATED, p),
            }
        }
        for p in &w.child_watches {
            match tree.stat(p) {
                None => tell(event::NODE_DELETED, p),
                Some(st) if st.pzxid > rel => tell(event::NODE_CHILDREN_CHANGED, p),
                Some(_) => watches.add(self.id, p, watch::CHILD),
            }
        }
        for p in &w.persistent_watches {
            watches.add(self.id, p, watch::PERSISTENT);
        }
        for p in &w.persistent_recursive_watches {
            watches.add(self.id, p, watch::RECURSIVE);
        }
    }

    fn push(&mut self, slot: Slot, received: Instant) {
        self.queue.push(slot, received);
        Stats::bump(&self.shared.stats.outstanding);
        self.info.queued.store(
            self.queue.len() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    fn ready(
        &mut self,
        xid: i32,
        zxid: i64,
        result: Result<&Response, ErrorCode>,
        close_after: bool,
        received: Instant,
    ) {
        let reply = encode_reply(xid, zxid, result.map_err(|e| e.code()));
        self.push(Slot::Ready { reply, close_after }, received);
        if close_after {
            self.closing = true;
        }
    }

    fn on_request(&mut self, body: Bytes) -> Result<(), Stop> {
        let received = Instant::now();
        Stats::bump(&self.shared.stats.packets_received);
        Stats::bump(&self.info.received);
        self.liveness.touch(self.shared.mono_ms());
        let mut r = Reader::new(body);
        let header = RequestHeader::read(&mut r).map_err(|_| Stop::Closed)?;
        let req = match Request::read(header.opcode, &mut r) {
            Ok(req) => req,
            Err(DecodeError::UnknownOpcode(_) | DecodeError::OpcodeNotAllowed(_)) => {
                debug!(peer = %self.info.peer, opcode = header.opcode, "unimplemented opcode; closing");
                self.ready(
                    header.xid,
                    -1,
                    Err(ErrorCode::Unimplemented),
                    true,
                    received,
                );
                return Ok(());
            }
            Err(e) => {
                debug!(peer = %self.info.peer, "malformed request: {e}; closing");
                return Err(Stop::Closed);
            }
        };
        let zxid = self.shared.last_zxid();
        let bit = match req {
            Request::Ping => TRACE_CLIENT_PINGS,
            _ => TRACE_CLIENT_REQUESTS,
        };
        if self.shared.tracing(bit) {
            trace!(
                session = format_args!("0x{:x}", self.session_id),
                xid = header.xid,
                opcode = header.opcode,
                zxid = format_args!("0x{zxid:x}"),
                "request"
            );
        }
        match req {
            req if self.read_only && req.needs_quorum() => {
                self.ready(
                    header.xid,
                    zxid,
                    Err(ErrorCode::NotReadOnly),
                    false,
                    received,
                );
            }
            Request::CloseSession if self.read_only => {
                // The session was never logged: forgetting it is the close.
                self.shared.sessions.detach(self.session_id, self.id);
                self.shared.sessions.remove(self.session_id);
                self.ready(header.xid, zxid, Ok(&Response::Empty), true, received);
            }
            // Ping and auth replies echo the request xid (clients send -2 and
            // -4; some send ordinary xids for auth).
            Request::Ping => {
                let reply = ReplyHeader {
                    xid: header.xid,
                    zxid,
                    err: 0,
                }
                .to_bytes();
                self.push(
                    Slot::Ready {
                        reply,
                        close_after: false,
                    },
                    received,
                );
            }
            Request::Auth(packet) => {
                let ok =
                    self.authenticate(&packet.scheme, packet.auth.as_deref().unwrap_or_default());
                self.shared.watches.set_ids(self.id, self.ids.clone());
                let err = if ok { 0 } else { ErrorCode::AuthFailed.code() };
                let reply = ReplyHeader {
                    xid: header.xid,
                    zxid: 0,
                    err,
                }
                .to_bytes();
                self.push(
                    Slot::Ready {
                        reply,
                        close_after: !ok,
                    },
                    received,
                );
                self.closing |= !ok;
            }
            Request::Check(_) => {
                // Only meaningful inside a multi; ZooKeeper rejects it alone.
                self.ready(
                    header.xid,
                    zxid,
                    Err(ErrorCode::Unimplemented),
                    true,
                    received,
                );
            }
            Request::Reconfig(r) => match self.reconfig_allowed(&r) {
                Ok(change) => self.queue_write(
                    header.xid,
                    op::RECONFIG,
                    Proposed::Reconfig(change),
                    received,
                ),
                Err(e) => self.ready(header.xid, zxid, Err(e), false, received),
            },
            Request::Sasl(r) => {
                let answer = self.sasl_step(r.token.as_deref().unwrap_or_default());
                self.shared.watches.set_ids(self.id, self.ids.clone());
                let err = match answer {
                    Ok(_) => 0,
                    Err(()) => ErrorCode::AuthFailed.code(),
                };
                let mut reply = BytesMut::from(
                    &ReplyHeader {
                        xid: header.xid,
                        zxid: 0,
                        err,
                    }
                    .to_bytes()[..],
                );
                match answer.ok().flatten() {
                    Some(token) => {
                        reply.put_i32(token.len() as i32);
                        reply.put_slice(&token);
                    }
                    None => reply.put_i32(-1),
                }
                let close_after = err != 0;
                self.push(
                    Slot::Ready {
                        reply: reply.freeze(),
                        close_after,
                    },
                    received,
                );
                self.closing |= close_after;
            }
            Request::CloseSession => {
                self.shared
                    .sessions
                    .mark_closing(self.session_id, self.shared.mono_ms());
                self.shared.sessions.detach(self.session_id, self.id);
                self.closing = true;
                self.write(header.xid, TxnOp::CloseSession, received);
            }
            Request::Sync(r) => {
                self.queue_write(header.xid, op::SYNC, Proposed::Sync(r.path), received);
            }
            req @ (Request::Create { .. }
            | Request::CreateTtl(_)
            | Request::Delete(_)
            | Request::SetData(_)
            | Request::SetAcl(_)
            | Request::Multi(_)
            | Request::DeleteContainer(_)) => {
                let mut req = req;
                acl::mark_unprovided(&mut req, self.shared.config.auth_providers());
                self.write(header.xid, TxnOp::Write(req), received);
            }
            req => {
                let ids = self.ids.clone();
                self.push(
                    Slot::Read {
                        xid: header.xid,
                        req,
                        ids,
                    },
                    received,
                );
            }
        }
        Ok(())
    }

    /// Queues a write; `propose_released` hands it to the write path.
    fn queue_write(&mut self, xid: i32, opcode: i32, proposed: Proposed, received: Instant) {
        self.push(
            Slot::Write {
                xid,
                opcode,
                proposal: Some(proposed),
                result: None,
            },
            received,
        );
    }

    /// Hands the write path, in order, every queued write that no read of
    /// this connection (nor a reconfig) waits ahead of, in one pass over
    /// the queue. Only room in the write path's queue is awaited, so the
    /// connection's task stays small.
    async fn propose_released(&mut self) -> Result<(), Stop> {
        let mut at = 0;
        while let Some(next) = self.queue.releasable(at) {
            let room = self
                .shared
                .room_for_proposal()
                .await
                .map_err(|_| Stop::Closed)?;
            if let Some(op) = self.queue.release(next) {
                room.send(Proposal {
                    op,
                    reply_to: Some(ReplyTo::Connection(self.outbox.clone())),
                });
            }
            // Looked at again: a reconfig just proposed holds what follows.
            at = next;
        }
        Ok(())
    }

    /// Prepares a transaction (time, identities) and queues it.
    fn write(&mut self, xid: i32, op: TxnOp, received: Instant) {
        let opcode = match &op {
            TxnOp::Write(r) => r.opcode(),
            TxnOp::CloseSession => op::CLOSE_SESSION,
            TxnOp::CreateSession { .. } => op::CREATE_SESSION,
            TxnOp::SetConfig { .. } => op::RECONFIG,
        };
        let mut auth = self.ids.as_ref().clone();
        // Without ZooKeeper's SASL provider, a SASL user is no identity an
        // ACL can hold (`auth` entries do not expand to it).
        if !self.shared.config.sasl_provider {
            auth.retain(|i| i.scheme != acl::SASL);
        }
        let txn = Txn {
            session_id: self.session_id,
            time_ms: self.shared.wall_ms(),
            auth,
            op,
        };
        self.queue_write(xid, opcode, Proposed::Txn(txn), received);
    }

    /// The checks ZooKeeper makes before the leader's: enabled, then an
    /// ensemble. The leader checks the rest in ZooKeeper's order (in
    /// progress, version, arguments, this caller's WRITE on
    /// /zookeeper/config, quorum); the right is read here, where the
    /// caller's identities are.
    fn reconfig_allowed(&self, r: &ReconfigRequest) -> Result<Reconfig, ErrorCode> {
        let config = &self.shared.config;
        if !config.reconfig_enabled {
            return Err(ErrorCode::ReconfigDisabled);
        }
        if self.shared.status().role == Role::Standalone {
            return Err(ErrorCode::Unimplemented);
        }
        let keeps_two = config
            .ensemble
            .as_ref()
            .is_none_or(|e| e.standalone_enabled);
        let min_voters = if keeps_two { 2 } else { 1 };
        let authorized = self
            .shared
            .tree
            .read()
            .node(CONFIG_NODE)
            .is_some_and(|n| acl::allowed(&n.acl, perms::WRITE, &self.ids));
        Ok(crate::reconfig::parse(r, min_voters, authorized))
    }

    /// One SASL token in, the token to answer with out (None: SASL is
    /// not configured, which ZooKeeper answers with no token and no
    /// error). Err: authentication failed; the connection closes.
    fn sasl_step(&mut self, token: &[u8]) -> Result<Option<Vec<u8>>, ()> {
        let Some(users) = &self.shared.config.sasl_users else {
            return Ok(None);
        };
        if self.sasl.is_none() {
            let Some(nonce) = crate::sasl::nonce() else {
                debug!("SASL: no randomness for a nonce");
                return Err(());
            };
            self.sasl = Some(Box::new(DigestMd5::new(nonce)));
        }
        let Some(exchange) = self.sasl.as_mut() else {
            return Err(());
        };
        match exchange.step(token, users) {
            Outcome::Continue(token) => Ok(Some(token)),
            Outcome::Authenticated { user, token } => {
                let ids = Arc::make_mut(&mut self.ids);
                if self.shared.config.sasl_super_users.contains(&user) {
                    ids.push(acl::id(acl::SUPER, ""));
                }
                ids.push(acl::id(acl::SASL, &user));
                debug!(session = format_args!("0x{:x}", self.session_id), %user, "SASL DIGEST-MD5 authenticated");
                Ok(Some(token))
            }
            Outcome::Failed(why) => {
                debug!(
                    session = format_args!("0x{:x}", self.session_id),
                    "SASL authentication failed: {why}"
                );
                Err(())
            }
        }
    }

    /// Adds identities for an auth packet. False for an unknown scheme.
    fn authenticate(&mut self, scheme: &str, data: &[u8]) -> bool {
        let ids = Arc::make_mut(&mut self.ids);
        match scheme {
            acl::DIGEST => {
                let digest = acl::digest_id(&String::from_utf8_lossy(data));
                if self.shared.config.super_digest.as_deref() == Some(digest.as_str()) {
                    ids.push(acl::id(acl::SUPER, ""));
                }
                let id = acl::id(acl::DIGEST, &digest);
                if !ids.contains(&id) {
                    ids.push(id);
                }
                true
            }
            acl::IP => true,
            _ => false,
        }
    }
}

impl Drop for Connection {
    /// Requests still queued when the connection ends are no longer outstanding.
    fn drop(&mut self) {
        self.shared.settle_outstanding(self.queue.len() as u64);
    }
}

/// The watch a successful read asks for: exists arms even on NoNode (that
/// is how NodeCreated is delivered); getData and getChildren only when the
/// node exists and may be read.
fn watch_to_arm<'r>(
    req: &'r Request,
    result: &Result<Response, ErrorCode>,
) -> Option<(&'r str, u8)> {
    let (w, bits) = match req {
        Request::Exists(w) if result.is_ok() || *result == Err(ErrorCode::NoNode) => {
            (w, watch::DATA)
        }
        Request::GetData(w) if result.is_ok() => (w, watch::DATA),
        Request::GetChildren(w) | Request::GetChildren2(w) if result.is_ok() => (w, watch::CHILD),
        _ => return None,
    };
    w.watch.then_some((w.path.as_str(), bits))
}

/// whoAmI: one entry per identity in the order they were added (the ip
/// first); digest users are shown without the hash.
fn who_am_i(ids: &[Id]) -> Vec<ClientInfo> {
    ids.iter()
        .map(|i| ClientInfo {
            auth_scheme: i.scheme.clone(),
            user: match i.scheme.as_str() {
                acl::DIGEST => i.id.split(':').next().unwrap_or("").to_owned(),
                _ => i.id.clone(),
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServerConfig;
    use crate::session::SessionTracker;
    use paddock_tree::{DataTree, TreeConfig};
    use parking_lot::RwLock;
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::mpsc;

    /// An idle connection costs its task's future for as long as it is
    /// open: the budget for a whole idle session is 2 KiB. (840 bytes
    /// since a connection may be TLS, carried over a local socket, and
    /// holds a slot for its SASL exchange.)
    #[tokio::test]
    async fn a_connection_task_stays_small() {
        let tree = Arc::new(RwLock::new(DataTree::new(TreeConfig::default())));
        let (proposals, _rx) = mpsc::channel(1);
        let shared = Shared::new(
            ServerConfig::default(),
            tree,
            SessionTracker::new(1),
            proposals,
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (stream, peer) = listener.accept().await.unwrap();
        let counts = crate::admission::PerIpMap::default();
        let slot = IpSlot::take(&counts, peer.ip(), 0, 0).unwrap();
        let task = serve(shared, Socket::Tcp(stream), peer, 1, slot, Vec::new());
        let bytes = std::mem::size_of_val(&task);
        assert!(bytes <= 840, "a connection's task takes {bytes} bytes");
    }
}
