//! One znode and how its stored fields become the Stat clients see.

use bytes::Bytes;
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

/// A node's data: None is null, distinct from empty.
pub type Data = Option<Box<[u8]>>;

/// Data as a node keeps it: in an allocation of its own, so that it does
/// not hold on to the whole request frame or snapshot it was decoded from
/// (a 100-byte value could otherwise keep kilobytes alive).
pub fn owned(data: &Option<Bytes>) -> Data {
    data.as_deref().map(Box::from)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub data: Data,
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
    pub fn new(data: Data, acl: Arc<Vec<Acl>>, zxid: i64, time_ms: i64, kind: NodeKind) -> Node {
        Node {
            data,
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
            data_length: self.data.as_ref().map_or(0, |d| d.len() as i32),
            num_children,
            pzxid: self.pzxid,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_data_does_not_share_the_buffer_it_came_from() {
        let frame = Bytes::from(vec![7u8; 4096]);
        let kept = owned(&Some(frame.slice(100..200))).unwrap();
        assert_eq!(&kept[..], &frame[100..200]);
        let range = frame.as_ptr() as usize..frame.as_ptr() as usize + frame.len();
        assert!(!range.contains(&(kept.as_ptr() as usize)));
        assert_eq!(owned(&None), None, "null stays null");
        assert_eq!(owned(&Some(Bytes::new())).as_deref(), Some(&[][..]));
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
                Node::new(None, acl.clone(), 1, 0, kind)
                    .stat()
                    .ephemeral_owner,
                0
            );
        }
        let e = Node::new(None, acl, 1, 0, NodeKind::Ephemeral { session_id: 7 });
        assert_eq!(e.stat().ephemeral_owner, 7);
    }
}
