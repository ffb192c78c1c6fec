//! The jute records of the client protocol, field for field in wire order.

use crate::jute::{DecodeError, Jute, Reader};
use crate::jute_record;
use bytes::{BufMut, Bytes, BytesMut};

jute_record! {
    /// An identity: `scheme:id`, e.g. `world:anyone`, `digest:user:hash`.
    pub struct Id { pub scheme: String, pub id: String }
}

jute_record! {
    pub struct Acl { pub perms: i32, pub id: Id }
}

jute_record! {
    /// The metadata of a znode as clients see it (68 bytes).
    pub struct Stat {
        pub czxid: i64,
        pub mzxid: i64,
        pub ctime: i64,
        pub mtime: i64,
        pub version: i32,
        pub cversion: i32,
        pub aversion: i32,
        pub ephemeral_owner: i64,
        pub data_length: i32,
        pub num_children: i32,
        pub pzxid: i64,
    }
}

jute_record! {
    pub struct RequestHeader { pub xid: i32, pub opcode: i32 }
}

jute_record! {
    pub struct ReplyHeader { pub xid: i32, pub zxid: i64, pub err: i32 }
}

jute_record! {
    pub struct CreateRequest {
        pub path: String,
        pub data: Option<Bytes>,
        pub acl: Vec<Acl>,
        pub flags: i32,
    }
}

jute_record! {
    pub struct CreateTtlRequest {
        pub path: String,
        pub data: Option<Bytes>,
        pub acl: Vec<Acl>,
        pub flags: i32,
        pub ttl: i64,
    }
}

jute_record! {
    pub struct DeleteRequest { pub path: String, pub version: i32 }
}

jute_record! {
    /// exists, getData, getChildren and getChildren2 requests.
    pub struct PathWatchRequest { pub path: String, pub watch: bool }
}

jute_record! {
    pub struct SetDataRequest { pub path: String, pub data: Option<Bytes>, pub version: i32 }
}

jute_record! {
    /// getACL, sync, getEphemerals and getAllChildrenNumber requests.
    pub struct PathRequest { pub path: String }
}

jute_record! {
    pub struct SetAclRequest { pub path: String, pub acl: Vec<Acl>, pub version: i32 }
}

jute_record! {
    pub struct CheckVersionRequest { pub path: String, pub version: i32 }
}

jute_record! {
    pub struct ReconfigRequest {
        pub joining_servers: String,
        pub leaving_servers: String,
        pub new_members: String,
        pub cur_config_id: i64,
    }
}

jute_record! {
    /// checkWatches and removeWatches requests; `watcher_type` is a WatcherType.
    pub struct WatchesRequest { pub path: String, pub watcher_type: i32 }
}

jute_record! {
    pub struct AddWatchRequest { pub path: String, pub mode: i32 }
}

jute_record! {
    pub struct AuthPacket { pub auth_type: i32, pub scheme: String, pub auth: Option<Bytes> }
}

jute_record! {
    pub struct SetWatches {
        pub relative_zxid: i64,
        pub data_watches: Vec<String>,
        pub exist_watches: Vec<String>,
        pub child_watches: Vec<String>,
    }
}

jute_record! {
    pub struct SetWatches2 {
        pub relative_zxid: i64,
        pub data_watches: Vec<String>,
        pub exist_watches: Vec<String>,
        pub child_watches: Vec<String>,
        pub persistent_watches: Vec<String>,
        pub persistent_recursive_watches: Vec<String>,
    }
}

jute_record! {
    /// deleteContainer carries its path as a `buffer`.
    pub struct DeleteContainerRequest { pub path: Option<Bytes> }
}

jute_record! {
    pub struct SaslRequest { pub token: Option<Bytes> }
}

jute_record! {
    pub struct WatcherEvent { pub event_type: i32, pub state: i32, pub path: String }
}

jute_record! {
    pub struct ClientInfo { pub auth_scheme: String, pub user: String }
}

jute_record! {
    /// The header before each op of a multi request or result.
    pub struct MultiHeader { pub opcode: i32, pub done: bool, pub err: i32 }
}

/// The first message of a connection (no RequestHeader). The trailing
/// readOnly byte is optional: old clients omit it, and the response then
/// omits it too.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectRequest {
    pub protocol_version: i32,
    pub last_zxid_seen: i64,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub passwd: Option<Bytes>,
    pub read_only: Option<bool>,
}

impl Jute for ConnectRequest {
    const MIN_WIRE_BYTES: usize = 28;
    fn read(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(ConnectRequest {
            protocol_version: r.read_i32()?,
            last_zxid_seen: r.read_i64()?,
            timeout_ms: r.read_i32()?,
            session_id: r.read_i64()?,
            passwd: r.read_buffer()?,
            read_only: if r.remaining() > 0 {
                Some(r.read_bool()?)
            } else {
                None
            },
        })
    }
    fn write(&self, out: &mut BytesMut) {
        out.put_i32(self.protocol_version);
        out.put_i64(self.last_zxid_seen);
        out.put_i32(self.timeout_ms);
        out.put_i64(self.session_id);
        self.passwd.write(out);
        if let Some(ro) = self.read_only {
            ro.write(out);
        }
    }
}

/// The answer to a ConnectRequest. `timeout_ms == 0` tells the client its
/// session is expired or invalid.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectResponse {
    pub protocol_version: i32,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub passwd: Bytes,
    pub read_only: Option<bool>,
}

impl Jute for ConnectResponse {
    const MIN_WIRE_BYTES: usize = 20;
    fn read(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(ConnectResponse {
            protocol_version: r.read_i32()?,
            timeout_ms: r.read_i32()?,
            session_id: r.read_i64()?,
            passwd: r.read_buffer()?.unwrap_or_default(),
            read_only: if r.remaining() > 0 {
                Some(r.read_bool()?)
            } else {
                None
            },
        })
    }
    fn write(&self, out: &mut BytesMut) {
        out.put_i32(self.protocol_version);
        out.put_i32(self.timeout_ms);
        out.put_i64(self.session_id);
        crate::jute::write_buffer(out, Some(&self.passwd));
        if let Some(ro) = self.read_only {
            ro.write(out);
        }
    }
}
