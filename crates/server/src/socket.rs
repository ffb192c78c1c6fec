//! A client connection's socket: the accepted TCP stream, or, for a TLS
//! client, our end of a local socket pair whose other end a task feeds
//! with the decrypted stream (`tls::serve`). Either way the connection
//! works on a real socket, so its readiness-driven reads and the
//! outbox's direct writes from other threads are the same for both.

use std::io::{self, IoSlice};
use std::task::{Context, Poll};
use tokio::net::{tcp, unix, TcpStream, UnixStream};

pub enum Socket {
    Tcp(TcpStream),
    Local(UnixStream),
}

pub enum ReadHalf {
    Tcp(tcp::OwnedReadHalf),
    Local(unix::OwnedReadHalf),
}

pub enum WriteHalf {
    Tcp(tcp::OwnedWriteHalf),
    Local(unix::OwnedWriteHalf),
}

impl Socket {
    pub fn into_split(self) -> (ReadHalf, WriteHalf) {
        match self {
            Socket::Tcp(s) => {
                let (r, w) = s.into_split();
                (ReadHalf::Tcp(r), WriteHalf::Tcp(w))
            }
            Socket::Local(s) => {
                let (r, w) = s.into_split();
                (ReadHalf::Local(r), WriteHalf::Local(w))
            }
        }
    }
}

impl ReadHalf {
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            ReadHalf::Tcp(r) => r.as_ref().poll_read_ready(cx),
            ReadHalf::Local(r) => r.as_ref().poll_read_ready(cx),
        }
    }

    pub async fn readable(&self) -> io::Result<()> {
        match self {
            ReadHalf::Tcp(r) => r.readable().await,
            ReadHalf::Local(r) => r.readable().await,
        }
    }

    pub fn try_read_buf(&self, buf: &mut bytes::BytesMut) -> io::Result<usize> {
        match self {
            ReadHalf::Tcp(r) => r.try_read_buf(buf),
            ReadHalf::Local(r) => r.try_read_buf(buf),
        }
    }
}

impl WriteHalf {
    pub async fn writable(&self) -> io::Result<()> {
        match self {
            WriteHalf::Tcp(w) => w.writable().await,
            WriteHalf::Local(w) => w.writable().await,
        }
    }

    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            WriteHalf::Tcp(w) => w.try_write(buf),
            WriteHalf::Local(w) => w.try_write(buf),
        }
    }

    pub fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            WriteHalf::Tcp(w) => w.try_write_vectored(bufs),
            WriteHalf::Local(w) => w.try_write_vectored(bufs),
        }
    }

    /// Writes all of `buf`, waiting for room.
    pub async fn write_all(&self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            self.writable().await?;
            match self.try_write(buf) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => buf = &buf[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Tells the peer nothing more comes (FIN, or end of stream to the
    /// TLS task, which then closes the TLS session).
    pub fn shutdown(&self) {
        let _ = match self {
            WriteHalf::Tcp(w) => {
                socket2::SockRef::from(w.as_ref()).shutdown(std::net::Shutdown::Write)
            }
            WriteHalf::Local(w) => {
                socket2::SockRef::from(w.as_ref()).shutdown(std::net::Shutdown::Write)
            }
        };
    }
}
