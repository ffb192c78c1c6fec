//! The write-ahead log. See docs/storage.md for the byte layout.
//!
//! A segment is `wal-<16 hex digits>.log`, named by the index of its first
//! record (or one more than the previous segment's name, if that is higher:
//! names always grow): an 8-byte magic, then frames. A frame holds one batch
//! (one fsync): `u32 payload_len | u32 crc32c(payload) | u32 crc32c(the
//! first 8 bytes) | payload | 0x42`, and the payload is records `u32
//! body_len | i64 index | body`. Indexes grow by one per record, except that
//! a record may go back to an earlier index: it replaces the records from
//! there on (what that means is up to the reader).
//!
//! Segments are reserved (zeroed) ahead, so a zero header marks the end of
//! data. Damage is a torn write (cut off at recovery, never acknowledged:
//! each frame is synced before the next is written) only in the newest
//! segment, only as its last data, and only in the shapes a crash leaves:
//! a frame cut short with nothing but zeros after it, or one write's
//! sectors landed in any order ([`torn_tail`]). Anything else is
//! corruption, an error naming the file and offset. Segments of format 1
//! (`PDKWAL01`, no header checksum) are still read, by the first rule only.

use crate::disk::{AppendFile, Disk, SECTOR};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const MAGIC: &[u8; 8] = b"PDKWAL02";
/// Format 1: frame headers without their own checksum.
const MAGIC_V1: &[u8; 8] = b"PDKWAL01";
const FRAME_END: u8 = 0x42;
const FRAME_HEADER: usize = 12;

/// A segment's format, by its magic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    V1,
    V2,
}

impl Format {
    fn of(magic: &[u8]) -> Option<Format> {
        match magic {
            m if m == MAGIC => Some(Format::V2),
            m if m == MAGIC_V1 => Some(Format::V1),
            _ => None,
        }
    }

    fn header_len(self) -> usize {
        match self {
            Format::V1 => 8,
            Format::V2 => FRAME_HEADER,
        }
    }
}
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
    /// Each segment read and the bytes its intact frames fill (a segment's
    /// file is longer while space is reserved for appends).
    pub used: Vec<(PathBuf, u64)>,
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
        .filter_map(|p| Some((list_number(&p)?, p)))
        .collect())
}

/// The number a segment is named by.
fn list_number(path: &Path) -> Option<i64> {
    let name = path.file_name()?.to_str()?;
    let hex = name.strip_prefix("wal-")?.strip_suffix(".log")?;
    i64::from_str_radix(hex, 16).ok()
}

/// Reads the segments in `dir` that hold records from index `from` on
/// (as `read_log_from` picks them), cuts a torn tail off the last one, and
/// returns the records. Damage anywhere else is an error naming the file
/// and offset: the log is never silently shortened.
pub fn recover(disk: &dyn Disk, dir: &Path, from: i64) -> Result<Recovered, WalError> {
    Scan {
        repair: true,
        from,
        ..Scan::ALL
    }
    .run(disk, dir)
}

/// Reads the log like `recover` but changes nothing on disk (for
/// inspection while a server may be running).
pub fn read_log(disk: &dyn Disk, dir: &Path) -> Result<Recovered, WalError> {
    Scan::ALL.run(disk, dir)
}

/// The bytes each segment's intact frames fill (`Recovered::used`),
/// read like `read_log` but without keeping any record's body.
pub fn segments_used(disk: &dyn Disk, dir: &Path) -> Result<Vec<(PathBuf, u64)>, WalError> {
    let scan = Scan {
        bodies_from: i64::MAX,
        ..Scan::ALL
    };
    Ok(scan.run(disk, dir)?.used)
}

/// Like `read_log`, but skips the segments that hold only records below
/// index `from` (a segment's records precede the next segment's name), and
/// the records read that are below `from` come with an empty body: they
/// only tell a reader what a later record replaces.
pub fn read_log_from(disk: &dyn Disk, dir: &Path, from: i64) -> Result<Recovered, WalError> {
    Scan {
        from,
        bodies_from: from,
        ..Scan::ALL
    }
    .run(disk, dir)
}

/// How the log is read.
#[derive(Debug, Clone, Copy)]
struct Scan {
    /// Cut a torn tail off (and give back the newest segment's reserve).
    repair: bool,
    /// Skip the segments that hold only records below this index.
    from: i64,
    /// Records below this index come without their body.
    bodies_from: i64,
    /// How much of a segment is read at once.
    piece: usize,
}

/// How much of a segment is read at once. The newest segment is mostly
/// reserved zeros; reading stops a piece past the end of its data.
const READ_PIECE: usize = 1 << 20;

impl Scan {
    /// Everything, changing nothing.
    const ALL: Scan = Scan {
        repair: false,
        from: i64::MIN,
        bodies_from: i64::MIN,
        piece: READ_PIECE,
    };

    fn run(self, disk: &dyn Disk, dir: &Path) -> Result<Recovered, WalError> {
        let Scan {
            repair,
            from,
            bodies_from,
            piece,
        } = self;
        let listed = list_segments(disk, dir)?;
        let skip = listed
            .windows(2)
            .take_while(|pair| pair[1].0 <= from)
            .count();
        let segments: Vec<PathBuf> = listed.into_iter().skip(skip).map(|(_, p)| p).collect();
        let mut out = Recovered::default();
        for (i, path) in segments.iter().enumerate() {
            let last = i + 1 == segments.len();
            let file = disk.open(path).map_err(io_err(path))?;
            let mut seg = Pieces::new(file, piece);
            let corrupt = |offset: usize, reason: &str| WalError::Corrupt {
                path: path.clone(),
                offset: offset as u64,
                reason: reason.to_owned(),
            };
            // Damage at `at`: a torn write to cut there, or corruption.
            let torn_or_corrupt = |format: Format, at: usize, reason: &str| {
                if !(last && format == Format::V2) {
                    return Err(corrupt(at, reason));
                }
                let mut again = Pieces::new(disk.open(path).map_err(io_err(path))?, piece);
                again.skip(at).map_err(io_err(path))?;
                match again.tail().map_err(io_err(path))? {
                    Some(tail) => torn_tail(at as u64, &tail)
                        .map_err(|r| corrupt(at, &format!("{reason}; {r}"))),
                    None => Err(corrupt(at, &format!("{reason}; data follows far past it"))),
                }
            };
            let head = seg.peek(MAGIC.len()).map_err(io_err(path))?;
            let unwritten = head.iter().all(|&b| b == 0);
            let format = match Format::of(head) {
                Some(format) => format,
                // A new segment whose first write was cut short (its magic
                // never landed; another magic is another format).
                None if unwritten
                    && torn_or_corrupt(Format::V2, 0, "a segment without its magic").is_ok() =>
                {
                    if repair {
                        disk.remove(path).map_err(io_err(path))?;
                    }
                    out.truncated = Some((path.clone(), 0));
                    out.used.push((path.clone(), 0));
                    continue;
                }
                None => {
                    let head = seg.peek(MAGIC.len()).map_err(io_err(path))?;
                    let why =
                        crate::sealed::unknown_format(head, "log segment", &[MAGIC, MAGIC_V1]);
                    return Err(corrupt(0, &why));
                }
            };
            seg.consume(MAGIC.len());
            let name = list_number(path);
            let mut frames = 0usize;
            let mut used = seg.offset();
            let cut_at = loop {
                let at = seg.offset();
                if seg.peek(1).map_err(io_err(path))?.is_empty() {
                    break None;
                }
                let damage = match read_frame(&mut seg, format).map_err(io_err(path))? {
                    Frame::End => {
                        if seg.rest_is_zero().map_err(io_err(path))? {
                            // A closed segment was cut to the end of its
                            // frames: zeros in it are where one never landed.
                            if !last && (frames == 0 || format == Format::V2) {
                                return Err(corrupt(
                                    at,
                                    "zeros where a closed segment's frames go",
                                ));
                            }
                            if last && repair {
                                // Give back the reserved space: appends go to a new
                                // segment, and this one is closed from now on.
                                trim(disk, path, at)?;
                            }
                            break None;
                        }
                        "data after the end of the log's data"
                    }
                    Frame::Torn { zeros_from } if last => {
                        seg.skip(zeros_from).map_err(io_err(path))?;
                        if seg.rest_is_zero().map_err(io_err(path))? {
                            break Some(at);
                        }
                        "a damaged frame with data after it"
                    }
                    Frame::Torn { .. } => "incomplete frame in a closed segment",
                    Frame::Damaged(reason) => reason,
                    Frame::Corrupt(reason) => return Err(corrupt(at, reason)),
                    Frame::Ok { payload } => {
                        let size = format.header_len() + payload.len() + 1;
                        let records = records(payload, bodies_from).map_err(|r| corrupt(at, r))?;
                        seg.consume(size);
                        used = seg.offset();
                        if let (0, Some(first), Some(name)) = (frames, records.first(), name) {
                            // Named by its first index, or higher.
                            if first.index > name {
                                return Err(corrupt(
                                    at,
                                    "the first record is past the segment's name",
                                ));
                            }
                        }
                        frames += 1;
                        for record in records {
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
                        continue;
                    }
                };
                torn_or_corrupt(format, at, damage)?;
                break Some(at);
            };
            out.used.push((path.clone(), used as u64));
            if let Some(at) = cut_at {
                if repair {
                    trim(disk, path, at)?;
                }
                out.truncated = Some((path.clone(), at as u64));
            }
            if repair {
                // What a failed fsync left in the page cache reads back
                // intact: it must be durable before it is served.
                match disk.sync_file(path) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    synced => synced.map_err(io_err(path))?,
                }
            }
        }
        Ok(out)
    }
}

/// A segment read a piece at a time: what is buffered is at most one frame
/// and one piece, and nothing is allocated for a length until the bytes
/// are there.
struct Pieces {
    file: Box<dyn Read + Send>,
    buf: Vec<u8>,
    /// Where in `buf` the unread bytes start.
    pos: usize,
    /// The file offset of `buf[0]`.
    base: usize,
    eof: bool,
    piece: usize,
}

impl Pieces {
    fn new(file: Box<dyn Read + Send>, piece: usize) -> Pieces {
        Pieces {
            file,
            buf: Vec::new(),
            pos: 0,
            base: 0,
            eof: false,
            piece,
        }
    }

    /// The next `want` unread bytes, fewer only where the file ends.
    fn peek(&mut self, want: usize) -> std::io::Result<&[u8]> {
        while self.buf.len() - self.pos < want && !self.eof {
            self.buf.drain(..self.pos);
            self.base += self.pos;
            self.pos = 0;
            let more = (want - self.buf.len()).max(self.piece) as u64;
            if (&mut self.file).take(more).read_to_end(&mut self.buf)? == 0 {
                self.eof = true;
            }
        }
        let end = self.buf.len().min(self.pos + want);
        Ok(&self.buf[self.pos..end])
    }

    fn consume(&mut self, n: usize) {
        self.pos += n;
    }

    /// Passes over the next `n` bytes, or to the end of the file.
    fn skip(&mut self, mut n: usize) -> std::io::Result<()> {
        while n > 0 {
            let want = n.min(self.piece);
            let got = self.peek(want)?.len();
            if got == 0 {
                return Ok(());
            }
            self.consume(got);
            n -= got;
        }
        Ok(())
    }

    /// The file offset of the next unread byte.
    fn offset(&self) -> usize {
        self.base + self.pos
    }

    /// Reads the rest of the file: whether it is all zeros.
    fn rest_is_zero(&mut self) -> std::io::Result<bool> {
        loop {
            let piece = self.piece;
            let bytes = self.peek(piece)?;
            if bytes.is_empty() {
                return Ok(true);
            }
            if bytes.iter().any(|&b| b != 0) {
                return Ok(false);
            }
            let n = bytes.len();
            self.consume(n);
        }
    }
}

impl Pieces {
    /// The rest of the segment without its trailing zeros, if that is no
    /// longer than a frame could be (None if it is).
    fn tail(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        let mut tail = self.peek(TAIL_LIMIT)?.to_vec();
        self.consume(tail.len());
        if !self.rest_is_zero()? {
            return Ok(None);
        }
        let data = tail.len() - tail.iter().rev().take_while(|&&b| b == 0).count();
        tail.truncate(data);
        Ok(Some(tail))
    }
}

/// The longest damage a single torn frame can be.
const TAIL_LIMIT: usize = FRAME_HEADER + MAX_FRAME_BYTES + 1;

/// Whether `tail`, the data from offset `at` to the last non-zero byte of
/// the newest segment, can be a frame a crash cut short: every frame
/// before it was synced before it was written, so a crash can have left of
/// it only some of its sectors, in any order, and zeros (the reserve) in
/// the others. So it is torn if no intact frame starts anywhere in it and
/// some sector of it is unwritten: a whole sector of zeros, or zeros from
/// `at` to the end of its sector covering at least the header's length
/// and checksum (never zero in a real header). A bit flipped in the last
/// frame leaves no such zeros, and damage before intact frames is seen by
/// them: both are corruption.
///
/// What no single disk can tell apart: a last frame whose own data holds a
/// whole aligned sector of zeros, damaged elsewhere, looks torn and is
/// cut; and one whose first sector held fewer than 8 bytes of it, left
/// unwritten while the rest landed, is [`AMBIGUOUS_HEADER`] and stops
/// start-up.
fn torn_tail(at: u64, tail: &[u8]) -> Result<(), &'static str> {
    if tail.is_empty() {
        return Ok(());
    }
    if intact_frame(tail) {
        return Err("it reads intact now: the disk returned different bytes");
    }
    if (1..tail.len()).any(|from| intact_frame(&tail[from..])) {
        return Err("intact frames follow it");
    }
    let first = ((SECTOR - at % SECTOR) as usize).min(tail.len());
    let zero = |bytes: &[u8]| bytes.iter().all(|&b| b == 0);
    let header_unwritten = first >= 8 && zero(&tail[..first]);
    let sector_unwritten = tail[first..].chunks_exact(SECTOR as usize).any(zero);
    if header_unwritten || sector_unwritten {
        Ok(())
    } else if zero(&tail[..first]) {
        Err(AMBIGUOUS_HEADER)
    } else {
        Err("no sector of it is unwritten, as a crash would leave one")
    }
}

/// Damage [`torn_tail`] cannot tell from a crash.
pub const AMBIGUOUS_HEADER: &str =
    "the first bytes of its header, alone in their sector, are zeros: a crash or damage, no telling which";

/// Whether `bytes` start with a whole format-2 frame whose checksums hold.
fn intact_frame(bytes: &[u8]) -> bool {
    let Some((head, rest)) = bytes.split_first_chunk::<FRAME_HEADER>() else {
        return false;
    };
    let word = |i: usize| u32::from_be_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
    let len = word(0) as usize;
    if crc32c::crc32c(&head[..8]) != word(8) || len == 0 || len > MAX_FRAME_BYTES {
        return false;
    }
    rest.len() > len && rest[len] == FRAME_END && crc32c::crc32c(&rest[..len]) == word(4)
}

/// Trims a segment to its first `len` bytes, or removes it if that leaves no
/// frame at all.
fn trim(disk: &dyn Disk, path: &Path, len: usize) -> Result<(), WalError> {
    if len <= MAGIC.len() {
        disk.remove(path).map_err(io_err(path))
    } else {
        disk.truncate(path, len as u64).map_err(io_err(path))
    }
}

enum Frame<'a> {
    /// A zero header: the end of the data.
    End,
    /// Not a whole, intact frame: a torn write if everything from
    /// `zeros_from` bytes past its start on is zero.
    Torn {
        zeros_from: usize,
    },
    /// Whole but not intact: damage, or sectors of a torn write.
    Damaged(&'static str),
    /// Never a torn write: a header whose checksum holds says so.
    Corrupt(&'static str),
    Ok {
        payload: &'a [u8],
    },
}

/// The frame at the reader's position (not consumed).
fn read_frame(seg: &mut Pieces, format: Format) -> std::io::Result<Frame<'_>> {
    let header = format.header_len();
    let head = seg.peek(header)?;
    if head.len() < header {
        return Ok(Frame::Torn {
            zeros_from: head.len(),
        });
    }
    if head.iter().all(|&b| b == 0) {
        return Ok(Frame::End);
    }
    let mut h = head;
    let len = h.get_u32() as usize;
    let crc = h.get_u32();
    if format == Format::V2 && crc32c::crc32c(&head[..8]) != h.get_u32() {
        // A header cut short by a crash has only zeros after it.
        return Ok(Frame::Torn { zeros_from: header });
    }
    if len == 0 || len > MAX_FRAME_BYTES {
        return Ok(Frame::Corrupt("frame length out of range"));
    }
    let end = header + len;
    let frame = seg.peek(end + 1)?;
    if frame.len() <= end {
        return Ok(Frame::Torn {
            zeros_from: end + 1,
        });
    }
    match frame[end] {
        // A crash leaves the reserved zeros where the end marker goes.
        0 => {
            return Ok(Frame::Torn {
                zeros_from: end + 1,
            })
        }
        FRAME_END => {}
        _ => return Ok(Frame::Damaged("damaged frame end marker")),
    }
    let payload = &frame[header..end];
    if crc32c::crc32c(payload) != crc {
        return Ok(Frame::Damaged("checksum mismatch in a complete frame"));
    }
    Ok(Frame::Ok { payload })
}

/// The records of a frame; those below `bodies_from` with an empty body.
/// The other bodies share one copy of the payload.
fn records(payload: &[u8], bodies_from: i64) -> Result<Vec<Record>, &'static str> {
    let mut out = Vec::new();
    let mut copied: Option<(usize, Bytes)> = None;
    let mut at = 0;
    while at < payload.len() {
        if payload.len() - at < RECORD_HEADER {
            return Err("truncated record header inside a frame");
        }
        let mut header = &payload[at..at + RECORD_HEADER];
        let len = header.get_u32() as usize;
        let index = header.get_i64();
        let start = at + RECORD_HEADER;
        if len > payload.len() - start {
            return Err("record longer than its frame");
        }
        let body = if index < bodies_from {
            Bytes::new()
        } else {
            let (from, copy) =
                copied.get_or_insert_with(|| (start, Bytes::copy_from_slice(&payload[start..])));
            copy.slice(start - *from..start - *from + len)
        };
        out.push(Record { index, body });
        at = start + len;
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
        self.frame.put_bytes(0, FRAME_HEADER);
        for (index, body) in records {
            self.frame.put_u32(body.len() as u32);
            self.frame.put_i64(*index);
            self.frame.put_slice(body);
        }
        let payload_len = self.frame.len() - FRAME_HEADER;
        assert!(
            payload_len <= MAX_FRAME_BYTES,
            "a batch of {payload_len} bytes: the writer caps batches far below the frame limit"
        );
        let crc = crc32c::crc32c(&self.frame[FRAME_HEADER..]);
        self.frame[..4].copy_from_slice(&(payload_len as u32).to_be_bytes());
        self.frame[4..8].copy_from_slice(&crc.to_be_bytes());
        let header_crc = crc32c::crc32c(&self.frame[..8]);
        self.frame[8..12].copy_from_slice(&header_crc.to_be_bytes());
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
                // One already gone: a purge of old segments got there first.
                .try_for_each(|(_, path)| {
                    crate::disk::remove_if_there(&*self.disk, path).map_err(io_err(path))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::{AppendFile, FsDisk};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// The real file system, counting the bytes read through `open`.
    #[derive(Default)]
    struct Counting(Arc<AtomicUsize>);

    struct CountingFile(std::fs::File, Arc<AtomicUsize>);

    impl Read for CountingFile {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.read(buf)?;
            self.1.fetch_add(n, Ordering::SeqCst);
            Ok(n)
        }
    }

    impl Disk for Counting {
        fn create(&self, path: &Path, reserve: u64) -> std::io::Result<Box<dyn AppendFile>> {
            FsDisk.create(path, reserve)
        }
        fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
            FsDisk.read(path)
        }
        fn open(&self, path: &Path) -> std::io::Result<Box<dyn Read + Send>> {
            let file = std::fs::File::open(path)?;
            Ok(Box::new(CountingFile(file, self.0.clone())))
        }
        fn truncate(&self, path: &Path, len: u64) -> std::io::Result<()> {
            FsDisk.truncate(path, len)
        }
        fn sync_file(&self, path: &Path) -> std::io::Result<()> {
            FsDisk.sync_file(path)
        }
        fn list(&self, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
            FsDisk.list(dir)
        }
        fn remove(&self, path: &Path) -> std::io::Result<()> {
            FsDisk.remove(path)
        }
        fn retire(&self, path: &Path) -> std::io::Result<()> {
            FsDisk.retire(path)
        }
        fn remove_slowly(&self, path: &Path) -> std::io::Result<()> {
            FsDisk.remove_slowly(path)
        }
        fn write_atomic(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
            FsDisk.write_atomic(path, bytes)
        }
    }

    /// Appends `batches` frames of 3 records each (indexes from 1) to
    /// segments of `segment_bytes`.
    fn write_log(dir: &Path, batches: i64, segment_bytes: u64) {
        let mut wal = Wal::new(Arc::new(FsDisk), dir, segment_bytes).unwrap();
        for b in 0..batches {
            let bodies: Vec<Vec<u8>> = (0..3).map(|i| vec![b as u8; 10 + i]).collect();
            let records: Vec<(i64, &[u8])> = (0..3)
                .map(|i| (1 + 3 * b + i as i64, bodies[i].as_slice()))
                .collect();
            wal.append(&records).unwrap();
        }
    }

    #[test]
    fn the_newest_segment_is_read_once_to_its_end() {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), 100, 8 << 20);
        let disk = Counting::default();
        let log = read_log(&disk, dir.path()).unwrap();
        assert_eq!(log.records.len(), 300);
        // Past its data, the reserve is read to see that it is unwritten.
        assert_eq!(disk.0.load(Ordering::SeqCst), 8 << 20);
    }

    #[test]
    fn what_a_segment_uses_is_its_frames_not_its_reserve() {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), 100, 8 << 20);
        let log = read_log(&FsDisk, dir.path()).unwrap();
        let [(path, used)] = log.used.as_slice() else {
            panic!("one segment: {:?}", log.used);
        };
        let file = std::fs::metadata(path).unwrap().len();
        assert_eq!(file, 8 << 20, "the reserve is in the file's length");
        // Nothing of the reserve past the last frame holds data.
        let bytes = std::fs::read(path).unwrap();
        let used = *used as usize;
        assert!(used > MAGIC.len() && used < bytes.len());
        assert!(bytes[used..].iter().all(|&b| b == 0));
        assert_ne!(bytes[used - 1], 0, "the last frame ends where `used` says");
    }

    /// Every record `write_log(_, batches, _)` wrote, in order, or damage
    /// found: never fewer records and no error.
    fn all_or_corrupt(dir: &Path, batches: i64, what: &str) {
        match read_log(&FsDisk, dir) {
            Ok(log) => {
                let indexes: Vec<i64> = log.records.iter().map(|r| r.index).collect();
                assert_eq!(indexes, (1..=3 * batches).collect::<Vec<_>>(), "{what}");
            }
            Err(WalError::Corrupt { .. }) => {}
            Err(other) => panic!("{what}: {other}"),
        }
    }

    #[test]
    fn no_flipped_bit_anywhere_in_the_log_loses_a_record_silently() {
        let dir = tempfile::tempdir().unwrap();
        // Three segments: two closed, the newest reserved to 1 KiB.
        write_log(dir.path(), 30, 1024);
        let segments = list_segments(&FsDisk, dir.path()).unwrap();
        assert_eq!(segments.len(), 3);
        for (_, path) in &segments {
            let bytes = std::fs::read(path).unwrap();
            for bit in 0..bytes.len() * 8 {
                let mut flipped = bytes.clone();
                flipped[bit / 8] ^= 1 << (bit % 8);
                std::fs::write(path, &flipped).unwrap();
                let what = format!("bit {bit} of {}", path.display());
                all_or_corrupt(dir.path(), 30, &what);
            }
            std::fs::write(path, &bytes).unwrap();
        }
    }

    /// A format-2 frame of one record.
    fn frame_of(index: i64, body: &[u8]) -> Vec<u8> {
        let mut payload = Vec::new();
        payload.put_u32(body.len() as u32);
        payload.put_i64(index);
        payload.put_slice(body);
        let mut frame = Vec::new();
        frame.put_u32(payload.len() as u32);
        frame.put_u32(crc32c::crc32c(&payload));
        frame.put_u32(crc32c::crc32c(&frame[..8]));
        frame.extend_from_slice(&payload);
        frame.put_u8(FRAME_END);
        frame
    }

    #[test]
    fn a_torn_tail_has_an_unwritten_sector_and_no_intact_frame_after_it() {
        let body = vec![0x5a; 1500];
        let frame = frame_of(9, &body);
        assert!(intact_frame(&frame));
        // Its middle sector never landed: torn, at any alignment.
        for at in [8u64, 500, 512, 1000] {
            let mut torn = frame.clone();
            let hole = (SECTOR - at % SECTOR) as usize;
            torn[hole..hole + SECTOR as usize].fill(0);
            assert_eq!(torn_tail(at, &torn), Ok(()), "at {at}");
            // Its header's sector never landed: the same.
            let mut headless = frame.clone();
            headless[..(SECTOR - at % SECTOR) as usize].fill(0);
            assert_eq!(torn_tail(at, &headless), Ok(()), "at {at}");
        }
        // A flipped bit leaves no unwritten sector: corruption.
        let mut flipped = frame.clone();
        flipped[700] ^= 4;
        assert!(torn_tail(8, &flipped).is_err());
        // Damage with an intact frame after it is never a torn write.
        let mut lost = vec![0; 600];
        lost.extend_from_slice(&frame_of(10, b"after"));
        assert_eq!(torn_tail(8, &lost), Err("intact frames follow it"));
        assert_eq!(torn_tail(8, &[]), Ok(()));
    }

    #[test]
    fn a_segment_of_format_1_is_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut payload = Vec::new();
        for index in 1..=2i64 {
            payload.put_u32(3);
            payload.put_i64(index);
            payload.put_slice(b"abc");
        }
        let mut segment = MAGIC_V1.to_vec();
        segment.put_u32(payload.len() as u32);
        segment.put_u32(crc32c::crc32c(&payload));
        segment.extend_from_slice(&payload);
        segment.put_u8(FRAME_END);
        segment.extend_from_slice(&[0; 100]);
        std::fs::write(dir.path().join(segment_name(1)), &segment).unwrap();
        let log = read_log(&FsDisk, dir.path()).unwrap();
        assert_eq!(log.records.len(), 2);
        assert_eq!(log.records[1].body, Bytes::from_static(b"abc"));
        assert!(log.truncated.is_none());
    }

    #[test]
    fn any_piece_size_reads_the_same_log_and_finds_the_same_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        // Closed segments of a few frames, then the newest one, reserved.
        write_log(dir.path(), 12, 300);
        let newest = list_segments(&FsDisk, dir.path()).unwrap().pop().unwrap().1;
        let full = std::fs::read(&newest).unwrap();
        let data_end = full.len() - full.iter().rev().take_while(|&&b| b == 0).count();
        let expected = |log: &Recovered| (log.records.clone(), log.truncated.clone());
        for cut in [data_end, data_end - 1, data_end - 20, 13] {
            let mut torn = full.clone();
            torn[cut..].iter_mut().for_each(|b| *b = 0);
            std::fs::write(&newest, &torn).unwrap();
            let whole = expected(
                &Scan {
                    piece: 1 << 30,
                    ..Scan::ALL
                }
                .run(&FsDisk, dir.path())
                .unwrap(),
            );
            for piece in [1, 2, 7, 8, 9, 64] {
                let log = Scan { piece, ..Scan::ALL }
                    .run(&FsDisk, dir.path())
                    .unwrap();
                assert_eq!(expected(&log), whole, "cut at {cut}, pieces of {piece}");
            }
            // Whole batches, in order: all 12, or all but the torn one(s).
            let indexes: Vec<i64> = whole.0.iter().map(|r| r.index).collect();
            let kept = indexes.len() as i64;
            assert_eq!(indexes, (1..=kept).collect::<Vec<_>>(), "cut at {cut}");
            if cut < data_end {
                assert!(whole.1.is_some(), "cut at {cut} is a torn tail");
                assert!(kept < 36 && kept % 3 == 0, "cut at {cut}: {kept} records");
            } else {
                assert_eq!((kept, &whole.1), (36, &None), "nothing cut");
            }
        }
    }

    #[test]
    fn data_after_the_end_of_a_closed_segment_is_found_in_any_piece_size() {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), 12, 300);
        let oldest = list_segments(&FsDisk, dir.path()).unwrap()[0].1.clone();
        let mut bytes = std::fs::read(&oldest).unwrap();
        bytes.extend_from_slice(&[0; 40]);
        bytes.push(1);
        std::fs::write(&oldest, &bytes).unwrap();
        for piece in [1, 8, 64, READ_PIECE] {
            match (Scan { piece, ..Scan::ALL }).run(&FsDisk, dir.path()) {
                Err(WalError::Corrupt { reason, .. }) => {
                    assert!(reason.contains("after the end"), "{reason}")
                }
                other => panic!("pieces of {piece}: {other:?}"),
            }
        }
    }
}
