//! The snapshot encoding of a whole tree: every node and session, so a
//! tree can be rebuilt without replaying the log from the start. Each
//! parent comes before its children, siblings oldest first (as they are
//! linked, not sorted), so a decoded tree encodes to the same bytes again.
//! A tree is encoded from a [`FrozenTree`], which a live tree hands out
//! without waiting for the encoding.

use crate::node::{Node, NodeKind};
use crate::nodes::{Siblings, Slots};
use crate::path;
use crate::tree::{DataTree, SessionEntry, TreeConfig};
use bytes::{BufMut, BytesMut};
use paddock_proto::{jute, Acl, DecodeError, Jute, Reader};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The stored Stat fields of a node: six i64 and three i32.
const STAT_BYTES: usize = 6 * 8 + 3 * 4;
/// The fewest bytes one node takes in a snapshot: path and data lengths,
/// an empty ACL vector, and the Stat fields.
const MIN_NODE_BYTES: usize = 4 + 4 + 4 + STAT_BYTES;

/// Why snapshot bytes do not make a tree.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A node without its parent before it, or a path twice.
    #[error("{0}")]
    Shape(String),
}

impl Node {
    /// Reads the stored Stat fields that follow a node's data and ACL, in
    /// the order ZooKeeper's StatPersisted has them (Paddock's snapshots use
    /// the same order): `i64 czxid, i64 mzxid, i64 ctime, i64 mtime,
    /// i32 version, i32 cversion (child creates), i32 aversion,
    /// i64 ephemeralOwner, i64 pzxid`.
    pub fn read_persisted(
        r: &mut Reader,
        name: &str,
        data: Option<&[u8]>,
        acl: Arc<Vec<Acl>>,
    ) -> Result<Node, DecodeError> {
        let czxid = r.read_i64()?;
        let mut node = Node::new(name, data, acl, czxid, 0, NodeKind::Persistent);
        node.mzxid = r.read_i64()?;
        node.ctime = r.read_i64()?;
        node.mtime = r.read_i64()?;
        node.version = r.read_i32()?;
        node.child_creates = r.read_i32()?;
        node.aversion = r.read_i32()?;
        node.owner = r.read_i64()?;
        node.pzxid = r.read_i64()?;
        Ok(node)
    }
}

/// A tree frozen at one zxid by [`DataTree::freeze`]: what a snapshot
/// holds. It can be sent to another thread and encoded there; drop it
/// once encoded, as the live tree copies what it changes while this
/// shares it.
pub struct FrozenTree {
    pub(crate) slots: Slots,
    pub(crate) sessions: BTreeMap<i64, SessionEntry>,
    pub(crate) last_zxid: i64,
    /// Nodes in the slots.
    pub(crate) len: usize,
}

impl DataTree {
    /// The snapshot encoding of the tree as it is (see
    /// [`FrozenTree::encode_snapshot`]).
    pub fn encode_snapshot(&self, out: &mut BytesMut) {
        self.freeze().encode_snapshot(out);
    }
}

impl FrozenTree {
    pub fn last_zxid(&self) -> i64 {
        self.last_zxid
    }

    /// `i64 last_zxid`, `i32 n` × `{i64 session, i32 timeout_ms}`, then
    /// `i32 n` × node: `ustring path, buffer data, vector<ACL>, i64 czxid,
    /// i64 mzxid, i64 ctime, i64 mtime, i32 version, i32 child_creates,
    /// i32 aversion, i64 owner, i64 pzxid`, each node before its children,
    /// siblings oldest first (older snapshots have them by name, which
    /// reads back the same).
    pub fn encode_snapshot(&self, out: &mut BytesMut) {
        self.encode_snapshot_in_parts(out, usize::MAX, |_| {});
    }

    /// How many bytes `encode_snapshot` writes, counted without writing
    /// them.
    pub fn snapshot_len(&self) -> usize {
        let mut len = 8 + 4 + 12 * self.sessions.len() + 4;
        self.slots.walk_nodes(Siblings::AsLinked, |p, n| {
            let acl: usize = n
                .acl
                .iter()
                .map(|a| 4 + 4 + a.id.scheme.len() + 4 + a.id.id.len())
                .sum();
            len += 4 + p.len() + 4 + n.data().map_or(0, <[u8]>::len) + 4 + acl + STAT_BYTES;
        });
        len
    }

    /// The same bytes, handed to `emit` whenever `out` holds at least
    /// `part` of them and at the end; `emit` takes what it wants out
    /// of `out` (clearing it), so a large tree is written or compressed as
    /// it is encoded instead of being held whole.
    pub fn encode_snapshot_in_parts(
        &self,
        out: &mut BytesMut,
        part: usize,
        mut emit: impl FnMut(&mut BytesMut),
    ) {
        out.put_i64(self.last_zxid);
        out.put_i32(self.sessions.len() as i32);
        for (id, s) in &self.sessions {
            out.put_i64(*id);
            out.put_i32(s.timeout_ms);
        }
        out.put_i32(self.len as i32);
        self.slots.walk_nodes(Siblings::AsLinked, |p, n| {
            jute::write_string(out, p);
            jute::write_buffer(out, n.data());
            n.acl.as_ref().write(out);
            for v in [n.czxid, n.mzxid, n.ctime, n.mtime] {
                out.put_i64(v);
            }
            for v in [n.version, n.child_creates, n.aversion] {
                out.put_i32(v);
            }
            out.put_i64(n.owner);
            out.put_i64(n.pzxid);
            if out.len() >= part {
                emit(out);
            }
        });
        if !out.is_empty() {
            emit(out);
        }
    }
}

impl DataTree {
    /// Rebuilds a tree from `encode_snapshot` bytes.
    pub fn decode_snapshot(r: &mut Reader, config: TreeConfig) -> Result<DataTree, SnapshotError> {
        let last_zxid = r.read_i64()?;
        let n = r.read_i32()?;
        let mut sessions = BTreeMap::new();
        for _ in 0..n.max(0) {
            let id = r.read_i64()?;
            sessions.insert(
                id,
                SessionEntry {
                    timeout_ms: r.read_i32()?,
                },
            );
        }
        let mut tree = DataTree::empty(config, last_zxid, sessions);
        let n = r.read_i32()?;
        // A node takes at least MIN_NODE_BYTES, so a damaged count cannot
        // make us reserve more than the input could hold.
        tree.reserve_nodes((n.max(0) as usize).min(r.remaining() / MIN_NODE_BYTES));
        for _ in 0..n.max(0) {
            let p = r.read_string()?;
            let data = r.read_buffer()?;
            let acl: Vec<Acl> = r.read_vec()?;
            let acl = tree.intern_acl(&acl);
            let node = Node::read_persisted(r, path::name(&p), data.as_deref(), acl)?;
            tree.restore_node(&p, node).map_err(SnapshotError::Shape)?;
        }
        r.finish()?;
        Ok(tree)
    }

    /// A tree made of the given nodes, for importing another system's data.
    /// Every node but `/` needs its parent among them, earlier in the
    /// iteration (sorted order has parents first).
    pub fn from_parts(
        config: TreeConfig,
        last_zxid: i64,
        sessions: BTreeMap<i64, SessionEntry>,
        nodes: impl IntoIterator<Item = (String, Node)>,
    ) -> Result<DataTree, String> {
        let mut tree = DataTree::empty(config, last_zxid, sessions);
        for (p, mut node) in nodes {
            node.acl = tree.intern_acl(&node.acl);
            node.num_children = 0;
            tree.restore_node(&p, node)?;
        }
        if tree.node("/").is_none() {
            return Err("there is no root node".into());
        }
        Ok(tree)
    }
}
