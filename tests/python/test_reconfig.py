"""reconfig through Kazoo, differentially: the same requests against a
3-server Apache ZooKeeper 3.8.0 ensemble and a 3-server Paddock ensemble
(reconfigEnabled=true, a super user) give the same errors and the same
memberships."""

import base64
import hashlib
import time

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import BadArgumentsError, BadVersionError, NoAuthError

from conftest import start_ensemble

SUPER = "super:secret"


def digest(user_pw):
    user = user_pw.split(":")[0]
    return user + ":" + base64.b64encode(hashlib.sha1(user_pw.encode()).digest()).decode()


def servers(config):
    """The server lines of a /zookeeper/config text, by id."""
    out = {}
    for line in config.decode().splitlines():
        if line.startswith("server."):
            key, spec = line.split("=", 1)
            out[int(key[len("server."):])] = spec
    return out


def version(config):
    return int(next(line for line in config.decode().splitlines()
                    if line.startswith("version="))[len("version="):], 16)


def published_config(client, deadline_s=10):
    """/zookeeper/config once the leader has written its membership there
    (just after an election it may not have yet)."""
    end = time.time() + deadline_s
    while True:
        config, _ = client.get("/zookeeper/config")
        if b"version=" in config or time.time() > end:
            return config
        time.sleep(0.05)


def scenario(ensemble):
    """What a sequence of reconfigs gives: each step's outcome."""
    steps = []
    # Connected to the leader, which keeps its clients while a follower
    # (the victim) leaves and comes back.
    leader = ensemble.wait_leader()
    victim = next(m.sid for m in ensemble.members if m is not leader)
    keeper = next(m.sid for m in ensemble.members if m is not leader and m.sid != victim)
    at = f"127.0.0.1:{leader.port}"
    plain = KazooClient(hosts=at, timeout=10)
    plain.start(timeout=20)
    admin = KazooClient(hosts=at, timeout=10, auth_data=[("digest", SUPER)])
    admin.start(timeout=20)
    try:
        config = published_config(admin)
        before = servers(config)
        steps.append(("members", sorted(before)))
        with pytest.raises(NoAuthError):
            plain.reconfig(joining=None, leaving=str(victim), new_members=None)
        steps.append("noauth")
        with pytest.raises(BadVersionError):
            admin.reconfig(joining=None, leaving=str(victim), new_members=None,
                           from_config=version(config) + 1)
        steps.append("badversion")
        with pytest.raises(BadArgumentsError):
            admin.reconfig(joining="server.9=127.0.0.1:1:2", leaving=None, new_members=None)
        steps.append("badarguments")
        data, _ = admin.reconfig(joining=None, leaving=str(victim), new_members=None,
                                 from_config=version(config))
        smaller = servers(data)
        steps.append(("after removing one", len(smaller)))
        assert smaller == {k: v for k, v in before.items() if k != victim}
        with pytest.raises(BadArgumentsError):
            admin.reconfig(joining=None, leaving=str(keeper), new_members=None)
        steps.append("keeps two voters")
        data, _ = admin.reconfig(joining=f"server.{victim}={before[victim]}", leaving=None,
                                 new_members=None)
        steps.append(("after adding it back", sorted(servers(data))))
        assert servers(data)[victim].split(";")[0] == before[victim].split(";")[0]
        admin.sync("/")
        config, _ = admin.get("/zookeeper/config")
        assert servers(config) == servers(data)
        return steps
    finally:
        for c in (plain, admin):
            c.stop()
            c.close()


def run(tmp_path, kind):
    flags = [f"-Dzookeeper.DigestAuthenticationProvider.superDigest={digest(SUPER)}"]
    e = start_ensemble(tmp_path, kind, tick_ms=500,
                       extra_cfg=f"reconfigEnabled=true\nsuperDigest={digest(SUPER)}\n",
                       jvm_flags=flags)
    try:
        return scenario(e)
    finally:
        e.stop()


def test_reconfig_gives_what_zookeeper_gives(tmp_path):
    outcomes = {}
    for kind in ("zookeeper", "paddock"):
        (tmp_path / kind).mkdir()
        outcomes[kind] = run(tmp_path / kind, kind)
    assert outcomes["paddock"] == outcomes["zookeeper"]
    assert len(outcomes["zookeeper"]) == 7, outcomes
