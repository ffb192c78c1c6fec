//! The log's promises: what was appended comes back; a crash mid-write
//! loses only the unfinished batch; damage to finished batches stops
//! recovery with the file and offset; a failed write stops the log.

use paddock_storage::disk::FaultyDisk;
use paddock_storage::*;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn batch(first: i64, n: usize) -> Vec<(i64, Vec<u8>)> {
    (0..n)
        .map(|i| {
            (
                first + i as i64,
                format!("txn-{}", first + i as i64).into_bytes(),
            )
        })
        .collect()
}

fn append(wal: &mut Wal, b: &[(i64, Vec<u8>)]) -> Result<(), WalError> {
    let refs: Vec<(i64, &[u8])> = b.iter().map(|(z, t)| (*z, t.as_slice())).collect();
    wal.append(&refs)
}

fn indexes(r: &Recovered) -> Vec<i64> {
    r.records.iter().map(|r| r.index).collect()
}

/// Writes batches of 3 records (indexes 1..=3n) and returns the dir.
fn write_batches(n: usize, segment_bytes: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::new(Arc::new(FsDisk), dir.path(), segment_bytes).unwrap();
    for i in 0..n {
        append(&mut wal, &batch(1 + 3 * i as i64, 3)).unwrap();
    }
    dir
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    FsDisk.list(dir).unwrap()
}

#[test]
fn appended_records_come_back_in_order_across_segments() {
    let dir = write_batches(50, 256);
    assert!(segments(dir.path()).len() > 5, "small segments rotate");
    let r = recover(&FsDisk, dir.path(), i64::MIN).unwrap();
    assert_eq!(indexes(&r), (1..=150).collect::<Vec<_>>());
    assert_eq!(r.records[9].body.as_ref(), b"txn-10");
    assert!(r.truncated.is_none());
}

#[test]
fn a_crash_at_any_byte_of_the_last_batch_loses_only_that_batch() {
    let dir = write_batches(4, 1 << 20);
    let seg = segments(dir.path()).pop().unwrap();
    let full = std::fs::read(&seg).unwrap();
    let data_end = full.len() - full.iter().rev().take_while(|&&b| b == 0).count();
    let frame_len = |first: i64| {
        12 + batch(first, 3)
            .iter()
            .map(|(_, t)| 12 + t.len())
            .sum::<usize>()
            + 1
    };
    let last_frame_len = frame_len(10);
    let last_start = data_end - last_frame_len;
    for cut in last_start..data_end {
        // What a crash leaves: a prefix of the frame, then the reserved zeros.
        let mut torn = full.clone();
        torn[cut..].iter_mut().for_each(|b| *b = 0);
        std::fs::write(&seg, &torn).unwrap();
        let r =
            recover(&FsDisk, dir.path(), i64::MIN).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        assert_eq!(indexes(&r), (1..=9).collect::<Vec<_>>(), "cut at {cut}");
        // A prefix of only zero bytes looks like (and is) no frame at all.
        let want = full[last_start..cut]
            .iter()
            .any(|&b| b != 0)
            .then_some(last_start as u64);
        assert_eq!(r.truncated.as_ref().map(|t| t.1), want, "cut at {cut}");
    }
}

#[test]
fn a_flipped_byte_in_a_finished_batch_is_reported_with_file_and_offset() {
    let dir = write_batches(4, 1 << 20);
    let seg = segments(dir.path()).pop().unwrap();
    let full = std::fs::read(&seg).unwrap();
    // Batches 1-3 have 5-byte txns, the 4th 6-byte ones.
    let frame_len = 12 + 3 * (12 + 5) + 1;
    let last_len = 12 + 3 * (12 + 6) + 1;
    for (frame, byte) in [(0usize, 20usize), (1, 8), (3, 30), (3, last_len - 1)] {
        let mut bad = full.clone();
        bad[8 + frame * frame_len + byte] ^= 0x10;
        std::fs::write(&seg, &bad).unwrap();
        match recover(&FsDisk, dir.path(), i64::MIN) {
            Err(WalError::Corrupt { path, offset, .. }) => {
                assert_eq!(path, seg);
                assert_eq!(offset, (8 + frame * frame_len) as u64);
            }
            other => panic!("frame {frame} byte {byte}: expected corruption, got {other:?}"),
        }
    }
}

#[test]
fn damage_in_a_closed_segment_is_never_truncated_away() {
    let dir = write_batches(20, 256);
    let first = segments(dir.path()).remove(0);
    let mut bytes = std::fs::read(&first).unwrap();
    let n = bytes.len();
    bytes[n - 2] ^= 0xff;
    std::fs::write(&first, &bytes).unwrap();
    assert!(matches!(
        recover(&FsDisk, dir.path(), i64::MIN),
        Err(WalError::Corrupt { .. })
    ));
}

#[test]
fn appends_continue_in_a_new_segment_after_recovery() {
    let dir = write_batches(2, 1 << 20);
    let r = recover(&FsDisk, dir.path(), i64::MIN).unwrap();
    let mut wal = Wal::new(Arc::new(FsDisk), dir.path(), 1 << 20).unwrap();
    append(&mut wal, &batch(r.records.len() as i64 + 1, 2)).unwrap();
    let r = recover(&FsDisk, dir.path(), i64::MIN).unwrap();
    assert_eq!(indexes(&r), (1..=8).collect::<Vec<_>>());
}

fn faulty(writes: usize, syncs: usize) -> Arc<FaultyDisk> {
    Arc::new(FaultyDisk::new(writes, syncs))
}

#[test]
fn a_failed_fsync_stops_the_log() {
    let dir = tempfile::tempdir().unwrap();
    // Writes: magic + 2 frames succeed; the second sync fails.
    let mut wal = Wal::new(faulty(usize::MAX, 1), dir.path(), 1 << 20).unwrap();
    append(&mut wal, &batch(1, 3)).unwrap();
    assert!(matches!(
        append(&mut wal, &batch(4, 3)),
        Err(WalError::Io { .. })
    ));
    assert!(matches!(
        append(&mut wal, &batch(7, 3)),
        Err(WalError::Failed)
    ));
}

#[test]
fn a_torn_write_is_cut_off_at_recovery() {
    let dir = tempfile::tempdir().unwrap();
    // Magic and two frames are written whole; the third write tears.
    let mut wal = Wal::new(faulty(3, usize::MAX), dir.path(), 1 << 20).unwrap();
    append(&mut wal, &batch(1, 3)).unwrap();
    append(&mut wal, &batch(4, 3)).unwrap();
    assert!(append(&mut wal, &batch(7, 3)).is_err());
    drop(wal);
    let r = recover(&FsDisk, dir.path(), i64::MIN).unwrap();
    assert_eq!(indexes(&r), (1..=6).collect::<Vec<_>>());
    assert!(r.truncated.is_some());
    let again = recover(&FsDisk, dir.path(), i64::MIN).unwrap();
    assert_eq!(indexes(&again), (1..=6).collect::<Vec<_>>());
    assert!(again.truncated.is_none(), "the cut was made durable");
}

#[test]
fn a_record_may_go_back_to_an_earlier_index_but_never_skip_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::new(Arc::new(FsDisk), dir.path(), 128).unwrap();
    append(&mut wal, &batch(10, 6)).unwrap();
    // Back to 5 (below the first segment's name), in a new small segment.
    append(&mut wal, &batch(5, 6)).unwrap();
    let r = recover(&FsDisk, dir.path(), i64::MIN).unwrap();
    assert_eq!(
        indexes(&r),
        [10, 11, 12, 13, 14, 15, 5, 6, 7, 8, 9, 10].to_vec()
    );
    let names: Vec<i64> = list_segments(&FsDisk, dir.path())
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert!(
        names.windows(2).all(|w| w[0] < w[1]),
        "segment names always grow, so listing order is writing order: {names:?}"
    );
    let mut wal = Wal::new(Arc::new(FsDisk), dir.path(), 128).unwrap();
    append(&mut wal, &batch(12, 1)).unwrap();
    let err = recover(&FsDisk, dir.path(), i64::MIN)
        .unwrap_err()
        .to_string();
    assert!(err.contains("index 12 follows 10: a gap"), "{err}");
}

#[test]
fn reading_from_an_index_skips_only_segments_wholly_before_it() {
    let dir = write_batches(50, 256);
    let all = read_log(&FsDisk, dir.path()).unwrap();
    // An index inside a batch, so inside a segment (batches start at 3k + 1).
    let index = 101;
    let from = read_log_from(&FsDisk, dir.path(), index).unwrap();
    let first = from.records[0].index;
    assert!(
        first < index && first > index - 12,
        "starts in the segment holding {index}: {first}"
    );
    // Records read before the index come without their bodies.
    for r in &from.records {
        let body = if r.index < index {
            String::new()
        } else {
            format!("txn-{}", r.index)
        };
        assert_eq!(r.body, body.as_bytes(), "record {}", r.index);
    }
    assert_eq!(from.records.last(), all.records.last());
    assert_eq!(
        read_log_from(&FsDisk, dir.path(), i64::MIN)
            .unwrap()
            .records,
        all.records
    );
}

#[test]
fn a_cleared_log_may_restart_at_any_index_in_a_newer_segment() {
    let dir = write_batches(4, 64);
    let before = segments(dir.path());
    let mut wal = Wal::new(Arc::new(FsDisk), dir.path(), 64).unwrap();
    wal.clear().unwrap();
    assert!(segments(dir.path()).is_empty());
    append(&mut wal, &batch(100, 2)).unwrap();
    let after = segments(dir.path());
    assert_eq!(after.len(), 1);
    assert!(
        after[0] > *before.last().unwrap(),
        "{after:?} not after {before:?}"
    );
    assert_eq!(
        indexes(&recover(&FsDisk, dir.path(), i64::MIN).unwrap()),
        vec![100, 101]
    );
}

#[test]
fn recovering_from_an_index_reads_only_its_segments_and_still_cuts_a_torn_tail() {
    let dir = write_batches(50, 256);
    let last = segments(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&last).unwrap();
    let data_end = bytes.len() - bytes.iter().rev().take_while(|&&b| b == 0).count();
    // Tear the last batch: its final byte never reached the disk.
    bytes[data_end - 1] = 0;
    std::fs::write(&last, &bytes).unwrap();
    let r = recover(&FsDisk, dir.path(), 100).unwrap();
    let got = indexes(&r);
    assert!(got[0] <= 100 && got[0] > 90, "starts at {}", got[0]);
    assert_eq!(got.last(), Some(&147), "the torn batch 148..=150 is cut");
    assert!(r.truncated.is_some());
    // The cut was made on disk: reading again finds nothing torn.
    let again = read_log(&FsDisk, dir.path()).unwrap();
    assert_eq!(again.records.last().map(|r| r.index), Some(147));
    assert!(again.truncated.is_none());
}
