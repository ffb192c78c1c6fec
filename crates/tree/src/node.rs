//! One znode and how its stored fields become the Stat clients see.

use paddock_proto::{Acl, Stat};
use std::sync::Arc;

/// ephemeralOwner stored for container nodes.
pub const CONTAINER_OWNER: i64 = i64::MIN;
/// Top byte of ephemeralOwner marking a TTL node; the low 40 bits hold the TTL.
const TTL_MARK: i64 = 0xFF << 56;
const TTL_MASK: i64 = (1 << 40) - 1;

/// What kind of node an ephemeralOwner value describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Persistent,
    Ephemeral { session_id: i64 },
    Container,
    Ttl { ttl_ms: i64 },
}

impl NodeKind {
    pub fn from_owner(owner: i64) -> NodeKind {
        if owner == 0 {
            NodeKind::Persistent
        } else if owner == CONTAINER_OWNER {
            NodeKind::Container
        } else if owner & TTL_MARK == TTL_MARK {
            NodeKind::Ttl {
                ttl_ms: owner & TTL_MASK,
            }
        } else {
            NodeKind::Ephemeral { session_id: owner }
        }
    }

    pub fn owner(self) -> i64 {
        match self {
            NodeKind::Persistent => 0,
            NodeKind::Ephemeral { session_id } => session_id,
            NodeKind::Container => CONTAINER_OWNER,
            NodeKind::Ttl { ttl_ms } => TTL_MARK | (ttl_ms & TTL_MASK),
        }
    }
}

/// A node's name and data in one allocation, so a node with a short name
/// and a small value costs one heap block. The bytes are a LEB128 header
/// holding `name length × 2 + 1 if the data is null`, the name, then the
/// data. Null data is distinct from empty data. The bytes are always a
/// copy, never a view into the request frame or snapshot they came from (a
/// 100-byte value could otherwise keep kilobytes alive).
#[derive(Clone, PartialEq, Eq)]
pub struct Text(Box<[u8]>);

impl Text {
    fn new(name: &[u8], data: Option<&[u8]>) -> Text {
        let head = (name.len() as u64) << 1 | u64::from(data.is_none());
        let data = data.unwrap_or_default();
        let head_len = (u64::BITS - head.leading_zeros()).max(1).div_ceil(7) as usize;
        let mut bytes = Vec::with_capacity(head_len + name.len() + data.len());
        let mut rest = head;
        loop {
            let low = (rest & 0x7f) as u8;
            rest >>= 7;
            if rest == 0 {
                bytes.push(low);
                break;
            }
            bytes.push(low | 0x80);
        }
        bytes.extend_from_slice(name);
        bytes.extend_from_slice(data);
        Text(bytes.into_boxed_slice())
    }

    /// (header length, name length, data is null).
    fn head(&self) -> (usize, usize, bool) {
        let mut value = 0u64;
        for (i, b) in self.0.iter().take(10).enumerate() {
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return (i + 1, (value >> 1) as usize, value & 1 == 1);
            }
        }
        (self.0.len(), 0, true)
    }

    fn name_bytes(&self) -> &[u8] {
        let (at, len, _) = self.head();
        self.0.get(at..at + len).unwrap_or_default()
    }

    fn data(&self) -> Option<&[u8]> {
        let (at, len, null) = self.head();
        (!null).then(|| self.0.get(at + len..).unwrap_or_default())
    }
}

impl std::fmt::Debug for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Text")
            .field("name", &String::from_utf8_lossy(self.name_bytes()))
            .field("data", &self.data())
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Its name and data.
    text: Text,
    pub acl: Arc<Vec<Acl>>,
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    /// Children ever created under this node: ZooKeeper's stored cversion,
    /// which also numbers sequential children. Deletes do not change it.
    pub child_creates: i32,
    pub aversion: i32,
    pub owner: i64,
    pub pzxid: i64,
    /// Kept by the tree as children are linked in and out; 0 for a node
    /// outside a tree.
    pub(crate) num_children: u32,
}

impl Node {
    /// A node called `name`: the last segment of its path, "" for the root.
    /// A tree places a node under the name it was made with, so that the
    /// name and data are copied once.
    pub fn new(
        name: &str,
        data: Option<&[u8]>,
        acl: Arc<Vec<Acl>>,
        zxid: i64,
        time_ms: i64,
        kind: NodeKind,
    ) -> Node {
        Node {
            text: Text::new(name.as_bytes(), data),
            acl,
            czxid: zxid,
            mzxid: zxid,
            ctime: time_ms,
            mtime: time_ms,
            version: 0,
            child_creates: 0,
            aversion: 0,
            owner: kind.owner(),
            pzxid: zxid,
            num_children: 0,
        }
    }

    /// The data: None is null, distinct from empty.
    pub fn data(&self) -> Option<&[u8]> {
        self.text.data()
    }

    /// Replaces the data, handing back the text it had (for `restore_text`).
    pub fn set_data(&mut self, data: Option<&[u8]>) -> Text {
        let text = Text::new(self.name_bytes(), data);
        std::mem::replace(&mut self.text, text)
    }

    /// Puts back a text `set_data` handed out.
    pub fn restore_text(&mut self, text: Text) {
        self.text = text;
    }

    /// The node's own name ("" for the root).
    pub fn name(&self) -> &str {
        std::str::from_utf8(self.text.name_bytes()).unwrap_or_default()
    }

    pub(crate) fn name_bytes(&self) -> &[u8] {
        self.text.name_bytes()
    }

    pub(crate) fn set_name(&mut self, name: &str) {
        if self.name_bytes() != name.as_bytes() {
            self.text = Text::new(name.as_bytes(), self.data());
        }
    }

    pub fn kind(&self) -> NodeKind {
        NodeKind::from_owner(self.owner)
    }

    /// The Stat as a client sees it: cversion is creates + deletes
    /// (2 × stored − children), and only session owners are shown.
    pub fn stat(&self) -> Stat {
        let num_children = self.num_children as i32;
        Stat {
            czxid: self.czxid,
            mzxid: self.mzxid,
            ctime: self.ctime,
            mtime: self.mtime,
            version: self.version,
            cversion: self
                .child_creates
                .wrapping_mul(2)
                .wrapping_sub(num_children),
            aversion: self.aversion,
            ephemeral_owner: match self.kind() {
                NodeKind::Ephemeral { session_id } => session_id,
                _ => 0,
            },
            data_length: self.data().map_or(0, |d| d.len() as i32),
            num_children,
            pzxid: self.pzxid,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_and_data_share_one_copied_allocation() {
        let frame = vec![7u8; 4096];
        let acl = Arc::new(vec![]);
        let mut n = Node::new("", Some(&frame[100..200]), acl, 1, 0, NodeKind::Persistent);
        let range = frame.as_ptr_range();
        assert!(!range.contains(&n.data().unwrap().as_ptr()), "a copy");
        assert_eq!(n.name(), "");
        n.set_name("a-name");
        assert_eq!((n.name(), n.data()), ("a-name", Some(&frame[100..200])));
        assert_eq!(n.stat().data_length, 100);
        assert_eq!(n.text.0.len(), 1 + 6 + 100, "a one-byte header");
        let old = n.set_data(None);
        assert_eq!((n.name(), n.data()), ("a-name", None), "null data");
        n.set_data(Some(&[]));
        assert_eq!(n.data(), Some(&[][..]), "empty is not null");
        n.restore_text(old);
        assert_eq!(n.data(), Some(&frame[100..200]));
    }

    #[test]
    fn long_names_take_a_longer_header() {
        for len in [0, 63, 64, 8191, 8192, 70_000] {
            let name = "x".repeat(len);
            for data in [None, Some(&b"value"[..]), Some(&[][..])] {
                let t = Text::new(name.as_bytes(), data);
                assert_eq!(t.name_bytes(), name.as_bytes(), "{len}");
                assert_eq!(t.data(), data, "{len}");
            }
        }
    }

    #[test]
    fn owner_values_round_trip_through_kinds() {
        for kind in [
            NodeKind::Persistent,
            NodeKind::Ephemeral {
                session_id: 0x0100_0040_7f1f_0001,
            },
            NodeKind::Container,
            NodeKind::Ttl { ttl_ms: 1000 },
            NodeKind::Ttl {
                ttl_ms: (1 << 40) - 1,
            },
        ] {
            assert_eq!(NodeKind::from_owner(kind.owner()), kind);
        }
    }

    #[test]
    fn container_and_ttl_owners_are_reported_as_zero() {
        let acl = Arc::new(vec![]);
        for kind in [NodeKind::Container, NodeKind::Ttl { ttl_ms: 5 }] {
            assert_eq!(
                Node::new("c", None, acl.clone(), 1, 0, kind)
                    .stat()
                    .ephemeral_owner,
                0
            );
        }
        let e = Node::new("e", None, acl, 1, 0, NodeKind::Ephemeral { session_id: 7 });
        assert_eq!(e.stat().ephemeral_owner, 7);
    }
}
