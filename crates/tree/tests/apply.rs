//! Txn apply, asserted exactly: resulting state, replies and events.
//! Each test names the ZooKeeper behaviour it pins.

use bytes::Bytes;
use paddock_proto::consts::{event, perms};
use paddock_proto::*;
use paddock_tree::acl::{self, digest_id};
use paddock_tree::*;

const S1: i64 = 0x0100_0000_0000_0001;
const S2: i64 = 0x0100_0000_0000_0002;

struct Fixture {
    tree: DataTree,
    time_ms: i64,
}

impl Fixture {
    fn new() -> Self {
        Self::with(TreeConfig::default())
    }

    fn with(config: TreeConfig) -> Self {
        let mut f = Fixture {
            tree: DataTree::new(config),
            time_ms: 1_000,
        };
        f.txn(S1, vec![], TxnOp::CreateSession { timeout_ms: 4000 });
        f.txn(S2, vec![], TxnOp::CreateSession { timeout_ms: 4000 });
        f
    }

    fn txn(&mut self, session_id: i64, auth: Vec<Id>, op: TxnOp) -> Applied {
        self.time_ms += 10;
        self.tree.apply(&Txn {
            session_id,
            time_ms: self.time_ms,
            auth,
            op,
        })
    }

    fn write(&mut self, req: Request) -> Applied {
        self.txn(S1, vec![], TxnOp::Write(req))
    }

    fn create(&mut self, path: &str, flags: i32) -> Result<Response, ErrorCode> {
        self.write(create_req(op::CREATE, path, flags, acl::open_acl_unsafe()))
            .result
    }

    fn stat(&self, path: &str) -> Stat {
        self.tree.stat(path).expect("node exists")
    }

    fn children(&self, path: &str) -> Vec<String> {
        match self.tree.read(S1, &get_children(path), &[]) {
            Ok(Response::GetChildren { children }) => children,
            other => panic!("getChildren({path}) gave {other:?}"),
        }
    }
}

fn create_req(opcode: i32, path: &str, flags: i32, acl: Vec<Acl>) -> Request {
    Request::Create {
        opcode,
        req: CreateRequest {
            path: path.into(),
            data: Some(Bytes::from_static(b"d")),
            acl,
            flags,
        },
    }
}

fn delete(path: &str, version: i32) -> Request {
    Request::Delete(DeleteRequest {
        path: path.into(),
        version,
    })
}

fn set_data(path: &str, data: Option<&'static [u8]>, version: i32) -> Request {
    Request::SetData(SetDataRequest {
        path: path.into(),
        data: data.map(Bytes::from_static),
        version,
    })
}

fn get_children(path: &str) -> Request {
    Request::GetChildren(PathWatchRequest {
        path: path.into(),
        watch: false,
    })
}

fn get_data(path: &str) -> Request {
    Request::GetData(PathWatchRequest {
        path: path.into(),
        watch: false,
    })
}

/// Events as (type, path), the part these tests pin.
fn ev(event_type: i32, path: &str) -> (i32, String) {
    (event_type, path.into())
}

fn events(applied: &Applied) -> Vec<(i32, String)> {
    applied
        .events
        .iter()
        .map(|e| (e.event_type, e.path.clone()))
        .collect()
}

#[test]
fn a_fresh_tree_has_the_system_nodes_with_zookeepers_stats() {
    let t = DataTree::new(TreeConfig::default());
    assert_eq!(t.node_count(), 5, "srvr shows 5 nodes on a fresh ZooKeeper");
    let zk = t.stat("/zookeeper").unwrap();
    assert_eq!((zk.cversion, zk.num_children), (-2, 2));
    let config = t.stat("/zookeeper/config").unwrap();
    assert_eq!(
        config,
        Stat {
            aversion: -1,
            ..Stat::default()
        }
    );
    let root = t.stat("/").unwrap();
    assert_eq!((root.czxid, root.cversion, root.num_children), (0, -1, 1));
}

#[test]
fn create_sets_the_full_stat_and_updates_the_parent() {
    let mut f = Fixture::new();
    let before = f.tree.last_zxid();
    assert_eq!(
        f.create("/a", 0),
        Ok(Response::Create { path: "/a".into() })
    );
    let zxid = before + 1;
    assert_eq!(
        f.stat("/a"),
        Stat {
            czxid: zxid,
            mzxid: zxid,
            ctime: f.time_ms,
            mtime: f.time_ms,
            version: 0,
            cversion: 0,
            aversion: 0,
            ephemeral_owner: 0,
            data_length: 1,
            num_children: 0,
            pzxid: zxid,
        }
    );
    let root = f.stat("/");
    assert_eq!((root.pzxid, root.num_children, root.cversion), (zxid, 2, 0));
}

#[test]
fn create2_and_container_replies_carry_the_stat() {
    let mut f = Fixture::new();
    let r = f.write(create_req(op::CREATE2, "/c2", 0, acl::open_acl_unsafe()));
    let stat = f.stat("/c2");
    assert_eq!(
        r.result,
        Ok(Response::Create2 {
            path: "/c2".into(),
            stat
        })
    );
    let r = f.write(create_req(
        op::CREATE_CONTAINER,
        "/box",
        4,
        acl::open_acl_unsafe(),
    ));
    assert!(matches!(r.result, Ok(Response::Create2 { .. })));
    assert_eq!(
        f.stat("/box").ephemeral_owner,
        0,
        "container owner is masked"
    );
}

#[test]
fn cversion_counts_creates_and_deletes_and_sequence_numbers_count_creates() {
    let mut f = Fixture::new();
    f.create("/a", 0).unwrap();
    assert_eq!(
        f.create("/a/s-", 2),
        Ok(Response::Create {
            path: "/a/s-0000000000".into()
        })
    );
    assert_eq!(
        f.create("/a/s-", 2),
        Ok(Response::Create {
            path: "/a/s-0000000001".into()
        })
    );
    f.write(delete("/a/s-0000000000", -1)).result.unwrap();
    assert_eq!(f.stat("/a").cversion, 3, "2 creates + 1 delete");
    assert_eq!(
        f.create("/a/t-", 2),
        Ok(Response::Create {
            path: "/a/t-0000000002".into()
        })
    );
    assert_eq!(
        f.create("/a/", 2),
        Ok(Response::Create {
            path: "/a/0000000003".into()
        })
    );
}

#[test]
fn create_reports_errors_in_zookeepers_order() {
    let mut f = Fixture::new();
    f.create("/a", 0).unwrap();
    f.create("/eph", 1).unwrap();
    for (path, flags, want) in [
        ("a", 0, ErrorCode::BadArguments),
        ("/a/", 0, ErrorCode::BadArguments),
        ("/x/y", 0, ErrorCode::NoNode),
        ("/a//b", 0, ErrorCode::NoNode),
        ("/a/./b", 0, ErrorCode::NoNode),
        ("/.", 0, ErrorCode::BadArguments),
        ("/a\u{1}", 0, ErrorCode::BadArguments),
        ("/😀", 0, ErrorCode::BadArguments),
        ("/a", 0, ErrorCode::NodeExists),
        ("/", 0, ErrorCode::NodeExists),
        ("/eph/c", 0, ErrorCode::NoChildrenForEphemerals),
        ("/b", 7, ErrorCode::BadArguments),
        ("/b", 5, ErrorCode::Unimplemented),
    ] {
        assert_eq!(
            f.create(path, flags),
            Err(want),
            "create {path:?} flags {flags}"
        );
    }
    let bad_acl = vec![Acl {
        perms: 31,
        id: acl::id("digest", "nocolon"),
    }];
    let r = f.write(create_req(op::CREATE, "/x/y", 0, bad_acl));
    assert_eq!(
        r.result,
        Err(ErrorCode::InvalidAcl),
        "ACL is checked before the parent"
    );
    let r = f.write(create_req(op::CREATE, "/b", 0, vec![]));
    assert_eq!(r.result, Err(ErrorCode::InvalidAcl));
}

#[test]
fn every_write_consumes_a_zxid_even_when_it_fails() {
    let mut f = Fixture::new();
    let z = f.tree.last_zxid();
    let r = f.create("/missing/child", 0);
    assert_eq!(r, Err(ErrorCode::NoNode));
    assert_eq!(f.tree.last_zxid(), z + 1);
    let applied = f.write(delete("/nope", -1));
    assert_eq!(
        (applied.zxid, applied.result),
        (z + 2, Err(ErrorCode::NoNode))
    );
}

#[test]
fn creator_all_acl_needs_an_authenticated_identity() {
    let mut f = Fixture::new();
    let creator_all = vec![Acl {
        perms: perms::ALL,
        id: acl::id("auth", ""),
    }];
    let r = f.write(create_req(op::CREATE, "/p", 0, creator_all.clone()));
    assert_eq!(r.result, Err(ErrorCode::InvalidAcl));
    let me = acl::id("digest", &digest_id("bob:pw"));
    let r = f.txn(
        S1,
        vec![acl::id("ip", "127.0.0.1"), me.clone()],
        TxnOp::Write(create_req(op::CREATE, "/p", 0, creator_all)),
    );
    assert!(r.result.is_ok());
    let got = f.tree.read(
        S1,
        &Request::GetAcl(PathRequest { path: "/p".into() }),
        std::slice::from_ref(&me),
    );
    assert!(
        matches!(got, Ok(Response::GetAcl { ref acl, .. }) if acl == &vec![Acl { perms: 31, id: me.clone() }])
    );
    assert_eq!(
        f.tree.read(S1, &get_data("/p"), &[]),
        Err(ErrorCode::NoAuth)
    );
    assert_eq!(
        f.write(set_data("/p", None, -1)).result,
        Err(ErrorCode::NoAuth)
    );
}

#[test]
fn get_acl_needs_read_or_admin_and_hides_digests_without_admin() {
    let mut f = Fixture::new();
    let read_only = vec![
        Acl {
            perms: perms::READ,
            id: acl::id("world", "anyone"),
        },
        Acl {
            perms: perms::ALL,
            id: acl::id("digest", "bob:hash="),
        },
    ];
    f.write(create_req(op::CREATE, "/r", 0, read_only))
        .result
        .unwrap();
    let got = f
        .tree
        .read(S1, &Request::GetAcl(PathRequest { path: "/r".into() }), &[]);
    let Ok(Response::GetAcl { acl, .. }) = got else {
        panic!("{got:?}")
    };
    assert_eq!(acl[1].id.id, "bob:x");
    let admin_only = vec![Acl {
        perms: perms::ADMIN,
        id: acl::id("world", "anyone"),
    }];
    f.write(create_req(op::CREATE, "/adm", 0, admin_only))
        .result
        .unwrap();
    assert!(f
        .tree
        .read(
            S1,
            &Request::GetAcl(PathRequest {
                path: "/adm".into()
            }),
            &[]
        )
        .is_ok());
    let none = vec![Acl {
        perms: perms::WRITE,
        id: acl::id("world", "anyone"),
    }];
    f.write(create_req(op::CREATE, "/w", 0, none))
        .result
        .unwrap();
    assert_eq!(
        f.tree
            .read(S1, &Request::GetAcl(PathRequest { path: "/w".into() }), &[]),
        Err(ErrorCode::NoAuth)
    );
}

#[test]
fn super_bypasses_acls() {
    let mut f = Fixture::new();
    let r = f.txn(
        S1,
        vec![acl::id("super", "")],
        TxnOp::Write(set_data("/zookeeper/config", Some(b"x"), -1)),
    );
    assert!(r.result.is_ok());
    assert_eq!(
        f.write(set_data("/zookeeper/config", Some(b"y"), -1))
            .result,
        Err(ErrorCode::NoAuth)
    );
}

#[test]
fn delete_checks_special_paths_parent_version_and_children() {
    let mut f = Fixture::new();
    f.create("/a", 0).unwrap();
    f.create("/a/b", 0).unwrap();
    for p in [
        "/",
        "/zookeeper",
        "/zookeeper/quota",
        "/zookeeper/config",
        "nope",
    ] {
        assert_eq!(
            f.write(delete(p, -1)).result,
            Err(ErrorCode::BadArguments),
            "{p}"
        );
    }
    assert_eq!(f.write(delete("/x/y", -1)).result, Err(ErrorCode::NoNode));
    assert_eq!(f.write(delete("/a", 5)).result, Err(ErrorCode::BadVersion));
    assert_eq!(f.write(delete("/a", -1)).result, Err(ErrorCode::NotEmpty));
    let applied = f.write(delete("/a/b", 0));
    assert_eq!(applied.result, Ok(Response::Empty));
    assert_eq!(
        events(&applied),
        vec![
            ev(event::NODE_DELETED, "/a/b"),
            ev(event::NODE_CHILDREN_CHANGED, "/a")
        ]
    );
    assert_eq!(f.stat("/a").pzxid, applied.zxid);
}

#[test]
fn set_data_bumps_version_and_keeps_null_distinct_from_empty() {
    let mut f = Fixture::new();
    f.create("/a", 0).unwrap();
    let applied = f.write(set_data("/a", None, 0));
    let Ok(Response::Stat(stat)) = applied.result.clone() else {
        panic!()
    };
    assert_eq!(
        (stat.version, stat.data_length, stat.mzxid),
        (1, 0, applied.zxid)
    );
    assert_eq!(events(&applied), vec![ev(event::NODE_DATA_CHANGED, "/a")]);
    assert!(matches!(
        f.tree.read(S1, &get_data("/a"), &[]),
        Ok(Response::GetData { data: None, .. })
    ));
    f.write(set_data("/a", Some(b""), 1)).result.unwrap();
    assert!(
        matches!(f.tree.read(S1, &get_data("/a"), &[]), Ok(Response::GetData { data: Some(d), .. }) if d.is_empty())
    );
    assert_eq!(
        f.write(set_data("/a", Some(b"x"), 1)).result,
        Err(ErrorCode::BadVersion)
    );
    assert_eq!(
        f.write(set_data("/a/", Some(b"x"), 1)).result,
        Err(ErrorCode::BadArguments)
    );
}

#[test]
fn set_acl_checks_aversion_and_needs_admin() {
    let mut f = Fixture::new();
    f.create("/a", 0).unwrap();
    let set = |version| {
        Request::SetAcl(SetAclRequest {
            path: "/a".into(),
            acl: vec![Acl {
                perms: perms::READ,
                id: acl::id("world", "anyone"),
            }],
            version,
        })
    };
    assert_eq!(f.write(set(3)).result, Err(ErrorCode::BadVersion));
    let Ok(Response::Stat(stat)) = f.write(set(0)).result else {
        panic!()
    };
    assert_eq!(stat.aversion, 1);
    assert_eq!(
        f.write(set(-1)).result,
        Err(ErrorCode::NoAuth),
        "READ-only now: no ADMIN"
    );
}

#[test]
fn a_failed_multi_changes_nothing_and_reports_each_op() {
    let mut f = Fixture::new();
    f.create("/a", 0).unwrap();
    let root = f.stat("/");
    let failing = f.write(Request::Multi(vec![
        create_req(op::CREATE, "/m", 0, acl::open_acl_unsafe()),
        create_req(op::CREATE, "/a", 0, acl::open_acl_unsafe()),
        delete("/m", -1),
    ]));
    assert_eq!(
        failing.result,
        Ok(Response::Multi(vec![
            MultiResult::Error { err: 0 },
            MultiResult::Error {
                err: ErrorCode::NodeExists.code()
            },
            MultiResult::Error {
                err: ErrorCode::RuntimeInconsistency.code()
            },
        ]))
    );
    assert!(failing.events.is_empty());
    assert!(f.tree.stat("/m").is_none());
    assert_eq!(f.stat("/"), root);
    assert_eq!(
        failing.zxid,
        f.tree.last_zxid(),
        "a failed multi consumes a zxid"
    );
}

#[test]
fn a_multi_that_deletes_and_recreates_then_fails_restores_everything() {
    let mut f = Fixture::new();
    f.create("/a", 0).unwrap();
    f.create("/a/e", 1).unwrap();
    let root = f.stat("/");
    let a = f.stat("/a");
    let e = f.stat("/a/e");
    let applied = f.write(Request::Multi(vec![
        delete("/a/e", -1),
        create_req(op::CREATE, "/a/e", 0, acl::open_acl_unsafe()),
        set_data("/a", Some(b"changed"), -1),
        create_req(op::CREATE, "/new", 0, acl::open_acl_unsafe()),
        Request::Check(CheckVersionRequest {
            path: "/a".into(),
            version: 42,
        }),
    ]));
    let Ok(Response::Multi(results)) = applied.result else {
        panic!()
    };
    assert_eq!(
        results[4],
        MultiResult::Error {
            err: ErrorCode::BadVersion.code()
        }
    );
    assert_eq!((f.stat("/"), f.stat("/a"), f.stat("/a/e")), (root, a, e));
    assert_eq!(
        f.tree.ephemerals_of(S1).cloned().collect::<Vec<_>>(),
        vec!["/a/e".to_string()]
    );
    assert!(f.tree.stat("/new").is_none());
}

#[test]
fn a_successful_multi_shares_one_zxid_and_fires_every_ops_events() {
    let mut f = Fixture::new();
    let applied = f.write(Request::Multi(vec![
        create_req(op::CREATE, "/m", 0, acl::open_acl_unsafe()),
        set_data("/m", Some(b"x"), 0),
        Request::Check(CheckVersionRequest {
            path: "/m".into(),
            version: 1,
        }),
        create_req(op::CREATE2, "/m/c", 0, acl::open_acl_unsafe()),
    ]));
    let z = applied.zxid;
    let Ok(Response::Multi(results)) = &applied.result else {
        panic!()
    };
    assert_eq!(results[0], MultiResult::Create { path: "/m".into() });
    assert!(
        matches!(&results[1], MultiResult::SetData { stat } if stat.version == 1 && stat.mzxid == z)
    );
    assert_eq!(results[2], MultiResult::Check);
    assert!(
        matches!(&results[3], MultiResult::Create2 { path, stat } if path == "/m/c" && stat.czxid == z)
    );
    assert_eq!(
        events(&applied),
        vec![
            ev(event::NODE_CREATED, "/m"),
            ev(event::NODE_CHILDREN_CHANGED, "/"),
            ev(event::NODE_DATA_CHANGED, "/m"),
            ev(event::NODE_CREATED, "/m/c"),
            ev(event::NODE_CHILDREN_CHANGED, "/m"),
        ]
    );
    assert_eq!(f.tree.last_zxid(), z);
}

#[test]
fn an_empty_multi_succeeds_with_no_results() {
    let mut f = Fixture::new();
    assert_eq!(
        f.write(Request::Multi(vec![])).result,
        Ok(Response::Multi(vec![]))
    );
}

#[test]
fn closing_a_session_deletes_its_ephemerals_and_fires_their_events() {
    let mut f = Fixture::new();
    f.create("/a", 0).unwrap();
    f.create("/a/e1", 1).unwrap();
    f.create("/a/e2-", 3).unwrap();
    f.txn(
        S2,
        vec![],
        TxnOp::Write(create_req(op::CREATE, "/other", 1, acl::open_acl_unsafe())),
    )
    .result
    .unwrap();
    assert_eq!(f.stat("/a/e1").ephemeral_owner, S1);
    let applied = f.txn(S1, vec![], TxnOp::CloseSession);
    assert_eq!(
        events(&applied),
        vec![
            ev(event::NODE_DELETED, "/a/e1"),
            ev(event::NODE_CHILDREN_CHANGED, "/a"),
            ev(event::NODE_DELETED, "/a/e2-0000000001"),
            ev(event::NODE_CHILDREN_CHANGED, "/a"),
        ]
    );
    assert!(f.children("/a").is_empty());
    assert!(!f.tree.session_exists(S1));
    assert_eq!(f.tree.ephemeral_count(), 1);
    assert_eq!(f.create("/late", 0), Err(ErrorCode::SessionExpired));
}

#[test]
fn ttl_nodes_need_extended_types_and_a_valid_ttl() {
    let ttl = |flags, ttl| {
        Request::CreateTtl(CreateTtlRequest {
            path: "/t".into(),
            data: None,
            acl: acl::open_acl_unsafe(),
            flags,
            ttl,
        })
    };
    let mut f = Fixture::new();
    assert_eq!(f.write(ttl(5, 100)).result, Err(ErrorCode::Unimplemented));
    let mut f = Fixture::with(TreeConfig {
        extended_types: true,
    });
    assert_eq!(f.write(ttl(5, 0)).result, Err(ErrorCode::BadArguments));
    assert_eq!(
        f.write(ttl(5, 1 << 40)).result,
        Err(ErrorCode::BadArguments)
    );
    assert_eq!(f.write(ttl(0, 100)).result, Err(ErrorCode::BadArguments));
    assert!(f.write(ttl(5, 100)).result.is_ok());
    assert_eq!(f.stat("/t").ephemeral_owner, 0);
    let created = f.time_ms;
    assert!(f.tree.reapable_at(created + 100).is_empty());
    assert_eq!(f.tree.reapable_at(created + 101), vec!["/t".to_string()]);
}

#[test]
fn containers_are_reapable_once_emptied_after_having_a_child() {
    let mut f = Fixture::new();
    f.write(create_req(
        op::CREATE_CONTAINER,
        "/c",
        4,
        acl::open_acl_unsafe(),
    ))
    .result
    .unwrap();
    assert!(
        f.tree.reapable_at(i64::MAX).is_empty(),
        "never-used containers stay"
    );
    f.create("/c/x", 0).unwrap();
    assert!(f.tree.reapable_at(i64::MAX).is_empty(), "not empty");
    f.write(delete("/c/x", -1)).result.unwrap();
    assert_eq!(f.tree.reapable_at(0), vec!["/c".to_string()]);
    let reap = f.txn(
        SYSTEM_SESSION,
        vec![],
        TxnOp::Write(Request::DeleteContainer(DeleteContainerRequest {
            path: Some(Bytes::from_static(b"/c")),
        })),
    );
    assert_eq!(reap.result, Ok(Response::Empty));
    assert!(f.tree.stat("/c").is_none());
}

#[test]
fn reads_report_no_node_and_no_auth() {
    let mut f = Fixture::new();
    assert_eq!(
        f.tree.read(S1, &get_data("/nope"), &[]),
        Err(ErrorCode::NoNode)
    );
    assert_eq!(
        f.tree.read(S1, &get_children("bad"), &[]),
        Err(ErrorCode::NoNode)
    );
    let exists = |p: &str| {
        Request::Exists(PathWatchRequest {
            path: p.into(),
            watch: false,
        })
    };
    assert_eq!(
        f.tree.read(S1, &exists("/a\0"), &[]),
        Err(ErrorCode::BadArguments)
    );
    let secret = vec![Acl {
        perms: perms::ALL,
        id: acl::id("ip", "10.0.0.1"),
    }];
    f.write(create_req(op::CREATE, "/s", 0, secret))
        .result
        .unwrap();
    assert_eq!(
        f.tree
            .read(S1, &get_data("/s"), &[acl::id("ip", "127.0.0.1")]),
        Err(ErrorCode::NoAuth)
    );
    assert!(f
        .tree
        .read(S1, &get_data("/s"), &[acl::id("ip", "10.0.0.1")])
        .is_ok());
}

#[test]
fn all_children_number_and_ephemerals_follow_zookeeper() {
    let mut f = Fixture::new();
    f.create("/a", 0).unwrap();
    f.create("/a/b", 0).unwrap();
    f.create("/a/b/c", 0).unwrap();
    let unreadable = vec![Acl {
        perms: perms::WRITE,
        id: acl::id("world", "anyone"),
    }];
    f.write(create_req(op::CREATE, "/hidden", 0, unreadable))
        .result
        .unwrap();
    let exists = Request::Exists(PathWatchRequest {
        path: "/hidden".into(),
        watch: false,
    });
    assert!(
        f.tree.read(S1, &exists, &[]).is_ok(),
        "ZooKeeper 3.8.0 checks no ACL on exists"
    );
    f.write(delete("/hidden", -1)).result.unwrap();
    f.create("/e1", 1).unwrap();
    f.create("/x", 1).unwrap();
    let count = |f: &Fixture, p: &str| {
        f.tree.read(
            S1,
            &Request::GetAllChildrenNumber(PathRequest { path: p.into() }),
            &[],
        )
    };
    assert_eq!(
        count(&f, "/a"),
        Ok(Response::GetAllChildrenNumber { total: 2 })
    );
    assert_eq!(
        count(&f, "/"),
        Ok(Response::GetAllChildrenNumber { total: 8 }),
        "includes system nodes"
    );
    let eph = |p: &str| {
        f.tree.read(
            S1,
            &Request::GetEphemerals(PathRequest { path: p.into() }),
            &[],
        )
    };
    assert_eq!(
        eph("/e"),
        Ok(Response::GetEphemerals {
            paths: vec!["/e1".into()]
        })
    );
    assert_eq!(
        eph("/"),
        Ok(Response::GetEphemerals {
            paths: vec!["/e1".into(), "/x".into()]
        })
    );
    assert_eq!(
        f.tree.read(
            S2,
            &Request::GetEphemerals(PathRequest { path: "".into() }),
            &[]
        ),
        Ok(Response::GetEphemerals { paths: vec![] })
    );
}

#[test]
fn multi_read_returns_per_op_results() {
    let mut f = Fixture::new();
    f.create("/a", 0).unwrap();
    let got = f.tree.read(
        S1,
        &Request::MultiRead(vec![get_children("/a"), get_data("/nope"), get_data("/a")]),
        &[],
    );
    let Ok(Response::Multi(r)) = got else {
        panic!()
    };
    assert_eq!(r[0], MultiResult::GetChildren { children: vec![] });
    assert_eq!(r[1], MultiResult::Error { err: -101 });
    assert!(matches!(&r[2], MultiResult::GetData { data: Some(d), .. } if d.as_ref() == b"d"));
}

/// ZooKeeper's reconfig transaction: /zookeeper/config gets the server
/// lines and `version=` its zxid in hex, Stat version -1, mzxid and mtime
/// of the transaction, NodeDataChanged; ctime, czxid and the ACL stay.
/// The same lines again change nothing.
#[test]
fn the_membership_transaction_writes_zookeeper_config() {
    let mut f = Fixture::new();
    let servers = "server.1=h:1:2:participant;h:3\nserver.2=i:1:2:observer;i:3\n";
    let set = TxnOp::SetConfig {
        servers: servers.into(),
    };
    let applied = f.txn(SYSTEM_SESSION, vec![], set.clone());
    let data = format!("{servers}version={:x}", applied.zxid);
    let stat = f.stat("/zookeeper/config");
    assert_eq!(
        (stat.version, stat.mzxid, stat.mtime, stat.czxid, stat.ctime),
        (-1, applied.zxid, f.time_ms, 0, 0)
    );
    assert_eq!(stat.data_length as usize, data.len());
    assert_eq!(
        applied.result,
        Ok(Response::GetData {
            data: Some(Bytes::from(data.clone())),
            stat: stat.clone()
        })
    );
    assert_eq!(applied.events.len(), 1);
    assert_eq!(
        (
            applied.events[0].event_type,
            applied.events[0].path.as_str()
        ),
        (event::NODE_DATA_CHANGED, "/zookeeper/config")
    );
    assert_eq!(f.tree.config_version(), applied.zxid as u64);
    assert_eq!(f.tree.config_data(), Bytes::from(data));

    let again = f.txn(SYSTEM_SESSION, vec![], set);
    assert!(again.events.is_empty());
    assert_eq!(f.stat("/zookeeper/config"), stat);
    assert_eq!(f.tree.config_version(), applied.zxid as u64);
}
