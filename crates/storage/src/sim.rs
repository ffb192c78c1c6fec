//! A simulated disk for crash tests: files in memory, with what a reader
//! sees (the page cache) kept apart from what would survive a power cut.
//!
//! Appends reach the surviving image only when synced; at a crash the
//! writes since the last sync are lost, kept, cut short or kept sector by
//! sector in any order ([`Crash`]). Creating, truncating, removing and
//! renaming files are durable when they return, as [`Disk`] promises, and
//! `write_atomic` leaves the old file or the new one. Faults ([`Fault`])
//! fail a sync (its writes are then never made durable, though reads go on
//! seeing them, as on Linux), lose or misdirect a write that reports
//! success, or flip a bit in what a read returns.
//!
//! A run is reproducible from its seed: the crash point is a count of
//! operations that change the disk, and every random choice comes from the
//! seeded generator.

use crate::disk::{retiring_name, AppendFile, Disk, SECTOR};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// What becomes, at a crash, of the writes not yet synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crash {
    /// None of them reached the disk.
    LoseAll,
    /// All of them did.
    KeepAll,
    /// The sectors written first did, up to a random point.
    Prefix,
    /// Each sector did or did not, independently: torn and reordered.
    Sectors,
}

impl Crash {
    pub const ALL: [Crash; 4] = [
        Crash::LoseAll,
        Crash::KeepAll,
        Crash::Prefix,
        Crash::Sectors,
    ];
}

/// A fault injected on the `nth` operation of its kind (from 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A sync fails, and what it was to make durable never is.
    FailedSync { nth: u64 },
    /// An append reports success but never reaches the disk.
    LostWrite { nth: u64 },
    /// An append reaches the disk a sector past where it was aimed.
    MisdirectedWrite { nth: u64 },
    /// A read returns one bit flipped.
    CorruptRead { nth: u64 },
}

/// Where an injected fault struck.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Struck {
    pub fault: Fault,
    pub path: PathBuf,
    /// The file offset of the write or of the flipped byte.
    pub offset: u64,
}

#[derive(Debug, Clone, Default)]
struct SimFile {
    /// What readers see.
    seen: Vec<u8>,
    /// What survives a crash.
    durable: Vec<u8>,
    /// Appends since the last sync, as they would land: offset, bytes.
    pending: Vec<(u64, Vec<u8>)>,
}

impl SimFile {
    fn zeroed(len: u64) -> SimFile {
        let bytes = vec![0; len as usize];
        SimFile {
            seen: bytes.clone(),
            durable: bytes,
            pending: Vec::new(),
        }
    }

    fn settle(&mut self) {
        for (at, bytes) in std::mem::take(&mut self.pending) {
            put(&mut self.durable, at, &bytes);
        }
    }
}

fn put(image: &mut Vec<u8>, at: u64, bytes: &[u8]) {
    let (at, end) = (at as usize, at as usize + bytes.len());
    if image.len() < end {
        image.resize(end, 0);
    }
    image[at..end].copy_from_slice(bytes);
}

/// The pieces of a write that fall in each sector, in the order written.
fn sectors(at: u64, bytes: &[u8]) -> Vec<(u64, &[u8])> {
    let mut out = Vec::new();
    let mut from = 0usize;
    while from < bytes.len() {
        let offset = at + from as u64;
        let room = (SECTOR - offset % SECTOR) as usize;
        let to = bytes.len().min(from + room);
        out.push((offset, &bytes[from..to]));
        from = to;
    }
    out
}

struct State {
    files: BTreeMap<PathBuf, SimFile>,
    rng: StdRng,
    /// Operations that changed (or would have changed) the disk so far.
    ops: u64,
    crash_at: Option<u64>,
    crashed: bool,
    fault: Option<Fault>,
    struck: Option<Struck>,
    /// Appends, syncs and reads so far, for faults aimed at the nth one.
    appends: u64,
    syncs: u64,
    reads: u64,
    /// Syncs do nothing: a disk (or a log) that never makes data durable.
    syncs_ignored: bool,
}

/// A simulated disk; clones share it.
#[derive(Clone)]
pub struct SimDisk(Arc<Mutex<State>>);

fn crashed() -> io::Error {
    io::Error::other("the simulated machine crashed")
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file", path.display()),
    )
}

impl SimDisk {
    pub fn new(seed: u64) -> SimDisk {
        SimDisk(Arc::new(Mutex::new(State {
            files: BTreeMap::new(),
            rng: StdRng::seed_from_u64(seed),
            ops: 0,
            crash_at: None,
            crashed: false,
            fault: None,
            struck: None,
            appends: 0,
            syncs: 0,
            reads: 0,
            syncs_ignored: false,
        })))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding it has failed already.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The machine crashes during the `n`th operation that changes the
    /// disk (from 0): it and every later operation fail.
    pub fn crash_at(&self, n: u64) {
        self.state().crash_at = Some(n);
    }

    pub fn inject(&self, fault: Fault) {
        self.state().fault = Some(fault);
    }

    /// Syncs return success and do nothing.
    pub fn ignore_syncs(&self) {
        self.state().syncs_ignored = true;
    }

    /// How many operations changed the disk so far: the crash points of a
    /// run.
    pub fn ops(&self) -> u64 {
        self.state().ops
    }

    /// How many appends were made so far.
    pub fn appends(&self) -> u64 {
        self.state().appends
    }

    pub fn crashed(&self) -> bool {
        self.state().crashed
    }

    /// Where the injected fault struck, once it has.
    pub fn struck(&self) -> Option<Struck> {
        self.state().struck.clone()
    }

    /// The disk as the machine finds it when it comes back: what was
    /// durable, plus the unsynced writes `crash` lets through. The new
    /// disk has no crash point or fault, and its own generator.
    pub fn restart(&self, crash: Crash) -> SimDisk {
        let mut state = self.state();
        let seed = state.rng.random::<u64>();
        let mut files = BTreeMap::new();
        let names: Vec<PathBuf> = state.files.keys().cloned().collect();
        for name in names {
            let file = &state.files[&name];
            // The page cache writes back whole sectors, each as the
            // writes since the sync left it.
            let mut written = file.durable.clone();
            let mut touched: Vec<u64> = Vec::new();
            for (at, bytes) in &file.pending {
                put(&mut written, *at, bytes);
                for (offset, _) in sectors(*at, bytes) {
                    if !touched.contains(&(offset / SECTOR)) {
                        touched.push(offset / SECTOR);
                    }
                }
            }
            let mut image = file.durable.clone();
            let cut = state.rng.random_range(0..=touched.len());
            for (i, sector) in touched.into_iter().enumerate() {
                let lands = match crash {
                    Crash::LoseAll => false,
                    Crash::KeepAll => true,
                    Crash::Prefix => i < cut,
                    Crash::Sectors => state.rng.random_bool(0.5),
                };
                if lands {
                    let from = (sector * SECTOR) as usize;
                    let to = written.len().min(from + SECTOR as usize);
                    put(&mut image, from as u64, &written[from..to]);
                }
            }
            let restarted = SimFile {
                seen: image.clone(),
                durable: image,
                pending: Vec::new(),
            };
            files.insert(name, restarted);
        }
        let disk = SimDisk::new(seed);
        disk.state().files = files;
        disk
    }

    /// The bytes a reader would see in `path`.
    pub fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        self.state().files.get(path).map(|f| f.seen.clone())
    }
}

impl State {
    /// Counts an operation that changes the disk; an error if the machine
    /// crashes at it or has crashed.
    fn change(&mut self) -> io::Result<()> {
        if self.crashed {
            return Err(crashed());
        }
        let n = self.ops;
        self.ops += 1;
        if self.crash_at == Some(n) {
            self.crashed = true;
            return Err(crashed());
        }
        Ok(())
    }

    fn file(&mut self, path: &Path) -> io::Result<&mut SimFile> {
        self.files.get_mut(path).ok_or_else(|| not_found(path))
    }

    /// The fault to inject now, if it is aimed at this one: `count` is
    /// the operation kind's counter.
    fn strikes(&mut self, pick: impl Fn(Fault, u64) -> bool, count: u64) -> Option<Fault> {
        let fault = self.fault?;
        (self.struck.is_none() && pick(fault, count)).then_some(fault)
    }

    fn read(&mut self, path: &Path) -> io::Result<Vec<u8>> {
        if self.crashed {
            return Err(crashed());
        }
        let mut bytes = self.file(path)?.seen.clone();
        let n = self.reads;
        self.reads += 1;
        let hit = |f, c| matches!(f, Fault::CorruptRead { nth } if nth == c);
        if let Some(fault) = self.strikes(hit, n) {
            if !bytes.is_empty() {
                let bit = self.rng.random_range(0..bytes.len() * 8);
                bytes[bit / 8] ^= 1 << (bit % 8);
                self.struck = Some(Struck {
                    fault,
                    path: path.to_owned(),
                    offset: (bit / 8) as u64,
                });
            }
        }
        Ok(bytes)
    }
}

struct SimAppend {
    disk: SimDisk,
    path: PathBuf,
    end: u64,
}

impl AppendFile for SimAppend {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let mut state = self.disk.state();
        state.change()?;
        let n = state.appends;
        state.appends += 1;
        let lost = |f, c| matches!(f, Fault::LostWrite { nth } if nth == c);
        let moved = |f, c| matches!(f, Fault::MisdirectedWrite { nth } if nth == c);
        let landing = match (state.strikes(lost, n), state.strikes(moved, n)) {
            (Some(fault), _) | (_, Some(fault)) => {
                state.struck = Some(Struck {
                    fault,
                    path: self.path.clone(),
                    offset: self.end,
                });
                matches!(fault, Fault::MisdirectedWrite { .. }).then_some(self.end + SECTOR)
            }
            _ => Some(self.end),
        };
        let file = state.file(&self.path)?;
        put(&mut file.seen, self.end, buf);
        if let Some(at) = landing {
            file.pending.push((at, buf.to_vec()));
        }
        self.end += buf.len() as u64;
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let mut state = self.disk.state();
        state.change()?;
        let n = state.syncs;
        state.syncs += 1;
        let hit = |f, c| matches!(f, Fault::FailedSync { nth } if nth == c);
        if let Some(fault) = state.strikes(hit, n) {
            state.struck = Some(Struck {
                fault,
                path: self.path.clone(),
                offset: self.end,
            });
            state.file(&self.path)?.pending.clear();
            return Err(io::Error::other("injected fsync failure"));
        }
        if !state.syncs_ignored {
            state.file(&self.path)?.settle();
        }
        Ok(())
    }
}

impl Disk for SimDisk {
    fn create(&self, path: &Path, reserve_bytes: u64) -> io::Result<Box<dyn AppendFile>> {
        let mut state = self.state();
        state.change()?;
        if state.files.contains_key(path) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{}: exists", path.display()),
            ));
        }
        state
            .files
            .insert(path.to_owned(), SimFile::zeroed(reserve_bytes));
        Ok(Box::new(SimAppend {
            disk: self.clone(),
            path: path.to_owned(),
            end: 0,
        }))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.state().read(path)
    }

    fn open(&self, path: &Path) -> io::Result<Box<dyn io::Read + Send>> {
        Ok(Box::new(io::Cursor::new(self.state().read(path)?)))
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let mut state = self.state();
        state.change()?;
        let file = state.file(path)?;
        file.settle();
        file.durable.resize(len as usize, 0);
        file.seen.resize(len as usize, 0);
        Ok(())
    }

    fn sync_file(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state();
        state.change()?;
        let ignored = state.syncs_ignored;
        let file = state.file(path)?;
        if !ignored {
            file.settle();
        }
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        let state = self.state();
        if state.crashed {
            return Err(crashed());
        }
        Ok(state
            .files
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .cloned()
            .collect())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state();
        state.change()?;
        state
            .files
            .remove(path)
            .map(|_| ())
            .ok_or_else(|| not_found(path))
    }

    fn retire(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state();
        state.change()?;
        if let Some(mut file) = state.files.remove(path) {
            file.settle();
            state.files.insert(retiring_name(path), file);
        }
        Ok(())
    }

    fn remove_slowly(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state();
        state.change()?;
        state.files.remove(path);
        Ok(())
    }

    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut state = self.state();
        if let Err(e) = state.change() {
            // A crash during the write leaves either file, whole.
            if state.rng.random_bool(0.5) {
                state.files.insert(path.to_owned(), whole(bytes.to_vec()));
            }
            return Err(e);
        }
        state.files.insert(path.to_owned(), whole(bytes.to_vec()));
        Ok(())
    }
}

fn whole(bytes: Vec<u8>) -> SimFile {
    SimFile {
        seen: bytes.clone(),
        durable: bytes,
        pending: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append(disk: &SimDisk, path: &Path, parts: &[&[u8]], sync_after: usize) {
        let mut file = disk.create(path, 2048).unwrap();
        for (i, part) in parts.iter().enumerate() {
            file.write_all(part).unwrap();
            if i + 1 == sync_after {
                file.sync_data().unwrap();
            }
        }
    }

    #[test]
    fn synced_writes_survive_every_crash_and_unsynced_ones_as_the_crash_says() {
        let path = Path::new("/d/f");
        for seed in 0..50 {
            let disk = SimDisk::new(seed);
            append(&disk, path, &[&[1; 700], &[2; 900]], 1);
            assert_eq!(
                disk.contents(path).unwrap()[..1600],
                [&[1; 700][..], &[2; 900]].concat()[..]
            );
            let sector_of = |image: &[u8], s: usize| image[s * 512..(s + 1) * 512].to_vec();
            for crash in Crash::ALL {
                let image = disk.restart(crash).contents(path).unwrap();
                assert_eq!(image.len(), 2048);
                assert_eq!(image[..700], [1; 700], "{crash:?}, seed {seed}");
                let tail = &image[700..1600];
                match crash {
                    Crash::LoseAll => assert!(tail.iter().all(|&b| b == 0)),
                    Crash::KeepAll => assert!(tail.iter().all(|&b| b == 2)),
                    Crash::Prefix => {
                        let kept = tail.iter().take_while(|&&b| b == 2).count();
                        assert!(tail[kept..].iter().all(|&b| b == 0), "seed {seed}");
                    }
                    Crash::Sectors => {
                        // Whole sectors (clipped to the write) or nothing.
                        for s in 1..4 {
                            let sector = sector_of(&image, s);
                            let from = if s == 1 { 700 - 512 } else { 0 };
                            let to = if s == 3 { 1600 - 3 * 512 } else { 512 };
                            let part = &sector[from..to];
                            assert!(
                                part.iter().all(|&b| b == 2) || part.iter().all(|&b| b == 0),
                                "seed {seed}, sector {s}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_crash_point_fails_that_operation_and_every_later_one() {
        let disk = SimDisk::new(1);
        disk.crash_at(2);
        let mut file = disk.create(Path::new("/d/f"), 0).unwrap();
        file.write_all(b"abc").unwrap();
        assert!(file.sync_data().is_err());
        assert!(disk.crashed());
        assert!(file.write_all(b"d").is_err());
        assert!(disk.read(Path::new("/d/f")).is_err());
        assert_eq!(disk.ops(), 3);
        let after = disk.restart(Crash::LoseAll);
        assert_eq!(after.contents(Path::new("/d/f")).unwrap(), b"");
    }

    #[test]
    fn a_failed_sync_never_makes_its_writes_durable_though_reads_see_them() {
        let disk = SimDisk::new(2);
        disk.inject(Fault::FailedSync { nth: 0 });
        let path = Path::new("/d/f");
        let mut file = disk.create(path, 0).unwrap();
        file.write_all(b"lost").unwrap();
        assert!(file.sync_data().is_err());
        assert_eq!(disk.read(path).unwrap(), b"lost");
        file.sync_data().unwrap();
        assert_eq!(disk.restart(Crash::KeepAll).contents(path).unwrap(), b"");
        assert_eq!(disk.struck().unwrap().fault, Fault::FailedSync { nth: 0 });
    }

    #[test]
    fn lost_and_misdirected_writes_report_success_and_land_wrong() {
        let path = Path::new("/d/f");
        let disk = SimDisk::new(3);
        disk.inject(Fault::LostWrite { nth: 1 });
        append(&disk, path, &[b"ab", b"cd", b"ef"], 3);
        let image = disk.restart(Crash::LoseAll).contents(path).unwrap();
        assert_eq!(&image[..6], b"ab\0\0ef");
        let disk = SimDisk::new(4);
        disk.inject(Fault::MisdirectedWrite { nth: 0 });
        append(&disk, path, &[b"ab"], 1);
        let image = disk.restart(Crash::LoseAll).contents(path).unwrap();
        assert_eq!(&image[..2], b"\0\0");
        assert_eq!(&image[512..514], b"ab");
    }

    #[test]
    fn a_corrupt_read_flips_one_bit_of_what_is_read_not_of_the_file() {
        let disk = SimDisk::new(5);
        let path = Path::new("/d/f");
        disk.write_atomic(path, &[0x55; 64]).unwrap();
        disk.inject(Fault::CorruptRead { nth: 0 });
        let read = disk.read(path).unwrap();
        let flipped: u32 = read.iter().map(|b| (b ^ 0x55).count_ones()).sum();
        assert_eq!(flipped, 1);
        assert_eq!(disk.read(path).unwrap(), vec![0x55; 64]);
    }

    #[test]
    fn a_crash_during_an_atomic_write_leaves_the_old_file_or_the_new() {
        let path = Path::new("/d/state");
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..20 {
            let disk = SimDisk::new(seed);
            disk.write_atomic(path, b"old").unwrap();
            disk.crash_at(1);
            assert!(disk.write_atomic(path, b"new").is_err());
            let image = disk.restart(Crash::Sectors).contents(path).unwrap();
            assert!(image == b"old" || image == b"new");
            seen.insert(image);
        }
        assert_eq!(seen.len(), 2, "both outcomes happen");
    }
}
