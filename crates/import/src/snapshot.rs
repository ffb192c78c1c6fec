//! ZooKeeper's snapshot file (`FileSnap`, version 2):
//!
//! ```text
//! int magic "ZKSN", int version, long dbid
//! int n × {long session, int timeout}
//! int n × {long acl_ref, vector<ACL>}        -- the ACL cache
//! {ustring path, buffer data, long acl_ref,   -- every node, root as ""
//!  long czxid, long mzxid, long ctime, long mtime,
//!  int version, int cversion, int aversion, long ephemeralOwner, long pzxid}*
//! ustring "/"                                 -- end of nodes
//! long adler32 of everything before, ustring "/"
//! (3.6+: a digest record and a second checksum, ignored)
//! ```

use crate::state::ZkState;
use bytes::Bytes;
use paddock_proto::{Acl, Reader};
use paddock_tree::Node;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

const MAGIC: i32 = i32::from_be_bytes(*b"ZKSN");
/// The ACL reference ZooKeeper uses for world:anyone with all permissions.
const OPEN_ACL_REF: i64 = -1;

/// Parses a snapshot taken at `zxid` (from its file name). Errors carry the
/// byte offset.
pub fn read_snapshot(file: &[u8], zxid: i64) -> Result<ZkState, (usize, String)> {
    let mut r = Reader::new(Bytes::copy_from_slice(file));
    let at = |r: &Reader, e: &dyn std::fmt::Display| (r.offset(), e.to_string());
    let magic = r.read_i32().map_err(|e| at(&r, &e))?;
    if magic != MAGIC {
        return Err((0, "not a ZooKeeper snapshot (bad magic)".into()));
    }
    let version = r.read_i32().map_err(|e| at(&r, &e))?;
    if version != 2 {
        return Err((4, format!("snapshot version {version}, expected 2")));
    }
    r.read_i64().map_err(|e| at(&r, &e))?;
    let mut state = ZkState::new(zxid);
    let n = r.read_i32().map_err(|e| at(&r, &e))?;
    for _ in 0..n.max(0) {
        let id = r.read_i64().map_err(|e| at(&r, &e))?;
        let timeout = r.read_i32().map_err(|e| at(&r, &e))?;
        state.sessions.insert(id, timeout);
    }
    let mut acls: HashMap<i64, Arc<Vec<Acl>>> = HashMap::new();
    acls.insert(OPEN_ACL_REF, Arc::new(paddock_tree::acl::open_acl_unsafe()));
    let n = r.read_i32().map_err(|e| at(&r, &e))?;
    for _ in 0..n.max(0) {
        let id = r.read_i64().map_err(|e| at(&r, &e))?;
        let list: Vec<Acl> = r.read_vec().map_err(|e| at(&r, &e))?;
        acls.insert(id, Arc::new(list));
    }
    let mut nodes = BTreeMap::new();
    loop {
        let offset = r.offset();
        let path = r.read_string().map_err(|e| at(&r, &e))?;
        if path == "/" {
            break;
        }
        let path = if path.is_empty() {
            "/".to_string()
        } else {
            path
        };
        let data = r.read_buffer().map_err(|e| at(&r, &e))?;
        let acl_ref = r.read_i64().map_err(|e| at(&r, &e))?;
        let acl = acls
            .get(&acl_ref)
            .cloned()
            .ok_or_else(|| (offset, format!("{path} refers to unknown ACL {acl_ref}")))?;
        let node = Node::read_persisted(
            &mut r,
            paddock_tree::path::name(&path),
            data.as_deref(),
            acl,
        )
        .map_err(|e| (offset, format!("{path}: {e}")))?;
        nodes.insert(path, node);
    }
    let summed = r.offset();
    let expected = r.read_i64().map_err(|e| at(&r, &e))?;
    let actual = i64::from(adler2::adler32_slice(&file[..summed]));
    if expected != actual {
        return Err((
            summed,
            format!("checksum {actual:#x} does not match the stored {expected:#x}"),
        ));
    }
    state.nodes = nodes;
    Ok(state)
}
