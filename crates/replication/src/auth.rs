//! Peers prove a shared secret (`paddock.quorum.secretFile`) to each
//! other when a connection opens, before any other message: the dialling
//! server sends a fresh nonce, the accepting one answers with its own
//! nonce and an HMAC-SHA256 over both, the dialler checks it and answers
//! with its own HMAC. The secret never crosses the wire, each side's
//! proof covers the other's fresh nonce (no replay), and the two proofs
//! carry different labels (one cannot be reflected as the other). It
//! authenticates the connection's start only: it neither encrypts nor
//! protects the stream from someone on the path.

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::io;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// The first bytes a dialling server sends when it holds a secret.
const HELLO: &[u8; 8] = b"PDKAUTH1";
const NONCE: usize = 32;
const PROOF: usize = 32;
/// The largest handshake message (the hello is 40 bytes, the answer 64).
const MAX_FRAME_BYTES: usize = 64;
/// How long the exchange may take, on either side.
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(5);

/// The secret every server of the ensemble holds.
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Secret {
        Secret(bytes)
    }

    /// The proof of the secret for one side of one exchange.
    fn proof(&self, label: &[u8], dialler: &[u8], acceptor: &[u8]) -> [u8; PROOF] {
        self.mac(label, dialler, acceptor)
            .finalize()
            .into_bytes()
            .into()
    }

    fn mac(&self, label: &[u8], dialler: &[u8], acceptor: &[u8]) -> Hmac<Sha256> {
        // HMAC takes a key of any length.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
        mac.update(label);
        mac.update(dialler);
        mac.update(acceptor);
        mac
    }

    /// Whether `proof` is this secret's for the exchange (in constant time).
    fn holds(&self, proof: &[u8], label: &[u8], dialler: &[u8], acceptor: &[u8]) -> bool {
        self.mac(label, dialler, acceptor)
            .verify_slice(proof)
            .is_ok()
    }
}

/// What a peer connection runs over: TCP, or TLS over it (`sslQuorum`).
pub trait Stream: AsyncRead + AsyncWrite + Unpin {}
impl<S: AsyncRead + AsyncWrite + Unpin> Stream for S {}

const ACCEPTOR: &[u8] = b"paddock peer acceptor";
const DIALLER: &[u8] = b"paddock peer dialler";

fn refused(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, why.to_owned())
}

fn nonce() -> io::Result<[u8; NONCE]> {
    let mut n = [0u8; NONCE];
    getrandom::fill(&mut n).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(n)
}

async fn next<S: Stream>(conn: &mut Framed<S, LengthDelimitedCodec>) -> io::Result<BytesMut> {
    match conn.next().await {
        Some(frame) => frame,
        None => Err(refused(
            "the peer closed the connection during authentication",
        )),
    }
}

/// One side of the exchange (`dialling` or accepting) on a new
/// connection, within `HANDSHAKE_LIMIT` and with frames no bigger than it
/// needs (a stranger gets no large buffer); the connection's frame limit
/// is put back after.
pub async fn handshake<S: Stream>(
    conn: &mut Framed<S, LengthDelimitedCodec>,
    secret: &Secret,
    dialling: bool,
) -> io::Result<()> {
    let limit = conn.codec().max_frame_length();
    conn.codec_mut().set_max_frame_length(MAX_FRAME_BYTES);
    let exchange = async {
        match dialling {
            true => dial(conn, secret).await,
            false => accept(conn, secret).await,
        }
    };
    tokio::time::timeout(HANDSHAKE_LIMIT, exchange)
        .await
        .map_err(|_| refused(&format!("no authentication within {HANDSHAKE_LIMIT:?}")))??;
    conn.codec_mut().set_max_frame_length(limit);
    Ok(())
}

/// The dialling side: proves the secret and checks the acceptor's proof.
async fn dial<S: Stream>(
    conn: &mut Framed<S, LengthDelimitedCodec>,
    secret: &Secret,
) -> io::Result<()> {
    let mine = nonce()?;
    conn.send(Bytes::from([&HELLO[..], &mine].concat())).await?;
    let answer = next(conn).await?;
    if answer.len() != NONCE + PROOF {
        return Err(refused(
            "the peer does not authenticate with a shared secret",
        ));
    }
    let (theirs, proof) = answer.split_at(NONCE);
    if !secret.holds(proof, ACCEPTOR, &mine, theirs) {
        return Err(refused("the peer does not hold the ensemble's secret"));
    }
    let own = secret.proof(DIALLER, &mine, theirs);
    conn.send(Bytes::copy_from_slice(&own)).await
}

/// The accepting side: proves the secret and checks the dialler's proof.
/// Nothing else is read from the connection before this succeeds.
async fn accept<S: Stream>(
    conn: &mut Framed<S, LengthDelimitedCodec>,
    secret: &Secret,
) -> io::Result<()> {
    let hello = next(conn).await?;
    let Some(theirs) = hello.strip_prefix(&HELLO[..]).filter(|n| n.len() == NONCE) else {
        return Err(refused("the peer did not authenticate"));
    };
    let mine = nonce()?;
    let own = secret.proof(ACCEPTOR, theirs, &mine);
    conn.send(Bytes::from([&mine[..], &own].concat())).await?;
    let proof = next(conn).await?;
    if !secret.holds(&proof, DIALLER, theirs, &mine) {
        return Err(refused("the peer does not hold the ensemble's secret"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    async fn pair() -> (
        Framed<TcpStream, LengthDelimitedCodec>,
        Framed<TcpStream, LengthDelimitedCodec>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (dialled, accepted) = tokio::join!(TcpStream::connect(addr), async {
            listener.accept().await.unwrap().0
        });
        let framed = |s| Framed::new(s, LengthDelimitedCodec::new());
        (framed(dialled.unwrap()), framed(accepted))
    }

    #[tokio::test]
    async fn the_same_secret_passes_and_another_fails_on_both_sides() {
        let (mut d, mut a) = pair().await;
        let (s1, s2) = (Secret::new(b"one".to_vec()), Secret::new(b"one".to_vec()));
        let (dialled, accepted) = tokio::join!(dial(&mut d, &s1), accept(&mut a, &s2));
        assert!(dialled.is_ok() && accepted.is_ok());

        let (mut d, mut a) = pair().await;
        let (s1, s2) = (Secret::new(b"one".to_vec()), Secret::new(b"two".to_vec()));
        // Each side closes its connection when it fails, as a server does.
        let (dialled, accepted) =
            tokio::join!(async move { dial(&mut d, &s1).await }, async move {
                accept(&mut a, &s2).await
            });
        assert_eq!(dialled.unwrap_err().kind(), io::ErrorKind::PermissionDenied);
        assert!(accepted.is_err());
    }

    #[tokio::test]
    async fn a_peer_without_the_handshake_is_refused_before_its_message_is_read() {
        let (mut d, mut a) = pair().await;
        d.send(Bytes::from_static(b"\x01\x07 a forwarded write"))
            .await
            .unwrap();
        let err = accept(&mut a, &Secret::new(b"s".to_vec()))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
    }

    #[tokio::test]
    async fn a_stranger_announcing_a_large_frame_is_refused_before_it_is_buffered() {
        let (mut d, mut a) = pair().await;
        // A frame header announcing 200 MiB, and no more.
        d.get_mut()
            .write_all(&(200u32 << 20).to_be_bytes())
            .await
            .unwrap();
        let err = handshake(&mut a, &Secret::new(b"s".to_vec()), false)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("frame size too big"), "{err}");
        assert!(a.read_buffer().capacity() < 1 << 20);
    }

    #[test]
    fn a_proof_binds_the_label_and_both_nonces() {
        let s = Secret::new(b"secret".to_vec());
        let p = s.proof(ACCEPTOR, b"d", b"a");
        assert!(s.holds(&p, ACCEPTOR, b"d", b"a"));
        assert!(!s.holds(&p, DIALLER, b"d", b"a"));
        assert!(!s.holds(&p, ACCEPTOR, b"e", b"a"));
        assert!(!s.holds(&p, ACCEPTOR, b"d", b"b"));
        assert!(!Secret::new(b"other".to_vec()).holds(&p, ACCEPTOR, b"d", b"a"));
    }
}
