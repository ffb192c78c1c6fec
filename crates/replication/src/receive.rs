//! A snapshot received from the leader in chunks, written through `Disk`
//! to a file of its own until it is installed, and never past a limit.

use paddock_storage::disk::{remove_if_there, AppendFile};
use paddock_storage::Disk;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The largest snapshot file a replica takes from a leader. Snapshots are
/// compressed about 24 to 1 (a 900k-znode tree of 198 MB is 8.2 MB), so
/// this is far past any tree a server can hold; it stops a peer that
/// streams without end from filling the disk.
pub const MAX_RECEIVED_SNAPSHOT_BYTES: u64 = 8 << 30;

pub struct Receiving {
    file: Box<dyn AppendFile>,
    path: PathBuf,
    bytes: u64,
    limit: u64,
}

impl Receiving {
    /// Starts the file at `path` (one an earlier run left there is
    /// replaced).
    pub fn begin(disk: Arc<dyn Disk>, path: PathBuf, limit: u64) -> io::Result<Receiving> {
        remove_if_there(&*disk, &path)?;
        let file = disk.create(&path, 0)?;
        Ok(Receiving {
            file,
            path,
            bytes: 0,
            limit,
        })
    }

    /// Appends a chunk; more than the limit in all is an error, and the
    /// caller abandons the file.
    pub fn chunk(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.bytes += bytes.len() as u64;
        if self.bytes > self.limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "a snapshot over {} bytes for {}",
                    self.limit,
                    self.path.display()
                ),
            ));
        }
        self.file.write_all(bytes)
    }

    /// Makes the file durable: the path of a whole snapshot to install
    /// (removed with `remove_if_there` once installed).
    pub fn finish(mut self) -> io::Result<PathBuf> {
        self.file.sync_data()?;
        Ok(self.path)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paddock_storage::sim::{Crash, SimDisk};

    #[test]
    fn chunks_land_in_order_durably_and_a_stale_file_is_replaced() {
        let disk = SimDisk::new(1);
        let path = PathBuf::from("/data/snap/receiving.1.tmp");
        disk.write_atomic(&path, b"from an earlier run").unwrap();
        let mut part = Receiving::begin(Arc::new(disk.clone()), path.clone(), 100).unwrap();
        part.chunk(b"first ").unwrap();
        part.chunk(b"second").unwrap();
        let whole = part.finish().unwrap();
        assert_eq!(whole, path);
        let after = disk.restart(Crash::LoseAll);
        assert_eq!(after.contents(&path).unwrap(), b"first second");
        remove_if_there(&after, &path).unwrap();
        remove_if_there(&after, &path).unwrap();
        assert_eq!(after.contents(&path), None);
    }

    #[test]
    fn a_snapshot_past_the_limit_is_refused_before_it_is_written() {
        let disk = SimDisk::new(2);
        let path = PathBuf::from("/data/snap/receiving.2.tmp");
        let mut part = Receiving::begin(Arc::new(disk.clone()), path.clone(), 10).unwrap();
        part.chunk(&[1; 10]).unwrap();
        let err = part.chunk(&[2]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("over 10 bytes"), "{err}");
        assert_eq!(disk.contents(&path).unwrap(), vec![1; 10]);
    }

    /// Crashed at every operation of a receive, with every way of losing
    /// unsynced writes, then received again from the start (as the leader
    /// resends): the file left half-written is replaced, and once `finish`
    /// returns the file holds every chunk whatever the next crash loses.
    #[test]
    fn a_receive_cut_by_a_crash_is_redone_whole_and_durable() {
        let path = PathBuf::from("/data/snap/receiving.3.tmp");
        let chunks: Vec<Vec<u8>> = (0..4u8).map(|i| vec![i + 1; 700]).collect();
        let receive = |disk: &SimDisk| -> io::Result<PathBuf> {
            let mut part = Receiving::begin(Arc::new(disk.clone()), path.clone(), 1 << 20)?;
            for chunk in &chunks {
                part.chunk(chunk)?;
            }
            part.finish()
        };
        let whole = chunks.concat();
        let dry = SimDisk::new(0);
        receive(&dry).unwrap();
        for at in 0..dry.ops() {
            for crash in Crash::ALL {
                let disk = SimDisk::new(at);
                disk.crash_at(at);
                assert!(receive(&disk).is_err(), "op {at}: the crash stops it");
                let after = disk.restart(crash);
                assert_eq!(receive(&after).unwrap(), path, "op {at}, {crash:?}");
                for next in Crash::ALL {
                    let image = after.restart(next).contents(&path);
                    assert_eq!(image, Some(whole.clone()), "op {at}, {crash:?}, {next:?}");
                }
            }
        }
    }
}
