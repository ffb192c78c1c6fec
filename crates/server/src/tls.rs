//! The secure client port: the TLS handshake, the identities a client
//! certificate proves, and the task that carries the decrypted stream to
//! the connection's own socket (`socket::Socket::Local`), so the
//! connection itself never knows TLS is there.

use crate::admission::IpSlot;
use crate::conn;
use crate::shared::Shared;
use crate::socket::Socket;
use paddock_proto::Id;
use paddock_tls::{TlsError, TlsSettings};
use paddock_tree::acl;
use parking_lot::{Mutex, RwLock};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// How long a TLS connection whose session has ended may take to
/// deliver the last bytes and close.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// How often the key and trust store files are looked at for changes.
pub const RELOAD_CHECK: Duration = Duration::from_secs(2);

/// The secure client port's TLS configuration, rebuilt when its store
/// files change.
pub struct ClientTls {
    settings: TlsSettings,
    acceptor: RwLock<TlsAcceptor>,
    /// The stores' modification times the acceptor was built from.
    built_from: Mutex<Vec<Option<SystemTime>>>,
    super_user: Option<String>,
}

impl ClientTls {
    pub fn new(settings: TlsSettings, super_user: Option<String>) -> Result<ClientTls, TlsError> {
        let built_from = stamps(&settings);
        let acceptor = TlsAcceptor::from(Arc::new(settings.server_config()?));
        Ok(ClientTls {
            settings,
            acceptor: RwLock::new(acceptor),
            built_from: Mutex::new(built_from),
            super_user,
        })
    }

    /// Rebuilds the configuration if a store file changed since it was
    /// built; a file that does not load keeps the old one (logged).
    /// Connections already open keep the certificates they began with.
    pub fn reload_if_changed(&self) {
        let now = stamps(&self.settings);
        let mut built_from = self.built_from.lock();
        if *built_from == now {
            return;
        }
        match self.settings.server_config() {
            Ok(config) => {
                *self.acceptor.write() = TlsAcceptor::from(Arc::new(config));
                *built_from = now;
                info!("secure client port: key or trust store changed; reloaded");
            }
            // Tried again at the next look (a file may be half-written).
            Err(e) => warn!("secure client port: key or trust store changed but cannot be used, keeping the previous one: {e}"),
        }
    }

    /// What a verified client certificate proves: `x509:<subject>`, and
    /// `super` too for the configured super user.
    fn identities(&self, leaf: Option<&[u8]>) -> Vec<Id> {
        let Some(subject) = leaf.and_then(paddock_tls::subject_name) else {
            return Vec::new();
        };
        let mut ids = Vec::with_capacity(2);
        if self.super_user.as_deref() == Some(subject.as_str()) {
            ids.push(acl::id(acl::SUPER, &subject));
        }
        ids.push(acl::id(acl::X509, &subject));
        ids
    }
}

fn stamps(settings: &TlsSettings) -> Vec<Option<SystemTime>> {
    [&settings.key_store, &settings.trust_store]
        .into_iter()
        .flatten()
        .map(|s| {
            std::fs::metadata(&s.location)
                .and_then(|m| m.modified())
                .ok()
        })
        .collect()
}

/// The store files, for logs.
pub fn files(settings: &TlsSettings) -> Vec<PathBuf> {
    [&settings.key_store, &settings.trust_store]
        .into_iter()
        .flatten()
        .map(|s| s.location.clone())
        .collect()
}

/// Serves one connection of the secure client port: handshake (within
/// the handshake deadline), then the session over a local socket pair.
pub async fn serve(
    shared: Arc<Shared>,
    tls: Arc<ClientTls>,
    tcp: TcpStream,
    peer: SocketAddr,
    id: u64,
    slot: IpSlot,
) {
    let _ = tcp.set_nodelay(true);
    let acceptor = tls.acceptor.read().clone();
    let deadline = Duration::from_millis(shared.config.handshake_timeout_ms);
    let handshake = tokio::select! {
        h = tokio::time::timeout(deadline, acceptor.accept(tcp)) => h,
        () = shared.stopping() => return,
    };
    let mut stream = match handshake {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            debug!(%peer, "TLS handshake failed: {e}");
            return;
        }
        Err(_) => {
            debug!(%peer, "no TLS handshake within {deadline:?}; closing");
            return;
        }
    };
    let leaf = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|c| c.as_ref().to_vec());
    let proven = tls.identities(leaf.as_deref());
    let (mut ours, theirs) = match UnixStream::pair() {
        Ok(pair) => pair,
        Err(e) => {
            warn!(%peer, "cannot make a socket pair for a TLS connection: {e}");
            return;
        }
    };
    // Once the session has ended, what it wrote last is carried out
    // (and the TLS session closed) within a grace period, not for as
    // long as an idle client keeps its end open.
    let ended = CancellationToken::new();
    // `ours` is the carrier's: once it stops (the client gone, a bad TLS
    // record), it is closed, so the session sees the end at once.
    let session_over = ended.clone();
    let carry = async move {
        tokio::select! {
            r = tokio::io::copy_bidirectional(&mut stream, &mut ours) => {
                if let Err(e) = r {
                    debug!(%peer, "TLS connection ended: {e}");
                }
            }
            () = async {
                session_over.cancelled().await;
                tokio::time::sleep(CLOSE_GRACE).await;
            } => {}
        }
    };
    let session = async {
        conn::serve(shared, Socket::Local(theirs), peer, id, slot, proven).await;
        ended.cancel();
    };
    tokio::join!(carry, session);
}
