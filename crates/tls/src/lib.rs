//! TLS as ZooKeeper configures it: the `ssl.*` (and `ssl.quorum.*`)
//! settings, key and trust stores in Java's formats and PEM, rustls
//! configurations built from them, and the identity a client
//! certificate gives (`x509` scheme). No sockets here: the server crate
//! runs the handshakes.

mod name;
mod store;
mod version1;

pub use name::subject_name;
pub use store::{Identity, Store, StoreType};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme,
    SupportedProtocolVersion,
};
use std::path::PathBuf;
use std::sync::Arc;

/// A TLS setting that cannot be used, in one line naming the file or key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(pub String);

/// Whether a server asks for client certificates (`ssl.clientAuth`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ClientAuth {
    /// A client without a trusted certificate is refused (ZooKeeper's default).
    #[default]
    Need,
    /// A certificate is asked for; a client without one is served.
    Want,
    /// No certificate is asked for.
    None,
}

/// One side's TLS settings: the keys after `ssl.` (or `ssl.quorum.`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub key_store: Option<Store>,
    pub trust_store: Option<Store>,
    pub client_auth: ClientAuth,
    /// `ssl.protocol`: the newest version offered.
    pub protocol: String,
    /// `ssl.enabledProtocols`; empty means what `protocol` allows.
    pub enabled_protocols: Vec<String>,
    /// `ssl.ciphersuites`, Java/IANA names; empty means rustls's defaults.
    pub cipher_suites: Vec<String>,
    /// `ssl.hostnameVerification`: a server's certificate must name the
    /// host it is reached at. Client certificates are not checked
    /// against the client's address, as in ZooKeeper.
    pub hostname_verification: bool,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            key_store: None,
            trust_store: None,
            client_auth: ClientAuth::Need,
            protocol: "TLSv1.2".into(),
            enabled_protocols: Vec::new(),
            cipher_suites: Vec::new(),
            hostname_verification: true,
        }
    }
}

impl TlsSettings {
    /// Takes one setting, named as after the `ssl.` prefix
    /// (`keyStore.location`, `clientAuth`, ...). Ok(false) for a name that
    /// is not a TLS setting; Err for a bad value.
    pub fn set(&mut self, name: &str, value: &str) -> Result<bool, String> {
        let store = |s: &mut Option<Store>| s.get_or_insert_with(Store::default).clone();
        match name {
            "keyStore.location" | "trustStore.location" => {
                let slot = self.store_mut(name);
                let mut s = store(slot);
                s.location = PathBuf::from(value);
                *slot = Some(s);
            }
            "keyStore.password" | "trustStore.password" => {
                let slot = self.store_mut(name);
                let mut s = store(slot);
                if !s.password_from_file {
                    s.password = Some(value.to_owned());
                }
                *slot = Some(s);
            }
            // The password from a file (one trailing newline dropped);
            // it wins over `.password`, as in ZooKeeper.
            "keyStore.passwordPath" | "trustStore.passwordPath" => {
                let text = std::fs::read_to_string(value).map_err(|e| format!("{value}: {e}"))?;
                let password = text.strip_suffix('\n').unwrap_or(&text).to_owned();
                let slot = self.store_mut(name);
                let mut s = store(slot);
                s.password = Some(password);
                s.password_from_file = true;
                *slot = Some(s);
            }
            "keyStore.type" | "trustStore.type" => {
                let kind = StoreType::parse(value)
                    .ok_or_else(|| format!("'{value}' is not JKS, PKCS12 or PEM"))?;
                let slot = self.store_mut(name);
                let mut s = store(slot);
                s.kind = Some(kind);
                *slot = Some(s);
            }
            "clientAuth" => {
                self.client_auth = match value.to_ascii_lowercase().as_str() {
                    "need" => ClientAuth::Need,
                    "want" => ClientAuth::Want,
                    "none" => ClientAuth::None,
                    _ => return Err(format!("'{value}' is not need, want or none")),
                }
            }
            "protocol" => {
                versions(std::slice::from_ref(&value.to_owned()))?;
                self.protocol = value.to_owned();
            }
            "enabledProtocols" => {
                let named = list(value);
                versions(&named)?;
                self.enabled_protocols = named;
            }
            "ciphersuites" => self.cipher_suites = list(value),
            "hostnameVerification" => {
                self.hostname_verification = match value.to_ascii_lowercase().as_str() {
                    "true" | "yes" => true,
                    "false" | "no" => false,
                    _ => return Err(format!("'{value}' is not true or false")),
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn store_mut(&mut self, name: &str) -> &mut Option<Store> {
        if name.starts_with("keyStore") {
            &mut self.key_store
        } else {
            &mut self.trust_store
        }
    }

    /// The protocol versions offered: `enabledProtocols`, else only what
    /// `protocol` names (TLSv1.2 by default, as in ZooKeeper; `TLS`
    /// offers 1.2 and 1.3).
    fn versions(&self) -> Result<Vec<&'static SupportedProtocolVersion>, TlsError> {
        let named = match self.enabled_protocols.is_empty() {
            true => vec![self.protocol.clone()],
            false => self.enabled_protocols.clone(),
        };
        versions(&named).map_err(TlsError)
    }

    /// The ring provider with only the configured cipher suites.
    fn provider(&self) -> Result<Arc<CryptoProvider>, TlsError> {
        let mut provider = ring_provider();
        if !self.cipher_suites.is_empty() {
            provider
                .cipher_suites
                .retain(|s| self.cipher_suites.iter().any(|n| suite_named(s, n)));
            if provider.cipher_suites.is_empty() {
                return Err(TlsError(format!(
                    "ssl.ciphersuites: none of {} is supported (supported: {})",
                    self.cipher_suites.join(","),
                    supported_suites().join(",")
                )));
            }
        }
        Ok(Arc::new(provider))
    }

    fn trusted(&self) -> Result<Vec<CertificateDer<'static>>, TlsError> {
        self.trust_store
            .as_ref()
            .map_or(Ok(Vec::new()), Store::certificates)
    }

    fn roots(&self) -> Result<Option<Arc<RootCertStore>>, TlsError> {
        let Some(store) = &self.trust_store else {
            return Ok(None);
        };
        let mut roots = RootCertStore::empty();
        for cert in store.certificates()? {
            roots.add(cert).map_err(|e| {
                TlsError(format!(
                    "{}: a certificate cannot be trusted ({e})",
                    store.location.display()
                ))
            })?;
        }
        Ok(Some(Arc::new(roots)))
    }

    /// A server's configuration: its key store's identity, client
    /// certificates checked against the trust store as `clientAuth` says.
    pub fn server_config(&self) -> Result<rustls::ServerConfig, TlsError> {
        let identity = self
            .key_store
            .as_ref()
            .ok_or_else(|| TlsError("ssl.keyStore.location is not set".into()))?
            .identity()?;
        let provider = self.provider()?;
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&self.versions()?)
            .map_err(|e| TlsError(format!("TLS settings: {e}")))?;
        let builder = match (self.client_auth, self.roots()?) {
            (ClientAuth::None, _) => builder.with_no_client_auth(),
            (auth, Some(roots)) => {
                let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
                let verifier = match auth {
                    ClientAuth::Want => verifier.allow_unauthenticated(),
                    _ => verifier,
                };
                let verifier = verifier
                    .build()
                    .map_err(|e| TlsError(format!("ssl.trustStore: {e}")))?;
                builder.with_client_cert_verifier(Arc::new(version1::Version1Too {
                    inner: verifier,
                    roots: self.trusted()?,
                    algorithms: provider.signature_verification_algorithms,
                }))
            }
            (_, None) => {
                return Err(TlsError(
                    "ssl.clientAuth asks for client certificates: set ssl.trustStore.location to the certificates that sign them (or ssl.clientAuth=none)".into(),
                ))
            }
        };
        Ok(builder.with_cert_resolver(Arc::new(OneCertificate(certified(&provider, identity)?))))
    }
}

impl TlsSettings {
    /// A client's configuration (a server dialling its peers): servers'
    /// certificates checked against the trust store, and their names
    /// against the host dialled when `hostnameVerification` is on; the
    /// key store's certificate offered when the server asks for one.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, TlsError> {
        let roots = self.roots()?.ok_or_else(|| {
            TlsError(
                "the trust store is not set: nothing to check the other side's certificate against"
                    .into(),
            )
        })?;
        let provider = self.provider()?;
        let verifier = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| TlsError(format!("the trust store: {e}")))?;
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&self.versions()?)
            .map_err(|e| TlsError(format!("TLS settings: {e}")))?;
        let builder = match self.hostname_verification {
            true => builder.with_webpki_verifier(verifier),
            false => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyName(verifier))),
        };
        match &self.key_store {
            Some(store) => {
                let identity = store.identity()?;
                builder
                    .with_client_auth_cert(identity.chain, identity.key)
                    .map_err(|e| TlsError(format!("the key store: {e}")))
            }
            None => Ok(builder.with_no_client_auth()),
        }
    }
}

/// Whether a (verified) certificate names `host`, a DNS name or an IP
/// address, as a server's certificate must name the host dialled.
pub fn names_host(cert: &[u8], host: &str) -> bool {
    let der = CertificateDer::from(cert);
    let (Ok(cert), Ok(name)) = (
        webpki::EndEntityCert::try_from(&der),
        ServerName::try_from(host),
    ) else {
        return false;
    };
    cert.verify_is_valid_for_subject_name(&name).is_ok()
}

/// Checks a server's certificate chain but not the name in it
/// (`hostnameVerification=false`).
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The key store's identity ready to sign with, once its key is known to
/// belong to its certificate. Checked here rather than by rustls, whose
/// check takes X.509 version 3 certificates only: Java (and ZooKeeper's
/// users, Kazoo's test harness among them) also use version 1.
fn certified(provider: &CryptoProvider, identity: Identity) -> Result<Arc<CertifiedKey>, TlsError> {
    let key = provider
        .key_provider
        .load_private_key(identity.key)
        .map_err(|e| {
            TlsError(format!(
                "ssl.keyStore: the private key cannot be used ({e})"
            ))
        })?;
    let leaf = identity
        .chain
        .first()
        .and_then(|c| x509_parser::parse_x509_certificate(c).ok())
        .map(|(_, c)| c.public_key().raw.to_vec());
    match (leaf, key.public_key()) {
        (Some(cert), Some(key)) if cert == key.as_ref() => {}
        (None, _) => {
            return Err(TlsError(
                "ssl.keyStore: the certificate does not parse".into(),
            ))
        }
        _ => {
            return Err(TlsError(
                "ssl.keyStore: the private key is not the certificate's".into(),
            ))
        }
    }
    Ok(Arc::new(CertifiedKey::new(identity.chain, key)))
}

/// Always the key store's certificate.
#[derive(Debug)]
struct OneCertificate(Arc<CertifiedKey>);

impl ResolvesServerCert for OneCertificate {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

fn versions(names: &[String]) -> Result<Vec<&'static SupportedProtocolVersion>, String> {
    let mut out = Vec::new();
    for name in names {
        let named: &[&'static SupportedProtocolVersion] = match name.as_str() {
            "TLSv1.3" => &[&rustls::version::TLS13],
            "TLSv1.2" => &[&rustls::version::TLS12],
            "TLS" => &[&rustls::version::TLS12, &rustls::version::TLS13],
            other => {
                return Err(format!(
                "'{other}' is not supported: TLSv1.2 and TLSv1.3 are (older versions are unsafe)"
            ))
            }
        };
        for &v in named {
            if !out
                .iter()
                .any(|o: &&SupportedProtocolVersion| o.version == v.version)
            {
                out.push(v);
            }
        }
    }
    Ok(out)
}

/// Whether a suite answers to `name`: its IANA name as Java spells it
/// (`TLS_AES_128_GCM_SHA256`, `TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`)
/// or rustls's (`TLS13_AES_128_GCM_SHA256`).
fn suite_named(suite: &rustls::SupportedCipherSuite, name: &str) -> bool {
    let ours = suite.suite().as_str().unwrap_or("");
    ours == name || ours.strip_prefix("TLS13_").map(|r| format!("TLS_{r}")) == Some(name.into())
}

/// rustls over ring: no C toolchain to build it. ring has no
/// post-quantum key exchange, which rustls now flags; the Java clients
/// ZooKeeper users run offer none either.
#[allow(deprecated)]
fn ring_provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

fn supported_suites() -> Vec<String> {
    ring_provider()
        .cipher_suites
        .iter()
        .filter_map(|s| s.suite().as_str())
        .map(|n| match n.strip_prefix("TLS13_") {
            Some(r) => format!("TLS_{r}"),
            None => n.to_owned(),
        })
        .collect()
}
