//! The log through crashes and disk faults, on the simulated disk: after
//! any crash point every acknowledged record is recovered, and after a
//! fault that no reader could see through, recovery refuses, naming the
//! file and offset, rather than start with less.
//!
//! Each seed makes a workload (segment size, batches, records that go back
//! to an earlier index); the test crashes it at every operation that
//! changes the disk, with each way of losing unsynced writes, recovers,
//! appends more and crashes again. `PADDOCK_CRASH_SEEDS` runs more seeds.

use crate::sim::{Crash, Fault, SimDisk};
use crate::wal::{recover, Wal, WalError, AMBIGUOUS_HEADER};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::path::Path;
use std::sync::Arc;

const DIR: &str = "/data/wal";

type Batch = Vec<(i64, Vec<u8>)>;

/// What the log says once each record replaces those from its index on.
fn effective(records: impl IntoIterator<Item = (i64, Vec<u8>)>) -> Vec<(i64, Vec<u8>)> {
    let mut out: Vec<(i64, Vec<u8>)> = Vec::new();
    for (index, body) in records {
        let keep = out.iter().take_while(|(i, _)| *i < index).count();
        out.truncate(keep);
        out.push((index, body));
    }
    out
}

struct Workload {
    segment_bytes: u64,
    batches: Vec<Batch>,
}

impl Workload {
    fn new(rng: &mut StdRng, first_index: i64, batches: usize) -> Workload {
        let segment_bytes = [200, 700, 1500, 5000][rng.random_range(0..4)];
        let mut next = first_index;
        let batches = (0..batches)
            .map(|_| {
                // Now and then a follower's conflicting tail is replaced.
                if next > first_index + 2 && rng.random_bool(0.1) {
                    next -= rng.random_range(1..=2);
                }
                (0..rng.random_range(1..=3))
                    .map(|_| {
                        let len = [0, 5, 90, 600][rng.random_range(0..4)];
                        let body = (0..len).map(|_| rng.random::<u8>()).collect();
                        next += 1;
                        (next - 1, body)
                    })
                    .collect()
            })
            .collect();
        Workload {
            segment_bytes,
            batches,
        }
    }

    /// Appends the batches until one fails: those acknowledged, and the
    /// one that failed.
    fn run(&self, disk: &SimDisk) -> (Vec<Batch>, Option<Batch>) {
        let mut acked = Vec::new();
        let Ok(mut wal) = Wal::new(Arc::new(disk.clone()), Path::new(DIR), self.segment_bytes)
        else {
            return (acked, self.batches.first().cloned());
        };
        for batch in &self.batches {
            let records: Vec<(i64, &[u8])> = batch.iter().map(|(i, b)| (*i, &b[..])).collect();
            match wal.append(&records) {
                Ok(()) => acked.push(batch.clone()),
                Err(_) => return (acked, Some(batch.clone())),
            }
        }
        (acked, None)
    }
}

fn records_of(disk: &SimDisk) -> Result<Vec<(i64, Vec<u8>)>, WalError> {
    let log = recover(disk, Path::new(DIR), i64::MIN)?;
    Ok(log
        .records
        .into_iter()
        .map(|r| (r.index, r.body.to_vec()))
        .collect())
}

/// `recovered` holds exactly the acknowledged batches, and perhaps the
/// one in flight at the crash, whole.
fn check_whole(
    recovered: &[(i64, Vec<u8>)],
    acked: &[Batch],
    inflight: &Option<Batch>,
    what: &str,
) {
    let flat = |batches: &[Batch]| effective(batches.iter().flatten().cloned());
    let without = flat(acked);
    let with: Vec<Batch> = acked.iter().chain(inflight).cloned().collect();
    let got = effective(recovered.iter().cloned());
    assert!(
        got == without || got == flat(&with),
        "{what}: recovered {} records, acknowledged {}",
        got.len(),
        without.len()
    );
}

fn seeds(default: u64) -> u64 {
    std::env::var("PADDOCK_CRASH_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Recovers after a crash: the records, or None for the one refusal a
/// crash may cause (`AMBIGUOUS_HEADER`, counted in `ambiguous`).
fn after_crash(disk: &SimDisk, ambiguous: &mut u64, what: &str) -> Option<Vec<(i64, Vec<u8>)>> {
    match records_of(disk) {
        Ok(records) => Some(records),
        Err(WalError::Corrupt { reason, .. }) if reason.contains(AMBIGUOUS_HEADER) => {
            *ambiguous += 1;
            None
        }
        Err(e) => panic!("{what}: {e}"),
    }
}

#[test]
fn every_acknowledged_record_survives_a_crash_at_any_point_and_a_second_after_recovery() {
    let (mut points, mut ambiguous) = (0u64, 0u64);
    for seed in 0..seeds(100) {
        let mut rng = StdRng::seed_from_u64(seed);
        let first = Workload::new(&mut rng, 1, 14);
        let dry = SimDisk::new(seed);
        first.run(&dry);
        for at in 0..dry.ops() {
            for crash in Crash::ALL {
                let what = format!("seed {seed}, crash at op {at}, {crash:?}");
                let disk = SimDisk::new(seed ^ at);
                disk.crash_at(at);
                let (acked, inflight) = first.run(&disk);
                let after = disk.restart(crash);
                points += 1;
                let Some(recovered) = after_crash(&after, &mut ambiguous, &what) else {
                    continue;
                };
                check_whole(&recovered, &acked, &inflight, &what);
                // Go on from what was recovered, and crash again.
                let next = recovered.last().map_or(1, |(i, _)| i + 1);
                let second = Workload::new(&mut rng, next, 4);
                after.crash_at(after.ops() + rng.random_range(0..20));
                let (acked2, inflight2) = second.run(&after);
                let again = after.restart(Crash::ALL[rng.random_range(0..4)]);
                let what = format!("{what}, then a second crash");
                points += 1;
                let Some(twice) = after_crash(&again, &mut ambiguous, &what) else {
                    continue;
                };
                let before: Batch = effective(recovered);
                let acked_all: Vec<Batch> = std::iter::once(before).chain(acked2).collect();
                check_whole(&twice, &acked_all, &inflight2, &what);
            }
        }
    }
    eprintln!("{points} recoveries after a crash, {ambiguous} refused as ambiguous");
    assert!(points > 1000, "{points} crash points");
    // A frame starting in the last 7 bytes of a sector, that sector lost
    // and a later one landed.
    assert!(ambiguous * 200 < points, "{ambiguous} of {points} refused");
}

#[test]
fn a_failed_sync_is_never_taken_for_a_durable_write() {
    for seed in 0..seeds(40) * 4 {
        let mut rng = StdRng::seed_from_u64(seed);
        let work = Workload::new(&mut rng, 1, 10);
        let disk = SimDisk::new(seed);
        disk.inject(Fault::FailedSync {
            nth: rng.random_range(0..10),
        });
        let (acked, inflight) = work.run(&disk);
        assert!(inflight.is_some(), "seed {seed}: the log stopped");
        let after = disk.restart(Crash::ALL[rng.random_range(0..4)]);
        let what = format!("seed {seed}");
        let recovered = records_of(&after).unwrap_or_else(|e| panic!("{what}: {e}"));
        check_whole(&recovered, &acked, &None, &what);
    }
}

/// Lost and misdirected writes report success, so the log acknowledges
/// what never reached its place. Recovery must notice, or the damage must
/// be the newest write, which no single disk can tell from one never made.
#[test]
fn a_lost_or_misdirected_write_is_refused_at_recovery_unless_it_was_the_last() {
    let (mut refused, mut shortened) = (0, 0);
    for seed in 0..seeds(40) * 10 {
        let mut rng = StdRng::seed_from_u64(seed);
        let work = Workload::new(&mut rng, 1, 10);
        let disk = SimDisk::new(seed);
        let nth = rng.random_range(0..12);
        disk.inject(match seed % 2 {
            0 => Fault::LostWrite { nth },
            _ => Fault::MisdirectedWrite { nth },
        });
        let (acked, inflight) = work.run(&disk);
        assert!(
            inflight.is_none(),
            "seed {seed}: every write reported success"
        );
        let Some(struck) = disk.struck() else {
            continue;
        };
        let what = format!("seed {seed}: {struck:?}");
        let after = disk.restart(Crash::LoseAll);
        match records_of(&after) {
            Err(WalError::Corrupt { path, .. }) => {
                assert!(path.starts_with(DIR), "{what}");
                refused += 1;
            }
            Err(e) => panic!("{what}: {e}"),
            Ok(got) => {
                let all = effective(acked.iter().flatten().cloned());
                let got = effective(got);
                if got != all {
                    let but_last = effective(acked[..acked.len() - 1].iter().flatten().cloned());
                    assert_eq!(
                        got, but_last,
                        "{what}: only the newest write may be missing"
                    );
                    let newest =
                        struck.fault == Fault::LostWrite { nth } && nth + 1 == disk.appends();
                    assert!(newest, "{what}: a write before the newest was lost");
                    shortened += 1;
                }
            }
        }
    }
    assert!(refused > 50, "{refused} refused, {shortened} shortened");
}

#[test]
fn a_bit_flipped_in_a_read_is_refused_or_harmless() {
    let mut refused = 0;
    for seed in 0..seeds(40) * 10 {
        let mut rng = StdRng::seed_from_u64(seed);
        let work = Workload::new(&mut rng, 1, 10);
        let disk = SimDisk::new(seed);
        let (acked, _) = work.run(&disk);
        let after = disk.restart(Crash::LoseAll);
        after.inject(Fault::CorruptRead {
            nth: rng.random_range(0..3),
        });
        let what = format!("seed {seed}: {:?}", after.struck());
        match records_of(&after) {
            Err(WalError::Corrupt { .. }) => refused += 1,
            Err(e) => panic!("{what}: {e}"),
            Ok(got) => check_whole(&got, &acked, &None, &what),
        }
    }
    assert!(refused > 50, "{refused} refused");
}

/// The checks above are only worth something if they catch a log that
/// does not make its writes durable.
#[test]
fn a_disk_that_ignores_syncs_loses_acknowledged_records_and_the_check_sees_it() {
    let mut caught = 0;
    for seed in 0..20 {
        let mut rng = StdRng::seed_from_u64(seed);
        let work = Workload::new(&mut rng, 1, 10);
        let disk = SimDisk::new(seed);
        disk.ignore_syncs();
        let (acked, _) = work.run(&disk);
        let got = records_of(&disk.restart(Crash::LoseAll)).map(effective);
        if got.ok() != Some(effective(acked.iter().flatten().cloned())) {
            caught += 1;
        }
    }
    assert_eq!(caught, 20);
}
