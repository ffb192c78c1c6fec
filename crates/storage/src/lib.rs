//! Paddock's storage: the write-ahead log, snapshot files, recovery. All file access
//! goes through the `Disk` trait. No sockets, no tasks.

#[cfg(test)]
mod crashes;
pub mod disk;
pub mod sealed;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
pub mod snapshot;
pub mod wal;

pub use disk::{retiring_name, Disk, FsDisk};
pub use wal::{list_segments, read_log, read_log_from, recover, Record, Recovered, Wal, WalError};
