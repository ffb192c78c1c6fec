//! All file access of the storage layer goes through `Disk`, so tests can
//! inject torn writes and fsync failures.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The unit a disk writes whole: a crash may leave any sector of an
/// unsynced write unwritten, and the others written.
pub const SECTOR: u64 = 512;

/// A file being appended to.
pub trait AppendFile: Send {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()>;
    /// fdatasync: the written bytes are durable when this returns Ok.
    fn sync_data(&mut self) -> io::Result<()>;
}

pub trait Disk: Send + Sync {
    /// Creates a new file, reserving `reserve_bytes` of zeroed space.
    fn create(&self, path: &Path, reserve_bytes: u64) -> io::Result<Box<dyn AppendFile>>;
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Opens a file for reading a piece at a time.
    fn open(&self, path: &Path) -> io::Result<Box<dyn Read + Send>>;
    /// Cuts a file to `len` bytes and makes that durable.
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()>;
    /// Makes a file's contents durable (fsync), whoever wrote them: after
    /// a failed fsync, data can still be read back from the page cache
    /// without being on the disk.
    fn sync_file(&self, path: &Path) -> io::Result<()>;
    /// The files of a directory, sorted by name.
    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>>;
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Renames a file to its [`retiring_name`], durably: nothing reads it
    /// from then on, and [`Disk::remove_slowly`] may take its time. A file
    /// already gone is not an error.
    fn retire(&self, path: &Path) -> io::Result<()>;
    /// Removes a large retired file, freeing its space a little at a time
    /// (see [`FsDisk`]'s). A file already gone is not an error.
    fn remove_slowly(&self, path: &Path) -> io::Result<()>;
    /// Writes a whole file so that it is either absent or complete:
    /// a temporary file, fsync, rename, fsync of the directory.
    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> io::Result<()>;
}

/// Removes a file that may already be gone (that is not an error).
pub fn remove_if_there(disk: &dyn Disk, path: &Path) -> io::Result<()> {
    match disk.remove(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        removed => removed,
    }
}

/// The name of a file once retired ([`Disk::retire`]).
pub fn retiring_name(path: &Path) -> PathBuf {
    path.with_extension("retiring")
}

/// How much of a file `remove_slowly` frees at once, and the pause after.
const FREE_STEP: u64 = 4 << 20;
const FREE_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct FsDisk;

/// How far ahead of its data a file's reserved space is written with
/// zeros. Reserved (fallocated) space is "unwritten" to the file system:
/// the first write into each block changes the file's extents, so the
/// fdatasync after it must also write the inode. Zeros written a step
/// ahead are converted in one go, and the fdatasync of each append writes
/// only its data: 4 KiB appends sync in ~110 µs here instead of ~150.
const ZERO_AHEAD: u64 = 256 << 10;
static ZEROS: [u8; ZERO_AHEAD as usize] = [0; ZERO_AHEAD as usize];

/// The zeros to write after an append that ended at `end`: from the end
/// of what is already written (data or zeros, `written`) a step past
/// `end`, within the `reserved` length. None when that is already done.
fn zeros_after(end: u64, written: u64, reserved: u64) -> Option<std::ops::Range<u64>> {
    let upto = (end + ZERO_AHEAD).min(reserved);
    (end > written && upto > end).then_some(end..upto)
}

struct FsFile {
    file: File,
    /// Where the next append goes.
    end: u64,
    /// How much of the file holds data or written zeros.
    written: u64,
    reserved: u64,
}

impl AppendFile for FsFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.file.write_all_at(buf, self.end)?;
        self.end += buf.len() as u64;
        if let Some(zeros) = zeros_after(self.end, self.written, self.reserved) {
            let len = (zeros.end - zeros.start) as usize;
            self.file.write_all_at(&ZEROS[..len], zeros.start)?;
            self.written = zeros.end;
        }
        self.written = self.written.max(self.end);
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }
}

impl Disk for FsDisk {
    fn create(&self, path: &Path, reserve_bytes: u64) -> io::Result<Box<dyn AppendFile>> {
        let file = OpenOptions::new().write(true).create_new(true).open(path)?;
        if reserve_bytes > 0 {
            fs4::FileExt::allocate(&file, reserve_bytes)?;
        }
        file.sync_all()?;
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(Box::new(FsFile {
            file,
            end: 0,
            written: 0,
            reserved: reserve_bytes,
        }))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn open(&self, path: &Path) -> io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(File::open(path)?))
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let file = OpenOptions::new().write(true).open(path)?;
        file.set_len(len)?;
        file.sync_all()
    }

    fn sync_file(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            out.push(entry?.path());
        }
        out.sort();
        Ok(out)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)?;
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }

    fn retire(&self, path: &Path) -> io::Result<()> {
        match std::fs::rename(path, retiring_name(path)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            renamed => renamed?,
        }
        match path.parent() {
            Some(dir) => File::open(dir)?.sync_all(),
            None => Ok(()),
        }
    }

    /// Freeing tens of MiB at once, on ext4 mounted with `discard`, makes
    /// the journal commit that frees them wait for the device to discard
    /// them, and every fsync behind it waits too (50–300 ms, the log's
    /// worst stalls). Cut from the end a few MiB at a time, each cut
    /// durable, the discards are small and spread out.
    fn remove_slowly(&self, path: &Path) -> io::Result<()> {
        let gone = |e: &io::Error| e.kind() == io::ErrorKind::NotFound;
        let mut len = match std::fs::metadata(path) {
            Ok(meta) => meta.len(),
            Err(e) if gone(&e) => return Ok(()),
            Err(e) => return Err(e),
        };
        while len > FREE_STEP {
            len -= FREE_STEP;
            match self.truncate(path, len) {
                Err(e) if gone(&e) => return Ok(()),
                cut => cut?,
            }
            std::thread::sleep(FREE_PAUSE);
        }
        match self.remove(path) {
            Err(e) if gone(&e) => Ok(()),
            removed => removed,
        }
    }

    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let tmp = path.with_extension("tmp");
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

/// The real file system with faults injected, for tests: after
/// `writes_ok` successful writes the next write is torn (half of it reaches
/// the file, then an error); after `syncs_ok` successful syncs every sync
/// fails.
pub struct FaultyDisk {
    writes_left: Arc<AtomicUsize>,
    syncs_left: Arc<AtomicUsize>,
}

impl FaultyDisk {
    pub fn new(writes_ok: usize, syncs_ok: usize) -> FaultyDisk {
        FaultyDisk {
            writes_left: Arc::new(AtomicUsize::new(writes_ok)),
            syncs_left: Arc::new(AtomicUsize::new(syncs_ok)),
        }
    }

    /// From now on, allows only `n` more successful syncs.
    pub fn allow_syncs(&self, n: usize) {
        self.syncs_left.store(n, Ordering::SeqCst);
    }
}

struct FaultyFile {
    inner: Box<dyn AppendFile>,
    writes_left: Arc<AtomicUsize>,
    syncs_left: Arc<AtomicUsize>,
}

fn take_one(n: &AtomicUsize) -> bool {
    n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
        .is_ok()
}

impl AppendFile for FaultyFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        if take_one(&self.writes_left) {
            self.inner.write_all(buf)
        } else {
            self.inner.write_all(&buf[..buf.len() / 2])?;
            Err(io::Error::other("injected torn write"))
        }
    }

    fn sync_data(&mut self) -> io::Result<()> {
        if take_one(&self.syncs_left) {
            self.inner.sync_data()
        } else {
            Err(io::Error::other("injected fsync failure"))
        }
    }
}

impl Disk for FaultyDisk {
    fn create(&self, path: &Path, reserve_bytes: u64) -> io::Result<Box<dyn AppendFile>> {
        Ok(Box::new(FaultyFile {
            inner: FsDisk.create(path, reserve_bytes)?,
            writes_left: self.writes_left.clone(),
            syncs_left: self.syncs_left.clone(),
        }))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        FsDisk.read(path)
    }

    fn open(&self, path: &Path) -> io::Result<Box<dyn Read + Send>> {
        FsDisk.open(path)
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        FsDisk.truncate(path, len)
    }

    fn sync_file(&self, path: &Path) -> io::Result<()> {
        if take_one(&self.syncs_left) {
            FsDisk.sync_file(path)
        } else {
            Err(io::Error::other("injected fsync failure"))
        }
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        FsDisk.list(dir)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        FsDisk.remove(path)
    }

    fn retire(&self, path: &Path) -> io::Result<()> {
        FsDisk.retire(path)
    }

    fn remove_slowly(&self, path: &Path) -> io::Result<()> {
        FsDisk.remove_slowly(path)
    }

    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        FsDisk.write_atomic(path, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retired_file_is_renamed_then_freed_and_one_already_gone_is_no_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal-0000000000000001.log");
        let len = 2 * FREE_STEP + 1000;
        std::fs::write(&path, vec![7u8; len as usize]).unwrap();
        FsDisk.retire(&path).unwrap();
        let retired = retiring_name(&path);
        assert!(!path.exists());
        assert_eq!(std::fs::metadata(&retired).unwrap().len(), len);
        FsDisk.remove_slowly(&retired).unwrap();
        assert!(!retired.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        FsDisk.retire(&path).unwrap();
        FsDisk.remove_slowly(&retired).unwrap();
    }

    #[test]
    fn zeros_are_written_a_step_ahead_of_the_data_within_the_reserve() {
        let step = ZERO_AHEAD;
        // The first append writes a step of zeros after itself.
        assert_eq!(zeros_after(8, 0, 10 * step), Some(8..8 + step));
        // Appends inside written zeros write none.
        assert_eq!(zeros_after(100, 8 + step, 10 * step), None);
        assert_eq!(zeros_after(8 + step, 8 + step, 10 * step), None);
        // One past them writes the next step.
        assert_eq!(
            zeros_after(9 + step, 8 + step, 10 * step),
            Some(9 + step..9 + 2 * step)
        );
        // Never past the reserve, nor anything for a file without one.
        assert_eq!(
            zeros_after(10 * step - 5, 0, 10 * step),
            Some(10 * step - 5..10 * step)
        );
        assert_eq!(zeros_after(10 * step, 0, 10 * step), None);
        assert_eq!(zeros_after(50, 0, 0), None);
    }

    #[test]
    fn appends_land_in_order_and_leave_the_reserve_zeroed_and_its_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let reserve = 3 * ZERO_AHEAD;
        let mut file = FsDisk.create(&path, reserve).unwrap();
        let mut expected = Vec::new();
        // Appends of every size up to past the whole reserve.
        for (i, len) in [
            8usize,
            300,
            5000,
            ZERO_AHEAD as usize,
            77,
            2 * ZERO_AHEAD as usize,
        ]
        .into_iter()
        .enumerate()
        {
            let piece = vec![i as u8 + 1; len];
            file.write_all(&piece).unwrap();
            file.sync_data().unwrap();
            expected.extend_from_slice(&piece);
            let got = std::fs::read(&path).unwrap();
            assert_eq!(&got[..expected.len()], &expected[..], "after append {i}");
            assert!(
                got[expected.len()..].iter().all(|&b| b == 0),
                "after append {i}"
            );
            assert_eq!(
                got.len() as u64,
                reserve.max(expected.len() as u64),
                "after append {i}"
            );
        }
    }
}
