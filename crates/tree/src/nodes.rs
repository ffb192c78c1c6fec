//! The node table. Every node sits in a numbered slot; slots come in
//! fixed-size chunks, so the table never moves what it holds as it grows
//! (no pause to copy a million nodes). A node knows its parent, its first
//! child and its siblings by number, and keeps only its own name (in one
//! allocation with its data): a path is never stored whole. One hash index,
//! keyed by (parent, name), finds a child; a path is found one segment at a
//! time from the root.
//!
//! The chunks are shared copy-on-write: [`Slots`] clones in one pointer per
//! chunk, and a change to a chunk that a clone still shares copies that
//! chunk first. A snapshot freezes the slots so, and encodes them on
//! another thread while the live table goes on changing.

use crate::node::Node;
use hashbrown::{DefaultHashBuilder, HashTable};
use std::hash::BuildHasher;
use std::sync::Arc;

pub(crate) type NodeId = u32;

/// The root is always the first node placed.
pub(crate) const ROOT: NodeId = 0;
/// "No node" in a link.
const NIL: NodeId = NodeId::MAX;
/// Slots per chunk. While a snapshot shares the chunks, writes to random
/// nodes of a big tree soon copy nearly all of them; smaller chunks spread
/// that copying over more applies. Under setData at 32 × 32 in flight over
/// 1M znodes, 256 kept the slowest write near 75 ms where 4096 let one
/// batch of applies copy the whole tree (over 200 ms).
const CHUNK: usize = 256;

#[derive(Clone)]
struct Slot {
    node: Node,
    parent: NodeId,
    first_child: NodeId,
    next_sibling: NodeId,
    prev_sibling: NodeId,
}

type Chunk = Vec<Option<Slot>>;

/// The slots, without the index: all a walk needs. A clone shares every
/// chunk until one side changes it.
#[derive(Clone, Default)]
pub(crate) struct Slots {
    chunks: Vec<Arc<Chunk>>,
}

impl Slots {
    fn slot(&self, id: NodeId) -> Option<&Slot> {
        let id = id as usize;
        self.chunks.get(id / CHUNK)?.get(id % CHUNK)?.as_ref()
    }

    /// The chunk holding `id`, copied first if a clone shares it.
    fn chunk_mut(&mut self, id: NodeId) -> Option<&mut Chunk> {
        self.chunks.get_mut(id as usize / CHUNK).map(Arc::make_mut)
    }

    fn slot_mut(&mut self, id: NodeId) -> Option<&mut Slot> {
        self.chunk_mut(id)?.get_mut(id as usize % CHUNK)?.as_mut()
    }

    pub fn get(&self, id: NodeId) -> Option<&Node> {
        self.slot(id).map(|s| &s.node)
    }

    /// The node's own name ("" for the root).
    pub fn name(&self, id: NodeId) -> &str {
        self.slot(id).map_or("", |s| s.node.name())
    }

    /// The children of `id`, in no particular order.
    pub fn children(&self, id: NodeId) -> impl Iterator<Item = NodeId> + '_ {
        let first = self.slot(id).map_or(NIL, |s| s.first_child);
        std::iter::successors(Some(first).filter(|&c| c != NIL), move |&c| {
            self.slot(c).map(|s| s.next_sibling).filter(|&n| n != NIL)
        })
    }

    /// Visits every node from the root with its path, as [`Slots::walk`]
    /// does.
    pub fn walk_nodes<'a>(&'a self, siblings: Siblings, mut visit: impl FnMut(&str, &'a Node)) {
        if self.get(ROOT).is_none() {
            return;
        }
        self.walk(ROOT, "/", siblings, |p, id| {
            if let Some(n) = self.get(id) {
                visit(p, n)
            }
        });
    }

    /// Visits every node under `from` (itself included) depth first, each
    /// node before its children, with its path. Siblings come in name
    /// order with [`Siblings::ByName`], an order that depends only on the
    /// tree's content; [`Siblings::AsLinked`] skips the sorting and takes
    /// them oldest first.
    pub fn walk(
        &self,
        from: NodeId,
        from_path: &str,
        siblings: Siblings,
        mut visit: impl FnMut(&str, NodeId),
    ) {
        let mut path = String::from(from_path);
        // (node, length of its parent's path)
        let mut stack = vec![(from, from_path.len())];
        let mut first = true;
        while let Some((id, parent_len)) = stack.pop() {
            if !first {
                path.truncate(parent_len);
                if !path.ends_with('/') {
                    path.push('/');
                }
                path.push_str(self.name(id));
            }
            first = false;
            visit(&path, id);
            let start = stack.len();
            stack.extend(self.children(id).map(|c| (c, path.len())));
            if siblings == Siblings::ByName {
                // Byte order is the names' order, without a UTF-8 check
                // each; the stack pops the last first.
                let name = |id| self.slot(id).map_or(&[][..], |s| s.node.name_bytes());
                stack[start..].sort_unstable_by(|(a, _), (b, _)| name(*b).cmp(name(*a)));
            }
        }
    }
}

#[derive(Default)]
pub(crate) struct Nodes {
    slots: Slots,
    /// Slots freed by removals, reused first.
    free: Vec<NodeId>,
    index: HashTable<Indexed>,
    hasher: DefaultHashBuilder,
    len: usize,
}

impl Nodes {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The slots, to walk, or to clone and freeze.
    pub fn slots(&self) -> &Slots {
        &self.slots
    }

    /// The index hash of the child `name` of `parent`.
    fn key_hash(&self, parent: NodeId, name: &[u8]) -> u32 {
        (self.hasher.hash_one((parent, name)) >> 32) as u32
    }

    /// Room in the index for `n` more nodes.
    pub fn reserve(&mut self, n: usize) {
        self.index.reserve(n, Indexed::table_hash);
    }

    fn slot(&self, id: NodeId) -> Option<&Slot> {
        self.slots.slot(id)
    }

    fn slot_mut(&mut self, id: NodeId) -> Option<&mut Slot> {
        self.slots.slot_mut(id)
    }

    pub fn get(&self, id: NodeId) -> Option<&Node> {
        self.slots.get(id)
    }

    pub fn get_mut(&mut self, id: NodeId) -> Option<&mut Node> {
        self.slot_mut(id).map(|s| &mut s.node)
    }

    /// The node's own name ("" for the root).
    pub fn name(&self, id: NodeId) -> &str {
        self.slots.name(id)
    }

    /// The node at `path`, an absolute path ("/" is the root).
    pub fn find(&self, path: &str) -> Option<NodeId> {
        let rest = path.strip_prefix('/')?;
        self.slot(ROOT)?;
        if rest.is_empty() {
            return Some(ROOT);
        }
        rest.split('/')
            .try_fold(ROOT, |parent, name| self.child(parent, name))
    }

    /// The child of `parent` called `name`.
    pub fn child(&self, parent: NodeId, name: &str) -> Option<NodeId> {
        let hash = self.key_hash(parent, name.as_bytes());
        self.index
            .find(spread(hash), |e| {
                e.hash == hash
                    && self.slot(e.id).is_some_and(|s| {
                        s.parent == parent && s.node.name_bytes() == name.as_bytes()
                    })
            })
            .map(|e| e.id)
    }

    /// The children of `id`, in no particular order.
    pub fn children(&self, id: NodeId) -> impl Iterator<Item = NodeId> + '_ {
        self.slots.children(id)
    }

    /// Places the root. The table must be empty.
    pub fn insert_root(&mut self, node: Node) -> NodeId {
        debug_assert_eq!(self.len, 0, "the root is placed first");
        self.place(node, NIL)
    }

    /// Places `node` as the child `name` of `parent`, which must exist and
    /// must not have such a child yet; the parent's child count goes up. A
    /// node made under another name is renamed (a copy).
    pub fn insert(&mut self, parent: NodeId, name: &str, mut node: Node) -> NodeId {
        node.set_name(name);
        let first = self.slot(parent).map_or(NIL, |s| s.first_child);
        let id = self.place(node, parent);
        if let Some(s) = self.slot_mut(id) {
            s.next_sibling = first;
        }
        if let Some(s) = self.slot_mut(first) {
            s.prev_sibling = id;
        }
        if let Some(p) = self.slot_mut(parent) {
            p.first_child = id;
            p.node.num_children += 1;
        }
        let hash = self.key_hash(parent, name.as_bytes());
        self.index
            .insert_unique(spread(hash), Indexed { hash, id }, Indexed::table_hash);
        id
    }

    fn place(&mut self, node: Node, parent: NodeId) -> NodeId {
        let slot = Slot {
            node,
            parent,
            first_child: NIL,
            next_sibling: NIL,
            prev_sibling: NIL,
        };
        self.len += 1;
        if let Some(id) = self.free.pop() {
            if let Some(free) = self
                .slots
                .chunk_mut(id)
                .and_then(|c| c.get_mut(id as usize % CHUNK))
            {
                *free = Some(slot);
            }
            return id;
        }
        let chunks = &mut self.slots.chunks;
        if chunks.last().is_none_or(|c| c.len() == CHUNK) {
            chunks.push(Arc::new(Vec::with_capacity(CHUNK)));
        }
        let id = (chunks.len() - 1) * CHUNK + chunks.last().map_or(0, |c| c.len());
        if let Some(chunk) = chunks.last_mut().map(Arc::make_mut) {
            // A copy made while a clone shared the chunk is only as long
            // as it was.
            chunk.reserve_exact(CHUNK - chunk.len());
            chunk.push(Some(slot));
        }
        id as NodeId
    }

    /// Takes out a node that has no children, unlinking it from its parent
    /// (whose child count goes down).
    pub fn remove(&mut self, id: NodeId) -> Option<Node> {
        let slot = self.slot(id)?;
        debug_assert_eq!(slot.first_child, NIL, "only a leaf is removed");
        let (parent, prev, next) = (slot.parent, slot.prev_sibling, slot.next_sibling);
        let hash = self.key_hash(parent, slot.node.name_bytes());
        if let Ok(entry) = self.index.find_entry(spread(hash), |e| e.id == id) {
            entry.remove();
        }
        if let Some(s) = self.slot_mut(prev) {
            s.next_sibling = next;
        }
        if let Some(s) = self.slot_mut(next) {
            s.prev_sibling = prev;
        }
        if let Some(p) = self.slot_mut(parent) {
            if p.first_child == id {
                p.first_child = next;
            }
            p.node.num_children -= 1;
        }
        let slot = self
            .slots
            .chunk_mut(id)?
            .get_mut(id as usize % CHUNK)?
            .take()?;
        self.free.push(id);
        self.len -= 1;
        Some(slot.node)
    }
}

/// The order of siblings in a [`Slots::walk`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Siblings {
    ByName,
    AsLinked,
}

/// An entry of the index: a node and 32 bits of the hash of its (parent,
/// name), so the index grows without reading the nodes. When it read each
/// node's name to rehash, growing past a million znodes stalled applies
/// for about 200 ms.
#[derive(Clone, Copy)]
struct Indexed {
    hash: u32,
    id: NodeId,
}

impl Indexed {
    fn table_hash(&self) -> u64 {
        spread(self.hash)
    }
}

/// The table's 64-bit hash from 32 bits: the table takes its bucket from
/// the low bits and a tag from the top seven.
fn spread(hash: u32) -> u64 {
    (u64::from(hash) << 32) | u64::from(hash)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::NodeKind;
    use std::sync::Arc;

    fn node(version: i32) -> Node {
        let mut n = Node::new("", None, Arc::default(), 0, 0, NodeKind::Persistent);
        n.version = version;
        n
    }

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_slot_takes_104_bytes() {
        assert_eq!(std::mem::size_of::<Option<Slot>>(), 104);
    }

    #[test]
    fn paths_are_found_segment_by_segment() {
        let mut t = Nodes::default();
        assert_eq!(t.find("/"), None, "no root yet");
        let root = t.insert_root(node(0));
        let a = t.insert(root, "a", node(1));
        let b = t.insert(a, "b", node(2));
        assert_eq!(t.find("/"), Some(root));
        assert_eq!(t.find("/a"), Some(a));
        assert_eq!(t.find("/a/b"), Some(b));
        for missing in ["", "a", "/b", "/a/", "//a", "/a/b/c", "/a//b"] {
            assert_eq!(t.find(missing), None, "{missing:?}");
        }
        assert_eq!(t.get(b).map(|n| n.version), Some(2));
        assert_eq!(t.get(a).map(|n| n.num_children), Some(1));
    }

    #[test]
    fn a_node_made_under_its_name_is_placed_without_a_copy() {
        let mut t = Nodes::default();
        let root = t.insert_root(node(0));
        let acl = Arc::default();
        let named = Node::new("a", Some(b"data"), acl, 0, 0, NodeKind::Persistent);
        let other = named.clone();
        let at = named.data().map(<[u8]>::as_ptr);
        let a = t.insert(root, "a", named);
        assert_eq!(t.get(a).and_then(Node::data).map(<[u8]>::as_ptr), at);
        let b = t.insert(root, "b", other);
        assert_eq!(t.name(b), "b", "renamed");
        assert_eq!(t.get(b).and_then(Node::data), Some(&b"data"[..]));
    }

    #[test]
    fn removing_unlinks_from_the_parent_and_frees_the_slot() {
        let mut t = Nodes::default();
        let root = t.insert_root(node(0));
        let ids: Vec<NodeId> = (0..5)
            .map(|i| t.insert(root, &format!("c{i}"), node(i)))
            .collect();
        // First, middle and last of the sibling list.
        for &gone in &[ids[4], ids[2], ids[0]] {
            assert!(t.remove(gone).is_some());
        }
        let mut left: Vec<&str> = t.children(root).map(|c| t.name(c)).collect();
        left.sort();
        assert_eq!(left, ["c1", "c3"]);
        assert_eq!(t.get(root).map(|n| n.num_children), Some(2));
        assert_eq!(t.find("/c2"), None);
        assert_eq!(t.len(), 3);
        let again = t.insert(root, "c2", node(9));
        assert!(ids.contains(&again), "a freed slot is reused");
        assert_eq!(t.find("/c2"), Some(again));
        assert_eq!(t.get(again).map(|n| n.version), Some(9));
    }

    #[test]
    fn the_table_grows_past_a_chunk_and_keeps_every_node() {
        let mut t = Nodes::default();
        let root = t.insert_root(node(0));
        let n = 3 * CHUNK as i32 + 7;
        for i in 0..n {
            t.insert(root, &format!("n{i}"), node(i));
        }
        for i in (0..n).step_by(97) {
            let id = t.find(&format!("/n{i}")).expect("found");
            assert_eq!(t.get(id).map(|n| n.version), Some(i));
        }
        assert_eq!(t.children(root).count(), n as usize);
    }

    #[test]
    fn a_clone_shares_every_chunk_until_one_is_changed() {
        let mut t = Nodes::default();
        let root = t.insert_root(node(0));
        let ids: Vec<NodeId> = (0..3 * CHUNK)
            .map(|i| t.insert(root, &format!("n{i}"), node(0)))
            .collect();
        let frozen = t.slots().clone();
        let shared = |t: &Nodes| {
            let pairs = t.slots.chunks.iter().zip(&frozen.chunks);
            pairs.filter(|(a, b)| Arc::ptr_eq(a, b)).count()
        };
        assert_eq!(shared(&t), 4);
        let changed = ids[CHUNK + 5];
        if let Some(n) = t.get_mut(changed) {
            n.version = 7;
        }
        assert_eq!(shared(&t), 3, "only the changed chunk is copied");
        assert_eq!(frozen.get(changed).map(|n| n.version), Some(0));
        assert_eq!(t.get(changed).map(|n| n.version), Some(7));
        // Placed in the shared last chunk, and in a freed slot.
        let appended = t.insert(root, "more", node(1));
        assert_eq!(t.get(appended).map(|n| n.version), Some(1));
        assert!(frozen.get(appended).is_none());
        t.remove(ids[0]);
        assert_eq!(t.insert(root, "again", node(2)), ids[0], "reused");
        assert_eq!(frozen.get(ids[0]).map(|n| n.version), Some(0));
        assert_eq!(frozen.name(ids[0]), "n0");
    }

    proptest::proptest! {
        /// Random creates and deletes of leaves over a small name space
        /// agree with a map from path to value.
        #[test]
        fn the_table_agrees_with_a_map_of_paths(ops in proptest::collection::vec((0u8..3, 0u8..4, 0u8..4, proptest::bool::ANY), 1..200)) {
            let mut t = Nodes::default();
            t.insert_root(node(-1));
            let mut model = std::collections::BTreeMap::new();
            for (step, (depth, a, b, create)) in ops.into_iter().enumerate() {
                let path = match depth {
                    0 => format!("/n{a}"),
                    1 => format!("/n{a}/m{b}"),
                    _ => format!("/n{a}/m{b}/k{a}{b}"),
                };
                let (parent, name) = path.rsplit_once('/').unwrap();
                let parent = if parent.is_empty() { "/" } else { parent };
                let has_children = model.keys().any(|p: &String| p.starts_with(&format!("{path}/")));
                match (create, t.find(parent), t.find(&path)) {
                    (true, Some(up), None) => {
                        t.insert(up, name, node(step as i32));
                        model.insert(path, step as i32);
                    }
                    (false, _, Some(id)) if !has_children => {
                        proptest::prop_assert_eq!(t.remove(id).map(|n| n.version), model.remove(&path));
                    }
                    _ => {}
                }
            }
            proptest::prop_assert_eq!(t.len(), model.len() + 1);
            let mut walked = Vec::new();
            t.slots().walk(ROOT, "/", Siblings::ByName, |p, id| {
                walked.push((p.to_owned(), t.get(id).map(|n| n.version)));
            });
            let mut expected: Vec<(String, Option<i32>)> =
                model.iter().map(|(p, v)| (p.clone(), Some(*v))).collect();
            expected.insert(0, ("/".to_owned(), Some(-1)));
            // Walk order differs from string order only around '-' and
            // the like, which these names do not use.
            proptest::prop_assert_eq!(walked, expected);
            // Every node's children, the root's included, by name.
            for p in std::iter::once("/").chain(model.keys().map(String::as_str)) {
                let id = t.find(p).unwrap();
                let prefix = if p == "/" { "" } else { p };
                let mut want: Vec<&str> = model
                    .keys()
                    .filter_map(|q| q.rsplit_once('/').filter(|(up, _)| *up == prefix).map(|(_, name)| name))
                    .collect();
                want.sort();
                let mut got: Vec<&str> = t.children(id).map(|c| t.name(c)).collect();
                got.sort();
                proptest::prop_assert_eq!(t.get(id).map(|n| n.num_children as usize), Some(want.len()));
                proptest::prop_assert_eq!(got, want);
            }
        }
    }

    /// `/a`, `/a-b`, `/a/z`, `/a/b`, `/a/z/y`, placed in that order; the
    /// table and the id of `/a`.
    fn sample() -> (Nodes, NodeId) {
        let mut t = Nodes::default();
        let root = t.insert_root(node(0));
        let a = t.insert(root, "a", node(0));
        t.insert(root, "a-b", node(0));
        let z = t.insert(a, "z", node(0));
        t.insert(a, "b", node(0));
        t.insert(z, "y", node(0));
        (t, a)
    }

    fn walked(t: &Nodes, from: NodeId, from_path: &str, siblings: Siblings) -> Vec<String> {
        let mut seen = Vec::new();
        t.slots()
            .walk(from, from_path, siblings, |p, _| seen.push(p.to_owned()));
        seen
    }

    #[test]
    fn a_sorted_walk_visits_parents_first_and_siblings_by_name() {
        let (t, a) = sample();
        assert_eq!(
            walked(&t, ROOT, "/", Siblings::ByName),
            ["/", "/a", "/a/b", "/a/z", "/a/z/y", "/a-b"]
        );
        assert_eq!(
            walked(&t, a, "/a", Siblings::ByName),
            ["/a", "/a/b", "/a/z", "/a/z/y"]
        );
    }

    #[test]
    fn an_unsorted_walk_visits_parents_first_and_siblings_oldest_first() {
        let (t, _) = sample();
        assert_eq!(
            walked(&t, ROOT, "/", Siblings::AsLinked),
            ["/", "/a", "/a/z", "/a/z/y", "/a/b", "/a-b"]
        );
    }
}
