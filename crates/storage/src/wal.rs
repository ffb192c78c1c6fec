//! The write-ahead log. See docs/storage.md for the byte layout.
//!
//! A segment is `wal-<16 hex digits>.log`, named by the index of its first
//! record (or one more than the previous segment's name, if that is higher:
//! names always grow): an 8-byte magic, then frames. A frame holds one batch
//! (one fsync): `u32 payload_len | u32 crc32c(payload) | payload | 0x42`, and
//! the payload is records `u32 body_len | i64 index | body`. Indexes grow by
//! one per record, except that a record may go back to an earlier index: it
//! replaces the records from there on (what that means is up to the reader).
//! Segments are reserved
//! (zeroed) ahead, so a zero length marks the end of data; the trailing 0x42
//! tells a frame that was written completely (then a bad checksum is
//! corruption) from one cut short by a crash (a torn tail).

use crate::disk::{AppendFile, Disk};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const MAGIC: &[u8; 8] = b"PDKWAL01";
const FRAME_END: u8 = 0x42;
const FRAME_HEADER: usize = 8;
const RECORD_HEADER: usize = 12;
/// A frame larger than this is not believed (it is damage).
pub const MAX_FRAME_BYTES: usize = 256 << 20;

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} at offset {offset}: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("the log stopped accepting writes after an earlier failure")]
    Failed,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> WalError + '_ {
    move |source| WalError::Io {
        path: path.to_owned(),
        source,
    }
}

/// One logged record: its index and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub index: i64,
    pub body: Bytes,
}

/// What recovery found.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Every intact record, in the order written.
    pub records: Vec<Record>,
    /// A torn tail that was cut off: file and the offset it was cut at.
    pub truncated: Option<(PathBuf, u64)>,
}

pub fn segment_name(first_index: i64) -> String {
    format!("wal-{first_index:016x}.log")
}

/// The segments in `dir` with the numbers they are named by, oldest first.
pub fn list_segments(disk: &dyn Disk, dir: &Path) -> Result<Vec<(i64, PathBuf)>, WalError> {
    Ok(disk
        .list(dir)
        .map_err(io_err(dir))?
        .into_iter()
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?;
            let hex = name.strip_prefix("wal-")?.strip_suffix(".log")?;
            Some((i64::from_str_radix(hex, 16).ok()?, p))
        })
        .collect())
}

/// Reads the segments in `dir` that hold records from index `from` on
/// (as `read_log_from` picks them), cuts a torn tail off the last one, and
/// returns the records. Damage anywhere else is an error naming the file
/// and offset: the log is never silently shortened.
pub fn recover(disk: &dyn Disk, dir: &Path, from: i64) -> Result<Recovered, WalError> {
    scan(disk, dir, true, from)
}

/// Reads the log like `recover` but changes nothing on disk (for
/// inspection while a server may be running).
pub fn read_log(disk: &dyn Disk, dir: &Path) -> Result<Recovered, WalError> {
    scan(disk, dir, false, i64::MIN)
}

/// Like `read_log`, but skips the segments that hold only records below
/// index `from` (a segment's records precede the next segment's name).
pub fn read_log_from(disk: &dyn Disk, dir: &Path, from: i64) -> Result<Recovered, WalError> {
    scan(disk, dir, false, from)
}

fn scan(disk: &dyn Disk, dir: &Path, repair: bool, from: i64) -> Result<Recovered, WalError> {
    let listed = list_segments(disk, dir)?;
    let skip = listed
        .windows(2)
        .take_while(|pair| pair[1].0 <= from)
        .count();
    let segments: Vec<PathBuf> = listed.into_iter().skip(skip).map(|(_, p)| p).collect();
    let mut out = Recovered::default();
    for (i, path) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        let bytes = disk.read(path).map_err(io_err(path))?;
        let corrupt = |offset: usize, reason: &str| WalError::Corrupt {
            path: path.clone(),
            offset: offset as u64,
            reason: reason.to_owned(),
        };
        if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
            if last && bytes.iter().all(|&b| b == 0) {
                // Created but never written: nothing was acknowledged from it.
                if repair {
                    disk.remove(path).map_err(io_err(path))?;
                }
                out.truncated = Some((path.clone(), 0));
                continue;
            }
            return Err(corrupt(0, "not a Paddock log segment (bad magic)"));
        }
        let mut at = MAGIC.len();
        while at < bytes.len() {
            match read_frame(&bytes, at) {
                Frame::End => {
                    if !last && bytes[at..].iter().any(|&b| b != 0) {
                        return Err(corrupt(at, "data after the end of a closed segment"));
                    }
                    if last && repair {
                        // Give back the reserved space: appends go to a new
                        // segment, and this one is closed from now on.
                        trim(disk, path, at)?;
                    }
                    break;
                }
                Frame::Torn if last => {
                    if repair {
                        trim(disk, path, at)?;
                    }
                    out.truncated = Some((path.clone(), at as u64));
                    break;
                }
                Frame::Torn => return Err(corrupt(at, "incomplete frame in a closed segment")),
                Frame::Corrupt(reason) => return Err(corrupt(at, reason)),
                Frame::Ok { payload, next } => {
                    for record in records(payload).map_err(|r| corrupt(at, r))? {
                        if let Some(prev) = out.records.last() {
                            if record.index > prev.index + 1 {
                                return Err(corrupt(
                                    at,
                                    &format!(
                                        "index {} follows {}: a gap in the log",
                                        record.index, prev.index
                                    ),
                                ));
                            }
                        }
                        out.records.push(record);
                    }
                    at = next;
                }
            }
        }
    }
    Ok(out)
}

/// Cuts a segment to its first `len` bytes, or removes it if that leaves no
/// frame at all.
fn trim(disk: &dyn Disk, path: &Path, len: usize) -> Result<(), WalError> {
    if len <= MAGIC.len() {
        disk.remove(path).map_err(io_err(path))
    } else {
        disk.truncate(path, len as u64).map_err(io_err(path))
    }
}

enum Frame<'a> {
    End,
    Torn,
    Corrupt(&'static str),
    Ok { payload: &'a [u8], next: usize },
}

fn read_frame(bytes: &[u8], at: usize) -> Frame<'_> {
    let rest = &bytes[at..];
    if rest.len() < FRAME_HEADER {
        return if rest.iter().all(|&b| b == 0) {
            Frame::End
        } else {
            Frame::Torn
        };
    }
    let mut h = &rest[..FRAME_HEADER];
    let len = h.get_u32() as usize;
    let crc = h.get_u32();
    if len == 0 {
        return if crc == 0 { Frame::End } else { Frame::Torn };
    }
    if len > MAX_FRAME_BYTES {
        return Frame::Torn;
    }
    let end = FRAME_HEADER + len;
    if rest.len() <= end {
        return Frame::Torn;
    }
    match rest[end] {
        // A crash leaves the reserved zeros where the end marker goes.
        0 => return Frame::Torn,
        FRAME_END => {}
        _ => return Frame::Corrupt("damaged frame end marker"),
    }
    let payload = &rest[FRAME_HEADER..end];
    if crc32c::crc32c(payload) != crc {
        return Frame::Corrupt("checksum mismatch in a complete frame");
    }
    Frame::Ok {
        payload,
        next: at + end + 1,
    }
}

fn records(mut payload: &[u8]) -> Result<Vec<Record>, &'static str> {
    let mut out = Vec::new();
    while !payload.is_empty() {
        if payload.len() < RECORD_HEADER {
            return Err("truncated record header inside a frame");
        }
        let len = payload.get_u32() as usize;
        let index = payload.get_i64();
        if len > payload.len() {
            return Err("record longer than its frame");
        }
        out.push(Record {
            index,
            body: Bytes::copy_from_slice(&payload[..len]),
        });
        payload = &payload[len..];
    }
    Ok(out)
}

/// Appends batches of records, one frame and one fdatasync per batch.
pub struct Wal {
    disk: Arc<dyn Disk>,
    dir: PathBuf,
    segment_bytes: u64,
    current: Option<(Box<dyn AppendFile>, PathBuf, u64)>,
    /// The name number of the newest segment: the next one is named higher.
    newest: Option<i64>,
    failed: bool,
    frame: BytesMut,
}

impl Wal {
    /// A log appending to new segments in `dir` (after `recover`).
    pub fn new(disk: Arc<dyn Disk>, dir: &Path, segment_bytes: u64) -> Result<Wal, WalError> {
        let newest = list_segments(&*disk, dir)?.last().map(|(n, _)| *n);
        Ok(Wal {
            disk,
            dir: dir.to_owned(),
            segment_bytes,
            current: None,
            newest,
            failed: false,
            frame: BytesMut::new(),
        })
    }

    /// Writes `records` as one frame and makes it durable. After any error
    /// the log refuses every later append: what is on disk past the last
    /// good frame is unknown, and recovery will cut it.
    pub fn append(&mut self, records: &[(i64, &[u8])]) -> Result<(), WalError> {
        if self.failed {
            return Err(WalError::Failed);
        }
        let Some(&(first_index, _)) = records.first() else {
            return Ok(());
        };
        let result = self.write_frame(first_index, records);
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    fn write_frame(&mut self, first_index: i64, records: &[(i64, &[u8])]) -> Result<(), WalError> {
        self.frame.clear();
        self.frame.put_u64(0);
        for (index, body) in records {
            self.frame.put_u32(body.len() as u32);
            self.frame.put_i64(*index);
            self.frame.put_slice(body);
        }
        let payload_len = self.frame.len() - FRAME_HEADER;
        let crc = crc32c::crc32c(&self.frame[FRAME_HEADER..]);
        self.frame[..4].copy_from_slice(&(payload_len as u32).to_be_bytes());
        self.frame[4..8].copy_from_slice(&crc.to_be_bytes());
        self.frame.put_u8(FRAME_END);
        let need = self.frame.len() as u64;
        let rotate = match &self.current {
            None => true,
            Some((_, _, written)) => written + need > self.segment_bytes,
        };
        if rotate {
            self.open_segment(first_index, need)?;
        }
        let Some((file, path, written)) = self.current.as_mut() else {
            return Err(WalError::Failed);
        };
        file.write_all(&self.frame).map_err(io_err(path))?;
        file.sync_data().map_err(io_err(path))?;
        *written += need;
        Ok(())
    }

    /// Removes every segment, oldest first: the log is empty and the next
    /// append starts a new segment (named above every earlier one). For a
    /// replica whose whole log a newer, durable snapshot has replaced.
    pub fn clear(&mut self) -> Result<(), WalError> {
        if self.failed {
            return Err(WalError::Failed);
        }
        self.current = None;
        let result = list_segments(&*self.disk, &self.dir).and_then(|segments| {
            segments
                .iter()
                .try_for_each(|(_, path)| match self.disk.remove(path) {
                    // Already gone: a purge of old segments got there first.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    removed => removed.map_err(io_err(path)),
                })
        });
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    /// Closes the current segment (cut to its data) and starts the next.
    fn open_segment(&mut self, first_index: i64, need: u64) -> Result<(), WalError> {
        if let Some((_, path, written)) = self.current.take() {
            self.disk.truncate(&path, written).map_err(io_err(&path))?;
        }
        let name = self.newest.map_or(first_index, |n| first_index.max(n + 1));
        self.newest = Some(name);
        let path = self.dir.join(segment_name(name));
        let reserve = self.segment_bytes.max(need + MAGIC.len() as u64);
        let mut file = self.disk.create(&path, reserve).map_err(io_err(&path))?;
        file.write_all(MAGIC).map_err(io_err(&path))?;
        self.current = Some((file, path, MAGIC.len() as u64));
        Ok(())
    }
}
