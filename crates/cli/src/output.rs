//! What the shell prints, in zkCli's shapes (and as JSON for `-o json`):
//! Stat blocks, ACLs, watch events, error messages, client-side path and
//! ACL checks. Pure.

use paddock_proto::consts::perms;
use paddock_proto::text::java_date;
use paddock_proto::{Acl, ErrorCode, Id, Stat};
use serde_json::{json, Value};

/// The eleven `name = value` lines zkCli prints for a Stat.
pub fn stat_text(s: &Stat) -> String {
    format!(
        "cZxid = 0x{:x}\nctime = {}\nmZxid = 0x{:x}\nmtime = {}\npZxid = 0x{:x}\ncversion = {}\ndataVersion = {}\naclVersion = {}\nephemeralOwner = 0x{:x}\ndataLength = {}\nnumChildren = {}\n",
        s.czxid,
        java_date(s.ctime),
        s.mzxid,
        java_date(s.mtime),
        s.pzxid,
        s.cversion,
        s.version,
        s.aversion,
        s.ephemeral_owner,
        s.data_length,
        s.num_children
    )
}

pub fn stat_json(s: &Stat) -> Value {
    json!({
        "czxid": s.czxid, "mzxid": s.mzxid, "pzxid": s.pzxid,
        "ctime": s.ctime, "mtime": s.mtime,
        "version": s.version, "cversion": s.cversion, "aversion": s.aversion,
        "ephemeralOwner": s.ephemeral_owner,
        "dataLength": s.data_length, "numChildren": s.num_children,
    })
}

/// Data as zkCli prints it: UTF-8 (lossy), or `null` for null data.
pub fn data_text(data: Option<&[u8]>) -> String {
    match data {
        Some(d) => String::from_utf8_lossy(d).into_owned(),
        None => "null".to_owned(),
    }
}

/// Permission letters in zkCli's order.
pub fn perm_string(p: i32) -> String {
    [
        (perms::CREATE, 'c'),
        (perms::DELETE, 'd'),
        (perms::READ, 'r'),
        (perms::WRITE, 'w'),
        (perms::ADMIN, 'a'),
    ]
    .iter()
    .filter(|(bit, _)| p & bit != 0)
    .map(|(_, c)| *c)
    .collect()
}

/// getAcl's two lines per entry: `'scheme,'id` then `: perms`.
pub fn acl_text(acl: &[Acl]) -> String {
    acl.iter()
        .map(|a| {
            format!(
                "'{},'{}\n: {}\n",
                a.id.scheme,
                a.id.id,
                perm_string(a.perms)
            )
        })
        .collect()
}

pub fn acl_json(acl: &[Acl]) -> Value {
    Value::Array(
        acl.iter()
            .map(|a| json!({"scheme": a.id.scheme, "id": a.id.id, "perms": perm_string(a.perms)}))
            .collect(),
    )
}

/// Parses `scheme:id:perm[,...]` as zkCli does: a malformed entry or an
/// unknown permission letter is reported (the returned warnings) and
/// skipped.
pub fn parse_acl(text: &str) -> (Vec<Acl>, Vec<String>) {
    let mut acl = Vec::new();
    let mut warnings = Vec::new();
    for entry in text.split(',') {
        let (Some(first), Some(last)) = (entry.find(':'), entry.rfind(':')) else {
            warnings.push(format!("{entry} does not have the form scheme:id:perm"));
            continue;
        };
        if first == last {
            warnings.push(format!("{entry} does not have the form scheme:id:perm"));
            continue;
        }
        let mut bits = 0;
        for c in entry[last + 1..].chars() {
            match c {
                'r' => bits |= perms::READ,
                'w' => bits |= perms::WRITE,
                'c' => bits |= perms::CREATE,
                'd' => bits |= perms::DELETE,
                'a' => bits |= perms::ADMIN,
                other => warnings.push(format!("Unknown perm type: {other}")),
            }
        }
        acl.push(Acl {
            perms: bits,
            id: Id {
                scheme: entry[..first].to_owned(),
                id: entry[first + 1..last].to_owned(),
            },
        });
    }
    (acl, warnings)
}

/// The ACL zkCli gives a node created without one.
pub fn open_acl() -> Vec<Acl> {
    vec![Acl {
        perms: perms::ALL,
        id: Id {
            scheme: "world".into(),
            id: "anyone".into(),
        },
    }]
}

/// KeeperException's text for a code.
pub fn code_message(code: ErrorCode) -> &'static str {
    use ErrorCode::*;
    match code {
        Ok => "ok",
        SystemError => "SystemError",
        RuntimeInconsistency => "RuntimeInconsistency",
        DataInconsistency => "DataInconsistency",
        ConnectionLoss => "ConnectionLoss",
        MarshallingError => "MarshallingError",
        Unimplemented => "Unimplemented",
        OperationTimeout => "OperationTimeout",
        BadArguments => "BadArguments",
        UnknownSession => "UnknownSession",
        NewConfigNoQuorum => "NewConfigNoQuorum",
        ReconfigInProgress => "ReconfigInProgress",
        ApiError => "APIError",
        NoNode => "NoNode",
        NoAuth => "NoAuth",
        BadVersion => "BadVersion",
        NoChildrenForEphemerals => "NoChildrenForEphemerals",
        NodeExists => "NodeExists",
        NotEmpty => "Directory not empty",
        SessionExpired => "Session expired",
        InvalidCallback => "Invalid callback",
        InvalidAcl => "InvalidACL",
        AuthFailed => "AuthFailed",
        SessionMoved => "Session moved",
        NotReadOnly => "Not a read-only call",
        EphemeralOnLocalSession => "Ephemeral node on local session",
        NoWatcher => "No such watcher",
        RequestTimeout => "Request timeout",
        ReconfigDisabled => "Reconfig is disabled",
        SessionClosedRequireSaslAuth => "Session closed because client failed to authenticate",
        QuotaExceeded => "Quota has exceeded",
        ThrottledOp => "Op throttled due to high load",
    }
}

/// `KeeperErrorCode = <text> for <path>`: KeeperException's own message.
pub fn keeper_message(code: ErrorCode, path: Option<&str>) -> String {
    match path {
        Some(p) => format!("KeeperErrorCode = {} for {p}", code_message(code)),
        None => format!("KeeperErrorCode = {}", code_message(code)),
    }
}

/// The message zkCli 3.8 prints for a failed command on `path`.
pub fn error_message(code: ErrorCode, path: &str) -> String {
    use ErrorCode::*;
    match code {
        NoNode => format!("Node does not exist: {path}"),
        NoChildrenForEphemerals => format!("Ephemerals cannot have children: {path}"),
        NodeExists => format!("Node already exists: {path}"),
        NotEmpty => format!("Node not empty: {path}"),
        NotReadOnly => format!("Not a read-only call: {path}"),
        InvalidAcl => format!("Acl is not valid : {path}"),
        NoAuth => format!("Insufficient permission : {path}"),
        BadArguments => format!("Arguments are not valid : {path}"),
        BadVersion => format!("version No is not valid : {path}"),
        ReconfigInProgress => {
            "Another reconfiguration is in progress -- concurrent reconfigs not supported (yet)"
                .to_owned()
        }
        NewConfigNoQuorum => "No quorum of new config is connected and up-to-date with the leader of last commmitted config - try invoking reconfiguration after new servers are connected and synced".to_owned(),
        other => keeper_message(other, Some(path)),
    }
}

/// An event type's name in WatchedEvent's text.
pub fn event_type_name(t: i32) -> &'static str {
    match t {
        1 => "NodeCreated",
        2 => "NodeDeleted",
        3 => "NodeDataChanged",
        4 => "NodeChildrenChanged",
        5 => "DataWatchRemoved",
        6 => "ChildWatchRemoved",
        7 => "PersistentWatchRemoved",
        _ => "None",
    }
}

/// `WatchedEvent state:.. type:.. path:..` as zkCli's watcher prints it.
pub fn event_text(state: &str, event_type: i32, path: Option<&str>) -> String {
    format!(
        "WatchedEvent state:{state} type:{} path:{}",
        event_type_name(event_type),
        path.unwrap_or("null")
    )
}

/// The client-side path check (ZooKeeper's PathUtils), with its messages.
/// A sequential create may end in '/'.
pub fn validate_path(path: &str, sequential: bool) -> Result<(), String> {
    if path.is_empty() {
        return Err("Path length must be > 0".into());
    }
    if !path.starts_with('/') {
        return Err("Path must start with / character".into());
    }
    if path.len() == 1 {
        return Ok(());
    }
    if path.ends_with('/') && !sequential {
        return Err("Path must not end with / character".into());
    }
    let chars: Vec<char> = path.chars().collect();
    for i in 1..chars.len() {
        let c = chars[i];
        let prev = chars[i - 1];
        let reason = if c == '\0' {
            Some("null character not allowed")
        } else if c == '/' && prev == '/' {
            Some("empty node name specified")
        } else if c == '.' && dot_segment(&chars, i) {
            Some("relative paths not allowed")
        } else if matches!(c, '\u{1}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{e000}'..='\u{f8ff}' | '\u{fff0}'..='\u{ffff}')
        {
            Some("invalid character")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(format!(
                "Invalid path string \"{path}\" caused by {reason} @{i}"
            ));
        }
    }
    Ok(())
}

/// Whether the path segment holding `chars[i]` is `.` or `..`.
fn dot_segment(chars: &[char], i: usize) -> bool {
    let start = chars[..i]
        .iter()
        .rposition(|&c| c == '/')
        .map_or(0, |p| p + 1);
    let end = chars[i..]
        .iter()
        .position(|&c| c == '/')
        .map_or(chars.len(), |p| i + p);
    end - start <= 2 && chars[start..end].iter().all(|&c| c == '.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_block_matches_zkcli() {
        let s = Stat {
            czxid: 2,
            mzxid: 0x42,
            ctime: 0,
            mtime: 1_795_631_774_000,
            version: 1,
            cversion: 2,
            aversion: 1,
            ephemeral_owner: 0x1000a,
            data_length: 1,
            num_children: 2,
            pzxid: 0x31,
        };
        assert_eq!(
            stat_text(&s),
            "cZxid = 0x2\nctime = Thu Jan 01 00:00:00 UTC 1970\nmZxid = 0x42\nmtime = Wed Nov 25 18:36:14 UTC 2026\npZxid = 0x31\ncversion = 2\ndataVersion = 1\naclVersion = 1\nephemeralOwner = 0x1000a\ndataLength = 1\nnumChildren = 2\n"
        );
    }

    #[test]
    fn acls_print_and_parse_like_zkcli() {
        assert_eq!(acl_text(&open_acl()), "'world,'anyone\n: cdrwa\n");
        let (acl, warnings) = parse_acl("digest:u:X1:rw,ip:10.0.0.1:xr,bad");
        assert_eq!(acl.len(), 2);
        assert_eq!((acl[0].id.id.as_str(), acl[0].perms), ("u:X1", 3));
        assert_eq!(perm_string(acl[1].perms), "r");
        assert_eq!(
            warnings,
            [
                "Unknown perm type: x",
                "bad does not have the form scheme:id:perm"
            ]
        );
    }

    #[test]
    fn errors_read_like_zkcli_3_8() {
        assert_eq!(
            error_message(ErrorCode::NoNode, "/a"),
            "Node does not exist: /a"
        );
        assert_eq!(
            error_message(ErrorCode::NoAuth, "/d"),
            "Insufficient permission : /d"
        );
        assert_eq!(
            error_message(ErrorCode::Unimplemented, "/t"),
            "KeeperErrorCode = Unimplemented for /t"
        );
        assert_eq!(
            error_message(ErrorCode::NotEmpty, "/a"),
            "Node not empty: /a"
        );
        assert_eq!(
            event_text("SyncConnected", 0, None),
            "WatchedEvent state:SyncConnected type:None path:null"
        );
    }

    #[test]
    fn paths_are_checked_before_sending() {
        assert!(validate_path("/a/b", false).is_ok());
        assert!(validate_path("/", false).is_ok());
        assert_eq!(
            validate_path("a", false).unwrap_err(),
            "Path must start with / character"
        );
        assert_eq!(
            validate_path("/a/", false).unwrap_err(),
            "Path must not end with / character"
        );
        assert!(validate_path("/a/", true).is_ok());
        assert_eq!(
            validate_path("/a//b", false).unwrap_err(),
            "Invalid path string \"/a//b\" caused by empty node name specified @3"
        );
        assert!(validate_path("/a/../b", false)
            .unwrap_err()
            .contains("relative paths not allowed"));
        assert!(validate_path("/a/.b", false).is_ok());
    }
}
