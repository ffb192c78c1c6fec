"""TLS between the servers of an ensemble (`sslQuorum=true`, the
`ssl.quorum.*` keys), against Apache ZooKeeper 3.8.0 with the same
settings: writes replicate over mutual TLS; a server whose certificate no
member trusts does not join (and does once it has a trusted one); a plain
TCP connection to a peer port sending a consensus frame changes nothing."""

import re
import socket
import struct

from kazoo.client import KazooClient

from conftest import four_letter, start_ensemble, wait_until
from tlscerts import PASSWORD, make_certs


def quorum_cfg(certs, key, trust):
    return ("sslQuorum=true\n"
            f"ssl.quorum.keyStore.location={certs / key}\nssl.quorum.keyStore.password={PASSWORD}\n"
            f"ssl.quorum.trustStore.location={certs / trust}\nssl.quorum.trustStore.password={PASSWORD}\n")


def replicates(ensemble, path):
    """A write through the first member is read on the last."""
    first, last = ensemble.members[0], ensemble.members[-1]
    w = KazooClient(hosts=f"127.0.0.1:{first.port}", timeout=10)
    w.start(timeout=20)
    try:
        w.create(path, b"over tls")
    finally:
        w.stop()
        w.close()
    return reads(last, path)


def reads(member, path, timeout=30.0):
    def ok():
        r = KazooClient(hosts=f"127.0.0.1:{member.port}", timeout=5, connection_retry={"max_tries": 0})
        try:
            r.start(timeout=5)
            r.sync(path)
            return r.exists(path) is not None
        except Exception:
            return False
        finally:
            r.stop()
            r.close()
    return wait_until(ok, timeout)


def zxid(member):
    m = re.search(r"Zxid: (0x[0-9a-f]+)", four_letter(member.port, "srvr"))
    return int(m.group(1), 16) if m else None


def peer_port(member):
    line = re.search(rf"^server\.{member.sid}=127\.0\.0\.1:(\d+):", member.cfg.read_text(), re.M)
    return int(line.group(1))


def test_zookeeper_and_paddock_replicate_over_quorum_tls(tmp_path):
    (tmp_path / "certs").mkdir()
    certs = make_certs(tmp_path / "certs")
    zk = start_ensemble(tmp_path, "zookeeper", extra_cfg=quorum_cfg(certs, "server.jks", "trust.jks"))
    try:
        assert replicates(zk, "/zk-over-tls"), "the oracle does not replicate with these settings"
    finally:
        zk.stop()
    paddock = start_ensemble(tmp_path, "paddock", extra_cfg=quorum_cfg(certs, "server-store.pem", "ca.pem"))
    try:
        assert replicates(paddock, "/paddock-over-tls")

        # A member whose certificate no other member trusts cannot join.
        third = paddock.members[2]
        third.kill()
        good = third.cfg.read_text()
        third.cfg.write_text(good.replace("server-store.pem", "rogue-store.pem"))
        third.start()
        w = KazooClient(hosts=f"127.0.0.1:{paddock.members[0].port}", timeout=10)
        w.start(timeout=20)
        try:
            w.create("/while-rogue", b"")
            log = tmp_path / f"paddock{third.sid}.log"
            assert wait_until(lambda: "TLS" in log.read_text()), "no TLS refusal logged"
            assert not reads(third, "/while-rogue", timeout=5), "an untrusted member caught up"

            # With the ensemble's certificate it joins and catches up.
            third.kill()
            third.cfg.write_text(good)
            third.start()
            assert reads(third, "/while-rogue", timeout=60)

            # Plain TCP on a TLS peer port: a consensus-shaped frame is dropped unread.
            leader = paddock.members[0]
            before = zxid(leader)
            with socket.create_connection(("127.0.0.1", peer_port(leader)), timeout=5) as s:
                frame = b"\x00\x01" + b"\x00" * 62
                s.sendall(struct.pack(">I", len(frame)) + frame)
                s.settimeout(10)
                try:
                    while s.recv(4096):
                        pass
                except (ConnectionResetError, socket.timeout):
                    pass
            assert zxid(leader) == before
            assert w.exists("/while-rogue") is not None
        finally:
            w.stop()
            w.close()
    finally:
        paddock.stop()
