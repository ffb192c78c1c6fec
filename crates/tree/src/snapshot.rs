//! The snapshot encoding of a whole tree: every node and session, so a
//! tree can be rebuilt without replaying the log from the start. The
//! encoding is canonical (sorted), so equal trees encode to equal bytes.

use crate::node::{self, Node};
use crate::tree::{DataTree, SessionEntry, TreeConfig};
use bytes::{BufMut, Bytes, BytesMut};
use paddock_proto::{Acl, DecodeError, Jute, Reader};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The fewest bytes one node takes in a snapshot: path and data lengths,
/// an empty ACL vector, and the Stat fields.
const MIN_NODE_BYTES: usize = 4 + 4 + 4 + 6 * 8 + 3 * 4;

impl Node {
    /// Reads the stored Stat fields that follow a node's data and ACL, in
    /// the order ZooKeeper's StatPersisted has them (Paddock's snapshots use
    /// the same order): `i64 czxid, i64 mzxid, i64 ctime, i64 mtime,
    /// i32 version, i32 cversion (child creates), i32 aversion,
    /// i64 ephemeralOwner, i64 pzxid`.
    pub fn read_persisted(
        r: &mut Reader,
        data: Option<Bytes>,
        acl: Arc<Vec<Acl>>,
    ) -> Result<Node, DecodeError> {
        Ok(Node {
            data: node::owned(&data),
            acl,
            czxid: r.read_i64()?,
            mzxid: r.read_i64()?,
            ctime: r.read_i64()?,
            mtime: r.read_i64()?,
            version: r.read_i32()?,
            child_creates: r.read_i32()?,
            aversion: r.read_i32()?,
            owner: r.read_i64()?,
            pzxid: r.read_i64()?,
            children: Default::default(),
        })
    }
}

impl DataTree {
    /// `i64 last_zxid`, `i32 n` × `{i64 session, i32 timeout_ms}`, then
    /// `i32 n` × node: `ustring path, buffer data, vector<ACL>, i64 czxid,
    /// i64 mzxid, i64 ctime, i64 mtime, i32 version, i32 child_creates,
    /// i32 aversion, i64 owner, i64 pzxid`, nodes sorted by path.
    pub fn encode_snapshot(&self, out: &mut BytesMut) {
        out.put_i64(self.last_zxid());
        out.put_i32(self.sessions().len() as i32);
        for (id, s) in self.sessions() {
            out.put_i64(*id);
            out.put_i32(s.timeout_ms);
        }
        let mut paths: Vec<&String> = self.paths().collect();
        paths.sort();
        out.put_i32(paths.len() as i32);
        for p in paths {
            let Some(n) = self.node(p) else { continue };
            p.write(out);
            n.data.write(out);
            n.acl.as_ref().write(out);
            for v in [n.czxid, n.mzxid, n.ctime, n.mtime] {
                out.put_i64(v);
            }
            for v in [n.version, n.child_creates, n.aversion] {
                out.put_i32(v);
            }
            out.put_i64(n.owner);
            out.put_i64(n.pzxid);
        }
    }

    /// Rebuilds a tree from `encode_snapshot` bytes.
    pub fn decode_snapshot(r: &mut Reader, config: TreeConfig) -> Result<DataTree, DecodeError> {
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
            let node = Node::read_persisted(r, data, tree.intern_acl(&acl))?;
            tree.restore_node(&p, node);
        }
        r.finish()?;
        Ok(tree)
    }

    /// A tree made of the given nodes (their `children` are ignored and
    /// rebuilt from the paths), for importing another system's data. Every
    /// node but `/` needs its parent among them.
    pub fn from_parts(
        config: TreeConfig,
        last_zxid: i64,
        sessions: BTreeMap<i64, SessionEntry>,
        nodes: impl IntoIterator<Item = (String, Node)>,
    ) -> Result<DataTree, String> {
        let mut tree = DataTree::empty(config, last_zxid, sessions);
        for (p, mut node) in nodes {
            node.acl = tree.intern_acl(&node.acl);
            node.children.clear();
            tree.restore_node(&p, node);
        }
        if tree.node("/").is_none() {
            return Err("there is no root node".into());
        }
        if let Some(orphan) = tree
            .paths()
            .find(|p| crate::path::parent(p).is_some_and(|parent| tree.node(parent).is_none()))
        {
            return Err(format!("{orphan} has no parent"));
        }
        tree.link_children();
        Ok(tree)
    }
}
