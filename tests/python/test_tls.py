"""TLS clients on secureClientPort, differential against Apache ZooKeeper
3.8.0 (Netty): certificates made here with openssl, key and trust stores
in PEM, PKCS12 and JKS (keytool), Kazoo with use_ssl=True, the x509 ACL
scheme (one certificate allowed, another denied, the super user), and the
connections that must be refused: no client certificate, a certificate
from an unknown CA, plain ZooKeeper protocol on the TLS port. Then
zkCli.sh over TLS (Netty client) against Paddock."""

import subprocess

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.security import make_acl

from conftest import ZK_CLASSPATH, free_port, start_paddock, start_zookeeper, wait_until
from tlscerts import ALICE, PASSWORD, ROOT, make_certs


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("certs"))


STORES = {
    "pem": ("server-store.pem", "ca.pem"),
    "pkcs12": ("server.p12", "ca.pem"),
    "jks": ("server.jks", "trust.jks"),
}


def tls_cfg(certs, secure_port, store="jks", client_auth="need"):
    key, trust = STORES[store]
    return (f"secureClientPort={secure_port}\nsecureClientPortAddress=127.0.0.1\n"
            "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory\n"
            f"ssl.keyStore.location={certs / key}\nssl.keyStore.password={PASSWORD}\n"
            f"ssl.trustStore.location={certs / trust}\nssl.trustStore.password={PASSWORD}\n"
            f"ssl.clientAuth={client_auth}\n"
            f"X509AuthenticationProvider.superUser={ROOT}\n")


def client(certs, port, who=None, use_ssl=True, timeout=10):
    kw = dict(use_ssl=use_ssl, ca=str(certs / "ca.pem"), verify_certs=True)
    if who:
        kw.update(certfile=str(certs / f"{who}.pem"), keyfile=str(certs / f"{who}.key"))
    if not use_ssl:
        kw = {}
    c = KazooClient(hosts=f"127.0.0.1:{port}", timeout=timeout, connection_retry={"max_tries": 0}, **kw)
    return c


def connects(certs, port, who=None, use_ssl=True):
    c = client(certs, port, who, use_ssl, timeout=3)
    try:
        c.start(timeout=3)
    except Exception:
        return False
    finally:
        c.stop()
        c.close()
    return True


def scenario(certs, port):
    """What a TLS deployment's clients see; the transcript is compared
    between ZooKeeper and Paddock."""
    out = []
    alice = client(certs, port, "alice")
    alice.start(timeout=10)
    try:
        alice.create("/tls-alice", b"hers", acl=[make_acl("x509", ALICE, all=True)])
        out.append(("alice reads", alice.get("/tls-alice")[0]))
        alice.create("/tls-auth", b"", acl=[make_acl("auth", "", all=True)])
        out.append(("auth acl", [(a.id.scheme, a.id.id, a.perms) for a in alice.get_acls("/tls-auth")[0]]))
    finally:
        alice.stop()
        alice.close()
    mallory = client(certs, port, "mallory")
    mallory.start(timeout=10)
    try:
        with pytest.raises(NoAuthError):
            mallory.get("/tls-alice")
        out.append(("mallory", "NoAuth"))
    finally:
        mallory.stop()
        mallory.close()
    root = client(certs, port, "root")
    root.start(timeout=10)
    try:
        out.append(("super reads", root.get("/tls-alice")[0]))
        root.delete("/tls-alice")
        root.delete("/tls-auth")
    finally:
        root.stop()
        root.close()
    out.append(("no client certificate", connects(certs, port, None)))
    out.append(("unknown CA", connects(certs, port, "eve")))
    out.append(("plain protocol on the TLS port", connects(certs, port, use_ssl=False)))
    return out


EXPECTED = [
    ("alice reads", b"hers"),
    ("auth acl", [("x509", ALICE, 31)]),
    ("mallory", "NoAuth"),
    ("super reads", b"hers"),
    ("no client certificate", False),
    ("unknown CA", False),
    ("plain protocol on the TLS port", False),
]


def test_zookeeper_and_paddock_treat_tls_clients_alike(certs, tmp_path):
    zk_secure = free_port()
    (tmp_path / "zk").mkdir()
    zk = start_zookeeper(tmp_path / "zk", tls_cfg(certs, zk_secure))
    try:
        want = scenario(certs, zk_secure)
    finally:
        zk.stop()
    assert want == EXPECTED, "the oracle itself disagrees with what this test expects"
    for store in STORES:
        secure = free_port()
        cfg = tmp_path / f"{store}.cfg"
        cfg.write_text(tls_cfg(certs, secure, store))
        (tmp_path / store).mkdir()
        paddock = start_paddock(tmp_path / store, "--config", str(cfg))
        try:
            assert scenario(certs, secure) == want, store
        finally:
            paddock.stop()


def test_want_serves_clients_without_a_certificate_and_none_asks_for_none(certs, tmp_path):
    for auth, alice_id in (("want", [("x509", ALICE)]), ("none", [])):
        secure = free_port()
        cfg = tmp_path / f"{auth}.cfg"
        cfg.write_text(tls_cfg(certs, secure, "pem", client_auth=auth))
        d = tmp_path / auth
        d.mkdir()
        paddock = start_paddock(d, "--config", str(cfg))
        try:
            assert connects(certs, secure, None)
            alice = client(certs, secure, "alice")
            alice.start(timeout=10)
            try:
                alice.create("/who", b"", acl=[make_acl("world", "anyone", all=True)])
                # Only a requested, verified certificate gives an identity.
                ok = alice_id != []
                try:
                    alice.create("/who/mine", b"", acl=[make_acl("auth", "", all=True)])
                    got = [(a.id.scheme, a.id.id) for a in alice.get_acls("/who/mine")[0]]
                except Exception as e:  # InvalidACL: auth with no proven identity
                    got = type(e).__name__
                assert got == (alice_id if ok else "InvalidACLError"), (auth, got)
            finally:
                alice.stop()
                alice.close()
        finally:
            paddock.stop()


def test_zkcli_over_tls_with_the_netty_client(certs, tmp_path):
    secure = free_port()
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text(tls_cfg(certs, secure, "pem"))
    d = tmp_path / "srv"
    d.mkdir()
    paddock = start_paddock(d, "--config", str(cfg))
    try:
        flags = ["-Dzookeeper.client.secure=true",
                 "-Dzookeeper.clientCnxnSocket=org.apache.zookeeper.ClientCnxnSocketNetty",
                 f"-Dzookeeper.ssl.keyStore.location={certs / 'alice.p12'}",
                 f"-Dzookeeper.ssl.keyStore.password={PASSWORD}",
                 f"-Dzookeeper.ssl.trustStore.location={certs / 'trust.jks'}",
                 f"-Dzookeeper.ssl.trustStore.password={PASSWORD}"]
        def zkcli(cmd):
            return subprocess.run(
                ["java", *flags, "-cp", ZK_CLASSPATH, "org.apache.zookeeper.ZooKeeperMain",
                 "-server", f"127.0.0.1:{secure}", *cmd.split()],
                capture_output=True, text=True, timeout=60)
        r = zkcli("create /over-tls secret")
        assert "Created /over-tls" in r.stdout + r.stderr, r.stdout + r.stderr
        r = zkcli("get /over-tls")
        assert "secret" in r.stdout, r.stdout + r.stderr
        r = zkcli("whoami")
        assert ALICE in r.stdout, r.stdout + r.stderr
    finally:
        paddock.stop()


def test_changed_key_store_files_are_loaded_again_while_serving(certs, tmp_path):
    store = tmp_path / "server-store.pem"
    store.write_bytes((certs / "server-store.pem").read_bytes())
    secure = free_port()
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text(tls_cfg(certs, secure, "pem").replace(str(certs / "server-store.pem"), str(store)))
    d = tmp_path / "srv"
    d.mkdir()
    paddock = start_paddock(d, "--config", str(cfg))
    try:
        assert connects(certs, secure, "alice")
        # A certificate the clients' CA did not sign: new handshakes fail...
        store.write_bytes((certs / "rogue-store.pem").read_bytes())
        assert wait_until(lambda: not connects(certs, secure, "alice"))
        # ...and the right one again: they succeed, without a restart.
        store.write_bytes((certs / "server-store.pem").read_bytes())
        assert wait_until(lambda: connects(certs, secure, "alice"))
        assert paddock.proc.poll() is None
        assert "reloaded" in (d / "paddock.log").read_text()
    finally:
        paddock.stop()

