//! Transactions: what the log carries and apply consumes, and what apply
//! returns. A Txn holds everything apply needs (time, caller identities), so
//! applying the same Txns in the same order gives the same tree everywhere.

use paddock_proto::{Acl, ErrorCode, Id, Request, Response};
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
