//! Jute binary encoding: big-endian integers, length-prefixed strings and
//! buffers where -1 means null, count-prefixed vectors.

use bytes::{BufMut, Bytes, BytesMut};

/// Why a record could not be decoded. Any of these closes the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record truncated: needed {needed} more bytes at offset {offset}")]
    Truncated { offset: usize, needed: usize },
    #[error("length {len} at offset {offset} is out of range")]
    BadLength { offset: usize, len: i32 },
    #[error("unknown opcode {0}")]
    UnknownOpcode(i32),
    #[error("opcode {0} is not allowed here")]
    OpcodeNotAllowed(i32),
    #[error("{0} trailing bytes after record")]
    TrailingBytes(usize),
}

/// Reads jute fields out of one frame. Lengths are checked against the bytes
/// actually left in the frame before anything is allocated, so a frame can
/// never make the reader allocate more than its own size.
#[derive(Debug, Clone)]
pub struct Reader {
    buf: Bytes,
    pos: usize,
}

impl Reader {
    pub fn new(buf: Bytes) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn offset(&self) -> usize {
        self.pos
    }

    /// The unread rest of the frame.
    pub fn rest(&self) -> Bytes {
        self.buf.slice(self.pos..)
    }

    /// Fails unless the whole frame was consumed.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(DecodeError::TrailingBytes(n)),
        }
    }

    fn take(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated {
                offset: self.pos,
                needed: n - self.remaining(),
            });
        }
        let out = self.buf.slice(self.pos..self.pos + n);
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(&bytes);
        Ok(out)
    }

    pub fn read_u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    pub fn read_bool(&mut self) -> Result<bool, DecodeError> {
        Ok(self.read_u8()? != 0)
    }

    pub fn read_i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    pub fn read_i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    /// A length prefix: -1 is null (None); anything else must fit in what is
    /// left of the frame, assuming each item takes at least `min_item_bytes`.
    fn read_len(&mut self, min_item_bytes: usize) -> Result<Option<usize>, DecodeError> {
        let offset = self.pos;
        let len = self.read_i32()?;
        if len == -1 {
            return Ok(None);
        }
        let ok = usize::try_from(len)
            .ok()
            .filter(|n| n.saturating_mul(min_item_bytes) <= self.remaining());
        match ok {
            Some(n) => Ok(Some(n)),
            None => Err(DecodeError::BadLength { offset, len }),
        }
    }

    /// A `buffer`: None for null (length -1).
    pub fn read_buffer(&mut self) -> Result<Option<Bytes>, DecodeError> {
        match self.read_len(1)? {
            None => Ok(None),
            Some(n) => self.take(n).map(Some),
        }
    }

    /// A `ustring`. Null reads as the empty string (every caller would reject
    /// a null path the same way as an empty one); invalid UTF-8 is replaced
    /// with U+FFFD, as the Java decoder does.
    pub fn read_string(&mut self) -> Result<String, DecodeError> {
        Ok(match self.read_buffer()? {
            None => String::new(),
            Some(b) => String::from_utf8_lossy(&b).into_owned(),
        })
    }

    /// A `vector<T>`; null reads as empty.
    pub fn read_vec<T: Jute>(&mut self) -> Result<Vec<T>, DecodeError> {
        let Some(n) = self.read_len(T::MIN_WIRE_BYTES)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(T::read(self)?);
        }
        Ok(out)
    }
}

pub fn write_string(out: &mut BytesMut, s: &str) {
    out.put_i32(s.len() as i32);
    out.put_slice(s.as_bytes());
}

pub fn write_buffer(out: &mut BytesMut, b: Option<&[u8]>) {
    match b {
        None => out.put_i32(-1),
        Some(b) => {
            out.put_i32(b.len() as i32);
            out.put_slice(b);
        }
    }
}

pub fn write_vec<T: Jute>(out: &mut BytesMut, items: &[T]) {
    out.put_i32(items.len() as i32);
    for item in items {
        item.write(out);
    }
}

/// A value with a jute encoding: a field type or a whole record.
pub trait Jute: Sized {
    /// The fewest bytes one value can take on the wire (bounds vector counts).
    const MIN_WIRE_BYTES: usize;
    fn read(r: &mut Reader) -> Result<Self, DecodeError>;
    fn write(&self, out: &mut BytesMut);

    /// Encodes into a fresh buffer.
    fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::new();
        self.write(&mut out);
        out.freeze()
    }

    /// Decodes one value that must fill `buf` exactly.
    fn from_bytes(buf: Bytes) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf);
        let v = Self::read(&mut r)?;
        r.finish()?;
        Ok(v)
    }
}

impl Jute for i32 {
    const MIN_WIRE_BYTES: usize = 4;
    fn read(r: &mut Reader) -> Result<Self, DecodeError> {
        r.read_i32()
    }
    fn write(&self, out: &mut BytesMut) {
        out.put_i32(*self)
    }
}

impl Jute for i64 {
    const MIN_WIRE_BYTES: usize = 8;
    fn read(r: &mut Reader) -> Result<Self, DecodeError> {
        r.read_i64()
    }
    fn write(&self, out: &mut BytesMut) {
        out.put_i64(*self)
    }
}

impl Jute for bool {
    const MIN_WIRE_BYTES: usize = 1;
    fn read(r: &mut Reader) -> Result<Self, DecodeError> {
        r.read_bool()
    }
    fn write(&self, out: &mut BytesMut) {
        out.put_u8(u8::from(*self))
    }
}

impl Jute for String {
    const MIN_WIRE_BYTES: usize = 4;
    fn read(r: &mut Reader) -> Result<Self, DecodeError> {
        r.read_string()
    }
    fn write(&self, out: &mut BytesMut) {
        write_string(out, self)
    }
}

/// `buffer` fields keep the difference between null and empty.
impl Jute for Option<Bytes> {
    const MIN_WIRE_BYTES: usize = 4;
    fn read(r: &mut Reader) -> Result<Self, DecodeError> {
        r.read_buffer()
    }
    fn write(&self, out: &mut BytesMut) {
        write_buffer(out, self.as_deref())
    }
}

impl<T: Jute> Jute for Vec<T> {
    const MIN_WIRE_BYTES: usize = 4;
    fn read(r: &mut Reader) -> Result<Self, DecodeError> {
        r.read_vec()
    }
    fn write(&self, out: &mut BytesMut) {
        write_vec(out, self)
    }
}

/// Declares a jute record: a struct whose fields are encoded in order.
#[macro_export]
macro_rules! jute_record {
    ($(#[$meta:meta])* pub struct $name:ident { $($(#[$fmeta:meta])* pub $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
        pub struct $name { $($(#[$fmeta])* pub $field: $ty),* }

        impl $crate::jute::Jute for $name {
            const MIN_WIRE_BYTES: usize = 0 $(+ <$ty as $crate::jute::Jute>::MIN_WIRE_BYTES)*;
            #[allow(unused_variables)]
            fn read(r: &mut $crate::jute::Reader) -> Result<Self, $crate::jute::DecodeError> {
                Ok($name { $($field: <$ty as $crate::jute::Jute>::read(r)?),* })
            }
            #[allow(unused_variables)]
            fn write(&self, out: &mut bytes::BytesMut) {
                $(<$ty as $crate::jute::Jute>::write(&self.$field, out);)*
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_and_empty_buffers_stay_distinct() {
        for v in [None, Some(Bytes::new()), Some(Bytes::from_static(b"x"))] {
            assert_eq!(Option::<Bytes>::from_bytes(v.to_bytes()), Ok(v));
        }
        assert_eq!(None::<Bytes>.to_bytes().as_ref(), [0xff; 4]);
    }

    #[test]
    fn a_length_beyond_the_frame_is_rejected_before_allocating() {
        let mut r = Reader::new(Bytes::from_static(&[0x7f, 0xff, 0xff, 0xff, 1, 2]));
        assert_eq!(
            r.read_buffer(),
            Err(DecodeError::BadLength {
                offset: 0,
                len: i32::MAX
            })
        );
        let mut r = Reader::new(Bytes::from_static(&[0x00, 0x10, 0x00, 0x00]));
        assert!(matches!(
            r.read_vec::<i64>(),
            Err(DecodeError::BadLength { .. })
        ));
    }

    #[test]
    fn lengths_below_minus_one_are_rejected() {
        let mut r = Reader::new(Bytes::from_static(&[0xff, 0xff, 0xff, 0xfe]));
        assert!(matches!(
            r.read_buffer(),
            Err(DecodeError::BadLength { len: -2, .. })
        ));
    }

    #[test]
    fn null_string_reads_as_empty_and_bad_utf8_is_replaced() {
        assert_eq!(
            String::from_bytes(Bytes::from_static(&[0xff; 4])),
            Ok(String::new())
        );
        let s = String::from_bytes(Bytes::from_static(&[0, 0, 0, 2, b'/', 0xff])).unwrap();
        assert_eq!(s, "/\u{fffd}");
    }
}
