//! Key and trust stores in each format ZooKeeper reads, written here by
//! the crates that write them, read back into the same certificate and
//! key, and a server configuration built from each.

use paddock_tls::{ClientAuth, Store, StoreType, TlsSettings};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use std::path::Path;

struct Issued {
    ca_der: Vec<u8>,
    ca_pem: String,
    cert_der: Vec<u8>,
    cert_pem: String,
    key_der: Vec<u8>,
    key_pem: String,
}

fn issue() -> Issued {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    Issued {
        ca_der: ca.der().to_vec(),
        ca_pem: ca.pem(),
        cert_der: cert.der().to_vec(),
        cert_pem: cert.pem(),
        key_der: key.serialize_der(),
        key_pem: key.serialize_pem(),
    }
}

fn store(path: &Path, password: &str, kind: Option<StoreType>) -> Store {
    Store {
        location: path.to_owned(),
        password: Some(password.to_owned()),
        kind,
        password_from_file: false,
    }
}

fn write_jks(path: &Path, i: &Issued, password: &str) {
    let mut ks = jks::KeyStore::new();
    let cert = |der: &[u8]| jks::Certificate {
        cert_type: "X.509".into(),
        content: der.to_vec(),
    };
    ks.set_private_key_entry(
        "server",
        jks::PrivateKeyEntry {
            creation_time: std::time::SystemTime::now(),
            private_key: i.key_der.clone(),
            certificate_chain: vec![cert(&i.cert_der), cert(&i.ca_der)],
        },
        password.as_bytes(),
    )
    .unwrap();
    ks.set_trusted_certificate_entry(
        "ca",
        jks::TrustedCertificateEntry {
            creation_time: std::time::SystemTime::now(),
            certificate: cert(&i.ca_der),
        },
    )
    .unwrap();
    ks.store(std::fs::File::create(path).unwrap(), password.as_bytes())
        .unwrap();
}

fn write_pkcs12(path: &Path, i: &Issued, password: &str) {
    use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKeyChain};
    let key = p12_keystore::PrivateKey::from_der(&i.key_der).unwrap();
    let chain = PrivateKeyChain::new(
        "server",
        key,
        [
            Certificate::from_der(&i.cert_der).unwrap(),
            Certificate::from_der(&i.ca_der).unwrap(),
        ],
    );
    let mut ks = KeyStore::new();
    ks.add_entry("server", KeyStoreEntry::PrivateKeyChain(chain));
    std::fs::write(path, ks.writer(password).write().unwrap()).unwrap();
}

#[test]
fn each_format_yields_the_same_key_certificate_and_trust() {
    let dir = tempfile::tempdir().unwrap();
    let i = issue();
    let pem = dir.path().join("server.pem");
    std::fs::write(&pem, format!("{}{}", i.key_pem, i.cert_pem)).unwrap();
    let ca_pem = dir.path().join("ca.pem");
    std::fs::write(&ca_pem, &i.ca_pem).unwrap();
    let jks_file = dir.path().join("server.jks");
    write_jks(&jks_file, &i, "changeit");
    let p12 = dir.path().join("server.p12");
    write_pkcs12(&p12, &i, "changeit");
    // A PKCS12 file named .jks, as keytool writes since Java 9.
    let p12_as_jks = dir.path().join("keytool.jks");
    std::fs::copy(&p12, &p12_as_jks).unwrap();

    for (path, kind) in [
        (&pem, None),
        (&jks_file, None),
        (&p12, None),
        (&p12_as_jks, None),
        (&jks_file, Some(StoreType::Pkcs12)),
    ] {
        let s = store(path, "changeit", kind);
        let id = s.identity().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(id.chain[0].as_ref(), &i.cert_der[..], "{path:?}");
        assert_eq!(id.key.secret_der(), &i.key_der[..], "{path:?}");
    }
    let trusted = store(&ca_pem, "", None).certificates().unwrap();
    assert_eq!(trusted[0].as_ref(), &i.ca_der[..]);
    let trusted = store(&jks_file, "changeit", None).certificates().unwrap();
    assert!(trusted.iter().any(|c| c.as_ref() == &i.ca_der[..]));

    let mut settings = TlsSettings::default();
    for (k, v) in [
        ("keyStore.location", jks_file.to_str().unwrap()),
        ("keyStore.password", "changeit"),
        ("trustStore.location", ca_pem.to_str().unwrap()),
        ("clientAuth", "want"),
        ("enabledProtocols", "TLSv1.3,TLSv1.2"),
        (
            "ciphersuites",
            "TLS_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        ),
    ] {
        assert_eq!(settings.set(k, v), Ok(true), "{k}");
    }
    assert_eq!(settings.client_auth, ClientAuth::Want);
    // A password file wins over the password, whichever comes first.
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "changeit\n").unwrap();
    settings.set("keyStore.password", "wrong").unwrap();
    settings
        .set("keyStore.passwordPath", pw.to_str().unwrap())
        .unwrap();
    settings.set("keyStore.password", "wrong again").unwrap();
    let config = settings.server_config().unwrap();
    assert_eq!(config.crypto_provider().cipher_suites.len(), 2);
}

#[test]
fn a_wrong_password_or_a_missing_file_is_one_line_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let i = issue();
    let jks_file = dir.path().join("server.jks");
    write_jks(&jks_file, &i, "changeit");
    let p12 = dir.path().join("server.p12");
    write_pkcs12(&p12, &i, "changeit");
    for path in [&jks_file, &p12] {
        let e = store(path, "wrong", None).identity().err().unwrap().0;
        assert!(
            e.starts_with(path.to_str().unwrap()) && !e.contains('\n'),
            "{e}"
        );
    }
    // A key that is not the certificate's.
    let other = issue();
    let mixed = dir.path().join("mixed.pem");
    std::fs::write(&mixed, format!("{}{}", other.key_pem, i.cert_pem)).unwrap();
    let mut settings = TlsSettings::default();
    settings
        .set("keyStore.location", mixed.to_str().unwrap())
        .unwrap();
    settings.set("clientAuth", "none").unwrap();
    let e = settings.server_config().unwrap_err().0;
    assert!(e.contains("not the certificate's"), "{e}");
    let missing = dir.path().join("missing.pem");
    let e = store(&missing, "", None).identity().err().unwrap().0;
    assert!(
        e.contains("missing.pem") && e.contains("No such file"),
        "{e}"
    );
    let e = store(&dir.path().join("server.key"), "", None)
        .identity()
        .err()
        .unwrap()
        .0;
    assert!(e.contains("set the store's type"), "{e}");
}

#[test]
fn bad_values_and_unsafe_settings_are_refused_plainly() {
    let mut s = TlsSettings::default();
    assert!(s.set("clientAuth", "maybe").is_err());
    assert!(s
        .set("enabledProtocols", "TLSv1.1")
        .unwrap_err()
        .contains("not supported"));
    assert!(s.set("keyStore.type", "BCFKS").is_err());
    assert_eq!(s.set("somethingElse", "x"), Ok(false));
    // Client certificates asked for but nothing to check them against.
    let dir = tempfile::tempdir().unwrap();
    let i = issue();
    let pem = dir.path().join("server.pem");
    std::fs::write(&pem, format!("{}{}", i.key_pem, i.cert_pem)).unwrap();
    s.set("keyStore.location", pem.to_str().unwrap()).unwrap();
    let e = s.server_config().unwrap_err().0;
    assert!(e.contains("ssl.trustStore.location"), "{e}");
    s.set("clientAuth", "none").unwrap();
    assert!(s.server_config().is_ok());
    s.set("ciphersuites", "TLS_RSA_WITH_RC4_128_MD5").unwrap();
    assert!(s.server_config().unwrap_err().0.contains("supported:"));
}
