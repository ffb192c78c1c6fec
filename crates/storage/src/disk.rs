//! All file access of the storage layer goes through `Disk`, so tests can
//! inject torn writes and fsync failures.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

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
    /// Cuts a file to `len` bytes and makes that durable.
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()>;
    /// The files of a directory, sorted by name.
    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>>;
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Writes a whole file so that it is either absent or complete:
    /// a temporary file, fsync, rename, fsync of the directory.
    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> io::Result<()>;
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct FsDisk;

struct FsFile(File);

impl AppendFile for FsFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.0.sync_data()
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
        Ok(Box::new(FsFile(file)))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let file = OpenOptions::new().write(true).open(path)?;
        file.set_len(len)?;
        file.sync_all()
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

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        FsDisk.truncate(path, len)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        FsDisk.list(dir)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        FsDisk.remove(path)
    }

    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        FsDisk.write_atomic(path, bytes)
    }
}
