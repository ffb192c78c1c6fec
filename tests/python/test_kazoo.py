"""Kazoo, unmodified, against Paddock: every operation Kazoo offers without
watches, its error classes, ACLs and auth, large values and sessions."""

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import (AuthFailedError, BadVersionError,
                              ConnectionLoss, InvalidACLError, NoAuthError,
                              NoChildrenForEphemeralsError, NodeExistsError, NoNodeError,
                              NotEmptyError, RolledBackError)
from kazoo.security import make_acl, make_digest_acl, OPEN_ACL_UNSAFE


def test_crud_and_stat(zk):
    zk.ensure_path("/k/crud")
    assert zk.create("/k/crud/n", b"one") == "/k/crud/n"
    data, stat = zk.get("/k/crud/n")
    assert data == b"one" and stat.version == 0 and stat.dataLength == 3
    stat2 = zk.set("/k/crud/n", b"two", version=0)
    assert stat2.version == 1 and stat2.mzxid > stat.mzxid
    with pytest.raises(BadVersionError):
        zk.set("/k/crud/n", b"three", version=0)
    with pytest.raises(NodeExistsError):
        zk.create("/k/crud/n")
    with pytest.raises(NoNodeError):
        zk.create("/k/missing/n")
    with pytest.raises(NotEmptyError):
        zk.delete("/k/crud")
    zk.delete("/k/crud/n")
    assert zk.exists("/k/crud/n") is None
    zk.delete("/k/crud", recursive=True)


def test_null_and_empty_data_are_distinct(zk):
    zk.create("/k-null", None)
    zk.create("/k-empty", b"")
    assert zk.get("/k-null")[0] is None
    assert zk.get("/k-empty")[0] == b""


def test_sequential_and_ephemeral(zk, paddock):
    zk.ensure_path("/k/seq")
    a = zk.create("/k/seq/item-", sequence=True)
    b = zk.create("/k/seq/item-", sequence=True, ephemeral=True)
    assert (a, b) == ("/k/seq/item-0000000000", "/k/seq/item-0000000001")
    zk.create("/k/seq/eph", ephemeral=True)
    with pytest.raises(NoChildrenForEphemeralsError):
        zk.create("/k/seq/eph/child")
    other = KazooClient(hosts=paddock.hosts)
    other.start()
    try:
        assert other.exists("/k/seq/eph").ephemeralOwner == zk.client_id[0]
        zk.stop()
        assert other.exists("/k/seq/eph") is None
        assert sorted(other.get_children("/k/seq")) == ["item-0000000000"]
    finally:
        other.stop()


def test_transactions_commit_or_roll_back(zk):
    zk.ensure_path("/k/tx")
    t = zk.transaction()
    t.create("/k/tx/a", b"1")
    t.set_data("/k/tx/a", b"2")
    t.check("/k/tx/a", 1)
    created, stat, checked = t.commit()
    assert created == "/k/tx/a" and stat.version == 1 and checked is True
    assert zk.get("/k/tx/a")[0] == b"2"
    t = zk.transaction()
    t.create("/k/tx/b")
    t.create("/k/tx/a")
    t.delete("/k/tx/a")
    results = t.commit()
    assert isinstance(results[0], RolledBackError)
    assert isinstance(results[1], NodeExistsError)
    assert zk.exists("/k/tx/b") is None


def test_acls_and_digest_auth(zk, paddock):
    acl = make_digest_acl("bob", "secret", all=True)
    zk.create("/k-acl", b"s", acl=[acl])
    with pytest.raises(NoAuthError):
        zk.get("/k-acl")
    with pytest.raises(NoAuthError):
        zk.get_acls("/k-acl")
    zk.add_auth("digest", "bob:secret")
    assert zk.get("/k-acl")[0] == b"s"
    acls, _ = zk.get_acls("/k-acl")
    assert acls == [acl]
    with pytest.raises(InvalidACLError):
        zk.create("/k-bad-acl", acl=[make_acl("digest", "no-colon", all=True)])
    zk.set_acls("/k-acl", OPEN_ACL_UNSAFE)
    assert zk.get_acls("/k-acl")[1].aversion == 1


def test_unknown_auth_scheme_fails(paddock):
    client = KazooClient(hosts=paddock.hosts)
    client.start()
    try:
        with pytest.raises(AuthFailedError):
            client.add_auth("nosuchscheme", "x")
    finally:
        client.stop()


def test_duplicate_acl_entries_are_merged(zk):
    zk.create("/k-dup", acl=OPEN_ACL_UNSAFE * 3)
    assert len(zk.get_acls("/k-dup")[0]) == 1


def test_large_values(zk):
    zk.create("/k-large", b"x" * (512 * 1024))
    assert len(zk.get("/k-large")[0]) == 512 * 1024
    with pytest.raises(ConnectionLoss):
        zk.create("/k-huge", b"x" * (2 * 1024 * 1024))


def test_session_survives_a_reconnect(paddock):
    client = KazooClient(hosts=paddock.hosts, timeout=10)
    client.start()
    try:
        client.create("/k-survivor", ephemeral=True)
        session = client.client_id
        import socket
        client._connection._socket.shutdown(socket.SHUT_RDWR)  # cut the TCP connection under Kazoo
        client.retry(client.exists, "/k-survivor")
        assert client.client_id == session
        assert client.exists("/k-survivor").ephemeralOwner == session[0]
    finally:
        client.stop()


def test_server_version_and_four_letter_words(zk):
    # Kazoo parses zookeeper.version= from envi, allowed by default.
    assert zk.server_version() == (3, 8, 0)
    assert zk.command(b"ruok") == "imok"
    assert "zk_server_state\tstandalone" in zk.command(b"mntr")
