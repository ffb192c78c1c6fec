//! Whole client requests and server responses, keyed by opcode.

use crate::consts::op;
use crate::jute::{write_buffer, DecodeError, Jute, Reader};
use crate::records::*;
use bytes::{BufMut, Bytes, BytesMut};

/// One client request body, decoded according to its header's opcode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// create (1), create2 (15) and createContainer (19) share a body.
    Create {
        opcode: i32,
        req: CreateRequest,
    },
    CreateTtl(CreateTtlRequest),
    Delete(DeleteRequest),
    Exists(PathWatchRequest),
    GetData(PathWatchRequest),
    SetData(SetDataRequest),
    GetAcl(PathRequest),
    SetAcl(SetAclRequest),
    GetChildren(PathWatchRequest),
    GetChildren2(PathWatchRequest),
    Sync(PathRequest),
    Ping,
    Check(CheckVersionRequest),
    Multi(Vec<Request>),
    MultiRead(Vec<Request>),
    Reconfig(ReconfigRequest),
    CheckWatches(WatchesRequest),
    RemoveWatches(WatchesRequest),
    DeleteContainer(DeleteContainerRequest),
    Auth(AuthPacket),
    /// setWatches (101) is decoded into the setWatches2 shape with no
    /// persistent lists; `v2` remembers which opcode came.
    SetWatches {
        v2: bool,
        req: SetWatches2,
    },
    Sasl(SaslRequest),
    GetEphemerals(PathRequest),
    GetAllChildrenNumber(PathRequest),
    AddWatch(AddWatchRequest),
    WhoAmI,
    CloseSession,
}

/// Opcodes that may appear inside a multi (14) or multiRead (22).
fn allowed_in_multi(opcode: i32) -> bool {
    matches!(
        opcode,
        op::CREATE
            | op::CREATE2
            | op::CREATE_CONTAINER
            | op::CREATE_TTL
            | op::DELETE
            | op::SET_DATA
            | op::CHECK
            | op::GET_DATA
            | op::GET_CHILDREN
    )
}

impl Request {
    pub fn opcode(&self) -> i32 {
        match self {
            Request::Create { opcode, .. } => *opcode,
            Request::CreateTtl(_) => op::CREATE_TTL,
            Request::Delete(_) => op::DELETE,
            Request::Exists(_) => op::EXISTS,
            Request::GetData(_) => op::GET_DATA,
            Request::SetData(_) => op::SET_DATA,
            Request::GetAcl(_) => op::GET_ACL,
            Request::SetAcl(_) => op::SET_ACL,
            Request::GetChildren(_) => op::GET_CHILDREN,
            Request::GetChildren2(_) => op::GET_CHILDREN2,
            Request::Sync(_) => op::SYNC,
            Request::Ping => op::PING,
            Request::Check(_) => op::CHECK,
            Request::Multi(_) => op::MULTI,
            Request::MultiRead(_) => op::MULTI_READ,
            Request::Reconfig(_) => op::RECONFIG,
            Request::CheckWatches(_) => op::CHECK_WATCHES,
            Request::RemoveWatches(_) => op::REMOVE_WATCHES,
            Request::DeleteContainer(_) => op::DELETE_CONTAINER,
            Request::Auth(_) => op::AUTH,
            Request::SetWatches { v2: false, .. } => op::SET_WATCHES,
            Request::SetWatches { v2: true, .. } => op::SET_WATCHES2,
            Request::Sasl(_) => op::SASL,
            Request::GetEphemerals(_) => op::GET_EPHEMERALS,
            Request::GetAllChildrenNumber(_) => op::GET_ALL_CHILDREN_NUMBER,
            Request::AddWatch(_) => op::ADD_WATCH,
            Request::WhoAmI => op::WHO_AM_I,
            Request::CloseSession => op::CLOSE_SESSION,
        }
    }

    /// Whether a server in read-only mode refuses this request with
    /// NotReadOnly: everything that changes the tree or needs the leader
    /// (ZooKeeper counts sync and a lone check among them).
    pub fn needs_quorum(&self) -> bool {
        matches!(
            self,
            Request::Create { .. }
                | Request::CreateTtl(_)
                | Request::Delete(_)
                | Request::DeleteContainer(_)
                | Request::SetData(_)
                | Request::SetAcl(_)
                | Request::Multi(_)
                | Request::Check(_)
                | Request::Sync(_)
                | Request::Reconfig(_)
        )
    }

    /// Decodes the body that follows a RequestHeader with `opcode`.
    pub fn read(opcode: i32, r: &mut Reader) -> Result<Request, DecodeError> {
        Ok(match opcode {
            op::CREATE | op::CREATE2 | op::CREATE_CONTAINER => Request::Create {
                opcode,
                req: CreateRequest::read(r)?,
            },
            op::CREATE_TTL => Request::CreateTtl(Jute::read(r)?),
            op::DELETE => Request::Delete(Jute::read(r)?),
            op::EXISTS => Request::Exists(Jute::read(r)?),
            op::GET_DATA => Request::GetData(Jute::read(r)?),
            op::SET_DATA => Request::SetData(Jute::read(r)?),
            op::GET_ACL => Request::GetAcl(Jute::read(r)?),
            op::SET_ACL => Request::SetAcl(Jute::read(r)?),
            op::GET_CHILDREN => Request::GetChildren(Jute::read(r)?),
            op::GET_CHILDREN2 => Request::GetChildren2(Jute::read(r)?),
            op::SYNC => Request::Sync(Jute::read(r)?),
            op::PING => Request::Ping,
            op::CHECK => Request::Check(Jute::read(r)?),
            op::MULTI => Request::Multi(read_multi_ops(r)?),
            op::MULTI_READ => Request::MultiRead(read_multi_ops(r)?),
            op::RECONFIG => Request::Reconfig(Jute::read(r)?),
            op::CHECK_WATCHES => Request::CheckWatches(Jute::read(r)?),
            op::REMOVE_WATCHES => Request::RemoveWatches(Jute::read(r)?),
            op::DELETE_CONTAINER => Request::DeleteContainer(Jute::read(r)?),
            op::AUTH => Request::Auth(Jute::read(r)?),
            op::SET_WATCHES => {
                let w = SetWatches::read(r)?;
                Request::SetWatches {
                    v2: false,
                    req: SetWatches2 {
                        relative_zxid: w.relative_zxid,
                        data_watches: w.data_watches,
                        exist_watches: w.exist_watches,
                        child_watches: w.child_watches,
                        ..Default::default()
                    },
                }
            }
            op::SET_WATCHES2 => Request::SetWatches {
                v2: true,
                req: Jute::read(r)?,
            },
            op::SASL => Request::Sasl(Jute::read(r)?),
            op::GET_EPHEMERALS => Request::GetEphemerals(Jute::read(r)?),
            op::GET_ALL_CHILDREN_NUMBER => Request::GetAllChildrenNumber(Jute::read(r)?),
            op::ADD_WATCH => Request::AddWatch(Jute::read(r)?),
            op::WHO_AM_I => Request::WhoAmI,
            op::CLOSE_SESSION => Request::CloseSession,
            other => return Err(DecodeError::UnknownOpcode(other)),
        })
    }

    /// Encodes the body (without the RequestHeader).
    pub fn write(&self, out: &mut BytesMut) {
        match self {
            Request::Create { req, .. } => req.write(out),
            Request::CreateTtl(r) => r.write(out),
            Request::Delete(r) => r.write(out),
            Request::Exists(r)
            | Request::GetData(r)
            | Request::GetChildren(r)
            | Request::GetChildren2(r) => r.write(out),
            Request::SetData(r) => r.write(out),
            Request::GetAcl(r)
            | Request::Sync(r)
            | Request::GetEphemerals(r)
            | Request::GetAllChildrenNumber(r) => r.write(out),
            Request::SetAcl(r) => r.write(out),
            Request::Check(r) => r.write(out),
            Request::Multi(ops) | Request::MultiRead(ops) => {
                for o in ops {
                    MultiHeader {
                        opcode: o.opcode(),
                        done: false,
                        err: -1,
                    }
                    .write(out);
                    o.write(out);
                }
                MULTI_END.write(out);
            }
            Request::Reconfig(r) => r.write(out),
            Request::CheckWatches(r) | Request::RemoveWatches(r) => r.write(out),
            Request::DeleteContainer(r) => r.write(out),
            Request::Auth(r) => r.write(out),
            Request::SetWatches { v2: true, req } => req.write(out),
            Request::SetWatches { v2: false, req } => SetWatches {
                relative_zxid: req.relative_zxid,
                data_watches: req.data_watches.clone(),
                exist_watches: req.exist_watches.clone(),
                child_watches: req.child_watches.clone(),
            }
            .write(out),
            Request::Sasl(r) => r.write(out),
            Request::AddWatch(r) => r.write(out),
            Request::Ping | Request::WhoAmI | Request::CloseSession => {}
        }
    }

    /// A whole framed request body: header then record.
    pub fn encode_with_header(&self, xid: i32) -> Bytes {
        let mut out = BytesMut::new();
        RequestHeader {
            xid,
            opcode: self.opcode(),
        }
        .write(&mut out);
        self.write(&mut out);
        out.freeze()
    }
}

const MULTI_END: MultiHeader = MultiHeader {
    opcode: -1,
    done: true,
    err: -1,
};

fn read_multi_ops(r: &mut Reader) -> Result<Vec<Request>, DecodeError> {
    let mut ops = Vec::new();
    loop {
        let h = MultiHeader::read(r)?;
        if h.done {
            return Ok(ops);
        }
        if !allowed_in_multi(h.opcode) {
            return Err(DecodeError::OpcodeNotAllowed(h.opcode));
        }
        ops.push(Request::read(h.opcode, r)?);
    }
}

/// The per-op result of a multi or multiRead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultiResult {
    Create {
        path: String,
    },
    Create2 {
        path: String,
        stat: Stat,
    },
    Delete,
    SetData {
        stat: Stat,
    },
    Check,
    GetData {
        data: Option<Bytes>,
        stat: Stat,
    },
    GetChildren {
        children: Vec<String>,
    },
    /// type -1: carries the op's error code (0 for a rolled-back op).
    Error {
        err: i32,
    },
}

impl MultiResult {
    fn opcode(&self) -> i32 {
        match self {
            MultiResult::Create { .. } => op::CREATE,
            MultiResult::Create2 { .. } => op::CREATE2,
            MultiResult::Delete => op::DELETE,
            MultiResult::SetData { .. } => op::SET_DATA,
            MultiResult::Check => op::CHECK,
            MultiResult::GetData { .. } => op::GET_DATA,
            MultiResult::GetChildren { .. } => op::GET_CHILDREN,
            MultiResult::Error { .. } => op::ERROR,
        }
    }
}

/// A successful response body. Errors are carried by ReplyHeader.err alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// No body: delete, ping, auth, setWatches, check/removeWatches, close.
    Empty,
    Create {
        path: String,
    },
    Create2 {
        path: String,
        stat: Stat,
    },
    /// exists, setData, setACL.
    Stat(Stat),
    GetData {
        data: Option<Bytes>,
        stat: Stat,
    },
    GetAcl {
        acl: Vec<Acl>,
        stat: Stat,
    },
    GetChildren {
        children: Vec<String>,
    },
    GetChildren2 {
        children: Vec<String>,
        stat: Stat,
    },
    /// sync echoes its path.
    Sync {
        path: String,
    },
    /// addWatch answers with an ErrorResponse body holding 0.
    ErrorBody {
        err: i32,
    },
    WhoAmI(Vec<ClientInfo>),
    GetEphemerals {
        paths: Vec<String>,
    },
    GetAllChildrenNumber {
        total: i32,
    },
    Multi(Vec<MultiResult>),
    Sasl {
        token: Option<Bytes>,
    },
}

impl Response {
    pub fn write(&self, out: &mut BytesMut) {
        match self {
            Response::Empty => {}
            Response::Create { path } | Response::Sync { path } => path.write(out),
            Response::Create2 { path, stat } => {
                path.write(out);
                stat.write(out);
            }
            Response::Stat(stat) => stat.write(out),
            Response::GetData { data, stat } => {
                write_buffer(out, data.as_deref());
                stat.write(out);
            }
            Response::GetAcl { acl, stat } => {
                acl.write(out);
                stat.write(out);
            }
            Response::GetChildren { children } => children.write(out),
            Response::GetChildren2 { children, stat } => {
                children.write(out);
                stat.write(out);
            }
            Response::ErrorBody { err } => err.write(out),
            Response::WhoAmI(infos) => infos.write(out),
            Response::GetEphemerals { paths } => paths.write(out),
            Response::GetAllChildrenNumber { total } => total.write(out),
            Response::Multi(results) => {
                for res in results {
                    let err = match res {
                        MultiResult::Error { err } => *err,
                        _ => 0,
                    };
                    MultiHeader {
                        opcode: res.opcode(),
                        done: false,
                        err,
                    }
                    .write(out);
                    write_multi_result(res, out);
                }
                MULTI_END.write(out);
            }
            Response::Sasl { token } => write_buffer(out, token.as_deref()),
        }
    }

    /// Decodes the body of a successful reply to a request of `opcode`
    /// (the client side of the protocol, used by tools and tests).
    pub fn read(opcode: i32, r: &mut Reader) -> Result<Response, DecodeError> {
        Ok(match opcode {
            op::CREATE => Response::Create {
                path: r.read_string()?,
            },
            op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL => Response::Create2 {
                path: r.read_string()?,
                stat: Stat::read(r)?,
            },
            op::EXISTS | op::SET_DATA | op::SET_ACL => Response::Stat(Stat::read(r)?),
            // reconfig answers with the new configuration, as getData would.
            op::GET_DATA | op::RECONFIG => Response::GetData {
                data: r.read_buffer()?,
                stat: Stat::read(r)?,
            },
            op::GET_ACL => Response::GetAcl {
                acl: r.read_vec()?,
                stat: Stat::read(r)?,
            },
            op::GET_CHILDREN => Response::GetChildren {
                children: r.read_vec()?,
            },
            op::GET_CHILDREN2 => Response::GetChildren2 {
                children: r.read_vec()?,
                stat: Stat::read(r)?,
            },
            op::SYNC => Response::Sync {
                path: r.read_string()?,
            },
            op::ADD_WATCH => Response::ErrorBody { err: r.read_i32()? },
            op::WHO_AM_I => Response::WhoAmI(r.read_vec()?),
            op::GET_EPHEMERALS => Response::GetEphemerals {
                paths: r.read_vec()?,
            },
            op::GET_ALL_CHILDREN_NUMBER => Response::GetAllChildrenNumber {
                total: r.read_i32()?,
            },
            op::MULTI | op::MULTI_READ => Response::Multi(read_multi_results(r)?),
            op::SASL => Response::Sasl {
                token: r.read_buffer()?,
            },
            op::DELETE
            | op::PING
            | op::AUTH
            | op::SET_WATCHES
            | op::SET_WATCHES2
            | op::CHECK_WATCHES
            | op::REMOVE_WATCHES
            | op::DELETE_CONTAINER
            | op::CLOSE_SESSION
            | op::CHECK => Response::Empty,
            other => return Err(DecodeError::UnknownOpcode(other)),
        })
    }
}

fn write_multi_result(res: &MultiResult, out: &mut BytesMut) {
    match res {
        MultiResult::Create { path } => path.write(out),
        MultiResult::Create2 { path, stat } => {
            path.write(out);
            stat.write(out);
        }
        MultiResult::Delete | MultiResult::Check => {}
        MultiResult::SetData { stat } => stat.write(out),
        MultiResult::GetData { data, stat } => {
            write_buffer(out, data.as_deref());
            stat.write(out);
        }
        MultiResult::GetChildren { children } => children.write(out),
        MultiResult::Error { err } => out.put_i32(*err),
    }
}

fn read_multi_results(r: &mut Reader) -> Result<Vec<MultiResult>, DecodeError> {
    let mut out = Vec::new();
    loop {
        let h = MultiHeader::read(r)?;
        if h.done {
            return Ok(out);
        }
        out.push(match h.opcode {
            op::CREATE => MultiResult::Create {
                path: r.read_string()?,
            },
            op::CREATE2 => MultiResult::Create2 {
                path: r.read_string()?,
                stat: Stat::read(r)?,
            },
            op::DELETE => MultiResult::Delete,
            op::SET_DATA => MultiResult::SetData {
                stat: Stat::read(r)?,
            },
            op::CHECK => MultiResult::Check,
            op::GET_DATA => MultiResult::GetData {
                data: r.read_buffer()?,
                stat: Stat::read(r)?,
            },
            op::GET_CHILDREN => MultiResult::GetChildren {
                children: r.read_vec()?,
            },
            op::ERROR => MultiResult::Error { err: r.read_i32()? },
            other => return Err(DecodeError::OpcodeNotAllowed(other)),
        });
    }
}

/// Encodes a whole reply: header, then the body only when `err == 0`.
pub fn encode_reply(xid: i32, zxid: i64, result: Result<&Response, i32>) -> Bytes {
    let mut out = BytesMut::with_capacity(64);
    let err = result.err().unwrap_or(0);
    ReplyHeader { xid, zxid, err }.write(&mut out);
    if let Ok(resp) = result {
        resp.write(&mut out);
    }
    out.freeze()
}

/// Encodes a watch notification (xid -1).
pub fn encode_notification(zxid: i64, event_type: i32, path: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(32 + path.len());
    ReplyHeader {
        xid: crate::consts::xid::NOTIFICATION,
        zxid,
        err: 0,
    }
    .write(&mut out);
    WatcherEvent {
        event_type,
        state: crate::consts::event::STATE_SYNC_CONNECTED,
        path: path.to_owned(),
    }
    .write(&mut out);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_only_server_refuses_updates_sync_and_check_but_serves_reads() {
        let path = || PathRequest { path: "/a".into() };
        let watch = || PathWatchRequest {
            path: "/a".into(),
            watch: true,
        };
        let refused = [
            Request::Delete(DeleteRequest {
                path: "/a".into(),
                version: -1,
            }),
            Request::SetData(SetDataRequest {
                path: "/a".into(),
                data: None,
                version: -1,
            }),
            Request::Multi(Vec::new()),
            Request::Sync(path()),
            Request::Check(CheckVersionRequest {
                path: "/a".into(),
                version: 1,
            }),
        ];
        for r in &refused {
            assert!(r.needs_quorum(), "{r:?}");
        }
        let served = [
            Request::GetData(watch()),
            Request::Exists(watch()),
            Request::GetChildren2(watch()),
            Request::MultiRead(Vec::new()),
            Request::GetEphemerals(path()),
            Request::Ping,
            Request::WhoAmI,
            Request::CloseSession,
        ];
        for r in &served {
            assert!(!r.needs_quorum(), "{r:?}");
        }
    }
}
