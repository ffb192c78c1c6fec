//! ZooKeeper's log format and txn rules, on hand-built bytes. (The whole
//! import is checked against files written by a real ZooKeeper 3.8.0 in
//! tests/python/test_import.py.)

use bytes::{BufMut, BytesMut};
use paddock_import::{read_log, LogRecord, ZkState};
use paddock_tree::{Node, NodeKind};
use std::sync::Arc;

const SESSION: i64 = 0x77;

fn string(out: &mut BytesMut, s: &str) {
    out.put_i32(s.len() as i32);
    out.put_slice(s.as_bytes());
}

fn open_acl(out: &mut BytesMut) {
    out.put_i32(1);
    out.put_i32(31);
    string(out, "world");
    string(out, "anyone");
}

fn create_body(path: &str, ephemeral: bool, parent_cversion: i32) -> BytesMut {
    let mut b = BytesMut::new();
    string(&mut b, path);
    b.put_i32(1);
    b.put_u8(b'd');
    open_acl(&mut b);
    b.put_u8(ephemeral as u8);
    b.put_i32(parent_cversion);
    b
}

fn path_body(path: &str) -> BytesMut {
    let mut b = BytesMut::new();
    string(&mut b, path);
    b
}

/// A log file: header, the records, then zero padding.
fn log_file(records: &[(i64, i32, BytesMut)]) -> Vec<u8> {
    let mut out = BytesMut::new();
    out.put_slice(b"ZKLG");
    out.put_i32(2);
    out.put_i64(1);
    for (zxid, txn_type, body) in records {
        let mut entry = BytesMut::new();
        entry.put_i64(SESSION);
        entry.put_i32(1);
        entry.put_i64(*zxid);
        entry.put_i64(1000 + zxid);
        entry.put_i32(*txn_type);
        entry.put_slice(body);
        out.put_i64(i64::from(adler2::adler32_slice(&entry)));
        out.put_i32(entry.len() as i32);
        out.put_slice(&entry);
        out.put_u8(b'B');
    }
    out.put_bytes(0, 64);
    out.to_vec()
}

fn root_state() -> ZkState {
    let mut state = ZkState::new(0);
    let acl = Arc::new(paddock_tree::acl::open_acl_unsafe());
    state.nodes.insert(
        "/".into(),
        Node::new("", None, acl, 0, 0, NodeKind::Persistent),
    );
    state
}

fn apply_all(state: &mut ZkState, records: &[LogRecord]) {
    for r in records {
        state.apply(r).expect("apply");
    }
}

#[test]
fn records_are_read_until_the_zero_padding() {
    let file = log_file(&[
        (1, -10, {
            let mut b = BytesMut::new();
            b.put_i32(5000);
            b
        }),
        (2, 1, create_body("/a", false, 1)),
    ]);
    let records = read_log(&file[..]).expect("read");
    assert_eq!(records.iter().map(|r| r.zxid).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(records[1].session_id, SESSION);
    assert_eq!(records[1].time_ms, 1002);
    assert_eq!(records[0].offset, 16);
}

#[test]
fn a_record_cut_short_ends_the_log_and_a_bad_checksum_is_an_error() {
    let file = log_file(&[(1, 1, create_body("/a", false, 1)), (2, 2, path_body("/a"))]);
    let records_end = file.len() - 64;
    for cut in records_end - 20..records_end {
        let records = read_log(&file[..cut]).expect("a torn tail is not an error");
        assert_eq!(records.len(), 1, "cut at {cut}");
    }
    let mut damaged = file.clone();
    damaged[16 + 12 + 30] ^= 0x40;
    let (offset, what) = read_log(&damaged[..]).expect_err("checksum");
    assert_eq!(offset, 16);
    assert!(what.contains("checksum"), "{what}");
    assert!(read_log(&b"ZKSN\0\0\0\x02"[..]).is_err());
}

#[test]
fn creates_deletes_and_session_close_follow_zookeeper() {
    let mut multi = BytesMut::new();
    multi.put_i32(2);
    for (t, body) in [
        (1, create_body("/m1", false, 4)),
        (1, create_body("/m2", false, 5)),
    ] {
        multi.put_i32(t);
        multi.put_i32(body.len() as i32);
        multi.put_slice(&body);
    }
    let mut set = path_body("/a");
    set.put_i32(-1);
    set.put_i32(3);
    let file = log_file(&[
        (1, 1, create_body("/a", false, 1)),
        (2, 1, create_body("/e", true, 2)),
        (3, 1, create_body("/a", false, 9)), // exists already: skipped
        (4, 5, set),
        (5, 14, multi),
        (6, -11, BytesMut::new()),
        (7, 2, path_body("/m1")),
    ]);
    let mut state = root_state();
    apply_all(&mut state, &read_log(&file[..]).expect("read"));
    assert_eq!(state.last_zxid, 7);
    assert!(
        !state.nodes.contains_key("/e"),
        "closeSession deletes its ephemerals"
    );
    assert!(!state.nodes.contains_key("/m1"));
    let a = &state.nodes["/a"];
    assert_eq!((a.czxid, a.mzxid, a.version, a.data()), (1, 4, 3, None));
    assert_eq!(a.ctime, 1001);
    let root = &state.nodes["/"];
    assert_eq!(
        root.child_creates, 5,
        "the cversion the multi's last create logged"
    );
    assert_eq!(root.pzxid, 7);
    let tree = state.into_tree(Default::default()).expect("tree");
    let stat = tree.stat("/").expect("root");
    assert_eq!((stat.num_children, stat.cversion), (2, 8));
}

#[test]
fn an_unknown_transaction_type_is_an_error_naming_its_zxid() {
    let file = log_file(&[(9, 99, BytesMut::new())]);
    let records = read_log(&file[..]).expect("read");
    let err = root_state().apply(&records[0]).expect_err("unknown");
    assert!(err.contains("0x9") && err.contains("99"), "{err}");
}

/// A snapshot holding only the root, with `data` as its data.
fn snapshot_file(data: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    out.put_slice(b"ZKSN");
    out.put_i32(2);
    out.put_i64(1);
    out.put_i32(1); // one session
    out.put_i64(SESSION);
    out.put_i32(4000);
    out.put_i32(0); // no ACL cache entries: the root uses the open ACL (-1)
    string(&mut out, "");
    out.put_i32(data.len() as i32);
    out.put_slice(data);
    out.put_i64(-1);
    for v in [0i64, 0, 0, 0] {
        out.put_i64(v);
    }
    for v in [0i32, 0, 0] {
        out.put_i32(v);
    }
    out.put_i64(0);
    out.put_i64(0);
    string(&mut out, "/");
    let sum = adler2::adler32_slice(&out);
    out.put_i64(i64::from(sum));
    string(&mut out, "/");
    out.to_vec()
}

#[test]
fn a_damaged_newest_snapshot_falls_back_to_an_older_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let v2 = dir.path().join("version-2");
    std::fs::create_dir(&v2).expect("mkdir");
    std::fs::write(v2.join("snapshot.0"), snapshot_file(b"old")).expect("write");
    let mut damaged = snapshot_file(b"new");
    let at = damaged.len() - 40;
    damaged[at] ^= 1;
    std::fs::write(v2.join("snapshot.5"), &damaged).expect("write");
    assert!(paddock_import::read_snapshot(&damaged, 5).is_err());

    let imported =
        paddock_import::import_dir(dir.path(), None, Default::default()).expect("import");
    assert!(imported.snapshot.ends_with("snapshot.0"));
    assert_eq!(
        imported.tree.node("/").and_then(Node::data),
        Some(&b"old"[..])
    );
    assert!(imported.tree.session_exists(SESSION));

    std::fs::write(v2.join("snapshot.0"), &damaged).expect("write");
    let err = paddock_import::import_dir(dir.path(), None, Default::default())
        .err()
        .expect("no intact snapshot");
    assert!(
        err.to_string().contains("no intact ZooKeeper snapshot"),
        "{err}"
    );
}
