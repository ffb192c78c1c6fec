//! The log encoding of transactions round-trips (10k cases).

use bytes::{Bytes, BytesMut};
use paddock_proto::*;
use paddock_tree::{Txn, TxnOp};
use proptest::collection::vec;
use proptest::prelude::*;

fn request() -> impl Strategy<Value = Request> {
    let path = "[/a-z]{0,10}";
    let data = proptest::option::of(vec(any::<u8>(), 0..16).prop_map(Bytes::from));
    let acl = vec(
        (any::<i32>(), "[a-z]{0,5}", "[a-z:]{0,8}").prop_map(|(perms, scheme, id)| Acl {
            perms,
            id: Id { scheme, id },
        }),
        0..3,
    );
    let single = prop_oneof![
        (
            prop_oneof![Just(1), Just(15), Just(19)],
            path,
            data.clone(),
            acl.clone(),
            any::<i32>()
        )
            .prop_map(|(opcode, path, data, acl, flags)| Request::Create {
                opcode,
                req: CreateRequest {
                    path,
                    data,
                    acl,
                    flags
                },
            }),
        (path, data.clone(), acl.clone(), any::<i32>(), any::<i64>()).prop_map(
            |(path, data, acl, flags, ttl)| {
                Request::CreateTtl(CreateTtlRequest {
                    path,
                    data,
                    acl,
                    flags,
                    ttl,
                })
            }
        ),
        (path, any::<i32>())
            .prop_map(|(path, version)| Request::Delete(DeleteRequest { path, version })),
        (path, data, any::<i32>()).prop_map(|(path, data, version)| Request::SetData(
            SetDataRequest {
                path,
                data,
                version
            }
        )),
    ];
    let set_acl = (path, acl, any::<i32>())
        .prop_map(|(path, acl, version)| Request::SetAcl(SetAclRequest { path, acl, version }));
    prop_oneof![
        single.clone(),
        set_acl,
        vec(single, 0..4).prop_map(Request::Multi),
    ]
}

fn txn() -> impl Strategy<Value = Txn> {
    let op = prop_oneof![
        any::<i32>().prop_map(|timeout_ms| TxnOp::CreateSession { timeout_ms }),
        Just(TxnOp::CloseSession),
        request().prop_map(TxnOp::Write),
        "(server\\.[0-9]=[a-z:;0-9]{0,12}\n){0,3}".prop_map(|servers| TxnOp::SetConfig { servers }),
    ];
    let ids = vec(
        ("[a-z]{1,6}", "[a-z0-9:.]{0,10}").prop_map(|(scheme, id)| Id { scheme, id }),
        0..3,
    );
    (any::<i64>(), any::<i64>(), ids, op).prop_map(|(session_id, time_ms, auth, op)| Txn {
        session_id,
        time_ms,
        auth,
        op,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn transactions_round_trip(t in txn()) {
        let mut out = BytesMut::new();
        t.encode(&mut out);
        prop_assert_eq!(Txn::decode(out.freeze()), Ok(t));
    }

    #[test]
    fn decoding_garbage_never_panics(bytes in vec(any::<u8>(), 0..80)) {
        let _ = Txn::decode(Bytes::from(bytes));
    }
}
