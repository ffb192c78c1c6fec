//! One pipelined client connection: requests are encoded straight into a
//! write buffer and sent in one write per batch; replies are parsed from a
//! read buffer filled by as few reads as possible. Reading is
//! cancel-safe, so a caller may wait for a reply or a timer.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use paddock_proto::{
    ConnectRequest, ConnectResponse, Jute, Reader, ReplyHeader, Request, RequestHeader, Response,
};
use std::io;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Replies larger than this are not believed.
const MAX_FRAME_BYTES: usize = 16 << 20;

pub struct Conn {
    stream: TcpStream,
    rbuf: BytesMut,
    wbuf: BytesMut,
    next_xid: i32,
}

fn bad(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

impl Conn {
    /// Connects and establishes a new session; returns its id.
    pub async fn open(addr: SocketAddr, timeout_ms: i32) -> io::Result<(Conn, i64)> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let mut conn = Conn {
            stream,
            rbuf: BytesMut::with_capacity(64 << 10),
            wbuf: BytesMut::with_capacity(64 << 10),
            next_xid: 1,
        };
        let req = ConnectRequest {
            timeout_ms,
            passwd: Some(Bytes::from_static(&[0; 16])),
            read_only: Some(false),
            ..Default::default()
        };
        let body = req.to_bytes();
        conn.wbuf.put_u32(body.len() as u32);
        conn.wbuf.put_slice(&body);
        conn.flush().await?;
        let resp = ConnectResponse::from_bytes(conn.frame().await?).map_err(bad)?;
        if resp.timeout_ms <= 0 {
            return Err(io::Error::other("the server refused the session"));
        }
        Ok((conn, resp.session_id))
    }

    /// Encodes a request into the write buffer (sent at the next flush);
    /// returns its xid.
    pub fn queue(&mut self, req: &Request) -> i32 {
        let xid = match req {
            Request::CloseSession => 0,
            _ => {
                let x = self.next_xid;
                self.next_xid = self.next_xid.wrapping_add(1).max(1);
                x
            }
        };
        let at = self.wbuf.len();
        self.wbuf.put_u32(0);
        RequestHeader {
            xid,
            opcode: req.opcode(),
        }
        .write(&mut self.wbuf);
        req.write(&mut self.wbuf);
        let len = (self.wbuf.len() - at - 4) as u32;
        self.wbuf[at..at + 4].copy_from_slice(&len.to_be_bytes());
        xid
    }

    pub async fn flush(&mut self) -> io::Result<()> {
        self.stream.write_all(&self.wbuf).await?;
        self.wbuf.clear();
        Ok(())
    }

    /// A whole frame already read, if there is one.
    fn buffered_frame(&mut self) -> io::Result<Option<Bytes>> {
        if self.rbuf.len() < 4 {
            return Ok(None);
        }
        let len =
            u32::from_be_bytes([self.rbuf[0], self.rbuf[1], self.rbuf[2], self.rbuf[3]]) as usize;
        if len > MAX_FRAME_BYTES {
            return Err(bad(format!("a reply of {len} bytes")));
        }
        if self.rbuf.len() < 4 + len {
            return Ok(None);
        }
        self.rbuf.advance(4);
        Ok(Some(self.rbuf.split_to(len).freeze()))
    }

    /// The next whole frame.
    async fn frame(&mut self) -> io::Result<Bytes> {
        loop {
            if let Some(frame) = self.buffered_frame()? {
                return Ok(frame);
            }
            if self.stream.read_buf(&mut self.rbuf).await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                ));
            }
        }
    }

    /// The next reply's header if it has already arrived.
    pub fn buffered_reply(&mut self) -> io::Result<Option<ReplyHeader>> {
        while let Some(frame) = self.buffered_frame()? {
            let h = ReplyHeader::read(&mut Reader::new(frame)).map_err(bad)?;
            if h.xid != -1 {
                return Ok(Some(h));
            }
        }
        Ok(None)
    }

    /// The next reply's header (watch notifications are skipped).
    pub async fn reply(&mut self) -> io::Result<ReplyHeader> {
        loop {
            let (h, _) = self.next().await?;
            if h.xid != -1 {
                return Ok(h);
            }
        }
    }

    /// The next frame, a reply or a watch notification (xid -1), with its
    /// body.
    pub async fn next(&mut self) -> io::Result<(ReplyHeader, Reader)> {
        let mut body = Reader::new(self.frame().await?);
        let h = ReplyHeader::read(&mut body).map_err(bad)?;
        Ok((h, body))
    }

    /// Sends one request and waits for its reply: the header and, when it
    /// succeeded, the decoded body. Notifications that arrive first are
    /// dropped.
    pub async fn call(&mut self, req: &Request) -> io::Result<(ReplyHeader, Option<Response>)> {
        let xid = self.queue(req);
        self.flush().await?;
        loop {
            let (h, mut body) = self.next().await?;
            if h.xid != xid {
                continue;
            }
            if h.err != 0 {
                return Ok((h, None));
            }
            let resp = Response::read(req.opcode(), &mut body).map_err(bad)?;
            return Ok((h, Some(resp)));
        }
    }
}
