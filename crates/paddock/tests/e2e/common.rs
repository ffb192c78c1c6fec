//! Test harness: an in-process server on a free loopback port, stopped on
//! drop, and a raw protocol client for byte-level checks.

use bytes::{BufMut, Bytes, BytesMut};
use paddock_proto::{
    ConnectRequest, ConnectResponse, Jute, Reader, ReplyHeader, Request, Response,
};
use paddock_server::{Server, ServerConfig};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// A loopback port free now, never handed out before in this process, and
/// below the kernel's ephemeral range: a port from that range (what binding
/// port 0 gives) can meanwhile become the source port of some outgoing
/// connection, or be given out again, and a server started (or restarted)
/// on it then cannot listen.
pub fn free_port() -> u16 {
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768)
        .max(1024 + SPAN);
    // Test processes run one after another, or side by side: each starts
    // at its own place in the span.
    let start = std::process::id().wrapping_mul(7919) % SPAN;
    let _ = NEXT.compare_exchange(u32::MAX, start, Ordering::SeqCst, Ordering::SeqCst);
    for _ in 0..SPAN {
        let port = (low - SPAN + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port below {low}");
}

pub struct TestServer {
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<Result<(), paddock_server::StuckStopping>>>,
    _dir: Option<tempfile::TempDir>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut ServerConfig)) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut server = Self::start_in(&dir.path().join("data"), adjust).await;
        server._dir = Some(dir);
        server
    }

    /// A server on a data directory the caller owns (to restart on it).
    pub async fn start_in(
        data_dir: &std::path::Path,
        adjust: impl FnOnce(&mut ServerConfig),
    ) -> TestServer {
        let mut config = config_in(data_dir);
        adjust(&mut config);
        let server = Server::bind(config).await.expect("bind");
        let addr = server.local_addr().expect("local addr");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(server.run(shutdown.clone()));
        TestServer {
            addr,
            shutdown,
            task: Some(task),
            _dir: None,
        }
    }

    /// Stops the server and waits until it has let go of its data directory.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server stops");
        }
    }

    pub fn hosts(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A byte-level client: frames in and out, nothing hidden.
pub struct Raw {
    pub stream: TcpStream,
    next_xid: i32,
}

pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

impl Raw {
    pub async fn open(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).await.expect("connect");
        Raw::on(stream)
    }

    pub fn on(stream: TcpStream) -> Raw {
        Raw {
            stream,
            next_xid: 1,
        }
    }

    /// Opens a connection and establishes a new session.
    pub async fn session(addr: SocketAddr, timeout_ms: i32) -> (Raw, ConnectResponse) {
        let (raw, resp) = Self::try_session(addr, timeout_ms)
            .await
            .expect("connect response");
        assert!(resp.timeout_ms > 0, "session refused: {resp:?}");
        (raw, resp)
    }

    /// Like `session`, for servers that may die meanwhile: None if the
    /// connection or the handshake fails.
    pub async fn try_session(addr: SocketAddr, timeout_ms: i32) -> Option<(Raw, ConnectResponse)> {
        let stream = TcpStream::connect(addr).await.ok()?;
        let mut raw = Raw {
            stream,
            next_xid: 1,
        };
        let resp = raw
            .connect(&ConnectRequest {
                timeout_ms,
                passwd: Some(Bytes::from_static(&[0; 16])),
                read_only: Some(false),
                ..Default::default()
            })
            .await?;
        Some((raw, resp))
    }

    pub async fn send_frame(&mut self, payload: &[u8]) {
        self.try_send_frame(payload).await.expect("write");
    }

    /// Like `send_frame`, for peers that may have died.
    pub async fn try_send_frame(&mut self, payload: &[u8]) -> std::io::Result<()> {
        let mut out = BytesMut::new();
        out.put_u32(payload.len() as u32);
        out.put_slice(payload);
        self.stream.write_all(&out).await
    }

    /// Reads one frame; None on EOF, reset or timeout.
    pub async fn read_frame(&mut self) -> Option<Bytes> {
        let mut len = [0u8; 4];
        tokio::time::timeout(READ_TIMEOUT, self.stream.read_exact(&mut len))
            .await
            .ok()?
            .ok()?;
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        tokio::time::timeout(READ_TIMEOUT, self.stream.read_exact(&mut body))
            .await
            .ok()?
            .ok()?;
        Some(Bytes::from(body))
    }

    pub async fn connect(&mut self, req: &ConnectRequest) -> Option<ConnectResponse> {
        self.send_frame(&req.to_bytes()).await;
        let body = self.read_frame().await?;
        ConnectResponse::from_bytes(body).ok()
    }

    pub fn xid(&mut self) -> i32 {
        let x = self.next_xid;
        self.next_xid += 1;
        x
    }

    /// Sends a request and reads frames until its reply; notifications seen
    /// on the way are returned too.
    pub async fn call(&mut self, req: &Request) -> (ReplyHeader, Option<Response>) {
        self.try_call(req).await.expect("reply")
    }

    /// Like `call`; None if the connection fails first.
    pub async fn try_call(&mut self, req: &Request) -> Option<(ReplyHeader, Option<Response>)> {
        let xid = match req {
            Request::Ping => -2,
            Request::Auth(_) => -4,
            Request::SetWatches { .. } => -8,
            _ => self.xid(),
        };
        self.try_send_frame(&req.encode_with_header(xid))
            .await
            .ok()?;
        loop {
            let body = self.read_frame().await?;
            let (h, resp) = decode_reply(req.opcode(), body);
            if h.xid == xid {
                return Some((h, resp));
            }
            assert_eq!(h.xid, -1, "unexpected reply {h:?}");
        }
    }

    /// True once the server has closed the connection (EOF or reset).
    pub async fn closed(&mut self) -> bool {
        let mut buf = [0u8; 64];
        loop {
            match tokio::time::timeout(READ_TIMEOUT, self.stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }
}

pub fn decode_reply(opcode: i32, body: Bytes) -> (ReplyHeader, Option<Response>) {
    let mut r = Reader::new(body);
    let h = ReplyHeader::read(&mut r).expect("reply header");
    if h.xid == -1 {
        return (h, None); // a notification; its WatcherEvent follows
    }
    if h.err != 0 || h.xid < 0 {
        assert_eq!(r.remaining(), 0, "error replies carry only the header");
        return (h, None);
    }
    let resp = Response::read(opcode, &mut r).expect("reply body");
    assert_eq!(r.remaining(), 0, "reply fully consumed");
    (h, Some(resp))
}

/// Sends a four-letter word on a fresh connection and returns the answer.
pub async fn four_letter(addr: SocketAddr, word: &str) -> String {
    paddock_cli::four_letter(&addr.to_string(), word)
        .await
        .unwrap_or_else(|e| panic!("{word} from {addr}: {e}"))
}

/// `[ACL(ALL, world:anyone)]` in protocol records.
pub fn open_acl() -> Vec<paddock_proto::Acl> {
    vec![paddock_proto::Acl {
        perms: 31,
        id: paddock_proto::Id {
            scheme: "world".into(),
            id: "anyone".into(),
        },
    }]
}

/// A create request (opcode 1) with world-open ACL.
pub fn create_request(path: &str, flags: i32, data: &[u8]) -> Request {
    Request::Create {
        opcode: paddock_proto::op::CREATE,
        req: paddock_proto::CreateRequest {
            path: path.into(),
            data: Some(Bytes::copy_from_slice(data)),
            acl: open_acl(),
            flags,
        },
    }
}

/// A server config on a loopback free port and the given data directory.
pub fn config_in(data_dir: &std::path::Path) -> ServerConfig {
    ServerConfig {
        client_addr: "127.0.0.1:0".parse().expect("addr"),
        data_dir: data_dir.to_owned(),
        ..ServerConfig::default()
    }
}

/// A `zookeeper-client` session on the test server.
pub async fn client(s: &TestServer) -> zookeeper_client::Client {
    zookeeper_client::Client::connect(&s.hosts())
        .await
        .expect("connect")
}

/// Persistent nodes anyone may do anything with.
pub fn persistent() -> zookeeper_client::CreateOptions<'static> {
    zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all())
}

/// Creates a persistent node with the given ACL list.
pub async fn create_with_acl(
    c: &zookeeper_client::Client,
    path: &str,
    data: &[u8],
    acl: &[zookeeper_client::Acl],
) {
    let options =
        zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::new(acl));
    c.create(path, data, &options).await.expect("create");
}

/// Polls until `path` is gone (a reaper or an expiry removed it), for up
/// to two seconds; true if it went.
pub async fn gone(c: &zookeeper_client::Client, path: &str) -> bool {
    for _ in 0..100 {
        if c.check_stat(path).await.expect("exists").is_none() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}
