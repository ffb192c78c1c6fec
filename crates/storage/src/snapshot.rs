//! Snapshot files: `snapshot-<position, 16 hex>.snap` holding
//! `"PDKSNAP1" | u32 crc32c(body) | body`, where body is the zstd-compressed
//! payload and the position is how many log entries the snapshot covers. Written atomically (temporary file, fsync, rename).

use crate::disk::Disk;
use crate::wal::WalError;
use bytes::Bytes;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"PDKSNAP1";
const HEADER: usize = 12;
/// zstd level: fast, still a good ratio for znode data.
const LEVEL: i32 = 3;

pub fn snapshot_name(position: i64) -> String {
    format!("snapshot-{position:016x}.snap")
}

/// The snapshots in `dir`, newest (highest position) first.
pub fn list_snapshots(disk: &dyn Disk, dir: &Path) -> Result<Vec<(i64, PathBuf)>, WalError> {
    let mut out: Vec<(i64, PathBuf)> = disk
        .list(dir)
        .map_err(|source| WalError::Io {
            path: dir.to_owned(),
            source,
        })?
        .into_iter()
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?;
            let hex = name.strip_prefix("snapshot-")?.strip_suffix(".snap")?;
            Some((i64::from_str_radix(hex, 16).ok()?, p))
        })
        .collect();
    out.sort_by_key(|s| std::cmp::Reverse(s.0));
    Ok(out)
}

/// Writes `payload` as the snapshot at `position`.
pub fn write_snapshot(
    disk: &dyn Disk,
    dir: &Path,
    position: i64,
    payload: &[u8],
) -> Result<PathBuf, WalError> {
    let path = dir.join(snapshot_name(position));
    let io = |source| WalError::Io {
        path: path.clone(),
        source,
    };
    let body = zstd::bulk::compress(payload, LEVEL).map_err(io)?;
    let mut file = Vec::with_capacity(HEADER + body.len());
    file.extend_from_slice(MAGIC);
    file.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
    file.extend_from_slice(&body);
    disk.write_atomic(&path, &file).map_err(io)?;
    Ok(path)
}

/// Reads and checks a snapshot; any damage is an error naming the file.
pub fn read_snapshot(disk: &dyn Disk, path: &Path) -> Result<Bytes, WalError> {
    let corrupt = |offset: u64, reason: &str| WalError::Corrupt {
        path: path.to_owned(),
        offset,
        reason: reason.to_owned(),
    };
    let bytes = disk.read(path).map_err(|source| WalError::Io {
        path: path.to_owned(),
        source,
    })?;
    if bytes.len() < HEADER || &bytes[..8] != MAGIC {
        return Err(corrupt(0, "not a Paddock snapshot (bad magic)"));
    }
    let crc = u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    let body = &bytes[HEADER..];
    if crc32c::crc32c(body) != crc {
        return Err(corrupt(HEADER as u64, "checksum mismatch"));
    }
    let mut out = Vec::new();
    zstd::stream::copy_decode(body, &mut out)
        .map_err(|_| corrupt(HEADER as u64, "does not decompress"))?;
    Ok(Bytes::from(out))
}
