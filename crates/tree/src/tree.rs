//! The DataTree: znodes, sessions and their ephemerals, and the one place
//! where transactions change them. No I/O, no clocks.

use crate::acl;
use crate::node::{Node, NodeKind, Text};
use crate::nodes::{NodeId, Nodes, Siblings, ROOT};
use crate::path;
use crate::snapshot::FrozenTree;
use crate::txn::{Applied, Event, Txn, TxnOp, SYSTEM_SESSION};
use bytes::Bytes;
use paddock_proto::consts::{event, perms, CreateMode, MAX_TTL_MS};
use paddock_proto::{
    op, Acl, CheckVersionRequest, CreateRequest, ErrorCode, Id, MultiResult, Request, Response,
    Stat,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

type OpResult<T> = Result<T, ErrorCode>;

/// Paths that can never be deleted.
const CONFIG: &str = "/zookeeper/config";
const SPECIAL_PATHS: [&str; 4] = ["/", "/zookeeper", "/zookeeper/quota", CONFIG];

/// The `server.N=` lines of a `/zookeeper/config` text: all of it but a
/// last `version=` line.
pub fn config_servers(data: &[u8]) -> &[u8] {
    let start = data
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |newline| newline + 1);
    if data[start..].starts_with(b"version=") {
        &data[..start]
    } else {
        data
    }
}

/// Settings that change what apply accepts; every replica must share them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TreeConfig {
    /// ZooKeeper's `extendedTypesEnabled`: allows TTL nodes.
    pub extended_types: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEntry {
    pub timeout_ms: i32,
}

/// How to undo one mutation of a multi that later fails.
enum Undo {
    /// A node was created; the parent's pzxid before.
    Created(String, i64),
    /// A node was deleted; the node and the parent's pzxid before.
    Deleted(String, Node, i64),
    Data {
        path: String,
        text: Text,
        version: i32,
        mzxid: i64,
        mtime: i64,
    },
    Acl {
        path: String,
        acl: Arc<Vec<Acl>>,
        aversion: i32,
    },
}

/// Shares identical ACL lists between nodes.
#[derive(Default)]
struct AclCache {
    lists: HashMap<Vec<Acl>, Arc<Vec<Acl>>>,
    sweep_at: usize,
}

impl AclCache {
    fn intern(&mut self, acl: Vec<Acl>) -> Arc<Vec<Acl>> {
        if let Some(a) = self.lists.get(&acl) {
            return a.clone();
        }
        if self.lists.len() >= self.sweep_at {
            self.lists.retain(|_, a| Arc::strong_count(a) > 1);
            self.sweep_at = 2 * self.lists.len() + 64;
        }
        let a = Arc::new(acl.clone());
        self.lists.insert(acl, a.clone());
        a
    }
}

pub struct DataTree {
    nodes: Nodes,
    sessions: BTreeMap<i64, SessionEntry>,
    ephemerals: HashMap<i64, BTreeSet<String>>,
    /// Container and TTL nodes, for the reaper.
    reapable: BTreeSet<String>,
    last_zxid: i64,
    acls: AclCache,
    config: TreeConfig,
}

/// What a single op needs to know about the transaction it belongs to.
struct Ctx<'a> {
    zxid: i64,
    time_ms: i64,
    session_id: i64,
    ids: &'a [Id],
}

impl DataTree {
    /// A fresh tree with `/`, `/zookeeper`, `/zookeeper/quota` and
    /// `/zookeeper/config`, all with zero stats.
    pub fn new(config: TreeConfig) -> DataTree {
        let mut t = DataTree {
            nodes: Nodes::default(),
            sessions: BTreeMap::new(),
            ephemerals: HashMap::new(),
            reapable: BTreeSet::new(),
            last_zxid: 0,
            acls: AclCache::default(),
            config,
        };
        let open = t.acls.intern(acl::open_acl_unsafe());
        let read_only = t.acls.intern(vec![Acl {
            perms: perms::READ,
            id: acl::id(acl::WORLD, acl::ANYONE),
        }]);
        let system = |p: &'static str, acl: &Arc<Vec<Acl>>| {
            let node = Node::new(
                path::name(p),
                Some(&[]),
                acl.clone(),
                0,
                0,
                NodeKind::Persistent,
            );
            (p, node)
        };
        let mut config = system("/zookeeper/config", &read_only);
        config.1.aversion = -1;
        let nodes = [
            system("/", &open),
            system("/zookeeper", &open),
            system("/zookeeper/quota", &open),
            config,
        ];
        for (p, node) in nodes {
            // Each parent is placed before its children.
            let _ = t.restore_node(p, node);
        }
        t
    }

    /// A tree with no nodes, for rebuilding from a snapshot.
    pub(crate) fn empty(
        config: TreeConfig,
        last_zxid: i64,
        sessions: BTreeMap<i64, SessionEntry>,
    ) -> DataTree {
        DataTree {
            nodes: Nodes::default(),
            sessions,
            ephemerals: HashMap::new(),
            reapable: BTreeSet::new(),
            last_zxid,
            acls: AclCache::default(),
            config,
        }
    }

    pub(crate) fn intern_acl(&mut self, acl: &[Acl]) -> Arc<Vec<Acl>> {
        self.acls.intern(acl.to_vec())
    }

    /// Room for `n` more nodes, so a restore does not grow the table
    /// step by step.
    pub(crate) fn reserve_nodes(&mut self, n: usize) {
        self.nodes.reserve(n);
    }

    /// Puts back a node (read from a snapshot, or put back by a rollback)
    /// under its parent, which must be present; the root comes first.
    pub(crate) fn restore_node(&mut self, p: &str, node: Node) -> Result<(), String> {
        if p == "/" {
            if !self.nodes.is_empty() {
                return Err("/ appears twice".into());
            }
            self.nodes.insert_root(node);
            return Ok(());
        }
        let parent = path::parent(p)
            .and_then(|pp| self.nodes.find(pp))
            .ok_or_else(|| format!("{p} has no parent"))?;
        if self.nodes.child(parent, path::name(p)).is_some() {
            return Err(format!("{p} appears twice"));
        }
        self.insert_node(parent, p, node);
        Ok(())
    }

    /// Visits every node with its path, each parent before its children
    /// and siblings in name order: an order that depends only on the
    /// tree's content.
    pub fn walk<'a>(&'a self, visit: impl FnMut(&str, &'a Node)) {
        self.nodes.slots().walk_nodes(Siblings::ByName, visit);
    }

    /// The tree as it is now, to snapshot while this one goes on changing:
    /// it shares the nodes copy-on-write, so freezing costs a pointer per
    /// 4096 nodes, and a node changed later is copied with its chunk while
    /// the frozen tree lives.
    pub fn freeze(&self) -> FrozenTree {
        FrozenTree {
            slots: self.nodes.slots().clone(),
            sessions: self.sessions.clone(),
            last_zxid: self.last_zxid,
            len: self.nodes.len(),
        }
    }

    /// The names of a node's children, sorted; None if there is no node.
    pub fn children(&self, p: &str) -> Option<Vec<String>> {
        self.nodes.find(p).map(|id| self.child_names(id))
    }

    fn child_names(&self, id: NodeId) -> Vec<String> {
        let mut names: Vec<String> = self
            .nodes
            .children(id)
            .map(|c| self.nodes.name(c).to_owned())
            .collect();
        names.sort_unstable();
        names
    }

    pub fn config(&self) -> TreeConfig {
        self.config
    }

    pub fn last_zxid(&self) -> i64 {
        self.last_zxid
    }

    /// `/zookeeper/config` shows `servers` and this change's zxid as its
    /// version, as ZooKeeper's reconfig transaction leaves it: Stat
    /// version -1, mzxid and mtime of the change. The same servers, in the
    /// same order, already written so, change nothing. Answers as a
    /// reconfig does: the data and its Stat.
    fn set_config(
        &mut self,
        ctx: &Ctx,
        servers: &str,
        events: &mut Vec<Event>,
    ) -> OpResult<Response> {
        let id = self.nodes.find(CONFIG).ok_or(ErrorCode::NoNode)?;
        let node = self.nodes.get_mut(id).ok_or(ErrorCode::NoNode)?;
        let written = node.version == -1;
        if !written || config_servers(node.data().unwrap_or_default()) != servers.as_bytes() {
            let data = format!("{servers}version={:x}", ctx.zxid);
            node.set_data(Some(data.as_bytes()));
            node.version = -1;
            node.mzxid = ctx.zxid;
            node.mtime = ctx.time_ms;
            events.push(Event {
                event_type: event::NODE_DATA_CHANGED,
                path: CONFIG.to_owned(),
                acl: node.acl.clone(),
            });
        }
        Ok(Response::GetData {
            data: node.data().map(Bytes::copy_from_slice),
            stat: node.stat(),
        })
    }

    /// What `/zookeeper/config` holds (empty when standalone).
    pub fn config_data(&self) -> Bytes {
        self.node(CONFIG)
            .and_then(Node::data)
            .map(Bytes::copy_from_slice)
            .unwrap_or_default()
    }

    /// The `version=` of `/zookeeper/config` (hex), 0 without one.
    pub fn config_version(&self) -> u64 {
        let data = self.config_data();
        let servers = config_servers(&data).len();
        std::str::from_utf8(&data[servers..])
            .ok()
            .and_then(|line| line.strip_prefix("version="))
            .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
            .unwrap_or(0)
    }

    pub fn node(&self, path: &str) -> Option<&Node> {
        self.nodes.find(path).and_then(|id| self.nodes.get(id))
    }

    /// A digest of everything replicated: every node (path, data, ACL,
    /// stat), the sessions and the last zxid. Replicas that applied the
    /// same log agree on it.
    pub fn digest(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::hash::DefaultHasher::new();
        self.last_zxid.hash(&mut h);
        self.walk(|path, n| {
            path.hash(&mut h);
            n.data().hash(&mut h);
            (n.czxid, n.mzxid, n.ctime, n.mtime, n.pzxid, n.owner).hash(&mut h);
            (n.version, n.child_creates, n.aversion).hash(&mut h);
            for acl in n.acl.iter() {
                (acl.perms, &acl.id.scheme, &acl.id.id).hash(&mut h);
            }
        });
        for (id, s) in &self.sessions {
            (id, s.timeout_ms).hash(&mut h);
        }
        h.finish()
    }

    /// ZooKeeper's node count (srvr "Node count", zk_znode_count): the root is
    /// counted twice there, so this is the number of nodes plus one.
    pub fn node_count(&self) -> usize {
        self.nodes.len() + 1
    }

    pub fn sessions(&self) -> &BTreeMap<i64, SessionEntry> {
        &self.sessions
    }

    pub fn session_exists(&self, session_id: i64) -> bool {
        self.sessions.contains_key(&session_id)
    }

    /// The ephemeral paths a session owns.
    pub fn ephemerals_of(&self, session_id: i64) -> impl Iterator<Item = &String> {
        self.ephemerals.get(&session_id).into_iter().flatten()
    }

    pub fn ephemeral_count(&self) -> usize {
        self.ephemerals.values().map(BTreeSet::len).sum()
    }

    /// Sum of path lengths and data sizes (zk_approximate_data_size).
    /// Visits nodes in no order and builds no path, as mntr asks for it
    /// on a live tree.
    pub fn approximate_data_size(&self) -> usize {
        let mut size = 0;
        // (node, length of its path)
        let mut stack: Vec<(NodeId, usize)> = self
            .nodes
            .get(ROOT)
            .map(|_| (ROOT, 1))
            .into_iter()
            .collect();
        while let Some((id, len)) = stack.pop() {
            size += len
                + self
                    .nodes
                    .get(id)
                    .and_then(Node::data)
                    .map_or(0, |d| d.len());
            let prefix = if id == ROOT { 1 } else { len + 1 };
            stack.extend(
                self.nodes
                    .children(id)
                    .map(|c| (c, prefix + self.nodes.name(c).len())),
            );
        }
        size
    }

    /// Container and TTL nodes that are due for deletion at `now_ms`:
    /// containers that are empty and have had a child, TTL nodes that are
    /// empty and unmodified for longer than their TTL.
    pub fn reapable_at(&self, now_ms: i64) -> Vec<String> {
        self.reapable
            .iter()
            .filter(|p| {
                self.node(p).is_some_and(|n| {
                    n.num_children == 0
                        && match n.kind() {
                            NodeKind::Container => n.child_creates > 0,
                            NodeKind::Ttl { ttl_ms } => now_ms - n.mtime > ttl_ms,
                            _ => false,
                        }
                })
            })
            .cloned()
            .collect()
    }

    // ----- apply -----

    /// Applies one transaction: the zxid advances by one whatever the outcome.
    pub fn apply(&mut self, txn: &Txn) -> Applied {
        self.last_zxid += 1;
        let ctx = Ctx {
            zxid: self.last_zxid,
            time_ms: txn.time_ms,
            session_id: txn.session_id,
            ids: &txn.auth,
        };
        let mut events = Vec::new();
        let result = match &txn.op {
            TxnOp::CreateSession { timeout_ms } => {
                self.sessions.insert(
                    txn.session_id,
                    SessionEntry {
                        timeout_ms: *timeout_ms,
                    },
                );
                Ok(Response::Empty)
            }
            TxnOp::CloseSession => {
                self.close_session(&ctx, &mut events);
                Ok(Response::Empty)
            }
            TxnOp::SetConfig { servers } => self.set_config(&ctx, servers, &mut events),
            TxnOp::Write(req) => {
                if txn.session_id != SYSTEM_SESSION && !self.session_exists(txn.session_id) {
                    Err(ErrorCode::SessionExpired)
                } else if let Request::Multi(ops) = req {
                    Ok(Response::Multi(self.multi(&ctx, ops, &mut events)))
                } else {
                    let mut undo = Vec::new();
                    self.write_op(&ctx, req, &mut undo, &mut events)
                        .map(reply_body)
                }
            }
        };
        Applied {
            zxid: ctx.zxid,
            result,
            events,
        }
    }

    fn close_session(&mut self, ctx: &Ctx, events: &mut Vec<Event>) {
        self.sessions.remove(&ctx.session_id);
        let paths = self.ephemerals.remove(&ctx.session_id).unwrap_or_default();
        let mut undo = Vec::new();
        for p in paths {
            self.remove_node(ctx, &p, &mut undo, events);
        }
    }

    /// Applies a multi atomically: on the first failure every earlier op is
    /// undone and the results say rolled back (0), failed (code) and not
    /// attempted (RuntimeInconsistency).
    fn multi(&mut self, ctx: &Ctx, ops: &[Request], events: &mut Vec<Event>) -> Vec<MultiResult> {
        let mut undo = Vec::new();
        let mut op_events = Vec::new();
        let mut results = Vec::with_capacity(ops.len());
        for (i, req) in ops.iter().enumerate() {
            match self.write_op(ctx, req, &mut undo, &mut op_events) {
                Ok(r) => results.push(r),
                Err(code) => {
                    self.rollback(undo);
                    let mut failed = vec![MultiResult::Error { err: 0 }; i];
                    failed.push(MultiResult::Error { err: code.code() });
                    failed.resize(
                        ops.len(),
                        MultiResult::Error {
                            err: ErrorCode::RuntimeInconsistency.code(),
                        },
                    );
                    return failed;
                }
            }
        }
        events.append(&mut op_events);
        results
    }

    fn write_op(
        &mut self,
        ctx: &Ctx,
        req: &Request,
        undo: &mut Vec<Undo>,
        events: &mut Vec<Event>,
    ) -> OpResult<MultiResult> {
        match req {
            Request::Create { opcode, req } => self.create(ctx, *opcode, req, None, undo, events),
            Request::CreateTtl(r) => {
                let req = CreateRequest {
                    path: r.path.clone(),
                    data: r.data.clone(),
                    acl: r.acl.clone(),
                    flags: r.flags,
                };
                self.create(ctx, op::CREATE_TTL, &req, Some(r.ttl), undo, events)
            }
            Request::Delete(r) => {
                let parent = self.deletable_parent(&r.path)?;
                self.check_perm(ctx, parent, perms::DELETE)?;
                let node = self.get(&r.path)?;
                check_version(node.version, r.version)?;
                if node.num_children != 0 {
                    return Err(ErrorCode::NotEmpty);
                }
                self.remove_node(ctx, &r.path, undo, events);
                Ok(MultiResult::Delete)
            }
            Request::DeleteContainer(r) => {
                let p = String::from_utf8_lossy(r.path.as_deref().unwrap_or_default()).into_owned();
                let parent = self.deletable_parent(&p)?;
                let node = self.get(&p)?;
                if node.num_children != 0 {
                    return Err(ErrorCode::NotEmpty);
                }
                if matches!(node.kind(), NodeKind::Ephemeral { .. }) {
                    return Err(ErrorCode::BadVersion);
                }
                self.get(parent)?;
                self.remove_node(ctx, &p, undo, events);
                Ok(MultiResult::Delete)
            }
            Request::SetData(r) => {
                if !path::is_valid(&r.path) {
                    return Err(ErrorCode::BadArguments);
                }
                let (id, node) = self.check_perm(ctx, &r.path, perms::WRITE)?;
                check_version(node.version, r.version)?;
                let node = self.nodes.get_mut(id).ok_or(ErrorCode::NoNode)?;
                let text = node.set_data(r.data.as_deref());
                undo.push(Undo::Data {
                    path: r.path.clone(),
                    text,
                    version: node.version,
                    mzxid: node.mzxid,
                    mtime: node.mtime,
                });
                node.version = node.version.wrapping_add(1);
                node.mzxid = ctx.zxid;
                node.mtime = ctx.time_ms;
                let stat = node.stat();
                events.push(Event {
                    event_type: event::NODE_DATA_CHANGED,
                    path: r.path.clone(),
                    acl: node.acl.clone(),
                });
                Ok(MultiResult::SetData { stat })
            }
            Request::SetAcl(r) => {
                if !path::is_valid(&r.path) {
                    return Err(ErrorCode::BadArguments);
                }
                let new_acl = acl::fixup(&r.acl, ctx.ids).ok_or(ErrorCode::InvalidAcl)?;
                let (id, node) = self.check_perm(ctx, &r.path, perms::ADMIN)?;
                check_version(node.aversion, r.version)?;
                let new_acl = self.acls.intern(new_acl);
                let node = self.nodes.get_mut(id).ok_or(ErrorCode::NoNode)?;
                undo.push(Undo::Acl {
                    path: r.path.clone(),
                    acl: std::mem::replace(&mut node.acl, new_acl),
                    aversion: node.aversion,
                });
                node.aversion = node.aversion.wrapping_add(1);
                Ok(MultiResult::SetData { stat: node.stat() })
            }
            Request::Check(CheckVersionRequest { path: p, version }) => {
                if !path::is_valid(p) {
                    return Err(ErrorCode::BadArguments);
                }
                let (_, node) = self.check_perm(ctx, p, perms::READ)?;
                check_version(node.version, *version)?;
                Ok(MultiResult::Check)
            }
            _ => Err(ErrorCode::BadArguments),
        }
    }

    /// create, create2, createContainer and createTTL, with ZooKeeper's order
    /// of checks (PrepRequestProcessor).
    fn create(
        &mut self,
        ctx: &Ctx,
        opcode: i32,
        req: &CreateRequest,
        ttl: Option<i64>,
        undo: &mut Vec<Undo>,
        events: &mut Vec<Event>,
    ) -> OpResult<MultiResult> {
        let mode = CreateMode::from_flags(req.flags).ok_or(ErrorCode::BadArguments)?;
        if mode.is_ttl() && !self.config.extended_types {
            return Err(ErrorCode::Unimplemented);
        }
        let ttl = ttl.unwrap_or(-1);
        let ttl_ok = if mode.is_ttl() {
            ttl > 0 && ttl <= MAX_TTL_MS
        } else {
            ttl < 0
        };
        if !ttl_ok {
            return Err(ErrorCode::BadArguments);
        }
        if req.path.contains('\0') {
            return Err(ErrorCode::BadArguments);
        }
        let parent_path = path::parent(&req.path).ok_or(ErrorCode::BadArguments)?;
        let new_acl = acl::fixup(&req.acl, ctx.ids).ok_or(ErrorCode::InvalidAcl)?;
        let parent_id = self.find(parent_path)?;
        let parent = self.nodes.get(parent_id).ok_or(ErrorCode::NoNode)?;
        permitted(ctx, parent, perms::CREATE)?;
        let full = if mode.is_sequential() {
            format!("{}{:010}", req.path, parent.child_creates)
        } else {
            req.path.clone()
        };
        if !path::is_valid(&full) {
            return Err(ErrorCode::BadArguments);
        }
        // Every valid path but the root's ends in a name.
        if full == "/" || self.nodes.child(parent_id, path::name(&full)).is_some() {
            return Err(ErrorCode::NodeExists);
        }
        if matches!(parent.kind(), NodeKind::Ephemeral { .. }) {
            return Err(ErrorCode::NoChildrenForEphemerals);
        }
        // The opcode, not the flags, makes a container: create with flags 4
        // gives a plain persistent node in ZooKeeper 3.8 (observed).
        let kind = if opcode == op::CREATE_CONTAINER {
            NodeKind::Container
        } else if mode.is_ttl() {
            NodeKind::Ttl { ttl_ms: ttl }
        } else if mode.is_ephemeral() {
            NodeKind::Ephemeral {
                session_id: ctx.session_id,
            }
        } else {
            NodeKind::Persistent
        };
        let acl = self.acls.intern(new_acl);
        let node = Node::new(
            path::name(&full),
            req.data.as_deref(),
            acl.clone(),
            ctx.zxid,
            ctx.time_ms,
            kind,
        );
        let stat = node.stat();
        let parent_path = parent_path.to_owned();
        self.insert_node(parent_id, &full, node);
        let parent = self.nodes.get_mut(parent_id).ok_or(ErrorCode::NoNode)?;
        parent.child_creates = parent.child_creates.wrapping_add(1);
        undo.push(Undo::Created(full.clone(), parent.pzxid));
        parent.pzxid = ctx.zxid;
        let parent_acl = parent.acl.clone();
        events.push(Event {
            event_type: event::NODE_CREATED,
            path: full.clone(),
            acl,
        });
        events.push(Event {
            event_type: event::NODE_CHILDREN_CHANGED,
            path: parent_path,
            acl: parent_acl,
        });
        Ok(if opcode == op::CREATE {
            MultiResult::Create { path: full }
        } else {
            MultiResult::Create2 { path: full, stat }
        })
    }

    /// The parent of a path that delete may remove: BadArguments for special
    /// paths, NUL or a missing '/', NoNode when the parent does not exist.
    fn deletable_parent<'p>(&self, p: &'p str) -> OpResult<&'p str> {
        if p.contains('\0') || SPECIAL_PATHS.contains(&p) {
            return Err(ErrorCode::BadArguments);
        }
        let parent = path::parent(p).ok_or(ErrorCode::BadArguments)?;
        self.get(parent)?;
        Ok(parent)
    }

    /// Undoes a failed multi's mutations, newest first. Each one's node
    /// (or parent) is there, since everything done after it was undone
    /// before it; if one is not, the tree is not what the multi left, and
    /// applying on would make this replica differ from the others.
    fn rollback(&mut self, undo: Vec<Undo>) {
        let missing = |p: &str| -> ! { panic!("rolling back a multi: {p} is not in the tree") };
        for u in undo.into_iter().rev() {
            match u {
                Undo::Created(p, pzxid) => {
                    if self.take_node(&p).is_none() {
                        missing(&p);
                    }
                    let parent_path = path::parent(&p).unwrap_or("/");
                    let Ok(parent) = self.get_mut(parent_path) else {
                        missing(parent_path)
                    };
                    parent.child_creates = parent.child_creates.wrapping_sub(1);
                    parent.pzxid = pzxid;
                }
                Undo::Deleted(p, node, pzxid) => {
                    let parent_path = path::parent(&p).unwrap_or("/");
                    let Ok(parent) = self.get_mut(parent_path) else {
                        missing(parent_path)
                    };
                    parent.pzxid = pzxid;
                    if let Err(e) = self.restore_node(&p, node) {
                        panic!("rolling back a multi: {e}");
                    }
                }
                Undo::Data {
                    path,
                    text,
                    version,
                    mzxid,
                    mtime,
                } => {
                    let Ok(n) = self.get_mut(&path) else {
                        missing(&path)
                    };
                    n.restore_text(text);
                    n.version = version;
                    n.mzxid = mzxid;
                    n.mtime = mtime;
                }
                Undo::Acl {
                    path,
                    acl,
                    aversion,
                } => {
                    let Ok(n) = self.get_mut(&path) else {
                        missing(&path)
                    };
                    n.acl = acl;
                    n.aversion = aversion;
                }
            }
        }
    }

    /// Removes a leaf node, updating the parent (pzxid only: ZooKeeper's
    /// stored cversion counts creates) and firing NodeDeleted and the
    /// parent's NodeChildrenChanged.
    fn remove_node(&mut self, ctx: &Ctx, p: &str, undo: &mut Vec<Undo>, events: &mut Vec<Event>) {
        let Some(node) = self.take_node(p) else {
            return;
        };
        let parent_path = path::parent(p).unwrap_or("/").to_owned();
        let mut old_pzxid = 0;
        let mut parent_acl = Arc::default();
        if let Ok(parent) = self.get_mut(&parent_path) {
            old_pzxid = std::mem::replace(&mut parent.pzxid, ctx.zxid);
            parent_acl = parent.acl.clone();
        }
        events.push(Event {
            event_type: event::NODE_DELETED,
            path: p.to_owned(),
            acl: node.acl.clone(),
        });
        events.push(Event {
            event_type: event::NODE_CHILDREN_CHANGED,
            path: parent_path,
            acl: parent_acl,
        });
        undo.push(Undo::Deleted(p.to_owned(), node, old_pzxid));
    }

    /// Places a node at path `p` under `parent` and indexes it
    /// (ephemerals, reapable).
    fn insert_node(&mut self, parent: NodeId, p: &str, node: Node) {
        match node.kind() {
            NodeKind::Ephemeral { session_id } => {
                self.ephemerals
                    .entry(session_id)
                    .or_default()
                    .insert(p.to_owned());
            }
            NodeKind::Container | NodeKind::Ttl { .. } => {
                self.reapable.insert(p.to_owned());
            }
            NodeKind::Persistent => {}
        }
        self.nodes.insert(parent, path::name(p), node);
    }

    /// Takes out a leaf node, unlinking it from its parent and indexes.
    fn take_node(&mut self, p: &str) -> Option<Node> {
        let id = self.nodes.find(p)?;
        let node = self.nodes.remove(id)?;
        match node.kind() {
            NodeKind::Ephemeral { session_id } => {
                if let Some(set) = self.ephemerals.get_mut(&session_id) {
                    set.remove(p);
                    if set.is_empty() {
                        self.ephemerals.remove(&session_id);
                    }
                }
            }
            NodeKind::Container | NodeKind::Ttl { .. } => {
                self.reapable.remove(p);
            }
            NodeKind::Persistent => {}
        }
        Some(node)
    }

    /// A node by path. ZooKeeper also files the root under "", so reads of
    /// "" see the root.
    fn find(&self, p: &str) -> OpResult<NodeId> {
        let p = if p.is_empty() { "/" } else { p };
        self.nodes.find(p).ok_or(ErrorCode::NoNode)
    }

    fn get(&self, p: &str) -> OpResult<&Node> {
        self.nodes.get(self.find(p)?).ok_or(ErrorCode::NoNode)
    }

    fn get_mut(&mut self, p: &str) -> OpResult<&mut Node> {
        let id = self.find(p)?;
        self.nodes.get_mut(id).ok_or(ErrorCode::NoNode)
    }

    /// The node at `p`, once `ctx` may do `wanted` to it.
    fn check_perm(&self, ctx: &Ctx, p: &str, wanted: i32) -> OpResult<(NodeId, &Node)> {
        let id = self.find(p)?;
        let node = self.nodes.get(id).ok_or(ErrorCode::NoNode)?;
        permitted(ctx, node, wanted)?;
        Ok((id, node))
    }

    // ----- reads -----

    /// Serves a read request for `session_id` with identities `ids`.
    pub fn read(&self, session_id: i64, req: &Request, ids: &[Id]) -> OpResult<Response> {
        match req {
            // ZooKeeper 3.8.0 checks no ACL on exists (observed).
            Request::Exists(r) => {
                if r.path.contains('\0') {
                    return Err(ErrorCode::BadArguments);
                }
                Ok(Response::Stat(self.get(&r.path)?.stat()))
            }
            Request::GetData(r) => {
                let id = self.readable(&r.path, ids)?;
                let n = self.nodes.get(id).ok_or(ErrorCode::NoNode)?;
                Ok(Response::GetData {
                    data: n.data().map(Bytes::copy_from_slice),
                    stat: n.stat(),
                })
            }
            Request::GetChildren(r) => {
                let id = self.readable(&r.path, ids)?;
                Ok(Response::GetChildren {
                    children: self.child_names(id),
                })
            }
            Request::GetChildren2(r) => {
                let id = self.readable(&r.path, ids)?;
                Ok(Response::GetChildren2 {
                    children: self.child_names(id),
                    stat: self.nodes.get(id).ok_or(ErrorCode::NoNode)?.stat(),
                })
            }
            Request::GetAcl(r) => {
                let n = self.get(&r.path)?;
                let admin = acl::allowed(&n.acl, perms::ADMIN, ids);
                if !admin && !acl::allowed(&n.acl, perms::READ, ids) {
                    return Err(ErrorCode::NoAuth);
                }
                let shown = if admin {
                    n.acl.as_ref().clone()
                } else {
                    acl::masked(&n.acl)
                };
                Ok(Response::GetAcl {
                    acl: shown,
                    stat: n.stat(),
                })
            }
            Request::GetAllChildrenNumber(r) => {
                self.readable(&r.path, ids)?;
                // ZooKeeper counts map keys under `path + "/"`; for "" that
                // includes the root itself.
                let total = match r.path.as_str() {
                    "" => self.descendants("/") + 1,
                    p => self.descendants(p),
                };
                Ok(Response::GetAllChildrenNumber {
                    total: total as i32,
                })
            }
            Request::GetEphemerals(r) => {
                let prefix = r.path.trim();
                let all = prefix.is_empty() || prefix == "/";
                Ok(Response::GetEphemerals {
                    paths: self
                        .ephemerals_of(session_id)
                        .filter(|p| all || p.starts_with(r.path.as_str()))
                        .cloned()
                        .collect(),
                })
            }
            Request::MultiRead(ops) => Ok(Response::Multi(
                ops.iter()
                    .map(|o| match self.read(session_id, o, ids) {
                        Ok(Response::GetData { data, stat }) => MultiResult::GetData { data, stat },
                        Ok(Response::GetChildren { children }) => {
                            MultiResult::GetChildren { children }
                        }
                        Ok(_) => MultiResult::Error {
                            err: ErrorCode::BadArguments.code(),
                        },
                        Err(e) => MultiResult::Error { err: e.code() },
                    })
                    .collect(),
            )),
            Request::Sync(r) => Ok(Response::Sync {
                path: r.path.clone(),
            }),
            _ => Err(ErrorCode::BadArguments),
        }
    }

    /// The node at `p` if `ids` may read it.
    fn readable(&self, p: &str, ids: &[Id]) -> OpResult<NodeId> {
        let id = self.find(p)?;
        let n = self.nodes.get(id).ok_or(ErrorCode::NoNode)?;
        if acl::allowed(&n.acl, perms::READ, ids) {
            Ok(id)
        } else {
            Err(ErrorCode::NoAuth)
        }
    }

    fn descendants(&self, p: &str) -> usize {
        let mut count = 0;
        let mut stack: Vec<NodeId> = self.nodes.find(p).into_iter().collect();
        while let Some(id) = stack.pop() {
            let before = stack.len();
            stack.extend(self.nodes.children(id));
            count += stack.len() - before;
        }
        count
    }

    /// A node's Stat, if it exists (used by watch re-arming and tools).
    pub fn stat(&self, p: &str) -> Option<Stat> {
        self.node(p).map(Node::stat)
    }
}

/// NoAuth unless the caller's identities grant `wanted` on `node`.
fn permitted(ctx: &Ctx, node: &Node, wanted: i32) -> OpResult<()> {
    if acl::allowed(&node.acl, wanted, ctx.ids) {
        Ok(())
    } else {
        Err(ErrorCode::NoAuth)
    }
}

fn check_version(current: i32, expected: i32) -> OpResult<()> {
    if expected == -1 || expected == current {
        Ok(())
    } else {
        Err(ErrorCode::BadVersion)
    }
}

/// The reply body of a single (non-multi) write.
fn reply_body(r: MultiResult) -> Response {
    match r {
        MultiResult::Create { path } => Response::Create { path },
        MultiResult::Create2 { path, stat } => Response::Create2 { path, stat },
        MultiResult::SetData { stat } => Response::Stat(stat),
        MultiResult::GetData { data, stat } => Response::GetData { data, stat },
        MultiResult::GetChildren { children } => Response::GetChildren { children },
        MultiResult::Delete | MultiResult::Check | MultiResult::Error { .. } => Response::Empty,
    }
}
