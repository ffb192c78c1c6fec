"""Kazoo's own SASL tests (kazoo.tests.test_sasl) and its TLS client test
(test_client.TestSSLClient), run by Kazoo's own test harness exactly as
it runs them against ZooKeeper: it writes its zoo.cfg
(a 3-server ensemble, a secure client port with JKS stores it makes, the
SASL provider) and a JAAS file, and starts each server with `java ... -D...
QuorumPeerMain zoo.cfg`; `kazoo_harness/java` starts Paddock with that
zoo.cfg and those -D flags instead."""

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

from conftest import free_port, paddock_binary

SHIM = Path(__file__).with_name("kazoo_harness")


def free_block(n):
    """A port whose next `n` ports are free too (the harness's offset)."""
    while True:
        start = free_port()
        socks = []
        try:
            for port in range(start, start + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return start
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()


def test_kazoos_sasl_and_tls_tests_pass_under_kazoos_harness(tmp_path):
    env = dict(os.environ)
    env.update(
        PATH=f"{SHIM}{os.pathsep}{env.get('PATH', '')}",
        PADDOCK_BIN=paddock_binary(),
        ZOOKEEPER_VERSION="3.8.0",
        # The harness needs a classpath to hand to `java`; the shim ignores it.
        ZOOKEEPER_CLASSPATH="/usr/share/java/zookeeper.jar",
        # The harness takes ports from offset upwards (client, secure,
        # admin, peer, election for each of three servers).
        ZOOKEEPER_PORT_OFFSET=str(free_block(30)),
    )
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "--pyargs",
         "kazoo.tests.test_sasl", "kazoo.tests.test_client", "-k", "SASL or TestSSLClient"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    tail = r.stdout[-3000:] + r.stderr[-2000:]
    assert r.returncode == 0, tail
    # 4 DIGEST-MD5 cases and the TLS client case (the harness's own
    # certificates, X.509 version 1, over the secure client port).
    assert re.search(r"\b5 passed", r.stdout), tail
    # Only the Kerberos (GSSAPI) cases may skip: Paddock offers DIGEST-MD5.
    skips = [line for line in r.stdout.splitlines() if line.startswith("SKIPPED")]
    assert all("Kerberos" in line for line in skips), tail
