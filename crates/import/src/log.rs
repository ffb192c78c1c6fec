//! ZooKeeper's transaction log file (`FileTxnLog`, version 2):
//!
//! ```text
//! int magic "ZKLG", int version, long dbid
//! {long adler32, buffer entry, byte 'B'}*     -- zeros after the last one
//! entry = long clientId, int cxid, long zxid, long time, int type, txn
//!         (3.6+: a digest may follow the txn; it is ignored)
//! ```

use bytes::Bytes;
use paddock_proto::Reader;
use std::io::Read;

const MAGIC: i32 = i32::from_be_bytes(*b"ZKLG");
const HEADER: usize = 16;
const END_OF_RECORD: u8 = b'B';
/// Far above any jute.maxbuffer in use; only guards against damage.
const MAX_ENTRY: usize = 256 << 20;

/// One logged transaction, its body still encoded.
#[derive(Debug, Clone)]
pub struct LogRecord {
    /// Where the record starts in its file.
    pub offset: usize,
    pub session_id: i64,
    pub zxid: i64,
    pub time_ms: i64,
    pub txn_type: i32,
    pub body: Bytes,
}

/// Reads a log file up to its end: the zero padding ZooKeeper preallocates
/// (so the padding itself is never read), or a last record cut short by a
/// crash (never acknowledged). A record with a wrong checksum before the end
/// is an error with its offset.
pub fn read_log(mut file: impl Read) -> Result<Vec<LogRecord>, (usize, String)> {
    let mut header = [0u8; HEADER];
    file.read_exact(&mut header)
        .map_err(|e| (0, format!("no log header: {e}")))?;
    let mut h = Reader::new(Bytes::copy_from_slice(&header));
    if h.read_i32().ok() != Some(MAGIC) {
        return Err((0, "not a ZooKeeper transaction log (bad magic)".into()));
    }
    match h.read_i32() {
        Ok(2) => {}
        Ok(version) => return Err((4, format!("log version {version}, expected 2"))),
        Err(e) => return Err((4, e.to_string())),
    }
    let mut records = Vec::new();
    let mut offset = HEADER;
    loop {
        let mut prefix = [0u8; 12];
        if file.read_exact(&mut prefix).is_err() {
            break;
        }
        let crc = i64::from_be_bytes(prefix[..8].try_into().unwrap_or_default());
        let len = i32::from_be_bytes(prefix[8..].try_into().unwrap_or_default());
        if len <= 0 {
            break;
        }
        if len as usize > MAX_ENTRY {
            return Err((
                offset,
                format!("record of {len} bytes is over the {MAX_ENTRY} limit"),
            ));
        }
        // Grows as bytes arrive: a damaged length cannot make us allocate it.
        let mut entry = Vec::new();
        let read = file.by_ref().take(len as u64 + 1).read_to_end(&mut entry);
        if read.is_err() || entry.len() < len as usize + 1 {
            break;
        }
        let eor = entry.pop();
        let actual = i64::from(adler2::adler32_slice(&entry));
        if crc != actual {
            return Err((
                offset,
                format!("checksum {actual:#x} does not match the stored {crc:#x}"),
            ));
        }
        if eor != Some(END_OF_RECORD) {
            return Err((offset, "record does not end with 'B'".into()));
        }
        let mut e = Reader::new(Bytes::from(entry));
        let header = (|| {
            let session_id = e.read_i64()?;
            e.read_i32()?;
            let zxid = e.read_i64()?;
            let time_ms = e.read_i64()?;
            let txn_type = e.read_i32()?;
            Ok::<_, paddock_proto::DecodeError>((session_id, zxid, time_ms, txn_type))
        })()
        .map_err(|err| (offset, err.to_string()))?;
        let (session_id, zxid, time_ms, txn_type) = header;
        records.push(LogRecord {
            offset,
            session_id,
            zxid,
            time_ms,
            txn_type,
            body: e.rest(),
        });
        offset += 12 + len as usize + 1;
    }
    Ok(records)
}
