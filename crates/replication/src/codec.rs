//! Byte layouts of what this crate stores (see docs/storage.md):
//!
//! * a log record's body (the WAL frames it; the record key is the index):
//!   `u8 kind | u64 term | payload`, where kind 0 is a blank entry (a new
//!   leader's first), 1 a transaction (`u64 origin | u64 seq | txn bytes`),
//!   2 a membership (JSON), 4 a claim (`u64 origin | u64 seq | i64
//!   session`), 5 a leader's expiry (`u64 origin | u64 seq | u64 term
//!   decided in | txn bytes`); kind 3 with no term or payload marks that
//!   the entries from its key on were removed (a follower's log conflict).
//! * a snapshot's payload: `u32 meta_len | meta (JSON) | tree encoding`.
//! * the `raft-state` file: JSON of the vote and the last purged log id,
//!   sealed (`PDKSTAT1`, crc32c; `paddock_storage::sealed`).
//!
//! Pure functions, no I/O.

use crate::types::{Command, Entry, LogId, Membership, Payload, SnapshotMeta, Vote};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

const BLANK: u8 = 0;
const TXN: u8 = 1;
const MEMBERSHIP: u8 = 2;
const TRUNCATE: u8 = 3;
const CLAIM: u8 = 4;
const EXPIRY: u8 = 5;

/// One log record, decoded.
#[derive(Debug, Clone)]
pub enum Record {
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

pub fn encode_entry(entry: &Entry, out: &mut BytesMut) {
    let kind = match &entry.payload {
        Payload::Blank => BLANK,
        Payload::Normal(cmd) if cmd.claim.is_some() => CLAIM,
        Payload::Normal(cmd) if cmd.expiry_term.is_some() => EXPIRY,
        Payload::Normal(_) => TXN,
        Payload::Membership(_) => MEMBERSHIP,
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
        Payload::Membership(m) => {
            // A Membership always serializes (maps of integers and strings).
            if let Ok(json) = serde_json::to_vec(m) {
                out.put_slice(&json);
            }
        }
    }
}

pub fn encode_truncate(out: &mut BytesMut) {
    out.put_u8(TRUNCATE);
}

/// Decodes the record stored under log index `index`.
pub fn decode_record(index: u64, mut body: Bytes) -> Result<Record, CodecError> {
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
pub fn encode_snapshot_meta(meta: &SnapshotMeta, out: &mut BytesMut) {
    let json = serde_json::to_vec(meta).unwrap_or_default();
    out.put_u32(json.len() as u32);
    out.put_slice(&json);
}

/// Splits a snapshot payload into its log position and the tree encoding.
pub fn decode_snapshot(mut payload: Bytes) -> Result<(SnapshotMeta, Bytes), CodecError> {
    if payload.len() < 4 {
        return Err(CodecError::SnapshotMeta("too short".into()));
    }
    let len = payload.get_u32() as usize;
    if len > payload.len() {
        return Err(CodecError::SnapshotMeta(
            "header longer than the file".into(),
        ));
    }
    let json = payload.split_to(len);
    let meta =
        serde_json::from_slice(&json).map_err(|e| CodecError::SnapshotMeta(e.to_string()))?;
    Ok((meta, payload))
}

/// What must survive a restart besides the log: the vote (so a server never
/// votes twice in a term) and how far the log was purged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftState {
    pub vote: Option<Vote>,
    pub last_purged: Option<LogId>,
}

/// The consensus state file's format: sealed (`paddock_storage::sealed`)
/// JSON. A file written before it was sealed is the JSON alone.
const STATE_MAGIC: &[u8; 8] = b"PDKSTAT1";

pub fn encode_state(state: &RaftState) -> Vec<u8> {
    let json = serde_json::to_vec(state).expect("a RaftState always renders as JSON");
    paddock_storage::sealed::seal(STATE_MAGIC, &json)
}

pub fn decode_state(bytes: &[u8]) -> Result<RaftState, String> {
    let json = match paddock_storage::sealed::unseal(STATE_MAGIC, bytes)? {
        Some(json) => json,
        None if bytes.first() == Some(&b'{') => bytes,
        None => return Err("not a Paddock consensus state file".into()),
    };
    serde_json::from_slice(json).map_err(|e| e.to_string())
}

/// The number a snapshot file is named by: how many log entries it covers.
pub fn snapshot_position(last: Option<&LogId>) -> i64 {
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
}
