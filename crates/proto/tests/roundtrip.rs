//! Every record and message decodes to exactly what was encoded.

use bytes::{Bytes, BytesMut};
use paddock_proto::*;
use proptest::collection::vec;
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(10_000)
}

fn text() -> impl Strategy<Value = String> {
    "[/a-z0-9é😀.:-]{0,12}"
}

fn data() -> impl Strategy<Value = Option<Bytes>> {
    proptest::option::of(vec(any::<u8>(), 0..40).prop_map(Bytes::from))
}

fn id() -> impl Strategy<Value = Id> {
    (text(), text()).prop_map(|(scheme, id)| Id { scheme, id })
}

fn acl() -> impl Strategy<Value = Vec<Acl>> {
    vec(
        (any::<i32>(), id()).prop_map(|(perms, id)| Acl { perms, id }),
        0..4,
    )
}

fn stat() -> impl Strategy<Value = Stat> {
    (
        (any::<i64>(), any::<i64>(), any::<i64>(), any::<i64>()),
        (any::<i32>(), any::<i32>(), any::<i32>()),
        (any::<i64>(), any::<i32>(), any::<i32>(), any::<i64>()),
    )
        .prop_map(
            |((czxid, mzxid, ctime, mtime), (version, cversion, aversion), (o, dl, nc, p))| Stat {
                czxid,
                mzxid,
                ctime,
                mtime,
                version,
                cversion,
                aversion,
                ephemeral_owner: o,
                data_length: dl,
                num_children: nc,
                pzxid: p,
            },
        )
}

fn path_watch() -> impl Strategy<Value = PathWatchRequest> {
    (text(), any::<bool>()).prop_map(|(path, watch)| PathWatchRequest { path, watch })
}

fn path() -> impl Strategy<Value = PathRequest> {
    text().prop_map(|path| PathRequest { path })
}

fn create() -> impl Strategy<Value = CreateRequest> {
    (text(), data(), acl(), any::<i32>()).prop_map(|(path, data, acl, flags)| CreateRequest {
        path,
        data,
        acl,
        flags,
    })
}

fn create_ttl() -> impl Strategy<Value = CreateTtlRequest> {
    (create(), any::<i64>()).prop_map(|(c, ttl)| CreateTtlRequest {
        path: c.path,
        data: c.data,
        acl: c.acl,
        flags: c.flags,
        ttl,
    })
}

fn strings() -> impl Strategy<Value = Vec<String>> {
    vec(text(), 0..4)
}

/// Ops that may stand inside a multi.
fn multi_op() -> impl Strategy<Value = Request> {
    prop_oneof![
        (prop_oneof![Just(1), Just(15), Just(19)], create())
            .prop_map(|(opcode, req)| Request::Create { opcode, req }),
        create_ttl().prop_map(Request::CreateTtl),
        (text(), any::<i32>())
            .prop_map(|(path, version)| Request::Delete(DeleteRequest { path, version })),
        (text(), data(), any::<i32>()).prop_map(|(path, data, version)| Request::SetData(
            SetDataRequest {
                path,
                data,
                version
            }
        )),
        (text(), any::<i32>())
            .prop_map(|(path, version)| Request::Check(CheckVersionRequest { path, version })),
        path_watch().prop_map(Request::GetData),
        path_watch().prop_map(Request::GetChildren),
    ]
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        multi_op(),
        path_watch().prop_map(Request::Exists),
        path_watch().prop_map(Request::GetChildren2),
        path().prop_map(Request::GetAcl),
        path().prop_map(Request::Sync),
        path().prop_map(Request::GetEphemerals),
        path().prop_map(Request::GetAllChildrenNumber),
        (text(), acl(), any::<i32>())
            .prop_map(|(path, acl, version)| Request::SetAcl(SetAclRequest { path, acl, version })),
        vec(multi_op(), 0..4).prop_map(Request::Multi),
        vec(multi_op(), 0..4).prop_map(Request::MultiRead),
        (text(), text(), text(), any::<i64>()).prop_map(|(j, l, n, c)| Request::Reconfig(
            ReconfigRequest {
                joining_servers: j,
                leaving_servers: l,
                new_members: n,
                cur_config_id: c
            }
        )),
        (text(), any::<i32>()).prop_map(|(path, t)| Request::CheckWatches(WatchesRequest {
            path,
            watcher_type: t
        })),
        (text(), any::<i32>()).prop_map(|(path, t)| Request::RemoveWatches(WatchesRequest {
            path,
            watcher_type: t
        })),
        data().prop_map(|path| Request::DeleteContainer(DeleteContainerRequest { path })),
        (any::<i32>(), text(), data()).prop_map(|(auth_type, scheme, auth)| Request::Auth(
            AuthPacket {
                auth_type,
                scheme,
                auth
            }
        )),
        (any::<i64>(), strings(), strings(), strings()).prop_map(|(z, d, e, c)| {
            Request::SetWatches {
                v2: false,
                req: SetWatches2 {
                    relative_zxid: z,
                    data_watches: d,
                    exist_watches: e,
                    child_watches: c,
                    ..Default::default()
                },
            }
        }),
        (
            any::<i64>(),
            strings(),
            strings(),
            strings(),
            strings(),
            strings()
        )
            .prop_map(|(z, d, e, c, p, r)| {
                Request::SetWatches {
                    v2: true,
                    req: SetWatches2 {
                        relative_zxid: z,
                        data_watches: d,
                        exist_watches: e,
                        child_watches: c,
                        persistent_watches: p,
                        persistent_recursive_watches: r,
                    },
                }
            }),
        data().prop_map(|token| Request::Sasl(SaslRequest { token })),
        (text(), any::<i32>())
            .prop_map(|(path, mode)| Request::AddWatch(AddWatchRequest { path, mode })),
        Just(Request::Ping),
        Just(Request::WhoAmI),
        Just(Request::CloseSession),
    ]
}

fn multi_result() -> impl Strategy<Value = MultiResult> {
    prop_oneof![
        text().prop_map(|path| MultiResult::Create { path }),
        (text(), stat()).prop_map(|(path, stat)| MultiResult::Create2 { path, stat }),
        Just(MultiResult::Delete),
        Just(MultiResult::Check),
        stat().prop_map(|stat| MultiResult::SetData { stat }),
        (data(), stat()).prop_map(|(data, stat)| MultiResult::GetData { data, stat }),
        strings().prop_map(|children| MultiResult::GetChildren { children }),
        any::<i32>().prop_map(|err| MultiResult::Error { err }),
    ]
}

/// A response paired with the opcode whose reply it is.
fn response() -> impl Strategy<Value = (i32, Response)> {
    prop_oneof![
        Just((op::DELETE, Response::Empty)),
        text().prop_map(|path| (op::CREATE, Response::Create { path })),
        (text(), stat()).prop_map(|(path, stat)| (op::CREATE2, Response::Create2 { path, stat })),
        stat().prop_map(|s| (op::EXISTS, Response::Stat(s))),
        (data(), stat()).prop_map(|(data, stat)| (op::GET_DATA, Response::GetData { data, stat })),
        (acl(), stat()).prop_map(|(acl, stat)| (op::GET_ACL, Response::GetAcl { acl, stat })),
        strings().prop_map(|children| (op::GET_CHILDREN, Response::GetChildren { children })),
        (strings(), stat()).prop_map(|(children, stat)| (
            op::GET_CHILDREN2,
            Response::GetChildren2 { children, stat }
        )),
        text().prop_map(|path| (op::SYNC, Response::Sync { path })),
        any::<i32>().prop_map(|err| (op::ADD_WATCH, Response::ErrorBody { err })),
        vec(
            (text(), text()).prop_map(|(auth_scheme, user)| ClientInfo { auth_scheme, user }),
            0..3
        )
        .prop_map(|v| (op::WHO_AM_I, Response::WhoAmI(v))),
        strings().prop_map(|paths| (op::GET_EPHEMERALS, Response::GetEphemerals { paths })),
        any::<i32>().prop_map(|total| (
            op::GET_ALL_CHILDREN_NUMBER,
            Response::GetAllChildrenNumber { total }
        )),
        vec(multi_result(), 0..4).prop_map(|r| (op::MULTI, Response::Multi(r))),
        data().prop_map(|token| (op::SASL, Response::Sasl { token })),
    ]
}

fn roundtrip<T: Jute + PartialEq + std::fmt::Debug>(v: T) {
    assert_eq!(T::from_bytes(v.to_bytes()), Ok(v));
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn requests_round_trip(req in request()) {
        let mut out = BytesMut::new();
        req.write(&mut out);
        let mut r = Reader::new(out.freeze());
        prop_assert_eq!(Request::read(req.opcode(), &mut r), Ok(req));
        prop_assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn responses_round_trip((opcode, resp) in response()) {
        let mut out = BytesMut::new();
        resp.write(&mut out);
        let mut r = Reader::new(out.freeze());
        prop_assert_eq!(Response::read(opcode, &mut r), Ok(resp));
        prop_assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn headers_stats_and_events_round_trip(
        xid in any::<i32>(), zxid in any::<i64>(), err in any::<i32>(), s in stat(),
        t in any::<i32>(), p in text(),
    ) {
        roundtrip(RequestHeader { xid, opcode: err });
        roundtrip(ReplyHeader { xid, zxid, err });
        roundtrip(s);
        roundtrip(WatcherEvent { event_type: t, state: xid, path: p });
    }

    #[test]
    fn connect_records_round_trip(
        v in any::<i32>(), z in any::<i64>(), t in any::<i32>(), s in any::<i64>(),
        pw in data(), ro in proptest::option::of(any::<bool>()), pw2 in vec(any::<u8>(), 0..20),
    ) {
        roundtrip(ConnectRequest { protocol_version: v, last_zxid_seen: z, timeout_ms: t, session_id: s, passwd: pw, read_only: ro });
        roundtrip(ConnectResponse { protocol_version: v, timeout_ms: t, session_id: s, passwd: Bytes::from(pw2), read_only: ro });
    }

    /// Decoding arbitrary bytes never panics and never reads past the input.
    #[test]
    fn arbitrary_bytes_never_panic(opcode in -12i32..110, bytes in vec(any::<u8>(), 0..64)) {
        let mut r = Reader::new(Bytes::from(bytes));
        let _ = Request::read(opcode, &mut r);
        let _ = ConnectRequest::read(&mut Reader::new(r.rest()));
    }
}

#[test]
fn an_empty_multi_reply_is_just_the_terminator() {
    let mut out = BytesMut::new();
    Response::Multi(vec![]).write(&mut out);
    assert_eq!(
        out.as_ref(),
        [0xff, 0xff, 0xff, 0xff, 1, 0xff, 0xff, 0xff, 0xff]
    );
}

#[test]
fn a_failed_multi_encodes_rolled_back_failing_and_skipped_ops() {
    let mut out = BytesMut::new();
    Response::Multi(vec![
        MultiResult::Error { err: 0 },
        MultiResult::Error { err: -110 },
        MultiResult::Error { err: -2 },
    ])
    .write(&mut out);
    let mut want = Vec::new();
    for err in [0i32, -110, -2] {
        want.extend_from_slice(&(-1i32).to_be_bytes());
        want.push(0);
        want.extend_from_slice(&err.to_be_bytes());
        want.extend_from_slice(&err.to_be_bytes());
    }
    want.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 1, 0xff, 0xff, 0xff, 0xff]);
    assert_eq!(out.as_ref(), want.as_slice());
}

#[test]
fn error_replies_carry_only_the_header() {
    let b = encode_reply(7, 42, Err(ErrorCode::NoNode.code()));
    assert_eq!(b.len(), 16);
    assert_eq!(
        ReplyHeader::from_bytes(b),
        Ok(ReplyHeader {
            xid: 7,
            zxid: 42,
            err: -101
        })
    );
}
