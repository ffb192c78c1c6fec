//! The byte layout of what replicas send each other (docs/ensemble.md):
//! ours, not a serde rendering of openraft's types, so an openraft upgrade
//! cannot change it. A message is `u8 version (1) | u8 kind | fields`,
//! with the types `codec` stores (`log_id`, `vote`, `opt(x)`, a log entry
//! as its record body) and `str := u32 len | UTF-8`, `list(x) := u32 n |
//! x*n`; integers big-endian. Every count is checked against the bytes
//! left before anything is allocated for it.
//!
//! Pure functions, no I/O.

use crate::codec::{self, count, get_u32, get_u64, get_u8, CodecError, Record};
use crate::membership::{Change, Reconfig, ReconfigError};
use crate::peer::{PeerReply, PeerRequest};
use crate::status::Member;
use crate::types::{Command, Entry, LogId};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    VoteRequest, VoteResponse,
};

const VERSION: u8 = 1;

/// Why a message did not decode.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("peer message of version {0}; this binary speaks version {VERSION}")]
    Version(u8),
    #[error("unknown peer message kind {0}")]
    Kind(u8),
    #[error("bad peer message: {0}")]
    Bad(String),
    #[error("peer message: {0}")]
    Codec(#[from] CodecError),
}

fn bad(what: impl std::fmt::Display) -> WireError {
    WireError::Bad(what.to_string())
}

fn put_str(s: &str, out: &mut BytesMut) {
    out.put_u32(s.len() as u32);
    out.put_slice(s.as_bytes());
}

fn get_bytes(b: &mut Bytes) -> Result<Bytes, WireError> {
    let len = count(b, 1)?;
    Ok(b.split_to(len))
}

fn get_str(b: &mut Bytes) -> Result<String, WireError> {
    String::from_utf8(get_bytes(b)?.to_vec()).map_err(bad)
}

fn get_bool(b: &mut Bytes) -> Result<bool, WireError> {
    match get_u8(b)? {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(bad(format!("a flag of {other}"))),
    }
}

fn put_opt_log_id(id: Option<&LogId>, out: &mut BytesMut) {
    codec::put_opt(id, out, codec::put_log_id);
}

fn get_opt_log_id(b: &mut Bytes) -> Result<Option<LogId>, WireError> {
    Ok(codec::get_opt(b, codec::get_log_id)?)
}

fn put_entry(entry: &Entry, out: &mut BytesMut) {
    let mut body = BytesMut::new();
    codec::encode_entry(entry, &mut body);
    out.put_u64(entry.log_id.index);
    out.put_u32(body.len() as u32);
    out.put_slice(&body);
}

fn get_entry(b: &mut Bytes) -> Result<Entry, WireError> {
    let index = get_u64(b)?;
    match codec::decode_record(index, get_bytes(b)?)? {
        Record::Entry(entry) => Ok(entry),
        Record::TruncateFrom(_) => Err(bad("a truncation among entries")),
    }
}

fn put_command(c: &Command, out: &mut BytesMut) {
    out.put_u64(c.origin);
    out.put_u64(c.seq);
    codec::put_opt(c.claim.as_ref(), out, |v, o| o.put_i64(*v));
    codec::put_opt(c.expiry_term.as_ref(), out, |v, o| o.put_u64(*v));
    out.put_u32(c.txn.len() as u32);
    out.put_slice(&c.txn);
}

fn get_command(b: &mut Bytes) -> Result<Command, WireError> {
    let origin = get_u64(b)?;
    let seq = get_u64(b)?;
    let claim = codec::get_opt(b, |b| Ok(get_u64(b)? as i64))?;
    let expiry_term = codec::get_opt(b, get_u64)?;
    Ok(Command {
        origin,
        seq,
        claim,
        expiry_term,
        txn: get_bytes(b)?,
    })
}

fn put_member(m: &Member, out: &mut BytesMut) {
    out.put_u64(m.id);
    put_str(&m.spec, out);
    out.put_u8(u8::from(m.voter));
}

fn get_member(b: &mut Bytes) -> Result<Member, WireError> {
    Ok(Member {
        id: get_u64(b)?,
        spec: get_str(b)?,
        voter: get_bool(b)?,
    })
}

fn put_list<T>(items: &[T], out: &mut BytesMut, put: impl Fn(&T, &mut BytesMut)) {
    out.put_u32(items.len() as u32);
    items.iter().for_each(|item| put(item, out));
}

fn get_list<T>(
    b: &mut Bytes,
    each: usize,
    get: impl Fn(&mut Bytes) -> Result<T, WireError>,
) -> Result<Vec<T>, WireError> {
    let n = count(b, each)?;
    (0..n).map(|_| get(b)).collect()
}

fn put_reconfig(r: &Reconfig, out: &mut BytesMut) {
    match &r.change {
        Change::Incremental { joining, leaving } => {
            out.put_u8(0);
            put_list(joining, out, put_member);
            put_list(leaving, out, |id, o| o.put_u64(*id));
        }
        Change::Replace(members) => {
            out.put_u8(1);
            put_list(members, out, put_member);
        }
        Change::Unreadable(why) => {
            out.put_u8(2);
            put_str(why, out);
        }
    }
    codec::put_opt(r.expected_version.as_ref(), out, |v, o| o.put_u64(*v));
    out.put_u64(r.min_voters as u64);
    out.put_u8(u8::from(r.authorized));
}

fn get_reconfig(b: &mut Bytes) -> Result<Reconfig, WireError> {
    let change = match get_u8(b)? {
        0 => Change::Incremental {
            joining: get_list(b, 13, get_member)?,
            leaving: get_list(b, 8, |b| Ok(get_u64(b)?))?,
        },
        1 => Change::Replace(get_list(b, 13, get_member)?),
        2 => Change::Unreadable(get_str(b)?),
        other => return Err(bad(format!("a reconfig change of kind {other}"))),
    };
    Ok(Reconfig {
        change,
        expected_version: codec::get_opt(b, get_u64)?,
        min_voters: usize::try_from(get_u64(b)?).map_err(bad)?,
        authorized: get_bool(b)?,
    })
}

fn put_vote_request(r: &VoteRequest<crate::types::TypeConfig>, out: &mut BytesMut) {
    codec::put_vote(&r.vote, out);
    put_opt_log_id(r.last_log_id.as_ref(), out);
    out.put_u8(u8::from(r.leadership_transfer));
}

fn get_vote_request(b: &mut Bytes) -> Result<VoteRequest<crate::types::TypeConfig>, WireError> {
    let vote = codec::get_vote(b)?;
    let mut req = VoteRequest::new(vote, get_opt_log_id(b)?);
    req.leadership_transfer = get_bool(b)?;
    Ok(req)
}

// Message kinds.
const APPEND: u8 = 1;
const VOTE: u8 = 2;
const PRE_VOTE: u8 = 3;
const SNAPSHOT_BEGIN: u8 = 4;
const SNAPSHOT_CHUNK: u8 = 5;
const SNAPSHOT_DONE: u8 = 6;
const FORWARD: u8 = 7;
const TOUCH: u8 = 8;
const TRANSFER_LEADER: u8 = 9;
const RECONFIG: u8 = 10;
const INITIALIZED: u8 = 11;
const SET_VOTER: u8 = 15;
// Replies of their own (an answer reuses its request's kind where it can).
const FORWARDED: u8 = 12;
const TOUCHED: u8 = 13;
const FAILED: u8 = 14;

pub fn encode_request(req: &PeerRequest) -> Bytes {
    let mut out = BytesMut::new();
    out.put_u8(VERSION);
    match req {
        PeerRequest::Append(r) => {
            out.put_u8(APPEND);
            codec::put_vote(&r.vote, &mut out);
            put_opt_log_id(r.prev_log_id.as_ref(), &mut out);
            put_opt_log_id(r.leader_commit.as_ref(), &mut out);
            put_list(&r.entries, &mut out, put_entry);
        }
        PeerRequest::Vote(r) => {
            out.put_u8(VOTE);
            put_vote_request(r, &mut out);
        }
        PeerRequest::PreVote(r) => {
            out.put_u8(PRE_VOTE);
            put_vote_request(r, &mut out);
        }
        PeerRequest::SnapshotBegin => out.put_u8(SNAPSHOT_BEGIN),
        PeerRequest::SnapshotChunk(bytes) => {
            out.put_u8(SNAPSHOT_CHUNK);
            out.put_slice(bytes);
        }
        PeerRequest::SnapshotDone { vote, meta } => {
            out.put_u8(SNAPSHOT_DONE);
            codec::put_vote(vote, &mut out);
            codec::encode_snapshot_meta(meta, &mut out);
        }
        PeerRequest::Forward(commands) => {
            out.put_u8(FORWARD);
            put_list(commands, &mut out, put_command);
        }
        PeerRequest::Touch(heard) => {
            out.put_u8(TOUCH);
            put_list(heard, &mut out, |(session, age), o| {
                o.put_i64(*session);
                o.put_u32(*age);
            });
        }
        PeerRequest::TransferLeader(r) => {
            out.put_u8(TRANSFER_LEADER);
            codec::put_vote(r.from_leader(), &mut out);
            out.put_u64(*r.to_node_id());
            put_opt_log_id(r.last_log_id(), &mut out);
        }
        PeerRequest::Reconfig(r) => {
            out.put_u8(RECONFIG);
            put_reconfig(r, &mut out);
        }
        PeerRequest::Initialized => out.put_u8(INITIALIZED),
        PeerRequest::SetVoter { id, spec, voter } => {
            out.put_u8(SET_VOTER);
            out.put_u64(*id);
            put_str(spec, &mut out);
            out.put_u8(u8::from(*voter));
        }
    }
    out.freeze()
}

/// The kind byte of a message, after its version.
fn kind(b: &mut Bytes) -> Result<u8, WireError> {
    match get_u8(b)? {
        VERSION => Ok(get_u8(b)?),
        other => Err(WireError::Version(other)),
    }
}

/// Every byte of a message is its fields.
fn whole<T>(b: &Bytes, value: T) -> Result<T, WireError> {
    match b.remaining() {
        0 => Ok(value),
        n => Err(bad(format!("{n} bytes after the message"))),
    }
}

pub fn decode_request(mut b: Bytes) -> Result<PeerRequest, WireError> {
    let req = match kind(&mut b)? {
        APPEND => {
            let vote = codec::get_vote(&mut b)?;
            let prev_log_id = get_opt_log_id(&mut b)?;
            let leader_commit = get_opt_log_id(&mut b)?;
            let entries = get_list(&mut b, 12, get_entry)?;
            PeerRequest::Append(AppendEntriesRequest {
                vote,
                prev_log_id,
                entries,
                leader_commit,
            })
        }
        VOTE => PeerRequest::Vote(get_vote_request(&mut b)?),
        PRE_VOTE => PeerRequest::PreVote(get_vote_request(&mut b)?),
        SNAPSHOT_BEGIN => PeerRequest::SnapshotBegin,
        SNAPSHOT_CHUNK => PeerRequest::SnapshotChunk(b.split_off(0)),
        SNAPSHOT_DONE => {
            let vote = codec::get_vote(&mut b)?;
            let (meta, rest) = codec::decode_snapshot(b.split_off(0))?;
            b = rest;
            PeerRequest::SnapshotDone { vote, meta }
        }
        FORWARD => PeerRequest::Forward(get_list(&mut b, 22, get_command)?),
        TOUCH => PeerRequest::Touch(get_list(&mut b, 12, |b| {
            Ok((get_u64(b)? as i64, get_u32(b)?))
        })?),
        TRANSFER_LEADER => {
            let from = codec::get_vote(&mut b)?;
            let to = get_u64(&mut b)?;
            PeerRequest::TransferLeader(TransferLeaderRequest::new(
                from,
                to,
                get_opt_log_id(&mut b)?,
            ))
        }
        RECONFIG => PeerRequest::Reconfig(get_reconfig(&mut b)?),
        INITIALIZED => PeerRequest::Initialized,
        SET_VOTER => PeerRequest::SetVoter {
            id: get_u64(&mut b)?,
            spec: get_str(&mut b)?,
            voter: get_bool(&mut b)?,
        },
        other => return Err(WireError::Kind(other)),
    };
    whole(&b, req)
}

fn put_reconfig_error(e: &ReconfigError, out: &mut BytesMut) {
    match e {
        ReconfigError::InProgress => out.put_u8(0),
        ReconfigError::BadVersion => out.put_u8(1),
        ReconfigError::NoQuorum => out.put_u8(2),
        ReconfigError::BadArguments(why) => {
            out.put_u8(3);
            put_str(why, out);
        }
        ReconfigError::NoLeader => out.put_u8(4),
        ReconfigError::NoAuth => out.put_u8(5),
    }
}

fn get_reconfig_error(b: &mut Bytes) -> Result<ReconfigError, WireError> {
    Ok(match get_u8(b)? {
        0 => ReconfigError::InProgress,
        1 => ReconfigError::BadVersion,
        2 => ReconfigError::NoQuorum,
        3 => ReconfigError::BadArguments(get_str(b)?),
        4 => ReconfigError::NoLeader,
        5 => ReconfigError::NoAuth,
        other => return Err(bad(format!("a reconfig error of kind {other}"))),
    })
}

pub fn encode_reply(reply: &PeerReply) -> Bytes {
    use openraft::raft::TransferLeaderError as Refused;
    let mut out = BytesMut::new();
    out.put_u8(VERSION);
    match reply {
        PeerReply::Append(r) => {
            out.put_u8(APPEND);
            match r {
                AppendEntriesResponse::Success => out.put_u8(0),
                AppendEntriesResponse::PartialSuccess(upto) => {
                    out.put_u8(1);
                    put_opt_log_id(upto.as_ref(), &mut out);
                }
                AppendEntriesResponse::Conflict => out.put_u8(2),
                AppendEntriesResponse::HigherVote(vote) => {
                    out.put_u8(3);
                    codec::put_vote(vote, &mut out);
                }
            }
        }
        PeerReply::Vote(r) => {
            out.put_u8(VOTE);
            codec::put_vote(&r.vote, &mut out);
            out.put_u8(u8::from(r.vote_granted));
            put_opt_log_id(r.last_log_id.as_ref(), &mut out);
        }
        PeerReply::Snapshot(r) => {
            out.put_u8(SNAPSHOT_DONE);
            codec::put_vote(&r.vote, &mut out);
        }
        PeerReply::Forwarded => out.put_u8(FORWARDED),
        PeerReply::Touched => out.put_u8(TOUCHED),
        PeerReply::TransferLeader(r) => {
            out.put_u8(TRANSFER_LEADER);
            match r {
                Ok(()) => out.put_u8(0),
                Err(Refused::VoteChanged { expected, actual }) => {
                    out.put_u8(1);
                    codec::put_vote(expected, &mut out);
                    codec::put_vote(actual, &mut out);
                }
                Err(Refused::LogNotFlushed { expected, actual }) => {
                    out.put_u8(2);
                    put_opt_log_id(expected.as_ref(), &mut out);
                    put_opt_log_id(actual.as_ref(), &mut out);
                }
            }
        }
        PeerReply::Reconfigured(r) => {
            out.put_u8(RECONFIG);
            match r {
                Ok(version) => {
                    out.put_u8(0);
                    out.put_u64(*version);
                }
                Err(e) => {
                    out.put_u8(1);
                    put_reconfig_error(e, &mut out);
                }
            }
        }
        PeerReply::Initialized(yes) => {
            out.put_u8(INITIALIZED);
            out.put_u8(u8::from(*yes));
        }
        PeerReply::Failed(why) => {
            out.put_u8(FAILED);
            put_str(why, &mut out);
        }
    }
    out.freeze()
}

pub fn decode_reply(mut b: Bytes) -> Result<PeerReply, WireError> {
    use openraft::raft::TransferLeaderError as Refused;
    let reply = match kind(&mut b)? {
        APPEND => PeerReply::Append(match get_u8(&mut b)? {
            0 => AppendEntriesResponse::Success,
            1 => AppendEntriesResponse::PartialSuccess(get_opt_log_id(&mut b)?),
            2 => AppendEntriesResponse::Conflict,
            3 => AppendEntriesResponse::HigherVote(codec::get_vote(&mut b)?),
            other => return Err(bad(format!("an append reply of kind {other}"))),
        }),
        VOTE => {
            let vote = codec::get_vote(&mut b)?;
            let granted = get_bool(&mut b)?;
            PeerReply::Vote(VoteResponse::new(vote, get_opt_log_id(&mut b)?, granted))
        }
        SNAPSHOT_DONE => PeerReply::Snapshot(SnapshotResponse::new(codec::get_vote(&mut b)?)),
        FORWARDED => PeerReply::Forwarded,
        TOUCHED => PeerReply::Touched,
        TRANSFER_LEADER => PeerReply::TransferLeader(match get_u8(&mut b)? {
            0 => Ok(()),
            1 => Err(Refused::VoteChanged {
                expected: codec::get_vote(&mut b)?,
                actual: codec::get_vote(&mut b)?,
            }),
            2 => Err(Refused::LogNotFlushed {
                expected: get_opt_log_id(&mut b)?,
                actual: get_opt_log_id(&mut b)?,
            }),
            other => return Err(bad(format!("a transfer reply of kind {other}"))),
        }),
        RECONFIG => PeerReply::Reconfigured(match get_u8(&mut b)? {
            0 => Ok(get_u64(&mut b)?),
            1 => Err(get_reconfig_error(&mut b)?),
            other => return Err(bad(format!("a reconfig reply of kind {other}"))),
        }),
        INITIALIZED => PeerReply::Initialized(get_bool(&mut b)?),
        FAILED => PeerReply::Failed(get_str(&mut b)?),
        other => return Err(WireError::Kind(other)),
    };
    whole(&b, reply)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Payload, SnapshotMeta, StoredMembership, Vote};
    use openraft::raft::TransferLeaderError;
    use std::collections::{BTreeMap, BTreeSet};

    fn log_id(index: u64) -> LogId {
        LogId::new_term_index(3, index)
    }

    fn member(id: u64) -> Member {
        Member {
            id,
            spec: format!("127.0.0.1:{}:{};127.0.0.1:2181", 2887 + id, 3887 + id),
            voter: id != 4,
        }
    }

    fn requests() -> Vec<PeerRequest> {
        let nodes = BTreeMap::from([(1u64, openraft::BasicNode::new("a:1:2"))]);
        let membership = crate::types::Membership::new(vec![BTreeSet::from([1])], nodes).unwrap();
        let command = Command {
            origin: 2,
            seq: 9,
            txn: Bytes::from_static(b"\x00\x01txn"),
            claim: Some(-7),
            expiry_term: Some(3),
        };
        let expiry = Command {
            claim: None,
            ..command.clone()
        };
        let claim = Command {
            txn: Bytes::new(),
            expiry_term: None,
            ..command.clone()
        };
        let entries = vec![
            Entry {
                log_id: log_id(6),
                payload: Payload::Normal(expiry),
            },
            Entry {
                log_id: log_id(7),
                payload: Payload::Normal(claim),
            },
            Entry {
                log_id: log_id(8),
                payload: Payload::Membership(membership.clone()),
            },
            Entry {
                log_id: log_id(9),
                payload: Payload::Blank,
            },
        ];
        let mut vote = VoteRequest::new(Vote::new(4, 2), Some(log_id(9)));
        vote.leadership_transfer = true;
        vec![
            PeerRequest::Append(AppendEntriesRequest {
                vote: Vote::new_committed(3, 1),
                prev_log_id: Some(log_id(6)),
                entries,
                leader_commit: None,
            }),
            PeerRequest::Vote(vote.clone()),
            PeerRequest::PreVote(VoteRequest::new(Vote::new(4, 2), None)),
            PeerRequest::SnapshotBegin,
            PeerRequest::SnapshotChunk(Bytes::from_static(b"zstd bytes")),
            PeerRequest::SnapshotDone {
                vote: Vote::new_committed(3, 1),
                meta: SnapshotMeta {
                    last_log_id: Some(log_id(40)),
                    last_membership: StoredMembership::new(Some(log_id(8)), membership),
                },
            },
            PeerRequest::Forward(vec![
                command,
                Command {
                    origin: 1,
                    seq: 10,
                    txn: Bytes::new(),
                    claim: None,
                    expiry_term: None,
                },
            ]),
            PeerRequest::Touch(vec![(0x0100_0000_0000_0001, 1500), (-3, 0)]),
            PeerRequest::TransferLeader(TransferLeaderRequest::new(
                Vote::new_committed(3, 1),
                2,
                Some(log_id(41)),
            )),
            PeerRequest::Reconfig(Reconfig {
                change: Change::Incremental {
                    joining: vec![member(4)],
                    leaving: vec![2],
                },
                expected_version: Some(0x1_0000_0005),
                min_voters: 2,
                authorized: true,
            }),
            PeerRequest::Reconfig(Reconfig {
                change: Change::Replace(vec![member(1), member(3)]),
                expected_version: None,
                min_voters: 1,
                authorized: false,
            }),
            PeerRequest::Reconfig(Reconfig {
                change: Change::Unreadable("'x' is not a server id".into()),
                expected_version: None,
                min_voters: 2,
                authorized: true,
            }),
            PeerRequest::Initialized,
            PeerRequest::SetVoter {
                id: 3,
                spec: "127.0.0.1:2003:3003:observer;127.0.0.1:2183".into(),
                voter: false,
            },
        ]
    }

    fn replies() -> Vec<PeerReply> {
        vec![
            PeerReply::Append(AppendEntriesResponse::Success),
            PeerReply::Append(AppendEntriesResponse::PartialSuccess(Some(log_id(5)))),
            PeerReply::Append(AppendEntriesResponse::PartialSuccess(None)),
            PeerReply::Append(AppendEntriesResponse::Conflict),
            PeerReply::Append(AppendEntriesResponse::HigherVote(Vote::new(5, 3))),
            PeerReply::Vote(VoteResponse::new(Vote::new(5, 3), Some(log_id(2)), true)),
            PeerReply::Vote(VoteResponse::new(Vote::new(5, 3), None, false)),
            PeerReply::Snapshot(SnapshotResponse::new(Vote::new_committed(3, 1))),
            PeerReply::Forwarded,
            PeerReply::Touched,
            PeerReply::TransferLeader(Ok(())),
            PeerReply::TransferLeader(Err(TransferLeaderError::VoteChanged {
                expected: Vote::new_committed(3, 1),
                actual: Vote::new(4, 2),
            })),
            PeerReply::TransferLeader(Err(TransferLeaderError::LogNotFlushed {
                expected: Some(log_id(9)),
                actual: None,
            })),
            PeerReply::Reconfigured(Ok(0x1_0000_0005)),
            PeerReply::Reconfigured(Err(ReconfigError::BadArguments("no such server".into()))),
            PeerReply::Reconfigured(Err(ReconfigError::NoQuorum)),
            PeerReply::Reconfigured(Err(ReconfigError::NoAuth)),
            PeerReply::Initialized(true),
            PeerReply::Failed("not the leader".into()),
        ]
    }

    #[test]
    fn every_message_comes_back_as_it_was_sent() {
        // openraft's append request has no equality: compared as printed.
        for req in requests() {
            let back = decode_request(encode_request(&req)).unwrap();
            assert_eq!(format!("{back:?}"), format!("{req:?}"));
        }
        for reply in replies() {
            assert_eq!(decode_reply(encode_reply(&reply)), Ok(reply));
        }
    }

    /// Every message cut short anywhere, or with a byte more, is an error
    /// (never a panic, never a different message).
    #[test]
    fn a_message_cut_short_or_overlong_is_an_error() {
        for req in requests() {
            let bytes = encode_request(&req);
            for len in 0..bytes.len() {
                // A chunk's bytes are all its own, so any prefix past the
                // kind is a shorter chunk.
                if matches!(req, PeerRequest::SnapshotChunk(_)) && len >= 2 {
                    continue;
                }
                assert!(
                    decode_request(bytes.slice(..len)).is_err(),
                    "{req:?} cut at {len}"
                );
            }
            let mut longer = BytesMut::from(&bytes[..]);
            longer.put_u8(0);
            if !matches!(req, PeerRequest::SnapshotChunk(_)) {
                assert!(
                    decode_request(longer.freeze()).is_err(),
                    "{req:?} plus a byte"
                );
            }
        }
        for reply in replies() {
            let bytes = encode_reply(&reply);
            for len in 0..bytes.len() {
                assert!(
                    decode_reply(bytes.slice(..len)).is_err(),
                    "{reply:?} cut at {len}"
                );
            }
        }
    }

    #[test]
    fn another_version_is_named_and_counts_past_the_message_are_refused() {
        let mut later = BytesMut::from(&encode_request(&PeerRequest::Initialized)[..]);
        later[0] = 2;
        assert_eq!(
            decode_request(later.freeze()).unwrap_err().to_string(),
            "peer message of version 2; this binary speaks version 1"
        );
        // A Forward claiming four billion commands in a few bytes.
        let huge = Bytes::from_static(&[1, FORWARD, 0xff, 0xff, 0xff, 0xff, 0, 0]);
        assert!(decode_request(huge).is_err());
        assert_eq!(
            decode_reply(Bytes::from_static(&[1, 99])),
            Err(WireError::Kind(99))
        );
    }
}
