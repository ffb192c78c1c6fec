//! Key and trust stores as ZooKeeper names them: JKS (its default),
//! PKCS12 and PEM files, read into what rustls takes.

use crate::TlsError;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::path::{Path, PathBuf};

/// A store's file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreType {
    Jks,
    Pkcs12,
    Pem,
}

impl StoreType {
    /// From a `*.type` setting (case-insensitive, as ZooKeeper reads it).
    pub fn parse(value: &str) -> Option<StoreType> {
        match value.to_ascii_uppercase().as_str() {
            "JKS" => Some(StoreType::Jks),
            "PKCS12" => Some(StoreType::Pkcs12),
            "PEM" => Some(StoreType::Pem),
            _ => None,
        }
    }

    /// From the file name's extension, when no type is set: exactly
    /// ZooKeeper 3.8's (`.jks`, `.p12`, `.pem`, lower case).
    pub fn of_file(path: &Path) -> Option<StoreType> {
        match path.extension()?.to_str()? {
            "jks" => Some(StoreType::Jks),
            "p12" => Some(StoreType::Pkcs12),
            "pem" => Some(StoreType::Pem),
            _ => None,
        }
    }
}

/// A key store or trust store setting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Store {
    pub location: PathBuf,
    pub password: Option<String>,
    /// Set explicitly; else inferred from the file name.
    pub kind: Option<StoreType>,
    /// The password came from `.passwordPath`, which wins over `.password`.
    pub password_from_file: bool,
}

/// What a key store holds for us: the certificate chain (ours first) and
/// its private key.
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Store {
    fn kind(&self) -> Result<StoreType, TlsError> {
        self.kind
            .or_else(|| StoreType::of_file(&self.location))
            .ok_or_else(|| {
                self.error(
                    "cannot tell its type from the file name: set the store's type (JKS, PKCS12 or PEM)",
                )
            })
    }

    fn error(&self, message: impl std::fmt::Display) -> TlsError {
        TlsError(format!("{}: {message}", self.location.display()))
    }

    fn read(&self) -> Result<Vec<u8>, TlsError> {
        std::fs::read(&self.location).map_err(|e| self.error(e))
    }

    fn password(&self) -> &[u8] {
        self.password.as_deref().unwrap_or("").as_bytes()
    }

    /// Java's stores: keytool writes PKCS12 under a .jks name since
    /// Java 9, and Java reads either whatever the type says, so the
    /// file's first bytes decide.
    fn java(&self, bytes: &[u8]) -> Result<Vec<JavaEntry>, TlsError> {
        let unreadable =
            |e: &dyn std::fmt::Display| self.error(format_args!("not a readable key store ({e})"));
        if bytes.starts_with(&JKS_MAGIC) {
            // The jks crate indexes what it decodes without checking
            // lengths: a damaged file must be an error here, not a panic.
            let loaded = std::panic::catch_unwind(|| {
                let mut ks = jks::KeyStore::new();
                ks.load(bytes, self.password()).map(|()| ks)
            });
            let ks = match loaded {
                Ok(Ok(ks)) => ks,
                Ok(Err(e)) => return Err(unreadable(&e)),
                Err(_) => return Err(unreadable(&"damaged")),
            };
            return Ok(ks
                .aliases()
                .into_iter()
                .filter_map(|alias| {
                    if ks.is_trusted_certificate_entry(&alias) {
                        let e = ks.get_trusted_certificate_entry(&alias).ok()?;
                        return Some(JavaEntry::Trusted(e.certificate.content));
                    }
                    // Java keeps a key under the store's password unless
                    // told otherwise; decrypting indexes unchecked too.
                    let key = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        ks.get_private_key_entry(&alias, self.password())
                    }))
                    .unwrap_or_else(|_| Err(jks::KeyStoreError::Other("damaged".into())));
                    Some(match key {
                        Ok(e) => JavaEntry::Key {
                            chain: e.certificate_chain.into_iter().map(|c| c.content).collect(),
                            key: e.private_key,
                        },
                        Err(e) => JavaEntry::Unreadable(format!("key '{alias}': {e}")),
                    })
                })
                .collect());
        }
        let password = std::str::from_utf8(self.password())
            .map_err(|_| self.error("the password is not UTF-8"))?;
        let ks = p12_keystore::KeyStore::from_pkcs12(
            bytes,
            password,
            p12_keystore::Pkcs12ImportPolicy::Relaxed,
        )
        .map_err(|e| unreadable(&e))?;
        Ok(ks
            .entries()
            .filter_map(|(_, entry)| match entry {
                p12_keystore::KeyStoreEntry::PrivateKeyChain(c) => Some(JavaEntry::Key {
                    chain: c.certs().iter().map(|c| c.as_der().to_vec()).collect(),
                    key: c.key().as_der().to_vec(),
                }),
                p12_keystore::KeyStoreEntry::Certificate(c) => {
                    Some(JavaEntry::Trusted(c.as_der().to_vec()))
                }
                p12_keystore::KeyStoreEntry::Secret(_) => None,
            })
            .collect())
    }

    /// The private key and its certificate chain.
    pub fn identity(&self) -> Result<Identity, TlsError> {
        let kind = self.kind()?;
        let bytes = self.read()?;
        if kind == StoreType::Pem {
            return self.pem_identity(&bytes);
        }
        let mut unreadable = None;
        for entry in self.java(&bytes)? {
            match entry {
                JavaEntry::Key { chain, key } if !chain.is_empty() => {
                    return Ok(Identity {
                        chain: chain.into_iter().map(CertificateDer::from).collect(),
                        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
                    })
                }
                JavaEntry::Unreadable(why) => unreadable = Some(why),
                _ => {}
            }
        }
        Err(self
            .error(unreadable.unwrap_or_else(|| "holds no private key with a certificate".into())))
    }

    fn pem_identity(&self, bytes: &[u8]) -> Result<Identity, TlsError> {
        let chain = CertificateDer::pem_slice_iter(bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.error(e))?;
        if chain.is_empty() {
            return Err(self.error("holds no certificate"));
        }
        let key = match encrypted_key(bytes) {
            Some(der) => {
                let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der.as_slice())
                    .map_err(|e| self.error(e))?;
                let plain = info.decrypt(self.password()).map_err(|_| {
                    self.error("cannot decrypt the private key with the store's password")
                })?;
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(plain.as_bytes().to_vec()))
            }
            None => PrivateKeyDer::from_pem_slice(bytes)
                .map_err(|_| self.error("holds no private key"))?,
        };
        Ok(Identity { chain, key })
    }

    /// The certificates a trust store trusts.
    pub fn certificates(&self) -> Result<Vec<CertificateDer<'static>>, TlsError> {
        let kind = self.kind()?;
        let bytes = self.read()?;
        let certs: Vec<_> = match kind {
            StoreType::Pem => CertificateDer::pem_slice_iter(&bytes)
                .collect::<Result<_, _>>()
                .map_err(|e| self.error(e))?,
            // Only trusted-certificate entries, as Java: a key entry's
            // chain is what its owner shows, not what the store trusts.
            StoreType::Jks | StoreType::Pkcs12 => self
                .java(&bytes)?
                .into_iter()
                .filter_map(|e| match e {
                    JavaEntry::Trusted(c) => Some(CertificateDer::from(c)),
                    _ => None,
                })
                .collect(),
        };
        if certs.is_empty() {
            return Err(self.error("holds no certificate"));
        }
        Ok(certs)
    }
}

/// A JKS file's first four bytes.
const JKS_MAGIC: [u8; 4] = [0xfe, 0xed, 0xfe, 0xed];

/// An entry of a Java store, in DER.
enum JavaEntry {
    Trusted(Vec<u8>),
    Key {
        chain: Vec<Vec<u8>>,
        key: Vec<u8>,
    },
    /// A key entry that could not be decrypted.
    Unreadable(String),
}

/// The DER of the first "ENCRYPTED PRIVATE KEY" block, if any.
fn encrypted_key(bytes: &[u8]) -> Option<Vec<u8>> {
    const BEGIN: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
    const END: &str = "-----END ENCRYPTED PRIVATE KEY-----";
    let text = std::str::from_utf8(bytes).ok()?;
    let start = text.find(BEGIN)?;
    let end = start + text[start..].find(END)? + END.len();
    let (_, der) = pkcs8::der::pem::decode_vec(&text.as_bytes()[start..end]).ok()?;
    Some(der)
}
