//! Measures what a znode costs in the tree, with a counting allocator:
//! `bench`'s tree load (a million 100-byte znodes under one parent), built
//! by applying creates, then rebuilt from its snapshot encoding.
//! Run: cargo run --release -p paddock-tree --example tree_memory

use bytes::{Bytes, BytesMut};
use paddock_proto::{op, CreateRequest, Reader, Request};
use paddock_tree::{acl, DataTree, TreeConfig, Txn, TxnOp};

#[path = "support/counting.rs"]
mod counting;

#[global_allocator]
static ALLOC: counting::Counting = counting::Counting;

const NODES: usize = 1_000_000;

fn create(path: String, data: Bytes) -> Txn {
    Txn {
        session_id: 0,
        time_ms: 1,
        auth: Vec::new(),
        op: TxnOp::Write(Request::Create {
            opcode: op::CREATE,
            req: CreateRequest {
                path,
                data: Some(data),
                acl: acl::open_acl_unsafe(),
                flags: 0,
            },
        }),
    }
}

fn report(label: &str, bytes: usize) {
    println!(
        "{label}: {:.1} MiB, {:.0} B per znode",
        bytes as f64 / (1 << 20) as f64,
        bytes as f64 / NODES as f64
    );
}

fn main() {
    let before = counting::live_bytes();
    let mut tree = DataTree::new(TreeConfig::default());
    tree.apply(&create("/paddock-bench".into(), Bytes::new()));
    tree.apply(&create("/paddock-bench/t".into(), Bytes::new()));
    let value = Bytes::from(vec![b'x'; 100]);
    for i in 0..NODES {
        let path = format!("/paddock-bench/t/{}-{}", i % 32, i / 32);
        let outcome = tree.apply(&create(path, value.clone()));
        assert!(outcome.result.is_ok());
    }
    report("built by creates", counting::live_bytes() - before);

    let mut buf = BytesMut::new();
    tree.encode_snapshot(&mut buf);
    // An allocation of exactly its length, so that what decoding frees of
    // it is known.
    let encoded = Bytes::copy_from_slice(&buf);
    drop(buf);
    let (count, digest) = (tree.node_count(), tree.digest());
    drop(tree);
    // The snapshot buffer is freed once decoded: whatever the tree still
    // kept of it would show up here.
    let before = counting::live_bytes() - encoded.len();
    let restored = DataTree::decode_snapshot(&mut Reader::new(encoded), TreeConfig::default())
        .expect("decodes");
    report("restored from a snapshot", counting::live_bytes() - before);
    assert_eq!((restored.node_count(), restored.digest()), (count, digest));
}
