//! Byte layouts of what this crate stores (see docs/storage.md). Ours,
//! not serde renderings of openraft's types, so an openraft upgrade cannot
//! change what is on disk:
//!
//! * a log record's body (the WAL frames it; the record key is the index):
//!   `u8 kind | u64 term | payload`, where kind 0 is a blank entry (a new
//!   leader's first), 1 a transaction (`u64 origin | u64 seq | txn bytes`),
//!   6 a membership (`membership` below; kind 2 is the JSON of earlier
//!   versions, still read), 4 a claim (`u64 origin | u64 seq | i64
//!   session`), 5 a leader's expiry (`u64 origin | u64 seq | u64 term
//!   decided in | txn bytes`); kind 3 with no term or payload marks that
//!   the entries from its key on were removed (a follower's log conflict).
//! * a snapshot's payload: `u32 meta_len | meta | tree encoding`, meta
//!   being `u8 1 | opt(log_id) | opt(log_id) membership` (the last entry
//!   it includes, then the membership and the entry that set it); a meta
//!   starting with `{` is the JSON of earlier versions, still read.
//! * the `raft-state` file, sealed (`paddock_storage::sealed`) as
//!   `PDKSTAT2`: `opt(vote) | opt(log_id)`, the vote and the last purged
//!   log id (`PDKSTAT1` holds the JSON of earlier versions, still read).
//!
//! With `log_id := u64 term | u64 index`, `vote := u64 term | u64 node |
//! u8 committed`, `opt(x) := u8 0 | u8 1 x`, `membership := u32 configs
//! (u32 voters (u64 id)*)* | u32 nodes (u64 id | u32 len | address)*`;
//! integers big-endian.
//!
//! Pure functions, no I/O.

use crate::types::{
    Command, Entry, LogId, Membership, Payload, SnapshotMeta, StoredMembership, Vote,
};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

const BLANK: u8 = 0;
const TXN: u8 = 1;
const MEMBERSHIP: u8 = 2;
const TRUNCATE: u8 = 3;
const CLAIM: u8 = 4;
const EXPIRY: u8 = 5;
/// A membership in our layout (kind 2 is JSON).
const MEMBERSHIP_V1: u8 = 6;
/// The first byte of a snapshot's meta in our layout (JSON starts `{`).
const SNAPSHOT_META_V1: u8 = 1;

/// One log record, decoded.
#[derive(Debug, Clone)]
pub(crate) enum Record {
    Entry(Entry),
    /// Every entry at this index or later is gone.
    TruncateFrom(u64),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("record too short")]
    Short,
    #[error("unknown record kind {0}")]
    Kind(u8),
    #[error("bad membership: {0}")]
    Membership(String),
    #[error("bad snapshot header: {0}")]
    SnapshotMeta(String),
}

/// A field cut short.
pub(crate) fn short<T>(_: T) -> CodecError {
    CodecError::Short
}

pub(crate) fn get_u8(b: &mut Bytes) -> Result<u8, CodecError> {
    b.try_get_u8().map_err(short)
}

pub(crate) fn get_u32(b: &mut Bytes) -> Result<u32, CodecError> {
    b.try_get_u32().map_err(short)
}

pub(crate) fn get_u64(b: &mut Bytes) -> Result<u64, CodecError> {
    b.try_get_u64().map_err(short)
}

pub(crate) fn put_log_id(id: &LogId, out: &mut BytesMut) {
    out.put_u64(id.leader_id.term);
    out.put_u64(id.index);
}

pub(crate) fn get_log_id(b: &mut Bytes) -> Result<LogId, CodecError> {
    let term = get_u64(b)?;
    Ok(LogId::new_term_index(term, get_u64(b)?))
}

pub(crate) fn put_opt<T>(
    value: Option<&T>,
    out: &mut BytesMut,
    put: impl FnOnce(&T, &mut BytesMut),
) {
    match value {
        None => out.put_u8(0),
        Some(v) => {
            out.put_u8(1);
            put(v, out);
        }
    }
}

pub(crate) fn get_opt<T>(
    b: &mut Bytes,
    get: impl FnOnce(&mut Bytes) -> Result<T, CodecError>,
) -> Result<Option<T>, CodecError> {
    match get_u8(b)? {
        0 => Ok(None),
        1 => get(b).map(Some),
        other => Err(CodecError::Membership(format!("option tag {other}"))),
    }
}

pub(crate) fn put_vote(vote: &Vote, out: &mut BytesMut) {
    out.put_u64(vote.leader_id.term);
    out.put_u64(vote.leader_id.voted_for);
    out.put_u8(u8::from(vote.committed));
}

pub(crate) fn get_vote(b: &mut Bytes) -> Result<Vote, CodecError> {
    let (term, node) = (get_u64(b)?, get_u64(b)?);
    Ok(match get_u8(b)? {
        0 => Vote::new(term, node),
        _ => Vote::new_committed(term, node),
    })
}

fn put_membership(m: &Membership, out: &mut BytesMut) {
    let configs = m.get_joint_config();
    out.put_u32(configs.len() as u32);
    for voters in configs {
        out.put_u32(voters.len() as u32);
        voters.iter().for_each(|id| out.put_u64(*id));
    }
    let nodes: Vec<_> = m.nodes().collect();
    out.put_u32(nodes.len() as u32);
    for (id, node) in nodes {
        out.put_u64(*id);
        out.put_u32(node.addr.len() as u32);
        out.put_slice(node.addr.as_bytes());
    }
}

/// A `u32` count of items of at least `each` bytes, refused if the bytes
/// left cannot hold them, before anything is allocated for them.
pub(crate) fn count(b: &mut Bytes, each: usize) -> Result<usize, CodecError> {
    let n = get_u32(b)? as usize;
    if n.saturating_mul(each) > b.remaining() {
        return Err(CodecError::Short);
    }
    Ok(n)
}

fn get_membership(b: &mut Bytes) -> Result<Membership, CodecError> {
    let bad = |e: &dyn std::fmt::Display| CodecError::Membership(e.to_string());
    let mut configs = Vec::with_capacity(count(b, 4)?);
    for _ in 0..configs.capacity() {
        let voters = count(b, 8)?;
        configs.push((0..voters).map(|_| get_u64(b)).collect::<Result<_, _>>()?);
    }
    let mut nodes = std::collections::BTreeMap::new();
    for _ in 0..count(b, 12)? {
        let id = get_u64(b)?;
        let len = count(b, 1)?;
        let addr = String::from_utf8(b.split_to(len).to_vec()).map_err(|e| bad(&e))?;
        nodes.insert(id, openraft::BasicNode { addr });
    }
    if configs.is_empty() && nodes.is_empty() {
        return Ok(Membership::default());
    }
    Membership::new(configs, nodes).map_err(|e| bad(&e))
}

pub(crate) fn encode_entry(entry: &Entry, out: &mut BytesMut) {
    let kind = match &entry.payload {
        Payload::Blank => BLANK,
        Payload::Normal(cmd) if cmd.claim.is_some() => CLAIM,
        Payload::Normal(cmd) if cmd.expiry_term.is_some() => EXPIRY,
        Payload::Normal(_) => TXN,
        Payload::Membership(_) => MEMBERSHIP_V1,
    };
    out.put_u8(kind);
    out.put_u64(entry.log_id.leader_id.term);
    match &entry.payload {
        Payload::Blank => {}
        Payload::Normal(cmd) => {
            out.put_u64(cmd.origin);
            out.put_u64(cmd.seq);
            match (cmd.claim, cmd.expiry_term) {
                (Some(session_id), _) => out.put_i64(session_id),
                (None, Some(term)) => {
                    out.put_u64(term);
                    out.put_slice(&cmd.txn);
                }
                (None, None) => out.put_slice(&cmd.txn),
            }
        }
        Payload::Membership(m) => put_membership(m, out),
    }
}

pub(crate) fn encode_truncate(out: &mut BytesMut) {
    out.put_u8(TRUNCATE);
}

/// Decodes the record stored under log index `index`.
pub(crate) fn decode_record(index: u64, mut body: Bytes) -> Result<Record, CodecError> {
    if body.is_empty() {
        return Err(CodecError::Short);
    }
    let kind = body.get_u8();
    if kind == TRUNCATE {
        return Ok(Record::TruncateFrom(index));
    }
    if body.len() < 8 {
        return Err(CodecError::Short);
    }
    let term = body.get_u64();
    let payload = match kind {
        BLANK => Payload::Blank,
        TXN | CLAIM | EXPIRY => {
            let need = if kind == TXN { 16 } else { 24 };
            if body.len() < need {
                return Err(CodecError::Short);
            }
            let origin = body.get_u64();
            let seq = body.get_u64();
            let claim = (kind == CLAIM).then(|| body.get_i64());
            let expiry_term = (kind == EXPIRY).then(|| body.get_u64());
            Payload::Normal(Command {
                origin,
                seq,
                txn: if claim.is_some() { Bytes::new() } else { body },
                claim,
                expiry_term,
            })
        }
        MEMBERSHIP => {
            let m: Membership =
                serde_json::from_slice(&body).map_err(|e| CodecError::Membership(e.to_string()))?;
            Payload::Membership(m)
        }
        MEMBERSHIP_V1 => {
            let m = get_membership(&mut body)?;
            if body.has_remaining() {
                return Err(CodecError::Membership("bytes after it".into()));
            }
            Payload::Membership(m)
        }
        k => return Err(CodecError::Kind(k)),
    };
    Ok(Record::Entry(Entry {
        log_id: LogId::new_term_index(term, index),
        payload,
    }))
}

/// A log record as tools show it (no consensus types).
#[derive(Debug, Clone, PartialEq)]
pub enum Logged {
    /// A new leader's first entry.
    Blank {
        term: u64,
    },
    Txn {
        term: u64,
        origin: u64,
        seq: u64,
        txn: Bytes,
        /// A leader's expiry: the term it was decided in (applied only if
        /// that is `term`).
        expiry_term: Option<u64>,
    },
    /// A `sync`, or with `claim` a client's session moving to `origin`.
    Barrier {
        term: u64,
        origin: u64,
        claim: Option<i64>,
    },
    Membership {
        term: u64,
        description: String,
        json: serde_json::Value,
    },
    TruncateFrom,
}

/// Decodes the record under `index` for inspection.
pub fn inspect_record(index: u64, body: Bytes) -> Result<Logged, CodecError> {
    Ok(match decode_record(index, body)? {
        Record::TruncateFrom(_) => Logged::TruncateFrom,
        Record::Entry(e) => {
            let term = e.log_id.leader_id.term;
            match e.payload {
                Payload::Blank => Logged::Blank { term },
                Payload::Normal(c) if c.txn.is_empty() => Logged::Barrier {
                    term,
                    origin: c.origin,
                    claim: c.claim,
                },
                Payload::Normal(c) => Logged::Txn {
                    term,
                    origin: c.origin,
                    seq: c.seq,
                    txn: c.txn,
                    expiry_term: c.expiry_term,
                },
                Payload::Membership(m) => Logged::Membership {
                    term,
                    description: m.to_string(),
                    json: serde_json::to_value(&m).unwrap_or_default(),
                },
            }
        }
    })
}

/// The head of a snapshot payload: what it covers in the log. The tree's
/// encoding follows it.
pub(crate) fn encode_snapshot_meta(meta: &SnapshotMeta, out: &mut BytesMut) {
    let mut head = BytesMut::new();
    head.put_u8(SNAPSHOT_META_V1);
    put_opt(meta.last_log_id.as_ref(), &mut head, put_log_id);
    put_opt(
        meta.last_membership.log_id().as_ref(),
        &mut head,
        put_log_id,
    );
    put_membership(meta.last_membership.membership(), &mut head);
    out.put_u32(head.len() as u32);
    out.put_slice(&head);
}

/// Splits a snapshot payload into its log position and the tree encoding.
pub(crate) fn decode_snapshot(mut payload: Bytes) -> Result<(SnapshotMeta, Bytes), CodecError> {
    let bad = |e: &dyn std::fmt::Display| CodecError::SnapshotMeta(e.to_string());
    let len = get_u32(&mut payload).map_err(|_| bad(&"too short"))? as usize;
    if len > payload.len() {
        return Err(bad(&"header longer than the file"));
    }
    let mut head = payload.split_to(len);
    let meta = match head.first() {
        Some(&SNAPSHOT_META_V1) => {
            head.advance(1);
            let last_log_id = get_opt(&mut head, get_log_id).map_err(|e| bad(&e))?;
            let set_at = get_opt(&mut head, get_log_id).map_err(|e| bad(&e))?;
            let membership = get_membership(&mut head).map_err(|e| bad(&e))?;
            if head.has_remaining() {
                return Err(bad(&"bytes after it"));
            }
            SnapshotMeta {
                last_log_id,
                last_membership: StoredMembership::new(set_at, membership),
            }
        }
        Some(b'{') => serde_json::from_slice(&head).map_err(|e| bad(&e))?,
        Some(other) => {
            return Err(bad(&format!(
                "format {other}, this binary reads format {SNAPSHOT_META_V1} (and JSON)"
            )))
        }
        None => return Err(bad(&"empty")),
    };
    Ok((meta, payload))
}

/// A snapshot payload as tools show it: the index of the last log entry
/// it includes, and the tree's encoding.
pub fn inspect_snapshot(payload: Bytes) -> Result<(Option<u64>, Bytes), CodecError> {
    let (meta, tree) = decode_snapshot(payload)?;
    Ok((meta.last_log_id.map(|l| l.index), tree))
}

/// What must survive a restart besides the log: the vote (so a server never
/// votes twice in a term) and how far the log was purged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RaftState {
    pub vote: Option<Vote>,
    pub last_purged: Option<LogId>,
}

/// The consensus state file's format: sealed (`paddock_storage::sealed`).
const STATE_MAGIC: &[u8; 8] = b"PDKSTAT2";
/// Earlier: sealed JSON; before that, the JSON alone.
const STATE_MAGIC_JSON: &[u8; 8] = b"PDKSTAT1";

pub(crate) fn encode_state(state: &RaftState) -> Vec<u8> {
    let mut body = BytesMut::new();
    put_opt(state.vote.as_ref(), &mut body, put_vote);
    put_opt(state.last_purged.as_ref(), &mut body, put_log_id);
    paddock_storage::sealed::seal(STATE_MAGIC, &body)
}

pub(crate) fn decode_state(bytes: &[u8]) -> Result<RaftState, String> {
    if let Some(body) = paddock_storage::sealed::unseal(STATE_MAGIC, bytes)? {
        let mut body = Bytes::copy_from_slice(body);
        let vote = get_opt(&mut body, get_vote).map_err(|e| e.to_string())?;
        let last_purged = get_opt(&mut body, get_log_id).map_err(|e| e.to_string())?;
        if body.has_remaining() {
            return Err("bytes after the consensus state".into());
        }
        return Ok(RaftState { vote, last_purged });
    }
    let json = match paddock_storage::sealed::unseal(STATE_MAGIC_JSON, bytes)? {
        Some(json) => json,
        None if bytes.first() == Some(&b'{') => bytes,
        None => {
            return Err(paddock_storage::sealed::unknown_format(
                bytes,
                "consensus state file",
                &[STATE_MAGIC, STATE_MAGIC_JSON],
            ))
        }
    };
    serde_json::from_slice(json).map_err(|e| e.to_string())
}

/// The number a snapshot file is named by: how many log entries it covers.
pub(crate) fn snapshot_position(last: Option<&LogId>) -> i64 {
    last.map_or(0, |l| l.index as i64 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn roundtrip(entry: Entry) -> Entry {
        let mut buf = BytesMut::new();
        encode_entry(&entry, &mut buf);
        match decode_record(entry.log_id.index, buf.freeze()) {
            Ok(Record::Entry(e)) => e,
            other => panic!("decoded to {other:?}"),
        }
    }

    #[test]
    fn the_state_file_is_checked_and_the_unsealed_format_still_reads() {
        let state = RaftState {
            vote: Some(Vote::new(3, 2)),
            last_purged: Some(LogId::new_term_index(2, 40)),
        };
        let bytes = encode_state(&state);
        assert_eq!(decode_state(&bytes), Ok(state.clone()));
        for bit in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(decode_state(&bad).is_err(), "bit {bit} went unnoticed");
        }
        let old = serde_json::to_vec(&state).unwrap();
        assert_eq!(decode_state(&old), Ok(state));
    }

    #[test]
    fn every_entry_kind_round_trips_with_its_term_and_index() {
        let txn = Entry {
            log_id: LogId::new_term_index(7, 42),
            payload: Payload::Normal(Command {
                origin: 3,
                seq: 99,
                txn: Bytes::from_static(b"abc"),
                claim: None,
                expiry_term: None,
            }),
        };
        assert_eq!(roundtrip(txn.clone()), txn);
        let expiry = Entry {
            log_id: LogId::new_term_index(7, 44),
            payload: Payload::Normal(Command {
                origin: 1,
                seq: 101,
                txn: Bytes::from_static(b"close"),
                claim: None,
                expiry_term: Some(6),
            }),
        };
        assert_eq!(roundtrip(expiry.clone()), expiry);
        for claim in [None, Some(-5), Some(0x0100_0000_0000_0001)] {
            let barrier = Entry {
                log_id: LogId::new_term_index(7, 43),
                payload: Payload::Normal(Command {
                    origin: 2,
                    seq: 100,
                    txn: Bytes::new(),
                    claim,
                    expiry_term: None,
                }),
            };
            assert_eq!(roundtrip(barrier.clone()), barrier);
        }
        let blank = Entry {
            log_id: LogId::new_term_index(2, 0),
            payload: Payload::Blank,
        };
        assert_eq!(roundtrip(blank.clone()), blank);
        let members = Membership::new_with_defaults(vec![BTreeSet::from([1, 2, 3])], [4]);
        let change = Entry {
            log_id: LogId::new_term_index(1, 5),
            payload: Payload::Membership(members),
        };
        assert_eq!(roundtrip(change.clone()), change);
    }

    #[test]
    fn a_truncation_marker_names_its_index_and_damage_is_an_error() {
        let mut buf = BytesMut::new();
        encode_truncate(&mut buf);
        assert!(matches!(
            decode_record(9, buf.freeze()),
            Ok(Record::TruncateFrom(9))
        ));
        assert_eq!(
            decode_record(1, Bytes::new()).err(),
            Some(CodecError::Short)
        );
        assert_eq!(
            decode_record(1, Bytes::from_static(&[1, 0, 0])).err(),
            Some(CodecError::Short)
        );
        assert_eq!(
            decode_record(1, Bytes::from_static(&[9, 0, 0, 0, 0, 0, 0, 0, 0])).err(),
            Some(CodecError::Kind(9))
        );
    }

    #[test]
    fn a_snapshot_payload_keeps_its_log_position_apart_from_the_tree() {
        let meta = SnapshotMeta {
            last_log_id: Some(LogId::new_term_index(3, 10)),
            last_membership: Default::default(),
        };
        let mut buf = BytesMut::new();
        encode_snapshot_meta(&meta, &mut buf);
        buf.put_slice(b"tree-bytes");
        let (back, tree) = decode_snapshot(buf.freeze()).unwrap();
        assert_eq!(back, meta);
        assert_eq!(&tree[..], b"tree-bytes");
        assert_eq!(snapshot_position(meta.last_log_id.as_ref()), 11);
        assert_eq!(snapshot_position(None), 0);
        assert!(decode_snapshot(Bytes::from_static(&[0, 0, 1, 0, b'{'])).is_err());
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn members() -> Membership {
        let nodes = std::collections::BTreeMap::from([
            (1, openraft::BasicNode::new("a:2888:3888")),
            (2, openraft::BasicNode::new("b")),
            (3, openraft::BasicNode::new("")),
        ]);
        Membership::new(vec![BTreeSet::from([1, 2])], nodes).unwrap()
    }

    /// The layouts are pinned byte for byte: a change to them, or to the
    /// openraft types behind them, fails here before it reaches a disk.
    #[test]
    fn the_stored_layouts_are_exactly_the_documented_bytes() {
        let state = RaftState {
            vote: Some(Vote::new_committed(3, 2)),
            last_purged: Some(LogId::new_term_index(2, 40)),
        };
        let body = "01000000000000000300000000000000020101000000000000000200000000000000\
                    28";
        let sealed = encode_state(&state);
        assert_eq!(&sealed[..8], b"PDKSTAT2");
        assert_eq!(hex(&sealed[12..]), body);
        let change = Entry {
            log_id: LogId::new_term_index(1, 5),
            payload: Payload::Membership(members()),
        };
        let mut record = BytesMut::new();
        encode_entry(&change, &mut record);
        assert_eq!(
            hex(&record),
            "060000000000000001\
             00000001 00000002 0000000000000001 0000000000000002\
             00000003 0000000000000001 0000000b 613a323838383a33383838\
             0000000000000002 00000001 62 0000000000000003 00000000"
                .replace(' ', "")
        );
        let meta = SnapshotMeta {
            last_log_id: Some(LogId::new_term_index(3, 10)),
            last_membership: StoredMembership::new(Some(LogId::new_term_index(1, 5)), members()),
        };
        let mut head = BytesMut::new();
        encode_snapshot_meta(&meta, &mut head);
        assert_eq!(
            hex(&head[..39]),
            "0000006f 01 01 0000000000000003 000000000000000a 01 0000000000000001 0000000000000005"
                .replace(' ', "")
        );
        assert_eq!(
            &head[39..],
            &record[9..],
            "then the membership, as in a record"
        );
    }

    #[test]
    fn the_json_of_earlier_versions_still_reads_and_a_later_format_is_named() {
        let state = RaftState {
            vote: Some(Vote::new(4, 1)),
            last_purged: None,
        };
        let json = serde_json::to_vec(&state).unwrap();
        let sealed_json = paddock_storage::sealed::seal(b"PDKSTAT1", &json);
        assert_eq!(decode_state(&sealed_json), Ok(state.clone()));
        let later = paddock_storage::sealed::seal(b"PDKSTAT3", b"?");
        let err = decode_state(&later).unwrap_err();
        assert!(
            err.contains("format 3") && err.contains("reads format 1 and 2"),
            "{err}"
        );

        let mut record = BytesMut::new();
        record.put_u8(2);
        record.put_u64(1);
        record.put_slice(&serde_json::to_vec(&members()).unwrap());
        match decode_record(5, record.freeze()) {
            Ok(Record::Entry(e)) => assert_eq!(e.payload, Payload::Membership(members())),
            other => panic!("{other:?}"),
        }

        let meta = SnapshotMeta {
            last_log_id: Some(LogId::new_term_index(3, 10)),
            last_membership: StoredMembership::new(Some(LogId::new_term_index(1, 5)), members()),
        };
        let json = serde_json::to_vec(&meta).unwrap();
        let mut payload = BytesMut::new();
        payload.put_u32(json.len() as u32);
        payload.put_slice(&json);
        payload.put_slice(b"tree");
        let (back, tree) = decode_snapshot(payload.freeze()).unwrap();
        assert_eq!((back, &tree[..]), (meta, &b"tree"[..]));
        let err = decode_snapshot(Bytes::from_static(&[0, 0, 0, 1, 7])).unwrap_err();
        assert!(err.to_string().contains("format 7"), "{err}");
    }

    #[test]
    fn a_membership_whose_counts_overrun_its_bytes_is_refused_before_allocating() {
        for body in [
            &[0xff, 0xff, 0xff, 0xff][..],
            &[0, 0, 0, 1, 0x7f, 0xff, 0xff, 0xff],
            &[
                0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xf0,
            ],
        ] {
            let mut record = BytesMut::new();
            record.put_u8(6);
            record.put_u64(1);
            record.put_slice(body);
            assert!(decode_record(1, record.freeze()).is_err(), "{body:?}");
        }
    }
}
