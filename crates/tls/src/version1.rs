//! Client certificates of X.509 version 1. Java accepts them, and
//! ZooKeeper users have them (Kazoo's own test harness makes them);
//! rustls's verifier takes version 3 only. A version 1 certificate is
//! accepted here when a trusted certificate signed it directly and it is
//! within its validity period; everything else goes to rustls.

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, SubjectPublicKeyInfoDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};
use std::sync::Arc;
use x509_parser::oid_registry;
use x509_parser::prelude::{FromDer, X509Certificate, X509Version};

#[derive(Debug)]
pub struct Version1Too {
    pub inner: Arc<dyn ClientCertVerifier>,
    pub roots: Vec<CertificateDer<'static>>,
    pub algorithms: WebPkiSupportedAlgorithms,
}

/// The certificate's public key, if it is a version 1 certificate.
fn version1_key(cert: &CertificateDer<'_>) -> Option<Vec<u8>> {
    let (_, c) = X509Certificate::from_der(cert).ok()?;
    (c.version() == X509Version::V1).then(|| c.public_key().raw.to_vec())
}

impl Version1Too {
    fn verify_version1(&self, cert: &CertificateDer<'_>, now: UnixTime) -> bool {
        let Ok((rest, c)) = X509Certificate::from_der(cert) else {
            return false;
        };
        // A real version 1 certificate: nothing after it, no extensions
        // or unique ids (which version 1 cannot carry), the signature
        // algorithm named the same inside and out, and not SHA-1 or MD5.
        let tbs = &c.tbs_certificate;
        let weak = [
            oid_registry::OID_PKCS1_SHA1WITHRSA,
            oid_registry::OID_PKCS1_MD5WITHRSAENC,
            oid_registry::OID_SIG_DSA_WITH_SHA1,
        ];
        if !rest.is_empty()
            || !tbs.extensions().is_empty()
            || tbs.issuer_uid.is_some()
            || tbs.subject_uid.is_some()
            || tbs.signature.algorithm != c.signature_algorithm.algorithm
            || weak.contains(&c.signature_algorithm.algorithm)
        {
            return false;
        }
        let now = now.as_secs() as i64;
        let validity = c.validity();
        if now < validity.not_before.timestamp() || now > validity.not_after.timestamp() {
            return false;
        }
        self.roots.iter().any(|root| {
            X509Certificate::from_der(root).is_ok_and(|(_, r)| {
                r.subject().as_raw() == c.issuer().as_raw()
                    && c.verify_signature(Some(r.public_key())).is_ok()
            })
        })
    }

    /// A TLS 1.2 handshake signature by a raw key: each algorithm the
    /// scheme maps to is tried, as rustls does for a certificate.
    fn verify_tls12_raw(
        &self,
        message: &[u8],
        key: &[u8],
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        let spki = SubjectPublicKeyInfoDer::from(key);
        let key = webpki::RawPublicKeyEntity::try_from(&spki)
            .map_err(|e| Error::General(format!("client key: {e}")))?;
        let candidates = self
            .algorithms
            .mapping
            .iter()
            .find(|(scheme, _)| *scheme == dss.scheme)
            .map(|(_, algs)| *algs)
            .unwrap_or_default();
        candidates
            .iter()
            .find(|alg| {
                key.verify_signature(**alg, message, dss.signature())
                    .is_ok()
            })
            .map(|_| HandshakeSignatureValid::assertion())
            .ok_or_else(|| {
                Error::General("the client's handshake signature does not verify".into())
            })
    }
}

impl ClientCertVerifier for Version1Too {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        match self
            .inner
            .verify_client_cert(end_entity, intermediates, now)
        {
            Err(e) if version1_key(end_entity).is_some() => {
                match self.verify_version1(end_entity, now) {
                    true => Ok(ClientCertVerified::assertion()),
                    false => Err(e),
                }
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        match version1_key(cert) {
            Some(key) => self.verify_tls12_raw(message, &key, dss),
            None => self.inner.verify_tls12_signature(message, cert, dss),
        }
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        match version1_key(cert) {
            Some(key) => rustls::crypto::verify_tls13_signature_with_raw_key(
                message,
                &SubjectPublicKeyInfoDer::from(key),
                dss,
                &self.algorithms,
            ),
            None => self.inner.verify_tls13_signature(message, cert, dss),
        }
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
