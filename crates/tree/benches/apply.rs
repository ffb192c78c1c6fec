//! Applying transactions, serving reads and snapshotting a tree of 10 000
//! znodes: the work every replica does per committed write, per read and
//! per snapshot.
//! `cargo bench -p paddock-tree`.

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use paddock_proto::{CreateRequest, DeleteRequest, PathWatchRequest, Request, SetDataRequest};
use paddock_tree::{acl, DataTree, TreeConfig, Txn, TxnOp};
use std::hint::black_box;

const SESSION: i64 = 0x0100_0000_0000_0001;
const KEYS: usize = 10_000;

fn txn(op: TxnOp) -> Txn {
    Txn {
        session_id: SESSION,
        time_ms: 1_700_000_000_000,
        auth: vec![],
        op,
    }
}

fn create(path: String) -> Txn {
    txn(TxnOp::Write(Request::Create {
        opcode: paddock_proto::op::CREATE,
        req: CreateRequest {
            path,
            data: Some(Bytes::from(vec![b'x'; 100])),
            acl: acl::open_acl_unsafe(),
            flags: 0,
        },
    }))
}

fn set(i: usize) -> Txn {
    txn(TxnOp::Write(Request::SetData(SetDataRequest {
        path: format!("/k/{i}"),
        data: Some(Bytes::from(vec![b'y'; 100])),
        version: -1,
    })))
}

/// A session and `/k/0` … `/k/9999`, 100 bytes each.
fn loaded() -> DataTree {
    let mut tree = DataTree::new(TreeConfig::default());
    tree.apply(&txn(TxnOp::CreateSession { timeout_ms: 30_000 }));
    tree.apply(&create("/k".into()));
    for i in 0..KEYS {
        tree.apply(&create(format!("/k/{i}")));
    }
    tree
}

fn apply(c: &mut Criterion) {
    let mut tree = loaded();
    let mut g = c.benchmark_group("apply");
    g.throughput(Throughput::Elements(1));
    let sets: Vec<Txn> = (0..KEYS).map(set).collect();
    let mut next = 0;
    g.bench_function("setData 100 B", |b| {
        b.iter(|| {
            next = (next + 7919) % KEYS;
            black_box(tree.apply(&sets[next]))
        })
    });
    let mut made = 0u64;
    g.bench_function("create then delete", |b| {
        b.iter_batched(
            || {
                made += 1;
                let path = format!("/k/new-{made}");
                let delete = txn(TxnOp::Write(Request::Delete(DeleteRequest {
                    path: path.clone(),
                    version: -1,
                })));
                (create(path), delete)
            },
            |(c, d)| {
                black_box(tree.apply(&c));
                black_box(tree.apply(&d))
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();

    let gets: Vec<Request> = (0..KEYS)
        .map(|i| {
            Request::GetData(PathWatchRequest {
                path: format!("/k/{i}"),
                watch: false,
            })
        })
        .collect();
    let mut g = c.benchmark_group("read");
    g.throughput(Throughput::Elements(1));
    g.bench_function("getData", |b| {
        b.iter(|| {
            next = (next + 7919) % KEYS;
            black_box(tree.read(SESSION, &gets[next], &[]))
        })
    });
    g.finish();

    let mut g = c.benchmark_group("txn codec");
    g.throughput(Throughput::Elements(1));
    let t = set(1);
    g.bench_function("encode setData", |b| {
        b.iter(|| {
            let mut out = BytesMut::new();
            black_box(&t).encode(&mut out);
            out
        })
    });
    let mut out = BytesMut::new();
    t.encode(&mut out);
    let encoded = out.freeze();
    g.bench_function("decode setData", |b| {
        b.iter(|| Txn::decode(black_box(encoded.clone())))
    });
    g.finish();

    // A snapshot freezes the tree, counts the bytes and encodes them; a
    // restart decodes them again.
    let mut g = c.benchmark_group("snapshot");
    g.throughput(Throughput::Elements(tree.node_count() as u64));
    g.bench_function("freeze, count and encode", |b| {
        b.iter(|| {
            let frozen = black_box(&tree).freeze();
            let mut out = BytesMut::with_capacity(frozen.snapshot_len());
            frozen.encode_snapshot(&mut out);
            out
        })
    });
    let mut out = BytesMut::new();
    tree.encode_snapshot(&mut out);
    let encoded = out.freeze();
    g.bench_function("decode", |b| {
        b.iter(|| {
            let mut r = paddock_proto::Reader::new(black_box(encoded.clone()));
            DataTree::decode_snapshot(&mut r, TreeConfig::default())
        })
    });
    g.finish();
}

criterion_group!(benches, apply);
criterion_main!(benches);
