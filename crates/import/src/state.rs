//! A ZooKeeper tree being rebuilt, and how each logged transaction changes
//! it: ZooKeeper's own rules for applying a txn that was already validated
//! (results such as sequential names and parent cversions are in the txn).

use crate::log::LogRecord;
use bytes::Bytes;
use paddock_proto::{op, Acl, DecodeError, Reader};
use paddock_tree::path::parent;
use paddock_tree::{DataTree, Node, NodeKind, SessionEntry, TreeConfig};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Nodes by path (root is "/"), sessions with their timeouts, and the zxid
/// of the last transaction applied.
#[derive(Debug, Clone, Default)]
pub struct ZkState {
    pub nodes: BTreeMap<String, Node>,
    pub sessions: BTreeMap<i64, i32>,
    pub last_zxid: i64,
}

/// The header fields every sub-operation of a record shares.
struct Ctx {
    session_id: i64,
    zxid: i64,
    time_ms: i64,
}

impl ZkState {
    pub fn new(last_zxid: i64) -> ZkState {
        ZkState {
            last_zxid,
            ..ZkState::default()
        }
    }

    /// Applies one logged transaction. A create of a node that exists, or a
    /// change to one that does not, is skipped as ZooKeeper skips it (the
    /// snapshot is fuzzy: it may already hold some of the log's effects).
    pub fn apply(&mut self, record: &LogRecord) -> Result<(), String> {
        let ctx = Ctx {
            session_id: record.session_id,
            zxid: record.zxid,
            time_ms: record.time_ms,
        };
        let mut r = Reader::new(record.body.clone());
        self.apply_op(&ctx, record.txn_type, &mut r)
            .map_err(|e| format!("zxid {:#x}: type {}: {e}", record.zxid, record.txn_type))?;
        self.last_zxid = record.zxid;
        Ok(())
    }

    fn apply_op(&mut self, ctx: &Ctx, txn_type: i32, r: &mut Reader) -> Result<(), String> {
        let bad = |e: DecodeError| e.to_string();
        match txn_type {
            op::CREATE | op::CREATE2 => {
                let (path, data, acl) = create_fields(r).map_err(bad)?;
                let ephemeral = r.read_bool().map_err(bad)?;
                let parent_cversion = r.read_i32().map_err(bad)?;
                let kind = if ephemeral {
                    NodeKind::Ephemeral {
                        session_id: ctx.session_id,
                    }
                } else {
                    NodeKind::Persistent
                };
                self.create(ctx, path, data, acl, kind, parent_cversion);
            }
            op::CREATE_CONTAINER => {
                let (path, data, acl) = create_fields(r).map_err(bad)?;
                let parent_cversion = r.read_i32().map_err(bad)?;
                self.create(ctx, path, data, acl, NodeKind::Container, parent_cversion);
            }
            op::CREATE_TTL => {
                let (path, data, acl) = create_fields(r).map_err(bad)?;
                let parent_cversion = r.read_i32().map_err(bad)?;
                let ttl_ms = r.read_i64().map_err(bad)?;
                self.create(
                    ctx,
                    path,
                    data,
                    acl,
                    NodeKind::Ttl { ttl_ms },
                    parent_cversion,
                );
            }
            op::DELETE | op::DELETE_CONTAINER => {
                let path = r.read_string().map_err(bad)?;
                self.delete(ctx, &path);
            }
            op::SET_DATA | op::RECONFIG => {
                let path = r.read_string().map_err(bad)?;
                let data = r.read_buffer().map_err(bad)?;
                let version = r.read_i32().map_err(bad)?;
                if let Some(node) = self.nodes.get_mut(&path) {
                    node.set_data(data.as_deref());
                    node.version = version;
                    node.mzxid = ctx.zxid;
                    node.mtime = ctx.time_ms;
                }
            }
            op::SET_ACL => {
                let path = r.read_string().map_err(bad)?;
                let acl: Vec<Acl> = r.read_vec().map_err(bad)?;
                let version = r.read_i32().map_err(bad)?;
                if let Some(node) = self.nodes.get_mut(&path) {
                    node.acl = Arc::new(acl);
                    node.aversion = version;
                }
            }
            op::CREATE_SESSION => {
                let timeout = r.read_i32().map_err(bad)?;
                self.sessions.insert(ctx.session_id, timeout);
            }
            op::CLOSE_SESSION => {
                self.sessions.remove(&ctx.session_id);
                let owned: Vec<String> = self
                    .nodes
                    .iter()
                    .filter(|(_, n)| n.owner == ctx.session_id)
                    .map(|(p, _)| p.clone())
                    .collect();
                for path in owned {
                    self.delete(ctx, &path);
                }
            }
            op::MULTI => {
                let n = r.read_i32().map_err(bad)?;
                if n < 0 || n as usize > r.remaining() / 8 {
                    return Err(format!("multi of {n} operations"));
                }
                for _ in 0..n {
                    let sub_type = r.read_i32().map_err(bad)?;
                    let body = r.read_buffer().map_err(bad)?.unwrap_or_default();
                    self.apply_op(ctx, sub_type, &mut Reader::new(body))?;
                }
            }
            op::ERROR | op::CHECK => {}
            other => return Err(format!("unknown transaction type {other}")),
        }
        Ok(())
    }

    fn create(
        &mut self,
        ctx: &Ctx,
        path: String,
        data: Option<Bytes>,
        acl: Vec<Acl>,
        kind: NodeKind,
        parent_cversion: i32,
    ) {
        if self.nodes.contains_key(&path) {
            return;
        }
        let Some(up) = parent(&path).and_then(|p| self.nodes.get_mut(p)) else {
            return;
        };
        let cversion = if parent_cversion == -1 {
            up.child_creates + 1
        } else {
            parent_cversion
        };
        if cversion > up.child_creates {
            up.child_creates = cversion;
            up.pzxid = ctx.zxid;
        }
        let node = Node::new(
            paddock_tree::path::name(&path),
            data.as_deref(),
            Arc::new(acl),
            ctx.zxid,
            ctx.time_ms,
            kind,
        );
        self.nodes.insert(path, node);
    }

    fn delete(&mut self, ctx: &Ctx, path: &str) {
        if self.nodes.remove(path).is_none() {
            return;
        }
        if let Some(up) = parent(path).and_then(|p| self.nodes.get_mut(p)) {
            up.pzxid = up.pzxid.max(ctx.zxid);
        }
    }

    /// The Paddock tree holding this state.
    pub fn into_tree(self, config: TreeConfig) -> Result<DataTree, String> {
        let sessions = self
            .sessions
            .into_iter()
            .map(|(id, timeout_ms)| (id, SessionEntry { timeout_ms }))
            .collect();
        DataTree::from_parts(config, self.last_zxid, sessions, self.nodes)
    }
}

fn create_fields(r: &mut Reader) -> Result<(String, Option<Bytes>, Vec<Acl>), DecodeError> {
    Ok((r.read_string()?, r.read_buffer()?, r.read_vec()?))
}
