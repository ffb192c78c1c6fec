//! The fuzz targets: each takes arbitrary bytes and runs one decoder of
//! untrusted input on them, as the server would, checking what must hold
//! whatever the bytes (no panic; what decodes encodes back to the same
//! message). `fuzz/` runs them under libFuzzer (cargo-fuzz, nightly);
//! `tests/corpus.rs` replays the corpus kept in `fuzz/corpus/<target>/` in
//! the ordinary test suite. docs/fuzzing.md has the campaigns.

use bytes::{Bytes, BytesMut};
use paddock_proto::frame::{Frame, FrameCodec};
use paddock_proto::{ConnectRequest, Jute, Reader, Request, RequestHeader};
use paddock_storage::sim::SimDisk;
use paddock_storage::Disk;
use std::path::Path;
use tokio_util::codec::Decoder;

/// The largest frame a client may send (jute.maxbuffer's default).
const MAX_FRAME: usize = 1 << 20;

/// A fuzz target: runs on any bytes, panics only on a bug.
pub type Target = fn(&[u8]);

/// Every target, by the name of its corpus directory.
pub const TARGETS: &[(&str, Target)] = &[
    ("client_frames", client_frames),
    ("peer_message", peer_message),
    ("log_segment", log_segment),
    ("snapshot_file", snapshot_file),
    ("snapshot_payload", snapshot_payload),
    ("log_record", log_record),
    ("state_file", state_file),
    ("zookeeper_files", zookeeper_files),
];

/// Bytes from a client connection: frames, the first a connect request,
/// the others a request header and body.
pub fn client_frames(data: &[u8]) {
    let mut codec = FrameCodec::server(MAX_FRAME);
    let mut buf = BytesMut::from(data);
    let mut first = true;
    while let Ok(Some(frame)) = codec.decode(&mut buf) {
        let Frame::Message(frame) = frame else {
            continue;
        };
        let mut r = Reader::new(frame);
        if first {
            first = false;
            let _ = ConnectRequest::read(&mut r);
            continue;
        }
        let Ok(header) = RequestHeader::read(&mut r) else {
            continue;
        };
        if let Ok(req) = Request::read(header.opcode, &mut r) {
            // What decodes writes back to bytes that decode to it again.
            let mut again = BytesMut::new();
            req.write(&mut again);
            let back = Request::read(header.opcode, &mut Reader::new(again.freeze()));
            assert_eq!(back.as_ref(), Ok(&req), "opcode {}", header.opcode);
        }
    }
}

/// A message on the peer port, as a request and as a reply.
pub fn peer_message(data: &[u8]) {
    paddock_replication::fuzzing::peer_message(Bytes::copy_from_slice(data));
}

/// A log segment, the newest of a data directory's log, through recovery
/// (which cuts a torn tail) and the decoding of every record it keeps.
pub fn log_segment(data: &[u8]) {
    let disk = SimDisk::new(0);
    let dir = Path::new("/data/wal");
    if disk
        .write_atomic(&dir.join("wal-0000000000000001.log"), data)
        .is_err()
    {
        return;
    }
    if let Ok(log) = paddock_storage::recover(&disk, dir, i64::MIN) {
        for record in log.records {
            paddock_replication::fuzzing::log_record(record.index, record.body);
        }
    }
}

/// A snapshot file: its checksum, decompression, metadata and tree.
pub fn snapshot_file(data: &[u8]) {
    let disk = SimDisk::new(0);
    let path = Path::new("/data/snap/snapshot-0000000000000001.snap");
    if disk.write_atomic(path, data).is_err() {
        return;
    }
    if let Ok(payload) = paddock_storage::snapshot::read_snapshot(&disk, path) {
        paddock_replication::fuzzing::snapshot_payload(payload);
    }
}

/// What a snapshot file holds past its checksum (which the fuzzer could
/// seldom get right): metadata and the tree. A leader could send any.
pub fn snapshot_payload(data: &[u8]) {
    paddock_replication::fuzzing::snapshot_payload(Bytes::copy_from_slice(data));
}

/// A log record's body past its frame's checksum: an index (the first 8
/// bytes) and the body.
pub fn log_record(data: &[u8]) {
    let Some((index, body)) = data.split_first_chunk::<8>() else {
        return;
    };
    paddock_replication::fuzzing::log_record(
        i64::from_be_bytes(*index),
        Bytes::copy_from_slice(body),
    );
}

/// The consensus state file (`raft-state`), as found and with its checksum
/// made right.
pub fn state_file(data: &[u8]) {
    paddock_replication::fuzzing::state_file(data);
    paddock_replication::fuzzing::state_file(&paddock_storage::sealed::seal(b"PDKSTAT2", data));
}

/// Apache ZooKeeper's snapshot and transaction log files (`paddock import`).
pub fn zookeeper_files(data: &[u8]) {
    let _ = paddock_import::read_snapshot(data, 0);
    let _ = paddock_import::read_log(data);
}
