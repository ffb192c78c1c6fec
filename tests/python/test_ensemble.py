"""Kazoo against a 3-server Paddock ensemble: given the full host list, a
client rides out the death of its server and of the leader with its
session, ephemerals and watches intact."""

import threading
import time

import pytest
from kazoo.client import KazooClient
from kazoo.protocol.states import KazooState

from conftest import start_ensemble


@pytest.fixture
def ensemble(tmp_path):
    e = start_ensemble(tmp_path, "paddock", tick_ms=500)
    yield e
    e.stop()


def holder_of(ensemble, session_id):
    """The member whose connection holds the session (from `cons`)."""
    from conftest import four_letter
    for m in ensemble.running():
        if f"sid=0x{session_id:x}" in four_letter(m.port, "cons"):
            return m
    return None


def test_a_client_keeps_its_session_ephemerals_and_watches_through_failovers(ensemble):
    client = KazooClient(hosts=ensemble.hosts, timeout=6)
    other = KazooClient(hosts=ensemble.hosts, timeout=6)
    states = []
    client.add_listener(states.append)
    client.start(timeout=10)
    other.start(timeout=10)
    try:
        session = client.client_id[0]
        client.create("/mine", b"ephemeral", ephemeral=True)
        other.create("/watched", b"0")
        seen = []
        changed = threading.Event()

        @client.DataWatch("/watched")
        def _watch(data, _stat):
            seen.append(data)
            if data and data != b"0":
                changed.set()

        # First the server holding the session dies, then the leader.
        for round in range(2):
            victim = holder_of(ensemble, session) if round == 0 else ensemble.wait_leader()
            assert victim is not None
            victim.kill()
            ensemble.wait_leader()
            changed.clear()
            other.set("/watched", f"after-{round}".encode())
            assert changed.wait(15), f"the watch fired after failover {round}: {seen}"
            assert client.client_id[0] == session
            assert client.get("/mine")[0] == b"ephemeral"
            assert client.state == KazooState.CONNECTED
            victim.start()
        assert KazooState.LOST not in states, states
        assert KazooState.SUSPENDED in states
    finally:
        other.stop()
        client.stop()
        client.close()


def test_writes_from_every_server_are_seen_everywhere_after_sync(ensemble):
    clients = []
    try:
        for m in ensemble.members:
            c = KazooClient(hosts=f"127.0.0.1:{m.port}", timeout=6)
            c.start(timeout=10)
            clients.append(c)
        for i, c in enumerate(clients):
            c.create(f"/from-{i}", str(i).encode())
        for c in clients:
            c.sync("/")
            assert sorted(x for x in c.get_children("/") if x.startswith("from-")) == \
                ["from-0", "from-1", "from-2"]
        config, _ = clients[0].get("/zookeeper/config")
        text = config.decode()
        assert text.count("server.") == 3 and "version=" in text, text
    finally:
        for c in clients:
            c.stop()
