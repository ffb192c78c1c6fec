//! Transactions: what the log carries and apply consumes, and what apply
//! returns. A Txn holds everything apply needs (time, caller identities), so
//! applying the same Txns in the same order gives the same tree everywhere.

use bytes::{BufMut, Bytes, BytesMut};
use paddock_proto::{Acl, DecodeError, ErrorCode, Id, Jute, Reader, Request, Response};
use std::sync::Arc;

/// Session id used by transactions the server issues itself (container and
/// TTL reaping). Such transactions skip the session check.
pub const SYSTEM_SESSION: i64 = 0;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Txn {
    pub session_id: i64,
    /// Wall-clock time stamped by the leader when the Txn was prepared.
    pub time_ms: i64,
    /// The identities of the calling connection at prepare time.
    pub auth: Vec<Id>,
    pub op: TxnOp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOp {
    CreateSession {
        timeout_ms: i32,
    },
    CloseSession,
    /// A client write: create (all kinds), delete, setData, setACL, multi,
    /// deleteContainer.
    Write(Request),
    /// The ensemble's membership changed (ZooKeeper's reconfig
    /// transaction): `/zookeeper/config` gets these `server.N=` lines,
    /// each ending in a newline, and `version=` the change's zxid.
    SetConfig {
        servers: String,
    },
}

/// A change that watches can observe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// One of `paddock_proto::consts::event`'s NODE_* types.
    pub event_type: i32,
    pub path: String,
    /// The ACL of the changed node (the parent's for children changed):
    /// only watchers that may READ it are notified.
    pub acl: Arc<Vec<Acl>>,
}

/// The outcome of applying one Txn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub zxid: i64,
    pub result: Result<Response, ErrorCode>,
    /// In the order watches must fire.
    pub events: Vec<Event>,
}

impl TxnOp {
    /// A one-line description for logs and inspection tools.
    pub fn summary(&self) -> String {
        match self {
            TxnOp::CreateSession { timeout_ms } => format!("createSession timeout={timeout_ms}ms"),
            TxnOp::CloseSession => "closeSession".to_owned(),
            TxnOp::Write(req) => request_summary(req),
            TxnOp::SetConfig { servers } => {
                format!(
                    "reconfig /zookeeper/config ({} servers)",
                    servers.lines().count()
                )
            }
        }
    }
}

fn request_summary(req: &Request) -> String {
    let len = |d: &Option<Bytes>| {
        d.as_ref()
            .map_or("null".to_owned(), |d| format!("{} bytes", d.len()))
    };
    match req {
        Request::Create { opcode, req } => {
            format!(
                "create {} (opcode {opcode}, flags {}, {})",
                req.path,
                req.flags,
                len(&req.data)
            )
        }
        Request::CreateTtl(r) => format!(
            "createTTL {} (flags {}, ttl {}ms, {})",
            r.path,
            r.flags,
            r.ttl,
            len(&r.data)
        ),
        Request::Delete(r) => format!("delete {} version {}", r.path, r.version),
        Request::SetData(r) => format!(
            "setData {} version {} ({})",
            r.path,
            r.version,
            len(&r.data)
        ),
        Request::SetAcl(r) => format!(
            "setACL {} aversion {} ({} entries)",
            r.path,
            r.version,
            r.acl.len()
        ),
        Request::Check(r) => format!("check {} version {}", r.path, r.version),
        Request::DeleteContainer(r) => format!(
            "deleteContainer {}",
            String::from_utf8_lossy(r.path.as_deref().unwrap_or_default())
        ),
        Request::Multi(ops) => {
            let inner: Vec<String> = ops.iter().map(request_summary).collect();
            format!("multi [{}]", inner.join("; "))
        }
        other => format!("opcode {}", other.opcode()),
    }
}

const KIND_CREATE_SESSION: i32 = 0;
const KIND_CLOSE_SESSION: i32 = 1;
const KIND_WRITE: i32 = 2;
const KIND_SET_CONFIG: i32 = 3;

impl Txn {
    /// The log encoding of a Txn: session id, time, identities, then the op
    /// (a kind, and for writes the opcode and the request body in jute).
    pub fn encode(&self, out: &mut BytesMut) {
        out.put_i64(self.session_id);
        out.put_i64(self.time_ms);
        self.auth.write(out);
        match &self.op {
            TxnOp::CreateSession { timeout_ms } => {
                out.put_i32(KIND_CREATE_SESSION);
                out.put_i32(*timeout_ms);
            }
            TxnOp::CloseSession => out.put_i32(KIND_CLOSE_SESSION),
            TxnOp::Write(req) => {
                out.put_i32(KIND_WRITE);
                out.put_i32(req.opcode());
                req.write(out);
            }
            TxnOp::SetConfig { servers } => {
                out.put_i32(KIND_SET_CONFIG);
                servers.write(out);
            }
        }
    }

    /// Decodes what `encode` wrote; the whole buffer must be consumed.
    pub fn decode(buf: Bytes) -> Result<Txn, DecodeError> {
        let mut r = Reader::new(buf);
        let session_id = r.read_i64()?;
        let time_ms = r.read_i64()?;
        let auth = r.read_vec()?;
        let op = match r.read_i32()? {
            KIND_CREATE_SESSION => TxnOp::CreateSession {
                timeout_ms: r.read_i32()?,
            },
            KIND_CLOSE_SESSION => TxnOp::CloseSession,
            KIND_WRITE => {
                let opcode = r.read_i32()?;
                TxnOp::Write(Request::read(opcode, &mut r)?)
            }
            KIND_SET_CONFIG => TxnOp::SetConfig {
                servers: r.read_string()?,
            },
            other => return Err(DecodeError::UnknownOpcode(other)),
        };
        r.finish()?;
        Ok(Txn {
            session_id,
            time_ms,
            auth,
            op,
        })
    }
}
