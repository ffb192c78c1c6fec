//! Frames off a client connection. The read buffer exists only while
//! bytes are being taken in: once everything received is decoded, it is
//! handed back, so an idle connection owns none.

use crate::socket::ReadHalf;
use bytes::{Bytes, BytesMut};
use paddock_proto::frame::{Frame, FrameCodec, FrameError};
use std::io;
use std::task::Poll;
use tokio_util::codec::Decoder;

/// The buffer a burst of reading starts with; a larger frame grows it.
const READ_BUFFER_BYTES: usize = 1024;

/// What the socket has for us right now.
pub type Next = Option<Result<Frame, FrameError>>;

pub struct FrameReader {
    rd: ReadHalf,
    codec: FrameCodec,
    buf: BytesMut,
}

impl FrameReader {
    pub fn new(rd: ReadHalf, codec: FrameCodec) -> Self {
        FrameReader {
            rd,
            codec,
            buf: BytesMut::new(),
        }
    }

    /// The next frame, waiting for it; None once the peer has closed.
    /// Cancel-safe: dropped while waiting, it loses nothing. Polled by
    /// hand, so a connection waiting here holds no future of tokio's.
    pub async fn next(&mut self) -> Next {
        std::future::poll_fn(|cx| loop {
            if let Some(next) = self.try_next() {
                return Poll::Ready(next);
            }
            match self.rd.poll_read_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
                Poll::Pending => return Poll::Pending,
            }
        })
        .await
    }

    /// The next frame if it can be had without waiting: a frame, the end
    /// of the stream or an error; None if the socket has nothing yet.
    pub fn try_next(&mut self) -> Option<Next> {
        loop {
            match self.codec.decode(&mut self.buf) {
                Ok(Some(frame)) => return Some(Some(Ok(frame))),
                Ok(None) => {}
                Err(e) => return Some(Some(Err(e))),
            }
            if self.buf.capacity() == self.buf.len() {
                self.buf.reserve(READ_BUFFER_BYTES);
            }
            match self.rd.try_read_buf(&mut self.buf) {
                Ok(0) => return Some(None),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if self.buf.is_empty() {
                        self.buf = BytesMut::new();
                    }
                    return None;
                }
                Err(e) => return Some(Some(Err(e.into()))),
            }
        }
    }

    /// Exactly `n` raw bytes, past the frames already taken (a four-letter
    /// word's argument). None if the peer closes first.
    pub async fn raw(&mut self, n: usize) -> io::Result<Option<Bytes>> {
        while self.buf.len() < n {
            self.buf.reserve(n - self.buf.len());
            self.rd.readable().await?;
            match self.rd.try_read_buf(&mut self.buf) {
                Ok(0) => return Ok(None),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Some(self.buf.split_to(n).freeze()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    /// A reader over one end of a loopback connection, and the other end.
    async fn pair(codec: FrameCodec) -> (FrameReader, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let (rd, _wr) = server.into_split();
        // The write half may go: reading does not need it.
        (FrameReader::new(ReadHalf::Tcp(rd), codec), client)
    }

    fn framed(body: &[u8]) -> Vec<u8> {
        let mut out = (body.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(body);
        out
    }

    fn message(next: Next) -> Vec<u8> {
        match next {
            Some(Ok(Frame::Message(body))) => body.to_vec(),
            _ => panic!("expected a message"),
        }
    }

    #[tokio::test]
    async fn frames_split_across_writes_come_out_whole_and_the_buffer_goes_when_idle() {
        let (mut reader, mut peer) = pair(FrameCodec::plain(1 << 20)).await;
        let mut bytes = framed(b"one");
        bytes.extend(framed(b"two"));
        let three = framed(&[7u8; 3000]);
        bytes.extend_from_slice(&three[..10]);
        peer.write_all(&bytes).await.unwrap();
        assert_eq!(message(reader.next().await), b"one");
        assert_eq!(message(reader.try_next().unwrap()), b"two");
        // A part of the third frame is kept while the rest is awaited.
        assert!(reader.try_next().is_none());
        assert_eq!(reader.buf.len(), 10);
        peer.write_all(&three[10..]).await.unwrap();
        assert_eq!(message(reader.next().await), vec![7u8; 3000]);
        assert!(reader.try_next().is_none());
        assert_eq!(reader.buf.capacity(), 0, "an idle reader holds no buffer");
        drop(peer);
        assert!(reader.next().await.is_none(), "the peer closed");
    }

    #[tokio::test]
    async fn a_four_letter_word_and_its_argument_come_first() {
        let (mut reader, mut peer) = pair(FrameCodec::server(1 << 20)).await;
        peer.write_all(b"stmk").await.unwrap();
        peer.write_all(&306i64.to_be_bytes()).await.unwrap();
        assert!(matches!(
            reader.next().await,
            Some(Ok(Frame::FourLetterWord(w))) if &w == b"stmk"
        ));
        let arg = reader.raw(8).await.unwrap().unwrap();
        assert_eq!(&arg[..], &306i64.to_be_bytes());
    }

    #[tokio::test]
    async fn an_oversized_frame_is_an_error_before_it_is_buffered() {
        let (mut reader, mut peer) = pair(FrameCodec::plain(100)).await;
        peer.write_all(&101u32.to_be_bytes()).await.unwrap();
        assert!(matches!(
            reader.next().await,
            Some(Err(FrameError::BadLength { len: 101, max: 100 }))
        ));
    }
}
