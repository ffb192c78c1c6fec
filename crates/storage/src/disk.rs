//! All file access of the storage layer goes through `Disk`, so tests can
//! inject torn writes and fsync failures.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

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
}
