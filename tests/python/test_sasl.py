"""SASL DIGEST-MD5 with ZooKeeper's habits, differential against Apache
ZooKeeper 3.8.0: users from a JAAS file named by
-Djava.security.auth.login.config, the SASL provider from zoo.cfg's
authProvider.1, Kazoo (pure-sasl) as the client. A good password gets a
`sasl` identity usable in ACLs, a bad one AuthFailed, `superUser` is
super; then zkCli.sh (the Java client) with a JAAS Client section."""

import subprocess

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import AuthFailedError, NoAuthError
from kazoo.security import make_acl

from conftest import ZK_CLASSPATH, start_paddock, start_zookeeper

JAAS = """Server {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    user_super="super_secret"
    user_jaasuser="jaas_password";
};
"""
CFG = ("authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider\n"
       "superUser=super\n")


def sasl_client(server, user, password):
    return KazooClient(hosts=server.hosts, timeout=10, connection_retry={"max_tries": 0},
                       sasl_options={"mechanism": "DIGEST-MD5", "username": user, "password": password})


def scenario(server):
    out = []
    c = sasl_client(server, "jaasuser", "jaas_password")
    c.start(timeout=10)
    try:
        c.create("/sasl-node", b"mine", acl=[make_acl("sasl", "jaasuser", all=True)])
        out.append(("owner reads", c.get("/sasl-node")[0]))
        c.create("/sasl-auth", b"", acl=[make_acl("auth", "", all=True)])
        out.append(("auth acl", [(a.id.scheme, a.id.id) for a in c.get_acls("/sasl-auth")[0]]))
    finally:
        c.stop()
        c.close()
    anon = KazooClient(hosts=server.hosts, timeout=10)
    anon.start(timeout=10)
    try:
        with pytest.raises(NoAuthError):
            anon.get("/sasl-node")
        out.append(("anonymous", "NoAuth"))
    finally:
        anon.stop()
        anon.close()
    su = sasl_client(server, "super", "super_secret")
    su.start(timeout=10)
    try:
        out.append(("super reads", su.get("/sasl-node")[0]))
        su.delete("/sasl-node")
        su.delete("/sasl-auth")
    finally:
        su.stop()
        su.close()
    bad = sasl_client(server, "jaasuser", "wrong")
    try:
        # Kazoo reports the connection before SASL ends; the failure
        # shows on the first request.
        bad.start(timeout=10)
        bad.exists("/")
        out.append(("bad password", "accepted"))
    except AuthFailedError:
        out.append(("bad password", "AuthFailed"))
    finally:
        bad.stop()
        bad.close()
    return out


EXPECTED = [
    ("owner reads", b"mine"),
    ("auth acl", [("sasl", "jaasuser")]),
    ("anonymous", "NoAuth"),
    ("super reads", b"mine"),
    ("bad password", "AuthFailed"),
]


def test_zookeeper_and_paddock_authenticate_sasl_digest_alike(tmp_path):
    jaas = tmp_path / "jaas.conf"
    jaas.write_text(JAAS)
    flag = f"-Djava.security.auth.login.config={jaas}"
    (tmp_path / "zk").mkdir()
    zk = start_zookeeper(tmp_path / "zk", CFG, jvm_flags=[flag])
    try:
        want = scenario(zk)
    finally:
        zk.stop()
    assert want == EXPECTED, "the oracle itself disagrees with what this test expects"
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text(CFG)
    (tmp_path / "paddock").mkdir()
    paddock = start_paddock(tmp_path / "paddock", "--config", str(cfg), flag)
    try:
        assert scenario(paddock) == want
        # The Java client (zkCli.sh's) with a JAAS Client section.
        client_jaas = tmp_path / "client.jaas"
        client_jaas.write_text('Client {\n  org.apache.zookeeper.server.auth.DigestLoginModule required\n'
                               '  username="jaasuser"\n  password="jaas_password";\n};\n')
        r = subprocess.run(
            ["java", f"-Djava.security.auth.login.config={client_jaas}", "-cp", ZK_CLASSPATH,
             "org.apache.zookeeper.ZooKeeperMain", "-server", paddock.hosts, "whoami"],
            capture_output=True, text=True, timeout=60)
        assert "sasl" in r.stdout and "jaasuser" in r.stdout, r.stdout + r.stderr
    finally:
        paddock.stop()
