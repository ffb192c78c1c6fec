//! Framing: every message is a 4-byte big-endian length and that many bytes.
//! On a fresh connection the first 4 bytes may instead be a four-letter word.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// The four-letter words the server recognises on a new connection.
pub const FOUR_LETTER_WORDS: [&str; 18] = [
    "ruok", "srvr", "stat", "mntr", "conf", "cons", "crst", "srst", "dump", "envi", "wchs", "wchc",
    "wchp", "isro", "dirs", "gtmk", "stmk", "hash",
];

/// One unit read off a client connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A four-letter word sent instead of the first length prefix.
    FourLetterWord([u8; 4]),
    Message(Bytes),
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame length {len} is outside 0..={max}")]
    BadLength { len: i64, max: usize },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Splits a byte stream into frames, refusing any frame longer than
/// `max_frame_bytes` before buffering it.
#[derive(Debug, Clone)]
pub struct FrameCodec {
    max_frame_bytes: usize,
    first: bool,
}

impl FrameCodec {
    /// A codec for a new client connection (four-letter words allowed first).
    pub fn server(max_frame_bytes: usize) -> Self {
        FrameCodec {
            max_frame_bytes,
            first: true,
        }
    }

    /// A codec for the client side or a peer link (no four-letter words).
    pub fn plain(max_frame_bytes: usize) -> Self {
        FrameCodec {
            max_frame_bytes,
            first: false,
        }
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if src.len() < 4 {
            return Ok(None);
        }
        let head = [src[0], src[1], src[2], src[3]];
        if self.first {
            self.first = false;
            if FOUR_LETTER_WORDS.iter().any(|w| w.as_bytes() == head) {
                src.advance(4);
                return Ok(Some(Frame::FourLetterWord(head)));
            }
        }
        let len = i32::from_be_bytes(head);
        let Some(len) = usize::try_from(len)
            .ok()
            .filter(|&n| n <= self.max_frame_bytes)
        else {
            return Err(FrameError::BadLength {
                len: len.into(),
                max: self.max_frame_bytes,
            });
        };
        if src.len() < 4 + len {
            src.reserve(4 + len - src.len());
            return Ok(None);
        }
        src.advance(4);
        Ok(Some(Frame::Message(src.split_to(len).freeze())))
    }
}

impl Encoder<Bytes> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> Result<(), FrameError> {
        dst.reserve(4 + item.len());
        dst.put_u32(item.len() as u32);
        dst.put_slice(&item);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(codec: &mut FrameCodec, bytes: &[u8]) -> Vec<Result<Frame, String>> {
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(f)) => out.push(Ok(f)),
                Ok(None) => return out,
                Err(e) => {
                    out.push(Err(e.to_string()));
                    return out;
                }
            }
        }
    }

    #[test]
    fn a_four_letter_word_is_recognised_only_first() {
        let mut c = FrameCodec::server(100);
        let got = decode_all(&mut c, b"ruok");
        assert_eq!(got, vec![Ok(Frame::FourLetterWord(*b"ruok"))]);
        let mut c = FrameCodec::server(100);
        let got = decode_all(&mut c, &[0, 0, 0, 1, 7, b'r', b'u', b'o', b'k']);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], Ok(Frame::Message(Bytes::from_static(&[7]))));
        assert!(got[1].is_err(), "ruok as a later length is far too long");
    }

    #[test]
    fn oversized_and_negative_lengths_are_errors_before_buffering() {
        let mut c = FrameCodec::plain(10);
        assert!(decode_all(&mut c, &[0, 0, 0, 11])[0].is_err());
        let mut c = FrameCodec::plain(10);
        assert!(decode_all(&mut c, &[0xff, 0xff, 0xff, 0xff])[0].is_err());
    }

    #[test]
    fn a_partial_frame_waits_for_more_bytes() {
        let mut c = FrameCodec::plain(10);
        let mut buf = BytesMut::from(&[0u8, 0, 0, 3, 1, 2][..]);
        assert!(c.decode(&mut buf).unwrap().is_none());
        buf.put_u8(3);
        assert_eq!(
            c.decode(&mut buf).unwrap(),
            Some(Frame::Message(Bytes::from_static(&[1, 2, 3])))
        );
    }
}
