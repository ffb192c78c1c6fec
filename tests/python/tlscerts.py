"""Certificates for the TLS tests, made with openssl and keytool: a CA, the
certificates it signs, and key and trust stores in each format."""

import subprocess
from pathlib import Path

PASSWORD = "changeit"
ALICE = "CN=alice,OU=tests,O=Paddock"
ROOT = "CN=root,O=Paddock"


def sh(*args, cwd):
    subprocess.run(args, cwd=cwd, check=True, capture_output=True)


def issue(d: Path, ca: str, name: str, subject: str, server=False):
    """A key and a certificate signed by `ca`, as PEM files name.key/.pem."""
    sh("openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
       "-subj", subject, "-out", f"{name}.csr", cwd=d)
    ext = d / f"{name}.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n" if server else "basicConstraints=CA:FALSE\n")
    sh("openssl", "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
       "-CAcreateserial", "-days", "2", "-sha256", "-extfile", ext.name, "-out", f"{name}.pem", cwd=d)


def make_ca(d: Path, name: str, subject: str):
    sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
       "-subj", subject, "-days", "2", "-out", f"{name}.pem", cwd=d)


def make_certs(d: Path):
    """A CA and what it signs (a server, alice, mallory, root), a rogue CA
    and what it signs (eve, claiming alice's name; a rogue server), and
    the server's key store as PEM, PKCS12 and JKS with a JKS trust store."""
    make_ca(d, "ca", "/O=Paddock/CN=test CA")
    make_ca(d, "rogue", "/O=Elsewhere/CN=rogue CA")
    issue(d, "ca", "server", "/O=Paddock/CN=localhost", server=True)
    issue(d, "ca", "alice", "/O=Paddock/OU=tests/CN=alice")
    issue(d, "ca", "mallory", "/O=Paddock/OU=tests/CN=mallory")
    issue(d, "ca", "root", "/O=Paddock/CN=root")
    issue(d, "rogue", "eve", "/O=Paddock/OU=tests/CN=alice")
    issue(d, "rogue", "rogue-server", "/O=Paddock/CN=localhost", server=True)
    (d / "rogue-store.pem").write_text((d / "rogue-server.key").read_text() + (d / "rogue-server.pem").read_text())
    # The server's key store in each format, and the trust store.
    (d / "server-store.pem").write_text((d / "server.key").read_text() + (d / "server.pem").read_text())
    sh("openssl", "pkcs12", "-export", "-inkey", "server.key", "-in", "server.pem", "-certfile", "ca.pem",
       "-name", "server", "-passout", f"pass:{PASSWORD}", "-out", "server.p12", cwd=d)
    sh("keytool", "-importkeystore", "-srckeystore", "server.p12", "-srcstoretype", "PKCS12",
       "-srcstorepass", PASSWORD, "-destkeystore", "server.jks", "-deststoretype", "JKS",
       "-deststorepass", PASSWORD, "-noprompt", cwd=d)
    sh("keytool", "-importcert", "-alias", "ca", "-file", "ca.pem", "-keystore", "trust.jks",
       "-storetype", "JKS", "-storepass", PASSWORD, "-noprompt", cwd=d)
    for who in ("alice", "root"):
        sh("openssl", "pkcs12", "-export", "-inkey", f"{who}.key", "-in", f"{who}.pem", "-name", who,
           "-passout", f"pass:{PASSWORD}", "-out", f"{who}.p12", cwd=d)
    return d
