//! A snapshot rebuilds exactly the tree it was taken from.

use bytes::{Bytes, BytesMut};
use paddock_proto::*;
use paddock_tree::acl;
use paddock_tree::*;

fn txn(session_id: i64, op: TxnOp) -> Txn {
    Txn {
        session_id,
        time_ms: 1_000,
        auth: vec![acl::id("digest", &acl::digest_id("u:p"))],
        op,
    }
}

fn create(opcode: i32, path: &str, flags: i32, acl: Vec<Acl>) -> TxnOp {
    TxnOp::Write(Request::Create {
        opcode,
        req: CreateRequest {
            path: path.into(),
            data: if flags == 1 {
                None
            } else {
                Some(Bytes::from(path.to_owned()))
            },
            acl,
            flags,
        },
    })
}

fn encode(t: &DataTree) -> Bytes {
    let mut out = BytesMut::new();
    t.encode_snapshot(&mut out);
    out.freeze()
}

#[test]
fn a_snapshot_round_trips_nodes_sessions_and_indexes() {
    let config = TreeConfig {
        extended_types: true,
    };
    let mut t = DataTree::new(config);
    t.apply(&txn(7, TxnOp::CreateSession { timeout_ms: 5000 }));
    t.apply(&txn(8, TxnOp::CreateSession { timeout_ms: 9000 }));
    let creator = vec![Acl {
        perms: 31,
        id: acl::id("auth", ""),
    }];
    for (opcode, path, flags, a) in [
        (op::CREATE, "/a", 0, acl::open_acl_unsafe()),
        (op::CREATE, "/a/b", 0, creator.clone()),
        (op::CREATE, "/a/s-", 2, acl::open_acl_unsafe()),
        (op::CREATE, "/a/e", 1, acl::open_acl_unsafe()),
        (op::CREATE_CONTAINER, "/box", 4, acl::open_acl_unsafe()),
        (op::CREATE, "/box/x", 0, creator),
    ] {
        assert!(
            t.apply(&txn(7, create(opcode, path, flags, a)))
                .result
                .is_ok(),
            "{path}"
        );
    }
    t.apply(&txn(
        7,
        TxnOp::Write(Request::Delete(DeleteRequest {
            path: "/box/x".into(),
            version: -1,
        })),
    ));
    t.apply(&txn(
        7,
        TxnOp::Write(Request::SetData(SetDataRequest {
            path: "/a".into(),
            data: None,
            version: 0,
        })),
    ));
    let bytes = encode(&t);
    assert_eq!(t.freeze().snapshot_len(), bytes.len(), "counted as written");
    let back = DataTree::decode_snapshot(&mut Reader::new(bytes.clone()), config).unwrap();
    assert_eq!(encode(&back), bytes, "the same bytes again");
    let mut paths = Vec::new();
    t.walk(|p, _| paths.push(p.to_owned()));
    for p in &paths {
        assert_eq!(back.stat(p), t.stat(p), "{p}");
        assert_eq!(back.children(p), t.children(p), "{p}");
    }
    assert_eq!(back.last_zxid(), t.last_zxid());
    assert_eq!(back.sessions(), t.sessions());
    assert_eq!(back.ephemerals_of(7).collect::<Vec<_>>(), vec!["/a/e"]);
    assert_eq!(back.reapable_at(i64::MAX), vec!["/box".to_string()]);
    assert_eq!(back.node_count(), t.node_count());
    // The rebuilt tree keeps working: sequence numbers continue.
    let mut back = back;
    let r = back.apply(&txn(
        7,
        create(op::CREATE, "/a/s-", 2, acl::open_acl_unsafe()),
    ));
    assert_eq!(
        r.result,
        Ok(Response::Create {
            path: "/a/s-0000000003".into()
        })
    );
}

#[test]
fn a_snapshot_encoded_in_parts_is_the_same_bytes() {
    let mut t = DataTree::new(TreeConfig::default());
    t.apply(&txn(7, TxnOp::CreateSession { timeout_ms: 5000 }));
    for i in 0..50 {
        t.apply(&txn(
            7,
            create(op::CREATE, &format!("/n{i}"), 0, acl::open_acl_unsafe()),
        ));
    }
    let whole = encode(&t);
    let mut parts = Vec::new();
    let mut buf = BytesMut::new();
    t.freeze().encode_snapshot_in_parts(&mut buf, 100, |part| {
        assert!(!part.is_empty());
        parts.push(part.split().freeze());
    });
    assert!(parts.len() > 10, "{} parts", parts.len());
    assert!(parts[..parts.len() - 1].iter().all(|p| p.len() >= 100));
    assert_eq!(parts.concat(), whole.to_vec());
}

#[test]
fn the_approximate_data_size_sums_every_path_and_value() {
    let mut t = DataTree::new(TreeConfig::default());
    t.apply(&txn(7, TxnOp::CreateSession { timeout_ms: 5000 }));
    // System nodes: "/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config", no data.
    let system = 1 + 10 + 16 + 17;
    assert_eq!(t.approximate_data_size(), system);
    for p in ["/a", "/a/bc", "/a/bc/d", "/e"] {
        t.apply(&txn(7, create(op::CREATE, p, 0, acl::open_acl_unsafe())));
    }
    t.apply(&txn(
        7,
        create(op::CREATE, "/a/null", 1, acl::open_acl_unsafe()),
    ));
    // Each created node holds its own path as data, but /a/null holds none.
    let created = 2 * (2 + 5 + 7 + 2) + 7;
    assert_eq!(t.approximate_data_size(), system + created);
}

#[test]
fn a_truncated_snapshot_is_an_error() {
    let t = DataTree::new(TreeConfig::default());
    let bytes = encode(&t);
    for cut in 0..bytes.len() {
        assert!(DataTree::decode_snapshot(
            &mut Reader::new(bytes.slice(..cut)),
            TreeConfig::default()
        )
        .is_err());
    }
}

#[test]
fn a_snapshot_with_a_node_before_its_parent_or_a_path_twice_is_an_error() {
    let snapshot = |paths: &[&str]| {
        let mut out = BytesMut::new();
        Jute::write(&5i64, &mut out);
        Jute::write(&0i32, &mut out);
        Jute::write(&(paths.len() as i32), &mut out);
        for p in paths {
            Jute::write(&p.to_string(), &mut out);
            Jute::write(&None::<Bytes>, &mut out);
            Jute::write(&Vec::<Acl>::new(), &mut out);
            for _ in 0..6 {
                Jute::write(&0i64, &mut out);
            }
            for _ in 0..3 {
                Jute::write(&0i32, &mut out);
            }
        }
        DataTree::decode_snapshot(&mut Reader::new(out.freeze()), TreeConfig::default())
    };
    let tree = snapshot(&["/", "/a", "/a/b"]).expect("parents first");
    assert_eq!(tree.children("/a"), Some(vec!["b".to_string()]));
    // Sorted by path, as older snapshots are: a node's parent is not
    // always the previous node's.
    let sorted = ["/", "/a", "/a-c", "/a-c/d", "/a/b", "/a/b/e", "/a/f", "/g"];
    let tree = snapshot(&sorted).expect("sorted paths have parents first");
    assert_eq!(
        tree.children("/a"),
        Some(vec!["b".to_string(), "f".to_string()])
    );
    assert_eq!(tree.children("/a-c"), Some(vec!["d".to_string()]));
    assert_eq!(tree.children("/a/b"), Some(vec!["e".to_string()]));
    for bad in [
        &["/", "/a/b", "/a"][..],
        &["/a", "/"],
        &["/", "/a", "/a"],
        &["/", "/"],
        &["/", "/a", "/a/b", "/a/c", "/x/y"],
        &["/", "/a", "/a/b", "/a/b"],
    ] {
        let err = snapshot(bad).err().map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("has no parent") || e.contains("appears twice")),
            "{bad:?}: {err:?}"
        );
    }
}

#[test]
fn replicas_that_applied_the_same_txns_share_a_digest_and_any_change_moves_it() {
    let config = TreeConfig::default();
    let build = |data: &str| {
        let mut t = DataTree::new(config);
        t.apply(&txn(7, TxnOp::CreateSession { timeout_ms: 5000 }));
        t.apply(&txn(7, create(op::CREATE, "/a", 0, acl::open_acl_unsafe())));
        t.apply(&txn(
            7,
            TxnOp::Write(Request::SetData(SetDataRequest {
                path: "/a".into(),
                data: Some(Bytes::from(data.to_owned())),
                version: -1,
            })),
        ));
        t
    };
    let (mut a, b, c) = (build("x"), build("x"), build("y"));
    assert_eq!(a.digest(), b.digest());
    assert_ne!(a.digest(), c.digest());
    let before = a.digest();
    a.apply(&txn(
        0,
        TxnOp::SetConfig {
            servers: "server.1=h:1:2:participant\n".into(),
        },
    ));
    assert_ne!(a.digest(), before, "the replicated config node counts");
    let mut decoded = DataTree::decode_snapshot(&mut Reader::new(encode(&b)), config).unwrap();
    assert_eq!(decoded.digest(), b.digest());
    decoded.apply(&txn(7, TxnOp::CloseSession));
    assert_ne!(decoded.digest(), b.digest());
}

#[test]
fn a_frozen_tree_keeps_its_state_while_the_live_tree_changes() {
    let mut t = DataTree::new(TreeConfig::default());
    t.apply(&txn(7, TxnOp::CreateSession { timeout_ms: 5000 }));
    // Several chunks of nodes, some of them ephemeral.
    let n = 10_000;
    for i in 0..n {
        let flags = if i % 10 == 0 { 1 } else { 0 };
        t.apply(&txn(
            7,
            create(op::CREATE, &format!("/n{i}"), flags, acl::open_acl_unsafe()),
        ));
    }
    let then = encode(&t);
    let frozen = t.freeze();
    // Change every chunk: new data, deletes whose slots creates then
    // reuse, more nodes, and the session closed with its ephemerals.
    for i in (1..n).step_by(7) {
        t.apply(&txn(
            7,
            TxnOp::Write(Request::SetData(SetDataRequest {
                path: format!("/n{i}"),
                data: Some(Bytes::from_static(b"changed")),
                version: -1,
            })),
        ));
    }
    for i in (3..n).step_by(11) {
        t.apply(&txn(
            7,
            TxnOp::Write(Request::Delete(DeleteRequest {
                path: format!("/n{i}"),
                version: -1,
            })),
        ));
    }
    for i in 0..n / 5 {
        t.apply(&txn(
            7,
            create(op::CREATE, &format!("/m{i}"), 0, acl::open_acl_unsafe()),
        ));
    }
    t.apply(&txn(7, TxnOp::CloseSession));

    let mut out = BytesMut::new();
    frozen.encode_snapshot(&mut out);
    assert_eq!(out.freeze(), then, "the frozen tree is the tree as it was");
    assert_eq!(frozen.last_zxid(), n as i64 + 1);
    drop(frozen);

    // The live tree has every change, and encodes to a tree that has them.
    let now = encode(&t);
    let back = DataTree::decode_snapshot(&mut Reader::new(now), TreeConfig::default()).unwrap();
    assert_eq!(back.node("/n8").and_then(Node::data), Some(&b"changed"[..]));
    assert_eq!(back.node("/n2").and_then(Node::data), Some(&b"/n2"[..]));
    assert!(back.node("/n3").is_none(), "deleted");
    assert!(
        back.node("/n10").is_none(),
        "an ephemeral of the closed session"
    );
    assert!(back.node(&format!("/m{}", n / 5 - 1)).is_some());
    assert!(back.sessions().is_empty());
    let deleted = (3..n).step_by(11).filter(|i| i % 10 != 0).count();
    let ephemerals = n / 10;
    assert_eq!(back.node_count(), t.node_count());
    let fresh = DataTree::new(TreeConfig::default()).node_count();
    assert_eq!(t.node_count(), fresh + n - deleted - ephemerals + n / 5);
}
