"""Kazoo's watch-based recipes on Paddock: DataWatch, ChildrenWatch, and a
Lock and an Election contended by several processes."""

import subprocess
import sys
from pathlib import Path

from kazoo.client import KazooClient

from conftest import wait_until

WORKER = Path(__file__).with_name("kazoo_worker.py")


def test_data_watch_sees_every_change(zk, paddock):
    zk.create("/r-data", b"v0")
    seen = []
    zk.DataWatch("/r-data", lambda data, stat: seen.append(data))
    writer = KazooClient(hosts=paddock.hosts)
    writer.start()
    try:
        for i in range(1, 4):
            writer.set("/r-data", f"v{i}".encode())
            assert wait_until(lambda: seen[-1] == f"v{i}".encode()), seen
        writer.delete("/r-data")
        assert wait_until(lambda: seen[-1] is None), seen
    finally:
        writer.stop()
    assert seen == [b"v0", b"v1", b"v2", b"v3", None]


def test_children_watch_follows_membership(zk, paddock):
    zk.ensure_path("/r-members")
    seen = []
    zk.ChildrenWatch("/r-members", lambda children: seen.append(sorted(children)))
    member = KazooClient(hosts=paddock.hosts)
    member.start()
    member.create("/r-members/a", ephemeral=True)
    assert wait_until(lambda: seen[-1] == ["a"]), seen
    zk.create("/r-members/b")
    assert wait_until(lambda: seen[-1] == ["a", "b"]), seen
    member.stop()  # the ephemeral member leaves with its session
    assert wait_until(lambda: seen[-1] == ["b"]), seen


def contend(paddock, tmp_path, recipe, processes=4, rounds=5):
    log = tmp_path / f"{recipe}.log"
    procs = [subprocess.Popen([sys.executable, str(WORKER), paddock.hosts, recipe, str(log), str(rounds)])
             for _ in range(processes)]
    for p in procs:
        assert p.wait(timeout=120) == 0
    lines = log.read_text().split()
    events = list(zip(lines[0::2], lines[1::2]))
    # Mutual exclusion: every "enter X" is immediately followed by "exit X".
    for (e, who), (x, who2) in zip(events[0::2], events[1::2]):
        assert (e, x, who) == ("enter", "exit", who2), events
    return events


def test_lock_excludes_across_processes(zk, paddock, tmp_path):
    zk.ensure_path("/recipes/counter")
    zk.set("/recipes/counter", b"0")
    events = contend(paddock, tmp_path, "lock")
    assert len(events) == 2 * 4 * 5
    assert zk.get("/recipes/counter")[0] == b"20", "no lost update under the lock"


def test_election_has_one_leader_at_a_time(zk, paddock, tmp_path):
    zk.ensure_path("/recipes/counter")
    zk.set("/recipes/counter", b"0")
    events = contend(paddock, tmp_path, "election", processes=3, rounds=3)
    assert len({who for _, who in events}) == 3, "every candidate led"
    assert zk.get("/recipes/counter")[0] == b"9"
