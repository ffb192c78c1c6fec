//! The replica's files through crashes on the simulated disk: the log,
//! snapshots, the consensus state and purges together, in the order the
//! log store and state machine use them (an entry is applied once
//! durable; a snapshot is written, then the purge point, then the log is
//! purged). After a crash at any operation, `load` finds every
//! acknowledged entry (in a snapshot or in the log), and a vote no older
//! than the last one made durable.

use crate::codec::RaftState;
use crate::files::{self, apply_entry, Dirs, FilesError};
use crate::types::{Command, Entry, LogId, Payload, SnapshotMeta, Vote};
use bytes::{Bytes, BytesMut};
use paddock_proto::{Acl, CreateRequest, Id, Request};
use paddock_storage::sim::{Crash, SimDisk};
use paddock_storage::{Wal, WalError};
use paddock_tree::{DataTree, TreeConfig, Txn, TxnOp};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::sync::Arc;

fn dirs() -> Dirs {
    Dirs {
        snapshots: "/data/snap".into(),
        log: "/data/wal".into(),
    }
}

/// Entry `index` creates `/n<index>`.
fn entry(index: u64) -> Entry {
    let mut txn = BytesMut::new();
    Txn {
        session_id: 0,
        time_ms: index as i64,
        auth: Vec::new(),
        op: TxnOp::Write(Request::Create {
            opcode: paddock_proto::op::CREATE,
            req: CreateRequest {
                path: format!("/n{index}"),
                data: Some(Bytes::from(vec![index as u8; 300])),
                acl: vec![Acl {
                    perms: 31,
                    id: Id {
                        scheme: "world".into(),
                        id: "anyone".into(),
                    },
                }],
                flags: 0,
            },
        }),
    }
    .encode(&mut txn);
    Entry {
        log_id: LogId::new_term_index(1, index),
        payload: Payload::Normal(Command {
            origin: 1,
            seq: index,
            txn: txn.freeze(),
            claim: None,
            expiry_term: None,
        }),
    }
}

/// The tree after entries `0..=last`.
fn tree_upto(last: Option<u64>) -> DataTree {
    let mut tree = DataTree::new(TreeConfig::default());
    let mut applied = SnapshotMeta::default();
    for index in last.map_or(0..0, |l| 0..l + 1) {
        apply_entry(&mut tree, &mut applied, &entry(index), |_, _| {}).unwrap();
    }
    tree
}

/// What was made durable before the crash.
#[derive(Default)]
struct Acked {
    /// The last entry whose append returned.
    entry: Option<u64>,
    /// The last entry of the append in flight at the crash.
    inflight: Option<u64>,
    vote: Option<Vote>,
}

/// Appends entries in batches, snapshots every few, votes now and then,
/// until the disk fails.
fn run(disk: &SimDisk, seed: u64) -> Acked {
    let mut rng = StdRng::seed_from_u64(seed);
    let dirs = dirs();
    let mut acked = Acked::default();
    let mut state = RaftState::default();
    let mut tree = DataTree::new(TreeConfig::default());
    let mut applied = SnapshotMeta::default();
    let Ok(mut wal) = Wal::new(Arc::new(disk.clone()), &dirs.log, 700) else {
        return acked;
    };
    let mut next = 0u64;
    let mut since_snapshot = 0;
    for term in 1..=3u64 {
        state.vote = Some(Vote::new_committed(term, 1));
        if files::write_state(disk, &dirs, &state).is_err() {
            return acked;
        }
        acked.vote = state.vote;
        for _ in 0..6 {
            let batch: Vec<Entry> = (0..rng.random_range(1..=3))
                .map(|i| entry(next + i))
                .collect();
            let bodies: Vec<(i64, Vec<u8>)> = batch
                .iter()
                .map(|e| {
                    let mut body = BytesMut::new();
                    crate::codec::encode_entry(e, &mut body);
                    (e.log_id.index as i64, body.to_vec())
                })
                .collect();
            let records: Vec<(i64, &[u8])> = bodies.iter().map(|(i, b)| (*i, &b[..])).collect();
            acked.inflight = batch.last().map(|e| e.log_id.index);
            if wal.append(&records).is_err() {
                return acked;
            }
            acked.entry = acked.inflight;
            for e in &batch {
                apply_entry(&mut tree, &mut applied, e, |_, _| {}).unwrap();
            }
            next += batch.len() as u64;
            since_snapshot += batch.len();
            if since_snapshot >= 4 {
                since_snapshot = 0;
                if files::save(disk, &dirs, &applied, tree.freeze(), 3).is_err() {
                    return acked;
                }
                state.last_purged = applied.last_log_id;
                if files::write_state(disk, &dirs, &state).is_err() {
                    return acked;
                }
                let upto = applied.last_log_id.map_or(0, |l| l.index);
                if files::purge_log(disk, &dirs, upto).is_err()
                    || files::free_retired(disk, &dirs.log).is_err()
                {
                    return acked;
                }
            }
        }
    }
    acked.inflight = None;
    acked
}

#[test]
fn the_log_snapshots_and_state_together_keep_every_acknowledged_entry_through_a_crash() {
    let (mut points, mut ambiguous) = (0u64, 0u64);
    for seed in 0..20 {
        let dry = SimDisk::new(seed);
        run(&dry, seed);
        for at in 0..dry.ops() {
            for crash in Crash::ALL {
                let what = format!("seed {seed}, crash at op {at}, {crash:?}");
                let disk = SimDisk::new(seed ^ (at << 8));
                disk.crash_at(at);
                let acked = run(&disk, seed);
                let after = disk.restart(crash);
                points += 1;
                let loaded = match files::load(&after, &dirs(), TreeConfig::default()) {
                    Ok(loaded) => loaded,
                    Err(FilesError::Storage(WalError::Corrupt { reason, .. }))
                        if reason.contains(paddock_storage::wal::AMBIGUOUS_HEADER) =>
                    {
                        ambiguous += 1;
                        continue;
                    }
                    Err(e) => panic!("{what}: {e}"),
                };
                // What openraft would apply after start-up: the rest of the log.
                let (mut tree, mut applied) = (loaded.tree, loaded.applied);
                let from = applied.last_log_id.map_or(0, |l| l.index + 1);
                for (_, e) in loaded.entries.range(from..) {
                    apply_entry(&mut tree, &mut applied, e, |_, _| {}).unwrap();
                }
                let last = applied.last_log_id.map(|l| l.index);
                assert!(
                    last >= acked.entry,
                    "{what}: up to {last:?}, acknowledged {:?}",
                    acked.entry
                );
                assert!(
                    last == acked.entry || last <= acked.inflight,
                    "{what}: up to {last:?}, never written past {:?}",
                    acked.inflight
                );
                assert_eq!(tree.digest(), tree_upto(last).digest(), "{what}");
                assert!(
                    loaded.state.vote >= acked.vote,
                    "{what}: the vote went back"
                );
            }
        }
    }
    eprintln!("{points} crash points, {ambiguous} refused as ambiguous");
    assert!(
        points > 1000 && ambiguous * 100 < points,
        "{points}, {ambiguous}"
    );
}
